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

//  Most entities one entity.import command creates.
#define HS_FSM_MAX_IMPORT 1000

//  Most paths one authority.request of the batch form decides.
#define HS_FSM_MAX_REQUESTS 256

//  A new, empty state machine. NULL with FAULT set if SQLite fails.
hs_fsm_t *hs_fsm_new (sf_fault_t *fault);

//  Destroy it and null the caller's pointer.
void hs_fsm_destroy (hs_fsm_t **self_p);

//  True if OP changes state (goes through the ring); false for reads.
bool hs_fsm_is_write (const char *op);

//  True if OP is served by hs_fsm_read.
bool hs_fsm_is_read (const char *op);

//  Check the arguments of write OP before it is submitted, so malformed
//  requests fail fast. Returns 0, or -1 with FAULT naming the field.
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

//  Members added with cluster.add: [{"name", "raft_id", "raft", "api",
//  "key"}]. A new reference.
json_t *hs_fsm_members (hs_fsm_t *self);

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
