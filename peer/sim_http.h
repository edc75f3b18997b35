/*  sim_http: a simulation server's HTTP surface (protocol/http.md
    section 7): /health, /ready and /metrics. No REST: a sim's API is a
    game's, over CURVE, at the rate of a frame. */

#ifndef SIM_HTTP_H_INCLUDED
#define SIM_HTTP_H_INCLUDED

#include "common/sf_http.h"
#include "common/sf_prom.h"

typedef struct _sim_http_t sim_http_t;

//  What the daemon lends: two calls back into it.
typedef struct {
    //  The sim's status (the op "status"'s result), a new reference.
    json_t *(*status) (void *context);
    //  Write the daemon's metrics families into PROM.
    void (*metrics) (void *context, sf_prom_t *prom);
    void *context;
} sim_http_hooks_t;

//  Serve CONFIG on LOOP with HOOKS (copied). NULL with FAULT.
sim_http_t *sim_http_new (const sf_http_config_t *config, sf_loop_t *loop,
                          const sim_http_hooks_t *hooks, sf_fault_t *fault);

void sim_http_destroy (sim_http_t **self_p);

//  The URL served. Lent.
const char *sim_http_url (sim_http_t *self);

//  The health of a sim whose status is STATUS (lent): registered, and
//  its last heartbeat answered within three intervals. {"healthy",
//  "problems"?, "checks"}; a new reference. Pure, for tests.
json_t *sim_http_health (const json_t *status);

//  Self test; returns 0 on success.
int sim_http_test (bool verbose);

#endif
