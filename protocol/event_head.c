/*  event_head: the head of a homeserver event's body. */

#include "protocol/event_head.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

//  AT past TEXT if it starts there, else NULL.
static const uint8_t *
s_expect (const uint8_t *at, const uint8_t *end, const char *text)
{
    size_t size = strlen (text);
    return at && (size_t) (end - at) >= size && memcmp (at, text, size) == 0
               ? at + size
               : NULL;
}

//  AT past a JSON natural number that fits 64 bits, read into VALUE; NULL
//  if there is none (JSON has no leading zeros).
static const uint8_t *
s_number (const uint8_t *at, const uint8_t *end, uint64_t *value)
{
    *value = 0;
    const uint8_t *first = at;
    while (at && at < end && *at >= '0' && *at <= '9') {
        uint64_t digit = (uint64_t) (*at - '0');
        if (*value > (UINT64_MAX - digit) / 10)
            return NULL;
        *value = *value * 10 + digit;
        at++;
    }
    if (!at || at == first || (*first == '0' && at - first > 1))
        return NULL;
    return at;
}

bool
event_head_read (event_head_t *self, const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size;
    const uint8_t *at = s_expect (data, end, "{\"index\":");
    at = at ? s_number (at, end, &self->index) : NULL;
    at = s_expect (at, end, ",\"prev\":");
    at = at ? s_number (at, end, &self->prev) : NULL;
    at = s_expect (at, end, ",\"op\":\"");
    if (!at)
        return false;
    //  Ops are plain names: no escapes to undo.
    size_t length = 0;
    while (at + length < end && length <= EVENT_HEAD_MAX_OP
           && (at [length] == '.' || at [length] == '_'
               || (at [length] >= 'a' && at [length] <= 'z')))
        length++;
    if (length == 0 || length > EVENT_HEAD_MAX_OP || at + length >= end
        || at [length] != '"')
        return false;
    memcpy (self->op, at, length);
    self->op [length] = 0;
    return self->index > 0;
}

int
event_head_test (bool verbose)
{
    if (verbose)
        printf (" * event_head: ");
    static const char body [] =
        "{\"index\":14,\"prev\":13,\"op\":\"entity.set_rule\",\"result\":{}}";
    event_head_t head;
    bool ok = event_head_read (&head, (const uint8_t *) body, strlen (body));
    assert (ok);
    assert (head.index == 14 && head.prev == 13);
    assert (strcmp (head.op, "entity.set_rule") == 0);
    //  The head alone is enough; any cut inside it is not.
    size_t whole =
        strlen ("{\"index\":14,\"prev\":13,\"op\":\"entity.set_rule\"");
    ok = event_head_read (&head, (const uint8_t *) body, whole);
    assert (ok);
    for (size_t cut = 0; cut < whole; cut++) {
        ok = event_head_read (&head, (const uint8_t *) body, cut);
        assert (!ok);
    }
    static const char *refused [] = {
        "{\"prev\":13,\"index\":14,\"op\":\"a\"}",   //  another order
        "{ \"index\":14,\"prev\":13,\"op\":\"a\"}",  //  a space
        "{\"index\":014,\"prev\":13,\"op\":\"a\"}",  //  a leading zero
        "{\"index\":0,\"prev\":0,\"op\":\"a\"}",     //  no change has index 0
        "{\"index\":-1,\"prev\":13,\"op\":\"a\"}",
        "{\"index\":18446744073709551616,\"prev\":1,\"op\":\"a\"}",  //  2^64
        "{\"index\":14,\"prev\":13,\"op\":\"\"}",
        "{\"index\":14,\"prev\":13,\"op\":\"a\\\"b\"}",  //  an escape
        "{\"index\":14,\"prev\":13,\"op\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        NULL};
    for (const char **text = refused; *text; text++) {
        ok = event_head_read (&head, (const uint8_t *) *text, strlen (*text));
        assert (!ok);
    }
    static const char largest [] =
        "{\"index\":18446744073709551615,\"prev\":0,\"op\":\"a\"}";
    ok = event_head_read (&head, (const uint8_t *) largest, strlen (largest));
    assert (ok);
    assert (head.index == UINT64_MAX && head.prev == 0);
    if (verbose)
        printf ("OK\n");
    return 0;
}
