/*  hs_load: the leader's load reports. */

#include "broker/hs_load.h"

#include <assert.h>
#include <czmq.h>

struct _hs_load_t {
    zhashx_t *sims;         //  name -> s_report_t
    zhashx_t *homeservers;  //  name -> s_report_t
};

typedef struct {
    json_t *report;
    uint64_t received_ms;
    uint64_t over_since_ms;  //  a homeserver over a bound since, 0: not
    char reason [96];        //  which bound, in words
} s_report_t;

//  The bounds of load.md section 3: a member over one of them for
//  S_OVER_MS is overloaded. A moment over (a snapshot, a burst) is not.
#define S_COMMIT_P99_US 50000
#define S_APPLY_LAG 1000
#define S_CPU_PER_S 0.9
#define S_OVER_MS 10000

//  Which of the bounds REPORT is over, in words into REASON; false if
//  none.
static bool
s_over (const json_t *report, char *reason, size_t size)
{
    json_t *p99 = json_object_get (report, "commit_p99_us");
    json_int_t lag = json_integer_value (json_object_get (report, "apply_lag"));
    double cpu = json_number_value (json_object_get (report, "cpu_per_s"));
    if (json_is_integer (p99) && json_integer_value (p99) > S_COMMIT_P99_US)
        snprintf (reason, size, "commit p99 %.0f ms > %d ms",
                  (double) json_integer_value (p99) / 1e3,
                  S_COMMIT_P99_US / 1000);
    else if (lag > S_APPLY_LAG)
        snprintf (reason, size, "apply lag %lld entries > %d", (long long) lag,
                  S_APPLY_LAG);
    else if (cpu > S_CPU_PER_S)
        snprintf (reason, size, "CPU %.0f%% of a core > %.0f%%", cpu * 100,
                  S_CPU_PER_S * 100);
    else
        return false;
    return true;
}

static void
s_report_destroy (void **item)
{
    s_report_t *report = (s_report_t *) *item;
    if (report)
        json_decref (report->report);
    free (report);
    *item = NULL;
}

static zhashx_t *
s_table_new (void)
{
    zhashx_t *table = zhashx_new ();
    zhashx_set_destructor (table, s_report_destroy);
    return table;
}

hs_load_t *
hs_load_new (void)
{
    hs_load_t *self = (hs_load_t *) zmalloc (sizeof (hs_load_t));
    self->sims = s_table_new ();
    self->homeservers = s_table_new ();
    return self;
}

void
hs_load_destroy (hs_load_t **self_p)
{
    if (*self_p) {
        hs_load_t *self = *self_p;
        zhashx_destroy (&self->sims);
        zhashx_destroy (&self->homeservers);
        free (self);
        *self_p = NULL;
    }
}

static zhashx_t *
s_table (hs_load_t *self, const char *kind)
{
    return streq (kind, "sim") ? self->sims : self->homeservers;
}

void
hs_load_put (hs_load_t *self, const char *kind, const char *name,
             json_t *report, uint64_t now_ms)
{
    zhashx_t *table = s_table (self, kind);
    s_report_t *kept = (s_report_t *) zhashx_lookup (table, name);
    if (!json_is_object (report)
        || (!kept && zhashx_size (table) >= HS_LOAD_MAX)) {
        json_decref (report);
        return;
    }
    if (!kept) {
        kept = (s_report_t *) zmalloc (sizeof (s_report_t));
        zhashx_insert (table, name, kept);
    }
    json_decref (kept->report);
    kept->report = report;
    kept->received_ms = now_ms;
    if (table == self->homeservers
        && s_over (report, kept->reason, sizeof kept->reason)) {
        if (!kept->over_since_ms)
            kept->over_since_ms = now_ms;
    }
    else
        kept->over_since_ms = 0;
}

//  REPORT's figures and its age at NOW_MS: a new object.
static json_t *
s_aged (const s_report_t *report, uint64_t now_ms)
{
    json_t *copy = json_deep_copy (report->report);
    json_object_set_new (
        copy, "age_ms",
        json_integer ((json_int_t) (now_ms > report->received_ms
                                        ? now_ms - report->received_ms
                                        : 0)));
    if (report->over_since_ms
        && report->received_ms - report->over_since_ms >= S_OVER_MS)
        json_object_set_new (
            copy, "overloaded",
            json_pack ("{s:s,s:I,s:s}", "reason", report->reason, "since_ms",
                       (json_int_t) (now_ms - report->over_since_ms), "action",
                       "add a member (fabricctl request cluster.add) if the "
                       "followers are what is slow, or move part of the "
                       "world to another instance (protocol/federation.md): "
                       "one instance's ring cannot be sharded"));
    return copy;
}

