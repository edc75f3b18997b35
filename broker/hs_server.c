/*  hs_server: the homeserver daemon's actor. */

#include "broker/hs_server.h"
#include "broker/hs_api.h"
#include "broker/hs_events.h"
#include "broker/hs_fed.h"
#include "broker/hs_fsm.h"
#include "broker/hs_backup.h"
#include "broker/hs_http.h"
#include "broker/hs_kept.h"
#include "broker/hs_link.h"
#include "broker/hs_persist.h"
#include "broker/hs_relay.h"
#include "broker/hs_ring.h"
#include "broker/hs_store.h"
#include "common/sf_cert.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_loop.h"
#include "common/sf_name.h"
#include "common/sf_program.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"
#include "protocol/api_router.h"
#include "protocol/ring_cmd.h"

#include <errno.h>
#include <sodium.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

const sf_config_key_t hs_server_schema [] = {
    {"homeserver/name", "name", SF_CONFIG_STRING, true, NULL, NULL,
     "node name, unique in the ring"},
    {"homeserver/api", "api", SF_CONFIG_ENDPOINT, true, NULL, "tcp|ipc|inproc",
     "endpoint of the JSON API"},
    {"homeserver/secret_key", "secret-key", SF_CONFIG_PATH, true, NULL, NULL,
     "this node's secret certificate (mode 0600)"},
    {"homeserver/clients", "clients", SF_CONFIG_PATH, false, NULL, NULL,
     "folder of client certificates allowed to connect (default: any "
     "CURVE client; requests are then authorised per principal)"},
    {"homeserver/id", "id", SF_CONFIG_INT, true, NULL, "1..4611686018427387903",
     "raft id of this node, unique in the ring"},
    {"homeserver/raft", "raft", SF_CONFIG_ENDPOINT, true, NULL, "tcp|ipc",
     "endpoint of the raft link to the other members"},
    {"homeserver/data", "data", SF_CONFIG_PATH, true, NULL, NULL,
     "folder for this node's durable state (created if missing)"},
    {"homeserver/election_timeout", "election-timeout", SF_CONFIG_INT, false,
     "300", "50..60000", "raft election timeout, milliseconds"},
    {"homeserver/heartbeat", "heartbeat", SF_CONFIG_INT, false, "50",
     "10..10000", "raft heartbeat interval, milliseconds"},
    {"homeserver/snapshot_threshold", "snapshot-threshold", SF_CONFIG_INT,
     false, "65536", "2..100000000", "applied entries between snapshots"},
    {"homeserver/snapshot_trailing", "snapshot-trailing", SF_CONFIG_INT, false,
     "4096", "1..100000000", "log entries kept after a snapshot"},
    {"homeserver/ask_timeout", "ask-timeout", SF_CONFIG_INT, false, "2000",
     "1..60000",
     "ms an authority request under the ask rule waits for the answer"},
    {"homeserver/sim_lease", "sim-lease", SF_CONFIG_INT, false, "5000",
     "0..86400000",
     "ms without a heartbeat after which a sim's entities are orphaned (0: "
     "never)"},
    {"ring/member/*/id", NULL, SF_CONFIG_INT, false, NULL,
     "1..4611686018427387903", "raft id of a ring member"},
    {"ring/member/*/raft", NULL, SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "raft endpoint of a ring member"},
    {"ring/member/*/key", NULL, SF_CONFIG_PATH, false, NULL, NULL,
     "public certificate of a ring member"},
    {"ring/member/*/api", NULL, SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "API endpoint of a ring member, for forwarding requests to the leader"},
    {"ring/member/*/events", NULL, SF_CONFIG_ENDPOINT, false, NULL, "tcp|ipc",
     "events endpoint of a ring member (for simulation servers; the same "
     "ring section serves both)"},
    {"homeserver/join", "join", SF_CONFIG_BOOL, false, "false", NULL,
     "join an existing ring (an administrator runs cluster.add) instead of "
     "bootstrapping a new one"},
    {"homeserver/admins", "admins", SF_CONFIG_PATH, false, NULL, NULL,
     "folder of administrators' public certificates"},
    {"homeserver/registration", "registration", SF_CONFIG_CHOICE, false,
     "token", "token|open",
     "who may register a new sim name: holders of a join token from an "
     "administrator (token), or any key (open: development rings only)"},
    {"homeserver/events", "events", SF_CONFIG_ENDPOINT, false, NULL,
     "tcp|ipc|inproc", "endpoint of the PUB socket publishing every change"},
    {"homeserver/restore", "restore", SF_CONFIG_PATH, false, NULL, NULL,
     "make a new ring's data from this backup (fabricctl backup) in an "
     "empty data folder, then exit (operations.md section 3)"},
    {"homeserver/http", "http", SF_CONFIG_ENDPOINT, false, NULL, "tcp",
     "HTTP endpoint: /health, /ready, /metrics and the REST API "
     "(protocol/http.md; unset: no HTTP)"},
    {"homeserver/http_cert", "http-cert", SF_CONFIG_PATH, false, NULL, NULL,
     "PEM certificate chain: serve HTTPS only (with http_key)"},
    {"homeserver/http_key", "http-key", SF_CONFIG_PATH, false, NULL, NULL,
     "PEM private key of http_cert (mode 0600)"},
    {"homeserver/events_kept", "events-kept", SF_CONFIG_INT, false, "65536",
     "1..10000000",
     "changes kept for the HTTP change feed and events.read (fabricctl "
     "watch) to resume from, at most 64 MiB of them"},
    {"homeserver/http_max_apply_lag", "http-max-apply-lag", SF_CONFIG_INT,
     false, "1000", "0..100000000",
     "entries committed but not applied past which /health reports a "
     "problem and /ready says catching up"},
    HS_FED_KEYS,
    HS_BALANCE_KEYS,
    SF_PROGRAM_LOG_KEYS,
    {NULL},
};

//  A ring member as configured.
typedef struct {
    char *name;     //  its section name
    raft_id id;     //  raft id
    char *raft;     //  raft endpoint
    char *api;      //  API endpoint, or NULL
    char key [41];  //  public key, Z85
} s_member_t;

struct _hs_server_t {
    char *name;             //  node name
    raft_id id;             //  raft id
    zcert_t *cert;          //  this node's key pair
    zactor_t *zap;          //  ZAP handler: who may open a CURVE session
    api_router_t *api;      //  JSON requests over CURVE
    hs_link_t *link;        //  raft messages to and from the other members
    hs_store_t *store;      //  durable state, until the ring starts
    hs_persist_t *persist;  //  the persistence thread, owning the store
    hs_ring_t *ring;        //  the raft core driver
    hs_fsm_t *fsm;          //  the state machine
    hs_api_t *handler;      //  JSON requests over the ring
    hs_events_t *events;    //  applied changes, published; or NULL
    sf_loop_t *reactor;     //  the actor's loop, made with the server
    hs_http_t *http;        //  HTTP (protocol/http.md), or NULL
    hs_kept_t *kept;        //  the last changes, for clients to resume
    hs_backup_t *backup;    //  online backups (operations.md section 2)
    int backup_timer;       //  writing one, a piece per turn; or 0
    sf_prom_histo_t apply_histo;  //  applying one command
    json_t *figures;              //  this member's last load figures, or NULL
    hs_fed_t *fed;                //  the federation socket; or NULL
    hs_relay_t *relay;            //  claims sent on to peer instances; or NULL
    sf_trace_t *trace;            //  hop records of transfers (trace.md)
    s_member_t *members;          //  configured members (this node included)
    unsigned n_members;
    sf_loop_t *loop;  //  the actor's loop, while it runs
    int timer;        //  loop timer for the ring's next timeout
    unsigned election_timeout_ms;
    uint64_t leader_seen_ms;    //  when a leader was last known
    uint64_t members_asked_ms;  //  when members were last asked (types 9, 10)
    uint64_t holders_asked_ms;  //  when foreign sims' leases were last asked
    uint64_t reported_ms;       //  when this member last reported its load
    double reported_cpu_s;      //  its CPU seconds then
    char *log_path;             //  raft.db, whose size the report gives
};

//  --------------------------------------------------------------------------
//  The ring's I/O: SQLite for durability, the link for messages. The state
//  machine counts commands until the entity tables arrive with the API ops.

static int
s_io_save_term_vote (void *handle, raft_term term, raft_id vote)
{
    hs_server_t *self = (hs_server_t *) handle;
    return hs_persist_save_term_vote (self->persist, term, vote);
}

static void
s_io_append (void *handle, raft_index index, const struct raft_entry *entries,
             unsigned n)
{
    //  The persistence thread makes it durable (with whatever else it is
    //  handed meanwhile: group commit) and reports it; the loop goes on.
    hs_persist_append (((hs_server_t *) handle)->persist, index, entries, n);
}

static void
s_io_send (void *handle, const struct raft_message *message)
{
    hs_link_send (((hs_server_t *) handle)->link, message);
}

static void
s_io_send_digest (void *handle, raft_id to, raft_index index,
                  const uint8_t *digest)
{
    hs_link_send_digest (((hs_server_t *) handle)->link, to, index, digest);
}

static int s_handle_forward (sf_loop_t *loop, zsock_t *reader, void *arg);

