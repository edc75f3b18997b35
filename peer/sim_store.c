/*  sim_store: entities by path. */

#include "peer/sim_store.h"
#include "common/sf_name.h"
#include "protocol/grant_msg.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>

//  The index by path: open addressing with linear probing, at most half
//  full. A bucket keeps its path's hash, so a probe compares paths only
//  when the hashes match. Paths come from peers, so the hash is keyed
//  (SipHash, a key per store): no one can choose paths that collide.
typedef struct {
    uint64_t hash;         //  of the entity's path
    sim_entity_t *entity;  //  NULL: empty
} s_bucket_t;

struct _sim_store_t {
    s_bucket_t *buckets;   //  the index by path
    uint32_t bucket_mask;  //  how many buckets (a power of 2), minus one
    uint8_t hash_key [crypto_shorthash_KEYBYTES];
    sim_entity_t **sorted;   //  every entity, in path order
    size_t count;            //  entities
    size_t placeholders;     //  of them, replicas made by a grant alone
    size_t sorted_capacity;  //  length of sorted
    sim_entity_t **by_slot;  //  slot -> entity or NULL
    uint32_t *generations;   //  slot -> its current generation
    uint32_t slots;          //  slots in use or freed
    uint32_t slot_capacity;  //  length of by_slot and generations
    uint32_t *free_slots;    //  freed slots, reused first
    uint32_t free_count;     //  entries in free_slots
};

