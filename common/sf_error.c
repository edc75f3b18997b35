/*  sf_error: the stable error codes of every simfabric API. */

#include "common/sf_error.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define SF_ERROR_CODE(name, code, message) code,
static const char *s_codes [] = {SF_ERROR_MAP (SF_ERROR_CODE)};
#undef SF_ERROR_CODE

#define SF_ERROR_MESSAGE(name, code, message) message,
static const char *s_messages [] = {SF_ERROR_MAP (SF_ERROR_MESSAGE)};
#undef SF_ERROR_MESSAGE

const char *
sf_error_code (sf_error_t error)
{
    if ((unsigned) error >= SF_ERROR_COUNT)
        return "internal";
    return s_codes [error];
}

const char *
sf_error_message (sf_error_t error)
{
    if ((unsigned) error >= SF_ERROR_COUNT)
        return "internal error";
    return s_messages [error];
}

sf_error_t
sf_error_from_code (const char *code)
{
    for (int index = 0; code && index < SF_ERROR_COUNT; index++)
        if (strcmp (s_codes [index], code) == 0)
            return (sf_error_t) index;
    return SF_ERROR_COUNT;
}

void
sf_fault_clear (sf_fault_t *fault)
{
    fault->error = SF_OK;
    fault->message [0] = 0;
}

int
sf_fault_set (sf_fault_t *fault, sf_error_t error, const char *format, ...)
{
    if (!fault)
        return -1;
    fault->error = error;
    //  Formatted aside first: callers may wrap the fault's own message
    //  ("...: %s", fault->message), and vsnprintf must not read what it
    //  writes.
    char message [sizeof fault->message];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    memcpy (fault->message, message, sizeof message);
    if (!fault->message [0])
        snprintf (fault->message, sizeof fault->message, "%s",
                  sf_error_message (error));
    return -1;
}

int
sf_error_test (bool verbose)
{
    if (verbose)
        printf (" * sf_error: ");
    //  Every code maps back to its enum, and codes are unique.
    for (int index = 0; index < SF_ERROR_COUNT; index++) {
        assert (sf_error_from_code (s_codes [index]) == (sf_error_t) index);
        assert (strlen (s_messages [index]) > 0);
    }
    assert (sf_error_from_code ("no_such_code") == SF_ERROR_COUNT);
    assert (sf_error_from_code (NULL) == SF_ERROR_COUNT);
    assert (strcmp (sf_error_code (SF_ENOTLEADER), "not_leader") == 0);
    assert (strcmp (sf_error_code ((sf_error_t) 9999), "internal") == 0);

    sf_fault_t fault;
    sf_fault_clear (&fault);
    assert (fault.error == SF_OK);
    int rc = sf_fault_set (&fault, SF_EINVAL, "field '%s' must be %s", "id",
                           "a string");
    assert (rc == -1);
    assert (fault.error == SF_EINVAL);
    assert (strcmp (fault.message, "field 'id' must be a string") == 0);
    //  An empty format falls back to the default message.
    sf_fault_set (&fault, SF_ETIMEOUT, "%s", "");
    assert (strcmp (fault.message, "operation timed out") == 0);
    //  A fault may wrap its own message.
    sf_fault_set (&fault, SF_ESTORE, "inner");
    sf_fault_set (&fault, SF_EINVAL, "outer (%s): %s", "x", fault.message);
    assert (fault.error == SF_EINVAL);
    assert (strcmp (fault.message, "outer (x): inner") == 0);
    rc = sf_fault_set (NULL, SF_EINVAL, "x");
    assert (rc == -1);
    if (verbose)
        printf ("OK\n");
    return 0;
}
