/*  sf_trace: a daemon's record of traced messages. */

#include "common/sf_trace.h"
#include "common/sf_json.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EQ(a, b) (strcmp ((a), (b)) == 0)

typedef struct {
    char trace [SF_TRACE_MAX_ID + 1];
    char peer [SF_TRACE_MAX_PEER + 1];
    const char *msg;  //  static
    bool sent;
    uint64_t us;
} s_record_t;

struct _sf_trace_t {
    char *node;
    s_record_t *records;
    unsigned capacity;
    uint64_t
        written;  //  records ever written; the next goes at written % capacity
};

sf_trace_t *
sf_trace_new (const char *node, unsigned capacity)
{
    sf_trace_t *self = (sf_trace_t *) calloc (1, sizeof (sf_trace_t));
    if (!self)
        return NULL;
    self->capacity = capacity ? capacity : SF_TRACE_CAPACITY;
    self->node = strdup (node);
    self->records = (s_record_t *) calloc (self->capacity, sizeof (s_record_t));
    if (!self->node || !self->records)
        sf_trace_destroy (&self);
    return self;
}

void
sf_trace_destroy (sf_trace_t **self_p)
{
    if (*self_p) {
        sf_trace_t *self = *self_p;
        free (self->node);
        free (self->records);
        free (self);
        *self_p = NULL;
    }
}

//  Copy SOURCE into TARGET of SIZE bytes, cutting what does not fit.
static void
s_copy_cut (char *target, size_t size, const char *source)
{
    size_t length = strnlen (source, size - 1);
    memcpy (target, source, length);
    target [length] = 0;
}

void
sf_trace_record (sf_trace_t *self, const char *trace, const char *msg,
                 bool sent, const char *peer, uint64_t us)
{
    s_record_t *record = &self->records [self->written % self->capacity];
    s_copy_cut (record->trace, sizeof record->trace, trace);
    s_copy_cut (record->peer, sizeof record->peer, peer ? peer : "");
    record->msg = msg;
    record->sent = sent;
    record->us = us;
    self->written++;
}

void
sf_trace_transfer (sf_trace_t *self, uint64_t transfer, const char *msg,
                   bool sent, const char *peer, uint64_t us)
{
    char trace [24];
    snprintf (trace, sizeof trace, "%llu", (unsigned long long) transfer);
    sf_trace_record (self, trace, msg, sent, peer, us);
}

json_t *
sf_trace_records (sf_trace_t *self, const char *trace)
{
    json_t *records = json_array ();
    uint64_t first =
        self->written > self->capacity ? self->written - self->capacity : 0;
    for (uint64_t at = first; at < self->written; at++) {
        const s_record_t *record = &self->records [at % self->capacity];
        if (strcmp (record->trace, trace) != 0)
            continue;
        json_array_append_new (
            records,
            json_pack ("{s:s,s:s,s:s,s:s,s:s,s:I}", "trace", record->trace,
                       "msg", record->msg, "dir",
                       record->sent ? "sent" : "received", "node", self->node,
                       "peer", record->peer, "us", (json_int_t) record->us));
    }
    return records;
}

int
sf_trace_id (const json_t *args, char *id, sf_fault_t *fault)
{
    //  A transfer id may come as the number it is.
    const json_t *value = json_object_get (args, "trace");
    char number [24];
    const char *text = json_string_value (value);
    if (json_is_integer (value) && json_integer_value (value) > 0) {
        snprintf (number, sizeof number, "%lld",
                  (long long) json_integer_value (value));
        text = number;
    }
    if (!text || !*text || strlen (text) > SF_TRACE_MAX_ID)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'trace' must be a trace id: a transfer "
                             "number or a string of 1..%d bytes",
                             SF_TRACE_MAX_ID);
    strcpy (id, text);
    return 0;
}

