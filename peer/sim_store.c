/*  sim_store: entities by path. */

#include "peer/sim_store.h"
#include "common/sf_name.h"

#include <assert.h>
#include <czmq.h>

struct _sim_store_t {
    zhashx_t *by_path;       //  path -> sim_entity_t (owns the entities)
    sim_entity_t **sorted;   //  every entity, in path order
    size_t count;            //  entities
    size_t sorted_capacity;  //  length of sorted
    sim_entity_t **by_slot;  //  slot -> entity or NULL
    uint32_t *generations;   //  slot -> its current generation
    uint32_t slots;          //  slots in use or freed
    uint32_t slot_capacity;  //  length of by_slot and generations
    uint32_t *free_slots;    //  freed slots, reused first
    uint32_t free_count;     //  entries in free_slots
};

static void
s_entity_destroy (void **item)
{
    sim_entity_t *entity = (sim_entity_t *) *item;
    if (entity) {
        free (entity->state);
        free (entity->path);
        free (entity);
        *item = NULL;
    }
}

sim_store_t *
sim_store_new (void)
{
    sim_store_t *self = (sim_store_t *) zmalloc (sizeof (sim_store_t));
    self->by_path = zhashx_new ();
    //  Keys are the entities' own paths: not copied, not freed.
    zhashx_set_key_duplicator (self->by_path, NULL);
    zhashx_set_key_destructor (self->by_path, NULL);
    zhashx_set_destructor (self->by_path, s_entity_destroy);
    return self;
}

void
sim_store_destroy (sim_store_t **self_p)
{
    if (*self_p) {
        sim_store_t *self = *self_p;
        zhashx_destroy (&self->by_path);
        free (self->sorted);
        free (self->by_slot);
        free (self->generations);
        free (self->free_slots);
        free (self);
        *self_p = NULL;
    }
}

sim_entity_t *
sim_store_get (sim_store_t *self, const char *path)
{
    return (sim_entity_t *) zhashx_lookup (self->by_path, path);
}

sim_entity_t *
sim_store_find (sim_store_t *self, const char *path, size_t size)
{
    if (size > SF_NAME_MAX_PATH)
        return NULL;
    char key [SF_NAME_MAX_PATH + 1];
    memcpy (key, path, size);
    key [size] = 0;
    return sim_store_get (self, key);
}

sim_entity_t *
sim_store_slot (sim_store_t *self, uint32_t slot, uint32_t generation)
{
    if (slot >= self->slots || self->generations [slot] != generation)
        return NULL;
    return self->by_slot [slot];
}

sim_entity_t *
sim_store_at (sim_store_t *self, uint32_t slot)
{
    return slot < self->slots ? self->by_slot [slot] : NULL;
}

