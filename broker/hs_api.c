/*  hs_api: the homeserver's JSON request handler (homeserver-api.md). */

#include "broker/hs_api.h"
#include "broker/hs_balance.h"
#include "broker/hs_load.h"
#include "common/sf_cert.h"
#include "common/sf_curve.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_name.h"
#include "common/sf_time.h"
#include "protocol/ring_cmd.h"

#include <sodium.h>

#define S_MAX_MEMBERS 16

typedef struct {
    char *name;       //  configured name
    raft_id id;       //  raft id
    char *api;        //  API endpoint, or NULL
    char *raft;       //  raft endpoint
    char key [41];    //  public key
    zsock_t *dealer;  //  to its API, for forwarding; NULL without api
} s_member_t;

//  A write waiting for its entry to be applied.
typedef struct {
    api_call_t *call;
    raft_index index;
    raft_term term;
    uint8_t *command;  //  encoded, until submitted
    size_t size;
    char *token;  //  token.create: the token to answer (Z85), or NULL
} s_write_t;

//  Free *WRITE_P and what it holds but its call; null the pointer.
static void
s_write_free (s_write_t **write_p)
{
    s_write_t *write = *write_p;
    if (write) {
        free (write->command);
        if (write->token)
            sodium_memzero (write->token, strlen (write->token));
        free (write->token);
        free (write);
        *write_p = NULL;
    }
}

//  Reads waiting for one confirmation of leadership: a probe round (or,
//  until the leader has committed in its term, a barrier entry).
typedef struct {
    raft_index index;               //  read index: answer once applied this far
    raft_term term;                 //  the term it was started in
    zlistx_t *calls;                //  api_call_t
    bool probe;                     //  a probe round (else a barrier at index)
    bool confirmed;                 //  probe: a majority acknowledged
    uint64_t seq;                   //  probe: the round's number
    uint64_t resend;                //  probe: when to send the round again (ms)
    raft_id acked [S_MAX_MEMBERS];  //  probe: who acknowledged
    unsigned n_acked;
} s_batch_t;

//  A request forwarded to the leader, waiting for its answer.
typedef struct {
    api_call_t *call;
    uint64_t deadline;  //  monotonic ms
    raft_id leader;     //  the member it was sent to
} s_forward_t;

//  A membership change in progress (one at a time: Raft thesis 4.1).
typedef enum {
    S_JOB_RECORD,    //  cluster.add: the member's metadata is being committed
    S_JOB_STANDBY,   //  it joins as a standby (replicates, does not vote)
    S_JOB_CATCH_UP,  //  waiting until its log matches ours
    S_JOB_FINAL,     //  the change that makes it a voter (or removes a
                     //  member) is being committed
} s_stage_t;

typedef struct {
    api_call_t *call;  //  the administrator's request
    s_stage_t stage;
    raft_index index;   //  entry whose application ends this stage
    raft_term term;     //  term it was submitted in
    raft_id id;         //  the member added or removed
    json_t *member;     //  cluster.add: what was recorded
    uint64_t deadline;  //  monotonic ms: catching up must end by then
} s_job_t;

struct _hs_api_t {
    char *name;                   //  this node's name
    raft_id id;                   //  this node's raft id
    uint64_t started_ms;          //  monotonic start, for uptime
    hs_ring_t *ring;              //  lent
    hs_fsm_t *fsm;                //  lent
    api_router_t *router;         //  lent
    zcert_t *cert;                //  lent, for forwarding
    hs_load_t *load;              //  the latest load reports, as leader
    hs_balance_t *balance;        //  the balancer (NULL: none configured)
    hs_kept_t *kept;              //  the last changes (lent), or NULL
    char *events;                 //  this member's events endpoint, or NULL
    hs_api_backup_fn *backup_fn;  //  serves backup.*, or NULL
    void *backup_context;
    sf_prom_histo_t commit_histo;  //  writes' receipt to commit, ever
    //  This member's own figures since its last report (load.md section
    //  2): writes' receipt-to-commit times, and where counts stood.
    uint64_t latencies [4096];
    size_t n_latencies;
    uint64_t reported_us;
    raft_index reported_commit;
    uint64_t reported_requests;
    uint64_t next_report;
    uint64_t sim_lease_ms;    //  heartbeats older than this orphan, 0: never
    uint64_t ask_timeout_ms;  //  default wait of an ask transfer
    zhashx_t *asks;           //  transfer id text -> api_call_t waiting for
                              //  the owner's sim to answer (this leader's)
    uint64_t asks_checked;    //  monotonic ms of the last deadline check
    uint64_t lease_checked;   //  monotonic ms of the last lease check
    raft_term leading_term;   //  term this node leads in, 0: not leading
    uint64_t leading_since;   //  monotonic ms sims could reach it since
    uint64_t progressed;      //  monotonic ms of the last hs_api_progress
    uint64_t pause_ms;        //  a longer gap between them is a pause
    s_member_t members [S_MAX_MEMBERS];
    unsigned n_members;
    zsock_t *sockets [S_MAX_MEMBERS + 1];  //  forwarding DEALERs, NULL-ended
    unsigned n_sockets;
    zhashx_t *admins;          //  admin keys (values unused)
    zlistx_t *writes;          //  s_write_t, in index order
    zlistx_t *waiting;         //  reads not yet behind a barrier
    s_batch_t *batch;          //  reads behind the barrier in flight, or NULL
    zhashx_t *forwards;        //  s_forward_t by forward id (text)
    uint64_t next_forward;     //  id of the next forward
    s_job_t *job;              //  membership change in progress, or NULL
    hs_api_prober_fn *prober;  //  sends read probes, or NULL
    void *prober_context;
    uint64_t probe_seq;     //  number of the last probe round
    zlistx_t *unsubmitted;  //  s_write_t with their command, waiting for
                            //  hs_api_submit (index 0 until then)
    sf_trace_t *trace;      //  lent, or NULL: hop records (trace.md)
    hs_api_counters_fn *counters_fn;  //  the daemon's own counters, or NULL
    hs_api_foreign_fn *foreign_fn;    //  answers foreign names, or NULL
    char *instance;                   //  this instance's name, or NULL
    void *foreign_context;
    void *counters_context;
    uint64_t forwarded;      //  requests relayed to the leader
    bool registration_open;  //  any key may register a new sim name
    raft_term key_term;      //  term whose first signing key is seen to
};

static const s_member_t *
s_member_by_id (hs_api_t *self, raft_id id)
{
    for (unsigned at = 0; at < self->n_members; at++)
        if (self->members [at].id == id)
            return &self->members [at];
    return NULL;
}

static bool
s_is_member_key (hs_api_t *self, const char *key)
{
    for (unsigned at = 0; at < self->n_members; at++)
        if (strcmp (self->members [at].key, key) == 0)
            return true;
    return false;
}

hs_api_t *
hs_api_new (const char *name, raft_id id, hs_ring_t *ring, hs_fsm_t *fsm,
            api_router_t *router, zcert_t *cert)
{
    hs_api_t *self = (hs_api_t *) zmalloc (sizeof (hs_api_t));
    self->name = strdup (name);
    self->id = id;
    self->started_ms = sf_time_mono_ms ();
    self->ring = ring;
    self->fsm = fsm;
    self->router = router;
    self->cert = cert;
    self->admins = zhashx_new ();
    self->writes = zlistx_new ();
    self->asks = zhashx_new ();
    self->ask_timeout_ms = 2000;
    self->waiting = zlistx_new ();
    self->forwards = zhashx_new ();
    self->unsubmitted = zlistx_new ();
    self->load = hs_load_new ();
    self->next_forward = 1;
    return self;
}

static void
s_batch_destroy (s_batch_t **batch_p)
{
    if (*batch_p) {
        api_call_t *call = (api_call_t *) zlistx_first ((*batch_p)->calls);
        while (call) {
            api_call_destroy (&call);
            call = (api_call_t *) zlistx_next ((*batch_p)->calls);
        }
        zlistx_destroy (&(*batch_p)->calls);
        free (*batch_p);
        *batch_p = NULL;
    }
}

