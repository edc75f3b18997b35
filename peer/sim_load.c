/*  sim_load: a sim's load report. */

#include "peer/sim_load.h"
#include "common/sf_name.h"
#include "common/sf_time.h"

#include <assert.h>
#include <czmq.h>
#include <sys/resource.h>

//  Where an entity's seq stood at the last report, by store slot.
typedef struct {
    uint32_t generation;
    uint64_t epoch, seq;
    bool known;
} s_mark_t;

struct _sim_load_t {
    int64_t capacity;
    uint64_t last_us;        //  when the last report was made
    double last_cpu_s;       //  the process's CPU seconds then
    uint64_t last_requests;  //  API requests read by then
    json_t *last_counters;   //  the stream's counters then (or NULL)
    s_mark_t *marks;         //  per store slot
    uint32_t n_marks;
    zlist_t *taking;  //  paths being taken, for the next report
};

//  One group's figures over the interval.
typedef struct {
    const char *name;  //  the key in the table
    uint64_t entities, updates;
    double cost;  //  for ranking only (load.md section 4's defaults)
} s_group_t;

//  The stream's counters a report turns into rates, and their names there.
static const struct {
    const char *counter, *rate;
} s_rates [] = {
    {"updates_sent", "updates_sent_per_s"},
    {"updates_applied", "updates_received_per_s"},
    {"bytes_sent", "bytes_sent_per_s"},
    {"bytes_received", "bytes_received_per_s"},
};

//  Datagrams dropped, by reason (state-datagram.md section 6).
static const struct {
    const char *counter, *reason;
} s_drops [] = {
    {"drop_malformed", "malformed"},
    {"drop_wrong_receiver", "wrong_receiver"},
    {"drop_unknown_sender", "unknown_sender"},
    {"drop_stale_session", "stale_session"},
    {"drop_replay", "replay"},
    {"drop_forged", "forged"},
};

sim_load_t *
sim_load_new (int64_t capacity)
{
    sim_load_t *self = (sim_load_t *) zmalloc (sizeof (sim_load_t));
    self->capacity = capacity;
    self->last_us = sf_time_mono_us ();
    self->last_cpu_s = sf_time_cpu_s (RUSAGE_SELF);
    self->taking = zlist_new ();
    zlist_autofree (self->taking);
    return self;
}

void
sim_load_destroy (sim_load_t **self_p)
{
    if (*self_p) {
        sim_load_t *self = *self_p;
        json_decref (self->last_counters);
        free (self->marks);
        zlist_destroy (&self->taking);
        free (self);
        *self_p = NULL;
    }
}

//  The delta of COUNTERS' NAME since the last report's.
static uint64_t
s_delta (sim_load_t *self, const json_t *counters, const char *name)
{
    json_int_t now = json_integer_value (json_object_get (counters, name));
    json_int_t then =
        json_integer_value (json_object_get (self->last_counters, name));
    return now > then ? (uint64_t) (now - then) : 0;
}

//  Groups by cost, the dearest first.
static int
s_by_cost (const void *a, const void *b)
{
    const s_group_t *left = *(const s_group_t *const *) a;
    const s_group_t *right = *(const s_group_t *const *) b;
    if (left->cost != right->cost)
        return left->cost > right->cost ? -1 : 1;
    return strcmp (left->name, right->name);
}

void
sim_load_taking (sim_load_t *self, const char *path)
{
    zlist_append (self->taking, (void *) path);
}

//  Count an entity at PATH that made UPDATES in its group (its parent
//  path) in GROUPS.
static void
s_count (zhashx_t *groups, const char *path, uint64_t updates)
{
    const char *slash = strrchr (path, '/');
    size_t size = slash && slash != path ? (size_t) (slash - path) : 1;
    char name [SF_NAME_MAX_PATH + 1];
    snprintf (name, sizeof name, "%.*s", (int) size, path);
    s_group_t *group = (s_group_t *) zhashx_lookup (groups, name);
    if (!group) {
        group = (s_group_t *) zmalloc (sizeof (s_group_t));
        zhashx_insert (groups, name, group);
        group->name = (const char *) zhashx_cursor (groups);
    }
    group->entities++;
    group->updates += updates;
}

