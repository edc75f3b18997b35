/*  bench_ring: load generator for a homeserver ring, with the floor it is
    compared to measured in the same run.

    Usage: bench_ring LEADER_ENDPOINT LEADER_CERT DATA_DIR CLIENTS SECONDS
                      [write|read]

    CLIENTS DEALER sockets (each its own CURVE key, one request in flight)
    send entity.create (write) or entity.get (read, linearizable) to the
    leader for SECONDS. Prints completed requests, throughput, p50 and p99.
    The floor: one fdatasync of a 100-byte append in DATA_DIR (the disk the
    ring writes to), measured before the load. A durable write cannot be
    acknowledged faster than that. */

#include "common/sf_cert.h"
#include "common/sf_curve.h"
#include "common/sf_time.h"
#include "tests/bench/bench_stats.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
s_report (const char *what, uint64_t *samples, size_t count, double seconds)
{
    if (count == 0) {
        printf ("%-28s no samples\n", what);
        return;
    }
    bench_stats_sort (samples, count);
    printf ("%-28s n=%zu  %.0f/s  p50 %.3f ms  p99 %.3f ms\n", what, count,
            seconds > 0 ? (double) count / seconds : 0.0,
            (double) bench_stats_rank (samples, count, 0.5) / 1e6,
            (double) bench_stats_rank (samples, count, 0.99) / 1e6);
}

//  The floor: fdatasync of a small append, COUNT times, in DIR.
static void
s_fsync_floor (const char *dir, int count)
{
    char path [512];
    snprintf (path, sizeof path, "%s/bench_ring_floor", dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0) {
        perror (path);
        return;
    }
    uint64_t *samples = (uint64_t *) calloc ((size_t) count, sizeof *samples);
    char record [100];
    memset (record, 'x', sizeof record);
    for (int at = 0; at < count; at++) {
        uint64_t started = sf_time_mono_ns ();
        if (write (fd, record, sizeof record) != (ssize_t) sizeof record
            || fdatasync (fd) != 0)
            perror ("floor");
        samples [at] = sf_time_mono_ns () - started;
    }
    close (fd);
    unlink (path);
    s_report ("floor: fdatasync 100 B", samples, (size_t) count, 0);
    free (samples);
}

//  Send client AT's next request: a read of its entity, or the creation of
//  entity number NUMBER with an 80-byte checkpoint.
static void
s_send (zsock_t *socket, bool reads, int clients, int at, uint64_t number)
{
    if (reads)
        zstr_sendf (socket,
                    "{\"op\":\"entity.get\",\"id\":1,\"path\":\"/bench/r%d\"}",
                    at);
    else
        zstr_sendf (socket,
                    "{\"op\":\"entity.create\",\"id\":1,\"path\":"
                    "\"/bench/%d-%d/c%d/%llu\",\"checkpoint\":\"%.80d\"}",
                    (int) getpid (), clients, at, (unsigned long long) number,
                    0);
}

int
main (int argc, char *argv [])
{
    if (argc < 6) {
        fprintf (stderr, "usage: bench_ring ENDPOINT CERT DATA_DIR CLIENTS "
                         "SECONDS [write|read]\n");
        return 2;
    }
    const char *endpoint = argv [1];
    sf_fault_t fault;
    char server_key [SF_CERT_KEY_TEXT + 1];
    if (sf_cert_load_public (argv [2], server_key, &fault)) {
        fprintf (stderr, "bench_ring: %s\n", fault.message);
        return 2;
    }
    int clients = atoi (argv [4]);
    double seconds = atof (argv [5]);
    bool reads = argc > 6 && strcmp (argv [6], "read") == 0;
    if (clients < 1 || clients > 1024 || seconds <= 0)
        return 2;
    s_fsync_floor (argv [3], 200);

    zsock_t **sockets =
        (zsock_t **) calloc ((size_t) clients, sizeof (zsock_t *));
    zcert_t **certs =
        (zcert_t **) calloc ((size_t) clients, sizeof (zcert_t *));
    uint64_t *sent_at =
        (uint64_t *) calloc ((size_t) clients, sizeof (uint64_t));
    uint64_t *counter =
        (uint64_t *) calloc ((size_t) clients, sizeof (uint64_t));
    size_t capacity = 1 << 20;
    uint64_t *samples = (uint64_t *) malloc (capacity * sizeof (uint64_t));
    size_t count = 0;
    size_t errors = 0;
    zpoller_t *poller = zpoller_new (NULL);

    //  One request in flight per client.
    for (int at = 0; at < clients; at++) {
        certs [at] = zcert_new ();
        sockets [at] = zsock_new (ZMQ_DEALER);
        sf_curve_client (sockets [at], certs [at], server_key);
        zsock_connect (sockets [at], "%s", endpoint);
        zpoller_add (poller, sockets [at]);
    }
    //  Reads need something to read: one entity per client first.
    if (reads)
        for (int at = 0; at < clients; at++) {
            zstr_sendf (sockets [at],
                        "{\"op\":\"entity.create\",\"id\":0,\"path\":"
                        "\"/bench/r%d\"}",
                        at);
            char *reply = zstr_recv (sockets [at]);
            free (reply);
        }
    uint64_t started = sf_time_mono_ns ();
    uint64_t end = started + (uint64_t) (seconds * 1e9);
    for (int at = 0; at < clients; at++) {
        sent_at [at] = sf_time_mono_ns ();
        s_send (sockets [at], reads, clients, at, counter [at]++);
    }
    int in_flight = clients;
    while (in_flight > 0) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, 5000);
        if (!which)
            break;
        char *reply = zstr_recv (which);
        uint64_t now = sf_time_mono_ns ();
        int at = 0;
        while (sockets [at] != which)
            at++;
        if (!reply || !strstr (reply, "\"ok\":true")) {
            if (errors++ == 0)
                fprintf (stderr, "bench_ring: first error: %s\n",
                         reply ? reply : "(none)");
        }
        else if (count < capacity)
            samples [count++] = now - sent_at [at];
        free (reply);
        if (now >= end) {
            in_flight--;
            continue;
        }
        sent_at [at] = sf_time_mono_ns ();
        s_send (sockets [at], reads, clients, at, counter [at]++);
    }
    double elapsed = (double) (sf_time_mono_ns () - started) / 1e9;
    char what [64];
    snprintf (what, sizeof what, "%s, %d client%s", reads ? "reads" : "writes",
              clients, clients > 1 ? "s" : "");
    s_report (what, samples, count, elapsed);
    if (errors)
        printf ("%-28s %zu error replies\n", "", errors);

    zpoller_destroy (&poller);
    for (int at = 0; at < clients; at++) {
        zsock_destroy (&sockets [at]);
        zcert_destroy (&certs [at]);
    }
    free (sockets);
    free (certs);
    free (sent_at);
    free (counter);
    free (samples);
    return errors ? 1 : 0;
}
