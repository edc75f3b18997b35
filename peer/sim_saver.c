/*  sim_saver: the ring's checkpoints of this sim's entities. */

#include "peer/sim_saver.h"
#include "common/sf_log.h"

#include <czmq.h>

//  A batch stays under the API's 64 KiB request bound with room to spare.
#define S_BATCH_BYTES (48 * 1024)
#define S_BATCH_COUNT 1000

//  What one entity of a batch in flight was saved at.
typedef struct {
    uint32_t slot, generation;
    uint64_t epoch, seq;
} s_sent_t;

struct _sim_saver_t {
    char *name;
    sim_store_t *store;  //  lent
    sim_ring_t *ring;    //  lent, or NULL
    s_sent_t *sent;      //  the batch in flight
    size_t n_sent;
    bool in_flight;
    bool foreign_last;  //  the last batch was another instance's
    uint64_t saved, stale, failed, unsaved;
};

sim_saver_t *
sim_saver_new (const char *name, sim_store_t *store)
{
    sim_saver_t *self = (sim_saver_t *) zmalloc (sizeof (sim_saver_t));
    self->name = strdup (name);
    self->store = store;
    self->sent = (s_sent_t *) zmalloc (S_BATCH_COUNT * sizeof (s_sent_t));
    return self;
}

void
sim_saver_destroy (sim_saver_t **self_p)
{
    if (*self_p) {
        sim_saver_t *self = *self_p;
        free (self->sent);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

void
sim_saver_set_ring (sim_saver_t *self, sim_ring_t *ring)
{
    self->ring = ring;
    self->in_flight = false;
}

static void
s_saved (void *arg, json_t *reply, const sf_fault_t *fault)
{
    sim_saver_t *self = (sim_saver_t *) arg;
    self->in_flight = false;
    if (fault) {
        self->failed += self->n_sent;
        sf_log_warning ("sim_saver: checkpoints not saved: %s (next tick "
                        "tries again)",
                        fault->message);
        return;
    }
    //  Saved at what was sent: later changes stay due.
    for (size_t at = 0; at < self->n_sent; at++) {
        const s_sent_t *sent = &self->sent [at];
        sim_entity_t *entity =
            sim_store_slot (self->store, sent->slot, sent->generation);
        if (entity) {
            entity->saved_epoch = sent->epoch;
            entity->saved_seq = sent->seq;
        }
    }
    self->saved +=
        (uint64_t) json_integer_value (json_object_get (reply, "saved"));
    self->stale += json_array_size (json_object_get (reply, "stale"));
    sim_saver_tick (self);  //  the next batch, if any is due
}

//  ENTITY is held here and changed since it was last saved.
static bool
s_due (const sim_entity_t *entity)
{
    return entity && entity->authority
           && (entity->saved_epoch != entity->epoch
               || entity->saved_seq != entity->seq);
}

//  The home of the next batch: "" (this instance) or "@HOME" of the first
//  entity due, one of another instance's if FOREIGN and there is one;
//  NULL if none is due.
static const char *
s_home (sim_saver_t *self, bool foreign)
{
    const char *home = NULL;
    uint32_t slots = sim_store_slots (self->store);
    for (uint32_t slot = 0; slot < slots; slot++) {
        sim_entity_t *entity = sim_store_at (self->store, slot);
        if (!s_due (entity))
            continue;
        const char *suffix = entity->foreign ? strrchr (entity->path, '@') : "";
        if (suffix && (entity->foreign == foreign))
            return suffix;
        if (suffix && !home)
            home = suffix;
    }
    return home;
}

void
sim_saver_tick (sim_saver_t *self)
{
    if (!self->ring || self->in_flight)
        return;
    json_t *entities = json_array ();
    size_t bytes = 256;
    self->n_sent = 0;
    //  One home's entities per batch: this instance's, or one other
    //  instance's (PATH@HOME), which this sim's ring sends on to their
    //  home (federation.md section 7). Turn about, so that a home out of
    //  reach does not keep this instance's from being saved.
    const char *home = s_home (self, !self->foreign_last);
    if (!home) {
        json_decref (entities);
        return;
    }
    self->foreign_last = *home != 0;
    uint32_t slots = sim_store_slots (self->store);
    for (uint32_t slot = 0; slot < slots && self->n_sent < S_BATCH_COUNT;
         slot++) {
        sim_entity_t *entity = sim_store_at (self->store, slot);
        if (!s_due (entity))
            continue;
        const char *suffix = entity->foreign ? strrchr (entity->path, '@') : "";
        if (!suffix || !streq (suffix, home))
            continue;
        size_t size = entity->path_size + entity->state_size + 64;
        if (bytes + size > S_BATCH_BYTES && self->n_sent)
            break;
        json_t *state =
            json_stringn ((const char *) entity->state, entity->state_size);
        if (!state) {
            //  Not text: it cannot be a checkpoint. Not tried again until
            //  it changes.
            self->unsaved++;
            entity->saved_epoch = entity->epoch;
            entity->saved_seq = entity->seq;
            continue;
        }
        json_array_append_new (entities,
                               json_pack ("{s:s,s:I,s:o}", "path", entity->path,
                                          "epoch", (json_int_t) entity->epoch,
                                          "checkpoint", state));
        self->sent [self->n_sent++] = (s_sent_t){
            entity->slot, entity->generation, entity->epoch, entity->seq};
        bytes += size;
    }
    if (!self->n_sent) {
        json_decref (entities);
        return;
    }
    json_t *args =
        json_pack ("{s:s,s:o}", "sim", self->name, "entities", entities);
    if (sim_ring_call (self->ring, "entity.checkpoint", &args, 5000, s_saved,
                       self)
        == 0)
        self->in_flight = true;
}

void
sim_saver_counters (sim_saver_t *self, json_t *object)
{
    json_object_set_new (object, "checkpoints_saved",
                         json_integer ((json_int_t) self->saved));
    json_object_set_new (object, "checkpoints_stale",
                         json_integer ((json_int_t) self->stale));
    json_object_set_new (object, "checkpoints_failed",
                         json_integer ((json_int_t) self->failed));
    json_object_set_new (object, "checkpoints_unsaved",
                         json_integer ((json_int_t) self->unsaved));
}
