/*  sf_json: JSON helpers on jansson for the request handlers. */

#include "common/sf_json.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

json_t *
sf_json_parse (const void *data, size_t size, sf_fault_t *fault)
{
    json_error_t error;
    json_t *value =
        json_loadb ((const char *) data, size,
                    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
    if (!value)
        sf_fault_set (fault, SF_EMALFORMED,
                      "malformed JSON at line %d column %d: %s", error.line,
                      error.column, error.text);
    return value;
}

//  --------------------------------------------------------------------------
//  Text: the bytes jansson's json_dumps gives with JSON_COMPACT and
//  JSON_ENCODE_ANY, in one growing buffer instead of a callback per piece.
//  Every reply and event goes through here, so it is on the write path of
//  every ring member.

//  Deeper values are refused, so no value can exhaust the stack.
#define S_TEXT_MAX_DEPTH 2048

typedef struct {
    char *data;
    size_t size, capacity;
} s_text_t;

static void
s_text_reserve (s_text_t *text, size_t more)
{
    if (text->size + more <= text->capacity)
        return;
    size_t capacity = text->capacity ? text->capacity : 256;
    while (capacity < text->size + more)
        capacity *= 2;
    text->data = (char *) realloc (text->data, capacity);
    assert (text->data);
    text->capacity = capacity;
}

static void
s_text_add (s_text_t *text, const char *bytes, size_t size)
{
    s_text_reserve (text, size);
    memcpy (text->data + text->size, bytes, size);
    text->size += size;
}

//  STRING of SIZE bytes (valid UTF-8, as jansson holds every string) in
//  quotes. Runs without anything to escape are copied whole.
static void
s_text_string (s_text_t *text, const char *string, size_t size)
{
    static const char hex [] = "0123456789ABCDEF";
    s_text_reserve (text, size + 2);
    text->data [text->size++] = '"';
    size_t start = 0;
    for (size_t at = 0; at < size; at++) {
        unsigned char byte = (unsigned char) string [at];
        if (byte >= 0x20 && byte != '"' && byte != '\\')
            continue;
        s_text_add (text, string + start, at - start);
        start = at + 1;
        //  The short escapes JSON has, else \u00XX.
        static const char named [] = "\"\\\b\f\n\r\t", letter [] = "\"\\bfnrt";
        const char *found = (const char *) memchr (named, byte, 7);
        char escape [6] = {'\\', 'u', '0', '0', hex [byte >> 4], 0};
        escape [5] = hex [byte & 15];
        size_t length = 6;
        if (found) {
            escape [1] = letter [found - named];
            length = 2;
        }
        s_text_add (text, escape, length);
    }
    s_text_add (text, string + start, size - start);
    s_text_add (text, "\"", 1);
}

static int
s_text_value (s_text_t *text, const json_t *value, int depth)
{
    if (depth > S_TEXT_MAX_DEPTH)
        return -1;
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            s_text_add (text, "{", 1);
            const char *key;
            size_t length;
            json_t *member;
            bool first = true;
            json_object_keylen_foreach ((json_t *) value, key, length, member)
            {
                if (!first)
                    s_text_add (text, ",", 1);
                first = false;
                s_text_string (text, key, length);
                s_text_add (text, ":", 1);
                if (s_text_value (text, member, depth + 1))
                    return -1;
            }
            s_text_add (text, "}", 1);
            return 0;
        }
        case JSON_ARRAY: {
            s_text_add (text, "[", 1);
            for (size_t at = 0; at < json_array_size (value); at++) {
                if (at)
                    s_text_add (text, ",", 1);
                if (s_text_value (text, json_array_get (value, at), depth + 1))
                    return -1;
            }
            s_text_add (text, "]", 1);
            return 0;
        }
        case JSON_STRING:
            s_text_string (text, json_string_value (value),
                           json_string_length (value));
            return 0;
        case JSON_INTEGER: {
            char number [24];
            int length =
                snprintf (number, sizeof number, "%" JSON_INTEGER_FORMAT,
                          json_integer_value (value));
            s_text_add (text, number, (size_t) length);
            return 0;
        }
        case JSON_REAL: {
            //  Rare here (load figures): jansson's own formatting.
            char *real = json_dumps (value, JSON_ENCODE_ANY);
            if (!real)
                return -1;
            s_text_add (text, real, strlen (real));
            free (real);
            return 0;
        }
        case JSON_TRUE:
            s_text_add (text, "true", 4);
            return 0;
        case JSON_FALSE:
            s_text_add (text, "false", 5);
            return 0;
        case JSON_NULL:
            s_text_add (text, "null", 4);
            return 0;
    }
    return -1;
}

