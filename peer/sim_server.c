/*  sim_server: the simulation server daemon's actor. */

#include "peer/sim_server.h"
#include "common/sf_cert.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_name.h"
#include "common/sf_loop.h"
#include "common/sf_program.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"
#include "peer/sim_api.h"
#include "peer/sim_load.h"
#include "peer/sim_saver.h"
#include "peer/sim_checkpoint.h"
#include "peer/sim_handoff.h"
#include "peer/sim_http.h"
#include "peer/sim_ring.h"
#include "peer/sim_store.h"
#include "peer/sim_stream.h"
#include "protocol/api_router.h"

#include <math.h>
#include <sodium.h>
#include <sys/resource.h>

const sf_config_key_t sim_server_schema [] = {
    {"sim/name", "name", SF_CONFIG_STRING, true, NULL, NULL,
     "simulation server name, unique in its instance"},
    {"sim/api", "api", SF_CONFIG_ENDPOINT, true, NULL, "tcp|ipc|inproc",
     "endpoint of the JSON API"},
    {"sim/api_public", "api-public", SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "API endpoint registered with the ring for tools such as fabricctl "
     "trace (default: sim/api unless it binds every address)"},
    {"sim/secret_key", "secret-key", SF_CONFIG_PATH, true, NULL, NULL,
     "this node's secret certificate (mode 0600)"},
    {"sim/clients", "clients", SF_CONFIG_PATH, false, NULL, NULL,
     "folder of client certificates allowed to connect (default: any "
     "CURVE client; every client may call every operation: the API is the "
     "game side's, so set this where others can reach it)"},
    {"sim/state", "state", SF_CONFIG_ENDPOINT, false, NULL, "udp",
     "UDP endpoint the state stream's DISH binds (udp://*:PORT)"},
    {"sim/state_public", "state-public", SF_CONFIG_ENDPOINT, false, NULL, "udp",
     "state endpoint peers send to, as registered with the ring (default: "
     "sim/state)"},
    {"sim/handoff", "handoff", SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "endpoint the handoff channel's ROUTER binds (CURVE, registered sims "
     "only)"},
    {"sim/handoff_public", "handoff-public", SF_CONFIG_ENDPOINT, false, NULL,
     "tcp|ipc",
     "handoff endpoint peers connect to, as registered (default: "
     "sim/handoff)"},
    {"sim/datagram_size", "datagram-size", SF_CONFIG_INT, false, "1200",
     "512..8189", "largest state datagram sent, bytes (8189 on a LAN)"},
    {"sim/credit", "credit", SF_CONFIG_INT, false, "64", "1..65535",
     "datagrams each peer may have in flight to this sim"},
    {"sim/receive_buffer", "receive-buffer", SF_CONFIG_INT, false, "4194304",
     "65536..268435456",
     "bytes of kernel buffer asked for the state socket (net.core.rmem_max "
     "caps it); credit is granted from it"},
    {"sim/watch", "watch", SF_CONFIG_STRING, false, "/", NULL,
     "comma-separated path prefixes of the entities to replicate"},
    {"sim/key_grace", "key-grace", SF_CONFIG_INT, false, "60000", "0..86400000",
     "ms a peer's old key stays accepted after it registers a new one"},
    {"sim/checkpoint", "checkpoint", SF_CONFIG_PATH, false, NULL, NULL,
     "local SQLite file the entities this sim is the authority of are "
     "saved to, and resumed from at start (default: none)"},
    {"sim/capacity", "capacity", SF_CONFIG_INT, false, "1", "1..1000",
     "this sim's capacity weight: the balancer gives a sim of capacity 2 "
     "twice the load of a sim of capacity 1 (protocol/load.md)"},
    {"sim/checkpoint_interval", "checkpoint-interval", SF_CONFIG_INT, false,
     "5000", "100..3600000", "ms between checkpoint saves"},
    {"sim/ring_checkpoint", "ring-checkpoint", SF_CONFIG_INT, false, "2000",
     "0..3600000",
     "ms between saves of changed entity states to the ring as their "
     "checkpoints, which a new authority starts from if this sim dies (0: "
     "only on release)"},
    {"sim/http", "http", SF_CONFIG_ENDPOINT, false, NULL, "tcp",
     "HTTP endpoint: /health, /ready and /metrics (protocol/http.md; "
     "unset: no HTTP)"},
    {"sim/http_cert", "http-cert", SF_CONFIG_PATH, false, NULL, NULL,
     "PEM certificate chain: serve HTTPS only (with http_key)"},
    {"sim/http_key", "http-key", SF_CONFIG_PATH, false, NULL, NULL,
     "PEM private key of http_cert (mode 0600)"},
    {"sim/heartbeat", "heartbeat", SF_CONFIG_INT, false, "1000", "50..60000",
     "ms between heartbeats and directory refreshes"},
    {"sim/token", "token", SF_CONFIG_STRING, false, NULL, NULL,
     "join token from an administrator (fabricctl token create), for the "
     "first registration of this sim's name"},
    {"ring/member/*/api", NULL, SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "API endpoint of homeserver NAME"},
    {"ring/member/*/key", NULL, SF_CONFIG_PATH, false, NULL, NULL,
     "public certificate of homeserver NAME"},
    {"ring/member/*/events", NULL, SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "events endpoint of homeserver NAME: directory changes arrive at once "
     "instead of at the next heartbeat"},
    {"ring/member/*/id", NULL, SF_CONFIG_INT, false, NULL,
     "1..4611686018427387903", "(homeserver settings, ignored by sims)"},
    {"ring/member/*/raft", NULL, SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "(homeserver settings, ignored by sims)"},
    SF_PROGRAM_LOG_KEYS,
    {NULL},
};

