/*  sim_grant: checking the ring's grants on the receiving side. */

#include "peer/sim_grant.h"
#include "protocol/grant_msg.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

void
sim_grant_keys_set (sim_grant_keys_t *self, const sim_grant_key_t *keys,
                    size_t count)
{
    self->count = 0;
    for (size_t at = 0; at < count; at++) {
        if (self->count < SIM_GRANT_MAX_KEYS) {
            self->keys [self->count++] = keys [at];
            continue;
        }
        //  Full: the newest keys matter, replace the oldest kept.
        size_t oldest = 0;
        for (size_t kept = 1; kept < self->count; kept++)
            if (self->keys [kept].id < self->keys [oldest].id)
                oldest = kept;
        if (keys [at].id > self->keys [oldest].id)
            self->keys [oldest] = keys [at];
    }
    if (self->count)
        self->enforced = true;
}

int
sim_grant_keys_from_json (const json_t *array, sim_grant_key_t *out,
                          size_t *count, sf_fault_t *fault)
{
    *count = 0;
    if (!json_is_array (array))
        return sf_fault_set (fault, SF_EINVAL, "ring_keys is not an array");
    size_t index;
    json_t *item;
    json_array_foreach (array, index, item)
    {
        json_t *id = json_object_get (item, "key_id");
        json_t *public = json_object_get (item, "public");
        json_t *retires = json_object_get (item, "retires_ms");
        sim_grant_key_t key = {0};
        if (!json_is_integer (id) || json_integer_value (id) < 1
            || json_integer_value (id) > UINT32_MAX || !json_is_string (public)
            || json_string_length (public) != 40
            || !zmq_z85_decode (key.public_key, json_string_value (public))
            || !(json_is_null (retires) || !retires
                 || (json_is_integer (retires)
                     && json_integer_value (retires) > 0)))
            return sf_fault_set (fault, SF_EINVAL,
                                 "ring_keys [%zu] is not {key_id, public, "
                                 "retires_ms}",
                                 index);
        key.id = (uint32_t) json_integer_value (id);
        key.retires_ms = json_is_integer (retires)
                             ? (uint64_t) json_integer_value (retires)
                             : 0;
        if (*count < SIM_GRANT_MAX_KEYS)
            out [(*count)++] = key;
        else {
            size_t oldest = 0;
            for (size_t kept = 1; kept < *count; kept++)
                if (out [kept].id < out [oldest].id)
                    oldest = kept;
            if (key.id > out [oldest].id)
                out [oldest] = key;
        }
    }
    return 0;
}

//  True if GRANT (whose ring key KEY is known and current) verifies:
//  its root is one KEYS verified already with the same signature, or its
//  signature checks now (and the root is remembered).
static bool
s_signed (sim_grant_keys_t *keys, const sim_grant_key_t *key,
          const grant_msg_t *grant)
{
    uint8_t root [32];
    if (grant_msg_root (grant, root))
        return false;
    for (size_t at = 0; at < SIM_GRANT_ROOTS; at++) {
        const sim_grant_root_t *kept = &keys->roots [at];
        if (kept->key_id == grant->key_id && kept->leaves == grant->leaves
            && memcmp (kept->root, root, sizeof root) == 0
            && memcmp (kept->signature, grant->signature, 64) == 0)
            return true;
    }
    keys->verified++;
    if (grant_msg_verify_root (grant, root, key->public_key))
        return false;
    sim_grant_root_t *slot = &keys->roots [keys->next_root];
    keys->next_root = (keys->next_root + 1) % SIM_GRANT_ROOTS;
    slot->key_id = grant->key_id;
    slot->leaves = grant->leaves;
    memcpy (slot->root, root, sizeof root);
    memcpy (slot->signature, grant->signature, 64);
    return true;
}

