/*  sf_prom: latency histograms, and the Prometheus text exposition
    format (version 0.0.4) that a daemon's GET /metrics answers
    (protocol/http.md section 3).

    A histogram is a fixed array of counts, one per bucket, so observing
    is an increment and no allocation: it sits on the request path. The
    writer builds the whole scrape in one buffer, family by family, each
    with its # HELP and # TYPE lines once, every sample labelled with the
    daemon's node name. */

#ifndef SF_PROM_H_INCLUDED
#define SF_PROM_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Bucket bounds in microseconds: 100 us .. 10 s (and +Inf).
#define SF_PROM_BUCKETS 16

typedef struct {
    uint64_t counts [SF_PROM_BUCKETS + 1];  //  per bucket, not cumulative;
                                            //  the last is +Inf
    uint64_t count;
    uint64_t sum_us;
} sf_prom_histo_t;

//  Count one observation of US microseconds.
void sf_prom_histo_observe (sf_prom_histo_t *histo, uint64_t us);

typedef struct _sf_prom_t sf_prom_t;

//  A scrape of daemon KIND ("homeserver", "simserver") named NODE: every
//  family is named simfabric_KIND_NAME.
sf_prom_t *sf_prom_new (const char *kind, const char *node);

void sf_prom_destroy (sf_prom_t **self_p);

//  Begin family NAME of TYPE ("counter", "gauge", "histogram") with HELP
//  (one line). A counter's NAME ends in _total. Later families of the
//  same name are ignored with their samples (a name has one family).
void sf_prom_family (sf_prom_t *self, const char *name, const char *type,
                     const char *help);

//  A sample of the current family: VALUE, with the label LABEL="WHAT"
//  (both NULL: the node's label only).
void sf_prom_sample (sf_prom_t *self, const char *label, const char *what,
                     double value);

//  The current family's histogram HISTO, labelled LABEL="WHAT" (or not).
void sf_prom_histo (sf_prom_t *self, const char *label, const char *what,
                    const sf_prom_histo_t *histo);

//  Every number of COUNTERS ({name: integer}, as the op "counters"
//  answers) as a family: a gauge if its name is in GAUGES (NULL-ended),
//  else a counter named NAME_total. Other members are skipped.
void sf_prom_counters (sf_prom_t *self, const json_t *counters,
                       const char *const *gauges, const char *help);

//  Every number of FIGURES ({name: number}) as a gauge named
//  PREFIX_NAME; booleans are 0 or 1.
void sf_prom_gauges (sf_prom_t *self, const char *prefix, const json_t *figures,
                     const char *help);

//  The text so far (lent) and its size.
const char *sf_prom_text (sf_prom_t *self, size_t *size);

//  Self test; returns 0 on success.
int sf_prom_test (bool verbose);

#endif