//  Walk STORE: the updates each entity held here made since the last
//  report (its seq's progress), summed by group into GROUPS. Another
//  instance's entities are their home's to balance.
static void
s_walk (sim_load_t *self, sim_store_t *store, zhashx_t *groups)
{
    uint32_t slots = sim_store_slots (store);
    if (slots > self->n_marks) {
        self->marks =
            (s_mark_t *) realloc (self->marks, slots * sizeof (s_mark_t));
        memset (self->marks + self->n_marks, 0,
                (slots - self->n_marks) * sizeof (s_mark_t));
        self->n_marks = slots;
    }
    for (uint32_t slot = 0; slot < slots; slot++) {
        sim_entity_t *entity = sim_store_at (store, slot);
        s_mark_t *mark = &self->marks [slot];
        if (!entity) {
            mark->known = false;
            continue;
        }
        bool same = mark->known && mark->generation == entity->generation
                    && mark->epoch == entity->epoch && mark->seq <= entity->seq;
        //  An entity new here (created, imported, moved in) has no mark:
        //  its history is not this interval's load, or every move would
        //  look like a burst at its target.
        uint64_t updates =
            same ? entity->seq - mark->seq
            : mark->known && mark->generation == entity->generation
                ? entity->seq
                : 0;
        *mark =
            (s_mark_t){entity->generation, entity->epoch, entity->seq, true};
        if (entity->authority && !entity->foreign && !entity->placeholder)
            s_count (groups, entity->path, updates);
    }
}

json_t *
sim_load_report (sim_load_t *self, sim_store_t *store, const json_t *counters,
                 uint64_t requests, uint64_t now_us)
{
    double seconds =
        now_us > self->last_us ? (double) (now_us - self->last_us) / 1e6 : 1e-6;
    double cpu_s = sf_time_cpu_s (RUSAGE_SELF);
    size_t authoritative = sim_store_authoritative (store);
    json_t *report = json_pack (
        "{s:I,s:I,s:I,s:f,s:f,s:I,s:I}", "entities",
        (json_int_t) sim_store_size (store), "authoritative",
        (json_int_t) authoritative, "replicas",
        (json_int_t) (sim_store_size (store) - authoritative), "cpu_per_s",
        (cpu_s - self->last_cpu_s) / seconds, "api_per_s",
        (double) (requests - self->last_requests) / seconds, "rss_bytes",
        (json_int_t) sf_time_rss_bytes (), "capacity",
        (json_int_t) self->capacity);
    json_t *dropped = json_object ();
    for (size_t at = 0; at < sizeof s_rates / sizeof s_rates [0]; at++)
        json_object_set_new (
            report, s_rates [at].rate,
            json_real ((double) s_delta (self, counters, s_rates [at].counter)
                       / seconds));
    for (size_t at = 0; at < sizeof s_drops / sizeof s_drops [0]; at++)
        json_object_set_new (dropped, s_drops [at].reason,
                             json_integer ((json_int_t) s_delta (
                                 self, counters, s_drops [at].counter)));
    json_object_set_new (report, "dropped", dropped);
    json_object_set_new (
        report, "credit_stalls",
        json_integer ((json_int_t) s_delta (self, counters, "credit_stalls")));

    zhashx_t *groups = zhashx_new ();
    zhashx_set_destructor (groups, (zhashx_destructor_fn *) zstr_free);
    s_walk (self, store, groups);
    //  What is being taken is this sim's from the grant on: the ring
    //  counts it here, and so does the balancer (load.md section 2).
    for (const char *path = (const char *) zlist_first (self->taking); path;
         path = (const char *) zlist_next (self->taking))
        s_count (groups, path, 0);
    zlist_purge (self->taking);
    size_t count = zhashx_size (groups), at = 0;
    s_group_t **ranked = (s_group_t **) malloc ((count + 1) * sizeof *ranked);
    for (s_group_t *group = (s_group_t *) zhashx_first (groups); group;
         group = (s_group_t *) zhashx_next (groups)) {
        group->cost = 20e-6 * (double) group->entities
                      + 40e-6 * (double) group->updates / seconds;
        ranked [at++] = group;
    }
    qsort (ranked, count, sizeof *ranked, s_by_cost);
    json_t *named = json_array ();
    uint64_t rest_entities = 0, rest_updates = 0;
    for (at = 0; at < count; at++) {
        if (at < SIM_LOAD_GROUPS)
            json_array_append_new (
                named,
                json_pack ("{s:s,s:I,s:f}", "group", ranked [at]->name,
                           "entities", (json_int_t) ranked [at]->entities,
                           "updates_per_s",
                           (double) ranked [at]->updates / seconds));
        else {
            rest_entities += ranked [at]->entities;
            rest_updates += ranked [at]->updates;
        }
    }
    json_object_set_new (report, "groups", named);
    json_object_set_new (report, "rest",
                         json_pack ("{s:I,s:I,s:f}", "groups",
                                    (json_int_t) (count > SIM_LOAD_GROUPS
                                                      ? count - SIM_LOAD_GROUPS
                                                      : 0),
                                    "entities", (json_int_t) rest_entities,
                                    "updates_per_s",
                                    (double) rest_updates / seconds));
    free (ranked);
    zhashx_destroy (&groups);

    self->last_us = now_us;
    self->last_cpu_s = cpu_s;
    self->last_requests = requests;
    json_decref (self->last_counters);
    self->last_counters = counters ? json_deep_copy (counters) : NULL;
    return report;
}

