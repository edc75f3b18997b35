/*  sim_api: the simulation server's client API (protocol/sim-api.md):
    the game side creates entities (through the ring, which records this
    sim as their authority), updates their state, reads them and its
    replicas, and reads the stream's counters. */

#ifndef SIM_API_H_INCLUDED
#define SIM_API_H_INCLUDED

#include "common/sf_trace.h"
#include "peer/sim_handoff.h"
#include "peer/sim_ring.h"
#include "peer/sim_saver.h"
#include "peer/sim_store.h"
#include "peer/sim_stream.h"
#include "protocol/api_router.h"

typedef struct _sim_api_t sim_api_t;

//  What an operation is: answered from what this sim holds, changing
//  nothing (READ); a change of entities, here, in the ring or at another
//  sim (WRITE); about the sim itself: its status, counters, traces and
//  subscriptions (CONTROL).
typedef enum { SIM_OP_READ, SIM_OP_WRITE, SIM_OP_CONTROL } sim_op_kind_t;

//  Who may call an operation. CLIENT: any key the API socket admits
//  (every CURVE client, or only those in sim/clients), which the ZAP
//  handler decides per connection before any request is read.
typedef enum { SIM_OP_CLIENT } sim_op_access_t;

//  Every operation of the sim's API (protocol/sim-api.md, section 3),
//  once: X (id, name, kind, access). sim_api holds each one's argument
//  schema (the fields it takes; any other is refused before the
//  operation runs) and its handler, indexed by the id.
// clang-format off
#define SIM_OP_MAP(X)                                                      \
    X (SIM_OP_STATUS, "status", SIM_OP_CONTROL, SIM_OP_CLIENT)             \
    X (SIM_OP_COUNTERS, "counters", SIM_OP_CONTROL, SIM_OP_CLIENT)         \
    X (SIM_OP_TRACE, "trace", SIM_OP_CONTROL, SIM_OP_CLIENT)               \
    X (SIM_OP_SUBSCRIBE, "subscribe", SIM_OP_CONTROL, SIM_OP_CLIENT)       \
    X (SIM_OP_UNSUBSCRIBE, "unsubscribe", SIM_OP_CONTROL, SIM_OP_CLIENT)   \
    X (SIM_OP_ENTITY_CREATE, "entity.create", SIM_OP_WRITE, SIM_OP_CLIENT) \
    X (SIM_OP_ENTITY_IMPORT, "entity.import", SIM_OP_WRITE, SIM_OP_CLIENT) \
    X (SIM_OP_ENTITY_UPDATE, "entity.update", SIM_OP_WRITE, SIM_OP_CLIENT) \
    X (SIM_OP_ENTITY_DELETE, "entity.delete", SIM_OP_WRITE, SIM_OP_CLIENT) \
    X (SIM_OP_ENTITY_CLAIM, "entity.claim", SIM_OP_WRITE, SIM_OP_CLIENT)   \
    X (SIM_OP_ENTITY_RELEASE, "entity.release", SIM_OP_WRITE,              \
       SIM_OP_CLIENT)                                                      \
    X (SIM_OP_ENTITY_COPY, "entity.copy", SIM_OP_WRITE, SIM_OP_CLIENT)     \
    X (SIM_OP_AUTHORITY_ANSWER, "authority.answer", SIM_OP_WRITE,          \
       SIM_OP_CLIENT)                                                      \
    X (SIM_OP_ENTITY_GET, "entity.get", SIM_OP_READ, SIM_OP_CLIENT)        \
    X (SIM_OP_ENTITY_LIST, "entity.list", SIM_OP_READ, SIM_OP_CLIENT)      \
    X (SIM_OP_ENTITY_MATCH, "entity.match", SIM_OP_READ, SIM_OP_CLIENT)
// clang-format on

#define SIM_OP_ENUM(id, name, kind, access) id,
typedef enum { SIM_OP_MAP (SIM_OP_ENUM) SIM_OP_COUNT } sim_op_id_t;
#undef SIM_OP_ENUM

//  One row of SIM_OP_MAP.
typedef struct {
    sim_op_id_t id;          //  its index in the table
    const char *name;        //  as on the wire
    sim_op_kind_t kind;      //  read, write or control
    sim_op_access_t access;  //  who may call it
} sim_op_t;

//  The operation called NAME, or NULL if there is none. Lent, static.
const sim_op_t *sim_op_find (const char *name);

//  Most entities one entity.import takes (the ring's entity.import bound).
#define SIM_API_MAX_IMPORT 1000

//  What the API serves from; all lent, all outlive the API. STREAM may be
//  NULL (a sim without a state endpoint).
typedef struct {
    const char *name;        //  this sim's name
    api_router_t *router;    //  the API socket
    sim_store_t *store;      //  entities
    sim_stream_t *stream;    //  state stream, or NULL
    sim_handoff_t *handoff;  //  handoff channel, or NULL
    sim_ring_t *ring;        //  the homeserver ring
    sf_trace_t *trace;       //  hop records (trace.md)
    sim_saver_t *saver;      //  checkpoints in the ring, or NULL
    uint64_t started_ms;     //  monotonic start, for uptime
    zactor_t *zap;           //  the process's ZAP handler, or NULL
} sim_api_config_t;

