/*  sf_time: clocks. Monotonic time for timeouts and latency, wall time
    only for logs and records people read. Cores take time as an argument;
    only the daemons' edges call these. */

#ifndef SF_TIME_H_INCLUDED
#define SF_TIME_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

//  Monotonic clock in nanoseconds; never goes back.
uint64_t sf_time_mono_ns (void);

//  Monotonic clock in microseconds.
uint64_t sf_time_mono_us (void);

//  Monotonic clock in milliseconds.
uint64_t sf_time_mono_ms (void);

//  Wall clock in milliseconds since the Unix epoch.
uint64_t sf_time_wall_ms (void);

//  Wall-clock time in microseconds since the Unix epoch.
uint64_t sf_time_wall_us (void);

//  CPU time (user plus system) used so far, in seconds, by WHO as
//  getrusage (2) takes it: RUSAGE_SELF, RUSAGE_THREAD, RUSAGE_CHILDREN.
double sf_time_cpu_s (int who);

//  Resident memory of this process in bytes, as /proc/self/statm says
//  (0 if unknown): beside its CPU time, what a load report gives.
uint64_t sf_time_rss_bytes (void);

//  Write WALL_MS as "2026-11-23T23:45:00.123Z" into BUFFER (>= 25 bytes).
void sf_time_format_iso (uint64_t wall_ms, char *buffer, unsigned size);

//  Self test; returns 0 on success.
int sf_time_test (bool verbose);

#endif