void
hs_api_destroy (hs_api_t **self_p)
{
    if (*self_p) {
        hs_api_t *self = *self_p;
        s_write_t *write = (s_write_t *) zlistx_first (self->writes);
        while (write) {
            api_call_destroy (&write->call);
            s_write_free (&write);
            write = (s_write_t *) zlistx_next (self->writes);
        }
        zlistx_destroy (&self->writes);
        for (api_call_t *call = (api_call_t *) zhashx_first (self->asks); call;
             call = (api_call_t *) zhashx_next (self->asks))
            api_call_destroy (&call);
        zhashx_destroy (&self->asks);
        write = (s_write_t *) zlistx_first (self->unsubmitted);
        while (write) {
            api_call_destroy (&write->call);
            s_write_free (&write);
            write = (s_write_t *) zlistx_next (self->unsubmitted);
        }
        zlistx_destroy (&self->unsubmitted);
        api_call_t *call = (api_call_t *) zlistx_first (self->waiting);
        while (call) {
            api_call_destroy (&call);
            call = (api_call_t *) zlistx_next (self->waiting);
        }
        zlistx_destroy (&self->waiting);
        hs_load_destroy (&self->load);
        hs_balance_destroy (&self->balance);
        s_batch_destroy (&self->batch);
        s_forward_t *forward = (s_forward_t *) zhashx_first (self->forwards);
        while (forward) {
            api_call_destroy (&forward->call);
            free (forward);
            forward = (s_forward_t *) zhashx_next (self->forwards);
        }
        zhashx_destroy (&self->forwards);
        if (self->job) {
            api_call_destroy (&self->job->call);
            json_decref (self->job->member);
            free (self->job);
        }
        zhashx_destroy (&self->admins);
        for (unsigned at = 0; at < self->n_members; at++) {
            free (self->members [at].name);
            free (self->members [at].api);
            free (self->members [at].raft);
            zsock_destroy (&self->members [at].dealer);
        }
        free (self->name);
        free (self->instance);
        free (self->events);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
hs_api_add_member (hs_api_t *self, const char *name, raft_id id,
                   const char *api, const char *raft, const char *key)
{
    if (self->n_members == S_MAX_MEMBERS || s_member_by_id (self, id))
        return NULL;
    s_member_t *member = &self->members [self->n_members++];
    member->name = strdup (name);
    member->id = id;
    member->api = api ? strdup (api) : NULL;
    member->raft = strdup (raft);
    snprintf (member->key, sizeof member->key, "%s", key);
    //  No forwarding socket to ourselves.
    if (api && id != self->id) {
        member->dealer = zsock_new (ZMQ_DEALER);
        zsock_set_linger (member->dealer, 0);
        zsock_set_sndhwm (member->dealer, 10000);
        sf_curve_client (member->dealer, self->cert, key);
        zsock_connect (member->dealer, "%s", api);
        self->sockets [self->n_sockets++] = member->dealer;
    }
    return member->dealer;
}

zsock_t *
hs_api_remove_member (hs_api_t *self, raft_id id)
{
    if (id == self->id)
        return NULL;
    for (unsigned at = 0; at < self->n_members; at++) {
        s_member_t *member = &self->members [at];
        if (member->id != id)
            continue;
        zsock_t *dealer = member->dealer;
        free (member->name);
        free (member->api);
        free (member->raft);
        self->members [at] = self->members [--self->n_members];
        if (dealer) {
            for (unsigned socket = 0; socket < self->n_sockets; socket++)
                if (self->sockets [socket] == dealer) {
                    self->sockets [socket] = self->sockets [--self->n_sockets];
                    self->sockets [self->n_sockets] = NULL;
                    break;
                }
        }
        return dealer;
    }
    return NULL;
}

void
hs_api_add_admin (hs_api_t *self, const char *key)
{
    zhashx_insert (self->admins, key, (void *) "admin");
}

//  The result members every answer carries: who answered, who leads.
static void
s_stamp (hs_api_t *self, json_t *result)
{
    raft_id leader = hs_ring_leader (self->ring, NULL);
    const s_member_t *member = s_member_by_id (self, leader);
    json_object_set_new (result, "node", json_string (self->name));
    json_object_set_new (result, "leader",
                         member ? json_string (member->name) : json_null ());
}

//  A transfer's request (or answer) and its reply are hops: record both
//  ends this member saw (trace.md).
static void
s_trace_reply (hs_api_t *self, api_call_t *call, const json_t *result)
{
    const api_msg_t *request = api_call_request (call);
    const char *msg = streq (request->op, "authority.request")
                              || streq (request->op, "fed.claim")
                          ? "request"
                      : streq (request->op, "authority.answer") ? "answer"
                                                                : NULL;
    json_t *transfer = json_object_get (result, "transfer");
    if (!msg || !json_is_integer (transfer))
        return;
    //  Another instance's claim came from that instance's member.
    const char *sim =
        api_call_label (call)
            ?: json_string_value (json_object_get (request->root, "sim"));
    uint64_t id = (uint64_t) json_integer_value (transfer);
    sf_trace_transfer (self->trace, id, msg, false, sim,
                       api_call_received_us (call));
    sf_trace_transfer (self->trace, id, "reply", true, sim, sf_time_wall_us ());
}

static void
s_reply (hs_api_t *self, api_call_t **call, json_t *result)
{
    if (*call && self->trace)
        s_trace_reply (self, *call, result);
    s_stamp (self, result);
    api_router_reply (self->router, call, result);
    json_decref (result);
}

//  --------------------------------------------------------------------------
//  Operations answered at once

//  The name of a configuration ROLE, as status shows it.
static const char *
s_role_name (int role)
{
    return role == RAFT_VOTER     ? "voter"
           : role == RAFT_STANDBY ? "standby"
           : role == RAFT_SPARE   ? "spare"
                                  : "?";
}

//  The ring's members as status lists them: exactly the applied
//  configuration, each with what this member knows of it (issue 21: a
//  member removed from the configuration leaves the list).
static json_t *
s_status_members (hs_api_t *self)
{
    const struct raft_configuration *configuration =
        hs_ring_applied_configuration (self->ring);
    json_t *members = json_array ();
    for (unsigned at = 0; at < configuration->n; at++) {
        const struct raft_server *server = &configuration->servers [at];
        const s_member_t *member = s_member_by_id (self, server->id);
        json_array_append_new (
            members,
            json_pack ("{s:o,s:I,s:s,s:o,s:o,s:s}", "name",
                       member ? json_string (member->name) : json_null (), "id",
                       (json_int_t) server->id, "raft", server->address, "api",
                       member && member->api ? json_string (member->api)
                                             : json_null (),
                       "key", member ? json_string (member->key) : json_null (),
                       "role", s_role_name (server->role)));
    }
    return members;
}

json_t *
hs_api_status (hs_api_t *self, uint64_t now)
{
    const char *leader_raft = NULL;
    raft_id leader = hs_ring_leader (self->ring, &leader_raft);
    const s_member_t *leading = s_member_by_id (self, leader);
    json_t *result = json_pack (
        "{s:s,s:s,s:I,s:s,s:I,s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:o}", "node",
        self->name, "version", SIMFABRIC_VERSION, "raft_id",
        (json_int_t) self->id, "role",
        hs_ring_role_name (hs_ring_role (self->ring)), "term",
        (json_int_t) hs_ring_term (self->ring), "leader",
        leading ? json_string (leading->name) : json_null (), "leader_id",
        leader ? json_integer ((json_int_t) leader) : json_null (),
        "leader_api",
        leading && leading->api ? json_string (leading->api) : json_null (),
        "commit_index", (json_int_t) hs_ring_commit_index (self->ring),
        "applied_index", (json_int_t) hs_ring_applied_index (self->ring),
        "last_index", (json_int_t) hs_ring_last_index (self->ring),
        "snapshot_index", (json_int_t) hs_ring_snapshot_index (self->ring),
        "members", s_status_members (self));
    if (self->instance)
        json_object_set_new (result, "instance", json_string (self->instance));
    //  The ring's membership as Raft sees it (latest, maybe uncommitted).
    const struct raft_configuration *configuration =
        hs_ring_configuration (self->ring);
    json_t *servers = json_array ();
    for (unsigned at = 0; at < configuration->n; at++) {
        const struct raft_server *server = &configuration->servers [at];
        json_array_append_new (
            servers,
            json_pack ("{s:I,s:s,s:s}", "id", (json_int_t) server->id, "raft",
                       server->address, "role", s_role_name (server->role)));
    }
    json_object_set_new (result, "configuration", servers);
    json_object_set_new (result, "uptime_ms",
                         json_integer ((json_int_t) (now - self->started_ms)));
    json_object_set_new (result, "leader_raft",
                         leader_raft ? json_string (leader_raft)
                                     : json_null ());
    json_object_set_new (result, "ring_keys", hs_fsm_ring_keys (self->fsm));
    json_object_set_new (result, "events",
                         self->events ? json_string (self->events)
                                      : json_null ());
    json_object_set_new (
        result, "registration",
        json_string (self->registration_open ? "open" : "token"));
    return result;
}

static void
s_status (hs_api_t *self, api_call_t *call, uint64_t now)
{
    json_t *result = hs_api_status (self, now);
    api_router_reply (self->router, &call, result);
    json_decref (result);
}

//  This member's counters (homeserver-api.md, counters): its API's, and
//  the daemon's own through counters_fn.
json_t *
hs_api_counters (hs_api_t *self)
{
    const api_router_counters_t *served = api_router_counters (self->router);
    json_t *counters = json_pack ("{s:I,s:I,s:I}", "api_requests",
                                  (json_int_t) served->requests, "api_refused",
                                  (json_int_t) served->refused, "api_forwarded",
                                  (json_int_t) self->forwarded);
    if (self->counters_fn)
        self->counters_fn (self->counters_context, counters);
    return counters;
}

void
hs_api_metrics (hs_api_t *self, sf_prom_t *prom)
{
    api_router_metrics (self->router, prom);
    sf_prom_family (prom, "commit_duration_seconds", "histogram",
                    "a client's write from its receipt to its commit here");
    sf_prom_histo (prom, NULL, NULL, &self->commit_histo);
}

static void
s_counters (hs_api_t *self, api_call_t *call)
{
    json_t *counters = hs_api_counters (self);
    json_t *result =
        json_pack ("{s:s,s:o}", "node", self->name, "counters", counters);
    api_router_reply (self->router, &call, result);
    json_decref (result);
}

//  --------------------------------------------------------------------------
//  Forwarding to the leader

static void
s_forward (hs_api_t *self, api_call_t *call, const char *principal,
           uint64_t now)
{
    raft_id leader = hs_ring_leader (self->ring, NULL);
    const s_member_t *member = s_member_by_id (self, leader);
    if (!member || !member->dealer) {
        api_router_fail (self->router, &call, SF_EUNAVAILABLE,
                         leader ? "the leader has no API endpoint configured"
                                : "no leader is known right now; retry "
                                  "shortly");
        return;
    }
    char id [24];
    snprintf (id, sizeof id, "%llu", (unsigned long long) self->next_forward++);
    json_t *request = json_pack ("{s:s,s:s,s:s,s:O}", "op", "ring.forward",
                                 "id", id, "principal", principal, "request",
                                 api_call_request (call)->root);
    char *text = sf_json_text (request);
    json_decref (request);
    zstr_send (member->dealer, text);
    free (text);
    self->forwarded++;
    s_forward_t *forward = (s_forward_t *) zmalloc (sizeof (s_forward_t));
    forward->call = call;
    forward->deadline = now + HS_API_FORWARD_TIMEOUT;
    forward->leader = leader;
    zhashx_insert (self->forwards, id, forward);
}

void
hs_api_forward_reply (hs_api_t *self, zsock_t *socket)
{
    char *text = zstr_recv (socket);
    if (!text)
        return;
    sf_fault_t fault;
    json_t *reply = api_msg_decode_reply (text, strlen (text), &fault);
    free (text);
    const char *id =
        reply ? json_string_value (json_object_get (reply, "id")) : NULL;
    s_forward_t *forward =
        id ? (s_forward_t *) zhashx_lookup (self->forwards, id) : NULL;
    if (forward) {
        zhashx_delete (self->forwards, id);
        if (api_msg_reply_fault (reply, &fault) == 0) {
            json_object_del (reply, "id");
            json_object_del (reply, "ok");
            //  The client asked us: we are the node that answered.
            json_object_set_new (reply, "node", json_string (self->name));
            api_router_reply (self->router, &forward->call, reply);
        }
        else if (fault.error == SF_ENOTMEMBER) {
            //  The leader no longer counts us a member: we were removed,
            //  and were not told. The client should ask another member.
            sf_fault_set (&fault, SF_EUNAVAILABLE,
                          "%s is no longer a member of the ring (the leader "
                          "refused its forward): ask another member",
                          self->name);
            api_router_fail (self->router, &forward->call, fault.error,
                             fault.message);
        }
        else
            api_router_fail (self->router, &forward->call, fault.error,
                             fault.message);
        free (forward);
    }
    json_decref (reply);
}

//  --------------------------------------------------------------------------
//  Writes and reads through the ring

//  The ring command for request OP from PRINCIPAL: its arguments as
//  replicated are the request without the envelope members, stamped with
//  the leader's clock. Returns 0 or -1 (see ring_cmd_encode).
static int
s_encode (const char *op, const char *principal, bool admin, const json_t *args,
          uint8_t **data, size_t *size)
{
    json_t *copy = json_deep_copy (args);
    json_object_del (copy, "op");
    json_object_del (copy, "id");
    int rc = ring_cmd_encode (op, principal, admin, sf_time_wall_ms (), copy,
                              data, size);
    json_decref (copy);
    return rc;
}

//  Add a fresh Ed25519 key pair to ARGS as "public" and "secret" (Z85):
//  the ring's keys are made by the leader and travel in the command, so
//  every member applies the same key (grants.md section 2).
static void
s_add_key_pair (json_t *args)
{
    uint8_t public [32], secret [64];
    char public_text [41], secret_text [81];
    crypto_sign_keypair (public, secret);
    zmq_z85_encode (public_text, public, sizeof public);
    zmq_z85_encode (secret_text, secret, sizeof secret);
    json_object_set_new (args, "public", json_string (public_text));
    json_object_set_new (args, "secret", json_string (secret_text));
    sodium_memzero (secret, sizeof secret);
    sodium_memzero (secret_text, sizeof secret_text);
}

//  What only the leader decides, written into the arguments ARGS of
//  write OP before it becomes a command; whatever the client put in those
//  fields is replaced. token.create: returns the new token (Z85, the
//  caller frees), whose hash alone the command carries.
static char *
s_stamp_leader (hs_api_t *self, const char *op, json_t *args)
{
    if (streq (op, "sim.register")) {
        json_object_del (args, "registration");
        if (self->registration_open)
            json_object_set_new (args, "registration", json_string ("open"));
    }
    else if (streq (op, "ring.key") || streq (op, "ring.rotate_key"))
        s_add_key_pair (args);
    else if (streq (op, "access.create")) {
        //  sf1.ID.SECRET (http.md section 5): the command carries the id
        //  and the secret's hash; the secret is answered once.
        uint8_t id [8], secret [32], hash [32];
        char id_text [17], hash_text [41], secret_text [64];
        randombytes_buf (id, sizeof id);
        randombytes_buf (secret, sizeof secret);
        sodium_bin2hex (id_text, sizeof id_text, id, sizeof id);
        sodium_bin2base64 (secret_text, sizeof secret_text, secret,
                           sizeof secret,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        crypto_generichash (hash, sizeof hash, (const uint8_t *) secret_text,
                            strlen (secret_text), NULL, 0);
        zmq_z85_encode (hash_text, hash, sizeof hash);
        json_object_set_new (args, "token_id", json_string (id_text));
        json_object_set_new (args, "hash", json_string (hash_text));
        char *token = zsys_sprintf ("sf1.%s.%s", id_text, secret_text);
        sodium_memzero (secret, sizeof secret);
        sodium_memzero (secret_text, sizeof secret_text);
        return token;
    }
    else if (streq (op, "token.create")) {
        uint8_t token [32], hash [32];
        char hash_text [41], *text = (char *) zmalloc (41);
        randombytes_buf (token, sizeof token);
        crypto_generichash (hash, sizeof hash, token, sizeof token, NULL, 0);
        zmq_z85_encode (text, token, sizeof token);
        zmq_z85_encode (hash_text, hash, sizeof hash);
        sodium_memzero (token, sizeof token);
        json_object_set_new (args, "hash", json_string (hash_text));
        return text;
    }
    return NULL;
}

//  Keep the load report of the heartbeat ARGS if PRINCIPAL is its sim
//  (its registered key) or an administrator.
static void
s_keep_report (hs_api_t *self, const char *principal, const json_t *args,
               uint64_t now)
{
    const char *sim = json_string_value (json_object_get (args, "sim"));
    sf_fault_t fault;
    json_t *entry = sim ? hs_fsm_lookup (self->fsm, "sim", sim, &fault) : NULL;
    const char *key = json_string_value (json_object_get (entry, "key"));
    if ((key && streq (key, principal))
        || (entry && zhashx_lookup (self->admins, principal)))
        hs_load_put (self->load, "sim", sim,
                     json_deep_copy (json_object_get (args, "load")), now);
    json_decref (entry);
}

static void
s_write (hs_api_t *self, api_call_t *call, const char *principal,
         const json_t *args, uint64_t now)
{
    const char *op = api_call_request (call)->op;
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        s_forward (self, call, principal, now);
        return;
    }
    uint8_t *data;
    size_t size;
    //  An ask waits the configured time unless the request says otherwise.
    json_t *stamped = json_deep_copy (args);
    //  A heartbeat's load report stays in the leader's memory, never in
    //  the log (load.md section 2), and only from the sim itself.
    if (streq (op, "sim.heartbeat") && json_object_get (stamped, "load")) {
        s_keep_report (self, principal, stamped, now);
        json_object_del (stamped, "load");
    }
    if ((streq (op, "authority.request") || streq (op, "fed.claim"))
        && !json_object_get (stamped, "timeout_ms")
        && !json_object_get (stamped, "paths")
        && !json_object_get (stamped, "claims"))
        json_object_set_new (stamped, "timeout_ms",
                             json_integer ((json_int_t) self->ask_timeout_ms));
    char *token = s_stamp_leader (self, op, stamped);
    int rc = s_encode (op, principal,
                       zhashx_lookup (self->admins, principal) != NULL, stamped,
                       &data, &size);
    json_decref (stamped);
    if (rc) {
        free (token);
        api_router_fail (self->router, &call, SF_EINVAL,
                         "request cannot be encoded as a command (too large?)");
        return;
    }
    //  Submitted with every other write taken in this loop turn: one
    //  AppendEntries and one fsync for all of them (hs_api_submit).
    s_write_t *write = (s_write_t *) zmalloc (sizeof (s_write_t));
    write->call = call;
    write->command = data;
    write->size = size;
    write->token = token;
    zlistx_add_end (self->unsubmitted, write);
}

static void s_ensure_ring_key (hs_api_t *self, uint64_t now);

void
hs_api_submit (hs_api_t *self, uint64_t now)
{
    size_t count = zlistx_size (self->unsubmitted);
    if (count == 0)
        return;
    s_ensure_ring_key (self, now);
    struct raft_buffer *commands =
        (struct raft_buffer *) calloc (count, sizeof (struct raft_buffer));
    size_t at = 0;
    s_write_t *write = (s_write_t *) zlistx_first (self->unsubmitted);
    while (write) {
        commands [at].base = write->command;
        commands [at++].len = write->size;
        write = (s_write_t *) zlistx_next (self->unsubmitted);
    }
    sf_fault_t fault;
    raft_index first = hs_ring_submit_many (self->ring, commands,
                                            (unsigned) count, now, &fault);
    free (commands);
    raft_term term = hs_ring_term (self->ring);
    at = 0;
    write = (s_write_t *) zlistx_first (self->unsubmitted);
    while (write) {
        free (write->command);
        write->command = NULL;
        if (first) {
            write->index = first + at++;
            write->term = term;
            zlistx_add_end (self->writes, write);
        }
        else {
            api_router_fail (self->router, &write->call, fault.error,
                             fault.message);
            s_write_free (&write);
        }
        write = (s_write_t *) zlistx_next (self->unsubmitted);
    }
    zlistx_purge (self->unsubmitted);
}

static void
s_read_now (hs_api_t *self, api_call_t *call, const json_t *args)
{
    sf_fault_t fault;
    json_t *result =
        hs_fsm_read (self->fsm, api_call_request (call)->op, args, &fault);
    if (!result) {
        api_router_fail (self->router, &call, fault.error, fault.message);
        return;
    }
    json_object_set_new (
        result, "applied_index",
        json_integer ((json_int_t) hs_ring_applied_index (self->ring)));
    //  Load reports live in the leader's memory (load.md section 2): the
    //  leader's answer has each sim's latest, a follower's none.
    if (streq (api_call_request (call)->op, "sim.list")) {
        bool leading = hs_ring_role (self->ring) == HS_RING_LEADER;
        size_t index;
        json_t *sim;
        json_array_foreach (json_object_get (result, "sims"), index, sim)
        {
            const char *name = json_string_value (json_object_get (sim, "sim"));
            json_t *report =
                leading && name
                    ? hs_load_get (self->load, "sim", name, sf_time_mono_ms ())
                    : NULL;
            json_object_set_new (sim, "load", report ? report : json_null ());
        }
    }
    s_reply (self, &call, result);
}

//  A read, its arguments checked (so a bad one never waits for a
//  barrier): at once if stale, else behind a leadership check.
static void
s_read (hs_api_t *self, api_call_t *call, const char *principal,
        const json_t *args, uint64_t now)
{
    const char *consistency =
        json_string_value (json_object_get (args, "consistency"));
    if (consistency && strcmp (consistency, "stale") == 0) {
        s_read_now (self, call, args);
        return;
    }
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        s_forward (self, call, principal, now);
        return;
    }
    zlistx_add_end (self->waiting, call);
    hs_api_progress (self, now);
}

//  --------------------------------------------------------------------------
//  Membership changes

static void
s_job_end (hs_api_t *self, sf_error_t error, const char *message)
{
    s_job_t *job = self->job;
    if (!job)
        return;
    if (error == SF_OK) {
        json_t *result =
            job->member ? json_deep_copy (job->member) : json_object ();
        json_object_set_new (result, "raft_id",
                             json_integer ((json_int_t) job->id));
        s_reply (self, &job->call, result);
    }
    else
        api_router_fail (self->router, &job->call, error, message);
    json_decref (job->member);
    free (job);
    self->job = NULL;
}

//  The current configuration with member ID set to ROLE at ADDRESS (added
//  if absent), or removed when ROLE is -1. Caller closes it.
static int
s_configuration_with (hs_api_t *self, raft_id id, const char *address, int role,
                      struct raft_configuration *next)
{
    const struct raft_configuration *current =
        hs_ring_configuration (self->ring);
    raft_configuration_init (next);
    bool found = false;
    for (unsigned at = 0; at < current->n; at++) {
        const struct raft_server *server = &current->servers [at];
        if (server->id == id) {
            found = true;
            if (role < 0)
                continue;
            if (raft_configuration_add (next, id, server->address, role))
                return -1;
        }
        else if (raft_configuration_add (next, server->id, server->address,
                                         server->role))
            return -1;
    }
    if (!found && role >= 0 && address
        && raft_configuration_add (next, id, address, role))
        return -1;
    return 0;
}

//  Submit the change to ROLE for the job's member; next stage is STAGE.
static void
s_job_change (hs_api_t *self, int role, s_stage_t stage, uint64_t now)
{
    s_job_t *job = self->job;
    const char *address =
        job->member ? json_string_value (json_object_get (job->member, "raft"))
                    : NULL;
    struct raft_configuration next;
    sf_fault_t fault;
    if (s_configuration_with (self, job->id, address, role, &next)) {
        raft_configuration_close (&next);
        s_job_end (self, SF_EINTERNAL, "cannot build the configuration");
        return;
    }
    raft_index index = hs_ring_change (self->ring, &next, now, &fault);
    raft_configuration_close (&next);
    if (!index) {
        s_job_end (self, fault.error, fault.message);
        return;
    }
    job->stage = stage;
    job->index = index;
    job->term = hs_ring_term (self->ring);
}

//  cluster.add, its member recorded: make it a standby, to catch up, unless
//  it is a voter at that address already (added again as it is: there is
//  nothing to change, and demoting it would only cost a vote meanwhile).
static void
s_job_join (hs_api_t *self, uint64_t now)
{
    s_job_t *job = self->job;
    const char *address =
        json_string_value (json_object_get (job->member, "raft"));
    const struct raft_configuration *configuration =
        hs_ring_configuration (self->ring);
    for (unsigned at = 0; at < configuration->n; at++) {
        const struct raft_server *server = &configuration->servers [at];
        if (server->id == job->id && server->role == RAFT_VOTER && address
            && streq (server->address, address)) {
            s_job_end (self, SF_OK, NULL);
            return;
        }
    }
    s_job_change (self, RAFT_STANDBY, S_JOB_STANDBY, now);
}

static void
s_job_progress (hs_api_t *self, uint64_t now)
{
    s_job_t *job = self->job;
    if (!job)
        return;
    if (hs_ring_role (self->ring) != HS_RING_LEADER
        || hs_ring_term (self->ring) != job->term) {
        //  A leader that removed itself steps down once the change is
        //  committed (Raft thesis 4.2.2): that is the change done.
        if (job->stage == S_JOB_FINAL && !job->member && job->id == self->id
            && hs_ring_commit_index (self->ring) >= job->index) {
            s_job_end (self, SF_OK, NULL);
            return;
        }
        s_job_end (self, SF_EUNAVAILABLE,
                   "leadership changed during the membership change; check "
                   "status, then retry");
        return;
    }
    raft_index applied = hs_ring_applied_index (self->ring);
    if (job->stage == S_JOB_STANDBY && applied >= job->index) {
        job->stage = S_JOB_CATCH_UP;
        job->deadline = now + 30000;
    }
    if (job->stage == S_JOB_CATCH_UP) {
        //  Caught up: its log holds everything committed so far.
        if (hs_ring_match_index (self->ring, job->id)
            >= hs_ring_commit_index (self->ring))
            s_job_change (self, RAFT_VOTER, S_JOB_FINAL, now);
        else if (now >= job->deadline)
            s_job_end (self, SF_ETIMEOUT,
                       "the new member did not catch up in 30 s; it stays a "
                       "standby (is it running and reachable?)");
        return;
    }
    if (job->stage == S_JOB_FINAL && applied >= job->index)
        s_job_end (self, SF_OK, NULL);
}

//  cluster.add's member ARGS against the members known here (the
//  configuration file's and those added at run time) and the ring's
//  latest configuration: a name or a key another raft id has, or a raft
//  id that is a member at another raft address, is refused before
//  anything is written (hs_fsm refuses the same against the members
//  table when the command applies). Returns 0, or -1 with FAULT.
static int
s_member_clash (hs_api_t *self, const json_t *args, sf_fault_t *fault)
{
    //  Checked by its schema (hs_fsm_check).
    const char *name = json_string_value (json_object_get (args, "name"));
    raft_id id =
        (raft_id) json_integer_value (json_object_get (args, "raft_id"));
    const char *raft = json_string_value (json_object_get (args, "raft"));
    const char *key = json_string_value (json_object_get (args, "key"));
    for (unsigned at = 0; at < self->n_members; at++) {
        const s_member_t *member = &self->members [at];
        if (member->id != id && streq (member->name, name))
            return sf_fault_set (
                fault, SF_ECONFLICT,
                "name '%s' is raft id %llu's; choose another name, or "
                "cluster.remove raft id %llu first",
                name, (unsigned long long) member->id,
                (unsigned long long) member->id);
        //  Members know each other by key: one shared by two raft ids
        //  would let one speak as the other.
        if (member->id != id && streq (member->key, key))
            return sf_fault_set (fault, SF_ECONFLICT,
                                 "key %s is raft id %llu's; each member needs "
                                 "a key of its own (make one with fabricctl "
                                 "keygen)",
                                 key, (unsigned long long) member->id);
    }
    const struct raft_configuration *configuration =
        hs_ring_configuration (self->ring);
    for (unsigned at = 0; at < configuration->n; at++) {
        const struct raft_server *server = &configuration->servers [at];
        if (server->id == id && !streq (server->address, raft))
            return sf_fault_set (
                fault, SF_ECONFLICT,
                "raft id %llu is a member at %s; to move it to %s, "
                "cluster.remove it, then cluster.add it again",
                (unsigned long long) id, server->address, raft);
    }
    return 0;
}

//  cluster.add, cluster.remove: on the leader, from an administrator.
static void
s_membership (hs_api_t *self, api_call_t *call, const char *principal,
              const json_t *args, uint64_t now)
{
    const char *op = api_call_request (call)->op;
    bool add = strcmp (op, "cluster.add") == 0;
    sf_fault_t fault;
    //  Checked by its schema (hs_fsm_check).
    int64_t id = json_integer_value (json_object_get (args, "raft_id"));
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        s_forward (self, call, principal, now);
        return;
    }
    if (self->job) {
        api_router_fail (self->router, &call, SF_ECONFLICT,
                         "another membership change is in progress; retry "
                         "when it is done");
        return;
    }
    if (add && s_member_clash (self, args, &fault)) {
        api_router_fail (self->router, &call, fault.error, fault.message);
        return;
    }
    s_job_t *job = (s_job_t *) zmalloc (sizeof (s_job_t));
    job->call = call;
    job->term = hs_ring_term (self->ring);
    self->job = job;
    if (!add) {
        job->id = (raft_id) id;
        s_job_change (self, -1, S_JOB_FINAL, now);
        return;
    }
    //  First record the member's keys and endpoints in the state machine,
    //  so every member can reach it once it is in the configuration.
    uint8_t *data;
    size_t size;
    int rc = s_encode (op, principal, true, args, &data, &size);
    raft_index index =
        rc ? 0 : hs_ring_submit (self->ring, data, size, now, &fault);
    if (!rc)
        free (data);
    if (!index) {
        s_job_end (self, rc ? SF_EINVAL : fault.error,
                   rc ? "request cannot be encoded" : fault.message);
        return;
    }
    job->stage = S_JOB_RECORD;
    job->index = index;
}

