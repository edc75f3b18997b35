/*  grant_msg: grants, the ring's signed proof of authority. */

#include "protocol/grant_msg.h"
#include "common/sf_json.h"
#include "common/sf_name.h"

#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <czmq.h>

//  Signed before a tree's root, so that the ring's signature over grants
//  can never be taken for its signature over anything else (grants.md 3).
#define S_CONTEXT "simfabric grants 2"
#define S_CONTEXT_SIZE (sizeof S_CONTEXT - 1)
//  context, key-id, leaves, root
#define S_SIGNED_SIZE (S_CONTEXT_SIZE + 4 + 1 + GRANT_MSG_HASH)
//  The longest body a leaf hashes: path-len .. transfer
#define S_BODY_MAX (1 + GRANT_MSG_MAX_PATH + 8 + 1 + GRANT_MSG_MAX_SIM + 32 + 8)

static const uint8_t s_magic [3] = {0x53, 0x47, 0x32};  //  "SG2"

static uint8_t *
s_put (uint8_t *out, uint64_t value, int bytes)
{
    for (int at = bytes - 1; at >= 0; at--, value >>= 8)
        out [at] = (uint8_t) value;
    return out + bytes;
}

//  A bounded reader: every read checks the end first; an overrun marks it
//  bad and reads nothing, so the caller checks once.
typedef struct {
    const uint8_t *cursor;  //  next byte
    size_t left;            //  bytes remaining
    bool bad;               //  an overrun happened
} s_reader_t;

static const uint8_t *
s_get_bytes (s_reader_t *self, size_t size)
{
    if (self->bad || self->left < size) {
        self->bad = true;
        return NULL;
    }
    const uint8_t *bytes = self->cursor;
    self->cursor += size;
    self->left -= size;
    return bytes;
}

static uint64_t
s_get (s_reader_t *self, int bytes)
{
    const uint8_t *in = s_get_bytes (self, (size_t) bytes);
    uint64_t value = 0;
    for (int at = 0; in && at < bytes; at++)
        value = value << 8 | in [at];
    return value;
}

size_t
grant_msg_proof_length (size_t leaves, size_t leaf)
{
    size_t length = 0;
    for (; leaves > 1; leaf /= 2, leaves = (leaves + 1) / 2)
        if ((leaf ^ 1) < leaves)  //  else the last node, carried up alone
            length++;
    return length;
}

//  True if SIM is a sim's name as a ring knows it: a local name, or a
//  global one, NAME@INSTANCE.
static bool
s_sim_valid (const char *sim)
{
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    return sf_name_split (sim, local, instance);
}

//  True if SELF's grant fields (all but what signing sets) can be encoded.
static bool
s_valid_grant (const grant_msg_t *self)
{
    size_t path_size = strnlen (self->path, sizeof self->path);
    return path_size >= 1 && path_size <= GRANT_MSG_MAX_PATH
           && sf_name_path_valid (self->path, path_size)
           && strnlen (self->sim, sizeof self->sim) <= GRANT_MSG_MAX_SIM
           && s_sim_valid (self->sim) && self->epoch >= 1
           && self->epoch <= GRANT_MSG_MAX_NUMBER
           && self->transfer <= GRANT_MSG_MAX_NUMBER;
}

//  True if SELF can be encoded.
static bool
s_valid (const grant_msg_t *self)
{
    return s_valid_grant (self) && self->leaves >= 1
           && self->leaves <= GRANT_MSG_MAX_LEAVES && self->leaf < self->leaves;
}

//  Write SELF's body (path-len .. transfer, what its leaf hashes) at OUT.
//  Returns its size. SELF is valid.
static size_t
s_encode_body (const grant_msg_t *self, uint8_t *out)
{
    size_t path_size = strlen (self->path), sim_size = strlen (self->sim);
    uint8_t *at = s_put (out, path_size - 1, 1);
    memcpy (at, self->path, path_size);
    at = s_put (at + path_size, self->epoch, 8);
    at = s_put (at, sim_size, 1);
    memcpy (at, self->sim, sim_size);
    at += sim_size;
    memcpy (at, self->key, GRANT_MSG_KEY_SIZE);
    at = s_put (at + GRANT_MSG_KEY_SIZE, self->transfer, 8);
    return (size_t) (at - out);
}

