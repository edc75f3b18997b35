/*  fuzz_state_msg: libFuzzer target for the state datagram codec
    (protocol/state-datagram.md). The input is a whole datagram whose
    sealed part is read as if it were the plain body: the decoders must
    refuse or accept without reading out of bounds, and what they accept
    must re-encode to the same bytes. */

#include "protocol/state_msg.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    state_msg_header_t header;
    if (state_msg_header_decode (&header, data, size))
        return 0;
    uint8_t again [STATE_MSG_MAX_SIZE];
    state_msg_header_encode (&header, again);
    if (memcmp (again, data, STATE_MSG_HEADER) != 0)
        abort ();
    const uint8_t *body = data + STATE_MSG_HEADER;
    size_t body_size = size - STATE_MSG_OVERHEAD;
    if (header.kind == STATE_MSG_ACK) {
        state_msg_ack_t ack;
        if (state_msg_ack_decode (&ack, body, body_size) == 0) {
            state_msg_ack_encode (&ack, again);
            if (memcmp (again, body, STATE_MSG_ACK_BODY) != 0)
                abort ();
        }
        return 0;
    }
    static state_msg_update_t updates [STATE_MSG_MAX_UPDATES];
    int count =
        state_msg_body_decode (body, body_size, updates, STATE_MSG_MAX_UPDATES);
    if (count < 0)
        return 0;
    //  Decoding the whole body reads what update by update reading does.
    size_t offset = 0, used = 0;
    state_msg_update_t update;
    for (int at = 0; at < count; at++) {
        if (state_msg_update_next (body, body_size, &offset, &update) != 1
            || update.path != updates [at].path
            || update.seq != updates [at].seq
            || update.state_size != updates [at].state_size
            || update.grant != updates [at].grant
            || update.grant_size != updates [at].grant_size)
            abort ();
        if (state_msg_update_put (&updates [at], again, sizeof again, &used))
            abort ();
    }
    if (used != body_size || memcmp (again, body, used) != 0)
        abort ();
    return 0;
}