static void
s_entity_destroy (sim_entity_t **self_p)
{
    if (*self_p) {
        sim_entity_t *self = *self_p;
        free (self->state);
        free (self->grant);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

#define S_BUCKETS_INITIAL 64

sim_store_t *
sim_store_new (void)
{
    if (sodium_init () < 0)
        return NULL;
    sim_store_t *self = (sim_store_t *) calloc (1, sizeof (sim_store_t));
    if (!self)
        return NULL;
    self->buckets =
        (s_bucket_t *) calloc (S_BUCKETS_INITIAL, sizeof (s_bucket_t));
    if (!self->buckets) {
        free (self);
        return NULL;
    }
    self->bucket_mask = S_BUCKETS_INITIAL - 1;
    crypto_shorthash_keygen (self->hash_key);
    return self;
}

void
sim_store_destroy (sim_store_t **self_p)
{
    if (*self_p) {
        sim_store_t *self = *self_p;
        for (size_t at = 0; at < self->count; at++)
            s_entity_destroy (&self->sorted [at]);
        free (self->buckets);
        free (self->sorted);
        free (self->by_slot);
        free (self->generations);
        free (self->free_slots);
        free (self);
        *self_p = NULL;
    }
}

uint64_t
sim_store_hash (sim_store_t *self, const char *path, size_t size)
{
    uint8_t digest [crypto_shorthash_BYTES];
    crypto_shorthash (digest, (const uint8_t *) path, size, self->hash_key);
    uint64_t hash;
    memcpy (&hash, digest, sizeof hash);
    return hash;
}

//  The bucket holding the SIZE bytes of PATH (whose hash is HASH), or the
//  empty bucket where it would go.
static s_bucket_t *
s_probe (sim_store_t *self, const char *path, size_t size, uint64_t hash)
{
    for (uint32_t at = (uint32_t) hash & self->bucket_mask;;
         at = (at + 1) & self->bucket_mask) {
        s_bucket_t *bucket = &self->buckets [at];
        if (!bucket->entity
            || (bucket->hash == hash && bucket->entity->path_size == size
                && memcmp (bucket->entity->path, path, size) == 0))
            return bucket;
    }
}

//  Double the index. Returns 0 or -1.
static int
s_rehash (sim_store_t *self)
{
    uint32_t count = (self->bucket_mask + 1) * 2;
    s_bucket_t *buckets = (s_bucket_t *) calloc (count, sizeof (s_bucket_t));
    if (!buckets)
        return -1;
    for (uint32_t from = 0; from <= self->bucket_mask; from++) {
        s_bucket_t *bucket = &self->buckets [from];
        if (!bucket->entity)
            continue;
        uint32_t at = (uint32_t) bucket->hash & (count - 1);
        while (buckets [at].entity)
            at = (at + 1) & (count - 1);
        buckets [at] = *bucket;
    }
    free (self->buckets);
    self->buckets = buckets;
    self->bucket_mask = count - 1;
    return 0;
}

//  Empty BUCKET, moving later entries of its run back so that every
//  entry stays reachable from its home bucket without tombstones.
static void
s_unlink (sim_store_t *self, s_bucket_t *bucket)
{
    uint32_t hole = (uint32_t) (bucket - self->buckets);
    for (uint32_t at = (hole + 1) & self->bucket_mask;
         self->buckets [at].entity; at = (at + 1) & self->bucket_mask) {
        uint32_t home = (uint32_t) self->buckets [at].hash & self->bucket_mask;
        //  It may move to the hole unless its home lies after the hole,
        //  up to where it sits (cyclically).
        bool stays = hole <= at ? (hole < home && home <= at)
                                : (hole < home || home <= at);
        if (!stays) {
            self->buckets [hole] = self->buckets [at];
            hole = at;
        }
    }
    self->buckets [hole].entity = NULL;
}

void
sim_store_prefetch (sim_store_t *self, uint64_t hash)
{
    __builtin_prefetch (&self->buckets [(uint32_t) hash & self->bucket_mask]);
}

sim_entity_t *
sim_store_get (sim_store_t *self, const char *path)
{
    return sim_store_find (self, path, strlen (path));
}

sim_entity_t *
sim_store_find (sim_store_t *self, const char *path, size_t size)
{
    return s_probe (self, path, size, sim_store_hash (self, path, size))
        ->entity;
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
    assert (sf_name_global_path_valid (path, size));
    uint64_t hash = sim_store_hash (self, path, size);
    s_bucket_t *bucket = s_probe (self, path, size, hash);
    if (bucket->entity || s_reserve (self))
        return NULL;
    if (self->count + 1 > (self->bucket_mask + 1) / 2) {
        if (s_rehash (self))
            return NULL;
        bucket = s_probe (self, path, size, hash);
    }
    sim_entity_t *entity = (sim_entity_t *) calloc (1, sizeof (sim_entity_t));
    if (!entity)
        return NULL;
    entity->path = strndup (path, size);
    if (!entity->path) {
        free (entity);
        return NULL;
    }
    entity->path_size = size;
    entity->foreign = memchr (path, '@', size) != NULL;
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
    bucket->hash = hash;
    bucket->entity = entity;
    return entity;
}

int
sim_store_set (sim_store_t *self, sim_entity_t *entity, uint64_t epoch,
               uint64_t seq, const uint8_t *state, size_t state_size,
               uint64_t now_ms)
{
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
    if (entity->placeholder) {
        entity->placeholder = false;  //  an entity from now on
        self->placeholders--;
    }
    return 0;
}

//  True if ENTITY keeps a grant for EPOCH naming one of SENDER's keys.
static bool
s_proven (const sim_entity_t *entity, uint64_t epoch,
          const sim_store_sender_t *sender)
{
    if (!entity || entity->grant_epoch != epoch)
        return false;
    for (size_t at = 0; at < sender->count; at++)
        if (memcmp (entity->grant_key, sender->keys [at], 32) == 0)
            return true;
    return false;
}

sim_store_offer_t
sim_store_offer (sim_store_t *self, const char *path, size_t size,
                 uint64_t hash, uint64_t epoch, uint64_t seq,
                 const uint8_t *state, size_t state_size, const char *source,
                 const sim_store_sender_t *sender, uint64_t now_ms,
                 sim_entity_t **entity_p)
{
    sim_entity_t *entity = s_probe (self, path, size, hash)->entity;
    if (entity && entity->authority)
        return SIM_STORE_CONFLICT;  //  ours: no one else sets it here
    if (entity && epoch < entity->epoch)
        return SIM_STORE_STALE_EPOCH;
    if (sender && !s_proven (entity, epoch, sender))
        return SIM_STORE_UNPROVEN;
    bool same_source = false;  //  a new replica has no source yet
    if (entity) {
        same_source = strcmp (entity->source, source) == 0;
        if (epoch == entity->epoch && entity->seq && !same_source)
            return SIM_STORE_CONFLICT;  //  two authorities cannot share an epoch
        if (epoch == entity->epoch && seq <= entity->seq)
            return SIM_STORE_SUPERSEDED;
    }
    else if (!(entity = sim_store_create (self, path, size, epoch, 0, false)))
        return SIM_STORE_NO_MEMORY;
    if (sim_store_set (self, entity, epoch, seq, state, state_size, now_ms))
        return SIM_STORE_NO_MEMORY;
    if (!same_source)
        snprintf (entity->source, sizeof entity->source, "%s", source);
    *entity_p = entity;
    return SIM_STORE_APPLIED;
}

bool
sim_store_grant_kept (const sim_entity_t *entity, uint64_t epoch,
                      const uint8_t *key)
{
    return entity && entity->grant_epoch == epoch
           && memcmp (entity->grant_key, key, 32) == 0;
}

sim_store_offer_t
sim_store_keep_grant (sim_store_t *self, const char *path, size_t size,
                      uint64_t hash, uint64_t epoch, const uint8_t *key,
                      sim_entity_t **entity_p)
{
    sim_entity_t *entity = s_probe (self, path, size, hash)->entity;
    if (entity && entity->authority)
        return SIM_STORE_CONFLICT;
    if (entity && (epoch < entity->epoch || epoch < entity->grant_epoch))
        return SIM_STORE_STALE_EPOCH;
    //  A replica proven but not yet set: epoch 0 and seq 0 until its first
    //  update, so that update is newer whatever its epoch.
    //  Until then a placeholder: no entity to anyone outside, so a grant
    //  alone never shows a path nobody has updated.
    if (!entity) {
        if (!(entity = sim_store_create (self, path, size, 0, 0, false)))
            return SIM_STORE_NO_MEMORY;
        entity->placeholder = true;
        self->placeholders++;
    }
    entity->grant_epoch = epoch;
    memcpy (entity->grant_key, key, 32);
    *entity_p = entity;
    return SIM_STORE_APPLIED;
}

int
sim_store_set_grant (sim_store_t *self, sim_entity_t *entity,
                     const uint8_t *grant, size_t size)
{
    (void) self;
    grant_msg_t decoded = {0};
    if (grant
        && (grant_msg_decode (&decoded, grant, size)
            || strcmp (decoded.path, entity->path) != 0))
        return -1;
    uint8_t *copy = NULL;
    if (grant && !(copy = (uint8_t *) malloc (size)))
        return -1;
    if (copy)
        memcpy (copy, grant, size);
    free (entity->grant);
    entity->grant = copy;
    entity->grant_size = copy ? size : 0;
    entity->grant_epoch = decoded.epoch;
    memcpy (entity->grant_key, decoded.key, sizeof entity->grant_key);
    return 0;
}

int
sim_store_delete (sim_store_t *self, const char *path)
{
    size_t size = strlen (path);
    s_bucket_t *bucket =
        s_probe (self, path, size, sim_store_hash (self, path, size));
    sim_entity_t *entity = bucket->entity;
    if (!entity)
        return -1;
    s_unlink (self, bucket);
    size_t at = s_lower_bound (self, path);
    assert (at < self->count && self->sorted [at] == entity);
    memmove (self->sorted + at, self->sorted + at + 1,
             (self->count - at - 1) * sizeof (sim_entity_t *));
    self->count--;
    self->placeholders -= entity->placeholder ? 1 : 0;
    self->by_slot [entity->slot] = NULL;
    self->free_slots [self->free_count++] = entity->slot;
    s_entity_destroy (&entity);
    return 0;
}

size_t
sim_store_size (sim_store_t *self)
{
    return self->count - self->placeholders;
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
        if (entity->placeholder
            || (pattern && !sf_name_path_match (pattern, entity->path)))
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

//  Offer a one-byte state for PATH from SOURCE.
static sim_store_offer_t
s_offer (sim_store_t *store, const char *path, uint64_t epoch, uint64_t seq,
         const char *source, sim_entity_t **replica)
{
    size_t size = strlen (path);
    return sim_store_offer (store, path, size,
                            sim_store_hash (store, path, size), epoch, seq,
                            (const uint8_t *) "s", 1, source, NULL, 1, replica);
}

//  Offer a one-byte state for PATH from SOURCE holding KEY (and FORMER).
static sim_store_offer_t
s_offer_keyed (sim_store_t *store, const char *path, uint64_t epoch,
               uint64_t seq, const char *source, const uint8_t *key,
               const uint8_t *former, sim_entity_t **replica)
{
    size_t size = strlen (path);
    sim_store_sender_t sender = {{key, former}, former ? 2 : 1};
    return sim_store_offer (
        store, path, size, sim_store_hash (store, path, size), epoch, seq,
        (const uint8_t *) "s", 1, source, &sender, 1, replica);
}

//  Keep the grant of EPOCH naming KEY for PATH.
static sim_store_offer_t
s_keep (sim_store_t *store, const char *path, uint64_t epoch,
        const uint8_t *key, sim_entity_t **replica)
{
    size_t size = strlen (path);
    return sim_store_keep_grant (store, path, size,
                                 sim_store_hash (store, path, size), epoch, key,
                                 replica);
}

int
sim_store_test (bool verbose)
{
    int rc;
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
    sim_entity_t *twice =
        sim_store_create (store, path, strlen (path), 1, 0, true);
    assert (!twice);
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
    rc = sim_store_set (store, entity, 2, 5, (const uint8_t *) "abc", 3, 1000);
    assert (rc == 0);
    assert (entity->epoch == 2 && entity->seq == 5 && entity->state_size == 3);
    assert (memcmp (entity->state, "abc", 3) == 0);
    rc = sim_store_set (store, entity, 2, 6, NULL, 0, 1001);
    assert (rc == 0);
    assert (entity->state_size == 0);
    uint32_t slot = entity->slot, generation = entity->generation;
    assert (sim_store_slot (store, slot, generation) == entity);
    assert (sim_store_at (store, slot) == entity);
    rc = sim_store_delete (store, "/world/room1/cube10");
    assert (rc == 0);
    rc = sim_store_delete (store, "/world/room1/cube10");
    assert (rc == -1);
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
    sim_store_offer_t offered = s_offer (store, "/r", 2, 1, "simA", &replica);
    assert (offered == SIM_STORE_APPLIED);
    assert (replica && !replica->authority && replica->seq == 1);
    assert (strcmp (replica->source, "simA") == 0);
    offered = s_offer (store, "/r", 2, 1, "simA", &replica);
    assert (offered == SIM_STORE_SUPERSEDED);
    offered = s_offer (store, "/r", 2, 5, "simB", &replica);
    assert (offered == SIM_STORE_CONFLICT);
    offered = s_offer (store, "/r", 1, 9, "simA", &replica);
    assert (offered == SIM_STORE_STALE_EPOCH);
    offered = s_offer (store, "/r", 3, 1, "simB", &replica);
    assert (offered == SIM_STORE_APPLIED);
    assert (replica->epoch == 3 && strcmp (replica->source, "simB") == 0);
    entity = sim_store_create (store, "/mine", 5, 1, 1, true);
    assert (entity);
    //  Ours: never set from outside.
    offered = s_offer (store, "/mine", 9, 1, "simB", &replica);
    assert (offered == SIM_STORE_CONFLICT);

    //  Grants (grants.md section 4): an update applies only with a kept
    //  grant for exactly its epoch naming the sender's key.
    uint8_t key_a [32], key_b [32];
    memset (key_a, 0xaa, sizeof key_a);
    memset (key_b, 0xbb, sizeof key_b);
    offered = s_offer_keyed (store, "/g", 5, 1, "simA", key_a, NULL, &replica);
    assert (offered == SIM_STORE_UNPROVEN);
    assert (!sim_store_get (store, "/g"));  //  nothing kept for it
    offered = s_keep (store, "/g", 5, key_a, &replica);
    assert (offered == SIM_STORE_APPLIED);
    assert (replica->grant_epoch == 5 && replica->epoch == 0 && !replica->seq);
    //  A placeholder until its first update: not listed, not counted
    assert (replica->placeholder);
    size_t shown = sim_store_size (store);
    sim_entity_t *listed [4];
    size_t matched = sim_store_list (store, "/g", NULL, listed, 4, &more);
    assert (matched == 0);
    matched = sim_store_match (store, "/*", NULL, listed, 4, &more);
    for (size_t at = 0; at < matched; at++)
        assert (listed [at] != replica);
    assert (sim_store_grant_kept (replica, 5, key_a));
    assert (!sim_store_grant_kept (replica, 5, key_b));
    assert (!sim_store_grant_kept (replica, 6, key_a));
    assert (!sim_store_grant_kept (NULL, 5, key_a));
    //  Another sender's key, another epoch: unproven, whatever the epoch
    offered = s_offer_keyed (store, "/g", 5, 1, "simB", key_b, NULL, &replica);
    assert (offered == SIM_STORE_UNPROVEN);
    offered =
        s_offer_keyed (store, "/g", 1000000, 1, "simA", key_a, NULL, &replica);
    assert (offered == SIM_STORE_UNPROVEN);
    offered = s_offer_keyed (store, "/g", 5, 1, "simA", key_a, NULL, &replica);
    assert (offered == SIM_STORE_APPLIED);
    assert (replica->epoch == 5 && replica->seq == 1);
    assert (!replica->placeholder);
    assert (sim_store_size (store) == shown + 1);
    matched = sim_store_list (store, "/g", NULL, listed, 4, &more);
    assert (matched == 1 && listed [0] == replica);
    //  The former key in its grace proves it as well
    offered = s_offer_keyed (store, "/g", 5, 2, "simA", key_b, key_a, &replica);
    assert (offered == SIM_STORE_APPLIED);
    assert (replica->seq == 2);
    //  Older grants and updates are stale; a newer grant replaces the kept
    offered = s_keep (store, "/g", 4, key_b, &replica);
    assert (offered == SIM_STORE_STALE_EPOCH);
    offered = s_offer_keyed (store, "/g", 4, 9, "simA", key_a, NULL, &replica);
    assert (offered == SIM_STORE_STALE_EPOCH);
    offered = s_keep (store, "/g", 7, key_b, &replica);
    assert (offered == SIM_STORE_APPLIED);
    assert (replica->grant_epoch == 7 && replica->epoch == 5);
    offered = s_offer_keyed (store, "/g", 5, 3, "simA", key_a, NULL, &replica);
    assert (offered == SIM_STORE_UNPROVEN);  //  fenced by the newer grant
    offered = s_keep (store, "/g", 6, key_a, &replica);
    assert (offered == SIM_STORE_STALE_EPOCH);
    offered = s_offer_keyed (store, "/g", 7, 1, "simB", key_b, NULL, &replica);
    assert (offered == SIM_STORE_APPLIED);
    assert (replica->epoch == 7 && strcmp (replica->source, "simB") == 0);
    //  Ours keeps no replica grant, and keeps its own grant's bytes
    offered = s_keep (store, "/mine", 9, key_b, &replica);
    assert (offered == SIM_STORE_CONFLICT);
    entity = sim_store_get (store, "/mine");
    assert (!entity->grant && entity->grant_size == 0);
    grant_msg_t own = {
        .path = "/mine", .epoch = 4, .sim = "simA", .key_id = 1, .leaves = 1};
    uint8_t bytes [GRANT_MSG_MAX_SIZE];
    size_t size = grant_msg_encode (&own, bytes, sizeof bytes);
    assert (size > 0);
    rc = sim_store_set_grant (store, entity, bytes, size);
    assert (rc == 0);
    assert (entity->grant_size == size && entity->grant_epoch == 4);
    assert (memcmp (entity->grant, bytes, size) == 0);
    rc = sim_store_set_grant (store, entity, bytes, size - 1);
    assert (rc == -1);  //  does not decode
    snprintf (own.path, sizeof own.path, "/r");
    size_t other_size = grant_msg_encode (&own, bytes, sizeof bytes);
    rc = sim_store_set_grant (store, entity, bytes, other_size);
    assert (rc == -1);  //  another entity's
    assert (entity->grant_size == size && entity->grant_epoch == 4);
    rc = sim_store_set_grant (store, entity, NULL, 0);
    assert (rc == 0);
    assert (!entity->grant && entity->grant_size == 0 && !entity->grant_epoch);
    snprintf (own.path, sizeof own.path, "/mine");
    size = grant_msg_encode (&own, bytes, sizeof bytes);
    rc = sim_store_set_grant (store, entity, bytes, size);
    assert (rc == 0);  //  freed with the store
    sim_store_destroy (&store);
    assert (!store);

    //  The index against a plain record of what should be there, through
    //  many creates and deletes: runs of probes wrap around the end and
    //  close up behind every delete.
    store = sim_store_new ();
    enum { CANDIDATES = 1500 };
    bool present [CANDIDATES] = {false};
    uint32_t random = 2463534242u;
    for (int op = 1; op <= 40000; op++) {
        random ^= random << 13;
        random ^= random >> 17;
        random ^= random << 5;
        uint32_t pick = random % CANDIDATES;
        snprintf (path, sizeof path, "/p/%u", pick);
        if (present [pick]) {
            rc = sim_store_delete (store, path);
            assert (rc == 0);
            present [pick] = false;
        }
        else {
            entity = sim_store_create (store, path, strlen (path), 1, 0, false);
            assert (entity);
            present [pick] = true;
        }
        if (op % 2000 == 0) {
            size_t expected = 0;
            for (uint32_t at = 0; at < CANDIDATES; at++) {
                snprintf (path, sizeof path, "/p/%u", at);
                sim_entity_t *found = sim_store_get (store, path);
                assert (present [at] ? found && strcmp (found->path, path) == 0
                                     : !found);
                expected += present [at];
            }
            assert (sim_store_size (store) == expected);
        }
    }
    sim_store_destroy (&store);
    if (verbose)
        printf ("OK\n");
    return 0;
}
