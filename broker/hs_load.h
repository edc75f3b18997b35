/*  hs_load: the leader's table of load reports (protocol/load.md section
    2): the latest report of each sim and homeserver, kept in memory, not
    in the log. A report is a sample superseded a second later; what must
    survive a leader change is the balancer's decisions, which are ring
    commands. A new leader starts empty and fills as servers report. */

#ifndef HS_LOAD_H_INCLUDED
#define HS_LOAD_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _hs_load_t hs_load_t;

//  Servers of each kind kept at most: a report from one more is dropped.
#define HS_LOAD_MAX 10000

//  An empty table.
hs_load_t *hs_load_new (void);

//  Destroy and null the caller's pointer.
void hs_load_destroy (hs_load_t **self_p);

//  Keep REPORT (taken; an object) as the latest of server NAME of KIND
//  ("sim" or "homeserver"), received at NOW_MS (monotonic).
void hs_load_put (hs_load_t *self, const char *kind, const char *name,
                  json_t *report, uint64_t now_ms);

//  The latest report of NAME of KIND with its "age_ms" at NOW_MS: a new
//  object, or NULL if none.
json_t *hs_load_get (hs_load_t *self, const char *kind, const char *name,
                     uint64_t now_ms);

//  Every report: {"sims": {NAME: report}, "homeservers": {NAME: report}},
//  each with its "age_ms" at NOW_MS. A new object.
json_t *hs_load_all (hs_load_t *self, uint64_t now_ms);

//  Forget every report (this member stopped leading: a later leadership
//  starts from fresh ones).
void hs_load_clear (hs_load_t *self);

//  Self test.
int hs_load_test (bool verbose);

#endif