//  --------------------------------------------------------------------------

static void
s_status_op (hs_api_t *self, api_call_t *call, const char *principal,
             const json_t *args, uint64_t now)
{
    (void) principal;
    (void) args;
    s_status (self, call, now);
}

//  events.read: this member's kept changes after FROM whose topic starts
//  with PREFIX (operations.md section 4), at most LIMIT; "gap" when a
//  change after FROM is no longer kept. Not forwarded: every member keeps
//  the same changes, as it applies them.
static void
s_events_read_op (hs_api_t *self, api_call_t *call, const char *principal,
                  const json_t *args, uint64_t now)
{
    (void) principal;
    (void) now;
    uint64_t from =
        (uint64_t) json_integer_value (json_object_get (args, "from"));
    const char *prefix = json_string_value (json_object_get (args, "prefix"));
    json_t *limit_value = json_object_get (args, "limit");
    size_t limit =
        limit_value ? (size_t) json_integer_value (limit_value) : 1000;
    raft_index last = hs_fsm_last_change (self->fsm);
    size_t count = self->kept ? hs_kept_count (self->kept) : 0;
    const hs_kept_change_t *oldest =
        self->kept ? hs_kept_at (self->kept, 0) : NULL;
    uint64_t dropped = oldest ? hs_kept_dropped (self->kept) : last;
    json_t *events = json_array ();
    uint64_t through = from;  //  the newest change looked at
    bool more = false;
    for (size_t at = self->kept ? hs_kept_after (self->kept, from) : 0;
         at < count; at++) {
        const hs_kept_change_t *change = hs_kept_at (self->kept, at);
        if (json_array_size (events) == limit) {
            more = true;
            break;
        }
        through = change->index;
        if (prefix && strncmp (change->topic, prefix, strlen (prefix)) != 0)
            continue;
        json_error_t error;
        json_t *body = json_loadb (change->body, change->size, 0, &error);
        if (body)
            json_array_append_new (events, body);
    }
    json_t *result = json_pack (
        "{s:o,s:b,s:o,s:I,s:I,s:b}", "events", events, "gap", dropped > from,
        "oldest",
        oldest ? json_integer ((json_int_t) oldest->index) : json_null (),
        "last", (json_int_t) last, "through",
        (json_int_t) (more ? through : (last > through ? last : through)),
        "more", more);
    s_reply (self, &call, result);
}