//  --------------------------------------------------------------------------
//  Self test

int
sim_load_test (bool verbose)
{
    if (verbose)
        printf (" * sim_load: ");
    sim_store_t *store = sim_store_new ();
    sim_load_t *load = sim_load_new (2);
    static const char *const paths [] = {"/w/room1/a", "/w/room1/b",
                                         "/w/room2/c", "/top", "/w/far@west"};
    for (size_t at = 0; at < 5; at++)
        assert (sim_store_create (store, paths [at], strlen (paths [at]), 1, 1,
                                  true));
    assert (sim_store_create (store, "/w/room3/replica", 16, 1, 1, false));
    json_t *counters = json_pack ("{s:i,s:i,s:i}", "updates_sent", 100,
                                  "drop_replay", 3, "bytes_sent", 1000);
    uint64_t start = sf_time_mono_us ();
    json_t *report = sim_load_report (load, store, counters, 10, start + 1);
    json_decref (report);
    //  One second on: room1 made 30 updates, room2 none; the stream sent
    //  50 more updates and dropped 2 more replays; the API read 20 more.
    sim_entity_t *a = sim_store_get (store, "/w/room1/a");
    sim_entity_t *b = sim_store_get (store, "/w/room1/b");
    assert (sim_store_set (store, a, 1, 21, (const uint8_t *) "x", 1, 0) == 0);
    assert (sim_store_set (store, b, 1, 11, (const uint8_t *) "y", 1, 0) == 0);
    json_object_set_new (counters, "updates_sent", json_integer (150));
    json_object_set_new (counters, "drop_replay", json_integer (5));
    report = sim_load_report (load, store, counters, 30, start + 1000001);
    assert (json_integer_value (json_object_get (report, "entities")) == 6);
    assert (json_integer_value (json_object_get (report, "authoritative"))
            == 5);
    assert (json_integer_value (json_object_get (report, "capacity")) == 2);
    double sent =
        json_real_value (json_object_get (report, "updates_sent_per_s"));
    assert (sent > 49.9 && sent < 50.1);
    double api = json_real_value (json_object_get (report, "api_per_s"));
    assert (api > 19.9 && api < 20.1);
    assert (json_integer_value (
                json_object_get (json_object_get (report, "dropped"), "replay"))
            == 2);
    //  Groups: room1 first (the dearest), then the others; no group for
    //  a replica or another instance's entity.
    const json_t *groups = json_object_get (report, "groups");
    assert (json_array_size (groups) == 3);
    const json_t *first = json_array_get (groups, 0);
    assert (streq (json_string_value (json_object_get (first, "group")),
                   "/w/room1"));
    assert (json_integer_value (json_object_get (first, "entities")) == 2);
    double updates = json_real_value (json_object_get (first, "updates_per_s"));
    assert (updates > 29.9 && updates < 30.1);
    for (size_t at = 1; at < 3; at++) {
        const char *name = json_string_value (
            json_object_get (json_array_get (groups, at), "group"));
        assert (streq (name, "/w/room2") || streq (name, "/"));
    }
    json_decref (report);
    //  A new epoch (taken again) counts from its first seq. Paths being
    //  taken count in their groups for that report only: room2 gains
    //  two, a new room one.
    assert (sim_store_set (store, a, 2, 4, (const uint8_t *) "z", 1, 0) == 0);
    sim_load_taking (load, "/w/room2/d");
    sim_load_taking (load, "/w/room2/e");
    sim_load_taking (load, "/w/room9/f");
    report = sim_load_report (load, store, counters, 30, start + 2000001);
    groups = json_object_get (report, "groups");
    assert (json_array_size (groups) == 4);
    first = json_array_get (groups, 0);
    updates = json_real_value (json_object_get (first, "updates_per_s"));
    assert (updates > 3.9 && updates < 4.1);
    for (size_t at = 0; at < 4; at++) {
        const json_t *group = json_array_get (groups, at);
        const char *name = json_string_value (json_object_get (group, "group"));
        json_int_t entities =
            json_integer_value (json_object_get (group, "entities"));
        if (streq (name, "/w/room2"))
            assert (entities == 3);
        if (streq (name, "/w/room9"))
            assert (entities == 1);
    }
    json_decref (report);
    report = sim_load_report (load, store, counters, 30, start + 3000001);
    assert (json_array_size (json_object_get (report, "groups")) == 3);
    json_decref (report);
    json_decref (counters);
    sim_load_destroy (&load);
    sim_store_destroy (&store);
    if (verbose)
        printf ("OK\n");
    return 0;
}