char *
sf_json_text (const json_t *value)
{
    s_text_t text = {NULL, 0, 0};
    if (!value || s_text_value (&text, value, 0)) {
        free (text.data);
        return NULL;
    }
    s_text_add (&text, "", 1);
    return text.data;
}

//  Look up KEY; fail if missing and REQUIRED. Sets *FIELD to NULL if absent.
static int
s_field (const json_t *object, const char *key, bool required, json_t **field,
         sf_fault_t *fault)
{
    *field = json_object_get (object, key);
    if (!*field && required)
        return sf_fault_set (fault, SF_EINVAL, "missing field '%s'", key);
    return 0;
}

int
sf_json_string (const json_t *object, const char *key, bool required,
                const char **value, sf_fault_t *fault)
{
    json_t *field;
    if (s_field (object, key, required, &field, fault))
        return -1;
    if (!field)
        return 0;
    if (!json_is_string (field))
        return sf_fault_set (fault, SF_EINVAL, "field '%s' must be a string",
                             key);
    *value = json_string_value (field);
    return 0;
}

int
sf_json_int (const json_t *object, const char *key, bool required, int64_t min,
             int64_t max, int64_t *value, sf_fault_t *fault)
{
    json_t *field;
    if (s_field (object, key, required, &field, fault))
        return -1;
    if (!field)
        return 0;
    if (!json_is_integer (field))
        return sf_fault_set (fault, SF_EINVAL, "field '%s' must be an integer",
                             key);
    json_int_t number = json_integer_value (field);
    if (number < min || number > max)
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must be within %lld..%lld", key,
                             (long long) min, (long long) max);
    *value = number;
    return 0;
}

int
sf_json_bool (const json_t *object, const char *key, bool required, bool *value,
              sf_fault_t *fault)
{
    json_t *field;
    if (s_field (object, key, required, &field, fault))
        return -1;
    if (!field)
        return 0;
    if (!json_is_boolean (field))
        return sf_fault_set (fault, SF_EINVAL, "field '%s' must be a boolean",
                             key);
    *value = json_is_true (field);
    return 0;
}

int
sf_json_object (const json_t *object, const char *key, bool required,
                json_t **value, sf_fault_t *fault)
{
    json_t *field;
    if (s_field (object, key, required, &field, fault))
        return -1;
    if (!field)
        return 0;
    if (!json_is_object (field))
        return sf_fault_set (fault, SF_EINVAL, "field '%s' must be an object",
                             key);
    *value = field;
    return 0;
}

int
sf_json_only (const json_t *object, const char *const *allowed,
              sf_fault_t *fault)
{
    const char *key;
    json_t *field;
    json_object_foreach ((json_t *) object, key, field)
    {
        bool known = false;
        for (const char *const *name = allowed; *name && !known; name++)
            known = strcmp (*name, key) == 0;
        if (!known)
            return sf_fault_set (fault, SF_EINVAL, "unknown field '%s'", key);
    }
    return 0;
}