//  The raft link's, the divergence detector's and the ZAP handler's
//  counters, for the op "counters".
static void
s_counters (void *context, json_t *counters)
{
    hs_server_t *self = (hs_server_t *) context;
    const hs_link_counters_t *link = hs_link_counters (self->link);
    //  The replica digest (raft-wire.md section 4): its first 6 bytes as
    //  an integer that any JSON reader holds exactly.
    const hs_ring_digest_counters_t *digests =
        hs_ring_digest_counters (self->ring);
    raft_index digest_index = 0;
    uint8_t digest [HS_RING_DIGEST_SIZE];
    uint64_t digest_head = 0;
    if (hs_ring_digest (self->ring, &digest_index, digest))
        for (unsigned at = 0; at < 6; at++)
            digest_head = (digest_head << 8) | digest [at];
    const struct {
        const char *name;
        uint64_t value;
    } values [] = {
        {"raft_sent", link->sent},
        {"raft_send_dropped", link->send_dropped},
        {"raft_received", link->received},
        {"raft_malformed", link->malformed},
        {"raft_impostor", link->impostor},
        {"raft_handshakes_refused", link->refused},
        {"ring_digest_index", digest_index},
        {"ring_digest_head", digest_head},
        {"ring_digest_compared", digests->compared},
        {"ring_digest_mismatches", digests->mismatches},
        {"ring_diverged_from", digests->mismatch_member},
        {"ring_diverged_at", digests->mismatch_index},
        {"zap_refused", sf_zap_refused (self->zap)},
        {"grants_signed", hs_fsm_signed_grants (self->fsm)},
        {"events_published",
         self->events ? hs_events_published (self->events) : 0},
    };
    for (size_t at = 0; at < sizeof values / sizeof values [0]; at++)
        json_object_set_new (counters, values [at].name,
                             json_integer ((json_int_t) values [at].value));
    if (self->fed)
        hs_fed_counters (self->fed, counters);
    if (self->relay)
        hs_relay_counters (self->relay, counters);
}

//  How often the leader asks about the foreign sims holding entities.
#define S_HOLDERS_ASK_MS 5000

//  A foreign sim whose instance is asked about its lease.
typedef struct {
    hs_server_t *server;
    char name [64 + 2 + SF_NAME_MAX_INSTANCE];
} s_asked_t;

//  A caller waiting for a foreign name's key.
typedef struct {
    hs_server_t *server;
    api_call_t *call;
    char kind [8];
} s_foreign_t;

static void
s_foreign_answered (void *arg, const json_t *entry, const sf_fault_t *fault)
{
    s_foreign_t *asked = (s_foreign_t *) arg;
    if (entry) {
        json_t *result = json_pack ("{s:O,s:O}", asked->kind,
                                    json_object_get (entry, "name"), "key",
                                    json_object_get (entry, "key"));
        api_router_reply (asked->server->api, &asked->call, result);
        json_decref (result);
    }
    else
        api_router_fail (asked->server->api, &asked->call, fault->error,
                         fault->message);
    free (asked);
}

//  A request naming KIND's NAME@INSTANCE (a player, or an entity's path):
//  this instance's own names are the ring's (the request goes on with the
//  bare name); a player is asked of its instance (hs_fed_lookup), and an
//  entity's claim is sent on to its home (hs_relay).
static void
s_foreign (void *context, api_call_t **call, const char *kind, const char *name)
{
    hs_server_t *self = (hs_server_t *) context;
    const char *at = strrchr (name, '@');
    if (at && streq (at + 1, hs_fed_instance (self->fed))) {
        char local [SF_NAME_MAX_PATH + 1];
        snprintf (local, sizeof local, "%.*s", (int) (at - name), name);
        char principal [SF_CERT_KEY_TEXT + 1];
        snprintf (principal, sizeof principal, "%s",
                  api_call_principal (*call));
        json_t *request = json_deep_copy (api_call_request (*call)->root);
        json_object_set_new (request,
                             streq (kind, "player") ? "player" : "path",
                             json_string (local));
        sf_fault_t fault;
        if (api_call_rewrite (*call, request, principal, &fault))
            api_router_fail (self->api, call, fault.error, fault.message);
        json_decref (request);
        return;
    }
    if (streq (kind, "path") || streq (kind, "read")
        || streq (kind, "checkpoint") || streq (kind, "release")) {
        if (streq (kind, "path"))
            hs_relay_claim (self->relay, *call, sf_time_mono_ms ());
        else if (streq (kind, "read"))
            hs_relay_read (self->relay, *call, sf_time_mono_ms ());
        else if (streq (kind, "checkpoint"))
            hs_relay_checkpoint (self->relay, *call, sf_time_mono_ms ());
        else
            hs_relay_release (self->relay, *call, sf_time_mono_ms ());
        *call = NULL;
        return;
    }
    s_foreign_t *asked = (s_foreign_t *) zmalloc (sizeof (s_foreign_t));
    asked->server = self;
    asked->call = *call;
    *call = NULL;
    snprintf (asked->kind, sizeof asked->kind, "%s", kind);
    hs_fed_lookup (self->fed, kind, name, sf_time_mono_ms (),
                   s_foreign_answered, asked);
}

//  A peer instance's request of the ring (fed.claim, fed.fenced,
//  fed.withdraw, fed.read). A fence
//  names this instance's sim, and maybe its new authority, as
//  NAME@HERE: the ring knows them by their bare names.
static void
s_fed_write (void *arg, api_call_t *call, const char *instance)
{
    hs_server_t *self = (hs_server_t *) arg;
    const json_t *args = api_call_request (call)->root;
    //  A read of this instance's entity (federation.md section 7): served
    //  as the same read from any client, linearizable.
    if (streq (api_call_request (call)->op, "fed.read")) {
        const char *path = json_string_value (json_object_get (args, "path"));
        json_t *read = json_pack ("{s:s,s:O,s:s?}", "op", "entity.get", "id",
                                  json_object_get (args, "id"), "path", path);
        char principal [SF_CERT_KEY_TEXT + 1];
        snprintf (principal, sizeof principal, "%s", api_call_principal (call));
        sf_fault_t fault;
        int rc = path && !strchr (path, '@')
                     ? api_call_rewrite (call, read, principal, &fault)
                     : sf_fault_set (&fault, SF_EINVAL,
                                     "fed.read needs a path of this "
                                     "instance's");
        json_decref (read);
        if (rc)
            api_router_fail (self->api, &call, fault.error, fault.message);
        else
            hs_api_handle (self->handler, call, sf_time_mono_ms ());
        return;
    }
    if (streq (api_call_request (call)->op, "fed.fenced")) {
        const char *here = hs_fed_instance (self->fed);
        json_t *request = json_deep_copy (args);
        static const char *const fields [] = {"sim", "authority", NULL};
        for (const char *const *field = fields; *field; field++) {
            const char *name =
                json_string_value (json_object_get (request, *field));
            char local [65], named [SF_NAME_MAX_INSTANCE + 1];
            bool ours = name && sf_name_split (name, local, named)
                        && streq (named, here);
            if (ours)
                json_object_set_new (request, *field, json_string (local));
            else if (streq (*field, "sim")) {
                json_decref (request);
                api_router_fail (self->api, &call, SF_EINVAL,
                                 "fed.fenced names a sim of this instance, "
                                 "NAME@HERE, in 'sim'");
                return;
            }
        }
        char principal [SF_CERT_KEY_TEXT + 1];
        snprintf (principal, sizeof principal, "%s", api_call_principal (call));
        sf_fault_t fault;
        int rc = api_call_rewrite (call, request, principal, &fault);
        json_decref (request);
        if (rc) {
            api_router_fail (self->api, &call, fault.error, fault.message);
            return;
        }
    }
    hs_api_submit_peer (self->handler, call, instance, sf_time_mono_ms ());
}

//  A fence sent to a peer instance came to REPLY or FAULT: only logged;
//  a fence lost is found by the sim's own check (federation.md 6).
static void
s_fence_sent (void *arg, const json_t *reply, const char *member,
              const sf_fault_t *fault)
{
    (void) reply, (void) member;
    char *what = (char *) arg;
    if (fault)
        sf_log_warning ("hs_server: fed.fenced of %s not delivered: %s", what,
                        fault->message);
    free (what);
}

//  RESULT (one item) took an entity from another instance's sim: that
//  sim's instance is told (fed.fenced), so the sim stops and hands its
//  state to the new authority, whose key and endpoint go with it.
static void
s_fence_one (hs_server_t *self, const json_t *result)
{
    const char *path = json_string_value (json_object_get (result, "path"));
    const char *previous =
        json_string_value (json_object_get (result, "previous"));
    const char *authority =
        json_string_value (json_object_get (result, "authority"));
    json_int_t epoch = json_integer_value (json_object_get (result, "epoch"));
    const char *at = previous ? strchr (previous, '@') : NULL;
    if (!path || !at || !epoch
        || !json_is_true (json_object_get (result, "granted"))
        || (authority && streq (authority, previous)))
        return;
    json_t *fence = json_pack ("{s:s,s:s,s:I,s:s}", "op", "fed.fenced", "path",
                               path, "epoch", epoch, "sim", previous);
    if (authority) {
        char global [64 + 2 + SF_NAME_MAX_INSTANCE];
        snprintf (global, sizeof global, "%s%s%s", authority,
                  strchr (authority, '@') ? "" : "@",
                  strchr (authority, '@') ? "" : hs_fed_instance (self->fed));
        json_object_set_new (fence, "authority", json_string (global));
        sf_fault_t fault;
        json_t *entry = hs_fsm_lookup (self->fsm, "sim", authority, &fault);
        if (entry) {
            json_object_set (fence, "key", json_object_get (entry, "key"));
            if (json_object_get (entry, "handoff"))
                json_object_set (fence, "handoff",
                                 json_object_get (entry, "handoff"));
        }
        json_decref (entry);
    }
    hs_fed_call (self->fed, at + 1, &fence, 1000, 10000, sf_time_mono_ms (),
                 s_fence_sent,
                 zsys_sprintf ("%s at epoch %lld", path, (long long) epoch));
}