//  backup.begin, backup.read, backup.end: the daemon's (hs_backup), on
//  this member.
static void
s_backup_op (hs_api_t *self, api_call_t *call, const char *principal,
             const json_t *args, uint64_t now)
{
    (void) principal;
    (void) now;
    if (!self->backup_fn) {
        api_router_fail (self->router, &call, SF_EUNAVAILABLE,
                         "this member makes no backups");
        return;
    }
    self->backup_fn (self->backup_context, &call, api_call_request (call)->op,
                     args);
    if (call)
        api_router_fail (self->router, &call, SF_EINTERNAL,
                         "backup left unanswered");
}

static void
s_counters_op (hs_api_t *self, api_call_t *call, const char *principal,
               const json_t *args, uint64_t now)
{
    (void) principal;
    (void) args;
    (void) now;
    s_counters (self, call);
}

//  trace: this member's own records, never forwarded.
static void
s_trace_op (hs_api_t *self, api_call_t *call, const char *principal,
            const json_t *args, uint64_t now)
{
    (void) principal;
    (void) now;
    sf_fault_t fault;
    //  Its schema checked the arguments as sf_trace_answer does again.
    json_t *result = sf_trace_answer (self->trace, args, &fault);
    if (result)
        s_reply (self, &call, result);
    else
        api_router_fail (self->router, &call, fault.error, fault.message);
}

