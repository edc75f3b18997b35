/*  hs_api: the homeserver's JSON request handler (homeserver-api.md).

    Any member serves any request. Writes become ring commands: the leader
    submits them and answers once they are applied; a follower forwards
    them to the leader (op "ring.forward", accepted from members only) and
    relays the answer. Reads are linearizable by default: the leader
    batches concurrent reads behind one barrier entry and answers them from
    the state machine once the barrier is applied (Raft thesis 6.4);
    followers forward them. "consistency": "stale" answers locally. Each
    operation is served as its row of HS_OP_MAP (hs_fsm.h) says: its
    kind, who may call it, and for control operations a handler here.

    The owner feeds it calls from the API socket, applied commands from the
    ring, and replies arriving on the forwarding sockets, and calls
    hs_api_progress after every ring activity. */

#ifndef HS_API_H_INCLUDED
#define HS_API_H_INCLUDED

#include "broker/hs_balance.h"
#include "broker/hs_fsm.h"
#include "broker/hs_kept.h"
#include "broker/hs_ring.h"
#include "common/sf_trace.h"
#include "protocol/api_router.h"

#include <czmq.h>

typedef struct _hs_api_t hs_api_t;

//  Milliseconds a forwarded request waits for the leader's answer.
#define HS_API_FORWARD_TIMEOUT 5000

//  A new handler for node NAME (raft ID) over RING, FSM and ROUTER (all
//  lent), forwarding as CERT (lent).
hs_api_t *hs_api_new (const char *name, raft_id id, hs_ring_t *ring,
                      hs_fsm_t *fsm, api_router_t *router, zcert_t *cert);

//  Destroy the handler, dropping unanswered calls; null the pointer.
void hs_api_destroy (hs_api_t **self_p);

//  Know ring member NAME with raft ID, API endpoint API (may be NULL: no
//  forwarding to it) and public KEY. Returns the new forwarding socket to
//  register on the loop, or NULL (none needed, or ID already known).
zsock_t *hs_api_add_member (hs_api_t *self, const char *name, raft_id id,
                            const char *api, const char *raft, const char *key);

//  Forget ring member ID (removed from the ring): its key no longer
//  counts as a member's (ring.forward), and requests forwarded to it are
//  left to time out. Returns its forwarding socket, which the caller
//  takes (take it off the loop, then destroy it), or NULL. This node
//  itself is never forgotten.
zsock_t *hs_api_remove_member (hs_api_t *self, raft_id id);

//  Treat principal KEY as an administrator.
void hs_api_add_admin (hs_api_t *self, const char *key);

//  Handle CALL (taken) at monotonic time NOW.
void hs_api_handle (hs_api_t *self, api_call_t *call, uint64_t now);

//  Submit the writes taken since the last call, as one batch. The owner
//  calls it after taking every request waiting.
void hs_api_submit (hs_api_t *self, uint64_t now);

//  Orphan the entities of sims whose last heartbeat is older than
//  LEASE_MS (0: never), as the leader. The leader's loop wakes at least
//  every TICK_MS (the raft heartbeat): a longer gap is a pause.
void hs_api_set_sim_lease (hs_api_t *self, uint64_t lease_ms, uint64_t tick_ms);

//  Record transfers' requests, answers and replies in TRACE (lent; NULL:
//  none) and serve the op "trace" from it (trace.md).
void hs_api_set_trace (hs_api_t *self, sf_trace_t *trace);

//  Adds the daemon's own counters (its raft link's, its ZAP handler's) to
//  COUNTERS (a JSON object, lent) when the op "counters" is served.
typedef void (hs_api_counters_fn) (void *context, json_t *counters);
void hs_api_set_counters (hs_api_t *self, hs_api_counters_fn *counters_fn,
                          void *context);

//  This member's status, as the op "status" answers it at NOW. A new
//  reference.
json_t *hs_api_status (hs_api_t *self, uint64_t now);

//  This member's counters, as the op "counters" answers them. A new
//  reference.
json_t *hs_api_counters (hs_api_t *self);

//  Write the API's metrics families into PROM: requests' and commits'
//  latency histograms (http.md section 3).
void hs_api_metrics (hs_api_t *self, sf_prom_t *prom);

//  Serve events.read from KEPT (lent; NULL: nothing kept).
void hs_api_set_kept (hs_api_t *self, hs_kept_t *kept);

//  Serve the ops backup.begin, backup.read and backup.end (OP) with ARGS:
//  the daemon takes *CALL and answers it (hs_backup).
typedef void (hs_api_backup_fn) (void *context, api_call_t **call,
                                 const char *op, const json_t *args);
void hs_api_set_backup (hs_api_t *self, hs_api_backup_fn *backup_fn,
                        void *context);

//  Name this member's events endpoint (as bound; NULL: none) in status.
void hs_api_set_events (hs_api_t *self, const char *endpoint);

