/*  sim_checkpoint: a simulation server's local checkpoint file (SQLite):
    the entities it is the authority of, saved every interval, so that a
    restarted sim resumes them without waiting for their owners to send
    them again.

    The file is a cache, not the truth: at restart the ring says which of
    them are still this sim's, at which epoch (sim_server checks), and
    each resumes its seq SIM_CHECKPOINT_SEQ_JUMP above the saved one, so
    that updates made after the last save and before a crash are overtaken
    at peers rather than colliding with new ones. */

#ifndef SIM_CHECKPOINT_H_INCLUDED
#define SIM_CHECKPOINT_H_INCLUDED

#include "common/sf_error.h"
#include "peer/sim_store.h"

typedef struct _sim_checkpoint_t sim_checkpoint_t;

//  Seq headroom after a restart (see above).
#define SIM_CHECKPOINT_SEQ_JUMP (1u << 20)

//  Open (or create) the checkpoint file at PATH. Returns NULL with FAULT
//  set if it cannot be opened or is not a checkpoint.
sim_checkpoint_t *sim_checkpoint_open (const char *path, sf_fault_t *fault);

//  Close the file and null the caller's pointer.
void sim_checkpoint_destroy (sim_checkpoint_t **self_p);

//  Replace the saved entities with STORE's authoritative ones, in one
//  transaction. Returns how many were saved, or -1 with FAULT set (the
//  previous checkpoint then stays whole).
int sim_checkpoint_save (sim_checkpoint_t *self, sim_store_t *store,
                         uint64_t now_ms, sf_fault_t *fault);

//  Load the saved entities into STORE as authoritative, each at its saved
//  epoch and state and SIM_CHECKPOINT_SEQ_JUMP above its saved seq
//  (entities already in STORE are left alone). Returns how many were
//  loaded, or -1 with FAULT set.
int sim_checkpoint_load (sim_checkpoint_t *self, sim_store_t *store,
                         sf_fault_t *fault);

//  Self test; returns 0 on success.
int sim_checkpoint_test (bool verbose);

#endif
