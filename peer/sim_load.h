/*  sim_load: the load report a sim sends with each heartbeat
    (protocol/load.md section 2): per-second rates from the cumulative
    counters since the last report, the process's CPU and memory, and the
    groups (rooms) it holds the most load in, for the ring's balancer. */

#ifndef SIM_LOAD_H_INCLUDED
#define SIM_LOAD_H_INCLUDED

#include "peer/sim_store.h"

#include <jansson.h>
#include <stdint.h>

typedef struct _sim_load_t sim_load_t;

//  Groups named in a report; the others are summed as "rest".
#define SIM_LOAD_GROUPS 64

//  A report maker for a sim of capacity CAPACITY (sim/capacity).
sim_load_t *sim_load_new (int64_t capacity);

//  Destroy and null the caller's pointer.
void sim_load_destroy (sim_load_t **self_p);

//  Count PATH, granted to this sim and not held yet (being taken), in
//  the next report's groups.
void sim_load_taking (sim_load_t *self, const char *path);

//  The report at NOW_US (monotonic): what STORE holds (lent), rates from
//  the stream's cumulative COUNTERS (lent; NULL: no stream) and the API's
//  REQUESTS read so far, over the time since the last report. The first
//  report's rates are over the time since sim_load_new. A new object.
json_t *sim_load_report (sim_load_t *self, sim_store_t *store,
                         const json_t *counters, uint64_t requests,
                         uint64_t now_us);

//  Self test.
int sim_load_test (bool verbose);

#endif