json_t *
hs_load_get (hs_load_t *self, const char *kind, const char *name,
             uint64_t now_ms)
{
    s_report_t *report =
        (s_report_t *) zhashx_lookup (s_table (self, kind), name);
    return report ? s_aged (report, now_ms) : NULL;
}

static json_t *
s_all (zhashx_t *table, uint64_t now_ms)
{
    json_t *all = json_object ();
    for (s_report_t *report = (s_report_t *) zhashx_first (table); report;
         report = (s_report_t *) zhashx_next (table))
        json_object_set_new (all, (const char *) zhashx_cursor (table),
                             s_aged (report, now_ms));
    return all;
}

json_t *
hs_load_all (hs_load_t *self, uint64_t now_ms)
{
    return json_pack ("{s:o,s:o}", "sims", s_all (self->sims, now_ms),
                      "homeservers", s_all (self->homeservers, now_ms));
}

void
hs_load_clear (hs_load_t *self)
{
    zhashx_purge (self->sims);
    zhashx_purge (self->homeservers);
}

//  --------------------------------------------------------------------------
//  Self test

int
hs_load_test (bool verbose)
{
    if (verbose)
        printf (" * hs_load: ");
    hs_load_t *load = hs_load_new ();
    assert (!hs_load_get (load, "sim", "s1", 0));
    hs_load_put (load, "sim", "s1", json_pack ("{s:f}", "cpu_per_s", 0.25),
                 1000);
    hs_load_put (load, "homeserver", "hs1", json_pack ("{s:i}", "apply_lag", 3),
                 1500);
    //  The newer report of s1 replaces the older one; a non-object is
    //  dropped.
    hs_load_put (load, "sim", "s1", json_pack ("{s:f}", "cpu_per_s", 0.5),
                 2000);
    hs_load_put (load, "sim", "s1", json_string ("nonsense"), 2100);
    json_t *report = hs_load_get (load, "sim", "s1", 2600);
    assert (json_real_value (json_object_get (report, "cpu_per_s")) == 0.5);
    assert (json_integer_value (json_object_get (report, "age_ms")) == 600);
    json_decref (report);
    json_t *all = hs_load_all (load, 2600);
    assert (json_object_size (json_object_get (all, "sims")) == 1);
    report = json_object_get (json_object_get (all, "homeservers"), "hs1");
    assert (json_integer_value (json_object_get (report, "apply_lag")) == 3);
    assert (json_integer_value (json_object_get (report, "age_ms")) == 1100);
    json_decref (all);
    //  A member over a bound for 10 s is overloaded; a moment over is not,
    //  and one back under is not any more.
    for (uint64_t at = 0; at <= 10; at++)
        hs_load_put (
            load, "homeserver", "hs2",
            json_pack ("{s:i,s:i}", "commit_p99_us", 84000, "apply_lag", 0),
            10000 + at * 1000);
    report = hs_load_get (load, "homeserver", "hs2", 20000);
    const char *reason = json_string_value (
        json_object_get (json_object_get (report, "overloaded"), "reason"));
    assert (reason && streq (reason, "commit p99 84 ms > 50 ms"));
    json_decref (report);
    hs_load_put (load, "homeserver", "hs2",
                 json_pack ("{s:i,s:f}", "apply_lag", 5000, "cpu_per_s", 0.2),
                 21000);
    report = hs_load_get (load, "homeserver", "hs2", 21000);
    assert (json_object_get (report, "overloaded"));
    json_decref (report);
    hs_load_put (load, "homeserver", "hs2",
                 json_pack ("{s:f}", "cpu_per_s", 0.2), 22000);
    report = hs_load_get (load, "homeserver", "hs2", 22000);
    assert (!json_object_get (report, "overloaded"));
    json_decref (report);
    hs_load_put (load, "homeserver", "hs2",
                 json_pack ("{s:f}", "cpu_per_s", 0.95), 23000);
    report = hs_load_get (load, "homeserver", "hs2", 25000);
    assert (!json_object_get (report, "overloaded"));
    json_decref (report);
    hs_load_clear (load);
    assert (!hs_load_get (load, "homeserver", "hs1", 3000));
    hs_load_destroy (&load);
    if (verbose)
        printf ("OK\n");
    return 0;
}
