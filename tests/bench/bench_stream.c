/*  bench_stream: the state stream on loopback, and the baselines it is
    judged against, one case per run, one JSON line of results:

      bench_stream raw --size B --rate R --seconds S
          libzmq RADIO -> DISH, unsealed datagrams of B bytes paced at R/s:
          what this transport carries and loses.
      bench_stream sealed --size B --rate U --entities N --seconds S
          two sim_stream instances (the daemon's code: sealing, anti-replay,
          credit, coalescing) on two threads, the sender ticking every
          millisecond and changing N entities of 64-byte state U times a
          second in all (0: saturated, half again as many each tick as
          the receiver applied in the last one): updates applied per
          second, datagrams, loss, the age of applied updates. Every
          entity has its grant, signed by a ring key both sides know, so
          the receiver checks grants as a sim does (grants.md section 4).
      bench_stream enet --seconds S
          ENet, unreliable unsequenced 64-byte packets as fast as the
          client can send them (built when libenet-dev is installed).

    --receive-buffer B (default: a sim's, SIM_STREAM_RECEIVE_BUFFER) is
    asked for every DISH's socket, raw and sealed alike; 0 leaves the
    kernel's default. --credit C (sealed; default SIM_STREAM_CREDIT, a
    sim's) is the window each side grants the other. Each side runs on its
    own thread; CPU is per thread (RUSAGE_THREAD).
    Ages are sampled: one arrival in S_SAMPLE_EVERY, in every case. */

#define _GNU_SOURCE
#include "common/sf_time.h"
#include "peer/sim_udp.h"
#include "peer/sim_store.h"
#include "peer/sim_stream.h"
#include "protocol/grant_msg.h"
#include "tests/bench/bench_stats.h"

#include <sodium.h>

#include <czmq.h>
#include <pthread.h>
#include <sys/resource.h>
#ifdef SIMFABRIC_HAVE_ENET
#include <enet/enet.h>
#endif

#define S_SAMPLES 2000000
#define S_STATE 64
#define S_TICK_NS 1000000  //  the sealed sender's simulation tick

typedef struct {
    const char *mode;
    size_t size;        //  datagram bytes
    double rate;        //  per second (datagrams, or updates); 0: unpaced
    unsigned entities;  //  sealed: entities changed round robin
    double seconds;
    int port;               //  first of two UDP ports
    size_t receive_buffer;  //  bytes asked for each DISH's socket, 0: as is
    uint32_t credit;        //  sealed: the window each side grants
} s_options_t;

//  Latency samples, in nanoseconds: the age of one arrival in
//  S_SAMPLE_EVERY, in every case alike, so that reading the clock (dear on
//  this virtual machine) does not take a share of the receiver's CPU
//  comparable to what is measured.
#define S_SAMPLE_EVERY 8

typedef struct {
    uint64_t *values;
    size_t count;
    uint64_t arrivals;
    bool sorted;  //  values sorted, once the run is over
} s_samples_t;

//  Count an arrival sent at SENT_NS (monotonic); keep its age if its turn.
static void
s_arrival (s_samples_t *samples, uint64_t sent_ns)
{
    if (samples->arrivals++ % S_SAMPLE_EVERY == 0 && samples->count < S_SAMPLES)
        samples->values [samples->count++] = sf_time_mono_ns () - sent_ns;
}

//  The FRACTION quantile of SAMPLES, in microseconds (sorted on first use).
static double
s_percentile (s_samples_t *samples, double fraction)
{
    if (!samples->sorted) {
        bench_stats_sort (samples->values, samples->count);
        samples->sorted = true;
    }
    return (double) bench_stats_rank (samples->values, samples->count, fraction)
           / 1000.0;
}

//  Sleep-free pacing: how many sends are due by NOW for RATE since START.
static uint64_t
s_due (double rate, uint64_t start_ns, uint64_t now_ns)
{
    return (uint64_t) (rate * (double) (now_ns - start_ns) / 1e9);
}

static volatile bool s_stop;