static int
s_by_value (const void *a, const void *b)
{
    uint64_t left = *(const uint64_t *) a, right = *(const uint64_t *) b;
    return left < right ? -1 : left > right;
}

void
hs_api_report_load (hs_api_t *self, json_t *figures, uint64_t now)
{
    (void) now;
    uint64_t now_us = sf_time_mono_us ();
    double seconds = self->reported_us && now_us > self->reported_us
                         ? (double) (now_us - self->reported_us) / 1e6
                         : 1;
    raft_index commit = hs_ring_commit_index (self->ring);
    uint64_t requests = api_router_counters (self->router)->requests;
    uint64_t p99 = 0;
    if (self->n_latencies) {
        qsort (self->latencies, self->n_latencies, sizeof (uint64_t),
               s_by_value);
        p99 =
            self->latencies [(self->n_latencies * 99) / 100 < self->n_latencies
                                 ? (self->n_latencies * 99) / 100
                                 : self->n_latencies - 1];
    }
    raft_index last = hs_ring_last_index (self->ring);
    raft_index applied = hs_ring_applied_index (self->ring);
    json_object_set_new (
        figures, "role",
        json_string (hs_ring_role_name (hs_ring_role (self->ring))));
    json_object_set_new (
        figures, "commits_per_s",
        json_real (self->reported_us
                       ? (double) (commit - self->reported_commit) / seconds
                       : 0));
    json_object_set_new (figures, "commit_p99_us",
                         self->n_latencies ? json_integer ((json_int_t) p99)
                                           : json_null ());
    json_object_set_new (
        figures, "apply_lag",
        json_integer ((json_int_t) (last > applied ? last - applied : 0)));
    size_t pending = zlistx_size (self->waiting);
    if (self->batch)
        pending += zlistx_size (self->batch->calls);
    json_object_set_new (figures, "pending_reads",
                         json_integer ((json_int_t) pending));
    json_object_set_new (
        figures, "api_per_s",
        json_real (self->reported_us
                       ? (double) (requests - self->reported_requests) / seconds
                       : 0));
    self->reported_us = now_us;
    self->reported_commit = commit;
    self->reported_requests = requests;
    self->n_latencies = 0;
    if (hs_ring_role (self->ring) == HS_RING_LEADER) {
        hs_load_put (self->load, "homeserver", self->name, figures,
                     sf_time_mono_ms ());
        return;
    }
    //  To the leader, as this member (load.member): its answer is not
    //  waited for, and a report lost is replaced a second later.
    const s_member_t *leader =
        s_member_by_id (self, hs_ring_leader (self->ring, NULL));
    if (leader && leader->dealer) {
        char id [32];
        snprintf (id, sizeof id, "load.%llu",
                  (unsigned long long) ++self->next_report);
        json_t *request = json_pack ("{s:s,s:s,s:o}", "op", "load.member", "id",
                                     id, "report", figures);
        char *text = sf_json_text (request);
        json_decref (request);
        zmq_send (zsock_resolve (leader->dealer), text, strlen (text),
                  ZMQ_DONTWAIT);
        free (text);
    }
    else
        json_decref (figures);
}

//  load.member: a member's own report, kept by the leader under the name
//  its key has in the ring (never the name it claims).
static void
s_load_member_op (hs_api_t *self, api_call_t *call, const char *principal,
                  const json_t *args, uint64_t now)
{
    (void) now;
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        api_router_fail (self->router, &call, SF_ENOTLEADER,
                         "load reports go to the leader");
        return;
    }
    for (unsigned at = 0; at < self->n_members; at++)
        if (streq (self->members [at].key, principal)) {
            hs_load_put (self->load, "homeserver", self->members [at].name,
                         json_deep_copy (json_object_get (args, "report")),
                         sf_time_mono_ms ());
            break;
        }
    s_reply (self, &call, json_object ());
}

//  load: the latest load reports (load.md section 2), which only the
//  leader has: a follower forwards it.
static void
s_load_op (hs_api_t *self, api_call_t *call, const char *principal,
           const json_t *args, uint64_t now)
{
    (void) args;
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        s_forward (self, call, principal, now);
        return;
    }
    json_t *all = hs_load_all (self->load, sf_time_mono_ms ());
    //  The balancer's view of each sim, and its last decisions.
    if (self->balance) {
        json_t *sims = json_object_get (all, "sims");
        zlist_t *draining = hs_fsm_draining (self->fsm);
        json_t *view = hs_balance_view (self->balance, sims, draining);
        const char *name;
        json_t *report;
        json_object_foreach (sims, name, report)
        {
            json_object_update (report, json_object_get (view, name));
        }
        json_decref (view);
        zlist_destroy (&draining);
        json_object_set_new (all, "balancer",
                             json_pack ("{s:b,s:f,s:o}", "enabled",
                                        hs_balance_enabled (self->balance),
                                        "band", hs_balance_band (self->balance),
                                        "moves",
                                        hs_fsm_moves (self->fsm, 0, 50)));
    }
    s_reply (self, &call, all);
}

void
hs_api_set_balance (hs_api_t *self, const hs_balance_config_t *config)
{
    hs_balance_destroy (&self->balance);
    self->balance = hs_balance_new (config, sf_time_mono_ms ());
}

void
hs_api_balance_applied (hs_api_t *self, const json_t *result, raft_index index)
{
    if (self->balance)
        hs_balance_applied (self->balance, result, (uint64_t) index);
}

void
hs_api_balance (hs_api_t *self, uint64_t now)
{
    if (!self->balance || !hs_balance_enabled (self->balance)
        || hs_ring_role (self->ring) != HS_RING_LEADER)
        return;
    json_t *all = hs_load_all (self->load, now);
    json_t *decisions =
        hs_balance_round (self->balance, json_object_get (all, "sims"),
                          self->fsm, hs_ring_term (self->ring), now);
    size_t index;
    json_t *decision;
    json_array_foreach (decisions, index, decision)
        hs_api_submit_own (self, "balance.move", json_incref (decision));
    json_decref (decisions);
    json_decref (all);
}

