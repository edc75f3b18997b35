/*  ctl_trace: a trace put together from every daemon's records. */

#include "ctl/ctl_trace.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_EQ(a, b) (strcmp ((a), (b)) == 0)

//  Most records of one trace considered; a transfer has about a dozen.
#define S_MAX 256

typedef struct {
    const char *msg, *node, *peer;
    bool sent;
    int64_t us;
    bool matched;
} s_record_t;

typedef struct {
    const char *msg, *from, *to;
    int64_t sent_us, received_us;  //  -1: not recorded
    bool critical;
} s_message_t;

//  When a message left its sender, or the best bound known.
static int64_t
s_out (const s_message_t *message)
{
    return message->sent_us >= 0 ? message->sent_us : message->received_us;
}

//  When it reached its receiver, or the best bound known.
static int64_t
s_in (const s_message_t *message)
{
    return message->received_us >= 0 ? message->received_us : message->sent_us;
}

static int
s_by_time (const void *left, const void *right)
{
    int64_t a = ((const s_record_t *) left)->us;
    int64_t b = ((const s_record_t *) right)->us;
    return a < b ? -1 : a > b;
}

static int
s_by_departure (const void *left, const void *right)
{
    int64_t a = s_out ((const s_message_t *) left);
    int64_t b = s_out ((const s_message_t *) right);
    return a < b ? -1 : a > b;
}

static bool
s_in_ring (const char *name, const char *const *ring)
{
    for (; ring && *ring; ring++)
        if (S_EQ (*ring, name))
            return true;
    return false;
}

//  Pair sent and received records into MESSAGES; returns how many.
static size_t
s_pair (s_record_t *records, size_t count, s_message_t *messages)
{
    size_t made = 0;
    for (size_t at = 0; at < count; at++) {
        s_record_t *sent = &records [at];
        if (!sent->sent)
            continue;
        bool broadcast = S_EQ (sent->peer, "subscribers");
        bool delivered = false;
        //  The earliest unmatched receipt by each receiver: the k-th copy
        //  sent pairs with the k-th received.
        for (size_t other = 0; other < count && made < S_MAX; other++) {
            s_record_t *got = &records [other];
            if (got->sent || got->matched || !S_EQ (got->msg, sent->msg)
                || !S_EQ (got->peer, sent->node)
                || (!broadcast && !S_EQ (got->node, sent->peer)))
                continue;
            bool seen = false;
            for (size_t prior = 0; prior < made; prior++)
                if (messages [prior].sent_us == sent->us
                    && S_EQ (messages [prior].from, sent->node)
                    && S_EQ (messages [prior].to, got->node)
                    && S_EQ (messages [prior].msg, sent->msg))
                    seen = true;
            if (seen)
                continue;
            got->matched = true;
            delivered = true;
            messages [made++] = (s_message_t){sent->msg, sent->node, got->node,
                                              sent->us, got->us};
            if (!broadcast)
                break;
        }
        if (!delivered && made < S_MAX)
            messages [made++] =
                (s_message_t){sent->msg, sent->node, sent->peer, sent->us, -1};
    }
    //  Receipts whose sender recorded nothing (a traced update's ACK).
    for (size_t at = 0; at < count && made < S_MAX; at++)
        if (!records [at].sent && !records [at].matched)
            messages [made++] =
                (s_message_t){records [at].msg, records [at].peer,
                              records [at].node, -1, records [at].us};
    return made;
}

//  The message the trace ends with: the last of the requester's handoff
//  and reply, or a traced update's ack. NULL if it did not end.
static s_message_t *
s_end (s_message_t *messages, size_t count)
{
    const char *requester = NULL;
    bool update = false;
    for (size_t at = 0; at < count && !requester; at++)
        if (S_EQ (messages [at].msg, "request")
            || S_EQ (messages [at].msg, "update")) {
            requester = messages [at].from;
            update = S_EQ (messages [at].msg, "update");
        }
    s_message_t *end = NULL;
    for (size_t at = 0; requester && at < count; at++) {
        s_message_t *message = &messages [at];
        bool ends = update ? S_EQ (message->msg, "ack")
                           : S_EQ (message->msg, "handoff")
                                 || S_EQ (message->msg, "reply");
        if (ends && S_EQ (message->to, requester) && message->received_us >= 0
            && (!end || message->received_us > end->received_us))
            end = message;
    }
    return end;
}

