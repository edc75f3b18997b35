/*  raft_msg: codec for Raft messages between homeservers
    (protocol/raft-wire.md).

    Encodes a struct raft_message of the raft library into one frame and
    decodes a frame back, allocating with raft_malloc in the shapes the
    core expects. Decoding is strict: every length is checked before it is
    used; anything malformed is refused, never asserted on. */

#ifndef RAFT_MSG_H_INCLUDED
#define RAFT_MSG_H_INCLUDED

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_MSG_VERSION 1
#define RAFT_MSG_MAX_SIZE (256u << 20)
#define RAFT_MSG_MAX_ENTRIES 65536u
#define RAFT_MSG_MAX_ADDRESS 255u
#define RAFT_MSG_MAX_CONF (1u << 20)
#define RAFT_MSG_MAX_SERVERS 64u

//  Frame types of simfabric's own, beside the library's (raft-wire.md).
#define RAFT_MSG_READ_PROBE 7
#define RAFT_MSG_READ_PROBE_ACK 8
#define RAFT_MSG_MEMBERS_QUERY 9
#define RAFT_MSG_MEMBERS 10
#define RAFT_MSG_DIGEST 11

#define RAFT_MSG_DIGEST_BYTES 16u  //  a replica digest (raft-wire.md 4)

#define RAFT_MSG_MAX_MEMBERS 64u
#define RAFT_MSG_MAX_NAME 64u
#define RAFT_MSG_KEY_SIZE 40u  //  a Z85 public key

//  One member as a Members frame names it.
typedef struct {
    raft_id id;
    char name [RAFT_MSG_MAX_NAME + 1];
    char raft [RAFT_MSG_MAX_ADDRESS + 1];
    char api [RAFT_MSG_MAX_ADDRESS + 1];  //  "" if it has none
    char key [RAFT_MSG_KEY_SIZE + 1];
} raft_msg_member_t;

//  A decoded message with room for the sender's address.
typedef struct {
    struct raft_message message;              //  server_id = sender
    char address [RAFT_MSG_MAX_ADDRESS + 1];  //  message.server_address
    int probe;  //  0, or a type of simfabric's own (RAFT_MSG_READ_PROBE
                //  and on): then only message.server_id and the fields
                //  of that type hold
    raft_term probe_term;  //  ReadProbe(Ack)
    uint64_t probe_seq;
    raft_msg_member_t *members;  //  Members: owned, see raft_msg_release
    unsigned n_members;
    raft_index digest_index;                 //  Digest: applied index, > 0
    uint8_t digest [RAFT_MSG_DIGEST_BYTES];  //  Digest: the digest there
} raft_msg_t;

//  Encode a ReadProbe or ReadProbeAck (TYPE) from SENDER at ADDRESS into
//  BUFFER (at least RAFT_MSG_PROBE_SIZE + address length). Returns the
//  size written, or 0 if ADDRESS is invalid.
#define RAFT_MSG_PROBE_SIZE (2 + 1 + 1 + 8 + 2 + 8 + 8)
size_t raft_msg_encode_probe (int type, raft_id sender, const char *address,
                              raft_term term, uint64_t seq, uint8_t *buffer,
                              size_t size);

//  Encode a MembersQuery (TYPE RAFT_MSG_MEMBERS_QUERY, N 0) or a Members
//  frame naming N MEMBERS, from SENDER at ADDRESS, into BUFFER (at most
//  RAFT_MSG_MEMBERS_MAX_SIZE bytes are needed). Returns the size written,
//  or 0 if it does not fit or anything is invalid (the decoder's rules).
#define RAFT_MSG_MEMBERS_MAX_SIZE                                        \
    (2 + 1 + 1 + 8 + 2 + RAFT_MSG_MAX_ADDRESS + 1                        \
     + RAFT_MSG_MAX_MEMBERS                                              \
           * (8 + 2 + RAFT_MSG_MAX_NAME + 2 * (2 + RAFT_MSG_MAX_ADDRESS) \
              + RAFT_MSG_KEY_SIZE))
size_t raft_msg_encode_members (int type, raft_id sender, const char *address,
                                const raft_msg_member_t *members, unsigned n,
                                uint8_t *buffer, size_t size);

//  Encode a Digest frame (type 11): SENDER at ADDRESS applied INDEX (> 0)
//  with replica DIGEST (RAFT_MSG_DIGEST_BYTES), into BUFFER (at least
//  RAFT_MSG_DIGEST_SIZE + address length). Returns the size written, or 0
//  if anything is invalid or it does not fit.
#define RAFT_MSG_DIGEST_SIZE (2 + 1 + 1 + 8 + 2 + 8 + RAFT_MSG_DIGEST_BYTES)
size_t raft_msg_encode_digest (raft_id sender, const char *address,
                               raft_index index, const uint8_t *digest,
                               uint8_t *buffer, size_t size);

//  Bytes that raft_msg_encode will write for MESSAGE (whose AppendEntries
//  entries, if any, must be filled in), sent as SENDER at ADDRESS; 0 if it
//  cannot be encoded (too large, unknown type, bad address).
size_t raft_msg_size (const struct raft_message *message, const char *address);

//  Encode MESSAGE from SENDER at ADDRESS into BUFFER of SIZE bytes, which
//  must be exactly raft_msg_size (). Returns 0, or -1 if it does not fit.
int raft_msg_encode (const struct raft_message *message, raft_id sender,
                     const char *address, uint8_t *buffer, size_t size);

//  Decode DATA of SIZE bytes into SELF. Returns 0, or -1 if malformed
//  (then nothing is left allocated). On success SELF may own raft_malloc'd
//  memory: see raft_msg_release and protocol/raft-wire.md section 6.
int raft_msg_decode (raft_msg_t *self, const uint8_t *data, size_t size);

//  Free everything a successful decode allocated (entries array and batch,
//  snapshot data, configuration, members), for a message that never
//  reached the core.
void raft_msg_release (raft_msg_t *self);

//  raft_configuration_decode, after which CONF is always safe to close:
//  on failure the library frees what it had decoded but leaves CONF
//  pointing at it, so closing it again would free it twice. Returns 0, or
//  the library's error code with CONF empty.
int raft_msg_conf_decode (const struct raft_buffer *buffer,
                          struct raft_configuration *conf);

//  Self test; returns 0 on success.
int raft_msg_test (bool verbose);

#endif
