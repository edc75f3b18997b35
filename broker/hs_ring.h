/*  hs_ring: the Raft ring driver. One member of a homeserver ring.

    Drives the raft library's event-driven core (raft_step, raft 0.22.1)
    without doing any I/O itself: time comes in as arguments, and storage,
    the network and the state machine are reached through hs_ring_io_t. The
    daemon wires that table to ZeroMQ and SQLite; tests wire it to an
    in-memory network and store and run several rings in one process.

    The ring keeps the log tail (everything after the last snapshot's
    trailing point) in memory, so outgoing AppendEntries never read the
    store, and it keeps the last snapshot to serve InstallSnapshot.

    Every raft_update is carried out in the order the library requires
    (updates.rst): term and vote durable before anything else, entries
    handed to the store, snapshot persisted, messages sent, committed
    entries applied; follow-up events (persisted, configuration, snapshot
    taken) are stepped after the update is done, never nested.

    The ring also keeps a running digest of what its state machine applied,
    sends it to the members it talks to and compares theirs at equal
    indexes, so a member that applied a command differently is noticed
    (raft-wire.md section 4). The digest travels inside snapshots: the
    data io.snapshot_take returns is what io.snapshot_restore gets back,
    but what io.snapshot_save stores and peers receive has the digest in
    front of it. */

#ifndef HS_RING_H_INCLUDED
#define HS_RING_H_INCLUDED

#include "common/sf_error.h"

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _hs_ring_t hs_ring_t;

//  Bytes of a replica digest, and of an apply's outcome.
#define HS_RING_DIGEST_SIZE 16

//  What the ring needs from outside. Callbacks never call back into the
//  ring, except where noted.
typedef struct {
    void *handle;
    //  Make TERM and VOTE durable before returning. Returns 0 or -1.
    int (*save_term_vote) (void *handle, raft_term term, raft_id vote);
    //  Store N entries from INDEX on, first deleting any stored entry at
    //  INDEX or after (a conflict). Copy what is needed: the entries are
    //  lent. Durability may come later: the store then calls
    //  hs_ring_persisted (from outside any ring call).
    void (*append) (void *handle, raft_index index,
                    const struct raft_entry *entries, unsigned n);
    //  Send MESSAGE (entries and snapshot data filled in, all lent) to
    //  message->server_id at message->server_address. Best effort.
    void (*send) (void *handle, const struct raft_message *message);
    //  Apply committed command at INDEX (written in TERM) to the state
    //  machine, and write into OUTCOME (HS_RING_DIGEST_SIZE bytes, zero on
    //  entry) a digest of what applying it did, the same on every member
    //  that applied it the same way (raft-wire.md section 4).
    void (*apply) (void *handle, raft_index index, raft_term term,
                   const struct raft_buffer *command, uint8_t *outcome);
    //  Serialize the state machine as of the last applied entry into a new
    //  raft_malloc'd buffer DATA. Returns 0 or -1.
    int (*snapshot_take) (void *handle, struct raft_buffer *data);
    //  Make snapshot METADATA + DATA (lent) durable and delete stored
    //  entries before KEEP_FROM. Returns 0 or -1.
    int (*snapshot_save) (void *handle,
                          const struct raft_snapshot_metadata *metadata,
                          const struct raft_buffer *data, raft_index keep_from);
    //  Replace the state machine with snapshot DATA (lent), taken at log
    //  INDEX. Returns 0/-1.
    int (*snapshot_restore) (void *handle, raft_index index,
                             const struct raft_buffer *data);
    //  Apply the committed configuration change at INDEX, in log order
    //  with the commands: NEXT (lent) replaces PREVIOUS (lent; empty
    //  before the first). Called on every member for the same entries
    //  alike, unlike configuration below, which also reports a
    //  configuration restored from a snapshot. May be NULL.
    void (*apply_change) (void *handle, raft_index index,
                          const struct raft_configuration *previous,
                          const struct raft_configuration *next);
    //  The committed configuration changed (who may speak raft to us).
    //  May be NULL.
    void (*configuration) (void *handle,
                           const struct raft_configuration *configuration);
    //  Send member TO our replica DIGEST (lent) as of applied INDEX: a
    //  Digest frame (raft-wire.md type 11). Best effort. May be NULL.
    void (*send_digest) (void *handle, raft_id to, raft_index index,
                         const uint8_t *digest);
} hs_ring_io_t;

