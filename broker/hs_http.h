/*  hs_http: a homeserver's HTTP surface (protocol/http.md): /health,
    /ready and /metrics, and every operation of the API as REST + JSON,
    routed by HS_OP_MAP's route column and served as the same request a
    ZeroMQ client would send, by the principal its bearer token stands
    for. */

#ifndef HS_HTTP_H_INCLUDED
#define HS_HTTP_H_INCLUDED

#include "broker/hs_fsm.h"
#include "broker/hs_kept.h"
#include "common/sf_http.h"
#include "common/sf_prom.h"
#include "protocol/api_router.h"

typedef struct _hs_http_t hs_http_t;

//  What the daemon lends: its state, and three calls back into it.
typedef struct {
    hs_fsm_t *fsm;    //  bearer tokens are checked against its applied state
    hs_kept_t *kept;  //  the changes the feed resumes from
    //  Serve CALL (taken) as a request of the API.
    void (*serve) (void *context, api_call_t *call);
    //  The member's status (the op "status"'s result), a new reference.
    json_t *(*status) (void *context);
    //  Write the daemon's metrics families into PROM.
    void (*metrics) (void *context, sf_prom_t *prom);
    void *context;
    uint64_t max_apply_lag;  //  /health's bound on entries not applied
} hs_http_hooks_t;

//  Seconds between the keep-alive comments of a quiet change feed.
#define HS_HTTP_KEEPALIVE_S 15

//  Serve CONFIG on LOOP with HOOKS (copied). NULL with FAULT.
hs_http_t *hs_http_new (const sf_http_config_t *config, sf_loop_t *loop,
                        const hs_http_hooks_t *hooks, sf_fault_t *fault);

void hs_http_destroy (hs_http_t **self_p);

//  Send CHANGE (lent), just kept, to the change feed's streams that want
//  its topic (http.md section 6).
void hs_http_change (hs_http_t *self, const hs_kept_change_t *change);

//  The URL served. Lent.
const char *hs_http_url (hs_http_t *self);

//  The health of a member whose status is STATUS (lent), as /health
//  answers it: {"healthy", "problems": [...], "checks": {...}}. A new
//  reference. Pure, for tests.
json_t *hs_http_health (const json_t *status, uint64_t max_apply_lag);

//  The operation of route METHOD PATH (http.md section 4), its
//  parameters ({path}, {sim}, ...) set in PARAMS (an object, lent); or
//  NULL, with ALLOW (ALLOW_SIZE bytes; 0: not wanted) the methods PATH
//  has, "" if none (no such route). Pure.
const hs_op_t *hs_http_route (const char *method, const char *path,
                              json_t *params, char *allow, size_t allow_size);

//  The request (a new reference: {"id": ID, "op", ...}) that operation OP
//  with route parameters PARAMS, QUERY ({name: text}) and the JSON
//  object BODY (SIZE bytes; 0: none) stands for; NULL with FAULT when the
//  body is not an object or a field is given twice. Pure.
json_t *hs_http_arguments (const hs_op_t *op, const json_t *params,
                           const json_t *query, const char *body, size_t size,
                           int64_t id, sf_fault_t *fault);

//  The HTTP status of API error CODE (http.md section 4).
unsigned hs_http_status_of (const char *code);

//  Self test; returns 0 on success.
int hs_http_test (bool verbose);

#endif