//  This ring's instance name (federation.md section 1; NULL: none), for
//  status.
void hs_api_set_instance (hs_api_t *self, const char *instance);

//  A request naming a foreign NAME (NAME@INSTANCE, federation.md sections
//  4, 5 and 7) of KIND: "player" (player.key), "path" (an
//  authority.request of PATH@INSTANCE, on the leader only), "read" (an
//  entity.get of PATH@INSTANCE), "checkpoint" (an entity.checkpoint
//  whose first path is PATH@INSTANCE) or "release" (an authority.release
//  of PATH@INSTANCE). The daemon takes *CALL and
//  answers it (through federation), or leaves it for the ring with the
//  name made local (a name of this instance).
typedef void (hs_api_foreign_fn) (void *context, api_call_t **call,
                                  const char *kind, const char *name);
void hs_api_set_foreign (hs_api_t *self, hs_api_foreign_fn *foreign_fn,
                         void *context);

//  Serve CALL (taken), a fed.claim that peer instance INSTANCE's member
//  sent over federation (federation.md section 5): on the leader, a ring
//  command that names INSTANCE as the instance vouching (whatever the
//  request says), answered once committed, on the socket it came on;
//  elsewhere not_leader, naming the leader.
void hs_api_submit_peer (hs_api_t *self, api_call_t *call, const char *instance,
                         uint64_t now);

//  On the leader, queue OP with ARGS (taken) as a command of the ring's
//  own, answered by nobody (fed.intent, fed.outcome), for the next
//  hs_api_submit. Returns true if queued; false elsewhere.
bool hs_api_submit_own (hs_api_t *self, const char *op, json_t *args);

//  Whether a sim whose last heartbeat this ring committed at
//  HEARTBEAT_MS (wall clock) holds its lease, by this leader's word
//  (federation.md section 6): 1 held, 0 expired, or -1 with FAULT:
//  not_leader (naming the leader), or unavailable while this leader has
//  not led for a whole lease (no sim could beat meanwhile).
int hs_api_sim_lease (hs_api_t *self, uint64_t heartbeat_ms, uint64_t now,
                      sf_fault_t *fault);

//  This member's load report (load.md section 2), every second: FIGURES
//  (taken: what the daemon measures, CPU, memory, the log's size) plus
//  the API's and the ring's (commits per second, commit p99, apply lag,
//  pending reads, requests per second). The leader keeps its own; any
//  other member sends its report to the leader (load.member).
void hs_api_report_load (hs_api_t *self, json_t *figures, uint64_t now);

//  Balance the sims' load with CONFIG (load.md section 5) as leader.
void hs_api_set_balance (hs_api_t *self, const hs_balance_config_t *config);

//  As leader, a balancer's round if one is due at NOW: its decisions
//  queued for the next hs_api_submit.
void hs_api_balance (hs_api_t *self, uint64_t now);

//  A balance.move was applied at INDEX with RESULT (lent).
void hs_api_balance_applied (hs_api_t *self, const json_t *result,
                             raft_index index);

//  How long an ask transfer waits for the authority's answer unless the
//  request says (authority.request timeout_ms).
void hs_api_set_ask_timeout (hs_api_t *self, uint64_t timeout_ms);

//  Let any key register a new sim name if OPEN (homeserver/registration
//  = open); else a new name needs a join token or an administrator
//  (grants.md section 6). As leader, this member decides for the ring.
void hs_api_set_registration_open (hs_api_t *self, bool open);

//  True if a client here may be answered with the result of the command
//  at INDEX: its own write's, or any ask's decision (an ask waits for a
//  later command).
bool hs_api_awaits (hs_api_t *self, raft_index index);

//  The command at INDEX (written in TERM) was applied with RESULT (lent),
//  or failed with FAULT when RESULT is NULL.
void hs_api_applied (hs_api_t *self, raft_index index, raft_term term,
                     const json_t *result, const sf_fault_t *fault);

//  After ring activity: answer reads whose barrier is applied, fail what
//  lost its leader, time out forwards, submit the next read barrier.
void hs_api_progress (hs_api_t *self, uint64_t now);

//  How to send a read probe to member TO (hs_link_send_probe), with
//  CONTEXT; without one, linearizable reads use barrier entries.
typedef void (hs_api_prober_fn) (void *context, raft_id to, raft_term term,
                                 uint64_t seq);
void hs_api_set_prober (hs_api_t *self, hs_api_prober_fn *prober,
                        void *context);

//  Member FROM acknowledged read probe SEQ while in TERM.
void hs_api_probe_ack (hs_api_t *self, raft_id from, raft_term term,
                       uint64_t seq, uint64_t now);

//  The forwarding sockets (one DEALER per member with an API endpoint), to
//  register on the loop; NULL-terminated, lent.
zsock_t **hs_api_forward_sockets (hs_api_t *self);

//  Handle a reply waiting on forwarding socket SOCKET.
void hs_api_forward_reply (hs_api_t *self, zsock_t *socket);

#endif