sim_grant_result_t
sim_grant_check (sim_grant_keys_t *keys, sim_store_t *store, const char *path,
                 size_t path_size, uint64_t epoch, const uint8_t *bytes,
                 size_t size, const sim_store_sender_t *sender, uint64_t now_ms)
{
    grant_msg_t grant;
    if (grant_msg_decode (&grant, bytes, size) || grant.epoch != epoch
        || strlen (grant.path) != path_size
        || memcmp (grant.path, path, path_size) != 0)
        return SIM_GRANT_BAD_SIGNATURE;  //  codecs refuse these before
    const sim_grant_key_t *key = NULL;
    for (size_t at = 0; at < keys->count && !key; at++)
        if (keys->keys [at].id == grant.key_id)
            key = &keys->keys [at];
    if (!key)
        return SIM_GRANT_BAD_SIGNATURE;
    if (key->retires_ms && now_ms >= key->retires_ms)
        return SIM_GRANT_RETIRED_KEY;
    bool sender_key = false;
    for (size_t at = 0; at < sender->count; at++)
        if (memcmp (grant.key, sender->keys [at], 32) == 0)
            sender_key = true;
    if (!sender_key)
        return SIM_GRANT_WRONG_SENDER;
    //  Stale before the signature: a fenced authority repeating its old
    //  grant costs no verification.
    sim_entity_t *entity = sim_store_find (store, path, path_size);
    if (entity && entity->authority)
        return SIM_GRANT_OURS;
    if (entity && (epoch < entity->epoch || epoch < entity->grant_epoch))
        return SIM_GRANT_STALE;
    if (sim_store_grant_kept (entity, epoch, grant.key))
        return SIM_GRANT_KEPT;
    if (!s_signed (keys, key, &grant))
        return SIM_GRANT_BAD_SIGNATURE;
    switch (sim_store_keep_grant (store, path, path_size,
                                  sim_store_hash (store, path, path_size),
                                  epoch, grant.key, &entity)) {
        case SIM_STORE_APPLIED:
            return SIM_GRANT_PROVEN;
        case SIM_STORE_STALE_EPOCH:
            return SIM_GRANT_STALE;
        case SIM_STORE_CONFLICT:
            return SIM_GRANT_OURS;
        default:
            return SIM_GRANT_NO_MEMORY;
    }
}

const char *
sim_grant_reason (sim_grant_result_t result)
{
    switch (result) {
        case SIM_GRANT_BAD_SIGNATURE:
            return "grant_bad_signature";
        case SIM_GRANT_RETIRED_KEY:
            return "grant_retired_key";
        case SIM_GRANT_WRONG_SENDER:
            return "grant_wrong_sender";
        case SIM_GRANT_STALE:
            return "grant_stale";
        default:
            return NULL;
    }
}

//  --------------------------------------------------------------------------
//  Self test

//  A grant of PATH at EPOCH to the sim holding KEY, signed with the ring
//  key KEY_ID whose secret is SECRET, into OUT. Returns its size.
static size_t
s_grant (const char *path, uint64_t epoch, const uint8_t *key, uint32_t key_id,
         const uint8_t *secret, uint8_t *out)
{
    grant_msg_t grant = {.epoch = epoch, .sim = "simA", .transfer = 4};
    snprintf (grant.path, sizeof grant.path, "%s", path);
    memcpy (grant.key, key, 32);
    int rc = grant_msg_sign (&grant, key_id, secret);
    assert (rc == 0);
    size_t size = grant_msg_encode (&grant, out, GRANT_MSG_MAX_SIZE);
    assert (size > 0);
    return size;
}

