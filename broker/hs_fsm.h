/*  hs_fsm: the ring's state machine, in an in-memory SQLite database.

    Tables for entities (path, owner, authority, master, rule, epoch,
    checkpoint), players (id, key), simulation servers (id, key, endpoints,
    load, heartbeat) and pending authority transfers. Commands
    (protocol/ring-commands.md) are applied in log order, each yielding a
    result or a stable error, identically on every member: everything an
    application needs is in the command, never in the member's clock or
    configuration. Snapshots are the database image (sqlite3_serialize);
    restoring one replaces the database (sqlite3_deserialize). Every SQL
    statement is prepared when a database opens, from one table in
    hs_fsm.c, and run by name.

    Durability comes from the ring's log and snapshots, not from this
    database: after a restart it is rebuilt from the last snapshot and the
    log. */

#ifndef HS_FSM_H_INCLUDED
#define HS_FSM_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>
#include <jansson.h>
#include <raft.h>

typedef struct _hs_fsm_t hs_fsm_t;

//  What an operation is: served from the applied state (READ), a ring
//  command (WRITE), or carried out by hs_api itself (CONTROL; it may
//  submit ring commands of its own, as cluster.add does).
typedef enum { HS_OP_READ, HS_OP_WRITE, HS_OP_CONTROL } hs_op_kind_t;

//  Who may call an operation. SIM: the sim its "sim" argument names (its
//  registered key); MASTER: the master of the entity at its "path"; both
//  checked against the applied state. An administrator may do anything.
typedef enum {
    HS_OP_ANYONE,
    HS_OP_SIM,
    HS_OP_MASTER,
    HS_OP_ADMIN,
    HS_OP_MEMBER,  //  a ring member's key
    HS_OP_PEER     //  a peer instance's member, over federation only
} hs_op_access_t;

