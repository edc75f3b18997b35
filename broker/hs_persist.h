/*  hs_persist: the persistence thread of a homeserver.

    Owns the store (hs_store) once the ring has started. The loop hands it
    log entries without waiting; the thread gathers everything handed to it
    while it was busy into one transaction and one fsync (group commit), and
    reports each completed flush, so the loop keeps receiving requests and
    replicating while the disk works. Term and vote, and snapshots, are
    written synchronously (the caller waits), in order after the entries
    handed before them. */

#ifndef HS_PERSIST_H_INCLUDED
#define HS_PERSIST_H_INCLUDED

#include "broker/hs_store.h"

#include <czmq.h>

typedef struct _hs_persist_t hs_persist_t;

//  Start the thread; it takes STORE and nulls the caller's pointer.
hs_persist_t *hs_persist_new (hs_store_t **store);

//  Stop the thread (entries handed but not flushed are not made durable,
//  and were never reported), close the store, null the caller's pointer.
void hs_persist_destroy (hs_persist_t **self_p);

//  Hand N entries from INDEX on (copied) to be made durable, deleting any
//  stored at INDEX or after first. Returns at once.
void hs_persist_append (hs_persist_t *self, raft_index index,
                        const struct raft_entry *entries, unsigned n);

//  Durably record TERM and VOTE; returns when done. 0 or -1.
int hs_persist_save_term_vote (hs_persist_t *self, raft_term term,
                               raft_id vote);

//  Durably replace the snapshot (see hs_store_snapshot_save); returns when
//  done. 0 or -1.
int hs_persist_snapshot_save (hs_persist_t *self,
                              const struct raft_snapshot_metadata *metadata,
                              const struct raft_buffer *data,
                              raft_index keep_from);

//  Socket that becomes readable when a flush completed: register it on the
//  loop and call hs_persist_completed. Lent.
zsock_t *hs_persist_socket (hs_persist_t *self);

//  Read one completion: entries up to *INDEX, the last written in *TERM,
//  are durable. Returns 0, or -1 if nothing could be read.
int hs_persist_completed (hs_persist_t *self, raft_index *index,
                          raft_term *term);

//  Self test; returns 0 on success.
int hs_persist_test (bool verbose);

#endif
