/*  bench_hops: the messaging floor of an authority transfer. Five
    processes pass messages along the critical path a Case 2 transfer takes
    (DESIGN.md section 6) and do nothing else: no JSON, no SQLite, no
    fsync, no raft. Each process binds one ROUTER and sends through one
    DEALER per next process, over TCP on loopback, with CURVE on every
    link as the fabric has it (or without, to show what CURVE costs).

        client -> sim2 -> leader -> follower -> leader -> sim1 -> sim2
               -> client

    That is the game client's claim, the requester's request, one round of
    replication (one follower's acknowledgement makes a majority of three),
    the leader's event to the former authority, its final state to the
    requester, and the answer to the game client: seven hops in a row.

    Usage: bench_hops CONCURRENCY SECONDS [--plain] [--size BYTES]

    CONCURRENCY messages circulate at once; each lap is one "transfer".
    Prints one JSON object: laps per second, p50/p99 lap time, and the CPU
    the five processes used per lap. */

#include "common/sf_time.h"
#include "tests/bench/bench_stats.h"

#include <czmq.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

//  The processes, and the route a lap takes through them.
enum { S_CLIENT, S_SIM2, S_LEADER, S_FOLLOWER, S_SIM1, S_ROLES };
static const char *s_names [S_ROLES] = {"client", "sim2", "leader", "follower",
                                        "sim1"};
static const int s_route [] = {S_CLIENT, S_SIM2, S_LEADER, S_FOLLOWER,
                               S_LEADER, S_SIM1, S_SIM2,   S_CLIENT};
#define S_HOPS ((int) (sizeof s_route / sizeof s_route [0]) - 1)

//  A message: its lap's start time, where it is on the route, padding.
typedef struct {
    uint64_t started_ns;
    uint32_t hop;
    uint32_t slot;
} s_header_t;

typedef struct {
    int ports [S_ROLES];
    zcert_t *certs [S_ROLES];
    bool curve;
    size_t size;
} s_setup_t;

//  A free TCP port on loopback, as the kernel picks one.
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (fd < 0 || bind (fd, (struct sockaddr *) &address, sizeof address)
        || getsockname (fd, (struct sockaddr *) &address, &length)) {
        perror ("bench_hops: free port");
        exit (1);
    }
    close (fd);
    return ntohs (address.sin_port);
}

//  ROLE's ROUTER, bound, and a DEALER to every process it sends to.
static zsock_t *
s_sockets (const s_setup_t *setup, int role, zsock_t *dealers [S_ROLES])
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_rcvhwm (router, 100000);
    if (setup->curve) {
        zcert_apply (setup->certs [role], router);
        zsock_set_curve_server (router, 1);
    }
    if (zsock_bind (router, "tcp://127.0.0.1:%d", setup->ports [role]) < 0) {
        fprintf (stderr, "bench_hops: %s cannot bind port %d\n", s_names [role],
                 setup->ports [role]);
        exit (1);
    }
    for (int hop = 0; hop < S_HOPS; hop++) {
        int next = s_route [hop + 1];
        if (s_route [hop] != role || dealers [next])
            continue;
        dealers [next] = zsock_new (ZMQ_DEALER);
        zsock_set_sndhwm (dealers [next], 100000);
        if (setup->curve) {
            zcert_apply (setup->certs [role], dealers [next]);
            zsock_set_curve_serverkey (dealers [next],
                                       zcert_public_txt (setup->certs [next]));
        }
        zsock_connect (dealers [next], "tcp://127.0.0.1:%d",
                       setup->ports [next]);
    }
    return router;
}