size_t
grant_msg_encode (const grant_msg_t *self, uint8_t *out, size_t capacity)
{
    if (!s_valid (self))
        return 0;
    size_t proof_size =
        GRANT_MSG_HASH * grant_msg_proof_length (self->leaves, self->leaf);
    size_t size =
        GRANT_MSG_FIXED + strlen (self->path) + strlen (self->sim) + proof_size;
    if (size > capacity)
        return 0;
    memcpy (out, s_magic, 3);
    uint8_t *at = out + 3 + s_encode_body (self, out + 3);
    at = s_put (at, self->key_id, 4);
    at = s_put (at, self->leaves, 1);
    at = s_put (at, self->leaf, 1);
    memcpy (at, self->proof, proof_size);
    memcpy (at + proof_size, self->signature, GRANT_MSG_SIGNATURE);
    assert (at + proof_size + GRANT_MSG_SIGNATURE == out + size);
    return size;
}

size_t
grant_msg_measure (const uint8_t *data, size_t size)
{
    //  magic, path-len, path, epoch, sim-len
    if (size < 4 || memcmp (data, s_magic, 3) != 0)
        return 0;
    size_t path_size = (size_t) data [3] + 1;
    size_t sim_at = 4 + path_size + 8;
    if (size <= sim_at || data [sim_at] == 0
        || data [sim_at] > GRANT_MSG_MAX_SIM)
        return 0;
    //  ... key, transfer, key-id, then leaves and leaf
    size_t leaves_at = sim_at + 1 + data [sim_at] + 32 + 8 + 4;
    if (size < leaves_at + 2 || data [leaves_at] == 0
        || data [leaves_at] > GRANT_MSG_MAX_LEAVES
        || data [leaves_at + 1] >= data [leaves_at])
        return 0;
    size_t total =
        GRANT_MSG_FIXED + path_size + data [sim_at]
        + GRANT_MSG_HASH
              * grant_msg_proof_length (data [leaves_at], data [leaves_at + 1]);
    return total <= size ? total : 0;
}

int
grant_msg_decode (grant_msg_t *self, const uint8_t *data, size_t size)
{
    memset (self, 0, sizeof *self);
    if (size < GRANT_MSG_MIN_SIZE || size > GRANT_MSG_MAX_SIZE)
        goto malformed;
    s_reader_t reader = {data, size, false};
    const uint8_t *magic = s_get_bytes (&reader, 3);
    if (!magic || memcmp (magic, s_magic, 3) != 0)
        goto malformed;
    size_t path_size = (size_t) s_get (&reader, 1) + 1;
    const uint8_t *path = s_get_bytes (&reader, path_size);
    if (!path || !sf_name_path_valid ((const char *) path, path_size))
        goto malformed;
    memcpy (self->path, path, path_size);
    self->epoch = s_get (&reader, 8);
    size_t sim_size = (size_t) s_get (&reader, 1);
    const uint8_t *sim = s_get_bytes (&reader, sim_size);
    if (!sim || sim_size > GRANT_MSG_MAX_SIM)
        goto malformed;
    memcpy (self->sim, sim, sim_size);
    if (strlen (self->sim) != sim_size)  //  a NUL inside
        goto malformed;
    const uint8_t *key = s_get_bytes (&reader, GRANT_MSG_KEY_SIZE);
    self->transfer = s_get (&reader, 8);
    self->key_id = (uint32_t) s_get (&reader, 4);
    self->leaves = (uint8_t) s_get (&reader, 1);
    self->leaf = (uint8_t) s_get (&reader, 1);
    if (reader.bad || self->key_id == 0 || !s_valid (self))
        goto malformed;
    size_t proof_size =
        GRANT_MSG_HASH * grant_msg_proof_length (self->leaves, self->leaf);
    const uint8_t *proof = s_get_bytes (&reader, proof_size);
    const uint8_t *signature = s_get_bytes (&reader, GRANT_MSG_SIGNATURE);
    if (reader.bad || reader.left != 0)
        goto malformed;
    memcpy (self->key, key, GRANT_MSG_KEY_SIZE);
    memcpy (self->proof, proof, proof_size);
    memcpy (self->signature, signature, GRANT_MSG_SIGNATURE);
    return 0;

malformed:
    memset (self, 0, sizeof *self);
    return -1;
}