static void
s_fence_foreign (hs_server_t *self, const json_t *result)
{
    const json_t *items = json_object_get (result, "results");
    if (!json_is_array (items)) {
        s_fence_one (self, result);
        return;
    }
    size_t index;
    const json_t *item;
    json_array_foreach (items, index, item)
    {
        s_fence_one (self, item);
    }
}

static int
s_sim_lease (void *arg, uint64_t heartbeat_ms, sf_fault_t *fault)
{
    hs_server_t *self = (hs_server_t *) arg;
    return hs_api_sim_lease (self->handler, heartbeat_ms, sf_time_mono_ms (),
                             fault);
}

//  A sim expiry told to a peer instance came to REPLY or FAULT: only
//  logged; a push lost is made up for by that instance's own asking.
static void
s_expiry_sent (void *arg, const json_t *reply, const char *member,
               const sf_fault_t *fault)
{
    (void) reply, (void) member;
    char *what = (char *) arg;
    if (fault)
        sf_log_warning ("hs_server: fed.expired of %s not delivered: %s", what,
                        fault->message);
    free (what);
}

//  This ring expired its sim NAME: every peer instance orphans what the
//  sim holds there (federation.md section 6, the push).
static void
s_expired_foreign (hs_server_t *self, const char *name)
{
    json_t *instances = hs_fed_peer_instances (self->fed);
    size_t index;
    json_t *instance;
    json_array_foreach (instances, index, instance)
    {
        json_t *told = json_pack ("{s:s,s:s++}", "op", "fed.expired", "sim",
                                  name, "@", hs_fed_instance (self->fed));
        hs_fed_call (
            self->fed, json_string_value (instance), &told, 1000, 10000,
            sf_time_mono_ms (), s_expiry_sent,
            zsys_sprintf ("%s to %s", name, json_string_value (instance)));
    }
    json_decref (instances);
}

//  A peer instance answered whether foreign sim NAME's lease holds: one
//  it says expired, or does not know, is expired here (fed.expired).
static void
s_holder_checked (void *arg, const json_t *reply, const char *member,
                  const sf_fault_t *fault)
{
    (void) member;
    s_asked_t *asked = (s_asked_t *) arg;
    hs_server_t *self = asked->server;
    const char *lease = json_string_value (json_object_get (reply, "lease"));
    if ((lease && streq (lease, "expired"))
        || (!reply && fault->error == SF_ENOTFOUND)) {
        sf_log_notice ("hs_server: %s's instance %s: orphaning what it "
                       "holds here",
                       asked->name,
                       lease ? "says its lease expired" : "does not know it");
        //  Submitted by the caller, with the loop turn's other writes.
        hs_api_submit_own (self->handler, "fed.expired",
                           json_pack ("{s:s}", "sim", asked->name));
    }
    free (asked);
}

//  On the leader, every few seconds: ask the instance of each foreign sim
//  holding an entity here whether its lease there holds (federation.md
//  section 6, the pull).
static void
s_ask_holders (hs_server_t *self, uint64_t now)
{
    if (now - self->holders_asked_ms < S_HOLDERS_ASK_MS)
        return;
    self->holders_asked_ms = now;
    json_t *holders = hs_fsm_foreign_holders (self->fsm);
    //  Only configured instances: a not_found must be the instance's own
    //  word that it does not know the sim, never "no such instance here".
    json_t *peers = hs_fed_peer_instances (self->fed);
    size_t index;
    json_t *holder;
    json_array_foreach (holders, index, holder)
    {
        const char *name = json_string_value (holder);
        const char *at = strrchr (name, '@');
        bool known = false;
        size_t peer;
        json_t *instance;
        json_array_foreach (peers, peer, instance)
        {
            known =
                known || (at && streq (json_string_value (instance), at + 1));
        }
        if (!known || strlen (name) >= sizeof ((s_asked_t *) 0)->name)
            continue;
        s_asked_t *asked = (s_asked_t *) zmalloc (sizeof (s_asked_t));
        asked->server = self;
        snprintf (asked->name, sizeof asked->name, "%s", name);
        json_t *ask = json_pack ("{s:s,s:s,s:s,s:b}", "op", "fed.lookup",
                                 "name", name, "kind", "sim", "lease", 1);
        hs_fed_call (self->fed, at + 1, &ask, 1000, 3000, now, s_holder_checked,
                     asked);
    }
    json_decref (holders);
    json_decref (peers);
}

//  What fed.status tells a peer instance of this member: its role and
//  whom it follows (federation.md section 3).
static json_t *
s_fed_status (void *arg)
{
    hs_server_t *self = (hs_server_t *) arg;
    raft_id leader = hs_ring_leader (self->ring, NULL);
    const char *leader_name = leader == self->id ? self->name : NULL;
    for (unsigned at = 0; at < self->n_members && !leader_name; at++)
        if (leader && self->members [at].id == leader)
            leader_name = self->members [at].name;
    return json_pack (
        "{s:s,s:o,s:I}", "role", hs_ring_role_name (hs_ring_role (self->ring)),
        "leader", leader_name ? json_string (leader_name) : json_null (),
        "applied_index", (json_int_t) hs_ring_applied_index (self->ring));
}

//  A member added at run time: reach member ID over raft at RAFT, forward
//  to it at API (NULL: none), admit its KEY.
static void
s_learn_member (hs_server_t *self, raft_id id, const char *name,
                const char *raft, const char *api, const char *key)
{
    if (!id || !name || !raft || !key || id == self->id)
        return;
    if (!hs_link_knows (self->link, id))
        hs_link_add_peer (self->link, id, raft, key);
    if (self->handler) {
        zsock_t *dealer =
            hs_api_add_member (self->handler, name, id, api, raft, key);
        if (dealer && self->loop)
            sf_loop_reader (self->loop, dealer, s_handle_forward, self);
    }
}

//  Member ID left the ring: refuse its key on the raft link and for
//  ring.forward, and close the sockets to it. Never this node itself.
static void
s_forget_member (hs_server_t *self, raft_id id)
{
    if (id == self->id)
        return;
    bool known = hs_link_knows (self->link, id);
    hs_link_remove_peer (self->link, id);
    zsock_t *dealer =
        self->handler ? hs_api_remove_member (self->handler, id) : NULL;
    if (dealer && self->loop)
        sf_loop_reader_end (self->loop, dealer);
    zsock_destroy (&dealer);
    if (known)
        sf_log_notice ("hs_server: member %llu left the ring: its key is "
                       "no longer admitted",
                       (unsigned long long) id);
}

//  The same, from MEMBER's fields as cluster.add names them.
static void
s_learn (hs_server_t *self, const json_t *member)
{
    s_learn_member (
        self,
        (raft_id) json_integer_value (json_object_get (member, "raft_id")),
        json_string_value (json_object_get (member, "name")),
        json_string_value (json_object_get (member, "raft")),
        json_string_value (json_object_get (member, "api")),
        json_string_value (json_object_get (member, "key")));
}

//  True if ID is in a configuration change among STATE's entries from
//  FROM on.
static bool
s_in_log_configuration (const hs_ring_state_t *state, unsigned from, raft_id id)
{
    bool found = false;
    for (unsigned at = from; at < state->n_entries && !found; at++) {
        struct raft_configuration decoded;
        raft_configuration_init (&decoded);
        if (state->entries [at].type == RAFT_CHANGE
            && raft_msg_conf_decode (&state->entries [at].buf, &decoded) == 0)
            found = hs_fsm_configured (&decoded, id);
        raft_configuration_close (&decoded);
    }
    return found;
}

//  Membership as the log tail leaves it, before any of it is applied:
//  after a restart the entries past the snapshot are applied only once a
//  leader has told us the commit index, and that leader may be a member
//  added in them. Its handshakes are refused until its key is admitted,
//  so it is admitted now. An entry not yet committed came from a leader
//  of ours all the same; the raft core, not the link, decides who votes.
//  A member the log (or the snapshot's state) shows leaving the latest
//  configuration is not admitted, even if the configuration file names
//  it. Called once the ring has started, so its configuration is the
//  log's latest.
static void
s_learn_from_log (hs_server_t *self, const hs_ring_state_t *state)
{
    const struct raft_configuration *latest =
        hs_ring_configuration (self->ring);
    if (latest->n > 0) {
        raft_id ids [RAFT_MSG_MAX_MEMBERS];
        unsigned n = hs_link_peer_ids (self->link, ids, RAFT_MSG_MAX_MEMBERS);
        for (unsigned at = 0; at < n; at++)
            if (!hs_fsm_configured (latest, ids [at])
                && (hs_fsm_member_removed (self->fsm, ids [at])
                    || hs_fsm_configured (
                        hs_ring_applied_configuration (self->ring), ids [at])
                    || s_in_log_configuration (state, 0, ids [at])))
                s_forget_member (self, ids [at]);
    }
    //  The last configuration change in the tail: a member added before
    //  it and not in the latest configuration left again.
    unsigned last_change = state->n_entries;
    for (unsigned at = 0; at < state->n_entries; at++)
        if (state->entries [at].type == RAFT_CHANGE)
            last_change = at;
    for (unsigned at = 0; at < state->n_entries; at++) {
        const struct raft_entry *entry = &state->entries [at];
        char op [RING_CMD_MAX_OP + 1];
        ring_cmd_t cmd;
        if (entry->type != RAFT_COMMAND
            || ring_cmd_peek_op (entry->buf.base, entry->buf.len, op)
            || strcmp (op, "cluster.add") != 0
            || ring_cmd_decode (&cmd, entry->buf.base, entry->buf.len))
            continue;
        const char *key = json_string_value (json_object_get (cmd.args, "key"));
        raft_id id = (raft_id) json_integer_value (
            json_object_get (cmd.args, "raft_id"));
        bool left = last_change < state->n_entries && at < last_change
                    && !hs_fsm_configured (latest, id);
        if (cmd.admin && key && sf_cert_key_valid (key) && !left) {
            sf_log_info (
                "hs_server: member %s admitted from the log",
                json_string_value (json_object_get (cmd.args, "name")));
            s_learn (self, cmd.args);
        }
        ring_cmd_release (&cmd);
    }
}

