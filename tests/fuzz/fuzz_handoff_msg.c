/*  fuzz_handoff_msg: libFuzzer target for the handoff channel decoder
    (protocol/handoff.md). What decodes re-encodes to the same bytes. */

#include "protocol/handoff_msg.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    handoff_msg_t msg;
    if (handoff_msg_decode (&msg, data, size))
        return 0;
    static uint8_t again [HANDOFF_MSG_MAX_SIZE];
    size_t again_size = 0;
    switch (msg.type) {
        case HANDOFF_MSG_HANDOFF:
            again_size = handoff_msg_encode_handoff (again, sizeof again,
                                                     msg.transfer, &msg.entity);
            break;
        case HANDOFF_MSG_HANDOFF_ACK:
            again_size = handoff_msg_encode_handoff_ack (
                again, sizeof again, msg.transfer, msg.entity.epoch, msg.status,
                msg.entity.path, msg.entity.path_size);
            break;
        case HANDOFF_MSG_CHUNK: {
            size_t used = HANDOFF_MSG_CHUNK_HEADER, offset = 0;
            handoff_msg_entity_t entity;
            while (handoff_msg_next (&msg, &offset, &entity))
                if (handoff_msg_chunk_put (again, sizeof again, &used, &entity))
                    abort ();
            again_size = handoff_msg_chunk_finish (
                again, used, msg.transfer, msg.chunk, msg.last, msg.count);
            break;
        }
        case HANDOFF_MSG_CHUNK_ACK:
            again_size = handoff_msg_encode_chunk_ack (
                again, msg.transfer, msg.chunk, msg.credit, msg.status);
            break;
        default:
            abort ();
    }
    if (again_size != size || memcmp (again, data, size) != 0)
        abort ();
    return 0;
}
