/*  api_router: serves the JSON API (homeserver-api.md) on a CURVE ROUTER.

    Owns the API socket (ZAP domain "api", or another for a socket with the
    same envelope, such as federation's; the daemon's sf_zap handler
    decides who may connect). Its daemon registers the socket on its loop and calls
    api_router_handle when it is readable: one request is read, dispatched
    through an op table, answered, and logged in one line if refused. */

#ifndef API_ROUTER_H_INCLUDED
#define API_ROUTER_H_INCLUDED

#include "common/sf_prom.h"
#include "protocol/api_msg.h"

#include <czmq.h>

typedef struct _api_router_t api_router_t;

//  ZAP domain of API sockets.
#define API_ROUTER_DOMAIN "api"

//  Replies a client may leave unread before the ROUTER drops more
//  (homeserver-api.md section 1).
#define API_ROUTER_MAX_UNREAD 100000

//  Bind a CURVE ROUTER on ENDPOINT serving with CERT (lent; must outlive
//  the router), its clients admitted by the ZAP policy of DOMAIN (static
//  text: API_ROUTER_DOMAIN, or another socket's). Returns NULL with FAULT
//  set if the endpoint cannot be bound.
api_router_t *api_router_new (const char *endpoint, zcert_t *cert,
                              const char *domain, sf_fault_t *fault);

//  Destroy the router and null the caller's pointer.
void api_router_destroy (api_router_t **self_p);

//  The socket, to register on a loop. Lent.
zsock_t *api_router_socket (api_router_t *self);

//  The endpoint as bound, with an ephemeral port resolved. Lent.
const char *api_router_endpoint (api_router_t *self);

//  Serve one request waiting on the socket with OPS and CONTEXT. LOG_NAME
//  prefixes log lines ("hs_server"). Returns 0: a bad request never stops
//  the loop.
int api_router_handle (api_router_t *self, const api_msg_op_t *ops,
                       void *context, const char *log_name);

//  One request being served: who asked, how to answer, what was asked. A
//  daemon that cannot answer at once (a write waiting for its commit)
//  keeps the call and answers it later.
typedef struct _api_call_t api_call_t;

//  Serve CALL (taken) through OPS with CONTEXT: find its op, run the
//  handler, answer. An unknown op is answered unknown_op.
void api_router_dispatch (api_router_t *self, api_call_t **call,
                          const api_msg_op_t *ops, void *context);

//  Receive one request waiting on the socket. Returns the call (the caller
//  owns it), or NULL when the request was malformed and has already been
//  answered with an error. Every refusal through this router is logged, one
//  line each, prefixed by LOG_NAME (a static string).
api_call_t *api_router_recv (api_router_t *self, const char *log_name);

//  How a call made in this process is answered: REPLY is the whole
//  reply ({"id", "ok", ...}, lent), or NULL when the call is dropped
//  unanswered (its daemon stops, or it timed out unanswered).
typedef void (api_call_answer_fn) (void *arg, const json_t *reply);

//  A call made in this process rather than received on a socket (an
//  HTTP request, protocol/http.md): REQUEST (a JSON object with "id" and
//  "op", lent) from PRINCIPAL, answered once through ANSWER_FN with
//  ANSWER_ARG. Returns NULL with FAULT if REQUEST is not a valid request.
api_call_t *api_call_new_local (const json_t *request, const char *principal,
                                api_call_answer_fn *answer_fn, void *answer_arg,
                                sf_fault_t *fault);

//  Count a request served through this router that did not come on its
//  socket (api_call_new_local's), so the counters hold every request.
void api_router_count (api_router_t *self);

//  Write the latency of every request answered through this router, by
//  op, as PROM's family request_duration_seconds.
void api_router_metrics (api_router_t *self, sf_prom_t *prom);

//  The latency of op OP's answers so far, or NULL if none. Lent.
const sf_prom_histo_t *api_router_latency (api_router_t *self, const char *op);

//  The decoded request of CALL. Lent.
const api_msg_t *api_call_request (api_call_t *call);

//  The principal (Z85 public key) that sent CALL. Lent.
const char *api_call_principal (api_call_t *call);

//  Wall-clock time (microseconds since the Unix epoch) at which CALL was
//  received, for traces (trace.md).
uint64_t api_call_received_us (api_call_t *call);

//  Name CALL's sender as the daemon knows it (LABEL copied, NULL: none),
//  for the records of traces (a peer instance's member, "hs1@east").
void api_call_set_label (api_call_t *call, const char *label);

//  CALL's label, or NULL. Lent.
const char *api_call_label (api_call_t *call);

//  Make CALL stand for REQUEST (a JSON object, lent) sent by PRINCIPAL,
//  keeping CALL's id for the answer: how a relayed request is served.
//  Returns 0, or -1 with FAULT if REQUEST is not a valid request.
int api_call_rewrite (api_call_t *call, const json_t *request,
                      const char *principal, sf_fault_t *fault);

//  The connection CALL came on (lent): where api_router_push sends events
//  for that client later.
zframe_t *api_call_routing_id (api_call_t *call);

//  True if CALL came from a REQ socket (which cannot take unrequested
//  messages).
bool api_call_delimited (api_call_t *call);

//  Send BODY (a JSON object, lent), unrequested, to the client on
//  ROUTING_ID, never blocking. Returns 0, or -1 with errno EHOSTUNREACH
//  (the client is gone) or EAGAIN (its queue is full: nothing was sent).
int api_router_push (api_router_t *self, zframe_t *routing_id,
                     const json_t *body);

//  Answer CALL with success, copying RESULT's members (may be NULL) into
//  the reply, on the router CALL came on (SELF only for a call of no
//  router); destroys the call. A NULL *CALL (a command the daemon
//  issued itself) is answered by nobody.
void api_router_reply (api_router_t *self, api_call_t **call,
                       const json_t *result);

//  Answer CALL with ERROR and MESSAGE; destroys the call.
void api_router_fail (api_router_t *self, api_call_t **call, sf_error_t error,
                      const char *message);

//  As api_router_fail, with DETAILS (taken; an object, or NULL): more
//  fields of the error object that say what to do next (sim-api.md:
//  entity.update's denied names the authority).
void api_router_fail_with (api_router_t *self, api_call_t **call,
                           sf_error_t error, const char *message,
                           json_t *details);

//  Drop CALL without an answer (its client goes away, or times out).
void api_call_destroy (api_call_t **call);

//  What this router has served since it was made.
typedef struct {
    uint64_t requests;  //  requests read, malformed ones included
    uint64_t refused;   //  answered with an error
} api_router_counters_t;

//  The router's counters. Lent.
const api_router_counters_t *api_router_counters (api_router_t *self);

//  Self test; returns 0 on success.
int api_router_test (bool verbose);

#endif