//  What the divergence detector saw since the member started.
typedef struct {
    uint64_t compared;          //  members' digests compared with ours
    uint64_t mismatches;        //  those that differed: a replica diverged
    raft_id mismatch_member;    //  who sent the last one that differed, or 0
    raft_index mismatch_index;  //  at which index, or 0
} hs_ring_digest_counters_t;

//  Everything a member persisted, handed to hs_ring_start. All lent.
typedef struct {
    raft_term term;                           //  0 on a fresh member
    raft_id voted_for;                        //  0 if none
    struct raft_snapshot_metadata *snapshot;  //  last snapshot, or NULL
    struct raft_buffer snapshot_data;         //  its state-machine image
    raft_index start_index;                   //  index of entries [0]
    struct raft_entry *entries;               //  stored log entries
    unsigned n_entries;
} hs_ring_state_t;

//  Tunables; zero fields take the defaults shown.
typedef struct {
    unsigned election_timeout_ms;   //  1000
    unsigned heartbeat_timeout_ms;  //  50
    unsigned snapshot_threshold;    //  applied entries between snapshots,
                                    //  65536
    unsigned snapshot_trailing;     //  entries kept after a snapshot, 4096
    unsigned seed;                  //  randomness for election timers
} hs_ring_options_t;

//  Role of this member as seen from outside.
typedef enum {
    HS_RING_FOLLOWER,
    HS_RING_CANDIDATE,
    HS_RING_LEADER,
    HS_RING_STOPPED,
} hs_ring_role_t;

//  New ring member ID at ADDRESS talking to the world through IO (copied).
hs_ring_t *hs_ring_new (raft_id id, const char *address, const hs_ring_io_t *io,
                        const hs_ring_options_t *options);

//  Destroy the member and null the caller's pointer.
void hs_ring_destroy (hs_ring_t **self_p);

//  The state a brand-new ring's members persist before their first start:
//  term 1 and entry 1 holding CONFIGURATION, the same on every member. The
//  entry's data is raft_malloc'd into STATE; free it with
//  hs_ring_state_release.
int hs_ring_bootstrap_state (const struct raft_configuration *configuration,
                             hs_ring_state_t *state);

//  Free what hs_ring_bootstrap_state allocated.
void hs_ring_state_release (hs_ring_state_t *state);

//  Start from STATE (all lent; copied). A member that will join an existing
//  ring starts with an empty state. NOW is the monotonic clock in ms.
int hs_ring_start (hs_ring_t *self, const hs_ring_state_t *state, uint64_t now,
                   sf_fault_t *fault);

//  Feed MESSAGE received from the network. The ring takes what the decoder
//  allocated (protocol/raft_msg.h), whatever happens.
void hs_ring_receive (hs_ring_t *self, struct raft_message *message,
                      uint64_t now);

//  The store reports that entries up to INDEX, the last of them written in
//  TERM, are durable.
void hs_ring_persisted (hs_ring_t *self, raft_index index, raft_term term,
                        uint64_t now);

//  Member FROM says its replica digest after applying INDEX is DIGEST
//  (HS_RING_DIGEST_SIZE bytes, lent): compare it with ours at INDEX, now
//  or once we applied INDEX. A mismatch is counted and logged, never
//  acted on.
void hs_ring_digest_received (hs_ring_t *self, raft_id from, raft_index index,
                              const uint8_t *digest, uint64_t now);

