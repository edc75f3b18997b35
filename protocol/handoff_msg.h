/*  handoff_msg: codec for the handoff channel (protocol/handoff.md):
    HANDOFF, HANDOFF_ACK, CHUNK and CHUNK_ACK frames. Decoding reads in
    place and allocates nothing; a CHUNK is checked whole before any of its
    entities is handed out. */

#ifndef HANDOFF_MSG_H_INCLUDED
#define HANDOFF_MSG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HANDOFF_MSG_VERSION 2
#define HANDOFF_MSG_MAX_SIZE 1048576  //  one frame
#define HANDOFF_MSG_MAX_STATE 65536   //  one entity's state
#define HANDOFF_MSG_MAX_COUNT 4096    //  entities per chunk
#define HANDOFF_MSG_HEADER 12         //  magic version type transfer
#define HANDOFF_MSG_CHUNK_HEADER 19   //  + chunk flags count

typedef enum {
    HANDOFF_MSG_HANDOFF = 1,
    HANDOFF_MSG_HANDOFF_ACK = 2,
    HANDOFF_MSG_CHUNK = 3,
    HANDOFF_MSG_CHUNK_ACK = 4,
} handoff_msg_type_t;

typedef enum {
    HANDOFF_MSG_OK = 0,
    HANDOFF_MSG_REFUSED = 1,
    HANDOFF_MSG_STALE_EPOCH = 2,
    HANDOFF_MSG_MALFORMED = 3,
} handoff_msg_status_t;

//  One entity, decoded in place (pointers into the frame).
typedef struct {
    const char *path;  //  not NUL-terminated, a valid entity path
    size_t path_size;
    uint64_t epoch;
    uint64_t seq;
    const uint8_t *state;  //  NULL when STATE_SIZE is 0
    size_t state_size;
    //  CHUNK entities only: the ring's grant of this path at this epoch
    //  (grants.md section 3; decoded and matched, not verified), or NULL.
    const uint8_t *grant;
    size_t grant_size;
} handoff_msg_entity_t;

//  A decoded frame; which members are set depends on TYPE.
typedef struct {
    uint8_t type;                 //  handoff_msg_type_t
    uint64_t transfer;            //  all
    handoff_msg_entity_t entity;  //  HANDOFF; path and epoch of HANDOFF_ACK
    uint8_t status;               //  HANDOFF_ACK, CHUNK_ACK
    uint32_t chunk;               //  CHUNK, CHUNK_ACK
    bool last;                    //  CHUNK
    uint16_t count;               //  CHUNK: entities
    const uint8_t *entries;       //  CHUNK: the entities, COUNT of them
    size_t entries_size;
    uint32_t credit;  //  CHUNK_ACK
} handoff_msg_t;

//  Decode FRAME of SIZE bytes into SELF. Returns 0, or -1 if malformed.
int handoff_msg_decode (handoff_msg_t *self, const uint8_t *frame, size_t size);

//  The next entity of a decoded CHUNK at *OFFSET (start at 0). Returns
//  true and advances, or false after the last.
bool handoff_msg_next (const handoff_msg_t *self, size_t *offset,
                       handoff_msg_entity_t *entity);

//  Bytes ENTITY takes in a HANDOFF (without its grant).
size_t handoff_msg_entity_size (const handoff_msg_entity_t *entity);

//  Encode a HANDOFF into OUT (CAPACITY bytes). Returns its size, or 0 if
//  it does not fit.
size_t handoff_msg_encode_handoff (uint8_t *out, size_t capacity,
                                   uint64_t transfer,
                                   const handoff_msg_entity_t *entity);

//  Encode a HANDOFF_ACK. Returns its size, or 0 if it does not fit.
size_t handoff_msg_encode_handoff_ack (uint8_t *out, size_t capacity,
                                       uint64_t transfer, uint64_t epoch,
                                       uint8_t status, const char *path,
                                       size_t path_size);

//  Append ENTITY, with its grant (NULL: none), to a CHUNK being built in
//  OUT: *USED starts at HANDOFF_MSG_CHUNK_HEADER. Returns 0, or -1 if it
//  does not fit.
int handoff_msg_chunk_put (uint8_t *out, size_t capacity, size_t *used,
                           const handoff_msg_entity_t *entity);

//  Write the header of the CHUNK built in OUT. Returns the frame's size
//  (USED).
size_t handoff_msg_chunk_finish (uint8_t *out, size_t used, uint64_t transfer,
                                 uint32_t chunk, bool last, uint16_t count);

//  Encode a CHUNK_ACK into OUT (at least 21 bytes). Returns its size.
size_t handoff_msg_encode_chunk_ack (uint8_t *out, uint64_t transfer,
                                     uint32_t chunk, uint32_t credit,
                                     uint8_t status);

//  Self test; returns 0 on success.
int handoff_msg_test (bool verbose);

#endif