//  --------------------------------------------------------------------------
//  raw: RADIO -> DISH

typedef struct {
    const s_options_t *options;
    void *dish;
    uint64_t received;
    s_samples_t samples;
    double cpu;
} s_raw_receiver_t;

static void *
s_raw_receive (void *arg)
{
    s_raw_receiver_t *self = (s_raw_receiver_t *) arg;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    zmq_pollitem_t item = {self->dish, 0, ZMQ_POLLIN, 0};
    while (!s_stop) {
        if (zmq_poll (&item, 1, 10) <= 0)
            continue;
        while (zmq_msg_recv (&msg, self->dish, ZMQ_DONTWAIT) >= 0) {
            uint64_t sent_ns;
            memcpy (&sent_ns, zmq_msg_data (&msg), sizeof sent_ns);
            s_arrival (&self->samples, sent_ns);
            self->received++;
        }
    }
    zmq_msg_close (&msg);
    self->cpu = sf_time_cpu_s (RUSAGE_THREAD);
    return NULL;
}

static int
s_raw (const s_options_t *options)
{
    zsock_t *dish = zsock_new (ZMQ_DISH);
    zsock_t *radio = zsock_new (ZMQ_RADIO);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "udp://127.0.0.1:%d", options->port);
    if (zsock_bind (dish, "%s", endpoint) < 0 || zsock_join (dish, "sf")
        || zsock_connect (radio, "%s", endpoint))
        return 1;
    zsock_set_sndhwm (radio, 100000);
    //  The same socket buffer the sealed case's DISH gets.
    sf_fault_t fault;
    if (options->receive_buffer
        && !sim_udp_size (options->port, options->receive_buffer, 1000,
                          &fault)) {
        fprintf (stderr, "bench_stream: %s\n", fault.message);
        return 1;
    }
    zclock_sleep (100);
    s_raw_receiver_t receiver = {
        options, zsock_resolve (dish), 0, {NULL, 0, 0, false}, 0};
    receiver.samples.values =
        (uint64_t *) malloc (S_SAMPLES * sizeof (uint64_t));
    pthread_t thread;
    pthread_create (&thread, NULL, s_raw_receive, &receiver);
    uint8_t *payload = (uint8_t *) zmalloc (options->size);
    uint64_t sent = 0, failed = 0, start = sf_time_mono_ns ();
    uint64_t end = start + (uint64_t) (options->seconds * 1e9);
    uint64_t now;
    while ((now = sf_time_mono_ns ()) < end) {
        uint64_t due =
            options->rate > 0 ? s_due (options->rate, start, now) : sent + 64;
        if (sent >= due) {
            struct timespec pause = {0, 20000};  //  paced: nothing due yet
            nanosleep (&pause, NULL);
            continue;
        }
        while (sent < due) {
            memcpy (payload, &now, sizeof now);
            zmq_msg_t msg;
            zmq_msg_init_size (&msg, options->size);
            memcpy (zmq_msg_data (&msg), payload, options->size);
            zmq_msg_set_group (&msg, "sf");
            if (zmq_msg_send (&msg, zsock_resolve (radio), ZMQ_DONTWAIT) < 0) {
                zmq_msg_close (&msg);
                failed++;
            }
            sent++;
        }
    }
    double cpu = sf_time_cpu_s (RUSAGE_THREAD);
    zclock_sleep (300);  //  let the last ones arrive
    s_stop = true;
    pthread_join (thread, NULL);
    printf ("{\"mode\": \"raw\", \"size\": %zu, \"rate\": %.0f, \"seconds\": "
            "%.2f, \"sent\": %llu, \"send_failed\": %llu, \"received\": %llu, "
            "\"loss\": %.6f, \"datagrams_per_s\": %.0f, \"p50_us\": %.1f, "
            "\"p99_us\": %.1f, \"cpu_sender_s\": %.3f, \"cpu_receiver_s\": "
            "%.3f}\n",
            options->size, options->rate, options->seconds,
            (unsigned long long) sent, (unsigned long long) failed,
            (unsigned long long) receiver.received,
            sent ? 1.0 - (double) receiver.received / (double) sent : 0,
            (double) receiver.received / options->seconds,
            s_percentile (&receiver.samples, 0.5),
            s_percentile (&receiver.samples, 0.99), cpu, receiver.cpu);
    free (payload);
    free (receiver.samples.values);
    zsock_destroy (&radio);
    zsock_destroy (&dish);
    return 0;
}

