/*  bench_http: load generator for a homeserver's REST API
    (protocol/http.md), the HTTP twin of bench_ring.

    Usage: bench_http PORT TOKEN CLIENTS SECONDS [write|read|metrics]

    CLIENTS keep-alive TCP connections to 127.0.0.1:PORT, one request in
    flight each, send PUT /v1/entities/... (write: entity.create) or GET
    /v1/entities/bench/rN (read, linearizable; the entities are made
    first) or GET /metrics, with the bearer TOKEN, for SECONDS. Prints
    completed requests, throughput, p50 and p99 as bench_ring does. */

#define _GNU_SOURCE  //  strcasestr
#include "common/sf_time.h"
#include "tests/bench/bench_stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    uint64_t sent_at;
    uint64_t number;
    char buffer [1 << 17];
    size_t size;
} s_client_t;

static int
s_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons ((uint16_t) port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect (fd, (struct sockaddr *) &to, sizeof to)) {
        perror ("bench_http: connect");
        exit (2);
    }
    return fd;
}

//  Send client AT's next request of KIND.
static void
s_send (s_client_t *client, const char *kind, const char *token, int clients,
        int at)
{
    char request [512];
    int size;
    if (!strcmp (kind, "read"))
        size = snprintf (request, sizeof request,
                         "GET /v1/entities/bench/r%d HTTP/1.1\r\nHost: b\r\n"
                         "Authorization: Bearer %s\r\n\r\n",
                         at, token);
    else if (!strcmp (kind, "metrics"))
        size = snprintf (request, sizeof request,
                         "GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n");
    else {
        char body [160];
        int body_size =
            snprintf (body, sizeof body, "{\"checkpoint\":\"%.80d\"}", 0);
        size = snprintf (request, sizeof request,
                         "PUT /v1/entities/bench/h%d-%d/c%d/%llu HTTP/1.1\r\n"
                         "Host: b\r\nAuthorization: Bearer %s\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         (int) getpid (), clients, at,
                         (unsigned long long) client->number++, token,
                         body_size, body);
    }
    client->sent_at = sf_time_mono_ns ();
    client->size = 0;
    if (send (client->fd, request, (size_t) size, MSG_NOSIGNAL) != size) {
        perror ("bench_http: send");
        exit (1);
    }
}

//  Read what CLIENT's connection has; returns the status of a whole
//  answer (0: not whole yet, -1: the connection closed).
static int
s_receive (s_client_t *client)
{
    ssize_t got = recv (client->fd, client->buffer + client->size,
                        sizeof client->buffer - 1 - client->size, 0);
    if (got <= 0)
        return -1;
    client->size += (size_t) got;
    client->buffer [client->size] = '\0';
    char *end = strstr (client->buffer, "\r\n\r\n");
    if (!end)
        return 0;
    const char *length = strcasestr (client->buffer, "\r\nContent-Length:");
    size_t body = length ? strtoul (length + 17, NULL, 10) : 0;
    if (client->size < (size_t) (end + 4 - client->buffer) + body)
        return 0;
    return atoi (client->buffer + 9);
}

int
main (int argc, char *argv [])
{
    if (argc < 5) {
        fprintf (stderr, "usage: bench_http PORT TOKEN CLIENTS SECONDS "
                         "[write|read|metrics]\n");
        return 2;
    }
    int port = atoi (argv [1]);
    const char *token = argv [2];
    int clients = atoi (argv [3]);
    double seconds = atof (argv [4]);
    const char *kind = argc > 5 ? argv [5] : "write";
    if (clients < 1 || clients > 1024 || seconds <= 0)
        return 2;
    s_client_t *all = (s_client_t *) calloc ((size_t) clients, sizeof *all);
    struct pollfd *polls =
        (struct pollfd *) calloc ((size_t) clients, sizeof *polls);
    for (int at = 0; at < clients; at++) {
        all [at].fd = s_connect (port);
        polls [at] = (struct pollfd){.fd = all [at].fd, .events = POLLIN};
    }
    //  Reads need something to read: one entity per client first.
    if (!strcmp (kind, "read"))
        for (int at = 0; at < clients; at++) {
            char request [512];
            int size = snprintf (
                request, sizeof request,
                "PUT /v1/entities/bench/r%d HTTP/1.1\r\nHost: b\r\n"
                "Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
                at, token);
            if (send (all [at].fd, request, (size_t) size, 0) != size)
                return 1;
            int status;
            all [at].size = 0;
            while ((status = s_receive (&all [at])) == 0)
                ;
            if (status != 201 && status != 409) {
                fprintf (stderr, "bench_http: could not make /bench/r%d: %d\n",
                         at, status);
                return 1;
            }
        }
    size_t capacity = 1 << 20, count = 0, errors = 0;
    uint64_t *samples = (uint64_t *) malloc (capacity * sizeof (uint64_t));
    uint64_t started = sf_time_mono_ns ();
    uint64_t end = started + (uint64_t) (seconds * 1e9);
    for (int at = 0; at < clients; at++)
        s_send (&all [at], kind, token, clients, at);
    int in_flight = clients;
    while (in_flight > 0) {
        int ready = poll (polls, (nfds_t) clients, 5000);
        if (ready <= 0)
            break;
        for (int at = 0; at < clients; at++) {
            if (!(polls [at].revents & (POLLIN | POLLHUP | POLLERR))
                || polls [at].fd < 0)
                continue;
            int status = s_receive (&all [at]);
            if (status == 0)
                continue;
            uint64_t now = sf_time_mono_ns ();
            if (status < 200 || status >= 300) {
                if (errors++ == 0)
                    fprintf (stderr, "bench_http: first error: %.300s\n",
                             status < 0 ? "connection closed"
                                        : all [at].buffer);
            }
            else if (count < capacity)
                samples [count++] = now - all [at].sent_at;
            if (now >= end || status < 0) {
                polls [at].fd = -1;
                in_flight--;
                continue;
            }
            s_send (&all [at], kind, token, clients, at);
        }
    }
    double elapsed = (double) (sf_time_mono_ns () - started) / 1e9;
    bench_stats_sort (samples, count);
    char what [64];
    snprintf (what, sizeof what, "http %s, %d client%s", kind, clients,
              clients > 1 ? "s" : "");
    if (count)
        printf ("%-28s n=%zu  %.0f/s  p50 %.3f ms  p99 %.3f ms\n", what, count,
                (double) count / elapsed,
                (double) bench_stats_rank (samples, count, 0.5) / 1e6,
                (double) bench_stats_rank (samples, count, 0.99) / 1e6);
    else
        printf ("%-28s no samples\n", what);
    if (errors)
        printf ("%-28s %zu error replies\n", "", errors);
    for (int at = 0; at < clients; at++)
        close (all [at].fd);
    free (all);
    free (polls);
    free (samples);
    return errors ? 1 : 0;
}