int
sim_grant_test (bool verbose)
{
    if (verbose)
        printf (" * sim_grant: ");
    int rc = sodium_init ();
    assert (rc >= 0);
    //  Two ring keys: 1 retiring at 5,000 ms, 2 current
    uint8_t seed [32], secret_1 [64], secret_2 [64];
    sim_grant_key_t ring [2] = {{1, {0}, 5000}, {2, {0}, 0}};
    memset (seed, 1, sizeof seed);
    crypto_sign_seed_keypair (ring [0].public_key, secret_1, seed);
    memset (seed, 2, sizeof seed);
    crypto_sign_seed_keypair (ring [1].public_key, secret_2, seed);
    sim_grant_keys_t keys = {0};
    sim_grant_keys_set (&keys, NULL, 0);
    assert (!keys.enforced);
    sim_grant_keys_set (&keys, ring, 2);
    assert (keys.enforced && keys.count == 2);

    uint8_t key_a [32], key_b [32];
    memset (key_a, 0xaa, sizeof key_a);
    memset (key_b, 0xbb, sizeof key_b);
    sim_store_sender_t from_a = {{key_a, NULL}, 1};
    sim_store_sender_t from_b = {{key_b, NULL}, 1};
    sim_store_sender_t from_b_was_a = {{key_b, key_a}, 2};
    sim_store_t *store = sim_store_new ();
    uint8_t grant [GRANT_MSG_MAX_SIZE];
    size_t size;
    sim_grant_result_t result;
    sim_entity_t *entity = NULL;

    //  Proven once, then kept without a second verification
    size = s_grant ("/w/a", 3, key_a, 2, secret_2, grant);
    result = sim_grant_check (&keys, store, "/w/a", 4, 3, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_PROVEN);
    entity = sim_store_get (store, "/w/a");
    assert (entity && entity->grant_epoch == 3);
    result = sim_grant_check (&keys, store, "/w/a", 4, 3, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_KEPT);
    //  (kept means not verified: with key 2 replaced by another public
    //  key, the same grant still passes, a new one does not)
    sim_grant_keys_t swapped = keys;
    memcpy (swapped.keys [1].public_key, swapped.keys [0].public_key, 32);
    result = sim_grant_check (&swapped, store, "/w/a", 4, 3, grant, size,
                              &from_a, 1000);
    assert (result == SIM_GRANT_KEPT);
    size = s_grant ("/w/a", 4, key_a, 2, secret_2, grant);
    result = sim_grant_check (&swapped, store, "/w/a", 4, 4, grant, size,
                              &from_a, 1000);
    assert (result == SIM_GRANT_BAD_SIGNATURE);
    assert (entity->grant_epoch == 3);
    //  A forged signature (one bit), an unknown key id
    grant [size - 1] ^= 1;
    result = sim_grant_check (&keys, store, "/w/a", 4, 4, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_BAD_SIGNATURE);
    size = s_grant ("/w/a", 4, key_a, 3, secret_2, grant);
    result = sim_grant_check (&keys, store, "/w/a", 4, 4, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_BAD_SIGNATURE);
    //  Signed by a key after its retirement; before it is fine
    size = s_grant ("/w/a", 4, key_a, 1, secret_1, grant);
    result = sim_grant_check (&keys, store, "/w/a", 4, 4, grant, size, &from_a,
                              5000);
    assert (result == SIM_GRANT_RETIRED_KEY);
    //  Naming another sim's key than the sender's
    result = sim_grant_check (&keys, store, "/w/a", 4, 4, grant, size, &from_b,
                              4999);
    assert (result == SIM_GRANT_WRONG_SENDER);
    assert (entity->grant_epoch == 3);
    result = sim_grant_check (&keys, store, "/w/a", 4, 4, grant, size,
                              &from_b_was_a, 4999);
    assert (result == SIM_GRANT_PROVEN);
    assert (entity->grant_epoch == 4);
    //  Older than the grant kept (the replica has no state yet)
    size = s_grant ("/w/a", 3, key_a, 2, secret_2, grant);
    result = sim_grant_check (&keys, store, "/w/a", 4, 3, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_STALE);
    //  A grant whose path or epoch is not the update's is refused
    result = sim_grant_check (&keys, store, "/w/b", 4, 3, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_BAD_SIGNATURE);
    result = sim_grant_check (&keys, store, "/w/a", 4, 5, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_BAD_SIGNATURE);
    //  Ours: not kept as a replica's
    sim_entity_t *mine = sim_store_create (store, "/w/m", 4, 1, 1, true);
    assert (mine);
    size = s_grant ("/w/m", 2, key_a, 2, secret_2, grant);
    result = sim_grant_check (&keys, store, "/w/m", 4, 2, grant, size, &from_a,
                              1000);
    assert (result == SIM_GRANT_OURS);
    assert (mine->grant_epoch == 0);
    //  Grants signed together: one Ed25519 check for all of them, and a
    //  signature or proof changed is checked (and refused), not matched
    grant_msg_t batch [3];
    for (int at = 0; at < 3; at++) {
        batch [at] = (grant_msg_t){.epoch = 1, .sim = "simA", .transfer = 5};
        snprintf (batch [at].path, sizeof batch [at].path, "/w/t%d", at);
        memcpy (batch [at].key, key_a, 32);
    }
    rc = grant_msg_sign_batch (batch, 3, 2, secret_2);
    assert (rc == 0);
    uint64_t verified = keys.verified;
    for (int at = 0; at < 3; at++) {
        size = grant_msg_encode (&batch [at], grant, sizeof grant);
        if (at == 2) {
            grant [size - 64] ^= 1;  //  the signature
            result = sim_grant_check (&keys, store, batch [at].path, 5, 1,
                                      grant, size, &from_a, 1000);
            assert (result == SIM_GRANT_BAD_SIGNATURE);
            grant [size - 64] ^= 1;
            grant [size - 65] ^= 1;  //  the proof
            result = sim_grant_check (&keys, store, batch [at].path, 5, 1,
                                      grant, size, &from_a, 1000);
            assert (result == SIM_GRANT_BAD_SIGNATURE);
            grant [size - 65] ^= 1;
            verified += 2;
        }
        result = sim_grant_check (&keys, store, batch [at].path, 5, 1, grant,
                                  size, &from_a, 1000);
        assert (result == SIM_GRANT_PROVEN);
    }
    assert (keys.verified == verified + 1);

    //  Reasons name the counters
    assert (
        strcmp (sim_grant_reason (SIM_GRANT_WRONG_SENDER), "grant_wrong_sender")
        == 0);
    assert (!sim_grant_reason (SIM_GRANT_KEPT));

    //  Keys from the ring's JSON; more than fit keep the newest
    json_t *array = json_array ();
    char text [41];
    zmq_z85_encode (text, ring [1].public_key, 32);
    for (int id = 1; id <= SIM_GRANT_MAX_KEYS + 2; id++)
        json_array_append_new (array,
                               json_pack ("{s:i,s:s,s:o}", "key_id", id,
                                          "public", text, "retires_ms",
                                          id == SIM_GRANT_MAX_KEYS + 2
                                              ? json_null ()
                                              : json_integer (1000 * id)));
    sim_grant_key_t read [SIM_GRANT_MAX_KEYS];
    size_t count;
    sf_fault_t fault;
    rc = sim_grant_keys_from_json (array, read, &count, &fault);
    assert (rc == 0 && count == SIM_GRANT_MAX_KEYS);
    uint32_t lowest = UINT32_MAX;
    for (size_t at = 0; at < count; at++)
        lowest = read [at].id < lowest ? read [at].id : lowest;
    assert (lowest == 3);
    for (size_t at = 0; at < count; at++)
        assert (read [at].retires_ms
                == (read [at].id == SIM_GRANT_MAX_KEYS + 2
                        ? 0
                        : 1000 * read [at].id));
    json_array_append_new (
        array, json_pack ("{s:i,s:s}", "key_id", 0, "public", text));
    rc = sim_grant_keys_from_json (array, read, &count, &fault);
    assert (rc == -1 && fault.error == SF_EINVAL);
    json_decref (array);
    //  Setting no keys later does not stop enforcing
    sim_grant_keys_set (&keys, NULL, 0);
    assert (keys.enforced && keys.count == 0);
    sim_store_destroy (&store);
    if (verbose)
        printf ("OK\n");
    return 0;
}
