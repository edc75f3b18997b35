/*  bench_stats: the percentiles every benchmark program reports. */

#include "tests/bench/bench_stats.h"

#include <math.h>
#include <stdlib.h>

static int
s_compare (const void *left, const void *right)
{
    uint64_t a = *(const uint64_t *) left, b = *(const uint64_t *) right;
    return a < b ? -1 : a > b;
}

void
bench_stats_sort (uint64_t *samples, size_t count)
{
    qsort (samples, count, sizeof *samples, s_compare);
}

uint64_t
bench_stats_rank (const uint64_t *sorted, size_t count, double fraction)
{
    if (count == 0)
        return 0;
    double rank = ceil (fraction * (double) count);
    if (rank < 1)
        rank = 1;
    if (rank > (double) count)
        rank = (double) count;
    return sorted [(size_t) rank - 1];
}
