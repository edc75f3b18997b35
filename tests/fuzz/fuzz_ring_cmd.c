/*  fuzz_ring_cmd: libFuzzer target for the ring command decoder
    (protocol/ring-commands.md). A decoded command re-encodes and decodes
    to the same fields. */

#include "protocol/ring_cmd.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    ring_cmd_t cmd;
    if (ring_cmd_decode (&cmd, data, size))
        return 0;
    char key [41];
    ring_cmd_principal (&cmd, key);
    uint8_t *again;
    size_t again_size;
    if (ring_cmd_encode (cmd.op, key, cmd.admin, cmd.time_ms, cmd.args, &again,
                         &again_size))
        abort ();
    ring_cmd_t back;
    if (ring_cmd_decode (&back, again, again_size)
        || strcmp (back.op, cmd.op) != 0 || back.admin != cmd.admin
        || back.time_ms != cmd.time_ms
        || memcmp (back.principal, cmd.principal, 32) != 0
        || !json_equal (back.args, cmd.args))
        abort ();
    ring_cmd_release (&back);
    free (again);
    ring_cmd_release (&cmd);
    return 0;
}
