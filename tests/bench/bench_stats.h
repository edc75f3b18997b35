/*  bench_stats: the percentiles every benchmark program reports, by one
    definition (nearest rank, as the Python drivers compute it), so that
    a p99 means the same thing in every table of BENCHMARKS.md. */

#ifndef BENCH_STATS_H_INCLUDED
#define BENCH_STATS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Sorts the COUNT samples in place, ascending.
void bench_stats_sort (uint64_t *samples, size_t count);

//  The nearest-rank FRACTION quantile of COUNT samples sorted ascending:
//  the smallest sample that at least FRACTION of them do not exceed
//  (FRACTION 0.5: the median; 1: the largest). 0 when COUNT is 0.
uint64_t bench_stats_rank (const uint64_t *sorted, size_t count,
                           double fraction);

#endif