//  The leaf of SELF (valid): BLAKE2b-256 of 0x00 and its body.
static void
s_leaf_hash (const grant_msg_t *self, uint8_t out [GRANT_MSG_HASH])
{
    uint8_t leaf [1 + S_BODY_MAX];
    leaf [0] = 0x00;
    size_t size = 1 + s_encode_body (self, leaf + 1);
    crypto_generichash (out, GRANT_MSG_HASH, leaf, size, NULL, 0);
}

//  A node: BLAKE2b-256 of 0x01, LEFT and RIGHT. OUT may be either.
static void
s_node_hash (const uint8_t left [GRANT_MSG_HASH],
             const uint8_t right [GRANT_MSG_HASH], uint8_t out [GRANT_MSG_HASH])
{
    uint8_t node [1 + 2 * GRANT_MSG_HASH];
    node [0] = 0x01;
    memcpy (node + 1, left, GRANT_MSG_HASH);
    memcpy (node + 1 + GRANT_MSG_HASH, right, GRANT_MSG_HASH);
    crypto_generichash (out, GRANT_MSG_HASH, node, sizeof node, NULL, 0);
}

//  The message the ring signs for the tree of LEAVES whose root is ROOT,
//  under key KEY_ID, into OUT.
static void
s_signed_message (uint32_t key_id, size_t leaves,
                  const uint8_t root [GRANT_MSG_HASH],
                  uint8_t out [S_SIGNED_SIZE])
{
    memcpy (out, S_CONTEXT, S_CONTEXT_SIZE);
    uint8_t *at = s_put (out + S_CONTEXT_SIZE, key_id, 4);
    at = s_put (at, leaves, 1);
    memcpy (at, root, GRANT_MSG_HASH);
}

int
grant_msg_sign_batch (grant_msg_t *grants, size_t count, uint32_t key_id,
                      const uint8_t secret [GRANT_MSG_SECRET_SIZE])
{
    if (count < 1 || count > GRANT_MSG_MAX_LEAVES || key_id == 0)
        return -1;
    //  One level of the tree at a time, in place: node K of the next
    //  level is made from nodes 2K and 2K+1, and an odd last node is
    //  carried up alone. Each grant's proof takes its sibling, if any.
    uint8_t level [GRANT_MSG_MAX_LEAVES][GRANT_MSG_HASH];
    size_t place [GRANT_MSG_MAX_LEAVES], used [GRANT_MSG_MAX_LEAVES];
    for (size_t at = 0; at < count; at++)
        if (!s_valid_grant (&grants [at]))
            return -1;
    for (size_t at = 0; at < count; at++) {
        s_leaf_hash (&grants [at], level [at]);
        memset (grants [at].proof, 0, sizeof grants [at].proof);
        place [at] = at;
        used [at] = 0;
    }
    size_t depth = 0;
    for (size_t width = count; width > 1; width = (width + 1) / 2, depth++) {
        for (size_t at = 0; at < count; at++) {
            size_t sibling = place [at] ^ 1;
            if (sibling < width)
                memcpy (grants [at].proof [used [at]++], level [sibling],
                        GRANT_MSG_HASH);
            place [at] /= 2;
        }
        for (size_t node = 0; node < width / 2; node++)
            s_node_hash (level [2 * node], level [2 * node + 1], level [node]);
        if (width % 2)
            memcpy (level [width / 2], level [width - 1], GRANT_MSG_HASH);
    }
    assert (depth <= GRANT_MSG_MAX_DEPTH);
    uint8_t message [S_SIGNED_SIZE], signature [GRANT_MSG_SIGNATURE];
    s_signed_message (key_id, count, level [0], message);
    crypto_sign_detached (signature, NULL, message, sizeof message, secret);
    for (size_t at = 0; at < count; at++) {
        grants [at].key_id = key_id;
        grants [at].leaves = (uint8_t) count;
        grants [at].leaf = (uint8_t) at;
        memcpy (grants [at].signature, signature, GRANT_MSG_SIGNATURE);
    }
    return 0;
}

int
grant_msg_sign (grant_msg_t *self, uint32_t key_id,
                const uint8_t secret [GRANT_MSG_SECRET_SIZE])
{
    return grant_msg_sign_batch (self, 1, key_id, secret);
}

