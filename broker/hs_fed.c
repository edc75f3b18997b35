/*  hs_fed: the federation socket and the peer instances it admits. */

#include "broker/hs_fed.h"
#include "common/sf_cert.h"
#include "common/sf_curve.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_name.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"
#include "protocol/api_router.h"

#include <assert.h>
#include <string.h>
#include <unistd.h>

//  A member of a peer instance as configured.
typedef struct {
    char *instance;                   //  its instance's name
    char *name;                       //  its section name
    char *endpoint;                   //  its federation endpoint
    char key [SF_CERT_KEY_TEXT + 1];  //  its public key, Z85
    bool leads;                       //  its instance's requests go to it first
} s_peer_t;

//  Longest global name: a name, '@', an instance.
#define S_GLOBAL_MAX (64 + 1 + SF_NAME_MAX_INSTANCE)

//  Per member tried, how long a lookup waits for its answer.
#define S_ATTEMPT_MS 1000

//  After a member answers that it cannot serve now (not the leader, none
//  known, unavailable), how long before the next member is tried.
#define S_RETRY_MS 200

//  Foreign names kept at most; past that the cache starts over.
#define S_CACHE_MAX 10000

//  Requests waiting at most; past that a new one is refused at once, so a
//  peer instance that does not answer costs bounded memory.
#define S_CALLS_MAX 1000

//  A request waiting for a peer instance's answer.
typedef struct {
    uint64_t id;                               //  the request's id
    char instance [SF_NAME_MAX_INSTANCE + 1];  //  the instance asked
    json_t *request;                           //  op and arguments
    size_t member;         //  the peer member asked (index into peers)
    size_t tried;          //  attempts so far
    uint64_t attempt_ms;   //  how long one member is given
    uint64_t due_ms;       //  when the member asked is given up on
    uint64_t deadline_ms;  //  when the request is given up on
    hs_fed_reply_fn *fn;
    void *arg;
} s_call_t;

//  A foreign name's entry, as its instance answered it.
typedef struct {
    json_t *entry;
    uint64_t fetched_ms;
} s_cached_t;

struct _hs_fed_t {
    char *instance;        //  this instance's name
    char *node;            //  this member's name
    api_router_t *router;  //  the federation socket
    hs_fsm_t *fsm;         //  the applied state, for lookups
    hs_fed_status_fn *status;
    void *status_arg;
    hs_fed_claim_fn *claim;  //  serves fed.claim, or NULL
    void *claim_arg;
    s_peer_t *peers;
    size_t n_peers;
    zsock_t **links;  //  a DEALER per peer member, NULL-terminated
    zlistx_t *calls;  //  s_call_t waiting for answers
    zhashx_t *cache;  //  "KIND NAME@INSTANCE" -> s_cached_t
    uint64_t key_ttl_ms;
    uint64_t next_id;
    hs_fed_lease_fn *lease;  //  says whether a sim's lease holds
    void *lease_arg;
};

static void s_call_end (hs_fed_t *self, void *cursor, s_call_t *call,
                        const json_t *reply, const sf_fault_t *fault);

static void
s_call_destroy (void **item)
{
    s_call_t *call = (s_call_t *) *item;
    if (call)
        json_decref (call->request);
    free (call);
    *item = NULL;
}

static void
s_cached_destroy (void **item)
{
    s_cached_t *cached = (s_cached_t *) *item;
    if (cached) {
        json_decref (cached->entry);
        free (cached);
    }
    *item = NULL;
}

bool
hs_fed_configured (sf_config_t *config)
{
    zlist_t *instances = sf_config_names (config, "federation");
    bool peers = zlist_size (instances) > 0;
    zlist_destroy (&instances);
    return peers || sf_config_str (config, "homeserver/federation");
}