//  --------------------------------------------------------------------------
//  sealed: two sim_streams

typedef struct {
    sim_stream_t *stream;
    sim_store_t *store;
    s_samples_t samples;
    uint64_t applied;        //  while measuring
    uint64_t applied_total;  //  since the start
    bool measuring;
    double cpu;
} s_side_t;

static void
s_applied (void *arg, sim_entity_t *entity)
{
    s_side_t *self = (s_side_t *) arg;
    __atomic_store_n (&self->applied_total, self->applied_total + 1,
                      __ATOMIC_RELAXED);
    if (!self->measuring || entity->state_size < 8)
        return;
    uint64_t sent_ns;
    memcpy (&sent_ns, entity->state, sizeof sent_ns);
    s_arrival (&self->samples, sent_ns);
    self->applied++;
}

static void *
s_sealed_receive (void *arg)
{
    s_side_t *self = (s_side_t *) arg;
    zmq_pollitem_t item = {NULL, sim_stream_fd (self->stream), ZMQ_POLLIN, 0};
    while (!s_stop) {
        zmq_poll (&item, 1, 5);
        uint64_t now = sf_time_mono_us ();
        sim_stream_receive (self->stream, now);
        sim_stream_flush (self->stream, now);
    }
    self->cpu = sf_time_cpu_s (RUSAGE_THREAD);
    return NULL;
}

static uint64_t
s_counter (sim_stream_t *stream, const char *name)
{
    json_t *counters = sim_stream_counters (stream);
    uint64_t value =
        (uint64_t) json_integer_value (json_object_get (counters, name));
    json_decref (counters);
    return value;
}

