/*  ctl_trace: puts a trace together from the records of every daemon
    (protocol/trace.md section 3): pairs each message's sent and received
    records, measures each hop, and walks the critical path backwards to
    count the hops of the hop table. Pure: no sockets, so it is tested on
    records written by hand. */

#ifndef CTL_TRACE_H_INCLUDED
#define CTL_TRACE_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>

//  Analyse RECORDS (lent; an array of trace.md records, any order) of trace
//  ID. RING (lent, NULL-terminated) names the homeservers. Returns
//  {"trace", "hops", "critical_us", "messages": [...]} (caller owns it);
//  "hops" is 0 when nothing completed the trace.
json_t *ctl_trace_analyse (const char *id, const json_t *records,
                           const char *const *ring);

//  Print an analysis as the table of trace.md.
void ctl_trace_print (const json_t *analysis);

//  Self test; returns 0 on success.
int ctl_trace_test (bool verbose);

#endif
