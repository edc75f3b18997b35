/*  sf_prom: latency histograms and the Prometheus text format. */

#include "common/sf_prom.h"

#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t s_bounds_us [SF_PROM_BUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

void
sf_prom_histo_observe (sf_prom_histo_t *histo, uint64_t us)
{
    size_t at = 0;
    while (at < SF_PROM_BUCKETS && us > s_bounds_us [at])
        at++;
    histo->counts [at]++;
    histo->count++;
    histo->sum_us += us;
}

struct _sf_prom_t {
    char *prefix;  //  simfabric_KIND_
    char *node;    //  the node label's value, escaped
    char *text;
    size_t size;
    size_t capacity;
    char family [160];  //  the current family's full name, or ""
    zhashx_t *named;    //  families begun (names only)
};

static void
s_append (sf_prom_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int need = vsnprintf (NULL, 0, format, args);
    va_end (args);
    if (need < 0)
        return;
    if (self->size + (size_t) need + 1 > self->capacity) {
        self->capacity = (self->size + (size_t) need + 1) * 2;
        self->text = (char *) realloc (self->text, self->capacity);
    }
    va_start (args, format);
    vsnprintf (self->text + self->size, (size_t) need + 1, format, args);
    va_end (args);
    self->size += (size_t) need;
}

//  VALUE escaped as a label value: backslash, quote and newline.
static char *
s_escape (const char *value)
{
    char *escaped = (char *) malloc (strlen (value) * 2 + 1);
    char *out = escaped;
    for (const char *in = value; *in; in++) {
        if (*in == '\\' || *in == '"')
            *out++ = '\\';
        if (*in == '\n') {
            *out++ = '\\';
            *out++ = 'n';
            continue;
        }
        *out++ = *in;
    }
    *out = '\0';
    return escaped;
}

//  NAME made a valid metric name: [a-zA-Z0-9_], other bytes as '_'.
static void
s_name (char *name)
{
    for (char *at = name; *at; at++)
        if (!(isalnum ((unsigned char) *at) || *at == '_'))
            *at = '_';
}

sf_prom_t *
sf_prom_new (const char *kind, const char *node)
{
    sf_prom_t *self = (sf_prom_t *) zmalloc (sizeof (sf_prom_t));
    self->prefix = zsys_sprintf ("simfabric_%s_", kind);
    self->node = s_escape (node);
    self->named = zhashx_new ();
    return self;
}

void
sf_prom_destroy (sf_prom_t **self_p)
{
    if (*self_p) {
        sf_prom_t *self = *self_p;
        zhashx_destroy (&self->named);
        free (self->prefix);
        free (self->node);
        free (self->text);
        free (self);
        *self_p = NULL;
    }
}

void
sf_prom_family (sf_prom_t *self, const char *name, const char *type,
                const char *help)
{
    snprintf (self->family, sizeof self->family, "%s%s", self->prefix, name);
    s_name (self->family);
    if (zhashx_lookup (self->named, self->family)) {
        self->family [0] = '\0';  //  one family per name
        return;
    }
    zhashx_insert (self->named, self->family, self);
    s_append (self, "# HELP %s %s\n# TYPE %s %s\n", self->family, help,
              self->family, type);
}

//  The labels of a sample: node, and LABEL="WHAT" if given.
static void
s_labels (sf_prom_t *self, const char *label, const char *what,
          const char *more)
{
    s_append (self, "{node=\"%s\"", self->node);
    if (label && what) {
        char *escaped = s_escape (what);
        s_append (self, ",%s=\"%s\"", label, escaped);
        free (escaped);
    }
    s_append (self, "%s}", more ? more : "");
}

static void
s_value (sf_prom_t *self, double value)
{
    if (isnan (value))
        s_append (self, " NaN\n");
    else if (value == floor (value) && fabs (value) < 9e15)
        s_append (self, " %.0f\n", value);
    else
        s_append (self, " %.17g\n", value);
}

void
sf_prom_sample (sf_prom_t *self, const char *label, const char *what,
                double value)
{
    if (!self->family [0])
        return;
    s_append (self, "%s", self->family);
    s_labels (self, label, what, NULL);
    s_value (self, value);
}

void
sf_prom_histo (sf_prom_t *self, const char *label, const char *what,
               const sf_prom_histo_t *histo)
{
    if (!self->family [0])
        return;
    uint64_t cumulative = 0;
    for (size_t at = 0; at <= SF_PROM_BUCKETS; at++) {
        cumulative += histo->counts [at];
        char bound [64];
        if (at < SF_PROM_BUCKETS)
            snprintf (bound, sizeof bound, ",le=\"%g\"",
                      (double) s_bounds_us [at] / 1e6);
        else
            snprintf (bound, sizeof bound, ",le=\"+Inf\"");
        s_append (self, "%s_bucket", self->family);
        s_labels (self, label, what, bound);
        s_value (self, (double) cumulative);
    }
    s_append (self, "%s_sum", self->family);
    s_labels (self, label, what, NULL);
    s_append (self, " %.6f\n", (double) histo->sum_us / 1e6);
    s_append (self, "%s_count", self->family);
    s_labels (self, label, what, NULL);
    s_value (self, (double) histo->count);
}

static bool
s_listed (const char *name, const char *const *names)
{
    for (size_t at = 0; names && names [at]; at++)
        if (streq (names [at], name))
            return true;
    return false;
}