//  A relay: every message it receives goes on to the route's next process.
//  Runs until its parent closes STOP.
static void
s_relay (const s_setup_t *setup, int role, int stop)
{
    zsock_t *dealers [S_ROLES] = {NULL};
    zsock_t *router = s_sockets (setup, role, dealers);
    zmq_pollitem_t items [] = {{zsock_resolve (router), 0, ZMQ_POLLIN, 0},
                               {NULL, stop, ZMQ_POLLIN, 0}};
    void *handle = zsock_resolve (router);
    //  The stop pipe reads end-of-file (or hangs up) when the parent is
    //  done or gone.
    while (zmq_poll (items, 2, -1) >= 0 && !items [1].revents) {
        //  Take what waits, so a busy relay does not poll per message.
        while (true) {
            zmq_msg_t identity, body;
            zmq_msg_init (&identity);
            zmq_msg_init (&body);
            if (zmq_msg_recv (&identity, handle, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close (&identity);
                zmq_msg_close (&body);
                break;
            }
            zmq_msg_recv (&body, handle, 0);
            s_header_t *header = (s_header_t *) zmq_msg_data (&body);
            header->hop++;
            int next = s_route [header->hop + 1];
            zmq_msg_send (&body, zsock_resolve (dealers [next]), ZMQ_DONTWAIT);
            zmq_msg_close (&identity);
            zmq_msg_close (&body);
        }
    }
    for (int at = 0; at < S_ROLES; at++)
        zsock_destroy (&dealers [at]);
    zsock_destroy (&router);
}

static void
s_send_lap (zsock_t *dealer, size_t size, uint32_t slot)
{
    zmq_msg_t body;
    zmq_msg_init_size (&body, size);
    memset (zmq_msg_data (&body), 0, size);
    s_header_t *header = (s_header_t *) zmq_msg_data (&body);
    header->started_ns = sf_time_mono_ns ();
    header->slot = slot;
    zmq_msg_send (&body, zsock_resolve (dealer), 0);
}

int
main (int argc, char *argv [])
{
    if (argc < 3) {
        fprintf (stderr, "usage: bench_hops CONCURRENCY SECONDS [--plain] "
                         "[--size BYTES]\n");
        return 2;
    }
    int concurrency = atoi (argv [1]);
    double seconds = atof (argv [2]);
    s_setup_t setup = {.curve = true, .size = 300};
    for (int at = 3; at < argc; at++) {
        if (streq (argv [at], "--plain"))
            setup.curve = false;
        else if (streq (argv [at], "--size") && at + 1 < argc)
            setup.size = (size_t) atol (argv [++at]);
        else {
            fprintf (stderr, "bench_hops: unknown option %s\n", argv [at]);
            return 2;
        }
    }
    if (concurrency < 1 || seconds <= 0 || setup.size < sizeof (s_header_t)) {
        fprintf (stderr,
                 "bench_hops: CONCURRENCY >= 1, SECONDS > 0, size "
                 ">= %zu\n",
                 sizeof (s_header_t));
        return 2;
    }
    //  Certificates and ports before the fork; no ZeroMQ context yet, so
    //  each child starts its own.
    for (int role = 0; role < S_ROLES; role++) {
        setup.ports [role] = s_free_port ();
        setup.certs [role] = zcert_new ();
    }
    int stop [2];
    if (pipe (stop)) {
        perror ("bench_hops: pipe");
        return 1;
    }
    pid_t children [S_ROLES] = {0};
    for (int role = S_SIM2; role < S_ROLES; role++) {
        children [role] = fork ();
        if (children [role] == 0) {
            close (stop [1]);
            s_relay (&setup, role, stop [0]);
            _exit (0);
        }
    }
    close (stop [0]);
    zsock_t *dealers [S_ROLES] = {NULL};
    zsock_t *router = s_sockets (&setup, S_CLIENT, dealers);
    zsock_t *first = dealers [s_route [1]];

    //  Every relay connected: one lap goes round before the clock starts.
    zsock_set_rcvtimeo (router, 5000);
    s_send_lap (first, setup.size, 0);
    zmsg_t *warm = zmsg_recv (router);
    if (!warm) {
        fprintf (stderr, "bench_hops: the first lap never came back\n");
        return 1;
    }
    zmsg_destroy (&warm);

    size_t capacity = 4000000, count = 0;
    uint64_t *samples = (uint64_t *) malloc (capacity * sizeof *samples);
    double cpu_before =
        sf_time_cpu_s (RUSAGE_SELF) + sf_time_cpu_s (RUSAGE_CHILDREN);
    uint64_t started = sf_time_mono_ns ();
    uint64_t end = started + (uint64_t) (seconds * 1e9);
    for (int slot = 0; slot < concurrency; slot++)
        s_send_lap (first, setup.size, (uint32_t) slot);
    int in_flight = concurrency;
    uint64_t now = started;
    while (in_flight > 0) {
        zmq_msg_t identity, body;
        zmq_msg_init (&identity);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&identity, zsock_resolve (router), 0) < 0
            || zmq_msg_recv (&body, zsock_resolve (router), 0) < 0) {
            fprintf (stderr, "bench_hops: laps lost (%d in flight)\n",
                     in_flight);
            return 1;
        }
        now = sf_time_mono_ns ();
        const s_header_t *header = (const s_header_t *) zmq_msg_data (&body);
        if (count < capacity)
            samples [count++] = now - header->started_ns;
        in_flight--;
        if (now < end) {
            s_send_lap (first, setup.size, header->slot);
            in_flight++;
        }
        zmq_msg_close (&identity);
        zmq_msg_close (&body);
    }
    double elapsed = (double) (now - started) / 1e9;
    close (stop [1]);
    for (int role = S_SIM2; role < S_ROLES; role++)
        waitpid (children [role], NULL, 0);
    //  The children's CPU counts once they are reaped; the whole run's
    //  relays, since they did nothing but this.
    double cpu = sf_time_cpu_s (RUSAGE_SELF) + sf_time_cpu_s (RUSAGE_CHILDREN)
                 - cpu_before;
    bench_stats_sort (samples, count);
    printf ("{\"concurrency\": %d, \"curve\": %s, \"size\": %zu, \"hops\": %d, "
            "\"laps\": %zu, \"laps_per_s\": %.0f, \"p50_us\": %.1f, "
            "\"p99_us\": %.1f, \"cpu_us_per_lap\": %.1f}\n",
            concurrency, setup.curve ? "true" : "false", setup.size, S_HOPS,
            count, (double) count / elapsed,
            (double) bench_stats_rank (samples, count, 0.5) / 1e3,
            (double) bench_stats_rank (samples, count, 0.99) / 1e3,
            count ? cpu / (double) count * 1e6 : 0);
    free (samples);
    for (int at = 0; at < S_ROLES; at++) {
        zsock_destroy (&dealers [at]);
        zcert_destroy (&setup.certs [at]);
    }
    zsock_destroy (&router);
    return 0;
}
