/*  sim_seal: sealing state datagrams. */

#include "peer/sim_seal.h"
#include "protocol/state_msg.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

//  Domain separation: these keys serve nothing else.
static const char s_label [] = "simfabric state 1";

int
sim_seal_init (void)
{
    return sodium_init () < 0 ? -1 : 0;
}

int
sim_seal_shared (uint8_t *shared, const uint8_t *secret,
                 const uint8_t *peer_public)
{
    return crypto_scalarmult (shared, secret, peer_public) == 0 ? 0 : -1;
}

void
sim_seal_derive (sim_seal_key_t *key, const uint8_t *shared,
                 const uint8_t *sender_public, const uint8_t *receiver_public,
                 uint64_t session)
{
    uint8_t session_be [8];
    for (int at = 7; at >= 0; at--, session >>= 8)
        session_be [at] = (uint8_t) session;
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, SIM_SEAL_KEY);
    crypto_generichash_update (&state, (const uint8_t *) s_label,
                               sizeof s_label - 1);
    crypto_generichash_update (&state, shared, SIM_SEAL_KEY);
    crypto_generichash_update (&state, sender_public, SIM_SEAL_KEY);
    crypto_generichash_update (&state, receiver_public, SIM_SEAL_KEY);
    crypto_generichash_update (&state, session_be, sizeof session_be);
    crypto_generichash_final (&state, key->bytes, SIM_SEAL_KEY);
}

//  The nonce is the header's session and counter, then zeros: unique per
//  key as long as a counter is never reused within a session.
static void
s_nonce (uint8_t *nonce, const uint8_t *datagram)
{
    memcpy (nonce, datagram + 20, 16);
    memset (nonce + 16, 0, 8);
}

