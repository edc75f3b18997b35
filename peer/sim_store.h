/*  sim_store: a simulation server's entities, addressed by path: those it
    has authority over and the replicas of those it watches.

    A hash index by path for the hot path (every update looks one up) and
    an index sorted by path for listing by prefix and matching by pattern
    without a scan. Each entity also has a dense slot (and a generation
    that changes when a slot is reused), so per-peer bookkeeping can be
    flat arrays instead of more hashes. No I/O; time is passed in. */

#ifndef SIM_STORE_H_INCLUDED
#define SIM_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _sim_store_t sim_store_t;

//  One entity. Read-only outside sim_store; valid until it is deleted or
//  the store destroyed.
typedef struct {
    char *path;            //  NUL-terminated entity path
    size_t path_size;      //  its length
    uint64_t epoch;        //  authority epoch, from the ring
    uint64_t seq;          //  update sequence within the epoch
    uint8_t *state;        //  newest state (NULL when empty)
    size_t state_size;     //  bytes of state
    size_t capacity;       //  bytes allocated for state
    bool authority;        //  true: this sim is its authority
    char source [65];      //  replica: the sim whose update set it
    uint64_t updated_ms;   //  when the state last changed (wall clock)
    uint64_t saved_epoch;  //  the ring's checkpoint holds the state of
    uint64_t saved_seq;    //  this epoch and seq (sim_saver), 0: none
    uint32_t slot;         //  dense index, reused after delete
    uint32_t generation;   //  bumped each time the slot is reused
    //  Replica: the newest grant proven for it (grants.md section 4), so
    //  updates are checked against it and the same grant is not verified
    //  again; authority: those of GRANT below. 0: none.
    uint64_t grant_epoch;
    uint8_t grant_key [32];  //  the authority's key it names
    //  Authority: our own grant of the current epoch, sent before our
    //  updates (grants.md section 5). NULL: none yet.
    uint8_t *grant;
    size_t grant_size;
    //  A replica made by its grant, before its first update: it has no
    //  state yet and is no entity to anyone outside (not listed, not
    //  counted; callers showing entities one by one check it).
    bool placeholder;
    //  Its home is another instance (PATH@INSTANCE, federation.md section
    //  5): held here by that home's grant, checkpointed and streamed
    //  through it only (not yet: federation.md section 9), so neither to
    //  this instance's ring nor to this instance's sims.
    bool foreign;
} sim_entity_t;

//  A new, empty store. Returns NULL if out of memory or libsodium (its
//  hash) cannot start.
sim_store_t *sim_store_new (void);

//  Destroy the store and every entity, and null the caller's pointer.
void sim_store_destroy (sim_store_t **self_p);

//  The entity at PATH (NUL-terminated), or NULL. Lent.
sim_entity_t *sim_store_get (sim_store_t *self, const char *path);

//  The entity at the SIZE bytes of PATH (no terminator needed), or NULL.
sim_entity_t *sim_store_find (sim_store_t *self, const char *path, size_t size);

//  The index's hash of the SIZE bytes of PATH, for the calls taking one.
uint64_t sim_store_hash (sim_store_t *self, const char *path, size_t size);

//  Start loading what looking up the path whose hash is HASH will read
//  first: a batch of lookups prefetched together overlaps their cache
//  misses instead of waiting on each in turn.
void sim_store_prefetch (sim_store_t *self, uint64_t hash);

//  The entity in SLOT if its generation is still GENERATION, or NULL.
sim_entity_t *sim_store_slot (sim_store_t *self, uint32_t slot,
                              uint32_t generation);

//  The entity in SLOT whatever its generation, or NULL: for walking
//  every entity by slot, 0 to sim_store_slots ().
sim_entity_t *sim_store_at (sim_store_t *self, uint32_t slot);

//  Create the entity at PATH (a valid path, SIZE bytes) with EPOCH, SEQ
//  and AUTHORITY, and no state. Returns it, or NULL if it exists or memory
//  ran out.
sim_entity_t *sim_store_create (sim_store_t *self, const char *path,
                                size_t size, uint64_t epoch, uint64_t seq,
                                bool authority);

//  Replace ENTITY's state with the STATE_SIZE bytes at STATE (copied), and
//  its epoch and seq. Returns 0, or -1 if out of memory (entity unchanged).
int sim_store_set (sim_store_t *self, sim_entity_t *entity, uint64_t epoch,
                   uint64_t seq, const uint8_t *state, size_t state_size,
                   uint64_t now_ms);

