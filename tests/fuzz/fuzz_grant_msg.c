/*  fuzz_grant_msg: libFuzzer target for the grant decoder
    (protocol/grants.md section 3). What decodes measures to its own size,
    re-encodes to the same bytes and survives the JSON form unchanged. */

#include "protocol/grant_msg.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    size_t measured = grant_msg_measure (data, size);
    if (measured > size)
        abort ();
    grant_msg_t grant;
    if (grant_msg_decode (&grant, data, size))
        return 0;
    if (measured != size)
        abort ();
    uint8_t again [GRANT_MSG_MAX_SIZE];
    size_t again_size = grant_msg_encode (&grant, again, sizeof again);
    if (again_size != size || memcmp (again, data, size) != 0)
        abort ();
    json_t *json = grant_msg_to_json (&grant);
    if (!json)
        abort ();
    grant_msg_t copy;
    if (grant_msg_from_json (&copy, json, NULL)
        || memcmp (&copy, &grant, sizeof grant) != 0)
        abort ();
    json_decref (json);
    return 0;
}