//  Read every peer member of CONFIG's federation section into SELF. FILE
//  names the config in faults. Returns 0, or -1 with FAULT.
static int
s_peers_load (hs_fed_t *self, sf_config_t *config, sf_fault_t *fault)
{
    const char *file = sf_config_filename (config);
    zlist_t *instances = sf_config_names (config, "federation");
    int rc = 0;
    for (char *instance = (char *) zlist_first (instances); instance && rc == 0;
         instance = (char *) zlist_next (instances)) {
        char prefix [300], path [400];
        snprintf (prefix, sizeof prefix, "federation/%s/member", instance);
        zlist_t *members = sf_config_names (config, prefix);
        if (!sf_name_instance_valid (instance))
            rc = sf_fault_set (fault, SF_EINVAL,
                               "config %s: federation/%s: an instance name "
                               "is 1 to 32 of a-z, 0-9 and '-'",
                               file, instance);
        else if (streq (instance, self->instance))
            rc = sf_fault_set (fault, SF_EINVAL,
                               "config %s: federation/%s is this instance "
                               "(homeserver/instance)",
                               file, instance);
        else if (zlist_size (members) == 0)
            rc = sf_fault_set (fault, SF_EINVAL,
                               "config %s: federation/%s has no member", file,
                               instance);
        self->peers = (s_peer_t *) realloc (
            self->peers,
            (self->n_peers + zlist_size (members) + 1) * sizeof (s_peer_t));
        for (char *name = (char *) zlist_first (members); name && rc == 0;
             name = (char *) zlist_next (members)) {
            snprintf (path, sizeof path, "%s/%s/federation", prefix, name);
            const char *endpoint = sf_config_str (config, path);
            snprintf (path, sizeof path, "%s/%s/key", prefix, name);
            const char *key = sf_config_str (config, path);
            if (!endpoint || !key) {
                rc = sf_fault_set (fault, SF_EINVAL,
                                   "config %s: %s/%s needs federation and "
                                   "key (missing %s)",
                                   file, prefix, name,
                                   !endpoint ? "federation" : "key");
                break;
            }
            s_peer_t *peer = &self->peers [self->n_peers];
            memset (peer, 0, sizeof *peer);
            sf_fault_t why;
            if (sf_cert_load_public (key, peer->key, &why)) {
                rc = sf_fault_set (fault, why.error, "config %s: %s/%s: %s",
                                   file, prefix, name, why.message);
                break;
            }
            const char *other = hs_fed_instance_of (self, peer->key);
            if (other)
                rc = sf_fault_set (fault, SF_EINVAL,
                                   "config %s: %s/%s has the key of a member "
                                   "of instance '%s' too: a key speaks for one "
                                   "instance",
                                   file, prefix, name, other);
            peer->instance = strdup (instance);
            peer->name = strdup (name);
            peer->endpoint = strdup (endpoint);
            self->n_peers++;
        }
        zlist_destroy (&members);
    }
    zlist_destroy (&instances);
    return rc;
}

//  The cache's key for KIND's NAME (global).
static void
s_cache_key (char *out, size_t size, const char *kind, const char *name)
{
    snprintf (out, size, "%s %s", kind, name);
}

//  Keep ENTRY (lent) as KIND's NAME at NOW.
static void
s_cache_put (hs_fed_t *self, const char *kind, const char *name,
             const json_t *entry, uint64_t now)
{
    if (zhashx_size (self->cache) >= S_CACHE_MAX)
        zhashx_purge (self->cache);
    char key [S_GLOBAL_MAX + 16];
    s_cache_key (key, sizeof key, kind, name);
    s_cached_t *cached = (s_cached_t *) zmalloc (sizeof (s_cached_t));
    cached->entry = json_deep_copy (entry);
    cached->fetched_ms = now;
    zhashx_update (self->cache, key, cached);
}

//  fed.status: who this member is, and whether it leads.
static int
s_fed_status (void *context, const api_msg_t *request, const char *principal,
              json_t *reply, sf_fault_t *fault)
{
    (void) request;
    (void) principal;
    (void) fault;
    hs_fed_t *self = (hs_fed_t *) context;
    json_object_set_new (reply, "instance", json_string (self->instance));
    json_object_set_new (reply, "node", json_string (self->node));
    if (self->status) {
        json_t *status = self->status (self->status_arg);
        json_object_update (reply, status);
        json_decref (status);
    }
    return 0;
}

//  Read REQUEST's "name" and "kind" into NAME and KIND; FIELDS lists
//  every field it may have. Returns 0, or -1 with FAULT.
static int
s_name_kind (const api_msg_t *request, const char *const *fields,
             const char **name, const char **kind, sf_fault_t *fault)
{
    return sf_json_only (request->root, fields, fault)
                   || sf_json_string (request->root, "name", true, name, fault)
                   || sf_json_string (request->root, "kind", true, kind, fault)
               ? -1
               : 0;
}