size_t
sim_seal_close (const sim_seal_key_t *key, const uint8_t *clear,
                size_t body_size, uint8_t *out)
{
    uint8_t nonce [crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    s_nonce (nonce, clear);
    if (out != clear)
        memcpy (out, clear, STATE_MSG_HEADER);
    uint8_t *body = out + STATE_MSG_HEADER;
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached (
        body, body + body_size, NULL, clear + STATE_MSG_HEADER, body_size,
        clear, STATE_MSG_HEADER, NULL, nonce, key->bytes);
    return STATE_MSG_OVERHEAD + body_size;
}

int
sim_seal_open (const sim_seal_key_t *key, const uint8_t *datagram, size_t size,
               uint8_t *body)
{
    if (size < STATE_MSG_OVERHEAD)
        return -1;
    uint8_t nonce [crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    s_nonce (nonce, datagram);
    size_t body_size = size - STATE_MSG_OVERHEAD;
    return crypto_aead_xchacha20poly1305_ietf_decrypt_detached (
               body, NULL, datagram + STATE_MSG_HEADER, body_size,
               datagram + STATE_MSG_HEADER + body_size, datagram,
               STATE_MSG_HEADER, nonce, key->bytes)
                   == 0
               ? 0
               : -1;
}

//  Build a sealed STATE datagram of BODY_SIZE bytes of BYTE from A to B.
static size_t
s_datagram (uint8_t *datagram, const sim_seal_key_t *key, uint64_t session,
            uint64_t counter, size_t body_size, uint8_t byte)
{
    state_msg_header_t header = {STATE_MSG_STATE, {1}, {2}, session, counter};
    state_msg_header_encode (&header, datagram);
    memset (datagram + STATE_MSG_HEADER, byte, body_size);
    return sim_seal_close (key, datagram, body_size, datagram);
}

int
sim_seal_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sim_seal: ");
    rc = sim_seal_init ();
    assert (rc == 0);
    uint8_t a_public [32], a_secret [32], b_public [32], b_secret [32];
    crypto_box_keypair (a_public, a_secret);
    crypto_box_keypair (b_public, b_secret);

    //  Both ends compute the same secret and the same key per direction
    uint8_t shared_a [32], shared_b [32];
    rc = sim_seal_shared (shared_a, a_secret, b_public);
    assert (rc == 0);
    rc = sim_seal_shared (shared_b, b_secret, a_public);
    assert (rc == 0);
    assert (memcmp (shared_a, shared_b, 32) == 0);
    sim_seal_key_t a_to_b, b_sees, b_to_a, next_session;
    sim_seal_derive (&a_to_b, shared_a, a_public, b_public, 7);
    sim_seal_derive (&b_sees, shared_b, a_public, b_public, 7);
    sim_seal_derive (&b_to_a, shared_b, b_public, a_public, 7);
    sim_seal_derive (&next_session, shared_a, a_public, b_public, 8);
    assert (memcmp (&a_to_b, &b_sees, sizeof a_to_b) == 0);
    assert (memcmp (&a_to_b, &b_to_a, sizeof a_to_b) != 0);
    assert (memcmp (&a_to_b, &next_session, sizeof a_to_b) != 0);

    //  A low-order public key gives no secret
    uint8_t zero [32] = {0};
    rc = sim_seal_shared (shared_a, a_secret, zero);
    assert (rc == -1);

    //  Round trip
    uint8_t datagram [1200], body [1200];
    size_t size = s_datagram (datagram, &a_to_b, 7, 1, 100, 0x5a);
    assert (size == 100 + STATE_MSG_OVERHEAD);
    assert (datagram [STATE_MSG_HEADER] != 0x5a
            || datagram [STATE_MSG_HEADER + 1] != 0x5a);
    rc = sim_seal_open (&b_sees, datagram, size, body);
    assert (rc == 0);
    for (size_t at = 0; at < 100; at++)
        assert (body [at] == 0x5a);

    //  Any flipped bit, header or body or tag, fails; so do truncations,
    //  the other direction's key and another session's key
    for (size_t at = 0; at < size; at++) {
        datagram [at] ^= 0x10;
        rc = sim_seal_open (&b_sees, datagram, size, body);
        assert (rc == -1);
        datagram [at] ^= 0x10;
    }
    for (size_t cut = 0; cut < size; cut++) {
        rc = sim_seal_open (&b_sees, datagram, cut, body);
        assert (rc == -1);
    }
    rc = sim_seal_open (&b_to_a, datagram, size, body);
    assert (rc == -1);
    rc = sim_seal_open (&next_session, datagram, size, body);
    assert (rc == -1);
    rc = sim_seal_open (&b_sees, datagram, size, body);
    assert (rc == 0);

    //  The same body under another counter seals differently
    uint8_t other [1200];
    s_datagram (other, &a_to_b, 7, 2, 100, 0x5a);
    assert (memcmp (other + STATE_MSG_HEADER, datagram + STATE_MSG_HEADER, 100)
            != 0);

    //  Sealed into another buffer: the same bytes as in place, and the
    //  clear datagram left as it was
    uint8_t clear [1200], elsewhere [1200];
    state_msg_header_t header = {STATE_MSG_STATE, {1}, {2}, 7, 2};
    state_msg_header_encode (&header, clear);
    memset (clear + STATE_MSG_HEADER, 0x5a, 100);
    memset (elsewhere, 0, sizeof elsewhere);
    size_t sealed = sim_seal_close (&a_to_b, clear, 100, elsewhere);
    assert (sealed == size);
    assert (memcmp (elsewhere, other, size) == 0);
    assert (clear [STATE_MSG_HEADER] == 0x5a
            && clear [STATE_MSG_HEADER + 99] == 0x5a);

    //  An empty body still carries a tag that must verify
    size = s_datagram (datagram, &a_to_b, 7, 3, 0, 0);
    assert (size == STATE_MSG_OVERHEAD);
    rc = sim_seal_open (&b_sees, datagram, size, body);
    assert (rc == 0);
    if (verbose)
        printf ("OK\n");
    return 0;
}
