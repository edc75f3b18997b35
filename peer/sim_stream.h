/*  sim_stream: the state stream of one simulation server
    (protocol/state-datagram.md): a DISH bound on the state endpoint
    receives sealed datagrams from every peer; a RADIO per peer sends to
    it. Authoritative entities that change go to every peer under credit;
    updates from peers are checked, counted and applied to the store's
    replicas.

    The daemon feeds it the directory (peers, their keys, endpoints and
    registration times, from the ring), the clock, and the entities that
    changed; it calls back when a replica changes. */

#ifndef SIM_STREAM_H_INCLUDED
#define SIM_STREAM_H_INCLUDED

#include "common/sf_error.h"
#include "common/sf_trace.h"
#include "peer/sim_grant.h"
#include "peer/sim_store.h"

#include <czmq.h>
#include <jansson.h>

typedef struct _sim_stream_t sim_stream_t;

//  The RADIO/DISH group of state datagrams, and the largest datagram the
//  UDP transport carries: libzmq frames a UDP message as one byte of group
//  length, the group, then the body, and drops anything over 8,192 bytes.
#define SIM_STREAM_GROUP "sf"
#define SIM_STREAM_MAX_DATAGRAM (8192 - 1 - 2)

//  The receive buffer a sim asks for by default (sim/receive_buffer), and
//  the window it grants each sender by default (sim/credit).
#define SIM_STREAM_RECEIVE_BUFFER 4194304
#define SIM_STREAM_CREDIT 64

typedef struct {
    const char *name;       //  this sim's name, to skip it in the directory
    size_t datagram_size;   //  STATE_MSG_MIN_SIZE..SIM_STREAM_MAX_DATAGRAM
    uint32_t credit;        //  window granted to each sender, 1..65535
    uint32_t max_window;    //  largest window we use as a sender
    const char *watch;      //  comma-separated path prefixes to replicate
    uint32_t key_grace_ms;  //  a re-keyed peer's old key stays accepted
    size_t receive_buffer;  //  bytes asked for the DISH's socket, 0: as is
} sim_stream_config_t;

//  Called when the replica ENTITY changed from the stream.
typedef void (sim_stream_fn) (void *arg, sim_entity_t *entity);

//  Bind the DISH on ENDPOINT, acting as CERT (lent, must outlive the
//  stream), applying to STORE (lent). Returns NULL with FAULT set if the
//  endpoint cannot be bound or the configuration is out of range.
sim_stream_t *sim_stream_new (const char *endpoint, zcert_t *cert,
                              sim_store_t *store,
                              const sim_stream_config_t *config,
                              sf_fault_t *fault);

//  Destroy the stream and null the caller's pointer.
void sim_stream_destroy (sim_stream_t **self_p);

//  A file descriptor that becomes readable when datagrams wait on the
//  DISH: poll it (sf_loop_fd, or poll (2)),
//  then call sim_stream_receive. The DISH itself must not be given to
//  zmq_poll: it is a thread-safe socket, and libzmq then builds and tears
//  down a whole poller (an eventfd and its system calls) at every call.
int sim_stream_fd (sim_stream_t *self);

//  Call FN with ARG whenever a replica changes.
void sim_stream_set_listener (sim_stream_t *self, sim_stream_fn *fn, void *arg);

//  The ring's signing keys are the COUNT at KEYS (copied), as the ring
//  lists them (sim.list's ring_keys, sim_grant_keys_from_json). Once any
//  key was set, an update applies only with a grant proven for exactly
//  its (path, epoch) naming its sender (state-datagram.md section 5), and
//  an authoritative entity is sent only with its own grant (sim_store_
//  set_grant, then sim_stream_changed); before, neither is asked for.
void sim_stream_set_ring_keys (sim_stream_t *self, const sim_grant_key_t *keys,
                               size_t count);

//  Start sending, in SESSION (state-datagram.md section 4).
void sim_stream_start (sim_stream_t *self, uint64_t session);

//  This sim changed its key pair to CERT (lent, must outlive the stream)
//  and registered it, starting SESSION: every peer's secret is computed
//  again, what was in flight or acknowledged is forgotten, and every
//  authoritative entity is due again. Datagrams peers still seal to the
//  old key are dropped (wrong_receiver) and sent again once they have
//  learned the new one from the ring.
void sim_stream_rekey (sim_stream_t *self, zcert_t *cert, uint64_t session);

//  This sim's session, 0 before sim_stream_start.
uint64_t sim_stream_session (sim_stream_t *self);

//  Directory updates come as one sweep: begin, one set per registered
//  sim (ourselves included, skipped), end. A peer whose key or
//  registration changed starts afresh; one not set in a sweep is dropped.
void sim_stream_peers_begin (sim_stream_t *self);
int sim_stream_peer_set (sim_stream_t *self, const char *name, const char *key,
                         const char *endpoint, uint64_t registered_ms,
                         sf_fault_t *fault);
void sim_stream_peers_end (sim_stream_t *self);

//  The authoritative ENTITY changed: due to every peer.
void sim_stream_changed (sim_stream_t *self, sim_entity_t *entity);

//  Our ENTITY has a new grant (sim_store_set_grant), maybe of the same
//  epoch as the one peers acknowledged (after a rotation of our key, the
//  ring's grant names the new one): it goes before the entity's next
//  update to every peer, and the entity is due.
void sim_stream_grant_changed (sim_stream_t *self, sim_entity_t *entity);

//  Bytes left for the state of an update of PATH in a datagram.
size_t sim_stream_state_limit (sim_stream_t *self, const char *path);

//  Read the datagrams waiting on the DISH, apply them, and acknowledge.
//  Returns true if it stopped before the DISH was empty (a flood: more
//  than SIM_STREAM_DRAIN datagrams), in which case the descriptor may not
//  become readable again by itself: call again soon (from a timer).
bool sim_stream_receive (sim_stream_t *self, uint64_t now_us);

//  Most datagrams one sim_stream_receive takes.
#define SIM_STREAM_DRAIN 4096

//  Send what credit allows, declare lost what timed out, and refresh
//  acknowledgements. Call after changes and on a short timer.
void sim_stream_flush (sim_stream_t *self, uint64_t now_us);

//  Record in TRACE (lent; NULL: none) the hops of traced updates.
void sim_stream_set_trace (sim_stream_t *self, sf_trace_t *trace);

//  Trace the update ENTITY just had, as trace ID (trace.md, Case 3): for
//  each peer, the datagram that first carries it ("update" sent) and the
//  first ACK that covers that datagram ("ack" received). At most
//  SIM_STREAM_TRACES are followed at once; a trace not acknowledged
//  within 10 s is dropped. Returns 0, or -1 if no peer is known or too
//  many are followed.
int sim_stream_trace (sim_stream_t *self, const char *id,
                      const sim_entity_t *entity);
#define SIM_STREAM_TRACES 64

//  Counters, as a new JSON object (caller decrefs).
json_t *sim_stream_counters (sim_stream_t *self);

//  Per-peer view, as a new JSON array (caller decrefs).
json_t *sim_stream_peers (sim_stream_t *self);

#endif