//  A flush tick: retransmission timers and ACK refreshes run on it.
#define S_TICK_MS 5

struct _sim_server_t {
    char *name;              //  node name
    zcert_t *cert;           //  this node's key pair, as registered now
    zcert_t *api_cert;       //  the key the API serves with (the first;
                             //  its clients pin it, so it stays until
                             //  restart)
    zcert_t *next_cert;      //  a key being registered (rotation)
    sf_config_t *config;     //  lent by main, outlives the actor
    sim_ring_t *retired;     //  the ring client a rotation replaced
    sf_loop_t *loop;         //  the actor's loop
    zactor_t *zap;           //  ZAP handler: who may open a CURVE session
    api_router_t *router;    //  JSON requests over CURVE
    sim_store_t *store;      //  entities
    sim_stream_t *stream;    //  state stream, or NULL without sim/state
    char *state_public;      //  state endpoint as registered
    sim_handoff_t *handoff;  //  handoff channel, or NULL without sim/handoff
    char *handoff_public;    //  handoff endpoint as registered
    char *api_public;        //  API endpoint as registered, or NULL
    char *token;             //  join token for sim.register, or NULL
    sim_ring_t *ring;        //  homeserver ring client
    sim_api_t *api;          //  the API's ops
    sim_saver_t *saver;      //  entity states saved in the ring
    sim_load_t *load;        //  the load report of each heartbeat
    json_t *last_load;       //  the last one, for /metrics, or NULL
    sf_loop_t *reactor;      //  the actor's loop, made with the server
    sim_http_t *http;        //  HTTP (protocol/http.md), or NULL
    int ring_checkpoint_ms;  //  between saves, 0: none
    sf_trace_t *trace;       //  hop records (trace.md)
    sim_checkpoint_t *checkpoint;  //  local checkpoint file, or NULL
    int checkpoint_ms;             //  between saves
    zhashx_t *unconfirmed;         //  path -> epoch text: resumed, not yet
                                   //  confirmed by the ring
    zhashx_t *confirmed;     //  path -> epoch text: the ring's word so far
    bool confirming;         //  an entity.list pass is in flight
    bool resync;             //  events were lost: check what we hold
    uint64_t session;        //  to start the stream with once confirmed
    int heartbeat_ms;        //  between heartbeats
    uint64_t registered_ms;  //  0 until registered
    bool registering;        //  a sim.register is in flight
    bool listing;            //  a sim.list is in flight
    bool relist;             //  read again when it is answered
    uint64_t started_ms;     //  monotonic start time, for uptime
};

static void
s_replica_changed (void *arg, sim_entity_t *entity)
{
    sim_api_notify ((sim_api_t *) arg, entity);
}

static void s_list (sim_server_t *self);
//  A HANDOFF waits for a sim the directory does not list yet (a sim that
//  registered since, or another instance's that the ring just granted an
//  entity to): read the directory now rather than at the next beat.
static void
s_unknown_peer (void *arg, const char *name)
{
    (void) name;
    s_list ((sim_server_t *) arg);
}

//  --------------------------------------------------------------------------
//  HTTP (protocol/http.md section 7)

static json_t *
s_http_status (void *context)
{
    return sim_api_status (((sim_server_t *) context)->api);
}

static void
s_http_metrics (void *context, sf_prom_t *prom)
{
    sim_server_t *self = (sim_server_t *) context;
    json_t *counters = sim_api_counters (self->api);
    sf_prom_counters (prom, counters, NULL,
                      "as the op counters names it (sim-api.md)");
    json_decref (counters);
    json_t *status = sim_api_status (self->api);
    const char *figures [] = {"entities", "authoritative", "uptime_ms",
                              "heartbeat_age_ms"};
    for (size_t at = 0; at < sizeof figures / sizeof figures [0]; at++) {
        json_t *value = json_object_get (status, figures [at]);
        sf_prom_family (prom, figures [at], "gauge",
                        "as the op status names it");
        sf_prom_sample (prom, NULL, NULL,
                        json_is_number (value) ? json_number_value (value)
                                               : NAN);
    }
    sf_prom_family (prom, "registered", "gauge",
                    "1 once the ring knows this sim");
    sf_prom_sample (prom, NULL, NULL,
                    json_is_true (json_object_get (status, "registered")));
    json_decref (status);
    if (self->last_load)
        sf_prom_gauges (prom, "load", self->last_load,
                        "this sim's last load report (load.md)");
    api_router_metrics (self->router, prom);
    //  A transfer, as the game sees it: entity.claim from its call to the
    //  entity held (trace.md's first and last hops).
    sf_prom_family (prom, "transfer_duration_seconds", "histogram",
                    "a claim from the game's call to the entity held");
    const sf_prom_histo_t *claims =
        api_router_latency (self->router, "entity.claim");
    sf_prom_histo_t none = {0};
    sf_prom_histo (prom, NULL, NULL, claims ? claims : &none);
}

static int
s_http_setup (sim_server_t *self, sf_config_t *config, sf_fault_t *fault)
{
    sf_http_config_t http = {
        .endpoint = sf_config_str (config, "sim/http"),
        .cert_file = sf_config_str (config, "sim/http_cert"),
        .key_file = sf_config_str (config, "sim/http_key")};
    sim_http_hooks_t hooks = {
        .status = s_http_status, .metrics = s_http_metrics, .context = self};
    self->http = sim_http_new (&http, self->reactor, &hooks, fault);
    if (!self->http)
        return -1;
    sf_log_notice ("sim_server: http=%s", sim_http_url (self->http));
    return 0;
}

