/*  sim_handoff: the handoff channel of one simulation server
    (protocol/handoff.md). A CURVE ROUTER that only registered sims may
    open a session with (ZAP domain "handoff", kept in step with the
    directory), and a CURVE DEALER per peer that pins the peer's key from
    the directory. Carries bulk copies in credit-limited chunks; answers
    authority HANDOFFs with "refused" until the ring's authority
    operations drive them. */

#ifndef SIM_HANDOFF_H_INCLUDED
#define SIM_HANDOFF_H_INCLUDED

#include "common/sf_error.h"
#include "common/sf_loop.h"
#include "common/sf_trace.h"
#include "peer/sim_grant.h"
#include "peer/sim_store.h"
#include "protocol/handoff_msg.h"

#include <czmq.h>
#include <jansson.h>

typedef struct _sim_handoff_t sim_handoff_t;

//  ZAP domain of the handoff ROUTER.
#define SIM_HANDOFF_DOMAIN "handoff"

//  A copy finished: RESULT (lent) says what went, or FAULT why not.
typedef void (sim_handoff_fn) (void *arg, json_t *result,
                               const sf_fault_t *fault);

//  An authority HANDOFF from sim FROM: ENTITY (lent) holds the final state
//  and the epoch the ring granted this sim. Returns the status to answer
//  (handoff_msg_status_t). FROM is NAME@INSTANCE for another instance's
//  sim; ENTITY's path is then that instance's entity (PATH@INSTANCE here)
//  or this instance's, which the handler tells by what it claimed, and
//  then names the trace in TRACE (SF_TRACE_MAX_ID + 1 bytes, the transfer
//  in decimal when called): TRANSFER@INSTANCE for that instance's.
typedef uint8_t (sim_handoff_offer_fn) (void *arg, const char *from,
                                        const handoff_msg_entity_t *entity,
                                        char *trace);

//  Called when a replica changed from a copy.
typedef void (sim_handoff_changed_fn) (void *arg, sim_entity_t *entity);

//  Bind the ROUTER on ENDPOINT as CERT (lent), admitting sessions through
//  ZAP (lent), applying copies to STORE (lent); NAME is this sim's.
//  Returns NULL with FAULT set if the endpoint cannot be bound.
sim_handoff_t *sim_handoff_new (const char *endpoint, const char *name,
                                zcert_t *cert, zactor_t *zap,
                                sim_store_t *store, sf_fault_t *fault);

//  Destroy the channel (failing nothing: pending copies are dropped) and
//  null the caller's pointer.
void sim_handoff_destroy (sim_handoff_t **self_p);

//  This sim changed its key pair to CERT (lent, must outlive the channel):
//  the ROUTER is bound again with it on the same endpoint, and the DEALERs
//  to peers are made again on next use. Returns 0, or -1 with FAULT set if
//  the endpoint cannot be bound again (the channel is then closed).
int sim_handoff_rekey (sim_handoff_t *self, zcert_t *cert, sf_fault_t *fault);

//  Register the sockets on LOOP (and the peers' as they come).
int sim_handoff_attach (sim_handoff_t *self, sf_loop_t *loop);

//  Call FN with ARG when a copy changes a replica here.
void sim_handoff_set_listener (sim_handoff_t *self, sim_handoff_changed_fn *fn,
                               void *arg);

//  How long, after a peer re-keys, the grants its CHUNKs carry may still
//  name its former key (sim/key_grace; default 0: not at all).
void sim_handoff_set_key_grace (sim_handoff_t *self, uint32_t grace_ms);

//  The ring's signing keys are the COUNT at KEYS (copied), as for
//  sim_stream_set_ring_keys: once any was set, a copied entity becomes a
//  replica only with a grant proven for exactly its (path, epoch) naming
//  the sender's key on this channel (handoff.md section 4).
void sim_handoff_set_ring_keys (sim_handoff_t *self,
                                const sim_grant_key_t *keys, size_t count);

//  Decide on HANDOFFs with FN and ARG (without one, every HANDOFF is
//  refused: authority moves only when the ring grants it).
void sim_handoff_set_offer_handler (sim_handoff_t *self,
                                    sim_handoff_offer_fn *fn, void *arg);

//  Send ENTITY's final state to sim TO, the new authority, at EPOCH, for
//  the ring's TRANSFER (0 if unknown). Returns 0, or -1 if TO cannot be
//  reached (listed without a handoff endpoint; or ENTITY is another
//  instance's and TO is not of that instance). TO not listed yet: kept
//  for it (sim_handoff_on_unknown). An entity of another instance
//  (PATH@INSTANCE) goes by that instance's path. Kept until TO acknowledges it: sent when
//  libzmq has room, again after 1 s unacknowledged, given up after 10 s
//  (handoffs_failed). The answer is counted (handoffs_acked,
//  handoffs_refused_by_peer).
int sim_handoff_send (sim_handoff_t *self, const char *to,
                      const sim_entity_t *entity, uint64_t epoch,
                      uint64_t transfer);

//  Record HANDOFFs and their acknowledgements in TRACE (lent; NULL: none),
//  under the ring's transfer id (trace.md).
void sim_handoff_set_trace (sim_handoff_t *self, sf_trace_t *trace);

//  Directory sweep, as sim_stream's: begin, one set per registered sim,
//  end. ENDPOINT may be NULL (a sim without a handoff channel). A sim of
//  another instance (NAME@INSTANCE, the authority of an entity of this
//  one) may be listed: its HANDOFFs are taken, its copies refused
//  (federation.md section 9).
void sim_handoff_peers_begin (sim_handoff_t *self);
void sim_handoff_peer_set (sim_handoff_t *self, const char *name,
                           const char *key, const char *endpoint);
void sim_handoff_peers_end (sim_handoff_t *self);

//  Admit sim NAME (NAME@INSTANCE, another instance's) with KEY (Z85) at
//  ENDPOINT (NULL: none) until UNTIL_MS (monotonic), whatever the
//  directory says: the former authority of an entity this sim claimed
//  from that instance, whose HANDOFF it waits for (federation.md section
//  5).
void sim_handoff_visit (sim_handoff_t *self, const char *name, const char *key,
                        const char *endpoint, uint64_t until_ms);

//  A HANDOFF was queued for sim NAME, which the directory does not list
//  (yet): the caller reads the directory again. The HANDOFF waits for
//  the sim to be listed, and is given up on as any other.
typedef void (sim_handoff_unknown_fn) (void *arg, const char *name);
void sim_handoff_on_unknown (sim_handoff_t *self, sim_handoff_unknown_fn *fn,
                             void *arg);

//  Copy the entities this sim is the authority of under PREFIX to sim TO,
//  as replicas there; call FN with ARG when TO has acknowledged them all,
//  or on failure (at once when there is nothing to copy, before this
//  returns). Returns 0, or -1 with FAULT set (FN is then not called).
int sim_handoff_copy (sim_handoff_t *self, const char *to, const char *prefix,
                      sim_handoff_fn *fn, void *arg, sf_fault_t *fault);

//  Resend or give up on copies that heard nothing; call on a timer.
void sim_handoff_tick (sim_handoff_t *self, uint64_t now_ms);

//  Counters into OBJECT (added as members).
void sim_handoff_counters (sim_handoff_t *self, json_t *object);

//  Self test; returns 0 on success.
int sim_handoff_test (bool verbose);

#endif
