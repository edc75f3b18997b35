/*  fuzz_http_req: libFuzzer target for what a homeserver makes of an HTTP
    request before it is served (protocol/http.md section 4): the route
    of a method and path, and the request its parameters, query and body
    stand for. Input: a method byte, the path up to a newline, the query
    (NAME=VALUE pairs joined by &) up to a newline, then the body. */

#include "broker/hs_http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  The next line of *CURSOR (up to END), NUL-terminated; the caller frees.
static char *
s_line (const char **cursor, const char *end)
{
    const char *newline = memchr (*cursor, '\n', (size_t) (end - *cursor));
    const char *stop = newline ? newline : end;
    char *line = strndup (*cursor, (size_t) (stop - *cursor));
    *cursor = newline ? newline + 1 : end;
    return line;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *methods [] = {"GET", "PUT", "POST", "DELETE", "HEAD"};
    const char *method = methods [data [0] % 5];
    const char *cursor = (const char *) data + 1,
               *end = (const char *) data + size;
    char *path = s_line (&cursor, end);
    char *pairs = s_line (&cursor, end);
    json_t *query = json_object ();
    char *rest = pairs, *pair;
    while ((pair = strsep (&rest, "&")))
        if (*pair) {
            char *value = strchr (pair, '=');
            if (value)
                *value++ = '\0';
            json_object_set_new (query, pair, json_string (value ? value : ""));
        }
    json_t *params = json_object ();
    char allow [64];
    const hs_op_t *op =
        hs_http_route (method, path, params, allow, sizeof allow);
    if (op) {
        sf_fault_t fault;
        sf_fault_clear (&fault);
        json_t *request = hs_http_arguments (
            op, params, query, cursor, (size_t) (end - cursor), 1, &fault);
        //  A request made is one the API can read: an object with its op.
        if (request
            && (!json_is_object (request) || !json_object_get (request, "op")))
            abort ();
        if (!request && fault.error == SF_OK)
            abort ();
        json_decref (request);
    }
    else if (json_object_size (params) != 0)
        abort ();
    json_decref (params);
    json_decref (query);
    free (pairs);
    free (path);
    return 0;
}