int
grant_msg_root (const grant_msg_t *self, uint8_t root [GRANT_MSG_HASH])
{
    if (!s_valid (self))
        return -1;
    s_leaf_hash (self, root);
    size_t used = 0;
    for (size_t leaf = self->leaf, width = self->leaves; width > 1;
         leaf /= 2, width = (width + 1) / 2) {
        if ((leaf ^ 1) >= width)
            continue;
        if (leaf % 2)
            s_node_hash (self->proof [used], root, root);
        else
            s_node_hash (root, self->proof [used], root);
        used++;
    }
    return 0;
}

int
grant_msg_verify_root (const grant_msg_t *self,
                       const uint8_t root [GRANT_MSG_HASH],
                       const uint8_t public [GRANT_MSG_KEY_SIZE])
{
    if (self->key_id == 0)
        return -1;
    uint8_t message [S_SIGNED_SIZE];
    s_signed_message (self->key_id, self->leaves, root, message);
    return crypto_sign_verify_detached (self->signature, message,
                                        sizeof message, public)
                   == 0
               ? 0
               : -1;
}

int
grant_msg_verify (const grant_msg_t *self,
                  const uint8_t public [GRANT_MSG_KEY_SIZE])
{
    uint8_t root [GRANT_MSG_HASH];
    return grant_msg_root (self, root) == 0
                   && grant_msg_verify_root (self, root, public) == 0
               ? 0
               : -1;
}

json_t *
grant_msg_to_json (const grant_msg_t *self)
{
    char key [41], signature [GRANT_MSG_SIGNATURE_TEXT + 1];
    char proof [GRANT_MSG_MAX_DEPTH * GRANT_MSG_HASH * 5 / 4 + 1] = "";
    zmq_z85_encode (key, self->key, GRANT_MSG_KEY_SIZE);
    zmq_z85_encode (signature, self->signature, GRANT_MSG_SIGNATURE);
    size_t proof_size =
        GRANT_MSG_HASH * grant_msg_proof_length (self->leaves, self->leaf);
    if (proof_size)
        zmq_z85_encode (proof, self->proof [0], proof_size);
    return json_pack ("{s:s, s:I, s:s, s:s, s:I, s:I, s:i, s:i, s:s, s:s}",
                      "path", self->path, "epoch", (json_int_t) self->epoch,
                      "sim", self->sim, "key", key, "transfer",
                      (json_int_t) self->transfer, "key_id",
                      (json_int_t) self->key_id, "leaves", self->leaves, "leaf",
                      self->leaf, "proof", proof, "signature", signature);
}

//  Read Z85 field NAME of OBJECT, SIZE bytes once decoded, into OUT.
static int
s_z85_field (const json_t *object, const char *name, uint8_t *out, size_t size,
             sf_fault_t *fault)
{
    const char *text;
    if (sf_json_string (object, name, true, &text, fault))
        return -1;
    if (strlen (text) != size * 5 / 4 || !zmq_z85_decode (out, text))
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must be %zu characters of Z85", name,
                             size * 5 / 4);
    return 0;
}

json_t *
grant_msg_statement_to_json (const grant_msg_t *self)
{
    char key [41];
    zmq_z85_encode (key, self->key, GRANT_MSG_KEY_SIZE);
    return json_pack ("{s:s, s:I, s:s, s:s, s:I}", "path", self->path, "epoch",
                      (json_int_t) self->epoch, "sim", self->sim, "key", key,
                      "transfer", (json_int_t) self->transfer);
}

//  Read the statement's fields of OBJECT (the signed fields are the
//  caller's) into SELF, zeroed first. Returns 0, or -1 with FAULT.
static int
s_statement_from_json (grant_msg_t *self, const json_t *object,
                       sf_fault_t *fault)
{
    memset (self, 0, sizeof *self);
    const char *path, *sim;
    int64_t epoch, transfer;
    if (!json_is_object (object))
        return sf_fault_set (fault, SF_EINVAL, "a grant must be an object");
    if (sf_json_string (object, "path", true, &path, fault)
        || sf_json_int (object, "epoch", true, 1, GRANT_MSG_MAX_NUMBER, &epoch,
                        fault)
        || sf_json_string (object, "sim", true, &sim, fault)
        || sf_json_int (object, "transfer", true, 0, GRANT_MSG_MAX_NUMBER,
                        &transfer, fault))
        return -1;
    if (!sf_name_path_valid (path, strlen (path)))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'path' is not an entity path");
    if (strlen (sim) > GRANT_MSG_MAX_SIM || !s_sim_valid (sim))
        return sf_fault_set (fault, SF_EINVAL, "field 'sim' is not a sim name");
    if (s_z85_field (object, "key", self->key, GRANT_MSG_KEY_SIZE, fault))
        return -1;
    snprintf (self->path, sizeof self->path, "%s", path);
    snprintf (self->sim, sizeof self->sim, "%s", sim);
    self->epoch = (uint64_t) epoch;
    self->transfer = (uint64_t) transfer;
    return 0;
}

