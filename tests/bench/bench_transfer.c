/*  bench_transfer: authority transfers between two simulation servers
    (Case 2: the requester to the ring's leader, the leader's event to the
    former authority, its final state to the requester), beside the floor
    the issue compares them with, measured in the same run: one durable
    ring commit (a write from a client to the leader, answered once it is
    committed) plus one loopback round trip (a status call to a sim).

    Usage: bench_transfer SIM1_API SIM1_CERT SIM2_API SIM2_CERT
                          LEADER_API LEADER_CERT ENTITIES CONCURRENCY
                          SECONDS [@HOME FED_API FED_CERT CLIENT_SECRET]

    With @HOME, sim2 is a sim of another instance (Case 1, federation.md
    section 5): it claims PATH@HOME, and the floor adds one round trip
    between the instances, a fed.status to FED_API (a member of the home,
    its public certificate FED_CERT) from the requesting instance's
    member (its secret certificate CLIENT_SECRET), over the same link.

    ENTITIES entities are created on sim1 under the rule allow; each
    transfer is an entity.claim sent to the sim that does not hold the
    entity, so entities move back and forth. First one transfer at a time
    (latency), then CONCURRENCY at a time on distinct entities for SECONDS
    (throughput; CONCURRENCY 0 skips it, so that the traced transfers'
    records are still in the daemons' bounded trace rings when fabricctl
    trace reads them). Entity paths carry the process id, so runs against
    the same fabric do not collide. Prints one JSON object: the floor's parts, latency and
    throughput figures, and the transfer ids of some latency samples for
    fabricctl trace. With SIMFABRIC_BENCH_PIDS set ("NAME:PID,..."), the
    throughput figures add each process's CPU time per transfer over the
    throughput phase alone ("cpu_us"), without the setup's creations. */

#include "common/sf_cert.h"
#include "common/sf_curve.h"
#include "common/sf_time.h"
#include "tests/bench/bench_stats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Transfers measured one at a time, and how many of them are traced.
#define S_SEQUENTIAL 400
#define S_TRACED 20

typedef struct {
    zsock_t *socket;
    zcert_t *cert;
} s_client_t;

//  Processes whose CPU time the throughput phase reports.
#define S_PIDS_MAX 16

typedef struct {
    char name [64];
    int pid;
    double cpu_s;  //  user + system, at the phase's start
} s_pid_t;

