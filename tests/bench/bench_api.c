/*  bench_api: cost of the JSON API envelope, against baselines measured in
    the same run.

    1. codec: api_msg_serve on a "status" request (decode, dispatch, build
       and encode the reply), against jansson alone parsing the request and
       dumping an equal reply (the floor any JSON API pays).
    2. round trip: one request at a time over CURVE on loopback to an
       api_router serving "status", against a bare CURVE ROUTER that echoes
       the same bytes back (the floor ZeroMQ and CURVE pay).

    Prints medians and p99s and the ratios. Usage: bench_api [ROUNDS] */

#include "common/sf_curve.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"
#include "protocol/api_msg.h"
#include "protocol/api_router.h"
#include "tests/bench/bench_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_request = "{\"op\":\"status\",\"id\":12345}";

static int
s_op_status (void *context, const api_msg_t *request, const char *principal,
             json_t *reply, sf_fault_t *fault)
{
    (void) context, (void) request, (void) principal, (void) fault;
    json_object_set_new (reply, "node", json_string ("hs1"));
    json_object_set_new (reply, "uptime_ms", json_integer (1234));
    return 0;
}

static const api_msg_op_t s_ops [] = {
    {"status", s_op_status},
    {NULL, NULL},
};

typedef struct {
    double median;  //  ns
    double p99;     //  ns
} s_stats_t;

static s_stats_t
s_stats (uint64_t *samples, size_t count)
{
    bench_stats_sort (samples, count);
    s_stats_t stats = {(double) bench_stats_rank (samples, count, 0.5),
                       (double) bench_stats_rank (samples, count, 0.99)};
    return stats;
}

//  Codec: per-request ns, averaged over batches of BATCH.
#define BATCH 200

static uint64_t
s_codec_ours (void)
{
    uint64_t started = sf_time_mono_ns ();
    for (int index = 0; index < BATCH; index++) {
        char *reply = api_msg_serve (s_ops, NULL, s_request, strlen (s_request),
                                     "KEY", NULL);
        free (reply);
    }
    return (sf_time_mono_ns () - started) / BATCH;
}

static uint64_t
s_codec_floor (void)
{
    uint64_t started = sf_time_mono_ns ();
    for (int index = 0; index < BATCH; index++) {
        json_t *request = json_loadb (s_request, strlen (s_request), 0, NULL);
        json_t *reply = json_pack ("{s:O,s:b,s:s,s:i}", "id",
                                   json_object_get (request, "id"), "ok", 1,
                                   "node", "hs1", "uptime_ms", 1234);
        char *text = json_dumps (reply, JSON_COMPACT | JSON_PRESERVE_ORDER);
        free (text);
        json_decref (reply);
        json_decref (request);
    }
    return (sf_time_mono_ns () - started) / BATCH;
}

//  Round trip servers, each an actor serving until $TERM.
static void
s_serve_api (zsock_t *pipe, void *args)
{
    api_router_t *router = api_router_new (
        "tcp://127.0.0.1:*", (zcert_t *) args, API_ROUTER_DOMAIN, NULL);
    zsock_signal (pipe, 0);
    zstr_send (pipe, api_router_endpoint (router));
    zpoller_t *poller = zpoller_new (pipe, api_router_socket (router), NULL);
    while (zpoller_wait (poller, -1) == api_router_socket (router))
        api_router_handle (router, s_ops, NULL, "bench");
    zpoller_destroy (&poller);
    api_router_destroy (&router);
}

static void
s_serve_echo (zsock_t *pipe, void *args)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    sf_curve_server (router, (zcert_t *) args, API_ROUTER_DOMAIN);
    zsock_bind (router, "tcp://127.0.0.1:*");
    zsock_signal (pipe, 0);
    char *endpoint = zsock_last_endpoint (router);
    zstr_send (pipe, endpoint);
    free (endpoint);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (zpoller_wait (poller, -1) == router) {
        zmsg_t *msg = zmsg_recv (router);
        zmsg_send (&msg, router);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

//  A CURVE client of SERVER (which sends its endpoint first).
static zsock_t *
s_client (zactor_t *server, zcert_t *server_cert, zcert_t *client_cert)
{
    char *endpoint = zstr_recv (server);
    zsock_t *client = zsock_new (ZMQ_DEALER);
    sf_curve_client (client, client_cert, zcert_public_txt (server_cert));
    zsock_connect (client, "%s", endpoint);
    free (endpoint);
    return client;
}

//  One round trip on CLIENT, in ns.
static uint64_t
s_round_trip (zsock_t *client)
{
    uint64_t started = sf_time_mono_ns ();
    zstr_send (client, s_request);
    char *reply = zstr_recv (client);
    free (reply);
    return sf_time_mono_ns () - started;
}

int
main (int argc, char *argv [])
{
    size_t rounds = argc > 1 ? (size_t) atol (argv [1]) : 5000;
    if (rounds < 100)
        rounds = 100;
    uint64_t *ours = (uint64_t *) calloc (rounds, sizeof (uint64_t));
    uint64_t *floor = (uint64_t *) calloc (rounds, sizeof (uint64_t));

    //  Interleave the two codecs so machine noise hits both alike.
    for (size_t index = 0; index < rounds; index++) {
        ours [index] = s_codec_ours ();
        floor [index] = s_codec_floor ();
    }
    s_stats_t codec = s_stats (ours, rounds);
    s_stats_t codec_floor = s_stats (floor, rounds);
    printf ("codec      api_msg_serve  median %7.0f ns  p99 %7.0f ns\n",
            codec.median, codec.p99);
    printf ("codec      jansson floor  median %7.0f ns  p99 %7.0f ns\n",
            codec_floor.median, codec_floor.p99);
    printf ("codec      ratio          median %7.2fx    p99 %7.2fx\n",
            codec.median / codec_floor.median, codec.p99 / codec_floor.p99);

    zactor_t *zap = sf_zap_new ();
    sf_zap_allow_any (zap, API_ROUTER_DOMAIN);
    zcert_t *server_cert = zcert_new ();
    zcert_t *client_cert = zcert_new ();
    zactor_t *api = zactor_new (s_serve_api, server_cert);
    zactor_t *echo = zactor_new (s_serve_echo, server_cert);
    zsock_t *api_client = s_client (api, server_cert, client_cert);
    zsock_t *echo_client = s_client (echo, server_cert, client_cert);
    //  Warm up (handshakes), then alternate so noise hits both alike.
    for (int index = 0; index < 100; index++) {
        s_round_trip (api_client);
        s_round_trip (echo_client);
    }
    for (size_t index = 0; index < rounds; index++) {
        ours [index] = s_round_trip (api_client);
        floor [index] = s_round_trip (echo_client);
    }
    zsock_destroy (&api_client);
    zsock_destroy (&echo_client);
    zactor_destroy (&api);
    zactor_destroy (&echo);
    zcert_destroy (&client_cert);
    s_stats_t trip = s_stats (ours, rounds);
    s_stats_t trip_floor = s_stats (floor, rounds);
    printf ("round trip api_router     median %7.1f us  p99 %7.1f us\n",
            trip.median / 1000, trip.p99 / 1000);
    printf ("round trip CURVE echo     median %7.1f us  p99 %7.1f us\n",
            trip_floor.median / 1000, trip_floor.p99 / 1000);
    printf ("round trip ratio          median %7.2fx    p99 %7.2fx\n",
            trip.median / trip_floor.median, trip.p99 / trip_floor.p99);

    zcert_destroy (&server_cert);
    zactor_destroy (&zap);
    free (ours);
    free (floor);
    return 0;
}