//  fed.lookup: a name of this instance, from the applied state. An
//  instance answers for its own names only.
static int
s_fed_lookup (void *context, const api_msg_t *request, const char *principal,
              json_t *reply, sf_fault_t *fault)
{
    (void) principal;
    hs_fed_t *self = (hs_fed_t *) context;
    static const char *const fields [] = {"op",   "id",    "name",
                                          "kind", "lease", NULL};
    const char *name, *kind;
    bool lease = false;
    if (s_name_kind (request, fields, &name, &kind, fault)
        || sf_json_bool (request->root, "lease", false, &lease, fault))
        return -1;
    //  NAME@INSTANCE must be ours; a bare name is.
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    if (!sf_name_split (name, local, instance))
        return sf_fault_set (fault, SF_EINVAL, "field 'name' is not a name");
    if (instance [0] && !streq (instance, self->instance))
        return sf_fault_set (fault, SF_EINVAL,
                             "'%s' is not a name of instance '%s': ask its "
                             "own instance",
                             name, self->instance);
    json_t *entry = hs_fsm_lookup (self->fsm, kind, local, fault);
    if (!entry)
        return -1;
    //  Whether the sim's lease here holds, by this ring's leader: its
    //  homes orphan what it holds there when it does not (federation.md
    //  section 6, the pull).
    json_t *beat = json_object_get (entry, "heartbeat_ms");
    if (lease) {
        int held =
            json_is_integer (beat) && self->lease
                ? self->lease (self->lease_arg,
                               (uint64_t) json_integer_value (beat), fault)
                : sf_fault_set (fault, SF_EINVAL,
                                "only a sim of this instance has a "
                                "lease here");
        if (held < 0) {
            json_decref (entry);
            return -1;
        }
        json_object_set_new (entry, "lease",
                             json_string (held ? "held" : "expired"));
    }
    json_object_del (entry, "heartbeat_ms");
    char global [65 + SF_NAME_MAX_INSTANCE + 1];
    snprintf (global, sizeof global, "%s@%s", local, self->instance);
    json_object_set_new (entry, "name", json_string (global));
    json_object_update (reply, entry);
    json_decref (entry);
    return 0;
}

//  fed.rekeyed: a peer instance's name has a new key. Only the instance
//  PRINCIPAL speaks for may say so of its names.
static int
s_fed_rekeyed (void *context, const api_msg_t *request, const char *principal,
               json_t *reply, sf_fault_t *fault)
{
    (void) reply;
    hs_fed_t *self = (hs_fed_t *) context;
    static const char *const fields [] = {"op",   "id",  "name",
                                          "kind", "key", NULL};
    const char *name, *kind, *key;
    if (s_name_kind (request, fields, &name, &kind, fault)
        || sf_json_string (request->root, "key", true, &key, fault))
        return -1;
    const char *speaker = hs_fed_instance_of (self, principal);
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    if (!sf_name_split (name, local, instance) || !speaker
        || !streq (instance, speaker))
        return sf_fault_set (fault, SF_EUNAUTHORIZED,
                             "instance '%s' speaks only for its own names, "
                             "not '%s'",
                             speaker ? speaker : "?", name);
    if ((!streq (kind, "sim") && !streq (kind, "player"))
        || strlen (key) != SF_CERT_KEY_TEXT)
        return sf_fault_set (fault, SF_EINVAL,
                             "fed.rekeyed needs a kind (sim or player) and a "
                             "40-character key");
    //  Kept as if looked up now: the push is the instance's own word.
    char cache_key [S_GLOBAL_MAX + 16];
    s_cache_key (cache_key, sizeof cache_key, kind, name);
    s_cached_t *cached = (s_cached_t *) zhashx_lookup (self->cache, cache_key);
    json_t *entry = cached
                        ? json_deep_copy (cached->entry)
                        : json_pack ("{s:s,s:s}", "name", name, "kind", kind);
    json_object_set_new (entry, "key", json_string (key));
    s_cache_put (self, kind, name, entry, sf_time_mono_ms ());
    json_decref (entry);
    return 0;
}

static const api_msg_op_t s_ops [] = {
    {"fed.status", s_fed_status},
    {"fed.lookup", s_fed_lookup},
    {"fed.rekeyed", s_fed_rekeyed},
    {NULL, NULL},
};

