/*  sim_saver: keeps the ring's checkpoint of each entity this sim is the
    authority of close to its live state, so that if this sim dies, the
    entity's next authority starts from a recent state (homeserver-api.md,
    entity.checkpoint; issue 5's orphans).

    On each tick it sends the ring one batch of the entities whose state
    changed since it was last saved (at most 1,000, under 48 KiB), each
    with the epoch it is held at, and the next batch as soon as the ring
    has answered; one batch is in flight at a time. The ring skips an
    entity that is no longer this sim's at that epoch. */

#ifndef SIM_SAVER_H_INCLUDED
#define SIM_SAVER_H_INCLUDED

#include "peer/sim_ring.h"
#include "peer/sim_store.h"

#include <jansson.h>

typedef struct _sim_saver_t sim_saver_t;

//  A saver for sim NAME (copied) over STORE (lent).
sim_saver_t *sim_saver_new (const char *name, sim_store_t *store);

//  Destroy it and null the caller's pointer. The ring client must have
//  been destroyed or detached first (its pending call names the saver).
void sim_saver_destroy (sim_saver_t **self_p);

//  Send through RING (lent) from now on. A batch in flight through the
//  ring client before is forgotten (a replaced client drops its calls).
void sim_saver_set_ring (sim_saver_t *self, sim_ring_t *ring);

//  Send the next batch of changed states, unless one is in flight.
void sim_saver_tick (sim_saver_t *self);

//  Counters into OBJECT: checkpoints_saved, checkpoints_stale,
//  checkpoints_failed, checkpoints_unsaved (states that are not UTF-8
//  text cannot be a checkpoint).
void sim_saver_counters (sim_saver_t *self, json_t *object);

#endif