//  cluster.transfer: hand the leadership to member "to" (0: any).
static void
s_transfer_op (hs_api_t *self, api_call_t *call, const char *principal,
               const json_t *args, uint64_t now)
{
    int64_t id = json_integer_value (json_object_get (args, "to"));
    sf_fault_t fault;
    if (hs_ring_role (self->ring) != HS_RING_LEADER)
        s_forward (self, call, principal, now);
    else if (hs_ring_transfer (self->ring, (raft_id) id, now, &fault))
        api_router_fail (self->router, &call, fault.error, fault.message);
    else
        s_reply (self, &call,
                 json_pack ("{s:I}", "transferring_to", (json_int_t) id));
}

static void s_dispatch (hs_api_t *self, api_call_t *call, uint64_t now);

//  ring.forward: a member relays a client's request, served here as the
//  client that sent it (its own arguments and access checked anew).
static void
s_ring_forward_op (hs_api_t *self, api_call_t *call, const char *principal,
                   const json_t *args, uint64_t now)
{
    (void) principal;
    json_t *inner = json_object_get (args, "request");
    const char *op = json_string_value (json_object_get (inner, "op"));
    char *client =
        strdup (json_string_value (json_object_get (args, "principal")));
    sf_fault_t fault;
    if (op && strcmp (op, "ring.forward") == 0)
        api_router_fail (self->router, &call, SF_EREQUEST,
                         "a forwarded request cannot be a forward");
    else if (api_call_rewrite (call, inner, client, &fault))
        api_router_fail (self->router, &call, fault.error, fault.message);
    else
        s_dispatch (self, call, now);
    free (client);
}

//  The handler of each CONTROL operation of HS_OP_MAP; its arguments and
//  access come from the table like every operation's (s_dispatch).
typedef void (s_control_fn) (hs_api_t *self, api_call_t *call,
                             const char *principal, const json_t *args,
                             uint64_t now);

static s_control_fn *const s_controls [HS_OP_COUNT] = {
    [HS_OP_STATUS] = s_status_op,
    [HS_OP_COUNTERS] = s_counters_op,
    [HS_OP_TRACE] = s_trace_op,
    [HS_OP_CLUSTER_ADD] = s_membership,
    [HS_OP_CLUSTER_REMOVE] = s_membership,
    [HS_OP_CLUSTER_TRANSFER] = s_transfer_op,
    [HS_OP_RING_FORWARD] = s_ring_forward_op,
    [HS_OP_LOAD] = s_load_op,
    [HS_OP_EVENTS_READ] = s_events_read_op,
    [HS_OP_BACKUP_BEGIN] = s_backup_op,
    [HS_OP_BACKUP_READ] = s_backup_op,
    [HS_OP_BACKUP_END] = s_backup_op,
    [HS_OP_LOAD_MEMBER] = s_load_member_op,
};

//  PRINCIPAL may call ROW as far as HS_OP_MAP's access can be told before
//  it is served: an administrator's or a ring member's key. Sims and
//  masters are checked against the applied state, where the command
//  applies (hs_fsm). Returns 0, or -1 with FAULT.
static int
s_access (hs_api_t *self, const hs_op_t *row, const char *principal,
          sf_fault_t *fault)
{
    if (row->access == HS_OP_ADMIN && !zhashx_lookup (self->admins, principal))
        return sf_fault_set (fault, SF_EUNAUTHORIZED,
                             "%s needs an administrator key", row->name);
    if (row->access == HS_OP_MEMBER && !s_is_member_key (self, principal))
        return sf_fault_set (fault, SF_ENOTMEMBER,
                             "only ring members may call %s", row->name);
    //  A peer instance's, relayed by the federation socket (hs_fed) with
    //  the peer's name: never from a client of the API.
    if (row->access == HS_OP_PEER)
        return sf_fault_set (fault, SF_EUNAUTHORIZED,
                             "%s comes from other instances, over "
                             "federation only",
                             row->name);
    return 0;
}

//  Serve CALL as its operation's row in HS_OP_MAP says, the same way for
//  every kind: the operation exists, its arguments fit its schema
//  (hs_fsm_check), the caller's access, then the handler: control
//  operations here, writes through the ring, reads from the state
//  machine.
static void
s_dispatch (hs_api_t *self, api_call_t *call, uint64_t now)
{
    const char *op = api_call_request (call)->op;
    const char *principal = api_call_principal (call);
    const json_t *args = api_call_request (call)->root;
    const hs_op_t *row = hs_op_find (op);
    sf_fault_t fault;
    //  A foreign player's key is its instance's to answer (federation.md
    //  section 4), and a foreign entity's claim its home's (section 5,
    //  sent on by the leader, which vouches for the sim); a name of this
    //  instance comes back as a local one.
    const char *player = json_string_value (json_object_get (args, "player"));
    const char *path = json_string_value (json_object_get (args, "path"));
    const char *kind = NULL, *foreign = NULL;
    if (op && streq (op, "player.key") && player && strchr (player, '@'))
        kind = "player", foreign = player;
    else if (op && streq (op, "authority.request") && path
             && strchr (path, '@'))
        kind = "path", foreign = path;
    else if (op && streq (op, "entity.get") && path && strchr (path, '@'))
        kind = "read", foreign = path;
    else if (op && streq (op, "authority.release") && path
             && strchr (path, '@'))
        kind = "release", foreign = path;
    else if (op && streq (op, "entity.checkpoint")) {
        //  Another instance's entities' states go to their home (section
        //  7); the relay checks that every path is of one home.
        const char *first = json_string_value (json_object_get (
            json_array_get (json_object_get (args, "entities"), 0), "path"));
        if (first && strchr (first, '@'))
            kind = "checkpoint", foreign = first;
    }
    if (kind) {
        if (!self->foreign_fn) {
            char message [SF_NAME_MAX_PATH + 96];
            snprintf (message, sizeof message,
                      "no federation: this ring knows no other instance "
                      "than its own ('%s')",
                      foreign);
            api_router_fail (self->router, &call, SF_ENOTFOUND, message);
            return;
        }
        if (streq (kind, "path")
            && hs_ring_role (self->ring) != HS_RING_LEADER) {
            s_forward (self, call, principal, now);
            return;
        }
        self->foreign_fn (self->foreign_context, &call, kind, foreign);
        if (!call)
            return;
        op = api_call_request (call)->op;
        principal = api_call_principal (call);
        args = api_call_request (call)->root;
    }
    if (!row || (row->kind == HS_OP_CONTROL && !s_controls [row->id])
        || (row->id == HS_OP_TRACE && !self->trace)) {
        char message [128];
        snprintf (message, sizeof message, "no such operation '%s'", op);
        api_router_fail (self->router, &call, SF_EUNKNOWNOP, message);
    }
    else if (hs_fsm_check (op, args, &fault)
             || s_access (self, row, principal, &fault))
        api_router_fail (self->router, &call, fault.error, fault.message);
    else if (row->kind == HS_OP_WRITE)
        s_write (self, call, principal, args, now);
    else if (row->kind == HS_OP_READ)
        s_read (self, call, principal, args, now);
    else
        s_controls [row->id](self, call, principal, args, now);
}

void
hs_api_handle (hs_api_t *self, api_call_t *call, uint64_t now)
{
    s_dispatch (self, call, now);
}

//  --------------------------------------------------------------------------
//  Progress

static void s_ask_decided (hs_api_t *self, raft_index index,
                           const json_t *result);

bool
hs_api_awaits (hs_api_t *self, raft_index index)
{
    if (zhashx_size (self->asks))
        return true;
    //  Writes wait in index order.
    for (s_write_t *write = (s_write_t *) zlistx_first (self->writes);
         write && write->index <= index;
         write = (s_write_t *) zlistx_next (self->writes))
        if (write->index == index)
            return true;
    return false;
}

void
hs_api_applied (hs_api_t *self, raft_index index, raft_term term,
                const json_t *result, const sf_fault_t *fault)
{
    s_job_t *job = self->job;
    if (job && job->stage == S_JOB_RECORD && job->index == index) {
        if (!result || term != job->term)
            s_job_end (self, result ? SF_EUNAVAILABLE : fault->error,
                       result ? "leadership changed; retry" : fault->message);
        else {
            job->member = json_deep_copy (result);
            job->id = (raft_id) json_integer_value (
                json_object_get (result, "raft_id"));
            //  The change is submitted from hs_api_progress (never inside
            //  the ring's apply).
            job->stage = S_JOB_STANDBY;
            job->index = 0;
        }
        return;
    }
    if (result)
        s_ask_decided (self, index, result);
    s_write_t *write = (s_write_t *) zlistx_first (self->writes);
    while (write && write->index <= index) {
        zlistx_delete (self->writes, zlistx_cursor (self->writes));
        if (write->index == index && write->term == term) {
            if (result && write->call
                && json_is_true (json_object_get (result, "pending"))) {
                //  The ask rule: answered when the authority asked answers
                //  (or its deadline passes), by s_ask_decided.
                char id [24];
                snprintf (id, sizeof id, "%llu", (unsigned long long) index);
                json_t *transfer = json_object_get (result, "transfer");
                //  A repeat (fed.claim again, federation.md section 6)
                //  waits for the transfer it started: its answer goes to
                //  the newest caller, the older one is told to ask again.
                if (json_is_integer (transfer))
                    snprintf (id, sizeof id, "%lld",
                              (long long) json_integer_value (transfer));
                api_call_t *older =
                    (api_call_t *) zhashx_lookup (self->asks, id);
                if (older) {
                    zhashx_delete (self->asks, id);
                    api_router_fail (self->router, &older, SF_EUNAVAILABLE,
                                     "the same request came again: the "
                                     "answer goes to the newest");
                }
                zhashx_insert (self->asks, id, write->call);
                write->call = NULL;
            }
            else if (result && write->call) {
                //  A client's write's time from its receipt to its commit
                //  here. The ring's own commands have no client, so no
                //  answer to copy (a balancer's move carries 64 grants).
                uint64_t took =
                    sf_time_wall_us () - api_call_received_us (write->call);
                sf_prom_histo_observe (&self->commit_histo, took);
                if (self->n_latencies
                    < sizeof self->latencies / sizeof self->latencies [0])
                    self->latencies [self->n_latencies++] = took;
                json_t *copy = json_deep_copy (result);
                json_object_set_new (copy, "index",
                                     json_integer ((json_int_t) index));
                //  Answered once, to the administrator who asked: the
                //  ring keeps only its hash.
                if (write->token)
                    json_object_set_new (copy, "token",
                                         json_string (write->token));
                s_reply (self, &write->call, copy);
            }
            else if (!result)
                api_router_fail (self->router, &write->call, fault->error,
                                 fault->message);
        }
        else
            //  Another leader's entry took this index: ours is gone.
            api_router_fail (self->router, &write->call, SF_EUNAVAILABLE,
                             "leadership changed before the write was "
                             "committed; it was not applied, retry");
        s_write_free (&write);
        write = (s_write_t *) zlistx_first (self->writes);
    }
}