//  Every member the state machine knows of.
static void
s_learn_all (hs_server_t *self)
{
    json_t *members = hs_fsm_members (self->fsm);
    size_t at;
    json_t *member;
    json_array_foreach (members, at, member) s_learn (self, member);
    json_decref (members);
}

//  What applying a command did, for the replica digest (raft-wire.md
//  section 4): BLAKE2b-16 of the error's wire code, the last change's index
//  and the result as sorted, compact JSON, into OUTCOME.
static void
s_outcome (const json_t *result, const sf_fault_t *fault,
           raft_index last_change, uint8_t *outcome)
{
    const char *code = sf_error_code (result ? SF_OK : fault->error);
    size_t code_size = strlen (code);
    uint8_t fixed [2 + 8];
    fixed [0] = (uint8_t) (code_size >> 8);
    fixed [1] = (uint8_t) code_size;
    for (unsigned at = 0; at < 8; at++)
        fixed [2 + at] = (uint8_t) (last_change >> (56 - 8 * at));
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, HS_RING_DIGEST_SIZE);
    crypto_generichash_update (&state, fixed, 2);
    crypto_generichash_update (&state, (const unsigned char *) code, code_size);
    crypto_generichash_update (&state, fixed + 2, 8);
    char *text = result ? json_dumps (result, JSON_COMPACT | JSON_SORT_KEYS
                                                  | JSON_ENCODE_ANY)
                        : NULL;
    if (text)
        crypto_generichash_update (&state, (const unsigned char *) text,
                                   strlen (text));
    free (text);
    crypto_generichash_final (&state, outcome, HS_RING_DIGEST_SIZE);
}

//  Keep the change OP made with RESULT at INDEX (hs_kept), and send it
//  to the HTTP feed's streams.
static void
s_keep (hs_server_t *self, raft_index index, raft_index prev, const char *op,
        const json_t *result)
{
    char *topic = hs_events_topic (op, result);
    json_t *body = hs_events_body (index, prev, op, result, self->name);
    json_object_set_new (body, "topic", json_string (topic));
    char *text = sf_json_text (body);
    json_decref (body);
    hs_kept_add (self->kept, index, prev, op, topic, text);
    free (text);
    free (topic);
    size_t count = hs_kept_count (self->kept);
    const hs_kept_change_t *kept = hs_kept_at (self->kept, count - 1);
    if (self->http && kept && kept->index == index)
        hs_http_change (self->http, kept);
}

static void
s_io_apply (void *handle, raft_index index, raft_term term,
            const struct raft_buffer *command, uint8_t *outcome)
{
    hs_server_t *self = (hs_server_t *) handle;
    sf_fault_t fault;
    sf_fault_clear (&fault);
    raft_index prev = hs_fsm_last_change (self->fsm);
    uint64_t started_us = sf_time_mono_us ();
    json_t *result =
        hs_fsm_apply (self->fsm, index, command->base, command->len, &fault);
    sf_prom_histo_observe (&self->apply_histo, sf_time_mono_us () - started_us);
    //  Before anything else reads or adds to the result.
    s_outcome (result, &fault, hs_fsm_last_change (self->fsm), outcome);
    //  Only a change is published (a command answered without one leaves
    //  the last change where it was), and only if someone listens.
    bool publish = result && self->events
                   && hs_fsm_last_change (self->fsm) == index
                   && hs_events_wanted (self->events);
    char op [RING_CMD_MAX_OP + 1];
    bool named =
        result && ring_cmd_peek_op (command->base, command->len, op) == 0;
    //  Every change is kept, as applied (without the grants made below
    //  for the ZeroMQ feed's sims), for the HTTP feed and events.read.
    if (named && hs_fsm_last_change (self->fsm) == index)
        s_keep (self, index, prev, op, result);
    //  Its grants are made only where they leave this member, and signed
    //  only for a client (grants.md section 3): events carry them
    //  unsigned. A member nobody follows, with no client waiting, pays
    //  for neither. A balancer's move has no client: its target takes
    //  the grants from the event, signed (one signature per move), or
    //  would ask the ring for each.
    if (publish)
        hs_fsm_make_grants (self->fsm, result,
                            named && streq (op, "balance.move"));
    if (named) {
        if (publish) {
            //  Stamped before it goes: a subscriber may act on it before
            //  this thread runs again.
            json_t *transfer = json_object_get (result, "transfer");
            if (json_is_integer (transfer))
                sf_trace_transfer (
                    self->trace, (uint64_t) json_integer_value (transfer),
                    "event", true, "subscribers", sf_time_wall_us ());
            hs_events_publish (self->events, index, prev, op, result);
        }
        if (strcmp (op, "cluster.add") == 0)
            s_learn (self, result);
        if (self->handler && streq (op, "balance.move"))
            hs_api_balance_applied (self->handler, result, index);
        //  A key that changed here is pushed to the peer instances by the
        //  leader (federation.md section 4).
        if (self->fed && hs_fsm_last_change (self->fsm) == index
            && (streq (op, "player.register") || streq (op, "sim.register"))
            && hs_ring_role (self->ring) == HS_RING_LEADER) {
            const char *kind = streq (op, "sim.register") ? "sim" : "player";
            const char *name =
                json_string_value (json_object_get (result, kind));
            const char *key =
                json_string_value (json_object_get (result, "key"));
            if (name && key)
                hs_fed_push_key (self->fed, kind, name, key);
        }
        //  A sim of this instance's expired: its other homes are told.
        if (self->fed && hs_fsm_last_change (self->fsm) == index
            && hs_ring_role (self->ring) == HS_RING_LEADER
            && streq (op, "sim.expire")) {
            const char *name =
                json_string_value (json_object_get (result, "sim"));
            if (name && !strchr (name, '@'))
                s_expired_foreign (self, name);
        }
        //  Only this ring's own grants fence: a recorded outcome of a
        //  claim elsewhere (fed.outcome) names another home's entity.
        if (self->fed && hs_fsm_last_change (self->fsm) == index
            && hs_ring_role (self->ring) == HS_RING_LEADER
            && (streq (op, "authority.request") || streq (op, "fed.claim")
                || streq (op, "authority.answer")))
            s_fence_foreign (self, result);
    }
    if (result && self->handler && hs_api_awaits (self->handler, index))
        hs_fsm_make_grants (self->fsm, result, true);
    if (self->handler)
        hs_api_applied (self->handler, index, term, result, &fault);
    json_decref (result);
}

//  A committed configuration change, applied in log order: the members
//  table follows it (hs_fsm), and every member that left it is forgotten.
static void
s_io_apply_change (void *handle, raft_index index,
                   const struct raft_configuration *previous,
                   const struct raft_configuration *next)
{
    hs_server_t *self = (hs_server_t *) handle;
    hs_fsm_configuration_applied (self->fsm, index, previous, next);
    for (unsigned at = 0; at < previous->n; at++) {
        raft_id id = previous->servers [at].id;
        if (!hs_fsm_configured (next, id))
            s_forget_member (self, id);
    }
}

//  A committed configuration is in force (also one restored from a
//  snapshot, whose state machine says who was removed before it): forget
//  the peers the state machine records as removed.
static void
s_io_configuration (void *handle,
                    const struct raft_configuration *configuration)
{
    (void) configuration;
    hs_server_t *self = (hs_server_t *) handle;
    raft_id ids [RAFT_MSG_MAX_MEMBERS];
    unsigned n = hs_link_peer_ids (self->link, ids, RAFT_MSG_MAX_MEMBERS);
    for (unsigned at = 0; at < n; at++)
        if (hs_fsm_member_removed (self->fsm, ids [at]))
            s_forget_member (self, ids [at]);
}

static int
s_io_snapshot_take (void *handle, struct raft_buffer *data)
{
    return hs_fsm_snapshot (((hs_server_t *) handle)->fsm, data);
}

static int
s_io_snapshot_save (void *handle, const struct raft_snapshot_metadata *metadata,
                    const struct raft_buffer *data, raft_index keep_from)
{
    hs_server_t *self = (hs_server_t *) handle;
    //  In order after the entries handed before it.
    return hs_persist_snapshot_save (self->persist, metadata, data, keep_from);
}

static int
s_io_snapshot_restore (void *handle, raft_index index,
                       const struct raft_buffer *data)
{
    hs_server_t *self = (hs_server_t *) handle;
    if (hs_fsm_restore (self->fsm, data))
        return -1;
    //  The image's last command must not be newer than the snapshot's
    //  index: a mismatch would apply commands twice.
    if (hs_fsm_applied (self->fsm) > index)
        sf_log_error ("hs_server: snapshot image holds commands up to %llu "
                      "but claims index %llu",
                      (unsigned long long) hs_fsm_applied (self->fsm),
                      (unsigned long long) index);
    s_learn_all (self);
    return 0;
}

//  hs_api's read probes go out over the raft link.
static void
s_send_probe (void *context, raft_id to, raft_term term, uint64_t seq)
{
    hs_server_t *self = (hs_server_t *) context;
    hs_link_send_probe (self->link, to, RAFT_MSG_READ_PROBE, term, seq);
}

