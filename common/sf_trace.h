/*  sf_trace: a daemon's record of the messages it sends and receives for
    each traced transfer or update (protocol/trace.md), so hops can be
    counted by the daemons themselves and put together by fabricctl.

    A fixed ring of records: recording never allocates and never fails;
    the oldest records are overwritten. Not thread-safe: the daemon's loop
    owns it. */

#ifndef SF_TRACE_H_INCLUDED
#define SF_TRACE_H_INCLUDED

#include "common/sf_error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _sf_trace_t sf_trace_t;

//  Records kept by a daemon (protocol/trace.md section 2).
#define SF_TRACE_CAPACITY 8192

//  Longest trace id and peer name kept, in bytes; longer ones are cut.
#define SF_TRACE_MAX_ID 63
#define SF_TRACE_MAX_PEER 64

//  A recorder for the daemon called NODE (copied), with room for CAPACITY
//  records (0 means SF_TRACE_CAPACITY).
sf_trace_t *sf_trace_new (const char *node, unsigned capacity);

//  Destroy the recorder.
void sf_trace_destroy (sf_trace_t **self_p);

//  Record that this daemon sent (SENT true) or received message MSG (a
//  static string: "request", "reply", ...) of trace TRACE to or from PEER,
//  at wall-clock time US (microseconds since the Unix epoch).
void sf_trace_record (sf_trace_t *self, const char *trace, const char *msg,
                      bool sent, const char *peer, uint64_t us);

//  The same, for a transfer id (a ring log index).
void sf_trace_transfer (sf_trace_t *self, uint64_t transfer, const char *msg,
                        bool sent, const char *peer, uint64_t us);

//  The records of TRACE, oldest first, as the JSON array of trace.md.
//  Caller owns the array.
json_t *sf_trace_records (sf_trace_t *self, const char *trace);

//  The trace id the API op "trace" names in ARGS's field "trace" (a
//  transfer number, or a string of 1..SF_TRACE_MAX_ID bytes), as text into
//  ID (SF_TRACE_MAX_ID + 1 bytes). Returns 0, or -1 with FAULT naming the
//  field. Checks that field only: callers refuse unknown ones.
int sf_trace_id (const json_t *args, char *id, sf_fault_t *fault);

//  Answer the API op "trace" (trace.md section 3) with request ARGS (lent):
//  {"node", "trace", "records"}, caller owns it; or NULL with FAULT for
//  bad arguments.
json_t *sf_trace_answer (sf_trace_t *self, const json_t *args,
                         sf_fault_t *fault);

//  Self test; returns 0 on success.
int sf_trace_test (bool verbose);

#endif