hs_fed_t *
hs_fed_new (sf_config_t *config, const char *node, zcert_t *cert, zactor_t *zap,
            hs_fsm_t *fsm, hs_fed_status_fn *status, void *arg,
            sf_fault_t *fault)
{
    const char *file = sf_config_filename (config);
    const char *instance = sf_config_str (config, "homeserver/instance");
    const char *endpoint = sf_config_str (config, "homeserver/federation");
    if (!instance || !endpoint) {
        sf_fault_set (
            fault, SF_EINVAL,
            "config %s: federation needs homeserver/instance and "
            "homeserver/federation (missing %s)",
            file, !instance ? "homeserver/instance" : "homeserver/federation");
        return NULL;
    }
    if (!sf_name_instance_valid (instance)) {
        sf_fault_set (fault, SF_EINVAL,
                      "config %s: homeserver/instance '%s': an instance name "
                      "is 1 to 32 of a-z, 0-9 and '-'",
                      file, instance);
        return NULL;
    }
    hs_fed_t *self = (hs_fed_t *) zmalloc (sizeof (hs_fed_t));
    self->instance = strdup (instance);
    self->node = strdup (node);
    self->fsm = fsm;
    self->status = status;
    self->status_arg = arg;
    if (s_peers_load (self, config, fault))
        goto failed;
    for (size_t at = 0; at < self->n_peers; at++) {
        if (streq (self->peers [at].key, zcert_public_txt (cert))) {
            sf_fault_set (fault, SF_EINVAL,
                          "config %s: federation/%s/member/%s has this "
                          "member's own key",
                          file, self->peers [at].instance,
                          self->peers [at].name);
            goto failed;
        }
        sf_zap_allow (zap, HS_FED_DOMAIN, self->peers [at].key);
    }
    self->router = api_router_new (endpoint, cert, HS_FED_DOMAIN, fault);
    if (!self->router)
        goto failed;
    self->key_ttl_ms =
        (uint64_t) sf_config_int (config, "homeserver/federation_key_ttl");
    if (!self->key_ttl_ms)
        self->key_ttl_ms = 10000;
    self->calls = zlistx_new ();
    zlistx_set_destructor (self->calls, s_call_destroy);
    self->cache = zhashx_new ();
    zhashx_set_destructor (self->cache, s_cached_destroy);
    self->links =
        (zsock_t **) zmalloc ((self->n_peers + 1) * sizeof (zsock_t *));
    for (size_t at = 0; at < self->n_peers; at++) {
        //  Dialled at once and kept: libzmq reconnects by itself, and a
        //  request to a member that is down waits S_ATTEMPT_MS at most.
        zsock_t *link = zsock_new (ZMQ_DEALER);
        zsock_set_linger (link, 0);
        zsock_set_sndhwm (link, 1000);
        sf_curve_client (link, cert, self->peers [at].key);
        zsock_connect (link, "%s", self->peers [at].endpoint);
        self->links [at] = link;
    }
    return self;
failed:
    hs_fed_destroy (&self);
    return NULL;
}