int
grant_msg_statement_from_json (grant_msg_t *self, const json_t *object,
                               sf_fault_t *fault)
{
    static const char *const fields [] = {"path", "epoch",    "sim",
                                          "key",  "transfer", NULL};
    if (s_statement_from_json (self, object, fault)
        || sf_json_only (object, fields, fault)) {
        memset (self, 0, sizeof *self);
        return -1;
    }
    return 0;
}

int
grant_msg_from_json (grant_msg_t *self, const json_t *object, sf_fault_t *fault)
{
    static const char *const fields [] = {
        "path",   "epoch", "sim",   "key",       "transfer", "key_id",
        "leaves", "leaf",  "proof", "signature", NULL};
    const char *proof;
    int64_t key_id, leaves, leaf;
    if (s_statement_from_json (self, object, fault)
        || sf_json_only (object, fields, fault)
        || sf_json_int (object, "key_id", true, 1, UINT32_MAX, &key_id, fault)
        || sf_json_int (object, "leaves", true, 1, GRANT_MSG_MAX_LEAVES,
                        &leaves, fault)
        || sf_json_int (object, "leaf", true, 0, leaves - 1, &leaf, fault)
        || sf_json_string (object, "proof", true, &proof, fault))
        goto failed;
    size_t proof_size =
        GRANT_MSG_HASH
        * grant_msg_proof_length ((size_t) leaves, (size_t) leaf);
    if (strlen (proof) != proof_size * 5 / 4
        || (proof_size && !zmq_z85_decode (self->proof [0], proof))) {
        sf_fault_set (fault, SF_EINVAL,
                      "field 'proof' must be %zu characters of Z85 (%zu "
                      "hashes for leaf %" PRId64 " of %" PRId64 ")",
                      proof_size * 5 / 4, proof_size / GRANT_MSG_HASH, leaf,
                      leaves);
        goto failed;
    }
    if (s_z85_field (object, "signature", self->signature, GRANT_MSG_SIGNATURE,
                     fault))
        goto failed;
    self->key_id = (uint32_t) key_id;
    self->leaves = (uint8_t) leaves;
    self->leaf = (uint8_t) leaf;
    return 0;

failed:
    memset (self, 0, sizeof *self);
    return -1;
}

//  --------------------------------------------------------------------------
//  Self test

