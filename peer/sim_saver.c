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
    bool foreign_last;     //  the last batch was another instance's
    sim_entity_t **aside;  //  a walk's entities of a home it may batch
    uint32_t aside_max;    //  room in aside, in entities
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
        free (self->aside);
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

//  "" if ENTITY is this instance's, "@HOME" if it is another instance's;
//  NULL if its path names no home.
static const char *
s_suffix (const sim_entity_t *entity)
{
    return entity->foreign ? strrchr (entity->path, '@') : "";
}

//  Put ENTITY in the batch in ENTITIES, which is BYTES big, unless it is
//  full. Returns false if it is (ENTITY is left out).
static bool
s_add (sim_saver_t *self, json_t *entities, size_t *bytes, sim_entity_t *entity)
{
    if (self->n_sent == S_BATCH_COUNT)
        return false;
    size_t size = entity->path_size + entity->state_size + 64;
    if (*bytes + size > S_BATCH_BYTES && self->n_sent)
        return false;
    json_t *state =
        json_stringn ((const char *) entity->state, entity->state_size);
    if (!state) {
        //  Not text: it cannot be a checkpoint. Not tried again until it
        //  changes.
        self->unsaved++;
        entity->saved_epoch = entity->epoch;
        entity->saved_seq = entity->seq;
        return true;
    }
    json_array_append_new (
        entities, json_pack ("{s:s,s:I,s:o}", "path", entity->path, "epoch",
                             (json_int_t) entity->epoch, "checkpoint", state));
    self->sent [self->n_sent++] = (s_sent_t){entity->slot, entity->generation,
                                             entity->epoch, entity->seq};
    *bytes += size;
    return true;
}

void
sim_saver_tick (sim_saver_t *self)
{
    if (!self->ring || self->in_flight)
        return;
    //  One home's entities per batch: this instance's, or one other
    //  instance's (PATH@HOME), which this sim's ring sends on to their
    //  home (federation.md section 7). Turn about, so that a home out of
    //  reach does not keep this instance's from being saved: the batch is
    //  of the first due entity's home of the kind whose turn it is, else
    //  of the first due entity's home.
    bool foreign = !self->foreign_last;
    uint32_t slots = sim_store_slots (self->store);
    if (slots > self->aside_max) {
        sim_entity_t **aside = (sim_entity_t **) realloc (
            self->aside, slots * sizeof (sim_entity_t *));
        if (!aside)
            return;  //  tried again next tick
        self->aside = aside;
        self->aside_max = slots;
    }
    //  One walk. Once the turn's home is found, its entities go straight
    //  into the batch (none before it is of that home); until then, the
    //  first home's are put aside, and batched if the turn's never comes.
    json_t *entities = json_array ();
    size_t bytes = 256, n_aside = 0;
    const char *home = NULL, *first = NULL;
    self->n_sent = 0;
    for (uint32_t slot = 0; slot < slots; slot++) {
        sim_entity_t *entity = sim_store_at (self->store, slot);
        if (!s_due (entity))
            continue;
        const char *suffix = s_suffix (entity);
        if (!suffix)
            continue;
        if (!home && entity->foreign == foreign)
            home = suffix;
        if (home) {
            if (streq (suffix, home) && !s_add (self, entities, &bytes, entity))
                break;
        }
        else {
            if (!first)
                first = suffix;
            if (streq (suffix, first))
                self->aside [n_aside++] = entity;
        }
    }
    if (!home) {
        home = first;
        for (size_t at = 0; at < n_aside; at++)
            if (!s_add (self, entities, &bytes, self->aside [at]))
                break;
    }
    if (home)
        self->foreign_last = *home != 0;
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