json_t *
ctl_trace_analyse (const char *id, const json_t *records,
                   const char *const *ring)
{
    s_record_t *list = (s_record_t *) calloc (S_MAX, sizeof (s_record_t));
    s_message_t *messages =
        (s_message_t *) calloc (S_MAX, sizeof (s_message_t));
    size_t count = 0;
    size_t index;
    json_t *record;
    json_array_foreach (records, index, record)
    {
        const char *msg = json_string_value (json_object_get (record, "msg"));
        const char *dir = json_string_value (json_object_get (record, "dir"));
        const char *node = json_string_value (json_object_get (record, "node"));
        const char *peer = json_string_value (json_object_get (record, "peer"));
        json_t *us = json_object_get (record, "us");
        if (!msg || !dir || !node || !peer || !json_is_integer (us)
            || count == S_MAX)
            continue;
        list [count++] = (s_record_t){
            msg,  node, peer, S_EQ (dir, "sent"), json_integer_value (us),
            false};
    }
    qsort (list, count, sizeof *list, s_by_time);
    size_t made = s_pair (list, count, messages);
    qsort (messages, made, sizeof *messages, s_by_departure);

    //  Walk back: before a message, the last one its sender received.
    int hops = 0;
    int64_t critical_us = -1;
    s_message_t *current = s_end (messages, made);
    s_message_t *first = current;
    while (current) {
        current->critical = true;
        hops++;
        first = current;
        const char *sender = current->from;
        bool heard = false;
        for (size_t at = 0; at < made; at++)
            if (S_EQ (messages [at].to, sender))
                heard = true;
        //  A member publishing what it learnt by replication: what the
        //  ring as a whole received.
        bool ring_wide = !heard && s_in_ring (sender, ring);
        s_message_t *before = NULL;
        for (size_t at = 0; at < made; at++) {
            s_message_t *message = &messages [at];
            bool to_sender = ring_wide ? s_in_ring (message->to, ring)
                                       : S_EQ (message->to, sender);
            if (!message->critical && to_sender
                && s_in (message) <= s_out (current)
                && (!before || s_in (message) > s_in (before)))
                before = message;
        }
        current = before;
    }
    s_message_t *end = s_end (messages, made);
    if (end && first)
        critical_us = end->received_us - s_out (first);

    json_t *rows = json_array ();
    for (size_t at = 0; at < made; at++) {
        const s_message_t *message = &messages [at];
        json_t *row = json_pack (
            "{s:s,s:s,s:s,s:o,s:o,s:o,s:b}", "msg", message->msg, "from",
            message->from, "to", message->to, "sent_us",
            message->sent_us >= 0 ? json_integer (message->sent_us)
                                  : json_null (),
            "received_us",
            message->received_us >= 0 ? json_integer (message->received_us)
                                      : json_null (),
            "latency_us",
            message->sent_us >= 0 && message->received_us >= 0
                ? json_integer (message->received_us - message->sent_us)
                : json_null (),
            "critical", message->critical);
        json_array_append_new (rows, row);
    }
    free (list);
    free (messages);
    return json_pack (
        "{s:s,s:i,s:o,s:o}", "trace", id, "hops", hops, "critical_us",
        critical_us >= 0 ? json_integer (critical_us) : json_null (),
        "messages", rows);
}

void
ctl_trace_print (const json_t *analysis)
{
    printf ("%-12s %-14s %-14s %11s  %s\n", "MSG", "FROM", "TO", "LATENCY_US",
            "CRITICAL");
    size_t index;
    json_t *row;
    json_array_foreach (json_object_get (analysis, "messages"), index, row)
    {
        json_t *latency = json_object_get (row, "latency_us");
        char text [24] = "-";
        if (json_is_integer (latency))
            snprintf (text, sizeof text, "%lld",
                      (long long) json_integer_value (latency));
        printf ("%-12s %-14s %-14s %11s  %s\n",
                json_string_value (json_object_get (row, "msg")),
                json_string_value (json_object_get (row, "from")),
                json_string_value (json_object_get (row, "to")), text,
                json_is_true (json_object_get (row, "critical")) ? "*" : "");
    }
    json_t *critical = json_object_get (analysis, "critical_us");
    printf (
        "hops %lld, critical path ",
        (long long) json_integer_value (json_object_get (analysis, "hops")));
    if (json_is_integer (critical))
        printf ("%lld us\n", (long long) json_integer_value (critical));
    else
        printf ("not complete\n");
}

//  A record as the daemons answer it, for the tests.
typedef struct {
    const char *msg, *dir, *node, *peer;
    int64_t us;
} s_spec_t;

//  The records of SPECS (ended by a NULL msg), as the daemons answer them.
static json_t *
s_records (const s_spec_t *specs)
{
    json_t *records = json_array ();
    for (const s_spec_t *spec = specs; spec->msg; spec++)
        json_array_append_new (
            records,
            json_pack ("{s:s,s:s,s:s,s:s,s:s,s:I}", "trace", "t", "msg",
                       spec->msg, "dir", spec->dir, "node", spec->node, "peer",
                       spec->peer, "us", (json_int_t) spec->us));
    return records;
}