//  Members of OBJECT in name order, so a scrape reads the same each time.
static int
s_by_name (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static const char **
s_sorted_keys (const json_t *object, size_t *count)
{
    *count = json_object_size (object);
    const char **keys = (const char **) calloc (*count + 1, sizeof (char *));
    size_t at = 0;
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) object, key, value)
    {
        keys [at++] = key;
    }
    qsort (keys, at, sizeof (char *), s_by_name);
    return keys;
}

void
sf_prom_counters (sf_prom_t *self, const json_t *counters,
                  const char *const *gauges, const char *help)
{
    size_t count;
    const char **keys = s_sorted_keys (counters, &count);
    for (size_t at = 0; at < count; at++) {
        json_t *value = json_object_get (counters, keys [at]);
        if (!json_is_number (value))
            continue;
        bool gauge = s_listed (keys [at], gauges);
        char name [160];
        snprintf (name, sizeof name, gauge ? "%s" : "%s_total", keys [at]);
        char line [256];
        snprintf (line, sizeof line, "%s: %s", help, keys [at]);
        sf_prom_family (self, name, gauge ? "gauge" : "counter", line);
        sf_prom_sample (self, NULL, NULL, json_number_value (value));
    }
    free (keys);
}

void
sf_prom_gauges (sf_prom_t *self, const char *prefix, const json_t *figures,
                const char *help)
{
    size_t count;
    const char **keys = s_sorted_keys (figures, &count);
    for (size_t at = 0; at < count; at++) {
        json_t *value = json_object_get (figures, keys [at]);
        if (!json_is_number (value) && !json_is_boolean (value))
            continue;
        char name [160];
        snprintf (name, sizeof name, "%s_%s", prefix, keys [at]);
        char line [256];
        snprintf (line, sizeof line, "%s: %s", help, keys [at]);
        sf_prom_family (self, name, "gauge", line);
        sf_prom_sample (self, NULL, NULL,
                        json_is_boolean (value) ? json_is_true (value)
                                                : json_number_value (value));
    }
    free (keys);
}

const char *
sf_prom_text (sf_prom_t *self, size_t *size)
{
    *size = self->size;
    return self->text ? self->text : "";
}

int
sf_prom_test (bool verbose)
{
    if (verbose)
        printf (" * sf_prom: ");
    sf_prom_histo_t histo = {0};
    sf_prom_histo_observe (&histo, 100);       //  le 0.0001
    sf_prom_histo_observe (&histo, 101);       //  le 0.00025
    sf_prom_histo_observe (&histo, 3000000);   //  le 5
    sf_prom_histo_observe (&histo, 99000000);  //  +Inf
    assert (histo.count == 4);
    assert (histo.counts [0] == 1 && histo.counts [1] == 1);
    assert (histo.counts [14] == 1 && histo.counts [SF_PROM_BUCKETS] == 1);

    sf_prom_t *prom = sf_prom_new ("homeserver", "hs\"1");
    json_t *counters =
        json_pack ("{s:i,s:i,s:s,s:f}", "raft_sent", 7, "ring_digest_index", 12,
                   "text", "skip", "api-weird.name", 1.5);
    const char *gauges [] = {"ring_digest_index", NULL};
    sf_prom_counters (prom, counters, gauges, "counters");
    json_decref (counters);
    sf_prom_family (prom, "request_duration_seconds", "histogram", "latency");
    sf_prom_histo (prom, "op", "entity.get", &histo);
    //  A second family of one name is dropped, samples and all.
    sf_prom_family (prom, "raft_sent_total", "counter", "again");
    sf_prom_sample (prom, NULL, NULL, 99);
    json_t *figures = json_pack ("{s:b,s:f}", "leader", 1, "cpu", 0.25);
    sf_prom_gauges (prom, "load", figures, "load");
    json_decref (figures);
    size_t size;
    const char *text = sf_prom_text (prom, &size);
    assert (size == strlen (text));
    assert (strstr (text, "# TYPE simfabric_homeserver_raft_sent_total "
                          "counter\nsimfabric_homeserver_raft_sent_total"
                          "{node=\"hs\\\"1\"} 7\n"));
    assert (strstr (text, "# TYPE simfabric_homeserver_ring_digest_index "
                          "gauge\n"));
    assert (strstr (text, "simfabric_homeserver_api_weird_name_total"
                          "{node=\"hs\\\"1\"} 1.5\n"));
    assert (!strstr (text, "text"));
    assert (!strstr (text, " 99\n"));
    assert (strstr (text, "_bucket{node=\"hs\\\"1\",op=\"entity.get\","
                          "le=\"0.0001\"} 1\n"));
    assert (strstr (text, "le=\"0.00025\"} 2\n"));
    assert (strstr (text, "le=\"10\"} 3\n"));
    assert (strstr (text, "le=\"+Inf\"} 4\n"));
    assert (strstr (text, "request_duration_seconds_sum{node=\"hs\\\"1\","
                          "op=\"entity.get\"} 102.000201\n"));
    assert (strstr (text, "request_duration_seconds_count{node=\"hs\\\"1\","
                          "op=\"entity.get\"} 4\n"));
    assert (strstr (text, "simfabric_homeserver_load_leader{node=\"hs\\\"1\"}"
                          " 1\n"));
    assert (strstr (text, "simfabric_homeserver_load_cpu{node=\"hs\\\"1\"}"
                          " 0.25\n"));
    sf_prom_destroy (&prom);
    assert (!prom);
    if (verbose)
        printf ("OK\n");
    return 0;
}