//  Fail every read and write that waited on a leadership this node lost.
static void
s_fail_all (hs_api_t *self, const char *message)
{
    s_write_t *write = (s_write_t *) zlistx_first (self->writes);
    while (write) {
        //  The entry may still commit under the new leader: say so.
        api_router_fail (self->router, &write->call, SF_EUNAVAILABLE,
                         "leadership changed while the write was in flight; "
                         "it may or may not be applied: re-read, then retry");
        s_write_free (&write);
        write = (s_write_t *) zlistx_next (self->writes);
    }
    zlistx_purge (self->writes);
    for (api_call_t *call = (api_call_t *) zhashx_first (self->asks); call;
         call = (api_call_t *) zhashx_next (self->asks))
        api_router_fail (self->router, &call, SF_EUNAVAILABLE,
                         "leadership changed while the transfer waited for "
                         "its answer; it may still be decided: re-read");
    zhashx_purge (self->asks);
    zlistx_t *lists [2] = {self->waiting,
                           self->batch ? self->batch->calls : NULL};
    for (int at = 0; at < 2; at++) {
        api_call_t *call =
            lists [at] ? (api_call_t *) zlistx_first (lists [at]) : NULL;
        while (call) {
            api_router_fail (self->router, &call, SF_ENOTLEADER, message);
            call = (api_call_t *) zlistx_next (lists [at]);
        }
        if (lists [at])
            zlistx_purge (lists [at]);
    }
    s_batch_destroy (&self->batch);
}

//  True if the voters that acknowledged, with us, are a majority.
static bool
s_probe_quorum (hs_api_t *self)
{
    const struct raft_configuration *configuration =
        hs_ring_configuration (self->ring);
    unsigned voters = 0, votes = 0;
    for (unsigned at = 0; at < configuration->n; at++) {
        const struct raft_server *server = &configuration->servers [at];
        if (server->role != RAFT_VOTER)
            continue;
        voters++;
        bool acked = server->id == self->id;
        for (unsigned ack = 0; ack < self->batch->n_acked && !acked; ack++)
            acked = self->batch->acked [ack] == server->id;
        votes += acked ? 1 : 0;
    }
    return votes * 2 > voters;
}

//  Send (or resend, as a new round) the current batch's probe to every
//  other voter.
static void
s_probe_send (hs_api_t *self, uint64_t now)
{
    s_batch_t *batch = self->batch;
    batch->seq = ++self->probe_seq;
    batch->n_acked = 0;
    batch->resend = now + 100;
    if (s_probe_quorum (self)) {
        batch->confirmed = true;  //  a ring of one
        return;
    }
    const struct raft_configuration *configuration =
        hs_ring_configuration (self->ring);
    for (unsigned at = 0; at < configuration->n; at++) {
        const struct raft_server *server = &configuration->servers [at];
        if (server->role == RAFT_VOTER && server->id != self->id)
            self->prober (self->prober_context, server->id, batch->term,
                          batch->seq);
    }
}

void
hs_api_set_prober (hs_api_t *self, hs_api_prober_fn *prober, void *context)
{
    self->prober = prober;
    self->prober_context = context;
}

void
hs_api_probe_ack (hs_api_t *self, raft_id from, raft_term term, uint64_t seq,
                  uint64_t now)
{
    s_batch_t *batch = self->batch;
    //  Only an ack of the current round, from a member still in our term.
    if (!batch || !batch->probe || batch->confirmed || seq != batch->seq
        || term != batch->term || batch->n_acked == S_MAX_MEMBERS)
        return;
    for (unsigned at = 0; at < batch->n_acked; at++)
        if (batch->acked [at] == from)
            return;
    batch->acked [batch->n_acked++] = from;
    if (s_probe_quorum (self))
        batch->confirmed = true;
    hs_api_progress (self, now);
}

void
hs_api_set_sim_lease (hs_api_t *self, uint64_t lease_ms, uint64_t tick_ms)
{
    self->sim_lease_ms = lease_ms;
    //  A quarter of the lease, but never less than two ticks: an idle
    //  leader's loop only wakes to send heartbeats.
    self->pause_ms = lease_ms / 4 > 2 * tick_ms ? lease_ms / 4 : 2 * tick_ms;
}

void
hs_api_set_trace (hs_api_t *self, sf_trace_t *trace)
{
    self->trace = trace;
}

void
hs_api_set_kept (hs_api_t *self, hs_kept_t *kept)
{
    self->kept = kept;
}

void
hs_api_set_backup (hs_api_t *self, hs_api_backup_fn *backup_fn, void *context)
{
    self->backup_fn = backup_fn;
    self->backup_context = context;
}

void
hs_api_set_events (hs_api_t *self, const char *endpoint)
{
    free (self->events);
    self->events = endpoint ? strdup (endpoint) : NULL;
}

int
hs_api_sim_lease (hs_api_t *self, uint64_t heartbeat_ms, uint64_t now,
                  sf_fault_t *fault)
{
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        const s_member_t *leader =
            s_member_by_id (self, hs_ring_leader (self->ring, NULL));
        return sf_fault_set (fault, SF_ENOTLEADER, "try %s",
                             leader ? leader->name
                                    : "again shortly: no leader is known");
    }
    //  As for this ring's own expiries (s_expire_sims): a lease spanning
    //  an election or a pause says nothing about the sim.
    if (!self->sim_lease_ms || self->leading_term != hs_ring_term (self->ring)
        || now - self->leading_since < self->sim_lease_ms)
        return sf_fault_set (fault, SF_EUNAVAILABLE,
                             "this leader has not led for a whole lease yet");
    return heartbeat_ms + self->sim_lease_ms >= sf_time_wall_ms () ? 1 : 0;
}

void
hs_api_submit_peer (hs_api_t *self, api_call_t *call, const char *instance,
                    uint64_t now)
{
    const api_msg_t *request = api_call_request (call);
    sf_fault_t fault;
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        const s_member_t *leader =
            s_member_by_id (self, hs_ring_leader (self->ring, NULL));
        char message [128];
        snprintf (message, sizeof message, "try %s",
                  leader ? leader->name : "again shortly: no leader is known");
        api_router_fail (self->router, &call, SF_ENOTLEADER, message);
        return;
    }
    json_t *args = json_deep_copy (request->root);
    json_object_set_new (args, "instance", json_string (instance));
    if (hs_fsm_check (request->op, args, &fault))
        api_router_fail (self->router, &call, fault.error, fault.message);
    else
        s_write (self, call, api_call_principal (call), args, now);
    json_decref (args);
}

void
hs_api_set_instance (hs_api_t *self, const char *instance)
{
    free (self->instance);
    self->instance = instance ? strdup (instance) : NULL;
}

void
hs_api_set_foreign (hs_api_t *self, hs_api_foreign_fn *foreign_fn,
                    void *context)
{
    self->foreign_fn = foreign_fn;
    self->foreign_context = context;
}

void
hs_api_set_counters (hs_api_t *self, hs_api_counters_fn *counters_fn,
                     void *context)
{
    self->counters_fn = counters_fn;
    self->counters_context = context;
}

void
hs_api_set_ask_timeout (hs_api_t *self, uint64_t timeout_ms)
{
    self->ask_timeout_ms = timeout_ms;
}

void
hs_api_set_registration_open (hs_api_t *self, bool open)
{
    self->registration_open = open;
}

//  A command's RESULT decided an ask transfer this leader holds the
//  request of: answer it.
static void
s_ask_decided (hs_api_t *self, raft_index index, const json_t *result)
{
    json_t *granted = json_object_get (result, "granted");
    json_t *transfer = json_object_get (result, "transfer");
    if (!json_is_boolean (granted) || !json_is_integer (transfer)
        || json_is_true (json_object_get (result, "pending")))
        return;
    char id [24];
    snprintf (id, sizeof id, "%lld", (long long) json_integer_value (transfer));
    api_call_t *call = (api_call_t *) zhashx_lookup (self->asks, id);
    if (!call)
        return;
    zhashx_delete (self->asks, id);
    if (json_is_true (granted)) {
        json_t *copy = json_deep_copy (result);
        json_object_set_new (copy, "index", json_integer ((json_int_t) index));
        s_reply (self, &call, copy);
        return;
    }
    const char *reason = json_string_value (json_object_get (result, "reason"));
    char message [160];
    snprintf (message, sizeof message,
              reason && streq (reason, "timeout")
                  ? "the authority asked did not answer in time"
              : reason && streq (reason, "stale")
                  ? "another transfer took the entity first"
                  : "the authority asked denied the transfer");
    api_router_fail (self->router, &call, SF_EDENIED, message);
}