static int
s_sealed (const s_options_t *options)
{
    zcert_t *cert_a = zcert_new (), *cert_b = zcert_new ();
    s_side_t a = {0}, b = {0};
    a.store = sim_store_new ();
    b.store = sim_store_new ();
    char endpoint_a [64], endpoint_b [64];
    snprintf (endpoint_a, sizeof endpoint_a, "udp://127.0.0.1:%d",
              options->port);
    snprintf (endpoint_b, sizeof endpoint_b, "udp://127.0.0.1:%d",
              options->port + 1);
    sim_stream_config_t config_a = {
        "a", options->size,          options->credit, 1024, "/",
        0,   options->receive_buffer};
    sim_stream_config_t config_b = {
        "b", options->size,          options->credit, 1024, "/",
        0,   options->receive_buffer};
    sf_fault_t fault;
    a.stream = sim_stream_new (endpoint_a, cert_a, a.store, &config_a, &fault);
    b.stream = sim_stream_new (endpoint_b, cert_b, b.store, &config_b, &fault);
    if (!a.stream || !b.stream) {
        fprintf (stderr, "bench_stream: %s\n", fault.message);
        return 1;
    }
    uint64_t registered_a = 1000, registered_b = 2000;
    sim_stream_peers_begin (a.stream);
    sim_stream_peer_set (a.stream, "b", zcert_public_txt (cert_b), endpoint_b,
                         registered_b, &fault);
    sim_stream_peers_end (a.stream);
    sim_stream_peers_begin (b.stream);
    sim_stream_peer_set (b.stream, "a", zcert_public_txt (cert_a), endpoint_a,
                         registered_a, &fault);
    sim_stream_peers_end (b.stream);
    //  A ring key both sides know, and a grant for every entity of a's
    sim_grant_key_t ring_key = {1, {0}, 0};
    uint8_t ring_secret [64];
    crypto_sign_keypair (ring_key.public_key, ring_secret);
    sim_stream_set_ring_keys (a.stream, &ring_key, 1);
    sim_stream_set_ring_keys (b.stream, &ring_key, 1);
    sim_stream_start (a.stream, registered_a << 16 | 1);
    sim_stream_start (b.stream, registered_b << 16 | 1);
    sim_stream_set_listener (b.stream, s_applied, &b);
    b.samples.values = (uint64_t *) malloc (S_SAMPLES * sizeof (uint64_t));

    sim_entity_t **entities =
        (sim_entity_t **) zmalloc (options->entities * sizeof (sim_entity_t *));
    for (unsigned index = 0; index < options->entities; index++) {
        char path [64];
        snprintf (path, sizeof path, "/bench/room%u/entity%05u", index % 16,
                  index);
        entities [index] =
            sim_store_create (a.store, path, strlen (path), 1, 0, true);
        grant_msg_t grant = {.epoch = 1, .sim = "a"};
        snprintf (grant.path, sizeof grant.path, "%s", path);
        memcpy (grant.key, zcert_public_key (cert_a), 32);
        uint8_t bytes [GRANT_MSG_MAX_SIZE];
        if (grant_msg_sign (&grant, 1, ring_secret)
            || sim_store_set_grant (
                a.store, entities [index], bytes,
                grant_msg_encode (&grant, bytes, sizeof bytes))) {
            fprintf (stderr, "bench_stream: cannot make a grant\n");
            return 1;
        }
    }
    zclock_sleep (100);
    pthread_t thread;
    pthread_create (&thread, NULL, s_sealed_receive, &b);
    zmq_pollitem_t item = {NULL, sim_stream_fd (a.stream), ZMQ_POLLIN, 0};
    uint8_t state [S_STATE];
    memset (state, 0x5a, sizeof state);
    uint64_t changes = 0, next = 0, applied_then = 0;
    //  Warm up a quarter of a second, then measure.
    uint64_t start = sf_time_mono_ns ();
    uint64_t measure = start + 250000000u;
    uint64_t end = measure + (uint64_t) (options->seconds * 1e9);
    uint64_t sent_before = 0, lost_before = 0, measured_changes = 0;
    //  The sender ticks as a game server does: every millisecond it makes
    //  the changes due (stamped with the tick's time) and flushes; between
    //  ticks it serves ACKs, which open credit for more. Saturated, it
    //  changes half again as many entities as were applied in the last
    //  tick (at least 1,000, each entity at most once a tick): always more
    //  than the stream can carry, without spending the sender's thread on
    //  changes that would only be coalesced.
    uint64_t next_tick = start, now;
    while ((now = sf_time_mono_ns ()) < end) {
        if (!b.measuring && now >= measure) {
            sent_before = s_counter (a.stream, "datagrams_sent");
            lost_before = s_counter (a.stream, "datagrams_lost");
            measured_changes = changes;
            __atomic_store_n (&b.measuring, true, __ATOMIC_RELEASE);
        }
        if (now >= next_tick) {
            uint64_t due;
            if (options->rate > 0)
                due = s_due (options->rate, start, now);
            else {
                uint64_t applied =
                    __atomic_load_n (&b.applied_total, __ATOMIC_RELAXED);
                uint64_t offer = (applied - applied_then) * 3 / 2;
                applied_then = applied;
                offer = offer < 1000 ? 1000 : offer;
                due = changes
                      + (offer < options->entities ? offer : options->entities);
            }
            while (changes < due) {
                sim_entity_t *entity = entities [next];
                next = (next + 1) % options->entities;
                memcpy (state, &now, sizeof now);
                sim_store_set (a.store, entity, entity->epoch, entity->seq + 1,
                               state, sizeof state, 0);
                sim_stream_changed (a.stream, entity);
                changes++;
            }
            next_tick += S_TICK_NS;
            if (next_tick < now)
                next_tick = now + S_TICK_NS;  //  fell behind: no burst
            sim_stream_flush (a.stream, now / 1000);
        }
        if (zmq_poll (&item, 1, 1) > 0) {
            uint64_t now_us = sf_time_mono_us ();
            sim_stream_receive (a.stream, now_us);
            sim_stream_flush (a.stream, now_us);
        }
    }
    uint64_t sent = s_counter (a.stream, "datagrams_sent") - sent_before;
    uint64_t lost = s_counter (a.stream, "datagrams_lost") - lost_before;
    double cpu = sf_time_cpu_s (RUSAGE_THREAD);
    s_stop = true;
    pthread_join (thread, NULL);
    uint64_t applied = __atomic_load_n (&b.applied, __ATOMIC_ACQUIRE);
    printf (
        "{\"mode\": \"sealed\", \"size\": %zu, \"rate\": %.0f, \"entities\": "
        "%u, \"seconds\": %.2f, \"changes\": %llu, \"updates_applied\": %llu, "
        "\"updates_per_s\": %.0f, \"datagrams_sent\": %llu, "
        "\"datagrams_lost\": "
        "%llu, \"loss\": %.6f, \"datagrams_per_s\": %.0f, \"p50_us\": %.1f, "
        "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, "
        "\"cpu_sender_s\": %.3f, \"cpu_receiver_s\": %.3f, "
        "\"grants_proven\": %llu, \"update_unproven\": %llu}\n",
        options->size, options->rate, options->entities, options->seconds,
        (unsigned long long) (changes - measured_changes),
        (unsigned long long) applied, (double) applied / options->seconds,
        (unsigned long long) sent, (unsigned long long) lost,
        sent ? (double) lost / (double) sent : 0,
        (double) sent / options->seconds, s_percentile (&b.samples, 0.5),
        s_percentile (&b.samples, 0.99), s_percentile (&b.samples, 0.999),
        s_percentile (&b.samples, 1), cpu, b.cpu,
        (unsigned long long) s_counter (b.stream, "grants_proven"),
        (unsigned long long) s_counter (b.stream, "update_unproven"));
    free (entities);
    free (b.samples.values);
    sim_stream_destroy (&a.stream);
    sim_stream_destroy (&b.stream);
    sim_store_destroy (&a.store);
    sim_store_destroy (&b.store);
    zcert_destroy (&cert_a);
    zcert_destroy (&cert_b);
    return 0;
}