//  User + system seconds process PID has used (0 if unreadable).
static double
s_cpu_s (int pid)
{
    char path [64], text [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen (path, "r");
    size_t size = file ? fread (text, 1, sizeof text - 1, file) : 0;
    if (file)
        fclose (file);
    text [size] = 0;
    //  The fields after the command's closing parenthesis: state is the
    //  first, utime the 12th, stime the 13th.
    char *rest = strrchr (text, ')');
    unsigned long long utime = 0, stime = 0;
    if (!rest
        || sscanf (rest + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &utime, &stime)
               != 2)
        return 0;
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

//  The processes named by SIMFABRIC_BENCH_PIDS into PIDS; their count.
static size_t
s_pids_read (s_pid_t *pids)
{
    const char *list = getenv ("SIMFABRIC_BENCH_PIDS");
    size_t count = 0;
    while (list && *list && count < S_PIDS_MAX) {
        s_pid_t *entry = &pids [count];
        int used = 0;
        if (sscanf (list, "%63[^:]:%d%n", entry->name, &entry->pid, &used) != 2)
            break;
        count++;
        list += used;
        list += *list == ',';
    }
    return count;
}

//  The home's suffix of sim2's claims ("@west"), or "" within one ring.
static const char *s_suffix = "";

//  Median, p99 and maximum of COUNT samples (sorted in place), in microseconds.
static json_t *
s_summary (uint64_t *samples, size_t count)
{
    if (!count)
        return json_pack ("{s:i}", "n", 0);
    bench_stats_sort (samples, count);
    return json_pack (
        "{s:I,s:f,s:f,s:f}", "n", (json_int_t) count, "p50_us",
        (double) bench_stats_rank (samples, count, 0.5) / 1e3, "p99_us",
        (double) bench_stats_rank (samples, count, 0.99) / 1e3, "max_us",
        (double) bench_stats_rank (samples, count, 1) / 1e3);
}

//  Connect CLIENT to ENDPOINT, pinning CERT_PATH's key, as OWN (a secret
//  certificate's path) or as a fresh key pair when OWN is NULL.
static int
s_connect_as (s_client_t *client, const char *endpoint, const char *cert_path,
              const char *own)
{
    char key [SF_CERT_KEY_TEXT + 1];
    sf_fault_t fault;
    if (sf_cert_load_public (cert_path, key, &fault)) {
        fprintf (stderr, "bench_transfer: %s\n", fault.message);
        return -1;
    }
    client->cert = own ? zcert_load (own) : zcert_new ();
    if (!client->cert) {
        fprintf (stderr, "bench_transfer: cannot load %s\n", own);
        return -1;
    }
    client->socket = zsock_new (ZMQ_DEALER);
    zsock_set_rcvhwm (client->socket, 100000);
    zsock_set_sndhwm (client->socket, 100000);
    sf_curve_client (client->socket, client->cert, key);
    return zsock_connect (client->socket, "%s", endpoint);
}

static int
s_connect (s_client_t *client, const char *endpoint, const char *cert_path)
{
    return s_connect_as (client, endpoint, cert_path, NULL);
}

static void
s_disconnect (s_client_t *client)
{
    zsock_destroy (&client->socket);
    zcert_destroy (&client->cert);
}

//  The next reply on CLIENT within 10 s, parsed; NULL on timeout.
static json_t *
s_reply (s_client_t *client)
{
    zsock_set_rcvtimeo (client->socket, 10000);
    char *text = zstr_recv (client->socket);
    json_t *reply = text ? json_loads (text, 0, NULL) : NULL;
    if (text && !json_is_true (json_object_get (reply, "ok")))
        fprintf (stderr, "bench_transfer: error reply: %s\n", text);
    free (text);
    return reply;
}

//  One request and its reply; returns the round trip in ns, 0 on error.
static uint64_t
s_call (s_client_t *client, const char *request)
{
    uint64_t started = sf_time_mono_ns ();
    zstr_send (client->socket, request);
    json_t *reply = s_reply (client);
    uint64_t took = sf_time_mono_ns () - started;
    bool ok = json_is_true (json_object_get (reply, "ok"));
    json_decref (reply);
    return ok ? took : 0;
}

//  Claim ENTITY from CLIENT; sim2 (FOREIGN) names it PATH@HOME.
static void
s_claim (s_client_t *client, int entity, bool foreign)
{
    zstr_sendf (client->socket,
                "{\"op\":\"entity.claim\",\"id\":%d,\"path\":"
                "\"/bench/t/%d/%d%s\"}",
                entity, (int) getpid (), entity, foreign ? s_suffix : "");
}

int
main (int argc, char *argv [])
{
    if (argc != 10 && argc != 14) {
        fprintf (stderr,
                 "usage: bench_transfer SIM1_API SIM1_CERT SIM2_API SIM2_CERT "
                 "LEADER_API LEADER_CERT ENTITIES CONCURRENCY SECONDS "
                 "[@HOME FED_API FED_CERT CLIENT_SECRET]\n");
        return 2;
    }
    s_client_t fed = {NULL, NULL};
    if (argc == 14) {
        s_suffix = argv [10];
        if (s_connect_as (&fed, argv [11], argv [12], argv [13]))
            return 2;
    }
    int entities = atoi (argv [7]);
    int concurrency = atoi (argv [8]);
    double seconds = atof (argv [9]);
    if (entities < 1 || concurrency < 0 || concurrency >= entities
        || seconds <= 0)
        return 2;
    s_client_t sims [2], leader;
    if (s_connect (&sims [0], argv [1], argv [2])
        || s_connect (&sims [1], argv [3], argv [4])
        || s_connect (&leader, argv [5], argv [6]))
        return 2;
    int *holder = (int *) calloc ((size_t) entities, sizeof (int));
    int errors = 0;

    //  The entities, on sim1, many creations in flight.
    for (int sent = 0, done = 0; done < entities;) {
        while (sent < entities && sent - done < 64) {
            zstr_sendf (sims [0].socket,
                        "{\"op\":\"entity.create\",\"id\":%d,\"path\":"
                        "\"/bench/t/%d/%d\",\"rule\":\"allow\","
                        "\"state\":\"%.64d\"}",
                        sent, (int) getpid (), sent, 0);
            sent++;
        }
        json_t *reply = s_reply (&sims [0]);
        if (!reply) {
            fprintf (stderr, "bench_transfer: entity.create timed out\n");
            return 1;
        }
        errors += !json_is_true (json_object_get (reply, "ok"));
        json_decref (reply);
        done++;
    }

    //  The floor: a durable commit seen by a client, and a round trip.
    uint64_t commits [200], trips [200], fed_trips [200];
    size_t n_commits = 0, n_trips = 0, n_fed_trips = 0;
    for (int at = 0; at < 200; at++) {
        char request [160];
        snprintf (request, sizeof request,
                  "{\"op\":\"entity.create\",\"id\":1,\"path\":"
                  "\"/bench/floor/%d/%d\"}",
                  (int) getpid (), at);
        uint64_t took = s_call (&leader, request);
        if (took)
            commits [n_commits++] = took;
        took = s_call (&sims [1], "{\"op\":\"status\",\"id\":1}");
        if (took)
            trips [n_trips++] = took;
        took =
            fed.socket ? s_call (&fed, "{\"op\":\"fed.status\",\"id\":1}") : 0;
        if (took)
            fed_trips [n_fed_trips++] = took;
    }

    //  Latency: one transfer at a time.
    size_t capacity = (size_t) 1 << 21;
    uint64_t *samples = (uint64_t *) malloc (capacity * sizeof (uint64_t));
    uint64_t inner [S_SEQUENTIAL];
    size_t n_samples = 0, n_inner = 0;
    json_t *traced = json_array ();
    int handoffs = 0;
    for (int at = 0; at < S_SEQUENTIAL; at++) {
        int entity = at % entities;
        s_client_t *to = &sims [1 - holder [entity]];
        uint64_t started = sf_time_mono_ns ();
        s_claim (to, entity, to == &sims [1]);
        json_t *reply = s_reply (to);
        uint64_t took = sf_time_mono_ns () - started;
        if (json_is_true (json_object_get (reply, "ok"))) {
            holder [entity] = 1 - holder [entity];
            samples [n_samples++] = took;
            inner [n_inner++] = (uint64_t) json_integer_value (
                                    json_object_get (reply, "elapsed_us"))
                                * 1000;
            const char *from =
                json_string_value (json_object_get (reply, "from"));
            handoffs += from && strcmp (from, "handoff") == 0;
            if (at % (S_SEQUENTIAL / S_TRACED) == 0)
                json_array_append (traced, json_object_get (reply, "transfer"));
        }
        else
            errors++;
        json_decref (reply);
    }
    json_t *latency = s_summary (samples, n_samples);
    json_object_set_new (latency, "in_sim", s_summary (inner, n_inner));
    json_object_set_new (latency, "from_handoff", json_integer (handoffs));

    //  Throughput: CONCURRENCY transfers in flight, on distinct entities.
    uint64_t *sent_at =
        (uint64_t *) calloc ((size_t) entities, sizeof (uint64_t));
    bool *busy = (bool *) calloc ((size_t) entities, sizeof (bool));
    size_t n_throughput = 0;
    int from_checkpoint = 0;  //  the handoff did not come in time
    zpoller_t *poller = zpoller_new (sims [0].socket, sims [1].socket, NULL);
    s_pid_t pids [S_PIDS_MAX];
    size_t n_pids = s_pids_read (pids);
    for (size_t at = 0; at < n_pids; at++)
        pids [at].cpu_s = s_cpu_s (pids [at].pid);
    uint64_t started = sf_time_mono_ns ();
    uint64_t end = started + (uint64_t) (seconds * 1e9);
    int next = 0, in_flight = 0;
    for (; in_flight < concurrency; in_flight++, next = (next + 1) % entities) {
        sent_at [next] = sf_time_mono_ns ();
        busy [next] = true;
        s_claim (&sims [1 - holder [next]], next, holder [next] == 0);
    }
    while (in_flight > 0) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, 10000);
        if (!which)
            break;
        s_client_t *client = which == sims [0].socket ? &sims [0] : &sims [1];
        char *text = zstr_recv (client->socket);
        json_t *reply = text ? json_loads (text, 0, NULL) : NULL;
        free (text);
        uint64_t now = sf_time_mono_ns ();
        int entity = (int) json_integer_value (json_object_get (reply, "id"));
        in_flight--;
        if (entity >= 0 && entity < entities)
            busy [entity] = false;
        if (json_is_true (json_object_get (reply, "ok")) && entity >= 0
            && entity < entities) {
            holder [entity] = 1 - holder [entity];
            const char *from =
                json_string_value (json_object_get (reply, "from"));
            from_checkpoint += from && strcmp (from, "checkpoint") == 0;
            if (n_throughput < capacity)
                samples [n_throughput++] = now - sent_at [entity];
        }
        else
            errors++;
        json_decref (reply);
        if (now < end) {
            //  The next entity not in flight (there are CONCURRENCY <=
            //  ENTITIES in flight, so one is free).
            while (busy [next])
                next = (next + 1) % entities;
            sent_at [next] = sf_time_mono_ns ();
            busy [next] = true;
            s_claim (&sims [1 - holder [next]], next, holder [next] == 0);
            next = (next + 1) % entities;
            in_flight++;
        }
    }
    double elapsed = (double) (sf_time_mono_ns () - started) / 1e9;
    json_t *cpu = json_object ();
    for (size_t at = 0; at < n_pids; at++)
        json_object_set_new (
            cpu, pids [at].name,
            json_real ((s_cpu_s (pids [at].pid) - pids [at].cpu_s) * 1e6
                       / (double) (n_throughput ? n_throughput : 1)));
    json_t *throughput = s_summary (samples, n_throughput);
    json_object_set_new (throughput, "cpu_us", cpu);
    json_object_set_new (throughput, "per_s",
                         json_real ((double) n_throughput / elapsed));
    json_object_set_new (throughput, "concurrency", json_integer (concurrency));
    json_object_set_new (throughput, "from_checkpoint",
                         json_integer (from_checkpoint));

    json_t *commit = s_summary (commits, n_commits);
    json_t *trip = s_summary (trips, n_trips);
    json_t *fed_trip = s_summary (fed_trips, n_fed_trips);
    double floor_us =
        json_real_value (json_object_get (commit, "p50_us"))
        + json_real_value (json_object_get (trip, "p50_us"))
        + (n_fed_trips ? json_real_value (json_object_get (fed_trip, "p50_us"))
                       : 0);
    json_t *result =
        json_pack ("{s:{s:o,s:o,s:o,s:f},s:o,s:o,s:o,s:i}", "floor", "commit",
                   commit, "round_trip", trip, "fed_round_trip", fed_trip,
                   "p50_us", floor_us, "latency", latency, "throughput",
                   throughput, "traced", traced, "errors", errors);
    char *text = json_dumps (result, JSON_COMPACT);
    printf ("%s\n", text);
    free (text);
    json_decref (result);
    zpoller_destroy (&poller);
    s_disconnect (&sims [0]);
    s_disconnect (&sims [1]);
    s_disconnect (&leader);
    if (fed.socket)
        s_disconnect (&fed);
    free (samples);
    free (sent_at);
    free (busy);
    free (holder);
    return errors ? 1 : 0;
}