//  Every operation of the homeserver API (protocol/homeserver-api.md,
//  section 7), once: X (id, name, kind, access, route). hs_fsm holds every
//  operation's argument schema (its fields and their check, hs_fsm_check)
//  and the handler of each READ and WRITE (and of cluster.add's command);
//  hs_api the handler of each CONTROL; all indexed by the id.
// clang-format off
#define HS_OP_MAP(X)                                                        \
    X (HS_OP_STATUS, "status", HS_OP_CONTROL, HS_OP_ANYONE,                 \
       "GET /v1/status")                                                    \
    X (HS_OP_COUNTERS, "counters", HS_OP_CONTROL, HS_OP_ANYONE,             \
       "GET /v1/counters")                                                  \
    X (HS_OP_TRACE, "trace", HS_OP_CONTROL, HS_OP_ANYONE,                   \
       "GET /v1/trace/{trace}")                                             \
    X (HS_OP_CLUSTER_ADD, "cluster.add", HS_OP_CONTROL, HS_OP_ADMIN,        \
       "POST /v1/cluster/members")                                          \
    X (HS_OP_CLUSTER_REMOVE, "cluster.remove", HS_OP_CONTROL, HS_OP_ADMIN,  \
       "POST /v1/cluster/remove")                                           \
    X (HS_OP_CLUSTER_TRANSFER, "cluster.transfer", HS_OP_CONTROL, HS_OP_ADMIN,\
       "POST /v1/cluster/transfer")                                         \
    X (HS_OP_RING_FORWARD, "ring.forward", HS_OP_CONTROL, HS_OP_MEMBER,     \
       NULL)                                                                \
    X (HS_OP_LOAD, "load", HS_OP_CONTROL, HS_OP_ANYONE,                     \
       "GET /v1/load")                                                      \
    X (HS_OP_LOAD_MEMBER, "load.member", HS_OP_CONTROL, HS_OP_MEMBER,       \
       NULL)                                                                \
    X (HS_OP_PLAYER_REGISTER, "player.register", HS_OP_WRITE, HS_OP_ANYONE, \
       "POST /v1/players")                                                  \
    X (HS_OP_PLAYER_KEY, "player.key", HS_OP_READ, HS_OP_ANYONE,            \
       "GET /v1/players/{player}")                                          \
    X (HS_OP_SIM_REGISTER, "sim.register", HS_OP_WRITE, HS_OP_ANYONE,       \
       "POST /v1/sims")                                                     \
    X (HS_OP_SIM_HEARTBEAT, "sim.heartbeat", HS_OP_WRITE, HS_OP_SIM,        \
       "POST /v1/sims/{sim}/heartbeat")                                     \
    X (HS_OP_SIM_LIST, "sim.list", HS_OP_READ, HS_OP_ANYONE,                \
       "GET /v1/sims")                                                      \
    X (HS_OP_SIM_EXPIRE, "sim.expire", HS_OP_WRITE, HS_OP_ADMIN,            \
       "POST /v1/sims/{sim}/expire")                                        \
    X (HS_OP_ENTITY_CREATE, "entity.create", HS_OP_WRITE, HS_OP_ANYONE,     \
       "PUT /v1/entities/{path}")                                           \
    X (HS_OP_ENTITY_IMPORT, "entity.import", HS_OP_WRITE, HS_OP_ANYONE,     \
       "POST /v1/import")                                                   \
    X (HS_OP_ENTITY_CHECKPOINT, "entity.checkpoint", HS_OP_WRITE, HS_OP_SIM,\
       "POST /v1/checkpoints")                                              \
    X (HS_OP_ENTITY_GET, "entity.get", HS_OP_READ, HS_OP_ANYONE,            \
       "GET /v1/entities/{path}")                                           \
    X (HS_OP_ENTITY_LIST, "entity.list", HS_OP_READ, HS_OP_ANYONE,          \
       "GET /v1/entities")                                                  \
    X (HS_OP_ENTITY_SET_RULE, "entity.set_rule", HS_OP_WRITE, HS_OP_MASTER, \
       "PUT /v1/rules/{path}")                                              \
    X (HS_OP_ENTITY_DELETE, "entity.delete", HS_OP_WRITE, HS_OP_MASTER,     \
       "DELETE /v1/entities/{path}")                                        \
    X (HS_OP_AUTHORITY_REQUEST, "authority.request", HS_OP_WRITE, HS_OP_SIM,\
       "POST /v1/authority/request")                                        \
    X (HS_OP_AUTHORITY_ANSWER, "authority.answer", HS_OP_WRITE, HS_OP_SIM,  \
       "POST /v1/authority/answer")                                         \
    X (HS_OP_AUTHORITY_EXPIRE, "authority.expire", HS_OP_WRITE, HS_OP_ADMIN,\
       "POST /v1/authority/expire")                                         \
    X (HS_OP_AUTHORITY_RELEASE, "authority.release", HS_OP_WRITE, HS_OP_SIM,\
       "POST /v1/authority/release")                                        \
    X (HS_OP_ENTITY_GRANT, "entity.grant", HS_OP_READ, HS_OP_ANYONE,        \
       "GET /v1/grants/{path}")                                             \
    X (HS_OP_RING_KEY, "ring.key", HS_OP_WRITE, HS_OP_ADMIN,                \
       "POST /v1/ring/key")                                                 \
    X (HS_OP_RING_ROTATE_KEY, "ring.rotate_key", HS_OP_WRITE, HS_OP_ADMIN,  \
       "POST /v1/ring/rotate_key")                                          \
    X (HS_OP_TOKEN_CREATE, "token.create", HS_OP_WRITE, HS_OP_ADMIN,        \
       "POST /v1/join_tokens")                                              \
    X (HS_OP_ACCESS_CREATE, "access.create", HS_OP_WRITE, HS_OP_ADMIN,      \
       "POST /v1/access")                                                   \
    X (HS_OP_ACCESS_REVOKE, "access.revoke", HS_OP_WRITE, HS_OP_ADMIN,      \
       "DELETE /v1/access/{token_id}")                                      \
    X (HS_OP_ACCESS_LIST, "access.list", HS_OP_READ, HS_OP_ADMIN,           \
       "GET /v1/access")                                                    \
    X (HS_OP_FED_CLAIM, "fed.claim", HS_OP_WRITE, HS_OP_PEER,               \
       NULL)                                                                \
    X (HS_OP_FED_FENCED, "fed.fenced", HS_OP_WRITE, HS_OP_PEER,             \
       NULL)                                                                \
    X (HS_OP_FED_WITHDRAW, "fed.withdraw", HS_OP_WRITE, HS_OP_PEER,         \
       NULL)                                                                \
    X (HS_OP_FED_EXPIRED, "fed.expired", HS_OP_WRITE, HS_OP_PEER,           \
       NULL)                                                                \
    X (HS_OP_FED_CHECKPOINT, "fed.checkpoint", HS_OP_WRITE, HS_OP_PEER,     \
       NULL)                                                                \
    X (HS_OP_FED_RELEASE, "fed.release", HS_OP_WRITE, HS_OP_PEER,           \
       NULL)                                                                \
    X (HS_OP_FED_INTENT, "fed.intent", HS_OP_WRITE, HS_OP_ADMIN,            \
       NULL)                                                                \
    X (HS_OP_FED_OUTCOME, "fed.outcome", HS_OP_WRITE, HS_OP_ADMIN,          \
       NULL)                                                                \
    X (HS_OP_SIM_DRAIN, "sim.drain", HS_OP_WRITE, HS_OP_ADMIN,              \
       "POST /v1/sims/{sim}/drain")                                         \
    X (HS_OP_BALANCE_MOVE, "balance.move", HS_OP_WRITE, HS_OP_ADMIN,        \
       "POST /v1/balance/move")                                             \
    X (HS_OP_BALANCE_MOVES, "balance.moves", HS_OP_READ, HS_OP_ANYONE,      \
       "GET /v1/balance/moves")                                             \
    X (HS_OP_EVENTS_READ, "events.read", HS_OP_CONTROL, HS_OP_ANYONE,       \
       "GET /v1/changes")                                                   \
    X (HS_OP_BACKUP_BEGIN, "backup.begin", HS_OP_CONTROL, HS_OP_ADMIN,      \
       "POST /v1/backups")                                                  \
    X (HS_OP_BACKUP_READ, "backup.read", HS_OP_CONTROL, HS_OP_ADMIN,        \
       "GET /v1/backups/{backup}")                                          \
    X (HS_OP_BACKUP_END, "backup.end", HS_OP_CONTROL, HS_OP_ADMIN,          \
       "DELETE /v1/backups/{backup}")