int
grant_msg_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * grant_msg: ");
    rc = sodium_init ();
    assert (rc >= 0);

    //  A ring key from a fixed seed, so the signature below is a known
    //  answer that any implementation of grants.md must reproduce.
    uint8_t seed [crypto_sign_SEEDBYTES], public [32], secret [64];
    memset (seed, 7, sizeof seed);
    crypto_sign_seed_keypair (public, secret, seed);

    grant_msg_t grant = {.epoch = 3, .transfer = 9};
    snprintf (grant.path, sizeof grant.path, "/world/a");
    snprintf (grant.sim, sizeof grant.sim, "sim-b");
    memset (grant.key, 0xab, sizeof grant.key);
    rc = grant_msg_sign (&grant, 1, secret);
    assert (rc == 0);
    assert (grant.key_id == 1);
    rc = grant_msg_verify (&grant, public);
    assert (rc == 0);

    //  Binary round trip
    uint8_t frame [GRANT_MSG_MAX_SIZE + 1];
    size_t size = grant_msg_encode (&grant, frame, sizeof frame);
    assert (size == GRANT_MSG_FIXED + 8 + 5);
    assert (memcmp (frame, "SG2", 3) == 0 && frame [3] == 7);
    assert (grant_msg_measure (frame, size) == size);
    assert (grant_msg_measure (frame, sizeof frame) == size);
    grant_msg_t copy;
    rc = grant_msg_decode (&copy, frame, size);
    assert (rc == 0);
    assert (memcmp (&copy, &grant, sizeof grant) == 0);
    rc = grant_msg_verify (&copy, public);
    assert (rc == 0);

    //  Signing is deterministic: the same grant, the same bytes
    grant_msg_t again = grant;
    memset (again.signature, 0, sizeof again.signature);
    rc = grant_msg_sign (&again, 1, secret);
    assert (rc == 0);
    assert (memcmp (again.signature, grant.signature, 64) == 0);

    //  Every truncation, and an extra byte, refused
    for (size_t cut = 0; cut < size; cut++) {
        rc = grant_msg_decode (&copy, frame, cut);
        assert (rc == -1);
        assert (grant_msg_measure (frame, cut) == 0);
    }
    frame [size] = 0;
    rc = grant_msg_decode (&copy, frame, size + 1);
    assert (rc == -1);
    assert (copy.epoch == 0 && copy.path [0] == 0);

    //  Any changed byte breaks the signature (or the decoding)
    for (size_t at = 0; at < size; at++) {
        frame [at] ^= 0x01;
        if (grant_msg_decode (&copy, frame, size) == 0) {
            rc = grant_msg_verify (&copy, public);
            assert (rc == -1);
        }
        frame [at] ^= 0x01;
    }
    //  Another key does not verify it
    uint8_t other_public [32], other_secret [64];
    crypto_sign_keypair (other_public, other_secret);
    rc = grant_msg_verify (&grant, other_public);
    assert (rc == -1);

    //  Bad magic, lengths and fields refused
    uint8_t bad [GRANT_MSG_MAX_SIZE];
    memcpy (bad, frame, size);
    bad [2] = '1';  //  draft 1's grants are not taken for these
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    assert (grant_msg_measure (bad, size) == 0);
    memcpy (bad, frame, size);
    bad [3] = 8;  //  path-len one too long: the path swallows the epoch
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    memcpy (bad, frame, size);
    bad [4] = 'w';  //  a path starts with '/'
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    memcpy (bad, frame, size);
    memset (bad + 12, 0, 8);  //  epoch 0
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    memcpy (bad, frame, size);
    bad [12] = 0x80;  //  epoch above what JSON carries
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    memcpy (bad, frame, size);
    bad [20] = 0;  //  sim-len 0
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    assert (grant_msg_measure (bad, size) == 0);
    bad [20] = 65;  //  sim-len above 64
    assert (grant_msg_measure (bad, sizeof bad) == 0);
    memcpy (bad, frame, size);
    bad [21] = ' ';  //  not a sim name
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    memcpy (bad, frame, size);
    memset (bad + size - 70, 0, 4);  //  key-id 0
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);
    memcpy (bad, frame, size);
    bad [size - 66] = 0;  //  leaves 0
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1 && grant_msg_measure (bad, size) == 0);
    bad [size - 66] = GRANT_MSG_MAX_LEAVES + 1;
    assert (grant_msg_measure (bad, sizeof bad) == 0);
    memcpy (bad, frame, size);
    bad [size - 65] = 1;  //  leaf 1 of 1
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1 && grant_msg_measure (bad, size) == 0);

    uint8_t big [GRANT_MSG_MAX_SIZE];
    //  Grants signed together: one signature over their tree's root,
    //  each grant's proof leading to it, for every tree shape up to the
    //  largest (odd widths carry their last node up alone).
    static grant_msg_t batch [GRANT_MSG_MAX_LEAVES];
    for (size_t count = 1; count <= GRANT_MSG_MAX_LEAVES; count++) {
        for (size_t at = 0; at < count; at++) {
            batch [at] = grant;
            snprintf (batch [at].path, sizeof batch [at].path, "/world/%zu",
                      at);
            batch [at].epoch = 1 + at;
        }
        rc = grant_msg_sign_batch (batch, count, 1, secret);
        assert (rc == 0);
        uint8_t root [GRANT_MSG_HASH], other [GRANT_MSG_HASH];
        rc = grant_msg_root (&batch [0], root);
        assert (rc == 0);
        for (size_t at = 0; at < count; at++) {
            assert (batch [at].leaves == count && batch [at].leaf == at);
            assert (grant_msg_proof_length (count, at) <= GRANT_MSG_MAX_DEPTH);
            rc = grant_msg_root (&batch [at], other);
            assert (rc == 0 && memcmp (root, other, sizeof root) == 0);
            rc = grant_msg_verify (&batch [at], public);
            assert (rc == 0);
            size = grant_msg_encode (&batch [at], big, sizeof big);
            assert (size
                    == GRANT_MSG_FIXED + strlen (batch [at].path) + 5
                           + GRANT_MSG_HASH
                                 * grant_msg_proof_length (count, at));
            assert (grant_msg_measure (big, sizeof big) == size);
            rc = grant_msg_decode (&copy, big, size);
            assert (rc == 0 && memcmp (&copy, &batch [at], sizeof copy) == 0);
        }
        //  A grant moved to another leaf, or another grant's proof, does
        //  not lead to the signed root.
        if (count > 1) {
            grant_msg_t moved = batch [0];
            moved.leaf = 1;
            memcpy (moved.proof, batch [1].proof, sizeof moved.proof);
            rc = grant_msg_verify (&moved, public);
            assert (rc == -1);
            moved = batch [count - 1];
            moved.proof [0][0] ^= 1;
            rc = grant_msg_verify (&moved, public);
            assert (rc == -1);
            moved = batch [count - 1];
            moved.leaves = (uint8_t) (count + (count < GRANT_MSG_MAX_LEAVES));
            if (moved.leaves != count) {
                rc = grant_msg_verify (&moved, public);
                assert (rc == -1);
            }
        }
    }
    assert (grant_msg_proof_length (GRANT_MSG_MAX_LEAVES, 0)
            == GRANT_MSG_MAX_DEPTH);
    assert (grant_msg_proof_length (3, 2) == 1);  //  carried up, then paired
    rc = grant_msg_sign_batch (batch, 0, 1, secret);
    assert (rc == -1);
    rc = grant_msg_sign_batch (batch, GRANT_MSG_MAX_LEAVES + 1, 1, secret);
    assert (rc == -1);
    batch [1].epoch = 0;  //  one invalid grant signs none
    batch [0].signature [0] ^= 1;
    uint8_t unchanged = batch [0].signature [0];
    rc = grant_msg_sign_batch (batch, 2, 1, secret);
    assert (rc == -1 && batch [0].signature [0] == unchanged);

    //  The longest path and sim name
    grant_msg_t longest = grant;
    memset (longest.path, 'p', GRANT_MSG_MAX_PATH);
    longest.path [0] = '/';
    for (int at = 64; at < GRANT_MSG_MAX_PATH; at += 64)
        longest.path [at] = '/';
    longest.path [GRANT_MSG_MAX_PATH - 1] = 'q';
    //  A global name at its longest: 64 bytes, '@', a 32-byte instance
    memset (longest.sim, 's', 64);
    longest.sim [64] = '@';
    memset (longest.sim + 65, 'i', SF_NAME_MAX_INSTANCE);
    longest.sim [GRANT_MSG_MAX_SIM] = 0;
    longest.leaves = GRANT_MSG_MAX_LEAVES;
    size = grant_msg_encode (&longest, big, sizeof big);
    assert (size == GRANT_MSG_MAX_SIZE);
    assert (grant_msg_encode (&longest, big, sizeof big - 1) == 0);
    rc = grant_msg_decode (&copy, big, size);
    assert (rc == 0);
    assert (strcmp (copy.path, longest.path) == 0);
    //  Invalid fields are not encoded
    grant_msg_t invalid = grant;
    invalid.epoch = 0;
    assert (grant_msg_encode (&invalid, big, sizeof big) == 0);
    rc = grant_msg_sign (&invalid, 1, secret);
    assert (rc == -1);
    static const char *const bad_sims [] = {"no way", "b@East", "b@", "@east",
                                            "b@e@f"};
    for (size_t at = 0; at < sizeof bad_sims / sizeof bad_sims [0]; at++) {
        invalid = grant;
        snprintf (invalid.sim, sizeof invalid.sim, "%s", bad_sims [at]);
        assert (grant_msg_encode (&invalid, big, sizeof big) == 0);
    }
    //  A foreign sim's grant (federation.md section 5) round trips
    grant_msg_t foreign = grant;
    snprintf (foreign.sim, sizeof foreign.sim, "b@east");
    rc = grant_msg_sign (&foreign, 1, secret);
    assert (rc == 0);
    size = grant_msg_encode (&foreign, big, sizeof big);
    rc = grant_msg_decode (&copy, big, size);
    assert (rc == 0 && streq (copy.sim, "b@east"));
    assert (grant_msg_verify (&copy, public) == 0);
    rc = grant_msg_sign (&grant, 0, secret);
    assert (rc == -1);

    //  JSON round trip
    json_t *json = grant_msg_to_json (&grant);
    assert (json);
    //  The known answer (grants.md's example)
    assert (
        streq (json_string_value (json_object_get (json, "signature")),
               "]N1En2Le9+07Pl?rQ1A-Mo%-JjIE539?KVZ@!izO34f.gGJ3e+II29XXU40Tp"
               "YD0N1et<*cfFFVX:om@"));
    assert (streq (json_string_value (json_object_get (json, "proof")), ""));
    //  ... and its three-grant example: the third grant's proof and the
    //  batch's signature
    grant_msg_t three [3] = {grant, grant, grant};
    snprintf (three [1].path, sizeof three [1].path, "/world/b");
    three [1].epoch = 5;
    snprintf (three [2].path, sizeof three [2].path, "/world/c");
    three [2].epoch = 1;
    rc = grant_msg_sign_batch (three, 3, 1, secret);
    assert (rc == 0);
    json_t *third = grant_msg_to_json (&three [2]);
    assert (streq (json_string_value (json_object_get (third, "proof")),
                   ".}@%AF)XinQ(3y7UF[7!S07XU!:AxiHfz%5>N(UT"));
    assert (streq (
        json_string_value (json_object_get (third, "signature")),
        "3mFd$*E*zc3l-tTn2uVcj!<Xx&CC8%w)0*8LdQGmv@LGH7J]&j5cZF+z3u9F5q=!d5n0"
        "*2}T6l/uNA+]"));
    json_decref (third);
    assert (json_integer_value (json_object_get (json, "epoch")) == 3);
    sf_fault_t fault;
    sf_fault_clear (&fault);
    rc = grant_msg_from_json (&copy, json, &fault);
    assert (rc == 0);
    assert (memcmp (&copy, &grant, sizeof grant) == 0);

    //  JSON with a bad field names it
    json_t *wrong = json_deep_copy (json);
    json_object_set_new (wrong, "epoch", json_integer (0));
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == -1 && fault.error == SF_EINVAL);
    assert (strstr (fault.message, "epoch"));
    json_object_set_new (wrong, "epoch", json_integer (3));
    json_object_set_new (wrong, "signature", json_string ("abc"));
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == -1 && strstr (fault.message, "signature"));
    json_object_set_new (wrong, "signature",
                         json_object_get (json, "signature"));
    json_incref (json_object_get (json, "signature"));
    json_object_set_new (wrong, "path", json_string ("nope"));
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == -1 && strstr (fault.message, "path"));
    json_object_set_new (wrong, "path", json_string ("/world/a"));
    json_object_set_new (wrong, "proof", json_string ("abcde"));
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == -1 && strstr (fault.message, "proof"));
    json_object_set_new (wrong, "proof", json_string (""));
    json_object_set_new (wrong, "leaf", json_integer (1));
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == -1 && strstr (fault.message, "leaf"));
    json_object_set_new (wrong, "leaf", json_integer (0));
    json_object_set_new (wrong, "extra", json_true ());
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == -1 && strstr (fault.message, "extra"));
    json_object_del (wrong, "extra");
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == 0);
    json_decref (wrong);
    json_decref (json);
    //  The statement alone: the same grant but its signing fields, which
    //  a signed form's reader refuses to miss
    json = grant_msg_statement_to_json (&grant);
    rc = grant_msg_statement_from_json (&copy, json, &fault);
    assert (rc == 0 && streq (copy.path, grant.path) && copy.key_id == 0);
    assert (copy.epoch == grant.epoch && copy.transfer == grant.transfer
            && memcmp (copy.key, grant.key, 32) == 0);
    rc = grant_msg_from_json (&copy, json, &fault);
    assert (rc == -1 && strstr (fault.message, "key_id"));
    json_object_set_new (json, "signature", json_string ("x"));
    rc = grant_msg_statement_from_json (&copy, json, &fault);
    assert (rc == -1 && strstr (fault.message, "signature"));
    json_decref (json);

    if (verbose)
        printf ("OK\n");
    return 0;
}
