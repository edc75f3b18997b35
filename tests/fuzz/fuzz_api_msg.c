/*  fuzz_api_msg: libFuzzer target for the JSON API envelope decoders
    (protocol/homeserver-api.md): the server-side request decoder with its
    dispatcher, and the client-side reply decoder; and sf_json_text, which
    encodes every reply, against jansson's own encoder. */

#include "common/sf_json.h"
#include "protocol/api_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int
s_fuzz_echo (void *context, const api_msg_t *request, const char *principal,
             json_t *reply, sf_fault_t *fault)
{
    (void) context, (void) principal, (void) fault;
    json_object_set (reply, "echo", request->root);
    return 0;
}

static const api_msg_op_t s_ops [] = {
    {"status", s_fuzz_echo},
    {"entity.get", s_fuzz_echo},
    {NULL, NULL},
};

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    sf_error_t error;
    char *reply = api_msg_serve (s_ops, NULL, data, size, "principal", &error);
    //  Whatever came in, the reply is a well-formed reply.
    sf_fault_t fault;
    json_t *parsed = api_msg_decode_reply (reply, strlen (reply), &fault);
    if (!parsed)
        abort ();
    if (json_is_true (json_object_get (parsed, "ok")) != (error == SF_OK))
        abort ();
    json_decref (parsed);
    free (reply);

    parsed = api_msg_decode_reply (data, size, &fault);
    if (parsed) {
        api_msg_reply_fault (parsed, &fault);
        json_decref (parsed);
    }

    //  Our encoder writes exactly what jansson writes, for any value.
    json_t *any = json_loadb ((const char *) data, size, JSON_DECODE_ANY, NULL);
    if (any) {
        char *ours = sf_json_text (any);
        char *theirs = json_dumps (any, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!ours || !theirs || strcmp (ours, theirs) != 0)
            abort ();
        free (ours);
        free (theirs);
        json_decref (any);
    }
    return 0;
}
