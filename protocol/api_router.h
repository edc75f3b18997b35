/*  api_router: serves the JSON API (homeserver-api.md) on a CURVE ROUTER.

    Owns the API socket (ZAP domain "api"; the daemon's sf_zap handler
    decides who may connect). Its daemon registers the socket on its zloop and calls
    api_router_handle when it is readable: one request is read, dispatched
    through an op table, answered, and logged in one line if refused. */

#ifndef API_ROUTER_H_INCLUDED
#define API_ROUTER_H_INCLUDED

#include "protocol/api_msg.h"

#include <czmq.h>

typedef struct _api_router_t api_router_t;

//  ZAP domain of API sockets.
#define API_ROUTER_DOMAIN "api"

//  Bind a CURVE ROUTER on ENDPOINT serving with CERT (lent; must outlive
//  the router). Returns NULL with FAULT set if the endpoint cannot be bound.
api_router_t *api_router_new (const char *endpoint, zcert_t *cert,
                              sf_fault_t *fault);

//  Destroy the router and null the caller's pointer.
void api_router_destroy (api_router_t **self_p);

//  The socket, to register on a zloop. Lent.
zsock_t *api_router_socket (api_router_t *self);

//  The endpoint as bound, with an ephemeral port resolved. Lent.
const char *api_router_endpoint (api_router_t *self);

//  Serve one request waiting on the socket with OPS and CONTEXT. LOG_NAME
//  prefixes log lines ("hs_server"). Returns 0: a bad request never stops
//  the loop.
int api_router_handle (api_router_t *self, const api_msg_op_t *ops,
                       void *context, const char *log_name);

//  Self test; returns 0 on success.
int api_router_test (bool verbose);

#endif