// clang-format on

#define HS_OP_ENUM(id, name, kind, access, route) id,
typedef enum { HS_OP_MAP (HS_OP_ENUM) HS_OP_COUNT } hs_op_id_t;
#undef HS_OP_ENUM

//  One row of HS_OP_MAP.
typedef struct {
    hs_op_id_t id;          //  its index in the table
    const char *name;       //  as on the wire
    hs_op_kind_t kind;      //  read, write or control
    hs_op_access_t access;  //  who may call it
    const char *route;      //  its HTTP method and route (http.md section
                            //  4), or NULL: the ring's own traffic
} hs_op_t;

//  The operation called NAME, or NULL if there is none. Lent, static.
const hs_op_t *hs_op_find (const char *name);

//  The operation ID. Lent, static.
const hs_op_t *hs_op_get (hs_op_id_t id);

//  Most entities one entity.import command creates.
#define HS_FSM_MAX_IMPORT 1000

//  Most paths one authority.request of the batch form decides.
#define HS_FSM_MAX_REQUESTS 256

//  A new, empty state machine. NULL with FAULT set if SQLite fails.
hs_fsm_t *hs_fsm_new (sf_fault_t *fault);

//  Destroy it and null the caller's pointer.
void hs_fsm_destroy (hs_fsm_t **self_p);