static int s_handle_timer (sf_loop_t *loop, int timer_id, void *arg);

//  After every call into the ring: report durable writes, re-arm the timer.
static void
s_after_ring (hs_server_t *self)
{
    uint64_t now = sf_time_mono_ms ();
    if (self->handler)
        hs_api_progress (self->handler, now);
    if (!self->loop)
        return;
    if (self->timer > 0)
        sf_loop_timer_end (self->loop, self->timer);
    uint64_t due = hs_ring_timeout (self->ring);
    size_t delay = due > now ? (size_t) (due - now) : 0;
    self->timer = sf_loop_timer (self->loop, delay, 1, s_handle_timer, self);
}

static int
s_handle_timer (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    hs_server_t *self = (hs_server_t *) arg;
    self->timer = 0;
    hs_ring_tick (self->ring, sf_time_mono_ms ());
    s_after_ring (self);
    return 0;
}

//  raft-wire.md types 9 and 10: no leader known for two election
//  timeouts, maybe because it is a member added while we were down, whose
//  key we do not have: ask every member we know, once a second, whom they
//  know.
static void
s_ask_members (hs_server_t *self, uint64_t now)
{
    if (hs_ring_leader (self->ring, NULL)
        || hs_ring_role (self->ring) == HS_RING_LEADER) {
        self->leader_seen_ms = now;
        return;
    }
    if (now - self->leader_seen_ms < 2 * (uint64_t) self->election_timeout_ms
        || now - self->members_asked_ms < 1000)
        return;
    self->members_asked_ms = now;
    raft_id ids [RAFT_MSG_MAX_MEMBERS];
    unsigned n = hs_link_peer_ids (self->link, ids, RAFT_MSG_MAX_MEMBERS);
    for (unsigned at = 0; at < n; at++)
        hs_link_send_members (self->link, ids [at], RAFT_MSG_MEMBERS_QUERY,
                              NULL, 0);
}

//  Fill MEMBER's fields; false if one is missing or does not fit.
static bool
s_member_fill (raft_msg_member_t *member, const char *name, const char *raft,
               const char *api, const char *key)
{
    if (!name || !raft || !key || strlen (name) > RAFT_MSG_MAX_NAME
        || strlen (raft) > RAFT_MSG_MAX_ADDRESS
        || (api && strlen (api) > RAFT_MSG_MAX_ADDRESS)
        || strlen (key) != RAFT_MSG_KEY_SIZE)
        return false;
    strcpy (member->name, name);
    strcpy (member->raft, raft);
    strcpy (member->api, api ? api : "");
    strcpy (member->key, key);
    return true;
}

//  Fill MEMBER (whose id is set) from what we know of it: an applied
//  cluster.add in ADDED, else our config. False if we know no key.
static bool
s_member_known (hs_server_t *self, const json_t *added,
                raft_msg_member_t *member)
{
    for (size_t at = 0; at < json_array_size (added); at++) {
        const json_t *fields = json_array_get (added, at);
        if ((raft_id) json_integer_value (json_object_get (fields, "raft_id"))
            == member->id)
            return s_member_fill (
                member, json_string_value (json_object_get (fields, "name")),
                json_string_value (json_object_get (fields, "raft")),
                json_string_value (json_object_get (fields, "api")),
                json_string_value (json_object_get (fields, "key")));
    }
    for (unsigned at = 0; at < self->n_members; at++) {
        const s_member_t *configured = &self->members [at];
        if (configured->id == member->id)
            return s_member_fill (member, configured->name, configured->raft,
                                  configured->api, configured->key);
    }
    return false;
}

//  Answer member TO's MembersQuery: every voter or standby of the ring's
//  configuration whose key we know (from our config, or applied).
static void
s_tell_members (hs_server_t *self, raft_id to)
{
    const struct raft_configuration *configuration =
        hs_ring_configuration (self->ring);
    json_t *added = hs_fsm_members (self->fsm);
    raft_msg_member_t *members = (raft_msg_member_t *) calloc (
        RAFT_MSG_MAX_MEMBERS, sizeof (raft_msg_member_t));
    unsigned n = 0;
    for (unsigned at = 0; at < configuration->n && n < RAFT_MSG_MAX_MEMBERS;
         at++) {
        members [n].id = configuration->servers [at].id;
        if (s_member_known (self, added, &members [n]))
            n++;
    }
    hs_link_send_members (self->link, to, RAFT_MSG_MEMBERS, members, n);
    free (members);
    json_decref (added);
}

//  Member FROM told us MEMBERS: admit those we did not know.
static void
s_learn_members (hs_server_t *self, raft_id from,
                 const raft_msg_member_t *members, unsigned n)
{
    for (unsigned at = 0; at < n; at++) {
        const raft_msg_member_t *member = &members [at];
        if (member->id == self->id || hs_link_knows (self->link, member->id))
            continue;
        //  Our own state says it left the ring (the one telling us is
        //  behind): its word does not bring it back.
        if (hs_fsm_member_removed (self->fsm, member->id))
            continue;
        sf_log_notice ("hs_server: member %s (raft id %llu) admitted on "
                       "member %llu's word",
                       member->name, (unsigned long long) member->id,
                       (unsigned long long) from);
        s_learn_member (self, member->id, member->name, member->raft,
                        member->api [0] ? member->api : NULL, member->key);
    }
}

//  Bytes of FILE and of its write-ahead log (0 if unreadable).
static uint64_t
s_file_bytes (const char *file)
{
    struct stat info;
    uint64_t bytes =
        file && stat (file, &info) == 0 ? (uint64_t) info.st_size : 0;
    char wal [PATH_MAX];
    snprintf (wal, sizeof wal, "%s-wal", file ? file : "");
    if (file && stat (wal, &info) == 0)
        bytes += (uint64_t) info.st_size;
    return bytes;
}

//  Every second: this member's load report (load.md section 2), with
//  what the daemon measures; the API adds the ring's figures and takes it
//  to the leader.
static void
s_report_load (hs_server_t *self, uint64_t now)
{
    if (now - self->reported_ms < 1000 || !self->handler)
        return;
    double cpu_s = sf_time_cpu_s (RUSAGE_SELF);
    double seconds =
        self->reported_ms ? (double) (now - self->reported_ms) / 1e3 : 0;
    json_t *figures =
        json_pack ("{s:f,s:I,s:I}", "cpu_per_s",
                   seconds > 0 ? (cpu_s - self->reported_cpu_s) / seconds : 0.0,
                   "rss_bytes", (json_int_t) sf_time_rss_bytes (), "log_bytes",
                   (json_int_t) s_file_bytes (self->log_path));
    self->reported_ms = now;
    self->reported_cpu_s = cpu_s;
    //  Kept for /metrics; the API completes it.
    json_decref (self->figures);
    self->figures = json_incref (figures);
    hs_api_report_load (self->handler, figures, now);
}

static int
s_handle_link_check (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    hs_server_t *self = (hs_server_t *) arg;
    uint64_t now = sf_time_mono_ms ();
    hs_link_check (self->link, now);
    s_ask_members (self, now);
    s_report_load (self, now);
    if (hs_ring_role (self->ring) == HS_RING_LEADER
        && hs_ring_read_ready (self->ring)) {
        hs_api_balance (self->handler, now);
        hs_api_submit (self->handler, now);
        s_after_ring (self);
    }
    if (self->fed)
        hs_fed_tick (self->fed, now);
    //  None is left from a turn, as a rule.
    if (self->relay)
        hs_relay_send (self->relay, now);
    if (self->relay && hs_ring_role (self->ring) == HS_RING_LEADER
        && hs_ring_read_ready (self->ring)) {
        hs_relay_tick (self->relay, now);
        s_ask_holders (self, now);
        hs_relay_flush (self->relay, now);
        //  What those queued (outcomes; an expiry a peer's answer named
        //  before it came back) goes with one append.
        hs_api_submit (self->handler, now);
        s_after_ring (self);
    }
    return 0;
}

static int
s_handle_raft (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop, (void) reader;
    hs_server_t *self = (hs_server_t *) arg;
    //  Drain what is waiting, then report and re-arm once.
    for (int count = 0;
         count < 256
         && (zsock_events (hs_link_socket (self->link)) & ZMQ_POLLIN);
         count++) {
        raft_msg_t msg;
        if (hs_link_recv (self->link, &msg) != 0)
            continue;
        if (msg.probe == RAFT_MSG_READ_PROBE)
            //  Answer with our own term: the leader counts us only if we
            //  have not moved past its term.
            hs_link_send_probe (self->link, msg.message.server_id,
                                RAFT_MSG_READ_PROBE_ACK,
                                hs_ring_term (self->ring), msg.probe_seq);
        else if (msg.probe == RAFT_MSG_READ_PROBE_ACK)
            hs_api_probe_ack (self->handler, msg.message.server_id,
                              msg.probe_term, msg.probe_seq,
                              sf_time_mono_ms ());
        else if (msg.probe == RAFT_MSG_MEMBERS_QUERY)
            s_tell_members (self, msg.message.server_id);
        else if (msg.probe == RAFT_MSG_DIGEST)
            hs_ring_digest_received (self->ring, msg.message.server_id,
                                     msg.digest_index, msg.digest,
                                     sf_time_mono_ms ());
        else if (msg.probe == RAFT_MSG_MEMBERS) {
            s_learn_members (self, msg.message.server_id, msg.members,
                             msg.n_members);
            raft_msg_release (&msg);
        }
        else
            hs_ring_receive (self->ring, &msg.message, sf_time_mono_ms ());
    }
    s_after_ring (self);
    return 0;
}

