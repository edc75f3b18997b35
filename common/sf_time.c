/*  sf_time: clocks. */

#include "common/sf_time.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t
s_clock_ns (clockid_t clock)
{
    struct timespec now;
    clock_gettime (clock, &now);
    return (uint64_t) now.tv_sec * 1000000000u + (uint64_t) now.tv_nsec;
}

uint64_t
sf_time_mono_ns (void)
{
    return s_clock_ns (CLOCK_MONOTONIC);
}

uint64_t
sf_time_mono_us (void)
{
    return s_clock_ns (CLOCK_MONOTONIC) / 1000u;
}

uint64_t
sf_time_mono_ms (void)
{
    return s_clock_ns (CLOCK_MONOTONIC) / 1000000u;
}

uint64_t
sf_time_wall_ms (void)
{
    return s_clock_ns (CLOCK_REALTIME) / 1000000u;
}

uint64_t
sf_time_wall_us (void)
{
    return s_clock_ns (CLOCK_REALTIME) / 1000u;
}

void
sf_time_format_iso (uint64_t wall_ms, char *buffer, unsigned size)
{
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm utc;
    gmtime_r (&seconds, &utc);
    char date [24];
    strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (buffer, size, "%s.%03uZ", date, (unsigned) (wall_ms % 1000));
}

double
sf_time_cpu_s (int who)
{
    struct rusage usage;
    if (getrusage (who, &usage))
        return 0;
    return (double) usage.ru_utime.tv_sec + (double) usage.ru_stime.tv_sec
           + (double) (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

uint64_t
sf_time_rss_bytes (void)
{
    FILE *file = fopen ("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    int read = file ? fscanf (file, "%llu %llu", &size, &resident) : 0;
    if (file)
        fclose (file);
    return read == 2 ? resident * (uint64_t) sysconf (_SC_PAGESIZE) : 0;
}

int
sf_time_test (bool verbose)
{
    if (verbose)
        printf (" * sf_time: ");
    uint64_t before = sf_time_mono_ns ();
    struct timespec pause = {0, 2000000};
    nanosleep (&pause, NULL);
    uint64_t after = sf_time_mono_ns ();
    assert (after - before >= 2000000);
    assert (sf_time_mono_ms () >= before / 1000000u);
    assert (sf_time_wall_ms () > 1700000000000u);

    //  Busy work shows in this process's CPU time (within 5 s of wall
    //  time, however loaded the machine).
    double cpu = sf_time_cpu_s (RUSAGE_SELF);
    for (uint64_t start = sf_time_mono_ns ();
         sf_time_cpu_s (RUSAGE_SELF) - cpu < 0.01
         && sf_time_mono_ns () - start < 5000000000u;)
        ;
    assert (sf_time_cpu_s (RUSAGE_SELF) - cpu >= 0.01);
    assert (sf_time_cpu_s (-12345) == 0);  //  not a WHO getrusage knows

    char text [32];
    sf_time_format_iso (0, text, sizeof text);
    assert (strcmp (text, "1970-01-01T00:00:00.000Z") == 0);
    sf_time_format_iso (1795477500123u, text, sizeof text);
    assert (strcmp (text, "2026-11-23T23:45:00.123Z") == 0);
    //  This process holds at least a page, and not a terabyte.
    uint64_t rss = sf_time_rss_bytes ();
    assert (rss >= 4096 && rss < (1ull << 40));
    if (verbose)
        printf ("OK\n");
    return 0;
}
