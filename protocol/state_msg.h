/*  state_msg: codec for state datagrams (protocol/state-datagram.md): the
    clear header, the STATE body (packed entity updates, each preceded by
    its grant while the peer may lack it) and the ACK body.
    Sealing is not here (peer/sim_seal); this module only lays out bytes
    and checks them, without allocating. */

#ifndef STATE_MSG_H_INCLUDED
#define STATE_MSG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_MSG_VERSION 2
#define STATE_MSG_HEADER 36      //  clear header, the AEAD's associated data
#define STATE_MSG_TAG 16         //  AEAD tag after the body
#define STATE_MSG_OVERHEAD 52    //  header + tag
#define STATE_MSG_KEY_ID 8       //  bytes of a public key naming it
#define STATE_MSG_ACK_BODY 28    //  fixed size of an ACK body
#define STATE_MSG_MAX_SIZE 8192  //  libzmq drops larger UDP messages
#define STATE_MSG_MIN_SIZE 512   //  smallest datagram_size allowed
//  Bytes of one update besides its path and state, at most (its type and
//  4 varints).
#define STATE_MSG_UPDATE_EXTRA 25
//  The most updates a body can hold: each takes at least 7 bytes.
#define STATE_MSG_MAX_UPDATES ((STATE_MSG_MAX_SIZE - STATE_MSG_OVERHEAD) / 7)

//  Record types of a STATE body.
#define STATE_MSG_RECORD_UPDATE 1
#define STATE_MSG_RECORD_GRANT 2

typedef enum {
    STATE_MSG_STATE = 1,  //  entity updates
    STATE_MSG_ACK = 2,    //  acknowledgement and credit
} state_msg_kind_t;

//  The clear header of a datagram.
typedef struct {
    uint8_t kind;                         //  state_msg_kind_t
    uint8_t sender [STATE_MSG_KEY_ID];    //  sender's key id
    uint8_t receiver [STATE_MSG_KEY_ID];  //  receiver's key id
    uint64_t session;                     //  sender's session, > 0
    uint64_t counter;                     //  send counter, > 0
} state_msg_header_t;

//  One update, decoded in place: PATH, STATE and GRANT point into the
//  body.
typedef struct {
    const char *path;      //  not NUL-terminated
    size_t path_size;      //  1..256, a valid entity path
    uint64_t epoch;        //  >= 1
    uint64_t seq;          //  >= 1
    const uint8_t *state;  //  may be NULL when STATE_SIZE is 0
    size_t state_size;
    const uint8_t *grant;  //  the grant record before it (grants.md section
                           //  3, for this path and epoch), or NULL
    size_t grant_size;     //  its bytes, 0 when GRANT is NULL
} state_msg_update_t;

//  The ACK body.
typedef struct {
    uint64_t session;  //  the session acknowledged
    uint64_t top;      //  highest counter received in it
    uint64_t bits;     //  bit i: counter top-1-i received
    uint32_t window;   //  credit: datagrams in flight allowed, >= 1
} state_msg_ack_t;

//  Write HEADER into OUT (STATE_MSG_HEADER bytes).
void state_msg_header_encode (const state_msg_header_t *header, uint8_t *out);

//  Decode the header of datagram DATA of SIZE bytes (the whole datagram,
//  so its size can be checked). Returns 0, or -1 if malformed.
int state_msg_header_decode (state_msg_header_t *header, const uint8_t *data,
                             size_t size);

//  Bytes the update record of one update with PATH_SIZE and STATE_SIZE
//  takes in a body, with EPOCH and SEQ (a grant record before it takes 1
//  more than the grant's size).
size_t state_msg_update_size (size_t path_size, uint64_t epoch, uint64_t seq,
                              size_t state_size);

//  Append UPDATE to the body in BODY[*USED..CAPACITY): its grant record
//  first if it has a grant (the caller's bytes, for UPDATE's path and
//  epoch), then its update record. Returns 0 and advances *USED, or -1 if
//  they do not fit (nothing written).
int state_msg_update_put (const state_msg_update_t *update, uint8_t *body,
                          size_t capacity, size_t *used);

//  Read the next update of BODY (SIZE bytes) at *OFFSET into UPDATE, with
//  the grant record before it if there is one: the grant must decode
//  (grant_msg) and be for the update's path and epoch; its signature is
//  not checked. Returns 1 and advances *OFFSET, 0 at the end, -1 if
//  malformed.
int state_msg_update_next (const uint8_t *body, size_t size, size_t *offset,
                           state_msg_update_t *update);

//  Decode every update of the STATE body BODY (SIZE bytes) into UPDATES
//  (CAPACITY of them; STATE_MSG_MAX_UPDATES always suffices). Returns how
//  many (at least 1), or -1 if the body is malformed anywhere, so that a
//  receiver checks all of it before applying any of it.
int state_msg_body_decode (const uint8_t *body, size_t size,
                           state_msg_update_t *updates, size_t capacity);

//  Write ACK into OUT (STATE_MSG_ACK_BODY bytes).
void state_msg_ack_encode (const state_msg_ack_t *ack, uint8_t *out);

//  Decode the ACK body BODY of SIZE bytes. Returns 0, or -1 if malformed.
int state_msg_ack_decode (state_msg_ack_t *ack, const uint8_t *body,
                          size_t size);

//  Self test; returns 0 on success.
int state_msg_test (bool verbose);

#endif