//  Read the ring's members from CONFIG. Without any, the ring is this node
//  alone. This node must be among them. Faults name the config file (the
//  only place members are set) and the member.
static int
s_members_load (hs_server_t *self, sf_config_t *config, sf_fault_t *fault)
{
    const char *file = sf_config_filename (config);
    zlist_t *names = sf_config_names (config, "ring/member");
    self->members =
        (s_member_t *) zmalloc ((zlist_size (names) + 1) * sizeof (s_member_t));
    bool found_self = false;
    int rc = 0;
    for (char *name = (char *) zlist_first (names); name && rc == 0;
         name = (char *) zlist_next (names)) {
        s_member_t *member = &self->members [self->n_members++];
        member->name = strdup (name);
        char path [300];
        snprintf (path, sizeof path, "ring/member/%s/id", name);
        member->id = (raft_id) sf_config_int (config, path);
        snprintf (path, sizeof path, "ring/member/%s/raft", name);
        const char *raft = sf_config_str (config, path);
        snprintf (path, sizeof path, "ring/member/%s/key", name);
        const char *key = sf_config_str (config, path);
        if (!member->id || !raft || !key) {
            char missing [32] = "";
            if (!member->id)
                strcat (missing, ", id");
            if (!raft)
                strcat (missing, ", raft");
            if (!key)
                strcat (missing, ", key");
            rc = sf_fault_set (fault, SF_EINVAL,
                               "config %s: ring member '%s' needs id, raft "
                               "and key (missing %s)",
                               file, name, missing + 2);
            break;
        }
        member->raft = strdup (raft);
        snprintf (path, sizeof path, "ring/member/%s/api", name);
        const char *api = sf_config_str (config, path);
        member->api = api ? strdup (api) : NULL;
        sf_fault_t why;
        if (sf_cert_load_public (key, member->key, &why))
            rc = sf_fault_set (fault, why.error,
                               "config %s: ring member '%s': %s", file, name,
                               why.message);
        else if (member->id == self->id) {
            found_self = true;
            if (strcmp (member->key, zcert_public_txt (self->cert)) != 0)
                rc = sf_fault_set (
                    fault, SF_EINVAL,
                    "config %s: ring member '%s' has id %llu (this node) but "
                    "another key than this node's secret_key",
                    file, name, (unsigned long long) member->id);
        }
    }
    //  The names are freed only now: the faults above print them.
    zlist_destroy (&names);
    if (rc == 0 && self->n_members && !found_self
        && !sf_config_bool (config, "homeserver/join"))
        rc = sf_fault_set (fault, SF_EINVAL,
                           "config %s: this node (id %llu) is not among "
                           "ring/member",
                           file, (unsigned long long) self->id);
    return rc;
}

//  Every public certificate in folder DIR is an administrator. Before the
//  API handler exists this only checks that they all load, so a bad folder
//  stops the start before any state is written.
static int
s_admins_load (hs_server_t *self, const char *dir, sf_fault_t *fault)
{
    struct stat info;
    if (stat (dir, &info))
        return sf_fault_set (fault, SF_EINVAL,
                             "cannot read admins folder %s: %s", dir,
                             strerror (errno));
    zdir_t *folder = S_ISDIR (info.st_mode) ? zdir_new (dir, "-") : NULL;
    if (!folder)
        return sf_fault_set (fault, SF_EINVAL,
                             "admins folder %s is not a readable folder", dir);
    zlist_t *files = zdir_list (folder);
    int admitted = 0;
    for (zfile_t *file = (zfile_t *) zlist_first (files); file;
         file = (zfile_t *) zlist_next (files)) {
        const char *path = zfile_filename (file, NULL);
        size_t size = strlen (path);
        if (size < 6 || strcmp (path + size - 5, ".cert") != 0)
            continue;
        char key [SF_CERT_KEY_TEXT + 1];
        if (sf_cert_load_public (path, key, fault)) {
            zlist_destroy (&files);
            zdir_destroy (&folder);
            return -1;
        }
        if (self->handler)
            hs_api_add_admin (self->handler, key);
        admitted++;
    }
    zlist_destroy (&files);
    zdir_destroy (&folder);
    if (self->handler)
        sf_log_info ("hs_server: %d administrator key(s) from %s", admitted,
                     dir);
    return 0;
}

//  Open the store, bootstrap it if new, and start the ring.
static int
s_ring_setup (hs_server_t *self, sf_config_t *config, sf_fault_t *fault)
{
    //  Everything that can be refused is checked, and every socket bound,
    //  before the data folder is touched: a refused start leaves no raft.db
    //  that would bootstrap a ring on the next try.
    self->id = (raft_id) sf_config_int (config, "homeserver/id");
    if (s_members_load (self, config, fault))
        return -1;
    const char *admins = sf_config_str (config, "homeserver/admins");
    if (admins && s_admins_load (self, admins, fault))
        return -1;
    const char *raft = sf_config_str (config, "homeserver/raft");
    self->link = hs_link_new (self->id, self->cert, self->zap);
    for (unsigned at = 0; at < self->n_members; at++)
        if (self->members [at].id != self->id)
            hs_link_add_peer (self->link, self->members [at].id,
                              self->members [at].raft, self->members [at].key);
    if (hs_link_bind (self->link, raft, fault))
        return -1;

    self->fsm = hs_fsm_new (fault);
    self->kept =
        hs_kept_new ((size_t) sf_config_int (config, "homeserver/events_kept"),
                     HS_KEPT_MAX_BYTES);
    if (!self->fsm)
        return -1;
    self->trace = sf_trace_new (self->name, 0);
    if (!self->trace)
        return sf_fault_set (fault, SF_EINTERNAL, "out of memory");
    const char *events = sf_config_str (config, "homeserver/events");
    if (events) {
        self->events = hs_events_new (events, self->cert, self->name, fault);
        if (!self->events)
            return -1;
    }
    const char *data = sf_config_str (config, "homeserver/data");
    if (zsys_dir_create ("%s", data))
        return sf_fault_set (fault, SF_EINVAL, "cannot create data folder %s",
                             data);
    char *path = zsys_sprintf ("%s/raft.db", data);
    self->store = hs_store_new (path, fault);
    self->log_path = path;
    if (!self->store)
        return -1;
    hs_ring_io_t io = {
        .handle = self,
        .save_term_vote = s_io_save_term_vote,
        .append = s_io_append,
        .send = s_io_send,
        .apply = s_io_apply,
        .snapshot_take = s_io_snapshot_take,
        .snapshot_save = s_io_snapshot_save,
        .snapshot_restore = s_io_snapshot_restore,
        .send_digest = s_io_send_digest,
        .apply_change = s_io_apply_change,
        .configuration = s_io_configuration,
    };
    hs_ring_options_t options = {
        .election_timeout_ms =
            (unsigned) sf_config_int (config, "homeserver/election_timeout"),
        .heartbeat_timeout_ms =
            (unsigned) sf_config_int (config, "homeserver/heartbeat"),
        .snapshot_threshold =
            (unsigned) sf_config_int (config, "homeserver/snapshot_threshold"),
        .snapshot_trailing =
            (unsigned) sf_config_int (config, "homeserver/snapshot_trailing"),
        .seed =
            (unsigned) (sf_time_wall_ms () ^ (uint64_t) getpid () ^ self->id),
    };
    self->election_timeout_ms = options.election_timeout_ms;
    self->leader_seen_ms = sf_time_mono_ms ();
    //  The address in the configuration is the one peers dial.
    self->ring =
        hs_ring_new (self->id, hs_link_endpoint (self->link), &io, &options);
    bool join = sf_config_bool (config, "homeserver/join");
    if (hs_store_empty (self->store) && join)
        sf_log_notice ("hs_server: joining an existing ring: waiting for its "
                       "leader (cluster.add)");
    else if (hs_store_empty (self->store)) {
        //  A new ring: every initial member writes the same first entry.
        struct raft_configuration configuration;
        raft_configuration_init (&configuration);
        if (self->n_members == 0)
            raft_configuration_add (&configuration, self->id,
                                    hs_link_endpoint (self->link), RAFT_VOTER);
        for (unsigned at = 0; at < self->n_members; at++)
            raft_configuration_add (&configuration, self->members [at].id,
                                    self->members [at].raft, RAFT_VOTER);
        hs_ring_state_t bootstrap;
        int rc = hs_ring_bootstrap_state (&configuration, &bootstrap);
        raft_configuration_close (&configuration);
        if (rc || hs_store_append (self->store, 1, bootstrap.entries, 1, fault)
            || hs_store_save_term_vote (self->store, 1, 0, fault)) {
            hs_ring_state_release (&bootstrap);
            return sf_fault_set (fault, SF_ESTORE, "cannot bootstrap the ring");
        }
        hs_ring_state_release (&bootstrap);
        sf_log_notice ("hs_server: bootstrapped a ring of %u member(s)",
                       self->n_members ? self->n_members : 1);
    }
    hs_ring_state_t state;
    if (hs_store_load (self->store, &state, fault))
        return -1;
    //  From here the store belongs to the persistence thread.
    self->persist = hs_persist_new (&self->store);
    int rc = hs_ring_start (self->ring, &state, sf_time_mono_ms (), fault);
    if (rc == 0)
        s_learn_from_log (self, &state);
    hs_store_state_release (&state);
    if (rc)
        return -1;

    self->handler = hs_api_new (self->name, self->id, self->ring, self->fsm,
                                self->api, self->cert);
    hs_api_set_prober (self->handler, s_send_probe, self);
    hs_api_set_trace (self->handler, self->trace);
    hs_api_set_counters (self->handler, s_counters, self);
    hs_api_set_ask_timeout (
        self->handler,
        (uint64_t) sf_config_int (config, "homeserver/ask_timeout"));
    hs_api_set_registration_open (
        self->handler,
        streq (sf_config_str (config, "homeserver/registration"), "open"));
    hs_api_set_sim_lease (
        self->handler,
        (uint64_t) sf_config_int (config, "homeserver/sim_lease"),
        (uint64_t) sf_config_int (config, "homeserver/heartbeat"));
    hs_balance_config_t balance = {
        .enabled = sf_config_bool (config, "balance/enabled"),
        .band = (double) sf_config_int (config, "balance/band") / 100.0,
        .interval_ms = (uint64_t) sf_config_int (config, "balance/interval"),
        .moves_per_s = (double) sf_config_int (config, "balance/moves_per_s"),
        .settle_ms = (uint64_t) sf_config_int (config, "balance/settle_ms"),
        .ask_timeout_ms =
            (uint64_t) sf_config_int (config, "balance/ask_timeout_ms"),
        .entity_cost =
            (double) sf_config_int (config, "balance/entity_cost_us") / 1e6,
        .update_cost =
            (double) sf_config_int (config, "balance/update_cost_us") / 1e6,
    };
    hs_api_set_balance (self->handler, &balance);
    //  Configured members the ring removed are not members any more.
    for (unsigned at = 0; at < self->n_members; at++) {
        s_member_t *member = &self->members [at];
        if (member->id == self->id || hs_link_knows (self->link, member->id))
            hs_api_add_member (self->handler, member->name, member->id,
                               member->api, member->raft, member->key);
    }
    if (self->n_members == 0)
        hs_api_add_member (self->handler, self->name, self->id, NULL,
                           hs_link_endpoint (self->link),
                           zcert_public_txt (self->cert));
    if (admins && s_admins_load (self, admins, fault))
        return -1;
    s_learn_all (self);
    return 0;
}