//  Check ARGS against the schema of OP (any operation of HS_OP_MAP)
//  before it is submitted or served, so malformed requests fail fast: no
//  field beyond the schema's ("op", "id", and a read's "consistency"
//  besides), then each value. Returns 0, or -1 with FAULT naming the
//  field (unknown_op if there is no operation OP).
int hs_fsm_check (const char *op, const json_t *args, sf_fault_t *fault);

//  Apply the command DATA (SIZE bytes) at log INDEX. Returns the result
//  object to send to the client (a new reference), or NULL with FAULT set
//  to the error the client gets. Deterministic. A command answered
//  without changing anything (the current authority asking again, a
//  player registering the key it has) leaves hs_fsm_last_change as it was:
//  no event is due (protocol/homeserver-events.md).
json_t *hs_fsm_apply (hs_fsm_t *self, raft_index index, const void *data,
                      size_t size, sf_fault_t *fault);

//  Answer read OP with ARGS from the applied state. Returns a result
//  object (new reference) or NULL with FAULT.
json_t *hs_fsm_read (hs_fsm_t *self, const char *op, const json_t *args,
                     sf_fault_t *fault);

//  Whether bearer token TOKEN_ID whose secret hashes to HASH (Z85 of
//  BLAKE2b-256) is valid at wall-clock NOW_MS by the applied state (http.md
//  section 5). Returns 0 with *PRINCIPAL (the caller frees) the key it
//  stands for, or -1 with FAULT: unauthorized, saying unknown, expired or
//  revoked. Compares the hash in constant time.
int hs_fsm_access (hs_fsm_t *self, const char *token_id, const char *hash,
                   uint64_t now_ms, char **principal, sf_fault_t *fault);

//  Make MEMBERS ([{"name", "raft_id", "raft", "api"?, "key"}], lent) the
//  ring's recorded members, and forget every removed raft id: a ring
//  restored from a backup is the ring its configuration names, not the
//  one the backup came from (operations.md section 3). Returns 0, or -1
//  with FAULT.
int hs_fsm_reset_members (hs_fsm_t *self, const json_t *members,
                          sf_fault_t *fault);

//  The balancer's last LIMIT decisions (load.md section 6) made by
//  commands after index AFTER (0: any), newest first: [{"move", "index",
//  "at_ms", "group", "from", "to", "moved", "skipped", "reason"}]. A new
//  reference.
json_t *hs_fsm_moves (hs_fsm_t *self, uint64_t after, int64_t limit);

//  The names of the sims draining (load.md section 7). A new list.
zlist_t *hs_fsm_draining (hs_fsm_t *self);

//  At most LIMIT entities of GROUP (a parent path, "/" for the top) that
//  SIM holds, in path order after AFTER (NULL: from the first):
//  [{"path", "rule"}]. A new reference.
json_t *hs_fsm_group_held (hs_fsm_t *self, const char *group, const char *sim,
                           const char *after, size_t limit);

//  At most LIMIT entities that SIM holds and a player owns, by owner,
//  then path: [{"path", "owner"}] (load.md section 5: the rooms that go
//  together). A new reference.
json_t *hs_fsm_owned_held (hs_fsm_t *self, const char *sim, size_t limit);

//  Members added with cluster.add: [{"name", "raft_id", "raft", "api",
//  "key"}]. A new reference.
json_t *hs_fsm_members (hs_fsm_t *self);

//  True if raft id ID is a server of CONFIGURATION (lent).
bool hs_fsm_configured (const struct raft_configuration *configuration,
                        raft_id id);

