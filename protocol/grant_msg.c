/*  grant_msg: grants, the ring's signed proof of authority. */

#include "protocol/grant_msg.h"
#include "common/sf_json.h"
#include "common/sf_name.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <czmq.h>

//  Signed before the grant's bytes, so that a grant's signature can never
//  be taken for the ring's signature over anything else (grants.md 3).
#define S_CONTEXT "simfabric grant 1"
#define S_CONTEXT_SIZE (sizeof S_CONTEXT - 1)

static const uint8_t s_magic [3] = {0x53, 0x47, 0x31};  //  "SG1"

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

//  True if SELF's fields can be encoded.
static bool
s_valid (const grant_msg_t *self)
{
    size_t path_size = strnlen (self->path, sizeof self->path);
    return path_size >= 1 && path_size <= GRANT_MSG_MAX_PATH
           && sf_name_path_valid (self->path, path_size)
           && strnlen (self->sim, sizeof self->sim) <= GRANT_MSG_MAX_SIM
           && sf_name_valid (self->sim) && self->epoch >= 1
           && self->epoch <= GRANT_MSG_MAX_NUMBER
           && self->transfer <= GRANT_MSG_MAX_NUMBER;
}

size_t
grant_msg_encode (const grant_msg_t *self, uint8_t *out, size_t capacity)
{
    if (!s_valid (self))
        return 0;
    size_t path_size = strlen (self->path), sim_size = strlen (self->sim);
    size_t size = GRANT_MSG_FIXED + path_size + sim_size;
    if (size > capacity)
        return 0;
    memcpy (out, s_magic, 3);
    uint8_t *at = s_put (out + 3, path_size - 1, 1);
    memcpy (at, self->path, path_size);
    at = s_put (at + path_size, self->epoch, 8);
    at = s_put (at, sim_size, 1);
    memcpy (at, self->sim, sim_size);
    at += sim_size;
    memcpy (at, self->key, GRANT_MSG_KEY_SIZE);
    at = s_put (at + GRANT_MSG_KEY_SIZE, self->transfer, 8);
    at = s_put (at, self->key_id, 4);
    memcpy (at, self->signature, GRANT_MSG_SIGNATURE);
    assert (at + GRANT_MSG_SIGNATURE == out + size);
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
    size_t total = GRANT_MSG_FIXED + path_size + data [sim_at];
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
    const uint8_t *signature = s_get_bytes (&reader, GRANT_MSG_SIGNATURE);
    if (reader.bad || reader.left != 0 || self->key_id == 0 || !s_valid (self))
        goto malformed;
    memcpy (self->key, key, GRANT_MSG_KEY_SIZE);
    memcpy (self->signature, signature, GRANT_MSG_SIGNATURE);
    return 0;

malformed:
    memset (self, 0, sizeof *self);
    return -1;
}

//  Write the message the ring signs for SELF into OUT: the context, then
//  the grant's bytes but the signature. Returns its size, or 0.
static size_t
s_signed_message (const grant_msg_t *self,
                  uint8_t out [S_CONTEXT_SIZE + GRANT_MSG_MAX_SIZE])
{
    memcpy (out, S_CONTEXT, S_CONTEXT_SIZE);
    size_t size =
        grant_msg_encode (self, out + S_CONTEXT_SIZE, GRANT_MSG_MAX_SIZE);
    return size ? S_CONTEXT_SIZE + size - GRANT_MSG_SIGNATURE : 0;
}

int
grant_msg_sign (grant_msg_t *self, uint32_t key_id,
                const uint8_t secret [GRANT_MSG_SECRET_SIZE])
{
    if (key_id == 0)
        return -1;
    self->key_id = key_id;
    uint8_t message [S_CONTEXT_SIZE + GRANT_MSG_MAX_SIZE];
    size_t size = s_signed_message (self, message);
    if (size == 0)
        return -1;
    crypto_sign_detached (self->signature, NULL, message, size, secret);
    return 0;
}

int
grant_msg_verify (const grant_msg_t *self,
                  const uint8_t public [GRANT_MSG_KEY_SIZE])
{
    uint8_t message [S_CONTEXT_SIZE + GRANT_MSG_MAX_SIZE];
    size_t size = s_signed_message (self, message);
    if (size == 0 || self->key_id == 0)
        return -1;
    return crypto_sign_verify_detached (self->signature, message, size, public)
                   == 0
               ? 0
               : -1;
}

