/*  ctl_watch: fabricctl watch, the ring's changes as lines until
    interrupted (protocol/operations.md section 4).

    It follows one member's change feed (its events endpoint, every
    topic, so the chain of index and prev can be checked), prints the
    changes whose topic starts with the prefix, fills a gap from the
    member's kept changes (events.read), and when the member goes silent
    and does not answer, moves to another member of the ring and resumes
    after the last change it printed: no change twice, none skipped
    without a line saying so. */

#ifndef CTL_WATCH_H_INCLUDED
#define CTL_WATCH_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct {
    const char *server;      //  a member's API endpoint
    const char *server_key;  //  its public key (Z85)
    const char *secret;      //  our secret certificate's path, or NULL
    const char *prefix;      //  topics to print ("" or NULL: every one)
    bool json;               //  each change as its event's JSON
    int timeout_ms;          //  a member's answer, at most
    FILE *out;               //  where the lines go
} ctl_watch_config_t;

//  Watch until interrupted (SIGINT, SIGTERM): 0. Returns -1 with FAULT
//  if no member could be followed at the start.
int ctl_watch_run (const ctl_watch_config_t *config, sf_fault_t *fault);

//  One change's line: "INDEX TOPIC OP SUMMARY", SUMMARY the result's
//  scalar fields that say what changed (authority=sim1 epoch=3 ...). The
//  caller frees. Pure, for tests.
char *ctl_watch_line (const json_t *event);

//  Self test; returns 0 on success.
int ctl_watch_test (bool verbose);

#endif