//  What an offered replica state came to (state-datagram.md section 5).
typedef enum {
    SIM_STORE_APPLIED,      //  the replica took it
    SIM_STORE_STALE_EPOCH,  //  older epoch than the replica's
    SIM_STORE_CONFLICT,     //  same epoch from another sim, or ours
    SIM_STORE_SUPERSEDED,   //  same epoch and sim, seq not newer
    SIM_STORE_NO_MEMORY,    //  could not be stored
    SIM_STORE_UNPROVEN,     //  no grant kept for that epoch naming the sender
} sim_store_offer_t;

//  The keys a sender may hold (its current key, and its former one during
//  a key rotation's grace): an update is proven if the replica's grant
//  names one of them.
typedef struct {
    const uint8_t *keys [2];  //  32 bytes each
    size_t count;             //  0..2
} sim_store_sender_t;

//  Offer the replica state (EPOCH, SEQ, STATE) of the entity at PATH
//  (SIZE bytes, a valid path, HASH its sim_store_hash) from sim SOURCE
//  holding the keys SENDER (state-datagram.md section 5): an older epoch
//  is stale; then, unless SENDER is NULL (grants not checked: the ring's
//  keys are not known), the replica must keep a grant for exactly EPOCH
//  naming one of SENDER's keys; then it is applied if its epoch is newer,
//  or if it is the same epoch from the same sim with a newer seq. An
//  entity this sim is the authority of is never changed. Creates the
//  replica if there is none (only when SENDER is NULL: otherwise the
//  grant made it). *ENTITY is set to it when applied.
sim_store_offer_t sim_store_offer (sim_store_t *self, const char *path,
                                   size_t size, uint64_t hash, uint64_t epoch,
                                   uint64_t seq, const uint8_t *state,
                                   size_t state_size, const char *source,
                                   const sim_store_sender_t *sender,
                                   uint64_t now_ms, sim_entity_t **entity);

//  True if the replica ENTITY (may be NULL) keeps the grant of EPOCH
//  naming KEY: what such a grant proves is proven already, however it
//  was signed (alone, or in another tree).
bool sim_store_grant_kept (const sim_entity_t *entity, uint64_t epoch,
                           const uint8_t *key);

//  Keep the grant of EPOCH naming KEY, that the caller has verified (or
//  heard from the ring itself), for the replica at PATH (SIZE bytes,
//  HASH): replaces an
//  older grant; a placeholder replica (no state, not listed or counted
//  until its first update) is made if there is none.
//  Returns SIM_STORE_APPLIED (*ENTITY set), SIM_STORE_STALE_EPOCH (older
//  than the replica's epoch or the grant kept), SIM_STORE_CONFLICT (the
//  entity is ours), or SIM_STORE_NO_MEMORY.
sim_store_offer_t sim_store_keep_grant (sim_store_t *self, const char *path,
                                        size_t size, uint64_t hash,
                                        uint64_t epoch, const uint8_t *key,
                                        sim_entity_t **entity);

//  Set the grant of our own ENTITY to the SIZE bytes at GRANT (copied;
//  NULL: none), and grant_epoch and grant_key to its own: it is sent
//  while that is the entity's epoch. Returns 0, or -1 if the grant does
//  not decode, is for another path, or memory ran out (then ENTITY is
//  unchanged).
int sim_store_set_grant (sim_store_t *self, sim_entity_t *entity,
                         const uint8_t *grant, size_t size);

//  Delete the entity at PATH. Returns 0, or -1 if there is none.
int sim_store_delete (sim_store_t *self, const char *path);

//  Number of entities, placeholders aside.
size_t sim_store_size (sim_store_t *self);

//  Number of entities this sim is the authority of.
size_t sim_store_authoritative (sim_store_t *self);

//  Highest slot in use plus one: the length per-slot arrays need.
uint32_t sim_store_slots (sim_store_t *self);

//  Up to LIMIT entities (placeholders aside) whose path starts with
//  PREFIX, in path order,
//  starting after path AFTER (NULL: from the first) into OUT (LIMIT
//  pointers). Returns how many; *MORE tells if there are further ones.
size_t sim_store_list (sim_store_t *self, const char *prefix, const char *after,
                       sim_entity_t **out, size_t limit, bool *more);

//  Like sim_store_list for paths matching PATTERN (sf_name_path_match).
size_t sim_store_match (sim_store_t *self, const char *pattern,
                        const char *after, sim_entity_t **out, size_t limit,
                        bool *more);

//  Self test; returns 0 on success.
int sim_store_test (bool verbose);

#endif
