/*  sim_grant: how a receiving sim checks the ring's grants
    (protocol/grants.md section 4), shared by the state stream (grant
    records in STATE datagrams) and the handoff channel (grants in CHUNKs).

    The ring's public signing keys, as the directory lists them, and one
    check: a grant that passes is kept with its replica in the store, so
    its signature is verified once per (path, epoch), and the store then
    applies only updates proven by it. No I/O; time is passed in. */

#ifndef SIM_GRANT_H_INCLUDED
#define SIM_GRANT_H_INCLUDED

#include "common/sf_error.h"
#include "peer/sim_store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Ring keys kept at most: the current one and those in their grace.
#define SIM_GRANT_MAX_KEYS 16

//  One ring signing key.
typedef struct {
    uint32_t id;              //  key_id, >= 1
    uint8_t public_key [32];  //  Ed25519 public key
    uint64_t retires_ms;  //  grants refused from then (wall clock), 0: never
} sim_grant_key_t;

//  Tree roots verified lately: the grants the ring signs together share
//  one signature, so a receiver checks it once for all of them.
#define SIM_GRANT_ROOTS 8

//  A root the ring's key KEY_ID signed, over a tree of LEAVES grants.
typedef struct {
    uint32_t key_id;  //  0: an empty slot
    uint8_t leaves;
    uint8_t root [32];
    uint8_t signature [64];
} sim_grant_root_t;

//  The ring keys a sim knows, and the roots it verified with them. A
//  value: copy it, no destructor.
typedef struct {
    sim_grant_key_t keys [SIM_GRANT_MAX_KEYS];
    size_t count;
    //  Set once any key was known, never cleared: from then on every
    //  update needs a grant (until then the ring predates grants).
    bool enforced;
    sim_grant_root_t roots [SIM_GRANT_ROOTS];
    size_t next_root;   //  the slot the next verified root takes
    uint64_t verified;  //  Ed25519 checks made (the rest hit a root)
} sim_grant_keys_t;

//  What checking a grant came to. The names after OK are the counters.
typedef enum {
    SIM_GRANT_PROVEN,         //  verified now and kept
    SIM_GRANT_KEPT,           //  the grant kept already: not verified again
    SIM_GRANT_OURS,           //  for an entity this sim is the authority of
    SIM_GRANT_BAD_SIGNATURE,  //  unknown key id, malformed or not verifying
    SIM_GRANT_RETIRED_KEY,    //  signed by a key past its retires_ms
    SIM_GRANT_WRONG_SENDER,   //  names another key than the sender's
    SIM_GRANT_STALE,          //  older than the replica or the grant kept
    SIM_GRANT_NO_MEMORY,      //  could not be kept
} sim_grant_result_t;

//  Set SELF to the COUNT keys at KEYS (the highest ids if more than
//  SIM_GRANT_MAX_KEYS). A count of 0 keeps SELF enforcing if it was.
void sim_grant_keys_set (sim_grant_keys_t *self, const sim_grant_key_t *keys,
                         size_t count);

//  Read the ring's `ring_keys` JSON array ({"key_id", "public" (Z85),
//  "retires_ms" (null: current)}) into OUT (SIM_GRANT_MAX_KEYS of them)
//  and *COUNT. Returns 0, or -1 with FAULT naming the bad entry.
int sim_grant_keys_from_json (const json_t *array, sim_grant_key_t *out,
                              size_t *count, sf_fault_t *fault);

//  Check the grant GRANT (SIZE bytes) of the entity at PATH (PATH_SIZE
//  bytes) at EPOCH, from a sender holding SENDER's keys, at NOW_MS (wall
//  clock), in the order of grants.md section 4 (the caller has checked
//  that the path is watched): its key id is known and not retired; it
//  names one of the sender's keys; it is not older than the replica's
//  epoch or the grant kept; unless it is the grant kept, its signature
//  verifies (once per tree: KEYS keeps the roots it verified). A grant
//  that passes is kept in STORE.
sim_grant_result_t sim_grant_check (sim_grant_keys_t *keys, sim_store_t *store,
                                    const char *path, size_t path_size,
                                    uint64_t epoch, const uint8_t *grant,
                                    size_t size,
                                    const sim_store_sender_t *sender,
                                    uint64_t now_ms);

//  The counter name of RESULT ("grant_bad_signature", ...), or NULL for
//  the results that are not drops.
const char *sim_grant_reason (sim_grant_result_t result);

//  Self test; returns 0 on success.
int sim_grant_test (bool verbose);

#endif