//  --------------------------------------------------------------------------
//  enet: unreliable 64-byte packets

#ifdef SIMFABRIC_HAVE_ENET
typedef struct {
    ENetHost *host;
    uint64_t received;
    s_samples_t samples;
    double cpu;
} s_enet_server_t;

static void *
s_enet_serve (void *arg)
{
    s_enet_server_t *self = (s_enet_server_t *) arg;
    ENetEvent event;
    while (!s_stop) {
        while (enet_host_service (self->host, &event, 1) > 0)
            if (event.type == ENET_EVENT_TYPE_RECEIVE) {
                uint64_t sent_ns;
                memcpy (&sent_ns, event.packet->data, sizeof sent_ns);
                s_arrival (&self->samples, sent_ns);
                self->received++;
                enet_packet_destroy (event.packet);
            }
    }
    self->cpu = sf_time_cpu_s (RUSAGE_THREAD);
    return NULL;
}

static int
s_enet (const s_options_t *options)
{
    if (enet_initialize ())
        return 1;
    ENetAddress address;
    enet_address_set_host (&address, "127.0.0.1");
    address.port = (enet_uint16) options->port;
    s_enet_server_t server = {
        enet_host_create (&address, 1, 1, 0, 0), 0, {NULL, 0, 0, false}, 0};
    ENetHost *client = enet_host_create (NULL, 1, 1, 0, 0);
    ENetPeer *peer = enet_host_connect (client, &address, 1, 0);
    ENetEvent event;
    bool connected = false;
    for (int tries = 0; tries < 200 && !connected; tries++) {
        enet_host_service (server.host, &event, 5);
        if (enet_host_service (client, &event, 5) > 0
            && event.type == ENET_EVENT_TYPE_CONNECT)
            connected = true;
    }
    if (!connected)
        return 1;
    server.samples.values = (uint64_t *) malloc (S_SAMPLES * sizeof (uint64_t));
    pthread_t thread;
    pthread_create (&thread, NULL, s_enet_serve, &server);
    uint8_t payload [S_STATE] = {0};
    uint64_t sent = 0, start = sf_time_mono_ns ();
    uint64_t end = start + (uint64_t) (options->seconds * 1e9), now;
    while ((now = sf_time_mono_ns ()) < end) {
        //  A burst, then one flush: ENet packs them into datagrams.
        for (int burst = 0; burst < 64; burst++) {
            memcpy (payload, &now, sizeof now);
            ENetPacket *packet = enet_packet_create (
                payload, sizeof payload, ENET_PACKET_FLAG_UNSEQUENCED);
            enet_peer_send (peer, 0, packet);
            sent++;
        }
        enet_host_service (client, &event, 0);
    }
    double cpu = sf_time_cpu_s (RUSAGE_THREAD);
    zclock_sleep (300);
    s_stop = true;
    pthread_join (thread, NULL);
    printf ("{\"mode\": \"enet\", \"size\": %d, \"seconds\": %.2f, \"sent\": "
            "%llu, \"received\": %llu, \"loss\": %.6f, \"packets_per_s\": "
            "%.0f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"cpu_sender_s\": %.3f, "
            "\"cpu_receiver_s\": %.3f}\n",
            S_STATE, options->seconds, (unsigned long long) sent,
            (unsigned long long) server.received,
            sent ? 1.0 - (double) server.received / (double) sent : 0,
            (double) server.received / options->seconds,
            s_percentile (&server.samples, 0.5),
            s_percentile (&server.samples, 0.99), cpu, server.cpu);
    free (server.samples.values);
    enet_host_destroy (client);
    enet_host_destroy (server.host);
    enet_deinitialize ();
    return 0;
}
#endif

