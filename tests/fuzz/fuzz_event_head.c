/*  fuzz_event_head: libFuzzer target for the event head reader
    (protocol/homeserver-events.md). A head read is exactly what the
    input starts with. */

#include "protocol/event_head.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    event_head_t head;
    if (!event_head_read (&head, data, size))
        return 0;
    char again [128];
    int length =
        snprintf (again, sizeof again,
                  "{\"index\":%" PRIu64 ",\"prev\":%" PRIu64 ",\"op\":\"%s\"",
                  head.index, head.prev, head.op);
    if (length <= 0 || (size_t) length > size
        || memcmp (again, data, (size_t) length) != 0)
        abort ();
    return 0;
}