sim_server_t *
sim_server_new (sf_config_t *config, sf_fault_t *fault)
{
    //  A join token is 32 bytes in Z85. Z85 has '#', which starts a comment
    //  in ZPL, so an unquoted token in a config file arrives cut short:
    //  say so here rather than let the ring refuse it at every retry.
    const char *token = sf_config_str (config, "sim/token");
    uint8_t decoded [32];
    if (token && (strlen (token) != 40 || !zmq_z85_decode (decoded, token))) {
        sf_fault_set (fault, SF_EINVAL,
                      "sim/token is %zu characters, not the 40 of Z85 that "
                      "'fabricctl token create' prints; in a config file "
                      "quote it (token = \"...\"): Z85 may hold '#', "
                      "which starts a comment",
                      strlen (token));
        return NULL;
    }
    sim_server_t *self = (sim_server_t *) zmalloc (sizeof (sim_server_t));
    self->name = strdup (sf_config_str (config, "sim/name"));
    self->started_ms = sf_time_mono_ms ();
    self->heartbeat_ms = (int) sf_config_int (config, "sim/heartbeat");
    self->config = config;
    self->cert =
        sf_cert_load_secret (sf_config_str (config, "sim/secret_key"), fault);
    if (!self->cert)
        goto failed;
    self->api_cert = zcert_dup (self->cert);
    self->zap = sf_zap_new ();
    if (!self->zap) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot start the ZAP handler");
        goto failed;
    }
    const char *clients = sf_config_str (config, "sim/clients");
    if (!clients)
        sf_zap_allow_any (self->zap, API_ROUTER_DOMAIN);
    else if (sf_zap_allow_dir (self->zap, API_ROUTER_DOMAIN, clients, fault)
             < 0)
        goto failed;
    self->router = api_router_new (sf_config_str (config, "sim/api"),
                                   self->api_cert, API_ROUTER_DOMAIN, fault);
    if (!self->router)
        goto failed;
    self->ring = sim_ring_new (config, self->cert, fault);
    if (!self->ring)
        goto failed;
    self->store = sim_store_new ();
    if (!self->store) {
        sf_fault_set (fault, SF_EINTERNAL,
                      "no memory or no libsodium for the entity store");
        goto failed;
    }
    const char *state = sf_config_str (config, "sim/state");
    if (state) {
        sim_stream_config_t stream_config = {
            self->name,
            (size_t) sf_config_int (config, "sim/datagram_size"),
            (uint32_t) sf_config_int (config, "sim/credit"),
            1024,
            sf_config_str (config, "sim/watch"),
            (uint32_t) sf_config_int (config, "sim/key_grace"),
            (size_t) sf_config_int (config, "sim/receive_buffer"),
        };
        self->stream = sim_stream_new (state, self->cert, self->store,
                                       &stream_config, fault);
        if (!self->stream)
            goto failed;
        const char *public = sf_config_str (config, "sim/state_public");
        if (!public && strstr (state, "://*:")) {
            sf_fault_set (fault, SF_EINVAL,
                          "sim/state '%s' binds every address: set "
                          "sim/state_public to the address peers reach",
                          state);
            goto failed;
        }
        self->state_public = strdup (public ? public : state);
    }
    const char *handoff = sf_config_str (config, "sim/handoff");
    if (handoff) {
        self->handoff = sim_handoff_new (handoff, self->name, self->cert,
                                         self->zap, self->store, fault);
        if (!self->handoff)
            goto failed;
        sim_handoff_set_key_grace (
            self->handoff, (uint32_t) sf_config_int (config, "sim/key_grace"));
        const char *public = sf_config_str (config, "sim/handoff_public");
        if (!public && strstr (handoff, "://*:")) {
            sf_fault_set (fault, SF_EINVAL,
                          "sim/handoff '%s' binds every address: set "
                          "sim/handoff_public to the address peers reach",
                          handoff);
            goto failed;
        }
        self->handoff_public = strdup (public ? public : handoff);
    }
    //  Tools reach the API at the registered endpoint; one that binds every
    //  address or lives in-process is not registered without a public one.
    const char *api = sf_config_str (config, "sim/api");
    if (sf_config_str (config, "sim/token"))
        self->token = strdup (sf_config_str (config, "sim/token"));
    const char *api_public = sf_config_str (config, "sim/api_public");
    if (api_public)
        self->api_public = strdup (api_public);
    else if (!strstr (api, "://*:") && strncmp (api, "inproc:", 7) != 0)
        self->api_public = strdup (api);
    const char *checkpoint = sf_config_str (config, "sim/checkpoint");
    if (checkpoint) {
        self->checkpoint = sim_checkpoint_open (checkpoint, fault);
        if (!self->checkpoint)
            goto failed;
        self->checkpoint_ms =
            (int) sf_config_int (config, "sim/checkpoint_interval");
        int loaded = sim_checkpoint_load (self->checkpoint, self->store, fault);
        if (loaded < 0)
            goto failed;
        //  Resumed, but the ring decides which are still ours.
        self->unconfirmed = zhashx_new ();
        uint32_t slots = sim_store_slots (self->store);
        for (uint32_t slot = 0; slot < slots; slot++) {
            sim_entity_t *entity = sim_store_at (self->store, slot);
            if (entity) {
                char epoch [24];
                snprintf (epoch, sizeof epoch, "%llu",
                          (unsigned long long) entity->epoch);
                zhashx_insert (self->unconfirmed, entity->path, strdup (epoch));
            }
        }
        zhashx_set_destructor (self->unconfirmed,
                               (zhashx_destructor_fn *) zstr_free);
        sf_log_notice ("sim_server: resumed %d entities from %s", loaded,
                       checkpoint);
    }
    self->trace = sf_trace_new (self->name, 0);
    if (!self->trace) {
        sf_fault_set (fault, SF_EINTERNAL, "out of memory");
        goto failed;
    }
    self->saver = sim_saver_new (self->name, self->store);
    self->load = sim_load_new (sf_config_int (config, "sim/capacity"));
    self->ring_checkpoint_ms =
        (int) sf_config_int (config, "sim/ring_checkpoint");
    sim_api_config_t api_config = {
        self->name, self->router, self->store, self->stream,     self->handoff,
        self->ring, self->trace,  self->saver, self->started_ms, self->zap};
    self->api = sim_api_new (&api_config);
    sim_api_set_key (self->api, zcert_public_key (self->cert));
    if (self->stream)
        sim_stream_set_listener (self->stream, s_replica_changed, self->api);
    if (self->handoff)
        sim_handoff_set_listener (self->handoff, s_replica_changed, self->api);
    if (self->handoff) {
        sim_handoff_set_offer_handler (self->handoff, sim_api_offer, self->api);
        sim_handoff_on_unknown (self->handoff, s_unknown_peer, self);
        sim_handoff_set_trace (self->handoff, self->trace);
    }
    if (self->stream) {
        sim_stream_set_trace (self->stream, self->trace);
    }
    self->reactor = sf_loop_new ();
    if (!self->reactor) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot make the loop (epoll)");
        goto failed;
    }
    if (sf_config_str (config, "sim/http")
        && s_http_setup (self, config, fault))
        goto failed;
    return self;