//  The committed configuration change at INDEX replaced PREVIOUS (the
//  configuration applied before it, empty if none) with NEXT (both lent):
//  every raft id that left is dropped from the members table and
//  recorded as removed, so the table follows the configuration on every
//  member alike. Neither a command nor a change that is published.
//  Returns 0, or -1 (logged) leaving the table as it was.
int hs_fsm_configuration_applied (hs_fsm_t *self, raft_index index,
                                  const struct raft_configuration *previous,
                                  const struct raft_configuration *next);

//  True if raft id ID left the configuration and was not added again
//  since (hs_fsm_configuration_applied, cluster.add).
bool hs_fsm_member_removed (hs_fsm_t *self, raft_id id);

//  Index of the last command applied.
raft_index hs_fsm_applied (hs_fsm_t *self);

//  Index of the last command that changed state (an event was due), 0 if
//  none: replicated, so the same on every member.
raft_index hs_fsm_last_change (hs_fsm_t *self);

//  Record that entries up to INDEX are applied (for non-commands).
void hs_fsm_set_applied (hs_fsm_t *self, raft_index index);

//  The database image, in a new raft_malloc'd buffer. Returns 0 or -1.
int hs_fsm_snapshot (hs_fsm_t *self, struct raft_buffer *data);

//  Replace the database with image DATA (lent), its statements prepared
//  anew. Returns 0, or -1 leaving the state machine as it was.
int hs_fsm_restore (hs_fsm_t *self, const struct raft_buffer *data);

//  The foreign sims (NAME@INSTANCE) that hold an entity here: a new
//  array of names (federation.md section 6, the pull).
json_t *hs_fsm_foreign_holders (hs_fsm_t *self);

//  Claims this ring sent on to other instances (fed.intent) before
//  BEFORE_MS (wall clock) whose outcome it has not recorded: a new array
//  of {"request", "path", "sim"}, oldest first, at most 100.
json_t *hs_fsm_open_intents (hs_fsm_t *self, uint64_t before_ms);

//  The directory's entry for the sim or player (KIND "sim" or "player")
//  NAME, for another instance (federation.md section 4): {"name", "kind",
//  "key", "handoff"?, "state"?} from the applied state, a new reference;
//  or NULL with FAULT (not_found, or invalid_argument for KIND).
json_t *hs_fsm_lookup (hs_fsm_t *self, const char *kind, const char *name,
                       sf_fault_t *fault);

//  True if the applied state holds a current ring signing key (grants.md
//  section 2): a new leader submits ring.key first when it does not.
bool hs_fsm_has_ring_key (hs_fsm_t *self);

//  Make the grants RESULT (an applied command's, lent; grants.md section
//  3) names: "grant", each of "grants", and each "grant" of "results".
//  hs_fsm_apply puts there only the path granted, and its caller makes
//  the grants only where the result leaves this member, before this
//  thread applies anything else (the grant is of the state the command
//  left): unsigned for an event, signed (and its unsigned grants signed
//  too) for a reply. The outcome digest is taken before.
void hs_fsm_make_grants (hs_fsm_t *self, json_t *result, bool sign);

//  How many grants this member signed since it started (replies, events
//  and reads): the ring's costliest step per grant, counted.
uint64_t hs_fsm_signed_grants (hs_fsm_t *self);

//  The ring's public signing keys: [{"key_id", "public" (Z85),
//  "retires_ms" (null for the current key)}], by key_id. A new reference.
json_t *hs_fsm_ring_keys (hs_fsm_t *self);

//  Names of the sims that hold entities and whose last heartbeat is older
//  than LEASE_MS at NOW_MS (wall clock): the ones to expire. Caller
//  destroys the list.
zlist_t *hs_fsm_expired_sims (hs_fsm_t *self, uint64_t now_ms,
                              uint64_t lease_ms);

//  Ids (as text) of the pending ask transfers past their deadline at
//  NOW_MS (wall clock). Caller destroys the list.
zlist_t *hs_fsm_expired_transfers (hs_fsm_t *self, uint64_t now_ms);

//  Self test; returns 0 on success.
int hs_fsm_test (bool verbose);

#endif