//  Hops of RECORDS (taken) with hs1..hs3 as the ring; CRITICAL_US, if not
//  NULL, gets the critical path's length.
static int
s_hops (json_t *records, int64_t *critical_us)
{
    static const char *ring [] = {"hs1", "hs2", "hs3", NULL};
    json_t *analysis = ctl_trace_analyse ("t", records, ring);
    int hops = (int) json_integer_value (json_object_get (analysis, "hops"));
    if (critical_us)
        *critical_us =
            json_integer_value (json_object_get (analysis, "critical_us"));
    json_decref (analysis);
    json_decref (records);
    return hops;
}

int
ctl_trace_test (bool verbose)
{
    int hops;
    if (verbose)
        printf (" * ctl_trace: ");
    //  Case 2, allow: request, event, handoff; the reply, the other
    //  members' events and the handoff's ack are off the path. Records
    //  come in any order.
    static const s_spec_t allow [] = {
        {"handoff_ack", "received", "simA", "simB", 900},
        {"request", "sent", "simB", "hs1", 100},
        {"request", "received", "hs1", "simB", 150},
        {"reply", "sent", "hs1", "simB", 400},
        {"reply", "received", "simB", "hs1", 450},
        {"event", "sent", "hs1", "subscribers", 410},
        {"event", "sent", "hs2", "subscribers", 600},
        {"event", "received", "simA", "hs1", 470},
        {"handoff", "sent", "simA", "simB", 500},
        {"handoff", "received", "simB", "simA", 560},
        {"handoff_ack", "sent", "simB", "simA", 570},
        {NULL, NULL, NULL, NULL, 0}};
    int64_t critical = 0;
    hops = s_hops (s_records (allow), &critical);
    assert (hops == 3);
    assert (critical == 460);

    //  The event reached A from a follower first: the ring as a whole
    //  received the request, so the path still starts with it.
    static const s_spec_t follower [] = {
        {"request", "sent", "simB", "hs1", 100},
        {"request", "received", "hs1", "simB", 150},
        {"event", "sent", "hs2", "subscribers", 300},
        {"event", "received", "simA", "hs2", 320},
        {"handoff", "sent", "simA", "simB", 330},
        {"handoff", "received", "simB", "simA", 360},
        {"reply", "received", "simB", "hs1", 340},
        {NULL, NULL, NULL, NULL, 0}};
    hops = s_hops (s_records (follower), NULL);
    assert (hops == 3);

    //  The reply came after the handoff: the request and its reply were
    //  the path.
    static const s_spec_t reply_last [] = {
        {"request", "sent", "simB", "hs1", 100},
        {"request", "received", "hs1", "simB", 150},
        {"handoff", "received", "simB", "simA", 300},
        {"reply", "received", "simB", "hs1", 400},
        {NULL, NULL, NULL, NULL, 0}};
    hops = s_hops (s_records (reply_last), NULL);
    assert (hops == 2);

    //  Ask: request, the pending event, the answer, the grant's event,
    //  the handoff.
    static const s_spec_t ask [] = {
        {"request", "sent", "simB", "hs1", 100},
        {"request", "received", "hs1", "simB", 110},
        {"event", "sent", "hs1", "subscribers", 200},
        {"event", "received", "simA", "hs1", 210},
        {"answer", "sent", "simA", "hs1", 300},
        {"answer", "received", "hs1", "simA", 310},
        {"event", "sent", "hs1", "subscribers", 400},
        {"event", "received", "simA", "hs1", 410},
        {"reply", "sent", "hs1", "simA", 401},
        {"reply", "received", "simA", "hs1", 415},
        {"reply", "sent", "hs1", "simB", 402},
        {"reply", "received", "simB", "hs1", 412},
        {"handoff", "sent", "simA", "simB", 420},
        {"handoff", "received", "simB", "simA", 430},
        {NULL, NULL, NULL, NULL, 0}};
    hops = s_hops (s_records (ask), NULL);
    assert (hops == 5);

    //  Case 3: the sender records both ends of its round trip.
    static const s_spec_t direct [] = {{"update", "sent", "simA", "simB", 100},
                                       {"ack", "received", "simA", "simB", 180},
                                       {NULL, NULL, NULL, NULL, 0}};
    hops = s_hops (s_records (direct), &critical);
    assert (hops == 2);
    assert (critical == 80);

    //  Nothing completed: no hops, and garbage records are skipped.
    static const s_spec_t unfinished [] = {
        {"request", "sent", "simB", "hs1", 100}, {NULL, NULL, NULL, NULL, 0}};
    json_t *records = s_records (unfinished);
    json_array_append_new (records, json_pack ("{s:s}", "msg", "request"));
    json_array_append_new (records, json_integer (3));
    hops = s_hops (records, NULL);
    assert (hops == 0);
    if (verbose)
        printf ("OK\n");
    return 0;
}