bool
hs_api_submit_own (hs_api_t *self, const char *op, json_t *args)
{
    uint8_t *data;
    size_t size;
    int rc = hs_ring_role (self->ring) == HS_RING_LEADER ? s_encode (
                 op, zcert_public_txt (self->cert), true, args, &data, &size)
                                                         : -1;
    json_decref (args);
    if (rc)
        return false;
    //  With the writes of this loop turn: one append, one flush.
    s_write_t *write = (s_write_t *) zmalloc (sizeof (s_write_t));
    write->command = data;
    write->size = size;
    zlistx_add_end (self->unsubmitted, write);
    return true;
}

//  Submit OP with ARGS (taken) as a command of the ring's own, signed by
//  this member as an administrator, answered by nobody. Returns true if
//  it was submitted.
static bool
s_submit_own (hs_api_t *self, const char *op, json_t *args, uint64_t now)
{
    uint8_t *data;
    size_t size;
    int rc =
        s_encode (op, zcert_public_txt (self->cert), true, args, &data, &size);
    json_decref (args);
    if (rc)
        return false;
    sf_fault_t fault;
    raft_index index = hs_ring_submit (self->ring, data, size, now, &fault);
    free (data);
    if (!index)
        return false;
    s_write_t *write = (s_write_t *) zmalloc (sizeof (s_write_t));
    write->index = index;  //  no call: nobody to answer
    write->term = hs_ring_term (self->ring);
    zlistx_add_end (self->writes, write);
    return true;
}

//  True if a leader's check every PERIOD ms, last done at *CHECKED, is due
//  at NOW; marks it done.
static bool
s_leader_check_due (hs_api_t *self, uint64_t *checked, uint64_t period,
                    uint64_t now)
{
    if (now - *checked < period || hs_ring_role (self->ring) != HS_RING_LEADER
        || !hs_ring_read_ready (self->ring))
        return false;
    *checked = now;
    return true;
}

//  The leader, four times a second: ask transfers past their deadline are
//  refused by a command of the ring's own (the deny on timeout).
static void
s_expire_asks (hs_api_t *self, uint64_t now)
{
    if (!s_leader_check_due (self, &self->asks_checked, 250, now))
        return;
    zlist_t *expired = hs_fsm_expired_transfers (self->fsm, sf_time_wall_ms ());
    for (const char *id = (const char *) zlist_first (expired); id;
         id = (const char *) zlist_next (expired))
        s_submit_own (self, "authority.expire",
                      json_pack ("{s:I}", "transfer",
                                 (json_int_t) strtoll (id, NULL, 10)),
                      now);
    zlist_destroy (&expired);
}

//  The leader, once a second: a sim silent past its lease is declared
//  dead and its entities orphaned (a command of the ring's own, decided by
//  every member from the time and lease in it). Not before this node has
//  led for a whole lease without pausing: while the ring had no leader, or
//  its loop stood still, no sim could beat, so a lease spanning an
//  election or a pause says nothing about the sim.
static void
s_expire_sims (hs_api_t *self, uint64_t now)
{
    if (!self->sim_lease_ms || now - self->leading_since < self->sim_lease_ms
        || !s_leader_check_due (self, &self->lease_checked, 1000, now))
        return;
    zlist_t *expired =
        hs_fsm_expired_sims (self->fsm, sf_time_wall_ms (), self->sim_lease_ms);
    for (const char *name = (const char *) zlist_first (expired); name;
         name = (const char *) zlist_next (expired))
        if (s_submit_own (self, "sim.expire",
                          json_pack ("{s:s,s:I}", "sim", name, "lease_ms",
                                     (json_int_t) self->sim_lease_ms),
                          now))
            sf_log_notice ("hs_api: sim %s missed its heartbeats for %llu ms: "
                           "orphaning its entities",
                           name, (unsigned long long) self->sim_lease_ms);
    zlist_destroy (&expired);
}

//  A leader that finds no signing key in the applied state submits
//  ring.key, once per term, before the writes it takes (grants.md section
//  2). The applied state may lag the log: a key committed but not yet
//  applied makes this one refused, which changes nothing.
static void
s_ensure_ring_key (hs_api_t *self, uint64_t now)
{
    raft_term term = hs_ring_term (self->ring);
    if (hs_ring_role (self->ring) != HS_RING_LEADER || self->key_term == term)
        return;
    if (hs_fsm_has_ring_key (self->fsm)) {
        self->key_term = term;
        return;
    }
    json_t *args = json_object ();
    s_add_key_pair (args);
    if (s_submit_own (self, "ring.key", args, now)) {
        self->key_term = term;
        sf_log_notice ("hs_api: the ring has no signing key: submitted one");
    }
}

void
hs_api_progress (hs_api_t *self, uint64_t now)
{
    s_ensure_ring_key (self, now);
    bool paused = now - self->progressed > self->pause_ms;
    self->progressed = now;
    if (hs_ring_role (self->ring) != HS_RING_LEADER) {
        //  A later leadership starts from fresh reports.
        if (self->leading_term)
            hs_load_clear (self->load);
        self->leading_term = 0;
    }
    else if (self->leading_term != hs_ring_term (self->ring) || paused) {
        self->leading_term = hs_ring_term (self->ring);
        self->leading_since = now;
        //  Its first round waits for every sim's report to this leader.
        if (self->balance)
            hs_balance_reset (self->balance, now);
    }
    s_expire_sims (self, now);
    s_expire_asks (self, now);
    if (self->job && self->job->stage == S_JOB_STANDBY && self->job->index == 0)
        s_job_join (self, now);
    s_job_progress (self, now);
    bool leading = hs_ring_role (self->ring) == HS_RING_LEADER;
    raft_term term = hs_ring_term (self->ring);
    bool waiting = zlistx_size (self->writes) || zlistx_size (self->waiting)
                   || self->batch || zhashx_size (self->asks);
    if (waiting && (!leading || (self->batch && self->batch->term != term)))
        s_fail_all (self, "this node lost the leadership; retry");

    //  Writes whose index passed without being applied as commands were
    //  overwritten (hs_api_applied answers the rest).
    s_write_t *write = (s_write_t *) zlistx_first (self->writes);
    while (write && write->index <= hs_ring_applied_index (self->ring)) {
        zlistx_delete (self->writes, zlistx_cursor (self->writes));
        api_router_fail (self->router, &write->call, SF_EUNAVAILABLE,
                         "the write was replaced by another leader's entry; "
                         "retry");
        s_write_free (&write);
        write = (s_write_t *) zlistx_first (self->writes);
    }

    //  Reads whose leadership check passed and whose read index is applied
    //  are answered from the state machine.
    if (self->batch && self->batch->probe && !self->batch->confirmed
        && now >= self->batch->resend)
        s_probe_send (self, now);  //  a probe or its ack was lost
    if (self->batch && (!self->batch->probe || self->batch->confirmed)
        && hs_ring_applied_index (self->ring) >= self->batch->index) {
        api_call_t *call = (api_call_t *) zlistx_first (self->batch->calls);
        while (call) {
            s_read_now (self, call, api_call_request (call)->root);
            call = (api_call_t *) zlistx_next (self->batch->calls);
        }
        zlistx_purge (self->batch->calls);
        s_batch_destroy (&self->batch);
    }
    //  One barrier in flight at a time; reads that came meanwhile wait for
    //  the next one (a barrier sent before a read arrived proves nothing
    //  about the time after it).
    if (!self->batch && zlistx_size (self->waiting) && leading && self->prober
        && hs_ring_read_ready (self->ring)) {
        self->batch = (s_batch_t *) zmalloc (sizeof (s_batch_t));
        self->batch->probe = true;
        self->batch->index = hs_ring_commit_index (self->ring);
        self->batch->term = term;
        self->batch->calls = self->waiting;
        self->waiting = zlistx_new ();
        s_probe_send (self, now);
    }
    if (!self->batch && zlistx_size (self->waiting) && leading) {
        sf_fault_t fault;
        raft_index index = hs_ring_barrier (self->ring, now, &fault);
        if (index) {
            self->batch = (s_batch_t *) zmalloc (sizeof (s_batch_t));
            self->batch->index = index;
            self->batch->term = term;
            self->batch->calls = self->waiting;
            self->waiting = zlistx_new ();
        }
    }

    //  Forwards the leader never answered, or sent to a leader that is no
    //  longer one (it may have died: do not make the client wait).
    zlist_t *expired = zlist_new ();
    raft_id leader = hs_ring_leader (self->ring, NULL);
    s_forward_t *forward = (s_forward_t *) zhashx_first (self->forwards);
    while (forward) {
        if (forward->deadline <= now || (leader && leader != forward->leader))
            zlist_append (expired, (void *) zhashx_cursor (self->forwards));
        forward = (s_forward_t *) zhashx_next (self->forwards);
    }
    for (char *id = (char *) zlist_first (expired); id;
         id = (char *) zlist_next (expired)) {
        forward = (s_forward_t *) zhashx_lookup (self->forwards, id);
        if (forward->deadline <= now)
            api_router_fail (self->router, &forward->call, SF_ETIMEOUT,
                             "the leader did not answer in time; the request "
                             "may or may not have been applied");
        else
            api_router_fail (self->router, &forward->call, SF_EUNAVAILABLE,
                             "the leader changed while the request was "
                             "forwarded; it may or may not have been "
                             "applied: re-read, then retry");
        free (forward);
        zhashx_delete (self->forwards, id);
    }
    zlist_destroy (&expired);
}

zsock_t **
hs_api_forward_sockets (hs_api_t *self)
{
    return self->sockets;
}