failed:
    sim_server_destroy (&self);
    return NULL;
}

void
sim_server_destroy (sim_server_t **self_p)
{
    if (*self_p) {
        sim_server_t *self = *self_p;
        sim_http_destroy (&self->http);
        sim_ring_destroy (&self->ring);
        sim_ring_destroy (&self->retired);
        sim_api_destroy (&self->api);
        sim_saver_destroy (&self->saver);
        sim_load_destroy (&self->load);
        if (self->checkpoint) {
            sf_fault_t fault;
            if (sim_checkpoint_save (self->checkpoint, self->store,
                                     sf_time_wall_ms (), &fault)
                < 0)
                sf_log_error ("sim_server: last checkpoint failed: %s",
                              fault.message);
        }
        sim_checkpoint_destroy (&self->checkpoint);
        zhashx_destroy (&self->unconfirmed);
        zhashx_destroy (&self->confirmed);
        sim_handoff_destroy (&self->handoff);
        sim_stream_destroy (&self->stream);
        sim_store_destroy (&self->store);
        sf_trace_destroy (&self->trace);
        api_router_destroy (&self->router);
        sf_loop_destroy (&self->reactor);
        json_decref (self->last_load);
        zactor_destroy (&self->zap);
        zcert_destroy (&self->cert);
        zcert_destroy (&self->api_cert);
        zcert_destroy (&self->next_cert);
        free (self->state_public);
        free (self->handoff_public);
        free (self->api_public);
        free (self->token);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

const char *
sim_server_endpoint (sim_server_t *self)
{
    return api_router_endpoint (self->router);
}

//  --------------------------------------------------------------------------
//  The ring: registration, heartbeats, the directory of peers

//  Registered, and the resumed entities sorted out: stream and serve.
static void
s_start (sim_server_t *self)
{
    if (self->stream)
        sim_stream_start (self->stream, self->session);
    sim_api_set_registered (self->api, self->registered_ms);
    //  The registration answered is the ring hearing this sim, as a
    //  heartbeat's answer is (its health, http.md section 7).
    sim_api_set_beaten (self->api, sf_time_mono_ms (),
                        (uint64_t) self->heartbeat_ms);
    s_list (self);
}

static void s_confirm (sim_server_t *self, const char *after);

//  A pass over the ring after lost events is done: what this sim holds
//  but the ring no longer gives it at the same epoch (orphaned while it
//  was cut off, or granted away in an event it missed) is not ours.
static void
s_resynced (sim_server_t *self)
{
    size_t lost = 0;
    uint32_t slots = sim_store_slots (self->store);
    for (uint32_t slot = 0; slot < slots; slot++) {
        sim_entity_t *entity = sim_store_at (self->store, slot);
        if (!entity || !entity->authority)
            continue;
        //  Only on the ring's word: the pass reads page by page, so an
        //  entity this sim took after its page was read shows an older
        //  epoch there, and one it created may not show at all.
        const char *said =
            (const char *) zhashx_lookup (self->confirmed, entity->path);
        if (!said)
            continue;
        char *rest;
        unsigned long long epoch = strtoull (said, &rest, 10);
        const char *authority = *rest == ' ' ? rest + 1 : "";
        if (epoch >= entity->epoch && !streq (authority, self->name)) {
            //  As the grant's event would have said: handed over and
            //  fenced, or fenced as an orphan.
            sim_api_seen (self->api, entity->path, (uint64_t) epoch,
                          *authority ? authority : NULL);
            lost++;
        }
    }
    sf_log_notice ("sim_server: events were lost; the ring confirms what "
                   "this sim holds but %zu entities",
                   lost);
    zhashx_destroy (&self->confirmed);
    self->resync = false;
}

//  The ring's events show a gap: check everything we hold.
static void
s_gap (void *arg)
{
    sim_server_t *self = (sim_server_t *) arg;
    self->resync = true;
    if (self->registered_ms && !self->unconfirmed)
        s_confirm (self, NULL);
}

//  One page of the ring's entities: note those that are ours.
static void
s_confirmed (void *arg, json_t *reply, const sf_fault_t *fault)
{
    sim_server_t *self = (sim_server_t *) arg;
    self->confirming = false;
    if (fault) {
        sf_log_warning ("sim_server: cannot read what the ring says this sim "
                        "holds: %s; retrying",
                        fault->message);
        zhashx_destroy (&self->confirmed);
        return;  //  the next heartbeat starts again
    }
    size_t index;
    json_t *entity;
    json_array_foreach (json_object_get (reply, "entities"), index, entity)
    {
        const char *path = json_string_value (json_object_get (entity, "path"));
        const char *authority =
            json_string_value (json_object_get (entity, "authority"));
        //  "EPOCH AUTHORITY" (no authority: an orphan).
        char said [128];
        snprintf (
            said, sizeof said, "%lld %s",
            (long long) json_integer_value (json_object_get (entity, "epoch")),
            authority ? authority : "");
        if (path)
            zhashx_update (self->confirmed, path, strdup (said));
    }
    const char *next = json_string_value (json_object_get (reply, "next"));
    if (next) {
        s_confirm (self, next);
        return;
    }
    if (!self->unconfirmed) {
        s_resynced (self);
        return;
    }
    //  The whole ring seen: keep what it says is ours at the same epoch.
    size_t dropped = 0, kept = 0;
    for (char *epoch = (char *) zhashx_first (self->unconfirmed); epoch;
         epoch = (char *) zhashx_next (self->unconfirmed)) {
        const char *path = (const char *) zhashx_cursor (self->unconfirmed);
        const char *said = (const char *) zhashx_lookup (self->confirmed, path);
        char ours [128];
        snprintf (ours, sizeof ours, "%s %s", epoch, self->name);
        if (said && streq (said, ours)) {
            sim_api_hold (self->api, path);
            kept++;
        }
        else {
            sim_store_delete (self->store, path);
            dropped++;
        }
    }
    sf_log_notice ("sim_server: the ring confirms %zu resumed entities; %zu "
                   "are no longer ours",
                   kept, dropped);
    zhashx_destroy (&self->unconfirmed);
    zhashx_destroy (&self->confirmed);
    s_start (self);
}

//  Read the ring's entities from AFTER on, to confirm resumed ones.
static void
s_confirm (sim_server_t *self, const char *after)
{
    if (self->confirming)
        return;
    if (!self->confirmed) {
        self->confirmed = zhashx_new ();
        zhashx_set_destructor (self->confirmed,
                               (zhashx_destructor_fn *) zstr_free);
    }
    json_t *args = json_pack ("{s:s,s:i}", "prefix", "/", "limit", 1000);
    if (after)
        json_object_set_new (args, "after", json_string (after));
    if (sim_ring_call (self->ring, "entity.list", &args, 5000, s_confirmed,
                       self)
        == 0)
        self->confirming = true;
}

static void
s_registered (void *arg, json_t *reply, const sf_fault_t *fault)
{
    sim_server_t *self = (sim_server_t *) arg;
    self->registering = false;
    if (fault) {
        sf_log_warning ("sim_server: registration failed: %s (%s); retrying",
                        fault->message, sf_error_code (fault->error));
        return;
    }
    json_int_t registered_ms =
        json_integer_value (json_object_get (reply, "registered_ms"));
    if (registered_ms <= 0) {
        sf_log_error ("sim_server: the ring's answer has no registered_ms");
        return;
    }
    self->registered_ms = (uint64_t) registered_ms;
    //  A new session per registration: the ring's time in the top 48
    //  bits, 16 random bits below (state-datagram.md section 4).
    self->session =
        self->registered_ms << 16 | (randombytes_random () & 0xffff);
    sf_log_notice ("sim_server: registered with the ring (via %s), "
                   "session %llu",
                   sim_ring_target (self->ring),
                   (unsigned long long) self->session);
    if (self->unconfirmed)
        s_confirm (self, NULL);  //  the stream starts once confirmed
    else
        s_start (self);
}

//  The arguments of sim.register: this sim's endpoints, and KEY (may be
//  NULL: the caller's own) when it changes.
static json_t *
s_register_args (sim_server_t *self, const char *key)
{
    json_t *args = json_pack ("{s:s}", "sim", self->name);
    if (key)
        json_object_set_new (args, "key", json_string (key));
    if (self->state_public)
        json_object_set_new (args, "state", json_string (self->state_public));
    if (self->handoff_public)
        json_object_set_new (args, "handoff",
                             json_string (self->handoff_public));
    if (self->api_public)
        json_object_set_new (args, "api", json_string (self->api_public));
    return args;
}

static void
s_register (sim_server_t *self)
{
    if (self->registering)
        return;
    json_t *args = s_register_args (self, NULL);
    //  Admits a new name once; a registered sim's is ignored.
    if (self->token)
        json_object_set_new (args, "token", json_string (self->token));
    if (sim_ring_call (self->ring, "sim.register", &args, 2000, s_registered,
                       self)
        == 0)
        self->registering = true;
}

//  The ring's signing keys as the directory lists them (ARRAY, lent; NULL
//  from a ring that predates grants): to the stream and the handoff
//  channel, which check peers' grants with them, and to the API, which
//  from then on streams what this sim holds only with its grants.
static void
s_ring_keys (sim_server_t *self, const json_t *array)
{
    if (!array)
        return;
    sim_grant_key_t keys [SIM_GRANT_MAX_KEYS];
    size_t count;
    sf_fault_t fault;
    if (sim_grant_keys_from_json (array, keys, &count, &fault)) {
        sf_log_warning ("sim_server: the ring's keys are not understood, "
                        "kept as they were: %s",
                        fault.message);
        return;
    }
    if (self->stream)
        sim_stream_set_ring_keys (self->stream, keys, count);
    if (self->handoff)
        sim_handoff_set_ring_keys (self->handoff, keys, count);
    sim_api_set_ring_keys (self->api, count);
}

static void
s_listed (void *arg, json_t *reply, const sf_fault_t *fault)
{
    sim_server_t *self = (sim_server_t *) arg;
    self->listing = false;
    if (self->relist) {
        self->relist = false;
        s_list (self);
    }
    if (fault)
        return;
    s_ring_keys (self, json_object_get (reply, "ring_keys"));
    json_t *sims = json_object_get (reply, "sims");
    if (self->handoff) {
        sim_handoff_peers_begin (self->handoff);
        size_t index;
        json_t *sim;
        json_array_foreach (sims, index, sim)
        {
            const char *name = json_string_value (json_object_get (sim, "sim"));
            const char *key = json_string_value (json_object_get (sim, "key"));
            if (name && key)
                sim_handoff_peer_set (
                    self->handoff, name, key,
                    json_string_value (json_object_get (sim, "handoff")));
        }
        sim_handoff_peers_end (self->handoff);
    }
    if (!self->stream)
        return;
    sim_stream_peers_begin (self->stream);
    size_t index;
    json_t *sim;
    json_array_foreach (sims, index, sim)
    {
        const char *name = json_string_value (json_object_get (sim, "sim"));
        const char *key = json_string_value (json_object_get (sim, "key"));
        const char *state = json_string_value (json_object_get (sim, "state"));
        json_int_t registered =
            json_integer_value (json_object_get (sim, "registered_ms"));
        if (!name || !key)
            continue;
        sf_fault_t peer_fault;
        if (sim_stream_peer_set (self->stream, name, key, state,
                                 (uint64_t) registered, &peer_fault))
            sf_log_warning ("sim_server: peer %s ignored: %s", name,
                            peer_fault.message);
    }
    sim_stream_peers_end (self->stream);
    sim_stream_flush (self->stream, sf_time_mono_us ());
}

static void
s_list (sim_server_t *self)
{
    if (self->listing) {
        self->relist = true;  //  that answer may predate the change
        return;
    }
    json_t *args = NULL;
    if (sim_ring_call (self->ring, "sim.list", &args, 2000, s_listed, self)
        == 0)
        self->listing = true;
}

static void
s_beaten (void *arg, json_t *reply, const sf_fault_t *fault)
{
    sim_server_t *self = (sim_server_t *) arg;
    if (fault && fault->error == SF_ENOTFOUND) {
        //  The ring forgot us (a new ring): register again.
        self->registered_ms = 0;
        sim_api_set_registered (self->api, 0);
    }
    else if (!fault) {
        sim_api_set_beaten (self->api, sf_time_mono_ms (),
                            (uint64_t) self->heartbeat_ms);
        //  Fencing never depends on the optional event feed.
        sim_api_check (self->api, (uint64_t) json_integer_value (
                                      json_object_get (reply, "taken_index")));
        sim_api_check_foreign (self->api, sf_time_mono_ms ());
    }
}

//  Whether a balancer's move on TOPIC concerns this sim: it is one of its
//  two sims ("ring:move/FROM/TO/GROUP", homeserver-events.md), or it
//  watches something of the group (a replica learns the new authority's
//  grant from it). An ask (on entity:PATH) goes to its authority's game.
static bool
s_move_concerns (sim_server_t *self, const char *topic)
{
    static const char prefix [] = "ring:move/";
    if (strncmp (topic, prefix, sizeof prefix - 1) != 0)
        return true;
    const char *from = topic + sizeof prefix - 1;
    const char *to = strchr (from, '/');
    const char *group = to ? strchr (to + 1, '/') : NULL;
    if (!group)
        return true;  //  not as this version publishes it: read it
    to++;
    size_t name = strlen (self->name);
    if (((size_t) (to - 1 - from) == name && !strncmp (from, self->name, name))
        || ((size_t) (group - to) == name && !strncmp (to, self->name, name)))
        return true;
    char under [SF_NAME_MAX_PATH + 2];
    snprintf (under, sizeof under, "%s%s", group,
              streq (group, "/") ? "" : "/");
    sim_entity_t *first;
    bool more;
    return sim_store_list (self->store, under, NULL, &first, 1, &more) > 0;
}

//  The kinds of change s_ring_changed acts on, told from the event's head:
//  heartbeats, checkpoints, creations and this sim's own batches (their
//  reply told it all) go unparsed: under many transfers, about half of
//  what a sim receives.
static bool
s_ring_wants (void *arg, const char *topic, const char *op)
{
    sim_server_t *self = (sim_server_t *) arg;
    //  Another instance's sim's claim (fed.claim) moves authority here
    //  as a local one does.
    if (streq (op, "authority.request") || streq (op, "fed.claim"))
        return strncmp (topic, "sim:", 4) != 0
               || !streq (topic + 4, self->name);
    //  A claim's outcome recorded by the ring matters only to a sim that
    //  was not told it (federation.md section 6): the others let it by.
    if (streq (op, "fed.outcome"))
        return sim_api_awaits_outcomes (self->api);
    //  The balancer's moves (load.md section 6): grants no sim asked for.
    if (streq (op, "balance.move"))
        return s_move_concerns (self, topic);
    return streq (op, "sim.register") || streq (op, "entity.delete")
           || streq (op, "sim.expire") || streq (op, "authority.answer")
           || streq (op, "authority.release") || streq (op, "fed.fenced");
}

//  A change s_ring_wants wanted. A sim registered, re-keyed or moved:
//  re-read the directory now rather than at the next heartbeat (the Clone
//  pattern: the event says what changed, the read gives the state).
static void
s_ring_changed (void *arg, const char *topic, json_t *body)
{
    sim_server_t *self = (sim_server_t *) arg;
    const char *op = json_string_value (json_object_get (body, "op"));
    if (!op)
        return;
    if (streq (op, "sim.register")) {
        if (self->registered_ms)
            s_list (self);
    }
    //  An entity deleted in the ring: its replica here goes too.
    else if (streq (op, "entity.delete")) {
        if (strncmp (topic, "entity:", 7) == 0)
            sim_api_forget (self->api, topic + 7);
    }
    //  Expiries and authority changes, whatever the topic: a batch
    //  request's is sim:NAME (homeserver-events.md).
    else
        sim_api_authority_event (
            self->api, op, json_object_get (body, "result"),
            json_string_value (json_object_get (body, "node")));
}

static void
s_note_taking (void *arg, const char *path)
{
    sim_load_taking ((sim_load_t *) arg, path);
}

//  The load report for the ring (sim.heartbeat, protocol/load.md
//  section 2): what this sim holds and streams, per second since the
//  last beat, its CPU and memory, and the rooms it spends most on
//  (what it is taking counted as held).
static json_t *
s_load (sim_server_t *self)
{
    json_t *counters = self->stream ? sim_stream_counters (self->stream) : NULL;
    size_t taking = sim_api_taking (self->api, s_note_taking, self->load);
    json_t *report = sim_load_report (
        self->load, self->store, counters,
        api_router_counters (self->router)->requests, sf_time_mono_us ());
    json_decref (counters);
    //  What the balancer needs to know this report shows its moves: the
    //  newest change this sim acted on, and what it is still taking.
    json_object_set_new (
        report, "ring_index",
        json_integer ((json_int_t) sim_ring_event_index (self->ring)));
    json_object_set_new (report, "taking", json_integer ((json_int_t) taking));
    json_decref (self->last_load);
    self->last_load = json_incref (report);
    return report;
}

//  Every heartbeat: register if not yet, else beat and refresh peers.
static int
s_handle_heartbeat (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    if (!self->registered_ms) {
        s_register (self);
        return 0;
    }
    if (self->unconfirmed) {
        s_confirm (self, NULL);  //  a failed pass starts again
        return 0;
    }
    if (self->resync)
        s_confirm (self, NULL);
    json_t *args =
        json_pack ("{s:s,s:o}", "sim", self->name, "load", s_load (self));
    sim_ring_call (self->ring, "sim.heartbeat", &args, 2000, s_beaten, self);
    s_list (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  The loop

//  Requests taken per wakeup: polling every socket again for each one
//  would cost more than the requests.
#define S_API_DRAIN 64

static int
s_handle_api (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    sim_server_t *self = (sim_server_t *) arg;
    for (int count = 0;
         count < S_API_DRAIN && (zsock_events (reader) & ZMQ_POLLIN); count++)
        sim_api_handle (self->api);
    sim_api_flush (self->api);
    return 0;
}

static int s_handle_stream_more (sf_loop_t *loop, int timer_id, void *arg);

//  Datagrams wait: take them. After a flood's worth, the rest is taken
//  from a timer, so the API and the ring are served in between.
static void
s_stream_receive (sim_server_t *self, sf_loop_t *loop)
{
    uint64_t now = sf_time_mono_us ();
    bool more = sim_stream_receive (self->stream, now);
    sim_stream_flush (self->stream, now);
    if (more)
        sf_loop_timer (loop, 1, 1, s_handle_stream_more, self);
}

static int
s_handle_stream (sf_loop_t *loop, int fd, void *arg)
{
    (void) fd;
    s_stream_receive ((sim_server_t *) arg, loop);
    return 0;
}

static int
s_handle_stream_more (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    s_stream_receive ((sim_server_t *) arg, loop);
    return 0;
}

static int
s_handle_tick (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    sim_stream_flush (self->stream, sf_time_mono_us ());
    return 0;
}

static int
s_handle_checkpoint (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    if (self->unconfirmed)
        return 0;  //  not before the ring has sorted them out
    sf_fault_t fault;
    if (sim_checkpoint_save (self->checkpoint, self->store, sf_time_wall_ms (),
                             &fault)
        < 0)
        sf_log_error ("sim_server: checkpoint failed: %s", fault.message);
    return 0;
}

static int
s_handle_ring_checkpoint (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    //  Not before the ring has confirmed what this sim holds.
    if (self->registered_ms && !self->unconfirmed)
        sim_saver_tick (self->saver);
    return 0;
}

static int
s_handle_api_tick (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    sim_api_tick (self->api, sf_time_mono_ms ());
    return 0;
}

static int
s_handle_handoff_tick (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    sim_handoff_tick (self->handoff, sf_time_mono_ms ());
    return 0;
}

//  --------------------------------------------------------------------------
//  Key rotation: the operator puts a new key pair at sim/secret_key and
//  sends SIGHUP; the sim registers the new key (signing with the old one),
//  then moves its ring client, stream and handoff channel to it. Peers
//  learn it from the ring and accept the old key for their grace period.

static int
s_retire_ring (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    sim_ring_destroy (&self->retired);
    return 0;
}

//  Move everything but the API to the registered NEXT_CERT. Runs from a
//  timer, not from the ring client's callback: the client is replaced.
static int
s_rekey (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    sim_server_t *self = (sim_server_t *) arg;
    zcert_destroy (&self->cert);
    self->cert = self->next_cert;
    self->next_cert = NULL;
    sf_fault_t fault;
    //  The old client goes in a later loop pass (see sim_ring_detach).
    sim_ring_detach (self->ring);
    sim_ring_destroy (&self->retired);
    self->retired = self->ring;
    self->ring = NULL;
    sf_loop_timer (loop, 10, 1, s_retire_ring, self);
    self->ring = sim_ring_new (self->config, self->cert, &fault);
    if (!self->ring) {
        sf_log_error ("sim_server: ring client after rotation: %s",
                      fault.message);
        return -1;  //  cannot go on without the ring
    }
    sim_ring_follow (self->ring, s_ring_wants, s_ring_changed, self);
    sim_ring_on_gap (self->ring, s_gap, self);
    sim_ring_attach (self->ring, loop);
    sim_api_set_ring (self->api, self->ring);
    //  The ring's grants name the new key from now on: fetched again.
    sim_api_set_key (self->api, zcert_public_key (self->cert));
    sim_saver_set_ring (self->saver, self->ring);
    if (self->stream)
        sim_stream_rekey (self->stream, self->cert, self->session);
    if (self->handoff && sim_handoff_rekey (self->handoff, self->cert, &fault))
        sf_log_error ("sim_server: handoff channel after rotation: %s",
                      fault.message);
    sf_log_notice ("sim_server: key rotated to %s, session %llu",
                   zcert_public_txt (self->cert),
                   (unsigned long long) self->session);
    s_list (self);
    return 0;
}

static void
s_rotated (void *arg, json_t *reply, const sf_fault_t *fault)
{
    sim_server_t *self = (sim_server_t *) arg;
    self->registering = false;
    json_int_t registered_ms =
        reply ? json_integer_value (json_object_get (reply, "registered_ms"))
              : 0;
    if (fault || registered_ms <= 0) {
        sf_log_error ("sim_server: key rotation refused: %s; still on %s",
                      fault ? fault->message : "no registration time",
                      zcert_public_txt (self->cert));
        zcert_destroy (&self->next_cert);
        return;
    }
    self->registered_ms = (uint64_t) registered_ms;
    self->session =
        self->registered_ms << 16 | (randombytes_random () & 0xffff);
    sim_api_set_registered (self->api, self->registered_ms);
    sf_loop_timer (self->loop, 1, 1, s_rekey, self);
}

//  SIGHUP: read sim/secret_key again; a new key there is rotated to.
static void
s_rotate (sim_server_t *self)
{
    const char *path = sf_config_str (self->config, "sim/secret_key");
    sf_fault_t fault;
    zcert_t *cert = sf_cert_load_secret (path, &fault);
    if (!cert) {
        sf_log_error ("sim_server: key rotation: %s", fault.message);
        return;
    }
    if (streq (zcert_public_txt (cert), zcert_public_txt (self->cert))) {
        sf_log_notice ("sim_server: key rotation: %s holds the current key",
                       path);
        zcert_destroy (&cert);
        return;
    }
    if (!self->registered_ms || self->registering || self->next_cert) {
        sf_log_error ("sim_server: key rotation: not registered, or busy; "
                      "send SIGHUP again");
        zcert_destroy (&cert);
        return;
    }
    json_t *args = s_register_args (self, zcert_public_txt (cert));
    self->next_cert = cert;
    if (sim_ring_call (self->ring, "sim.register", &args, 3000, s_rotated, self)
        == 0)
        self->registering = true;
    else
        zcert_destroy (&self->next_cert);
}

static int
s_handle_pipe (sf_loop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    sim_server_t *self = (sim_server_t *) arg;
    char *command = zstr_recv (pipe);
    if (!command)
        return -1;  //  interrupted
    int rc = 0;
    if (streq (command, "$TERM"))
        rc = -1;
    else if (streq (command, "ROTATE"))
        s_rotate (self);
    else if (streq (command, "ENDPOINT"))
        zstr_send (pipe, api_router_endpoint (self->router));
    else
        sf_log_error ("sim_server: unknown pipe command %s", command);
    free (command);
    return rc;
}

void
sim_server_actor (zsock_t *pipe, void *args)
{
    sim_server_t *self = (sim_server_t *) args;
    sf_loop_t *loop = self->reactor;
    self->loop = loop;
    sf_loop_reader (loop, pipe, s_handle_pipe, self);
    sf_loop_reader (loop, api_router_socket (self->router), s_handle_api, self);
    sim_ring_follow (self->ring, s_ring_wants, s_ring_changed, self);
    sim_ring_on_gap (self->ring, s_gap, self);
    sim_ring_attach (self->ring, loop);
    if (self->stream) {
        sf_loop_fd (loop, sim_stream_fd (self->stream), s_handle_stream, self);
        sf_loop_timer (loop, S_TICK_MS, 0, s_handle_tick, self);
    }
    if (self->checkpoint)
        sf_loop_timer (loop, (size_t) self->checkpoint_ms, 0,
                       s_handle_checkpoint, self);
    sf_loop_timer (loop, 100, 0, s_handle_api_tick, self);
    sim_saver_set_ring (self->saver, self->ring);
    if (self->ring_checkpoint_ms)
        sf_loop_timer (loop, (size_t) self->ring_checkpoint_ms, 0,
                       s_handle_ring_checkpoint, self);
    if (self->handoff) {
        sim_handoff_attach (self->handoff, loop);
        sf_loop_timer (loop, 250, 0, s_handle_handoff_tick, self);
    }
    sf_loop_timer (loop, (size_t) self->heartbeat_ms, 0, s_handle_heartbeat,
                   self);
    s_register (self);
    zsock_signal (pipe, 0);
    sf_log_notice ("sim_server: ready api=%s state=%s handoff=%s",
                   api_router_endpoint (self->router),
                   self->state_public ? self->state_public : "(none)",
                   self->handoff_public ? self->handoff_public : "(none)");
    sf_loop_start (loop);
    sim_server_destroy (&self);
}
