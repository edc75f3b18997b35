/*  hs_relay: the requester's side of a claim across instances
    (protocol/federation.md section 5). A sim of this instance asks for
    PATH@INSTANCE, an entity whose home is a peer instance; this ring's
    leader vouches for the sim (its registered key and endpoints) and
    sends the claim on as fed.claim, under a request id that makes it
    idempotent, then answers the sim with what the home decided, in the
    sim's terms: the home's path and names made global. */

#ifndef HS_RELAY_H_INCLUDED
#define HS_RELAY_H_INCLUDED

#include "broker/hs_api.h"
#include "broker/hs_fed.h"
#include "broker/hs_fsm.h"
#include "protocol/api_router.h"

typedef struct _hs_relay_t hs_relay_t;

//  How long a claim waits for its home by default (ttl_ms), and at most.
#define HS_RELAY_TTL_MS 5000
#define HS_RELAY_TTL_MAX_MS 120000

//  A relay sending through FED, vouching from FSM's applied state,
//  recording what it sends and learns through API (fed.intent,
//  fed.outcome), and the hops of each claim in TRACE (NULL: none) under
//  the home's transfer id, TRANSFER@HOME (trace.md). All lent, must
//  outlive it.
hs_relay_t *hs_relay_new (hs_fed_t *fed, hs_fsm_t *fsm, hs_api_t *api,
                          sf_trace_t *trace);

//  Destroy and null the caller's pointer; claims still waiting are
//  answered unavailable.
void hs_relay_destroy (hs_relay_t **self_p);

//  Serve CALL (taken), an authority.request of PATH@INSTANCE where
//  INSTANCE is a peer instance, on this ring's leader at NOW (ms,
//  monotonic). The caller must be the sim it names (its registered key).
void hs_relay_claim (hs_relay_t *self, api_call_t *call, uint64_t now);

//  Send the claims taken since the last call (hs_relay_claim) to their
//  homes: one sim's claims of one home as one fed.claim (the batch form,
//  federation.md section 5). The owner calls it after taking every
//  request waiting.
void hs_relay_send (hs_relay_t *self, uint64_t now);

//  On the leader, once a second or so: claims this ring recorded as sent
//  on (fed.intent) whose outcome is still unknown well after, and that
//  no one here waits for, are withdrawn at their home (fed.withdraw),
//  which answers what it decided or makes the refusal final; the outcome
//  is recorded (fed.outcome), and the sim learns a grant from the feed.
void hs_relay_tick (hs_relay_t *self, uint64_t now);

//  Queue the outcomes learnt (fed.outcome) for the ring, at most every
//  250 ms, so that one commit carries many. Returns true if it queued
//  any (the caller then calls hs_api_submit).
bool hs_relay_flush (hs_relay_t *self, uint64_t now);

//  Serve CALL (taken), an entity.get of PATH@INSTANCE where INSTANCE is a
//  peer instance (federation.md section 7): read at the home (fed.read,
//  linearizable there), answered in this instance's terms (PATH@HOME,
//  this instance's sims by their bare names, the home's as NAME@HOME).
void hs_relay_read (hs_relay_t *self, api_call_t *call, uint64_t now);

//  Add the relay's counters to COUNTERS (lent): claims sent on to their
//  homes (federation_claims_sent) and the fed.claim messages that
//  carried them (federation_claim_messages; fewer under the batch form).
void hs_relay_counters (hs_relay_t *self, json_t *counters);

//  Serve CALL (taken), an entity.checkpoint of a sim of this instance
//  whose paths are PATH@INSTANCE of one peer instance (federation.md
//  section 7): the caller must be the sim; the states go to their home as
//  fed.checkpoint, and its answer comes back in the sim's terms.
void hs_relay_checkpoint (hs_relay_t *self, api_call_t *call, uint64_t now);

//  Serve CALL (taken), an authority.release of PATH@INSTANCE by a sim of
//  this instance (federation.md section 7): the caller must be the sim;
//  its home orphans the entity (fed.release) with the state given, and
//  its answer comes back in the sim's terms.
void hs_relay_release (hs_relay_t *self, api_call_t *call, uint64_t now);

//  Claims sent on and waiting for their home's answer.
size_t hs_relay_waiting (hs_relay_t *self);

#endif
