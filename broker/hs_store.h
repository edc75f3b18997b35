/*  hs_store: the durable state of one ring member, in one SQLite file.

    Holds the current term and vote, the log entries, and the last
    snapshot (its metadata and state-machine image). Runs SQLite in WAL
    mode with synchronous=FULL, so every committed transaction has been
    fsynced: when a call returns 0, what it wrote survives a power cut.

    Calls are synchronous and not thread-safe; the daemon runs them on its
    persistence thread so the loop keeps receiving, and groups concurrent
    appends into one transaction (hs_store_append takes many entries). */

#ifndef HS_STORE_H_INCLUDED
#define HS_STORE_H_INCLUDED

#include "broker/hs_ring.h"
#include "common/sf_error.h"

typedef struct _hs_store_t hs_store_t;

//  Open (creating if needed) the store at PATH. Returns NULL with FAULT set
//  if the file cannot be opened, is not a store, or is of a newer format.
hs_store_t *hs_store_new (const char *path, sf_fault_t *fault);

//  Close the store and null the caller's pointer.
void hs_store_destroy (hs_store_t **self_p);

//  True if the store holds nothing yet (a member never started).
bool hs_store_empty (hs_store_t *self);

//  Load everything into STATE for hs_ring_start. STATE owns what it points
//  to until hs_store_state_release.
int hs_store_load (hs_store_t *self, hs_ring_state_t *state, sf_fault_t *fault);

//  Free what hs_store_load put in STATE.
void hs_store_state_release (hs_ring_state_t *state);

//  Durably record TERM and VOTE.
int hs_store_save_term_vote (hs_store_t *self, raft_term term, raft_id vote,
                             sf_fault_t *fault);

//  Durably store N entries from INDEX on, deleting any at INDEX or after
//  first, in one transaction.
int hs_store_append (hs_store_t *self, raft_index index,
                     const struct raft_entry *entries, unsigned n,
                     sf_fault_t *fault);

//  Stage N entries from INDEX on (copied) for the next hs_store_flush, as
//  hs_store_append would store them. Staging many updates and flushing
//  once is the group commit: one fsync for all of them.
void hs_store_stage (hs_store_t *self, raft_index index,
                     const struct raft_entry *entries, unsigned n);

//  Durably store everything staged, in one transaction. Sets *INDEX and
//  *TERM to the last entry stored (0 if nothing was staged). Returns 0, or
//  -1 with FAULT (then nothing staged is durable and the stage is dropped).
int hs_store_flush (hs_store_t *self, raft_index *index, raft_term *term,
                    sf_fault_t *fault);

//  Durably replace the snapshot with METADATA + DATA and delete entries
//  before KEEP_FROM (all entries when KEEP_FROM is past the last one).
int hs_store_snapshot_save (hs_store_t *self,
                            const struct raft_snapshot_metadata *metadata,
                            const struct raft_buffer *data,
                            raft_index keep_from, sf_fault_t *fault);

//  Self test; returns 0 on success.
int hs_store_test (bool verbose);

#endif
