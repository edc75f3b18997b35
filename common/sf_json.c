/*  sf_json: JSON helpers on jansson for the request handlers. */

#include "common/sf_json.h"

#include <assert.h>
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

char *
sf_json_text (const json_t *value)
{
    return json_dumps (value,
                       JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
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
    if (verbose)
        printf (" * sf_json: ");
    sf_fault_t fault;
    json_t *value = sf_json_parse ("{\"a\":", 5, &fault);
    assert (!value);
    assert (fault.error == SF_EMALFORMED);
    assert (strstr (fault.message, "malformed JSON at line 1"));
    //  Duplicate keys are refused: they make a request ambiguous.
    assert (!sf_json_parse ("{\"a\":1,\"a\":2}", 13, &fault));

    const char *text = "{\"s\":\"x\",\"i\":42,\"b\":true,\"o\":{},\"n\":null}";
    value = sf_json_parse (text, strlen (text), &fault);
    assert (value);
    const char *string = NULL;
    int64_t number = 0;
    bool flag = false;
    json_t *object = NULL;
    assert (sf_json_string (value, "s", true, &string, &fault) == 0);
    assert (strcmp (string, "x") == 0);
    assert (sf_json_int (value, "i", true, 0, 100, &number, &fault) == 0);
    assert (number == 42);
    assert (sf_json_bool (value, "b", true, &flag, &fault) == 0 && flag);
    assert (sf_json_object (value, "o", true, &object, &fault) == 0);
    assert (json_is_object (object));

    assert (sf_json_string (value, "i", true, &string, &fault) == -1);
    assert (strcmp (fault.message, "field 'i' must be a string") == 0);
    assert (sf_json_int (value, "i", true, 0, 10, &number, &fault) == -1);
    assert (strcmp (fault.message, "field 'i' must be within 0..10") == 0);
    assert (sf_json_int (value, "s", true, 0, 10, &number, &fault) == -1);
    assert (sf_json_bool (value, "n", true, &flag, &fault) == -1);
    assert (sf_json_object (value, "s", true, &object, &fault) == -1);
    assert (sf_json_string (value, "zz", true, &string, &fault) == -1);
    assert (strcmp (fault.message, "missing field 'zz'") == 0);
    string = "kept";
    assert (sf_json_string (value, "zz", false, &string, &fault) == 0);
    assert (strcmp (string, "kept") == 0);

    const char *allowed [] = {"s", "i", "b", "o", NULL};
    assert (sf_json_only (value, allowed, &fault) == -1);
    assert (strcmp (fault.message, "unknown field 'n'") == 0);

    char *compact = sf_json_text (value);
    assert (strcmp (compact, "{\"s\":\"x\",\"i\":42,\"b\":true,\"o\":{},"
                             "\"n\":null}")
            == 0);
    free (compact);
    json_decref (value);
    if (verbose)
        printf ("OK\n");
    return 0;
}
