/*  hs_events: publishes every applied change (protocol/homeserver-events.md).

    A PUB socket (CURVE, same client policy as the API) sends one message
    per successful command: the topic frame names what changed
    ("entity:/world/a", "sim:sim1", "player:ada"), the body frame is JSON
    with the log index of the change and of the previous one published, so
    a subscriber can tell when it missed something and re-read. */

#ifndef HS_EVENTS_H_INCLUDED
#define HS_EVENTS_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>
#include <jansson.h>
#include <raft.h>

typedef struct _hs_events_t hs_events_t;

//  Bind the PUB on ENDPOINT serving with CERT (lent), for the member
//  called NODE (copied; named in every event). NULL with FAULT.
hs_events_t *hs_events_new (const char *endpoint, zcert_t *cert,
                            const char *node, sf_fault_t *fault);

//  Destroy and null the caller's pointer.
void hs_events_destroy (hs_events_t **self_p);

//  The endpoint as bound. Lent.
const char *hs_events_endpoint (hs_events_t *self);

//  True if some subscriber listens now (subscriptions are read here, as
//  they come: call it before each publish).
bool hs_events_wanted (hs_events_t *self);

//  How many events were published since start.
uint64_t hs_events_published (hs_events_t *self);

//  The topic of the change OP made with RESULT (lent): "entity:PATH",
//  "ring:move/FROM/TO/GROUP", "sim:NAME", "player:NAME" or "ring:". The
//  caller frees.
char *hs_events_topic (const char *op, const json_t *result);

//  The body of the change OP made at INDEX with RESULT (lent), PREV being
//  the change before it, on member NODE. A new reference.
json_t *hs_events_body (raft_index index, raft_index prev, const char *op,
                        const json_t *result, const char *node);

//  Publish that OP, applied at INDEX, gave RESULT (lent); PREV is the index
//  of the change published before it (0 if none).
void hs_events_publish (hs_events_t *self, raft_index index, raft_index prev,
                        const char *op, const json_t *result);

#endif