json_t *
grant_msg_to_json (const grant_msg_t *self)
{
    char key [41], signature [GRANT_MSG_SIGNATURE_TEXT + 1];
    zmq_z85_encode (key, self->key, GRANT_MSG_KEY_SIZE);
    zmq_z85_encode (signature, self->signature, GRANT_MSG_SIGNATURE);
    return json_pack ("{s:s, s:I, s:s, s:s, s:I, s:I, s:s}", "path", self->path,
                      "epoch", (json_int_t) self->epoch, "sim", self->sim,
                      "key", key, "transfer", (json_int_t) self->transfer,
                      "key_id", (json_int_t) self->key_id, "signature",
                      signature);
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

int
grant_msg_from_json (grant_msg_t *self, const json_t *object, sf_fault_t *fault)
{
    static const char *const fields [] = {
        "path", "epoch", "sim", "key", "transfer", "key_id", "signature", NULL};
    memset (self, 0, sizeof *self);
    const char *path, *sim;
    int64_t epoch, transfer, key_id;
    if (!json_is_object (object))
        return sf_fault_set (fault, SF_EINVAL, "a grant must be an object");
    if (sf_json_only (object, fields, fault)
        || sf_json_string (object, "path", true, &path, fault)
        || sf_json_int (object, "epoch", true, 1, GRANT_MSG_MAX_NUMBER, &epoch,
                        fault)
        || sf_json_string (object, "sim", true, &sim, fault)
        || sf_json_int (object, "transfer", true, 0, GRANT_MSG_MAX_NUMBER,
                        &transfer, fault)
        || sf_json_int (object, "key_id", true, 1, UINT32_MAX, &key_id, fault))
        goto failed;
    if (!sf_name_path_valid (path, strlen (path))) {
        sf_fault_set (fault, SF_EINVAL, "field 'path' is not an entity path");
        goto failed;
    }
    if (!sf_name_valid (sim)) {
        sf_fault_set (fault, SF_EINVAL, "field 'sim' is not a sim name");
        goto failed;
    }
    if (s_z85_field (object, "key", self->key, GRANT_MSG_KEY_SIZE, fault)
        || s_z85_field (object, "signature", self->signature,
                        GRANT_MSG_SIGNATURE, fault))
        goto failed;
    snprintf (self->path, sizeof self->path, "%s", path);
    snprintf (self->sim, sizeof self->sim, "%s", sim);
    self->epoch = (uint64_t) epoch;
    self->transfer = (uint64_t) transfer;
    self->key_id = (uint32_t) key_id;
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
    assert (memcmp (frame, "SG1", 3) == 0 && frame [3] == 7);
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
    bad [2] = '2';
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
    memset (bad + size - 68, 0, 4);  //  key-id 0
    rc = grant_msg_decode (&copy, bad, size);
    assert (rc == -1);

    //  The longest path and sim name
    grant_msg_t longest = grant;
    memset (longest.path, 'p', GRANT_MSG_MAX_PATH);
    longest.path [0] = '/';
    for (int at = 64; at < GRANT_MSG_MAX_PATH; at += 64)
        longest.path [at] = '/';
    longest.path [GRANT_MSG_MAX_PATH - 1] = 'q';
    memset (longest.sim, 's', GRANT_MSG_MAX_SIM);
    uint8_t big [GRANT_MSG_MAX_SIZE];
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
    invalid = grant;
    snprintf (invalid.sim, sizeof invalid.sim, "no way");
    assert (grant_msg_encode (&invalid, big, sizeof big) == 0);
    rc = grant_msg_sign (&grant, 0, secret);
    assert (rc == -1);

    //  JSON round trip
    json_t *json = grant_msg_to_json (&grant);
    assert (json);
    //  The known answer (grants.md's example)
    assert (
        streq (json_string_value (json_object_get (json, "signature")),
               "!IjJO*YG*e9?/%)?zhOZ?wxszwLY#CxTzbsDORUfoWxGnY}Oy-vtgd&Hrd2=!"
               "yd5P)h=McMIttoEkvY1"));
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
    json_object_set_new (wrong, "extra", json_true ());
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == -1 && strstr (fault.message, "extra"));
    json_object_del (wrong, "extra");
    rc = grant_msg_from_json (&copy, wrong, &fault);
    assert (rc == 0);
    json_decref (wrong);
    json_decref (json);

    if (verbose)
        printf ("OK\n");
    return 0;
}
