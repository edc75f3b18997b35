/*  sim_ring: a simulation server's client of its homeserver ring, without
    blocking its loop.

    One CURVE DEALER per ring member, each pinning that member's public
    key. Requests go to the member believed to be the leader (every reply
    names the leader, and any member serves any request, so a wrong guess
    costs one forwarding hop, never an error). Replies are matched by id
    and handed to the caller's callback; a request without a reply within
    its timeout gets SF_ETIMEOUT, and the next one tries another member. */

#ifndef SIM_RING_H_INCLUDED
#define SIM_RING_H_INCLUDED

#include "common/sf_config.h"
#include "common/sf_error.h"
#include "common/sf_loop.h"

#include <czmq.h>
#include <jansson.h>

typedef struct _sim_ring_t sim_ring_t;

//  Called once per request: REPLY (lent) is the whole reply, ok or not, or
//  NULL on timeout; FAULT is NULL on success, else the error (the reply's
//  code and message, or SF_ETIMEOUT).
typedef void (sim_ring_fn) (void *arg, json_t *reply, const sf_fault_t *fault);

//  Connect to the members of CONFIG's ring/member/NAME/{api,key} section
//  as CERT (lent; must outlive the client). Returns NULL with FAULT set if
//  there is no member with an API endpoint or a key cannot be read.
sim_ring_t *sim_ring_new (sf_config_t *config, zcert_t *cert,
                          sf_fault_t *fault);

//  Destroy the client, dropping pending requests without calling back.
void sim_ring_destroy (sim_ring_t **self_p);

//  Register the client's sockets and timer on LOOP. Returns 0 or -1.
int sim_ring_attach (sim_ring_t *self, sf_loop_t *loop);

//  Take the client's sockets and timer off the loop it was attached to,
//  dropping pending calls without calling back. Its timer may still fire
//  once in the loop's current pass (harmlessly): destroy the client only
//  from a later pass.
void sim_ring_detach (sim_ring_t *self);

//  Send OP with the members of ARGS (taken; may be NULL); call FN with ARG
//  when the reply comes or after TIMEOUT_MS. Returns 0, or -1 if it could
//  not be sent (FN is then not called).
int sim_ring_call (sim_ring_t *self, const char *op, json_t **args,
                   int timeout_ms, sim_ring_fn *fn, void *arg);

//  Called for each new change the ring publishes (its index above any seen
//  before), whatever its topic: TOPIC and BODY are lent.
typedef void (sim_ring_event_fn) (void *arg, const char *topic, json_t *body);

//  Whether a change of kind OP on TOPIC is worth parsing, from the head
//  of its event alone; those it is not are only checked in the chain.
typedef bool (sim_ring_wants_fn) (void *arg, const char *topic, const char *op);

//  Follow the ring's events (homeserver-events.md) on the members that
//  have ring/member/NAME/events, calling FN with ARG for the changes
//  WANTS (NULL: all) wants, and only for those. Returns 0.
int sim_ring_follow (sim_ring_t *self, sim_ring_wants_fn *wants,
                     sim_ring_event_fn *fn, void *arg);

//  Add ring_events and ring_events_read to COUNTERS (sim-api.md).
void sim_ring_counters (sim_ring_t *self, json_t *counters);

//  Called when an event shows that events before it were lost (its prev
//  is newer than the last one seen): re-read what you follow.
typedef void (sim_ring_gap_fn) (void *arg);
void sim_ring_on_gap (sim_ring_t *self, sim_ring_gap_fn *fn, void *arg);

//  The index of the newest change seen (0: none yet).
uint64_t sim_ring_event_index (sim_ring_t *self);

//  Whether every change after index AFTER up to THROUGH was seen here,
//  each passed on as it came (no gap in the chain since): what such a
//  change did, the follower knows already.
bool sim_ring_saw (sim_ring_t *self, uint64_t after, uint64_t through);

//  Name of the member requests go to now. Lent.
const char *sim_ring_target (sim_ring_t *self);

#endif