int
sf_json_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sf_json: ");
    sf_fault_t fault;
    json_t *value = sf_json_parse ("{\"a\":", 5, &fault);
    assert (!value);
    assert (fault.error == SF_EMALFORMED);
    assert (strstr (fault.message, "malformed JSON at line 1"));
    //  Duplicate keys are refused: they make a request ambiguous.
    value = sf_json_parse ("{\"a\":1,\"a\":2}", 13, &fault);
    assert (!value);

    const char *text = "{\"s\":\"x\",\"i\":42,\"b\":true,\"o\":{},\"n\":null}";
    value = sf_json_parse (text, strlen (text), &fault);
    assert (value);
    const char *string = NULL;
    int64_t number = 0;
    bool flag = false;
    json_t *object = NULL;
    rc = sf_json_string (value, "s", true, &string, &fault);
    assert (rc == 0);
    assert (strcmp (string, "x") == 0);
    rc = sf_json_int (value, "i", true, 0, 100, &number, &fault);
    assert (rc == 0);
    assert (number == 42);
    rc = sf_json_bool (value, "b", true, &flag, &fault);
    assert (rc == 0 && flag);
    rc = sf_json_object (value, "o", true, &object, &fault);
    assert (rc == 0);
    assert (json_is_object (object));

    rc = sf_json_string (value, "i", true, &string, &fault);
    assert (rc == -1);
    assert (strcmp (fault.message, "field 'i' must be a string") == 0);
    rc = sf_json_int (value, "i", true, 0, 10, &number, &fault);
    assert (rc == -1);
    assert (strcmp (fault.message, "field 'i' must be within 0..10") == 0);
    rc = sf_json_int (value, "s", true, 0, 10, &number, &fault);
    assert (rc == -1);
    rc = sf_json_bool (value, "n", true, &flag, &fault);
    assert (rc == -1);
    rc = sf_json_object (value, "s", true, &object, &fault);
    assert (rc == -1);
    rc = sf_json_string (value, "zz", true, &string, &fault);
    assert (rc == -1);
    assert (strcmp (fault.message, "missing field 'zz'") == 0);
    string = "kept";
    rc = sf_json_string (value, "zz", false, &string, &fault);
    assert (rc == 0);
    assert (strcmp (string, "kept") == 0);

    const char *allowed [] = {"s", "i", "b", "o", NULL};
    rc = sf_json_only (value, allowed, &fault);
    assert (rc == -1);
    assert (strcmp (fault.message, "unknown field 'n'") == 0);

    char *compact = sf_json_text (value);
    assert (strcmp (compact, "{\"s\":\"x\",\"i\":42,\"b\":true,\"o\":{},"
                             "\"n\":null}")
            == 0);
    free (compact);
    json_decref (value);

    //  Byte for byte what jansson writes: every escape, UTF-8 passed
    //  through, an embedded NUL, integer limits, reals, nesting, key order.
    char all [128];
    for (int at = 0; at < 127; at++)
        all [at] = (char) (at + 1);
    all [127] = 0;
    json_t *tricky = json_pack (
        "{s:s,s:s%,s:I,s:I,s:f,s:f,s:f,s:[],s:{},s:[i,[s,{s:n}],b],s:s}", "all",
        all, "nul", "a\0b", (size_t) 3, "min", (json_int_t) INT64_MIN, "max",
        (json_int_t) INT64_MAX, "half", 1.5, "big", 1e300, "whole", 3.0,
        "empty", "none", "deep", 7, "\xc3\xa9\xf0\x9f\x98\x80", "k", true,
        "quote\"\\key", "\x7f");
    assert (tricky);
    for (int at = 0; at < 40; at++) {
        char key [16];
        snprintf (key, sizeof key, "k%d", (at * 7919) % 40);
        json_object_set_new (tricky, key, json_integer (at));
    }
    json_object_del (tricky, "k7");
    json_object_set_new (tricky, "k7", json_true ());
    const json_t *cases [] = {tricky, json_object_get (tricky, "all"),
                              json_object_get (tricky, "min"),
                              json_object_get (tricky, "empty"), NULL};
    for (int at = 0; cases [at]; at++) {
        char *ours = sf_json_text (cases [at]);
        char *theirs = json_dumps (cases [at], JSON_COMPACT | JSON_ENCODE_ANY);
        assert (ours && theirs && strcmp (ours, theirs) == 0);
        free (ours);
        free (theirs);
    }
    json_decref (tricky);
    if (verbose)
        printf ("OK\n");
    return 0;
}