json_t *
sf_trace_answer (sf_trace_t *self, const json_t *args, sf_fault_t *fault)
{
    static const char *allowed [] = {"op", "id", "trace", NULL};
    char id [SF_TRACE_MAX_ID + 1];
    if (sf_json_only (args, allowed, fault) || sf_trace_id (args, id, fault))
        return NULL;
    return json_pack ("{s:s,s:s,s:o}", "node", self->node, "trace", id,
                      "records", sf_trace_records (self, id));
}

int
sf_trace_test (bool verbose)
{
    if (verbose)
        printf (" * sf_trace: ");
    sf_trace_t *trace = sf_trace_new ("hs1", 4);
    assert (trace);
    json_t *none = sf_trace_records (trace, "7");
    assert (json_array_size (none) == 0);
    json_decref (none);

    sf_trace_transfer (trace, 7, "request", false, "sim2", 100);
    sf_trace_record (trace, "8", "request", false, "sim3", 150);
    sf_trace_transfer (trace, 7, "reply", true, "sim2", 200);
    json_t *seven = sf_trace_records (trace, "7");
    assert (json_array_size (seven) == 2);
    json_t *first = json_array_get (seven, 0);
    assert (
        S_EQ (json_string_value (json_object_get (first, "msg")), "request"));
    assert (
        S_EQ (json_string_value (json_object_get (first, "dir")), "received"));
    assert (S_EQ (json_string_value (json_object_get (first, "node")), "hs1"));
    assert (S_EQ (json_string_value (json_object_get (first, "peer")), "sim2"));
    assert (json_integer_value (json_object_get (first, "us")) == 100);
    assert (S_EQ (
        json_string_value (json_object_get (json_array_get (seven, 1), "dir")),
        "sent"));
    json_decref (seven);

    //  The ring overwrites the oldest: four more push out all of 7's.
    for (int index = 0; index < 4; index++)
        sf_trace_record (trace, "9", "event", true, "subscribers",
                         300 + (uint64_t) index);
    seven = sf_trace_records (trace, "7");
    assert (json_array_size (seven) == 0);
    json_decref (seven);
    json_t *nine = sf_trace_records (trace, "9");
    assert (json_array_size (nine) == 4);
    assert (
        json_integer_value (json_object_get (json_array_get (nine, 0), "us"))
        == 300);
    json_decref (nine);

    //  Over-long ids and peers are cut, never overflow.
    char long_name [200];
    memset (long_name, 'x', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    sf_trace_record (trace, long_name, "handoff", true, long_name, 1);
    long_name [SF_TRACE_MAX_ID] = 0;
    json_t *cut = sf_trace_records (trace, long_name);
    assert (json_array_size (cut) == 1);
    assert (strlen (json_string_value (
                json_object_get (json_array_get (cut, 0), "peer")))
            == SF_TRACE_MAX_PEER);
    json_decref (cut);

    //  The API answer: numbers and strings name traces; anything else is
    //  refused with a clear error.
    sf_fault_t fault;
    json_t *args = json_pack ("{s:s,s:i}", "op", "trace", "trace", 9);
    json_t *answer = sf_trace_answer (trace, args, &fault);
    assert (answer);
    assert (json_array_size (json_object_get (answer, "records")) == 3);
    assert (S_EQ (json_string_value (json_object_get (answer, "node")), "hs1"));
    json_decref (answer);
    json_decref (args);
    const char *bad [] = {"{\"trace\": \"\"}",
                          "{\"trace\": -3}",
                          "{\"trace\": [1]}",
                          "{\"trace\": \"9\", \"x\": 1}",
                          "{}",
                          NULL};
    for (const char **text = bad; *text; text++) {
        args = json_loads (*text, 0, NULL);
        assert (args);
        sf_fault_clear (&fault);
        answer = sf_trace_answer (trace, args, &fault);
        assert (answer == NULL);
        assert (fault.error == SF_EINVAL);
        json_decref (args);
    }
    sf_trace_destroy (&trace);
    sf_trace_destroy (&trace);
    assert (trace == NULL);
    if (verbose)
        printf ("OK\n");
    return 0;
}