//  Our replica digest into DIGEST (HS_RING_DIGEST_SIZE bytes) and the
//  applied index it covers into *INDEX. False if we have none (restored
//  from a snapshot made before digests).
bool hs_ring_digest (hs_ring_t *self, raft_index *index, uint8_t *digest);

//  The divergence detector's counters. Lent.
const hs_ring_digest_counters_t *hs_ring_digest_counters (hs_ring_t *self);

//  When the next timeout is due (absolute, same clock as NOW).
uint64_t hs_ring_timeout (hs_ring_t *self);

//  Fire the timer if it is due at NOW.
void hs_ring_tick (hs_ring_t *self, uint64_t now);

//  Submit COMMAND (SIZE bytes, copied) for replication. Returns its log
//  index; it is applied through io.apply with that index and the current
//  term (hs_ring_term) once committed. Fails with not_leader on a follower.
raft_index hs_ring_submit (hs_ring_t *self, const void *command, size_t size,
                           uint64_t now, sf_fault_t *fault);

//  Submit N commands (copied) as consecutive entries in one step, so they
//  travel in one AppendEntries. Returns the first one's index, or 0 with
//  FAULT.
raft_index hs_ring_submit_many (hs_ring_t *self,
                                const struct raft_buffer *commands, unsigned n,
                                uint64_t now, sf_fault_t *fault);

//  True if this member leads and has committed an entry of its own term,
//  so its commit index covers every entry committed before it led: only
//  then may the commit index serve as a read index (Raft thesis 6.4).
bool hs_ring_read_ready (hs_ring_t *self);

//  Submit a barrier: an empty entry whose commit, in the current term,
//  proves this member was still the leader after the call (for
//  linearizable reads: Raft thesis 6.4). Returns its index, or 0 with
//  FAULT (not_leader).
raft_index hs_ring_barrier (hs_ring_t *self, uint64_t now, sf_fault_t *fault);

//  Submit a configuration change to CONFIGURATION (Raft thesis 4.1: one
//  server at a time). Returns the entry's index, or 0 with FAULT (not the
//  leader, or another change is still uncommitted).
raft_index hs_ring_change (hs_ring_t *self,
                           const struct raft_configuration *configuration,
                           uint64_t now, sf_fault_t *fault);

//  The latest configuration (committed or not). Lent until the next call.
const struct raft_configuration *hs_ring_configuration (hs_ring_t *self);

//  The configuration as of the applied index: the last one committed and
//  applied (or restored from a snapshot). Empty until this member has
//  applied one. Lent until the next call.
const struct raft_configuration *
hs_ring_applied_configuration (hs_ring_t *self);

//  On the leader: how far member ID's log matches ours (0 if unknown).
raft_index hs_ring_match_index (hs_ring_t *self, raft_id id);

//  Start transferring leadership to member ID (0: the library picks).
int hs_ring_transfer (hs_ring_t *self, raft_id id, uint64_t now,
                      sf_fault_t *fault);

//  Role, current term, commit and applied index, leader.
hs_ring_role_t hs_ring_role (hs_ring_t *self);

raft_term hs_ring_term (hs_ring_t *self);

raft_index hs_ring_commit_index (hs_ring_t *self);

raft_index hs_ring_applied_index (hs_ring_t *self);

raft_index hs_ring_last_index (hs_ring_t *self);

//  Leader's id (0 if unknown) and address (lent until the next ring call,
//  NULL if unknown).
raft_id hs_ring_leader (hs_ring_t *self, const char **address);

//  Index of the last snapshot taken or installed (0 if none).
raft_index hs_ring_snapshot_index (hs_ring_t *self);

//  The library's last error message, for logs. Lent.
const char *hs_ring_errmsg (hs_ring_t *self);

//  Name of ROLE: "follower", "candidate", "leader", "stopped".
const char *hs_ring_role_name (hs_ring_role_t role);

#endif