uint64_t
hs_server_restore (sf_config_t *config, const char *file, sf_fault_t *fault)
{
    hs_server_t self = {0};
    uint64_t index = 0;
    hs_fsm_t *fsm = NULL;
    hs_store_t *store = NULL;
    json_t *members = NULL;
    struct raft_buffer image = {0}, state = {0};
    self.id = (raft_id) sf_config_int (config, "homeserver/id");
    self.cert = sf_cert_load_secret (
        sf_config_str (config, "homeserver/secret_key"), fault);
    if (!self.cert || s_members_load (&self, config, fault))
        goto done;
    //  The backup: a state machine's image, whole.
    FILE *in = fopen (file, "rb");
    if (!in) {
        sf_fault_set (fault, SF_EINVAL, "cannot read backup %s: %s", file,
                      strerror (errno));
        goto done;
    }
    fseek (in, 0, SEEK_END);
    long size = ftell (in);
    fseek (in, 0, SEEK_SET);
    image.base = raft_malloc (size > 0 ? (size_t) size : 1);
    image.len = size > 0 ? (size_t) size : 0;
    bool read = image.len && fread (image.base, 1, image.len, in) == image.len;
    fclose (in);
    fsm = read ? hs_fsm_new (fault) : NULL;
    if (!fsm || hs_fsm_restore (fsm, &image) || !hs_fsm_applied (fsm)) {
        sf_fault_set (fault, SF_EINVAL,
                      "%s is not a backup of a ring (fabricctl backup)", file);
        goto done;
    }
    //  The new ring is the configured one.
    members = json_array ();
    struct raft_configuration configuration;
    raft_configuration_init (&configuration);
    if (self.n_members == 0)
        sf_fault_set (fault, SF_EINVAL,
                      "config %s: a restored ring needs its ring section",
                      sf_config_filename (config));
    for (unsigned at = 0; at < self.n_members; at++) {
        s_member_t *member = &self.members [at];
        json_array_append_new (
            members,
            json_pack ("{s:s,s:I,s:s,s:s?,s:s}", "name", member->name,
                       "raft_id", (json_int_t) member->id, "raft", member->raft,
                       "api", member->api, "key", member->key));
        raft_configuration_add (&configuration, member->id, member->raft,
                                RAFT_VOTER);
    }
    if (self.n_members == 0 || hs_fsm_reset_members (fsm, members, fault)
        || hs_fsm_snapshot (fsm, &state)) {
        raft_configuration_close (&configuration);
        if (fault->error == SF_OK)
            sf_fault_set (fault, SF_ESTORE, "cannot copy the state");
        goto done;
    }
    const char *data = sf_config_str (config, "homeserver/data");
    if (zsys_dir_create ("%s", data)) {
        raft_configuration_close (&configuration);
        sf_fault_set (fault, SF_EINVAL, "cannot create data folder %s", data);
        goto done;
    }
    char *path = zsys_sprintf ("%s/raft.db", data);
    store = hs_store_new (path, fault);
    free (path);
    if (!store) {
        raft_configuration_close (&configuration);
        goto done;
    }
    if (!hs_store_empty (store)) {
        raft_configuration_close (&configuration);
        sf_fault_set (fault, SF_EINVAL,
                      "%s/raft.db holds a ring already: restore never "
                      "writes over one (give it an empty data folder)",
                      data);
        goto done;
    }
    //  A snapshot at the backup's index, so every index in the state
    //  (revisions, the change chain, fencing) still means what it meant.
    struct raft_snapshot_metadata metadata = {
        .index = hs_fsm_applied (fsm),
        .term = 1,
        .configuration = configuration,
        .configuration_index = hs_fsm_applied (fsm),
    };
    if (hs_store_snapshot_save (store, &metadata, &state, metadata.index + 1,
                                fault)
        || hs_store_save_term_vote (store, 1, 0, fault)) {
        raft_configuration_close (&configuration);
        goto done;
    }
    raft_configuration_close (&configuration);
    index = metadata.index;
done:
    hs_store_destroy (&store);
    hs_fsm_destroy (&fsm);
    json_decref (members);
    raft_free (image.base);
    raft_free (state.base);
    for (unsigned at = 0; at < self.n_members; at++) {
        free (self.members [at].name);
        free (self.members [at].raft);
        free (self.members [at].api);
    }
    free (self.members);
    zcert_destroy (&self.cert);
    return index;
}

//  --------------------------------------------------------------------------
//  Online backups (operations.md section 2)

static int
s_handle_backup (sf_loop_t *loop, int timer_id, void *arg)
{
    hs_server_t *self = (hs_server_t *) arg;
    if (!hs_backup_turn (self->backup, sf_time_wall_ms ())) {
        sf_loop_timer_end (loop, timer_id);
        self->backup_timer = 0;
    }
    return 0;
}

//  backup.begin takes the state as a snapshot does, at the applied index
//  (every write this member acknowledged or applied is in it), and
//  hs_backup writes it a piece per turn; backup.read and backup.end are
//  hs_backup's.
static void
s_backup (void *context, api_call_t **call, const char *op, const json_t *args)
{
    hs_server_t *self = (hs_server_t *) context;
    if (streq (op, "backup.read"))
        hs_backup_read (self->backup, call, args);
    else if (streq (op, "backup.end"))
        hs_backup_end (self->backup, call, args);
    else {
        struct raft_buffer image;
        sf_fault_t fault;
        if (hs_fsm_snapshot (self->fsm, &image)) {
            api_router_fail (self->api, call, SF_ESTORE,
                             "cannot copy the state machine");
            return;
        }
        if (hs_backup_begin (self->backup, call, &image,
                             hs_fsm_applied (self->fsm), &fault)) {
            api_router_fail (self->api, call, fault.error, fault.message);
            return;
        }
        if (!self->backup_timer && self->loop)
            self->backup_timer =
                sf_loop_timer (self->loop, 10, 0, s_handle_backup, self);
    }
}

//  --------------------------------------------------------------------------
//  HTTP (protocol/http.md)

static void
s_http_serve (void *context, api_call_t *call)
{
    hs_server_t *self = (hs_server_t *) context;
    api_router_count (self->api);
    hs_api_handle (self->handler, call, sf_time_mono_ms ());
    hs_api_submit (self->handler, sf_time_mono_ms ());
    s_after_ring (self);
}

static json_t *
s_http_status (void *context)
{
    hs_server_t *self = (hs_server_t *) context;
    return hs_api_status (self->handler, sf_time_mono_ms ());
}

//  Of the counters, those that go up and down.
static const char *const s_gauges [] = {"ring_digest_index", "ring_digest_head",
                                        "ring_diverged_from",
                                        "ring_diverged_at", NULL};

static void
s_http_metrics (void *context, sf_prom_t *prom)
{
    hs_server_t *self = (hs_server_t *) context;
    json_t *counters = hs_api_counters (self->handler);
    sf_prom_counters (prom, counters, s_gauges,
                      "as the op counters names it (homeserver-api.md)");
    json_decref (counters);
    json_t *status = hs_api_status (self->handler, sf_time_mono_ms ());
    const char *figures [] = {"term",       "commit_index",   "applied_index",
                              "last_index", "snapshot_index", "uptime_ms"};
    for (size_t at = 0; at < sizeof figures / sizeof figures [0]; at++) {
        sf_prom_family (prom, figures [at], "gauge",
                        "as the op status names it");
        sf_prom_sample (
            prom, NULL, NULL,
            json_number_value (json_object_get (status, figures [at])));
    }
    sf_prom_family (prom, "leader_known", "gauge",
                    "1 if this member knows a leader");
    sf_prom_sample (prom, NULL, NULL,
                    json_is_string (json_object_get (status, "leader")));
    sf_prom_family (prom, "role", "gauge",
                    "this member's raft role: 1 for the current one");
    const char *role = json_string_value (json_object_get (status, "role"));
    const char *roles [] = {"follower", "candidate", "leader"};
    for (size_t at = 0; at < 3; at++)
        sf_prom_sample (prom, "role", roles [at],
                        role && streq (role, roles [at]));
    json_decref (status);
    if (self->figures)
        sf_prom_gauges (prom, "load", self->figures,
                        "this member's last load report (load.md)");
    hs_api_metrics (self->handler, prom);
    sf_prom_family (prom, "apply_duration_seconds", "histogram",
                    "applying one command to the state machine");
    sf_prom_histo (prom, NULL, NULL, &self->apply_histo);
}