int
main (int argc, char *argv [])
{
    s_options_t options = {.mode = argc > 1 ? argv [1] : "",
                           .size = 8189,
                           .entities = 1000,
                           .seconds = 2,
                           .port = 24000,
                           .receive_buffer = SIM_STREAM_RECEIVE_BUFFER,
                           .credit = SIM_STREAM_CREDIT};
    for (int at = 2; at + 1 < argc; at += 2) {
        if (streq (argv [at], "--size"))
            options.size = (size_t) atol (argv [at + 1]);
        else if (streq (argv [at], "--rate"))
            options.rate = atof (argv [at + 1]);
        else if (streq (argv [at], "--entities"))
            options.entities = (unsigned) atoi (argv [at + 1]);
        else if (streq (argv [at], "--seconds"))
            options.seconds = atof (argv [at + 1]);
        else if (streq (argv [at], "--port"))
            options.port = atoi (argv [at + 1]);
        else if (streq (argv [at], "--receive-buffer"))
            options.receive_buffer = (size_t) atol (argv [at + 1]);
        else if (streq (argv [at], "--credit"))
            options.credit = (uint32_t) atol (argv [at + 1]);
        else {
            fprintf (stderr, "bench_stream: unknown option %s\n", argv [at]);
            return 2;
        }
    }
    //  Two I/O threads: each side of a case gets its own, as two daemons
    //  would (libzmq's UDP engines run on them).
    zsys_set_io_threads (2);
    zsys_init ();
    zsys_set_logstream (stderr);
    if (streq (options.mode, "raw"))
        return s_raw (&options);
    if (streq (options.mode, "sealed"))
        return s_sealed (&options);
#ifdef SIMFABRIC_HAVE_ENET
    if (streq (options.mode, "enet"))
        return s_enet (&options);
#endif
    fprintf (stderr, "usage: bench_stream raw|sealed|enet [--size B] [--rate "
                     "R] [--entities N] [--seconds S] [--port P] "
                     "[--receive-buffer B] [--credit C]\n");
    return 2;
}