//  Index of the first entity in path order whose path is not below PATH.
static size_t
s_lower_bound (sim_store_t *self, const char *path)
{
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (strcmp (self->sorted [middle]->path, path) < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

//  Make room for one more entity in every index. Returns 0 or -1.
static int
s_reserve (sim_store_t *self)
{
    if (self->count == self->sorted_capacity) {
        size_t capacity =
            self->sorted_capacity ? self->sorted_capacity * 2 : 64;
        sim_entity_t **sorted = (sim_entity_t **) realloc (
            self->sorted, capacity * sizeof (sim_entity_t *));
        if (!sorted)
            return -1;
        self->sorted = sorted;
        self->sorted_capacity = capacity;
    }
    if (self->free_count == 0 && self->slots == self->slot_capacity) {
        uint32_t capacity = self->slot_capacity ? self->slot_capacity * 2 : 64;
        sim_entity_t **by_slot = (sim_entity_t **) realloc (
            self->by_slot, capacity * sizeof (sim_entity_t *));
        if (!by_slot)
            return -1;
        self->by_slot = by_slot;
        uint32_t *generations = (uint32_t *) realloc (
            self->generations, capacity * sizeof (uint32_t));
        if (!generations)
            return -1;
        self->generations = generations;
        uint32_t *free_slots = (uint32_t *) realloc (
            self->free_slots, capacity * sizeof (uint32_t));
        if (!free_slots)
            return -1;
        self->free_slots = free_slots;
        self->slot_capacity = capacity;
    }
    return 0;
}

sim_entity_t *
sim_store_create (sim_store_t *self, const char *path, size_t size,
                  uint64_t epoch, uint64_t seq, bool authority)
{
    assert (sf_name_path_valid (path, size));
    if (sim_store_find (self, path, size) || s_reserve (self))
        return NULL;
    sim_entity_t *entity = (sim_entity_t *) calloc (1, sizeof (sim_entity_t));
    if (!entity)
        return NULL;
    entity->path = strndup (path, size);
    if (!entity->path) {
        free (entity);
        return NULL;
    }
    entity->epoch = epoch;
    entity->seq = seq;
    entity->authority = authority;
    if (self->free_count)
        entity->slot = self->free_slots [--self->free_count];
    else {
        entity->slot = self->slots++;
        self->generations [entity->slot] = 0;
    }
    entity->generation = ++self->generations [entity->slot];
    self->by_slot [entity->slot] = entity;
    size_t at = s_lower_bound (self, entity->path);
    memmove (self->sorted + at + 1, self->sorted + at,
             (self->count - at) * sizeof (sim_entity_t *));
    self->sorted [at] = entity;
    self->count++;
    zhashx_insert (self->by_path, entity->path, entity);
    return entity;
}

int
sim_store_set (sim_store_t *self, sim_entity_t *entity, uint64_t epoch,
               uint64_t seq, const uint8_t *state, size_t state_size,
               uint64_t now_ms)
{
    (void) self;
    if (state_size > entity->capacity) {
        uint8_t *grown = (uint8_t *) realloc (entity->state, state_size);
        if (!grown)
            return -1;
        entity->state = grown;
        entity->capacity = state_size;
    }
    if (state_size)
        memcpy (entity->state, state, state_size);
    entity->state_size = state_size;
    entity->epoch = epoch;
    entity->seq = seq;
    entity->updated_ms = now_ms;
    return 0;
}

sim_store_offer_t
sim_store_offer (sim_store_t *self, const char *path, size_t size,
                 uint64_t epoch, uint64_t seq, const uint8_t *state,
                 size_t state_size, const char *source, uint64_t now_ms,
                 sim_entity_t **entity_p)
{
    sim_entity_t *entity = sim_store_find (self, path, size);
    if (!entity) {
        entity = sim_store_create (self, path, size, epoch, 0, false);
        if (!entity)
            return SIM_STORE_NO_MEMORY;
    }
    else if (entity->authority)
        return SIM_STORE_CONFLICT;  //  ours: no one else sets it here
    else if (epoch < entity->epoch)
        return SIM_STORE_STALE_EPOCH;
    else if (epoch == entity->epoch && entity->seq
             && strcmp (entity->source, source) != 0)
        return SIM_STORE_CONFLICT;  //  two authorities cannot share an epoch
    else if (epoch == entity->epoch && seq <= entity->seq)
        return SIM_STORE_SUPERSEDED;
    if (sim_store_set (self, entity, epoch, seq, state, state_size, now_ms))
        return SIM_STORE_NO_MEMORY;
    if (strcmp (entity->source, source) != 0)
        snprintf (entity->source, sizeof entity->source, "%s", source);
    *entity_p = entity;
    return SIM_STORE_APPLIED;
}

int
sim_store_delete (sim_store_t *self, const char *path)
{
    sim_entity_t *entity = sim_store_get (self, path);
    if (!entity)
        return -1;
    size_t at = s_lower_bound (self, path);
    assert (at < self->count && self->sorted [at] == entity);
    memmove (self->sorted + at, self->sorted + at + 1,
             (self->count - at - 1) * sizeof (sim_entity_t *));
    self->count--;
    self->by_slot [entity->slot] = NULL;
    self->free_slots [self->free_count++] = entity->slot;
    zhashx_delete (self->by_path, entity->path);  //  frees the entity
    return 0;
}

size_t
sim_store_size (sim_store_t *self)
{
    return self->count;
}

size_t
sim_store_authoritative (sim_store_t *self)
{
    size_t count = 0;
    for (size_t at = 0; at < self->count; at++)
        count += self->sorted [at]->authority ? 1 : 0;
    return count;
}

uint32_t
sim_store_slots (sim_store_t *self)
{
    return self->slots;
}

//  Walk path order from PREFIX (or after AFTER), taking what PATTERN
//  matches (NULL: everything with the prefix).
static size_t
s_walk (sim_store_t *self, const char *prefix, const char *pattern,
        const char *after, sim_entity_t **out, size_t limit, bool *more)
{
    size_t prefix_size = strlen (prefix);
    size_t at = s_lower_bound (self, prefix);
    if (after && strcmp (after, prefix) >= 0) {
        at = s_lower_bound (self, after);
        if (at < self->count && strcmp (self->sorted [at]->path, after) == 0)
            at++;
    }
    size_t taken = 0;
    *more = false;
    for (; at < self->count; at++) {
        sim_entity_t *entity = self->sorted [at];
        if (strncmp (entity->path, prefix, prefix_size) != 0)
            break;
        if (pattern && !sf_name_path_match (pattern, entity->path))
            continue;
        if (taken == limit) {
            *more = true;
            break;
        }
        out [taken++] = entity;
    }
    return taken;
}

size_t
sim_store_list (sim_store_t *self, const char *prefix, const char *after,
                sim_entity_t **out, size_t limit, bool *more)
{
    return s_walk (self, prefix, NULL, after, out, limit, more);
}

size_t
sim_store_match (sim_store_t *self, const char *pattern, const char *after,
                 sim_entity_t **out, size_t limit, bool *more)
{
    //  Only paths starting with the pattern's literal part can match.
    char prefix [SF_NAME_MAX_PATH + 1];
    size_t size = strcspn (pattern, "*");
    if (size > SF_NAME_MAX_PATH)
        size = SF_NAME_MAX_PATH;
    memcpy (prefix, pattern, size);
    prefix [size] = 0;
    return s_walk (self, prefix, pattern, after, out, limit, more);
}

int
sim_store_test (bool verbose)
{
    if (verbose)
        printf (" * sim_store: ");
    sim_store_t *store = sim_store_new ();
    char path [64];
    //  Created out of order, listed in order
    for (int index = 99; index >= 0; index--) {
        snprintf (path, sizeof path, "/world/room%d/cube%02d", index % 3,
                  index);
        sim_entity_t *entity =
            sim_store_create (store, path, strlen (path), 1, 0, true);
        assert (entity && strcmp (entity->path, path) == 0);
    }
    assert (sim_store_size (store) == 100);
    assert (!sim_store_create (store, path, strlen (path), 1, 0, true));
    sim_entity_t *page [40];
    bool more;
    size_t count =
        sim_store_list (store, "/world/room1/", NULL, page, 40, &more);
    assert (count == 33 && !more);
    for (size_t at = 1; at < count; at++)
        assert (strcmp (page [at - 1]->path, page [at]->path) < 0);
    //  Pages
    count = sim_store_list (store, "/", NULL, page, 40, &more);
    assert (count == 40 && more);
    count = sim_store_list (store, "/", page [39]->path, page, 40, &more);
    assert (count == 40 && more);
    count = sim_store_list (store, "/", page [39]->path, page, 40, &more);
    assert (count == 20 && !more);
    count = sim_store_list (store, "/nothing", NULL, page, 40, &more);
    assert (count == 0 && !more);
    //  Patterns
    count = sim_store_match (store, "/world/*/cube1*", NULL, page, 40, &more);
    assert (count == 0);  //  '*' is a whole segment, not a wildcard char
    count = sim_store_match (store, "/world/*/cube10", NULL, page, 40, &more);
    assert (count == 1 && strcmp (page [0]->path, "/world/room1/cube10") == 0);
    count = sim_store_match (store, "/world/room2/**", NULL, page, 40, &more);
    assert (count == 33 && !more);

    //  State, lookups by length, slots and generations
    sim_entity_t *entity = sim_store_get (store, "/world/room1/cube10");
    assert (sim_store_find (store, "/world/room1/cube10xyz", 19) == entity);
    assert (
        sim_store_set (store, entity, 2, 5, (const uint8_t *) "abc", 3, 1000)
        == 0);
    assert (entity->epoch == 2 && entity->seq == 5 && entity->state_size == 3);
    assert (memcmp (entity->state, "abc", 3) == 0);
    assert (sim_store_set (store, entity, 2, 6, NULL, 0, 1001) == 0);
    assert (entity->state_size == 0);
    uint32_t slot = entity->slot, generation = entity->generation;
    assert (sim_store_slot (store, slot, generation) == entity);
    assert (sim_store_at (store, slot) == entity);
    assert (sim_store_delete (store, "/world/room1/cube10") == 0);
    assert (sim_store_delete (store, "/world/room1/cube10") == -1);
    assert (!sim_store_slot (store, slot, generation));
    assert (!sim_store_at (store, slot));
    assert (sim_store_size (store) == 99);
    assert (sim_store_authoritative (store) == 99);
    entity = sim_store_create (store, "/new", 4, 1, 0, false);
    assert (entity->slot == slot && entity->generation == generation + 1);
    assert (sim_store_slots (store) == 100);
    count = sim_store_list (store, "/", NULL, page, 1, &more);
    assert (count == 1 && strcmp (page [0]->path, "/new") == 0);

    //  Replica rules
    sim_entity_t *replica = NULL;
    const uint8_t *bytes = (const uint8_t *) "s";
    assert (
        sim_store_offer (store, "/r", 2, 2, 1, bytes, 1, "simA", 1, &replica)
        == SIM_STORE_APPLIED);
    assert (replica && !replica->authority && replica->seq == 1);
    assert (strcmp (replica->source, "simA") == 0);
    assert (
        sim_store_offer (store, "/r", 2, 2, 1, bytes, 1, "simA", 1, &replica)
        == SIM_STORE_SUPERSEDED);
    assert (
        sim_store_offer (store, "/r", 2, 2, 5, bytes, 1, "simB", 1, &replica)
        == SIM_STORE_CONFLICT);
    assert (
        sim_store_offer (store, "/r", 2, 1, 9, bytes, 1, "simA", 1, &replica)
        == SIM_STORE_STALE_EPOCH);
    assert (
        sim_store_offer (store, "/r", 2, 3, 1, bytes, 1, "simB", 1, &replica)
        == SIM_STORE_APPLIED);
    assert (replica->epoch == 3 && strcmp (replica->source, "simB") == 0);
    assert (sim_store_create (store, "/mine", 5, 1, 1, true));
    assert (sim_store_offer (store, "/mine", 5, 9, 1, bytes, 1, "simB", 1,
                             &replica)
            == SIM_STORE_CONFLICT);  //  ours: never set from outside
    sim_store_destroy (&store);
    assert (!store);
    if (verbose)
        printf ("OK\n");
    return 0;
}