void
hs_fed_destroy (hs_fed_t **self_p)
{
    if (*self_p) {
        hs_fed_t *self = *self_p;
        api_router_destroy (&self->router);
        //  Whoever waits is told, so it can answer its own caller.
        s_call_t *call;
        while (self->calls
               && (call = (s_call_t *) zlistx_first (self->calls))) {
            sf_fault_t fault;
            sf_fault_set (&fault, SF_EUNAVAILABLE,
                          "this homeserver is stopping");
            s_call_end (self, zlistx_cursor (self->calls), call, NULL, &fault);
        }
        for (size_t at = 0; self->links && self->links [at]; at++)
            zsock_destroy (&self->links [at]);
        free (self->links);
        zlistx_destroy (&self->calls);
        zhashx_destroy (&self->cache);
        for (size_t at = 0; at < self->n_peers; at++) {
            free (self->peers [at].instance);
            free (self->peers [at].name);
            free (self->peers [at].endpoint);
        }
        free (self->peers);
        free (self->instance);
        free (self->node);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
hs_fed_socket (hs_fed_t *self)
{
    return api_router_socket (self->router);
}

const char *
hs_fed_endpoint (hs_fed_t *self)
{
    return api_router_endpoint (self->router);
}

const char *
hs_fed_instance (hs_fed_t *self)
{
    return self->instance;
}

const char *
hs_fed_node (hs_fed_t *self)
{
    return self->node;
}

const char *
hs_fed_instance_of (hs_fed_t *self, const char *key)
{
    for (size_t at = 0; at < self->n_peers; at++)
        if (streq (self->peers [at].key, key))
            return self->peers [at].instance;
    return NULL;
}

void
hs_fed_on_claim (hs_fed_t *self, hs_fed_claim_fn *fn, void *arg)
{
    self->claim = fn;
    self->claim_arg = arg;
}

int
hs_fed_handle (hs_fed_t *self)
{
    api_call_t *call = api_router_recv (self->router, "hs_fed");
    if (!call)
        return 0;
    const char *op = api_call_request (call)->op;
    //  Traces name the sender as its instance's member, "hs1@east".
    for (size_t at = 0; at < self->n_peers; at++)
        if (streq (self->peers [at].key, api_call_principal (call))) {
            char label [S_GLOBAL_MAX + 1];
            snprintf (label, sizeof label, "%s@%s", self->peers [at].name,
                      self->peers [at].instance);
            api_call_set_label (call, label);
        }
    //  A claim or a fence waits for its commit: served by the ring's
    //  handler, with the instance its sender's key speaks for.
    if (op
        && (streq (op, "fed.claim") || streq (op, "fed.fenced")
            || streq (op, "fed.withdraw") || streq (op, "fed.read")
            || streq (op, "fed.expired") || streq (op, "fed.checkpoint")
            || streq (op, "fed.release"))
        && self->claim)
        self->claim (self->claim_arg, call,
                     hs_fed_instance_of (self, api_call_principal (call)));
    else
        api_router_dispatch (self->router, &call, s_ops, self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Asking peer instances

zsock_t **
hs_fed_links (hs_fed_t *self)
{
    return self->links;
}

//  The index of the next member of INSTANCE after AFTER (SIZE_MAX: the
//  first), or SIZE_MAX if there is none.
static size_t
s_member_next (hs_fed_t *self, const char *instance, size_t after)
{
    for (size_t at = after == SIZE_MAX ? 0 : after + 1; at < self->n_peers;
         at++)
        if (streq (self->peers [at].instance, instance))
            return at;
    return SIZE_MAX;
}

//  The member of INSTANCE a request goes to first: the one that last led,
//  else the first configured.
static size_t
s_member_first (hs_fed_t *self, const char *instance)
{
    for (size_t at = 0; at < self->n_peers; at++)
        if (self->peers [at].leads
            && streq (self->peers [at].instance, instance))
            return at;
    return s_member_next (self, instance, SIZE_MAX);
}

//  The member of INSTANCE after AFTER, round and round.
static size_t
s_member_after (hs_fed_t *self, const char *instance, size_t after)
{
    size_t member = s_member_next (self, instance, after);
    return member != SIZE_MAX ? member
                              : s_member_next (self, instance, SIZE_MAX);
}

//  Make AT the member its instance's requests go to first.
static void
s_member_leads (hs_fed_t *self, size_t at)
{
    for (size_t other = 0; other < self->n_peers; other++)
        if (streq (self->peers [other].instance, self->peers [at].instance))
            self->peers [other].leads = other == at;
}

//  Send REQUEST (lent) to peer member AT without blocking. Returns 0, or
//  -1 if its queue is full (the attempt then times out like any other).
static int
s_send (hs_fed_t *self, size_t at, const json_t *request)
{
    char *text = json_dumps (request, JSON_COMPACT);
    if (!text)
        return -1;
    int rc = zmq_send (zsock_resolve (self->links [at]), text, strlen (text),
                       ZMQ_DONTWAIT);
    free (text);
    return rc < 0 ? -1 : 0;
}

//  Send CALL to its current member, due an attempt after NOW (never past
//  its deadline).
static void
s_attempt (hs_fed_t *self, s_call_t *call, uint64_t now)
{
    json_object_set_new (call->request, "id",
                         json_integer ((json_int_t) call->id));
    s_send (self, call->member, call->request);
    call->tried++;
    call->due_ms = now + call->attempt_ms;
    if (call->due_ms > call->deadline_ms)
        call->due_ms = call->deadline_ms;
}

//  End CALL (at CURSOR in the list) with REPLY or FAULT.
static void
s_call_end (hs_fed_t *self, void *cursor, s_call_t *call, const json_t *reply,
            const sf_fault_t *fault)
{
    hs_fed_reply_fn *fn = call->fn;
    void *arg = call->arg;
    json_t *kept = json_incref ((json_t *) reply);
    char member [S_GLOBAL_MAX + 1];
    snprintf (member, sizeof member, "%s@%s", self->peers [call->member].name,
              call->instance);
    zlistx_delete (self->calls, cursor);
    fn (arg, kept, reply ? member : NULL, fault);
    json_decref (kept);
}

void
hs_fed_call (hs_fed_t *self, const char *instance, json_t **request_p,
             uint64_t attempt_ms, uint64_t timeout_ms, uint64_t now,
             hs_fed_reply_fn *fn, void *arg)
{
    json_t *request = *request_p;
    *request_p = NULL;
    sf_fault_t fault;
    size_t member = s_member_first (self, instance);
    if (member == SIZE_MAX)
        sf_fault_set (&fault, SF_ENOTFOUND, "no instance '%s' in federation",
                      instance);
    else if (zlistx_size (self->calls) >= S_CALLS_MAX)
        sf_fault_set (&fault, SF_EUNAVAILABLE,
                      "%d requests wait for peer instances already; retry "
                      "later",
                      S_CALLS_MAX);
    else {
        s_call_t *call = (s_call_t *) zmalloc (sizeof (s_call_t));
        call->id = ++self->next_id;
        snprintf (call->instance, sizeof call->instance, "%s", instance);
        call->request = request;
        call->member = member;
        call->attempt_ms = attempt_ms;
        call->deadline_ms = now + timeout_ms;
        call->fn = fn;
        call->arg = arg;
        zlistx_add_end (self->calls, call);
        s_attempt (self, call, now);
        return;
    }
    json_decref (request);
    fn (arg, NULL, NULL, &fault);
}

//  A member answered CALL that it cannot serve it now (FAULT): send it to
//  the leader it names at once, else to the next member shortly.
static void
s_call_redirect (hs_fed_t *self, s_call_t *call, const sf_fault_t *fault,
                 uint64_t now)
{
    const char *named = fault->error == SF_ENOTLEADER
                                && strncmp (fault->message, "try ", 4) == 0
                            ? fault->message + 4
                            : NULL;
    for (size_t at = 0; named && at < self->n_peers; at++)
        if (at != call->member
            && streq (self->peers [at].instance, call->instance)
            && streq (self->peers [at].name, named)) {
            s_member_leads (self, at);
            call->member = at;
            s_attempt (self, call, now);
            return;
        }
    call->due_ms = now + S_RETRY_MS < call->deadline_ms ? now + S_RETRY_MS
                                                        : call->deadline_ms;
}

int
hs_fed_receive (hs_fed_t *self, zsock_t *link, uint64_t now)
{
    for (int count = 0; count < 64 && (zsock_events (link) & ZMQ_POLLIN);
         count++) {
        zframe_t *frame = zframe_recv (link);
        json_t *reply = frame ? json_loadb ((const char *) zframe_data (frame),
                                            zframe_size (frame), 0, NULL)
                              : NULL;
        zframe_destroy (&frame);
        json_t *id = json_object_get (reply, "id");
        for (s_call_t *call = (s_call_t *) zlistx_first (self->calls);
             call && json_is_integer (id);
             call = (s_call_t *) zlistx_next (self->calls)) {
            if ((json_int_t) call->id != json_integer_value (id))
                continue;
            sf_fault_t fault;
            sf_fault_clear (&fault);
            if (!api_msg_reply_fault (reply, &fault))
                s_call_end (self, zlistx_cursor (self->calls), call, reply,
                            NULL);
            else if (fault.error == SF_ENOTLEADER
                     || fault.error == SF_EUNAVAILABLE)
                s_call_redirect (self, call, &fault, now);
            else
                s_call_end (self, zlistx_cursor (self->calls), call, NULL,
                            &fault);
            break;
        }
        json_decref (reply);
    }
    return 0;
}

void
hs_fed_tick (hs_fed_t *self, uint64_t now)
{
    //  Ending a request calls its owner, which may start another: the walk
    //  starts over after each end.
    bool ended = true;
    while (ended) {
        ended = false;
        for (s_call_t *call = (s_call_t *) zlistx_first (self->calls); call;
             call = (s_call_t *) zlistx_next (self->calls)) {
            if (now < call->due_ms)
                continue;
            //  The member asked did not answer in time: the next one is
            //  asked first from now on, and this request goes on to it.
            call->member = s_member_after (self, call->instance, call->member);
            s_member_leads (self, call->member);
            if (now < call->deadline_ms) {
                s_attempt (self, call, now);
                continue;
            }
            sf_fault_t fault;
            sf_fault_set (&fault, SF_ETIMEOUT,
                          "instance '%s' did not answer (%zu attempt%s)",
                          call->instance, call->tried,
                          call->tried == 1 ? "" : "s");
            s_call_end (self, zlistx_cursor (self->calls), call, NULL, &fault);
            ended = true;
            break;
        }
    }
}

//  A lookup waiting for its instance's answer.
typedef struct {
    hs_fed_t *fed;
    char kind [8];                 //  "sim" or "player"
    char name [S_GLOBAL_MAX + 1];  //  NAME@INSTANCE
    hs_fed_lookup_fn *fn;
    void *arg;
} s_lookup_t;

//  What LOOKUP's instance answered: only what it says of the name asked
//  is kept.
static void
s_looked_up (void *arg, const json_t *reply, const char *member,
             const sf_fault_t *fault)
{
    (void) member;
    s_lookup_t *lookup = (s_lookup_t *) arg;
    sf_fault_t why;
    json_t *entry = NULL;
    if (reply) {
        entry = json_pack ("{s:O?,s:O?,s:O?,s:O?,s:O?}", "name",
                           json_object_get (reply, "name"), "kind",
                           json_object_get (reply, "kind"), "key",
                           json_object_get (reply, "key"), "handoff",
                           json_object_get (reply, "handoff"), "state",
                           json_object_get (reply, "state"));
        const char *name = json_string_value (json_object_get (entry, "name"));
        if (entry && name && streq (lookup->name, name))
            s_cache_put (lookup->fed, lookup->kind, lookup->name, entry,
                         sf_time_mono_ms ());
        else {
            json_decref (entry);
            entry = NULL;
            fault = &why;
            sf_fault_set (&why, SF_EINTERNAL,
                          "instance answered for another name than '%s'",
                          lookup->name);
        }
    }
    else if (fault->error == SF_ETIMEOUT) {
        //  A name that cannot be looked up is unavailable, not late.
        sf_fault_set (&why, SF_EUNAVAILABLE, "%s", fault->message);
        fault = &why;
    }
    lookup->fn (lookup->arg, entry, entry ? NULL : fault);
    json_decref (entry);
    free (lookup);
}

void
hs_fed_lookup (hs_fed_t *self, const char *kind, const char *name, uint64_t now,
               hs_fed_lookup_fn *fn, void *arg)
{
    sf_fault_t fault;
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    if (!sf_name_split (name, local, instance) || !instance [0]) {
        sf_fault_set (&fault, SF_EINVAL, "'%s' is not NAME@INSTANCE", name);
        fn (arg, NULL, &fault);
        return;
    }
    char key [S_GLOBAL_MAX + 16];
    s_cache_key (key, sizeof key, kind, name);
    s_cached_t *cached = (s_cached_t *) zhashx_lookup (self->cache, key);
    if (cached && now - cached->fetched_ms < self->key_ttl_ms) {
        fn (arg, cached->entry, NULL);
        return;
    }
    size_t members = 0;
    for (size_t at = 0; at < self->n_peers; at++)
        members += streq (self->peers [at].instance, instance);
    s_lookup_t *lookup = (s_lookup_t *) zmalloc (sizeof (s_lookup_t));
    lookup->fed = self;
    snprintf (lookup->kind, sizeof lookup->kind, "%s", kind);
    snprintf (lookup->name, sizeof lookup->name, "%s", name);
    lookup->fn = fn;
    lookup->arg = arg;
    json_t *request = json_pack ("{s:s,s:s,s:s}", "op", "fed.lookup", "name",
                                 name, "kind", kind);
    //  Each member is given one attempt.
    hs_fed_call (self, instance, &request, S_ATTEMPT_MS,
                 (members ? members : 1) * S_ATTEMPT_MS, now, s_looked_up,
                 lookup);
}

void
hs_fed_push_key (hs_fed_t *self, const char *kind, const char *name,
                 const char *key)
{
    char global [S_GLOBAL_MAX + 1];
    snprintf (global, sizeof global, "%s@%s", name, self->instance);
    json_t *push = json_pack ("{s:s,s:I,s:s,s:s,s:s}", "op", "fed.rekeyed",
                              "id", (json_int_t) ++self->next_id, "name",
                              global, "kind", kind, "key", key);
    for (size_t at = 0; at < self->n_peers; at++)
        s_send (self, at, push);
    json_decref (push);
}

void
hs_fed_on_lease (hs_fed_t *self, hs_fed_lease_fn *fn, void *arg)
{
    self->lease = fn;
    self->lease_arg = arg;
}

json_t *
hs_fed_peer_instances (hs_fed_t *self)
{
    json_t *names = json_array ();
    for (size_t at = 0; at < self->n_peers; at++) {
        bool listed = false;
        for (size_t before = 0; before < at && !listed; before++)
            listed = streq (self->peers [before].instance,
                            self->peers [at].instance);
        if (!listed)
            json_array_append_new (names,
                                   json_string (self->peers [at].instance));
    }
    return names;
}

void
hs_fed_counters (hs_fed_t *self, json_t *counters)
{
    const api_router_counters_t *served = api_router_counters (self->router);
    json_object_set_new (counters, "federation_requests",
                         json_integer ((json_int_t) served->requests));
    json_object_set_new (counters, "federation_refused",
                         json_integer ((json_int_t) served->refused));
}

//  --------------------------------------------------------------------------
//  Self test

//  A config of TEXT, loaded from a file against the federation keys.
static sf_config_t *
s_test_config (const char *text)
{
    static const sf_config_key_t schema [] = {HS_FED_KEYS, {NULL}};
    char file [] = "/tmp/hs_fed_test_XXXXXX";
    int fd = mkstemp (file);
    assert (fd >= 0);
    ssize_t written = write (fd, text, strlen (text));
    assert (written == (ssize_t) strlen (text));
    close (fd);
    sf_fault_t fault;
    sf_config_t *config = sf_config_new (schema);
    int rc = sf_config_load (config, file, &fault);
    assert (rc == 0);
    unlink (file);
    return config;
}

int
hs_fed_test (bool verbose)
{
    if (verbose)
        printf (" * hs_fed: ");
    zactor_t *zap = sf_zap_new ();
    assert (zap);
    zcert_t *cert = zcert_new ();
    zcert_t *east = zcert_new ();
    char east_file [] = "/tmp/hs_fed_east_XXXXXX", own_file [64];
    int fd = mkstemp (east_file);
    assert (fd >= 0);
    close (fd);
    int rc = zcert_save_public (east, east_file);
    assert (rc == 0);
    snprintf (own_file, sizeof own_file, "%s.own", east_file);
    rc = zcert_save_public (cert, own_file);
    assert (rc == 0);
    char text [2048];
    sf_fault_t fault;

    //  Not configured: no endpoint, no peers
    sf_config_t *config = s_test_config ("homeserver\n    instance = \"w\"\n");
    assert (!hs_fed_configured (config));
    sf_config_destroy (&config);

    //  A peer instance with one member, pinned
    snprintf (text, sizeof text,
              "homeserver\n    instance = \"west\"\n"
              "    federation = \"tcp://127.0.0.1:*\"\n"
              "federation\n    east\n        member\n            hs1\n"
              "                federation = \"tcp://127.0.0.1:9\"\n"
              "                key = \"%s\"\n",
              east_file);
    config = s_test_config (text);
    assert (hs_fed_configured (config));
    hs_fed_t *fed =
        hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
    assert (fed);
    assert (streq (hs_fed_instance (fed), "west"));
    assert (streq (hs_fed_instance_of (fed, zcert_public_txt (east)), "east"));
    assert (!hs_fed_instance_of (fed, zcert_public_txt (cert)));
    assert (strncmp (hs_fed_endpoint (fed), "tcp://127.0.0.1:", 16) == 0);
    hs_fed_destroy (&fed);
    sf_config_destroy (&config);

    //  Misconfigurations name what is wrong
    static const struct {
        const char *instance, *peer, *endpoint;
        bool own_key;
        const char *expected;
    } bad [] = {
        {"West", "east", "tcp://127.0.0.1:9", false, "homeserver/instance"},
        {"west", "west", "tcp://127.0.0.1:9", false, "is this instance"},
        {"west", "e_1", "tcp://127.0.0.1:9", false, "an instance name"},
        {"west", "east", NULL, false, "missing federation"},
        {"west", "east", "tcp://127.0.0.1:9", true, "own key"},
    };
    for (size_t at = 0; at < sizeof bad / sizeof bad [0]; at++) {
        char endpoint [64] = "";
        if (bad [at].endpoint)
            snprintf (endpoint, sizeof endpoint,
                      "                federation = \"%s\"\n",
                      bad [at].endpoint);
        snprintf (text, sizeof text,
                  "homeserver\n    instance = \"%s\"\n"
                  "    federation = \"tcp://127.0.0.1:*\"\n"
                  "federation\n    %s\n        member\n            hs1\n"
                  "%s                key = \"%s\"\n",
                  bad [at].instance, bad [at].peer, endpoint,
                  bad [at].own_key ? own_file : east_file);
        config = s_test_config (text);
        sf_fault_clear (&fault);
        fed = hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
        assert (!fed && fault.error == SF_EINVAL);
        assert (strstr (fault.message, bad [at].expected));
        sf_config_destroy (&config);
    }
    //  One key in two instances
    snprintf (text, sizeof text,
              "homeserver\n    instance = \"west\"\n"
              "    federation = \"tcp://127.0.0.1:*\"\n"
              "federation\n    east\n        member\n            hs1\n"
              "                federation = \"tcp://127.0.0.1:9\"\n"
              "                key = \"%s\"\n"
              "    north\n        member\n            hs1\n"
              "                federation = \"tcp://127.0.0.1:8\"\n"
              "                key = \"%s\"\n",
              east_file, east_file);
    config = s_test_config (text);
    fed = hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
    assert (!fed && strstr (fault.message, "speaks for one instance"));
    sf_config_destroy (&config);
    //  A federation endpoint without an instance name
    config =
        s_test_config ("homeserver\n    federation = \"tcp://127.0.0.1:*\"\n");
    fed = hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
    assert (!fed && strstr (fault.message, "missing homeserver/instance"));
    sf_config_destroy (&config);

    unlink (east_file);
    unlink (own_file);
    zcert_destroy (&east);
    zcert_destroy (&cert);
    zactor_destroy (&zap);
    if (verbose)
        printf ("OK\n");
    return 0;
}
