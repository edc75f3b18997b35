/*  sim_seal: the cryptography of state datagrams (state-datagram.md,
    section 4): the pairwise X25519 secret, the per-direction, per-session
    key, and sealing and opening a datagram in place with
    XChaCha20-Poly1305 (libsodium). No state, no I/O. */

#ifndef SIM_SEAL_H_INCLUDED
#define SIM_SEAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_SEAL_KEY 32  //  bytes of keys, public, secret and derived

//  The key of one direction of one session.
typedef struct {
    uint8_t bytes [SIM_SEAL_KEY];
} sim_seal_key_t;

//  Initialise libsodium. Returns 0, or -1 if it cannot start.
int sim_seal_init (void);

//  The X25519 secret between SECRET (ours) and PEER_PUBLIC into SHARED.
//  Returns 0, or -1 if PEER_PUBLIC is a low-order point (no secret).
int sim_seal_shared (uint8_t *shared, const uint8_t *secret,
                     const uint8_t *peer_public);

//  Derive the key for datagrams from SENDER_PUBLIC to RECEIVER_PUBLIC in
//  SESSION from their SHARED secret.
void sim_seal_derive (sim_seal_key_t *key, const uint8_t *shared,
                      const uint8_t *sender_public,
                      const uint8_t *receiver_public, uint64_t session);

//  Seal the datagram CLEAR into OUT: CLEAR's header (STATE_MSG_HEADER
//  bytes) is written and BODY_SIZE bytes of body follow it; OUT gets the
//  header, the body encrypted and the tag. OUT may be CLEAR itself (then
//  it must have room for the tag), or the message about to be sent, which
//  saves a copy. Returns the sealed datagram's size.
size_t sim_seal_close (const sim_seal_key_t *key, const uint8_t *clear,
                       size_t body_size, uint8_t *out);

//  Open DATAGRAM of SIZE bytes (header checked by state_msg) into BODY
//  (SIZE - STATE_MSG_OVERHEAD bytes). Returns 0, or -1 if the tag does not
//  verify (BODY then holds nothing meaningful).
int sim_seal_open (const sim_seal_key_t *key, const uint8_t *datagram,
                   size_t size, uint8_t *body);

//  Self test; returns 0 on success.
int sim_seal_test (bool verbose);

#endif
