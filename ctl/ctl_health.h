/*  ctl_health: what is wrong with a ring or a sim, from the statuses its
    daemons gave (protocol/operations.md section 1). Pure: no sockets, so
    it is tested on statuses written by hand; fabricctl asks the daemons
    and prints what this finds, one line per problem. */

#ifndef CTL_HEALTH_H_INCLUDED
#define CTL_HEALTH_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

//  The problems of a ring: MEMBERS (lent) as the asked member's status
//  lists them ([{"name", "id", "api", "role"}]), STATUSES (lent) {NAME:
//  that member's status reply, or a string saying why it gave none};
//  LOADS (lent; may be NULL) the leader's load reply's "homeservers";
//  MAX_LAG the most entries a member's applied index may trail the
//  ring's commit index. A new array of strings, empty when healthy.
json_t *ctl_health_ring (const json_t *members, const json_t *statuses,
                         const json_t *loads, int64_t max_lag);

//  The problems of a sim from its STATUS reply (lent) and its COUNTERS
//  reply (lent; may be NULL), and the sims the ring lists (SIMS, lent,
//  sim.list's "sims"; may be NULL). A new array of strings.
json_t *ctl_health_sim (const json_t *status, const json_t *counters,
                        const json_t *sims);

//  Self test; returns 0 on success.
int ctl_health_test (bool verbose);

#endif
