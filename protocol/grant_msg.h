/*  grant_msg: codec for grants (protocol/grants.md section 3), the ring's
    signed statement that a sim is the authority of one entity at one
    epoch: the binary form (datagrams, CHUNKs), the hash tree whose root
    the ring signs once for many grants, signing and checking with
    Ed25519, and the JSON form (replies, events).

    A grant is a small value copied out of the frame: a receiver keeps one
    per watched entity, so it must not point into a datagram. Decoding
    allocates nothing and refuses anything that its encoder would not
    write. */

#ifndef GRANT_MSG_H_INCLUDED
#define GRANT_MSG_H_INCLUDED

#include "common/sf_error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRANT_MSG_MAX_PATH 256          //  bytes of a path (SF_NAME_MAX_PATH)
#define GRANT_MSG_MAX_SIM 97            //  bytes of NAME@INSTANCE (64 + 1 + 32)
#define GRANT_MSG_KEY_SIZE 32           //  a CURVE or Ed25519 public key
#define GRANT_MSG_SECRET_SIZE 64        //  an Ed25519 secret key (libsodium's)
#define GRANT_MSG_SIGNATURE 64          //  an Ed25519 signature
#define GRANT_MSG_HASH 32               //  a BLAKE2b-256 tree node
#define GRANT_MSG_MAX_LEAVES 16         //  grants under one signature
#define GRANT_MSG_MAX_DEPTH 4           //  proof hashes of 16 leaves
#define GRANT_MSG_FIXED 123             //  bytes besides path, sim, proof
#define GRANT_MSG_MIN_SIZE 125          //  one-byte path and sim, no proof
#define GRANT_MSG_MAX_SIZE 604          //  longest path and sim, deepest proof
#define GRANT_MSG_MAX_NUMBER INT64_MAX  //  epoch, transfer: JSON integers
#define GRANT_MSG_SIGNATURE_TEXT 80     //  Z85 characters of a signature

typedef struct {
    char path [GRANT_MSG_MAX_PATH + 1];  //  entity path, NUL-terminated
    uint64_t epoch;                      //  the epoch granted, >= 1
    //  The authority's name as its home ring knows it: a local name, or
    //  NAME@INSTANCE for a foreign sim (federation.md), NUL-terminated.
    char sim [GRANT_MSG_MAX_SIM + 1];
    uint8_t key [GRANT_MSG_KEY_SIZE];  //  authority's CURVE public key
    uint64_t transfer;  //  ring transfer id; 0 for create or import
    uint32_t key_id;    //  ring key that signed it, >= 1
    uint8_t leaves;     //  grants signed together, 1..GRANT_MSG_MAX_LEAVES
    uint8_t leaf;       //  this grant's place among them, < leaves
    //  The sibling hashes from this leaf up to the signed root, as many as
    //  grant_msg_proof_length (leaves, leaf) says; the rest zero.
    uint8_t proof [GRANT_MSG_MAX_DEPTH][GRANT_MSG_HASH];
    uint8_t signature [GRANT_MSG_SIGNATURE];  //  Ed25519 over the root
} grant_msg_t;

//  Hashes in the proof of leaf LEAF of a tree of LEAVES (grants.md
//  section 3); 0 for a grant signed alone.
size_t grant_msg_proof_length (size_t leaves, size_t leaf);

//  Encode SELF into OUT (CAPACITY bytes). Returns its size, or 0 if it
//  does not fit or a field is invalid (path, sim name, epoch 0, epoch or
//  transfer above GRANT_MSG_MAX_NUMBER, leaves or leaf out of range).
size_t grant_msg_encode (const grant_msg_t *self, uint8_t *out,
                         size_t capacity);

//  Decode exactly SIZE bytes at DATA into SELF. Returns 0, or -1 if
//  malformed (then SELF is zeroed). The signature is not checked.
int grant_msg_decode (grant_msg_t *self, const uint8_t *data, size_t size);

//  Bytes the grant starting at DATA takes, read from its length fields,
//  for a grant embedded in a larger frame; 0 if SIZE bytes cannot hold it
//  or its magic or lengths are wrong. Decode those bytes next.
size_t grant_msg_measure (const uint8_t *data, size_t size);

//  Sign the COUNT grants at GRANTS (1..GRANT_MSG_MAX_LEAVES) together with
//  the ring key KEY_ID whose libsodium secret key is SECRET: one Ed25519
//  signature over the root of their hash tree. Sets each grant's key_id,
//  leaves, leaf, proof and signature. Returns 0, or -1 (nothing signed)
//  if COUNT or a field is invalid. Deterministic: the same grants in the
//  same order and key give the same bytes.
int grant_msg_sign_batch (grant_msg_t *grants, size_t count, uint32_t key_id,
                          const uint8_t secret [GRANT_MSG_SECRET_SIZE]);

//  Sign SELF alone (a tree of one leaf). As grant_msg_sign_batch.
int grant_msg_sign (grant_msg_t *self, uint32_t key_id,
                    const uint8_t secret [GRANT_MSG_SECRET_SIZE]);

//  The root of the tree SELF's proof leads to, into ROOT. Returns 0, or -1
//  if SELF is invalid. Grants of one signature share it, so a receiver
//  that verified it once may trust it for the others (grants.md 4).
int grant_msg_root (const grant_msg_t *self, uint8_t root [GRANT_MSG_HASH]);

//  Check SELF's signature over ROOT (grant_msg_root's) against the ring
//  public key PUBLIC. Returns 0 if it verifies, else -1.
int grant_msg_verify_root (const grant_msg_t *self,
                           const uint8_t root [GRANT_MSG_HASH],
                           const uint8_t public [GRANT_MSG_KEY_SIZE]);

//  Check SELF's signature against the ring public key PUBLIC (the key
//  listed for self->key_id): its root, then the signature. Returns 0 if
//  it verifies, else -1.
int grant_msg_verify (const grant_msg_t *self,
                      const uint8_t public [GRANT_MSG_KEY_SIZE]);

//  The JSON form of SELF: {"path", "epoch", "sim", "key", "transfer",
//  "key_id", "leaves", "leaf", "proof", "signature"}, keys, proof and
//  signature Z85. Returns a new reference, or NULL if out of memory.
json_t *grant_msg_to_json (const grant_msg_t *self);

//  Read the JSON form OBJECT into SELF. Returns 0, or -1 with FAULT
//  (SF_EINVAL) naming the bad field. The signature is not checked.
int grant_msg_from_json (grant_msg_t *self, const json_t *object,
                         sf_fault_t *fault);

//  The unsigned JSON form of SELF, the statement alone (in events):
//  {"path", "epoch", "sim", "key", "transfer"}. Returns a new reference,
//  or NULL if out of memory.
json_t *grant_msg_statement_to_json (const grant_msg_t *self);

//  Read an unsigned JSON form OBJECT (grant_msg_statement_to_json's) into
//  SELF, whose signing fields are left zero: a statement to believe only
//  from the ring itself, never to send. Returns 0, or -1 with FAULT
//  (SF_EINVAL) naming the bad field.
int grant_msg_statement_from_json (grant_msg_t *self, const json_t *object,
                                   sf_fault_t *fault);

//  Self test; returns 0 on success.
int grant_msg_test (bool verbose);

#endif