//  A new API over CONFIG (copied).
sim_api_t *sim_api_new (const sim_api_config_t *config);

//  Destroy the API (dropping calls waiting on the ring) and null the
//  caller's pointer.
void sim_api_destroy (sim_api_t **self_p);

//  The ring client was replaced (key rotation): use RING (lent) from now.
void sim_api_set_ring (sim_api_t *self, sim_ring_t *ring);

//  The ring lists COUNT signing keys (sim.list's ring_keys). From the
//  first, every entity this sim holds is streamed only with the grant of
//  its epoch (grants.md section 5): from the reply or event that made
//  this sim its authority, else asked of the ring (entity.grant).
void sim_api_set_ring_keys (sim_api_t *self, size_t count);

//  This sim's CURVE public key is KEY (32 bytes, copied), at start and
//  after a rotation: grants naming another key are asked for again.
void sim_api_set_key (sim_api_t *self, const uint8_t *key);

//  The sim registered with the ring (REGISTERED_MS) or lost it (0).
void sim_api_set_registered (sim_api_t *self, uint64_t registered_ms);

//  The ring answered a heartbeat at AT_MS (monotonic); heartbeats go
//  every EVERY_MS. status shows how long ago (a health check's figure).
void sim_api_set_beaten (sim_api_t *self, uint64_t at_ms, uint64_t every_ms);

//  ENTITY changed (here or from the stream): tell its subscribers.
void sim_api_notify (sim_api_t *self, const sim_entity_t *entity);

//  Entities granted to this sim whose state it still waits for: how
//  many, and FN (if not NULL) called with ARG for each path.
size_t sim_api_taking (sim_api_t *self,
                       void (*fn) (void *arg, const char *path), void *arg);

//  The ring deleted the entity at PATH: drop its replica here (not an
//  entity this sim is the authority of) and tell subscribers.
void sim_api_forget (sim_api_t *self, const char *path);

//  The ring changed the authority of an entity, or asks this sim (OP and
//  its RESULT, lent, from the ring's events): an entity this sim held but
//  granted to another stops being streamed from here (it was fenced by the
//  new epoch); a pending ask addressed to this sim goes to the
//  subscribers of its path as an "ask" event, for the game to answer.
//  NODE (may be NULL) is the homeserver that published the event.
void sim_api_authority_event (sim_api_t *self, const char *op,
                              const json_t *result, const char *node);

//  The ring gives PATH to AUTHORITY (NULL: to none) at EPOCH, as a read of
//  it says: an entity this sim holds at an older epoch is fenced (its
//  final state handed to AUTHORITY); a grant to this sim it did not know
//  of is taken.
void sim_api_seen (sim_api_t *self, const char *path, uint64_t epoch,
                   const char *authority);

//  This sim holds ENTITY at PATH, as its store says (resumed from the
//  local checkpoint, and the ring confirmed it is still ours).
void sim_api_hold (sim_api_t *self, const char *path);

//  A HANDOFF from sim FROM (sim_handoff's offer handler, ARG the API):
//  taken if this sim's claim of the entity was granted at its epoch with
//  FROM as the former authority; kept a while if the grant has not come
//  yet. Returns the handoff_msg_status_t to answer.
uint8_t sim_api_offer (void *arg, const char *from,
                       const handoff_msg_entity_t *entity, char *trace);

//  Most claims sent to the ring in one request (their paths fit well in
//  one ring command, homeserver-api.md).
#define SIM_API_MAX_BATCH 128

//  Send the claims taken since the last flush to the ring: one alone, more
//  as batch requests (homeserver-api.md, the batch form of
//  authority.request). Call after each turn of reading the API socket.
void sim_api_flush (sim_api_t *self);

//  Claims whose final state did not come in time start from the ring's
//  checkpoint; early HANDOFFs nobody claimed are dropped. Call on a timer.
void sim_api_tick (sim_api_t *self, uint64_t now_ms);

//  Check with the ring what this sim is still the authority of: an entity
//  it holds that the ring gives to another sim (or to none, or deleted)
//  goes as the ring's event would have said (its final state handed over,
//  this sim fenced), with or without the ring's events. Call with each
//  heartbeat reply's TAKEN_INDEX (the raft index of the last change that
//  took an entity from this sim): the ring's list of what this sim holds
//  is read only the first time after registering and when that index
//  moved past the one the last complete check covered; a check still on
//  its way is not started again.
void sim_api_check (sim_api_t *self, uint64_t taken_index);

//  True while a claim of a foreign entity's outcome is unknown here (its
//  answer was lost): the ring's feed may bring it (fed.outcome).
bool sim_api_awaits_outcomes (sim_api_t *self);

//  Ask the homes of the foreign entities this sim holds (PATH@INSTANCE)
//  whether they are still its, every 3 s at most, at NOW_MS (monotonic):
//  one that was granted on and whose fence never came is let go
//  (federation.md section 6).
void sim_api_check_foreign (sim_api_t *self, uint64_t now_ms);

//  Serve one request waiting on the API socket. Returns 0.
int sim_api_handle (sim_api_t *self);

//  The sim's status and counters, as the ops "status" and "counters"
//  answer them (the counters object alone). New references.
json_t *sim_api_status (sim_api_t *self);
json_t *sim_api_counters (sim_api_t *self);

#endif