static int
s_http_setup (hs_server_t *self, sf_config_t *config, sf_fault_t *fault)
{
    sf_http_config_t http = {
        .endpoint = sf_config_str (config, "homeserver/http"),
        .cert_file = sf_config_str (config, "homeserver/http_cert"),
        .key_file = sf_config_str (config, "homeserver/http_key")};
    hs_http_hooks_t hooks = {.fsm = self->fsm,
                             .serve = s_http_serve,
                             .status = s_http_status,
                             .metrics = s_http_metrics,
                             .context = self,
                             .kept = self->kept,
                             .max_apply_lag = (uint64_t) sf_config_int (
                                 config, "homeserver/http_max_apply_lag")};
    self->http = hs_http_new (&http, self->reactor, &hooks, fault);
    if (!self->http)
        return -1;
    sf_log_notice ("hs_server: http=%s", hs_http_url (self->http));
    return 0;
}

hs_server_t *
hs_server_new (sf_config_t *config, sf_fault_t *fault)
{
    hs_server_t *self = (hs_server_t *) zmalloc (sizeof (hs_server_t));
    self->name = strdup (sf_config_str (config, "homeserver/name"));
    self->cert = sf_cert_load_secret (
        sf_config_str (config, "homeserver/secret_key"), fault);
    if (!self->cert)
        goto failed;
    self->zap = sf_zap_new ();
    if (!self->zap) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot start the ZAP handler");
        goto failed;
    }
    const char *clients = sf_config_str (config, "homeserver/clients");
    if (!clients)
        sf_zap_allow_any (self->zap, API_ROUTER_DOMAIN);
    else if (sf_zap_allow_dir (self->zap, API_ROUTER_DOMAIN, clients, fault)
             < 0)
        goto failed;
    self->api = api_router_new (sf_config_str (config, "homeserver/api"),
                                self->cert, API_ROUTER_DOMAIN, fault);
    if (!self->api)
        goto failed;
    if (s_ring_setup (self, config, fault))
        goto failed;
    if (hs_fed_configured (config)) {
        self->fed = hs_fed_new (config, self->name, self->cert, self->zap,
                                self->fsm, s_fed_status, self, fault);
        if (!self->fed)
            goto failed;
        hs_api_set_foreign (self->handler, s_foreign, self);
        hs_api_set_instance (self->handler, hs_fed_instance (self->fed));
        hs_fed_on_claim (self->fed, s_fed_write, self);
        hs_fed_on_lease (self->fed, s_sim_lease, self);
        self->relay =
            hs_relay_new (self->fed, self->fsm, self->handler, self->trace);
    }
    self->reactor = sf_loop_new ();
    if (!self->reactor) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot make the loop (epoll)");
        goto failed;
    }
    hs_api_set_kept (self->handler, self->kept);
    char *backups =
        zsys_sprintf ("%s/backups", sf_config_str (config, "homeserver/data"));
    self->backup = hs_backup_new (backups, self->api, fault);
    free (backups);
    if (!self->backup)
        goto failed;
    hs_api_set_backup (self->handler, s_backup, self);
    hs_api_set_events (self->handler,
                       self->events ? hs_events_endpoint (self->events) : NULL);
    if (sf_config_str (config, "homeserver/http")
        && s_http_setup (self, config, fault))
        goto failed;
    return self;
failed:
    hs_server_destroy (&self);
    return NULL;
}

void
hs_server_destroy (hs_server_t **self_p)
{
    if (*self_p) {
        hs_server_t *self = *self_p;
        //  HTTP first: its clients go; the requests they left are the
        //  handler's, answered (to nobody) as it drops them.
        hs_http_destroy (&self->http);
        hs_backup_destroy (&self->backup);
        //  Federation next: the requests it gives up on answer their
        //  callers and record their outcomes through the handler.
        hs_fed_destroy (&self->fed);
        hs_relay_destroy (&self->relay);
        hs_api_destroy (&self->handler);
        hs_events_destroy (&self->events);
        sf_trace_destroy (&self->trace);
        hs_ring_destroy (&self->ring);
        hs_fsm_destroy (&self->fsm);
        hs_link_destroy (&self->link);
        hs_persist_destroy (&self->persist);
        hs_store_destroy (&self->store);
        free (self->log_path);
        for (unsigned at = 0; at < self->n_members; at++) {
            free (self->members [at].name);
            free (self->members [at].raft);
            free (self->members [at].api);
        }
        free (self->members);
        api_router_destroy (&self->api);
        sf_loop_destroy (&self->reactor);
        hs_kept_destroy (&self->kept);
        json_decref (self->figures);
        zactor_destroy (&self->zap);
        zcert_destroy (&self->cert);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

const char *
hs_server_endpoint (hs_server_t *self)
{
    return api_router_endpoint (self->api);
}

static int
s_handle_api (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop, (void) reader;
    hs_server_t *self = (hs_server_t *) arg;
    //  Take every request waiting (up to a bound) before flushing: their
    //  entries share one fsync.
    zsock_t *socket = api_router_socket (self->api);
    for (int count = 0; count < 512 && (zsock_events (socket) & ZMQ_POLLIN);
         count++) {
        api_call_t *call = api_router_recv (self->api, "hs_server");
        if (call)
            hs_api_handle (self->handler, call, sf_time_mono_ms ());
    }
    //  Claims of other instances' entities taken in this turn go on
    //  together, as the ring's writes do.
    if (self->relay)
        hs_relay_send (self->relay, sf_time_mono_ms ());
    hs_api_submit (self->handler, sf_time_mono_ms ());
    s_after_ring (self);
    return 0;
}

//  The persistence thread finished flushes: tell the ring (the newest one
//  covers the others).
static int
s_handle_persisted (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop, (void) reader;
    hs_server_t *self = (hs_server_t *) arg;
    raft_index index = 0, newest = 0;
    raft_term term = 0, newest_term = 0;
    while ((zsock_events (hs_persist_socket (self->persist)) & ZMQ_POLLIN)
           && hs_persist_completed (self->persist, &index, &term) == 0)
        if (index > newest) {
            newest = index;
            newest_term = term;
        }
    if (newest)
        hs_ring_persisted (self->ring, newest, newest_term, sf_time_mono_ms ());
    s_after_ring (self);
    return 0;
}

static int
s_handle_forward (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    hs_server_t *self = (hs_server_t *) arg;
    hs_api_forward_reply (self->handler, reader);
    return 0;
}

static int
s_handle_pipe (sf_loop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    hs_server_t *self = (hs_server_t *) arg;
    char *command = zstr_recv (pipe);
    if (!command)
        return -1;  //  interrupted
    int rc = 0;
    if (streq (command, "$TERM"))
        rc = -1;
    else if (streq (command, "ENDPOINT"))
        zstr_send (pipe, api_router_endpoint (self->api));
    else
        sf_log_error ("hs_server: unknown pipe command %s", command);
    free (command);
    return rc;
}

static int
s_handle_fed_link (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    hs_server_t *self = (hs_server_t *) arg;
    hs_fed_receive (self->fed, reader, sf_time_mono_ms ());
    //  Outcomes learnt here go to the ring as the API's writes do.
    hs_api_submit (self->handler, sf_time_mono_ms ());
    s_after_ring (self);
    return 0;
}

static int
s_handle_fed (sf_loop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop, (void) reader;
    hs_server_t *self = (hs_server_t *) arg;
    for (int count = 0; count < 64 && (zsock_events (reader) & ZMQ_POLLIN);
         count++)
        hs_fed_handle (self->fed);
    //  Claims taken here go to the ring as the API's writes do.
    hs_api_submit (self->handler, sf_time_mono_ms ());
    s_after_ring (self);
    return 0;
}

void
hs_server_actor (zsock_t *pipe, void *args)
{
    hs_server_t *self = (hs_server_t *) args;
    sf_loop_t *loop = self->reactor;
    sf_loop_reader (loop, pipe, s_handle_pipe, self);
    sf_loop_reader (loop, api_router_socket (self->api), s_handle_api, self);
    if (self->fed) {
        sf_loop_reader (loop, hs_fed_socket (self->fed), s_handle_fed, self);
        for (zsock_t **link = hs_fed_links (self->fed); *link; link++)
            sf_loop_reader (loop, *link, s_handle_fed_link, self);
    }
    sf_loop_reader (loop, hs_link_socket (self->link), s_handle_raft, self);
    sf_loop_reader (loop, hs_persist_socket (self->persist), s_handle_persisted,
                    self);
    for (zsock_t **forward = hs_api_forward_sockets (self->handler); *forward;
         forward++)
        sf_loop_reader (loop, *forward, s_handle_forward, self);
    sf_loop_timer (loop, HS_LINK_CHECK_MS, 0, s_handle_link_check, self);
    self->loop = loop;
    s_after_ring (self);
    zsock_signal (pipe, 0);
    sf_log_notice ("hs_server: ready api=%s", api_router_endpoint (self->api));
    sf_loop_start (loop);
    self->loop = NULL;
    hs_server_destroy (&self);
}
