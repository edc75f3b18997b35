/*  sim_api: the simulation server's client API. */

#include "peer/sim_api.h"
#include "peer/sim_authority.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_name.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"
#include "protocol/grant_msg.h"

#include <sodium.h>

//  Requests to the ring wait this long before the client hears timeout.
#define S_RING_TIMEOUT_MS 3000

//  How long a claim of another instance's entity may wait for its home
//  (authority.request ttl_ms): the ring is given a second more to say
//  what came of it.
#define S_FOREIGN_TTL_MS 5000

//  How long the former authority of a foreign entity claimed here may
//  open a session on the handoff channel (federation.md section 5).
#define S_VISIT_MS 30000

//  A claim of a foreign entity whose outcome is unknown (the ring or the
//  home did not answer) goes again under its request id for this long:
//  the home answers a repeat with what it decided (federation.md 6).
#define S_FOREIGN_RETRY_MS 12000

//  After a foreign claim's outcome was left unknown, the ring's feed is
//  followed for outcomes this long (the home remembers a claim 10 min).
#define S_OUTCOME_WAIT_MS (10 * 60 * 1000)
#define S_LIST_LIMIT 1000
//  Grants asked of the ring (entity.grant) at once, at most.
#define S_GRANT_FETCHES 64
//  A grant the ring could not give yet is asked for again after this.
#define S_GRANT_RETRY_MS 1000
//  A grant of ours for an epoch not held yet (a claim's, before its final
//  state comes) is kept this long; claims wait far less.
#define S_GRANT_KEEP_MS 30000

//  A grant of ours that came before the epoch it proves was taken.
typedef struct {
    uint64_t epoch;    //  the epoch it proves
    uint64_t kept_ms;  //  when it came (monotonic)
    size_t size;       //  bytes of its binary form
    uint8_t bytes [GRANT_MSG_MAX_SIZE];
} s_early_grant_t;

//  An entity held without the grant of its epoch naming our key.
typedef struct {
    bool asking;       //  an entity.grant is on the ring
    uint64_t next_ms;  //  not asked again before (monotonic)
} s_grant_need_t;

//  The calls of one claim (the core's claim id): the first entity.claim
//  and those that joined it, all answered alike.
typedef struct {
    zlist_t *calls;       //  api_call_t
    uint64_t started_us;  //  when the first call came (monotonic)
    json_t *transfer;     //  the ring's transfer id, or NULL
} s_claim_t;

struct _sim_api_t {
    sim_api_config_t config;  //  what we serve from
    uint64_t registered_ms;   //  0 until the ring knows us
    uint64_t beaten_ms;       //  the last heartbeat answered (0: none)
    uint64_t heartbeat_ms;    //  between heartbeats
    zlist_t *waiting;         //  s_waiting_t: calls waiting on the ring
    zlistx_t *subscriptions;  //  s_subscription_t
    uint64_t events_sent;     //  events delivered to subscribers
    uint64_t events_missed;   //  events dropped on full queues
    uint64_t traces;          //  traced updates so far (their ids)
    //  What this sim is the authority of, and its claims: the one copy
    //  of that logic (sim_authority). Its actions come to s_act.
    sim_authority_t *core;
    zhashx_t *claims;                //  claim id text -> s_claim_t
    struct _s_waiting_t *requested;  //  the claim the core just asked for
    bool take_failed;                //  the store could not take the last TAKE
    const json_t *event;     //  the ring's event being acted on, or NULL
    const char *event_node;  //  the member that published it
    bool *event_traced;      //  whether its hop is recorded already
    zlist_t *queued;         //  s_waiting_t: claims of this loop turn,
                             //  not sent yet (sim_api_flush)
    zlist_t *batches;        //  s_batch_t: batch requests on the ring
    //  Fencing without events (sim_api_check).
    zhashx_t *held;              //  path -> uint64_t epoch: what this sim held
                                 //  when its check of the ring began, or NULL
    zhashx_t *ring_held;         //  path -> uint64_t epoch: what the ring's
                                 //  pages so far say this sim holds
    bool checking;               //  a page of that check is on the ring
    bool checked_once;           //  a check completed since registering
    uint64_t checked_index;      //  the ring's taken_index it covered
    uint64_t checking_index;     //  the one the check under way covers
    uint64_t checked_seen;       //  the newest event seen when it started
    uint64_t checking_seen;      //  the same, for the check under way
    json_t *error_details;       //  what the failing request's error adds
    uint64_t authority_checks;   //  checks started
    uint64_t authority_adopted;  //  grants taken from a check, not an event
    uint64_t authority_checks_seen;    //  skipped: the events told it all
    uint64_t authority_checks_waited;  //  put off: the events lag the reply
    uint64_t foreign_checked_ms;     //  when foreign entities were last checked
    uint64_t unknown_until_ms;       //  a foreign claim's outcome may come in
                                     //  the ring's feed until then
    uint64_t authority_check_pages;  //  entity.list pages they read
    //  Our own grants (grants.md section 5): once the ring signs them, an
    //  entity held here is streamed only with the grant of its epoch.
    bool enforced;            //  a ring key is known: grants are needed
    uint8_t key [32];         //  our CURVE public key, which they name
    bool has_key;             //  KEY is set
    zhashx_t *early_grants;   //  path -> s_early_grant_t
    zhashx_t *grantless;      //  path -> s_grant_need_t
    size_t grant_fetches;     //  entity.grant requests on the ring
    uint64_t grants_fetched;  //  entity.grant answers with a grant
};

//  Claims sent to the ring as one batch request; its waiting calls are
//  in the API's waiting list, in the order of the request's paths.
typedef struct {
    sim_api_t *api;
    zlist_t *calls;  //  s_waiting_t, lent
} s_batch_t;

static void
s_batch_destroy (s_batch_t **self_p)
{
    if (*self_p) {
        zlist_destroy (&(*self_p)->calls);
        free (*self_p);
        *self_p = NULL;
    }
}

//  One client's interest in a prefix.
typedef struct {
    zframe_t *routing_id;  //  the client's connection
    char *prefix;          //  paths it follows
    uint64_t missed;       //  events dropped since the last delivered
} s_subscription_t;

static void
s_subscription_destroy (s_subscription_t **self_p)
{
    if (*self_p) {
        s_subscription_t *self = *self_p;
        zframe_destroy (&self->routing_id);
        free (self->prefix);
        free (self);
        *self_p = NULL;
    }
}

//  A request waiting for the ring's answer.
typedef struct _s_waiting_t {
    sim_api_t *api;
    api_call_t *call;  //  the game's request, or NULL (a claim's calls
                       //  are in the API's claims)
    char *path;
    char *state;     //  initial state, or the claim's player, or NULL
    bool on_ring;    //  waits on the ring client (else on the handoff channel)
    uint64_t claim;  //  the core's claim of PATH, or 0
    uint64_t sent_us;         //  wall clock when the ring request went (traces)
    json_t *batch;            //  entity.import: the entities, or NULL
    uint64_t retry_until_ms;  //  a foreign claim: sent again until then
} s_waiting_t;

static void
s_waiting_destroy (s_waiting_t **self_p)
{
    if (*self_p) {
        s_waiting_t *self = *self_p;
        api_call_destroy (&self->call);
        free (self->path);
        free (self->state);
        json_decref (self->batch);
        free (self);
        *self_p = NULL;
    }
}

static void
s_claim_destroy (s_claim_t **self_p)
{
    if (*self_p) {
        s_claim_t *self = *self_p;
        api_call_t *call;
        while ((call = (api_call_t *) zlist_pop (self->calls)))
            api_call_destroy (&call);
        zlist_destroy (&self->calls);
        json_decref (self->transfer);
        free (self);
        *self_p = NULL;
    }
}

//  A call in *CALL_P (taken) that will wait on the ring, keeping PATH
//  (copied) and STATE (taken) with it.
static s_waiting_t *
s_waiting_new (sim_api_t *self, api_call_t **call_p, const char *path,
               char *state)
{
    s_waiting_t *waiting = (s_waiting_t *) zmalloc (sizeof (s_waiting_t));
    waiting->api = self;
    waiting->call = *call_p;
    *call_p = NULL;
    waiting->path = path ? strdup (path) : NULL;
    waiting->state = state;
    waiting->on_ring = true;
    return waiting;
}

//  Send OP with ARGS (taken) to the ring for WAITING (taken); FN answers
//  its call when the ring replies. A ring that cannot be reached answers
//  at once (and NULL is returned); else the waiting call, lent.
static s_waiting_t *
s_ring_send (sim_api_t *self, s_waiting_t *waiting, const char *op,
             json_t *args, sim_ring_fn *fn)
{
    waiting->sent_us = sf_time_wall_us ();
    if (sim_ring_call (self->config.ring, op, &args, S_RING_TIMEOUT_MS, fn,
                       waiting)) {
        api_router_fail (self->config.router, &waiting->call, SF_EUNAVAILABLE,
                         "cannot reach the ring");
        s_waiting_destroy (&waiting);
        return NULL;
    }
    zlist_append (self->waiting, waiting);
    return waiting;
}

//  s_ring_send for a new waiting call: see s_waiting_new.
static s_waiting_t *
s_ring_wait (sim_api_t *self, api_call_t **call_p, const char *op, json_t *args,
             const char *path, char *state, sim_ring_fn *fn)
{
    return s_ring_send (self, s_waiting_new (self, call_p, path, state), op,
                        args, fn);
}

//  The ring answered a transfer's request (MSG "request" or "answer") of
//  WAITING with REPLY: record both hops (trace.md).
static void
s_trace_reply (sim_api_t *self, const s_waiting_t *waiting, const char *msg,
               const json_t *reply)
{
    json_t *transfer = json_object_get (reply, "transfer");
    const char *node = json_string_value (json_object_get (reply, "node"));
    if (!self->config.trace || !json_is_integer (transfer))
        return;
    //  Another instance's transfer is TRANSFER@HOME (trace.md).
    const char *home = json_string_value (json_object_get (reply, "home"));
    char id [SF_TRACE_MAX_ID + 1];
    snprintf (id, sizeof id, "%lld%s%s",
              (long long) json_integer_value (transfer), home ? "@" : "",
              home ? home : "");
    sf_trace_record (self->config.trace, id, msg, true, node, waiting->sent_us);
    sf_trace_record (self->config.trace, id, "reply", false, node,
                     sf_time_wall_us ());
}

static void s_act (void *handle, const sim_authority_action_t *action);

//  zhashx destructor for items made with malloc.
static void
s_free_item (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

sim_api_t *
sim_api_new (const sim_api_config_t *config)
{
    sim_api_t *self = (sim_api_t *) zmalloc (sizeof (sim_api_t));
    self->config = *config;
    self->waiting = zlist_new ();
    sim_authority_io_t io = {self, s_act};
    self->core = sim_authority_new (config->name, &io);
    self->claims = zhashx_new ();
    zhashx_set_destructor (self->claims,
                           (zhashx_destructor_fn *) s_claim_destroy);
    self->queued = zlist_new ();
    self->batches = zlist_new ();
    self->subscriptions = zlistx_new ();
    zlistx_set_destructor (self->subscriptions,
                           (zlistx_destructor_fn *) s_subscription_destroy);
    self->early_grants = zhashx_new ();
    zhashx_set_destructor (self->early_grants, s_free_item);
    self->grantless = zhashx_new ();
    zhashx_set_destructor (self->grantless, s_free_item);
    return self;
}

void
sim_api_destroy (sim_api_t **self_p)
{
    if (*self_p) {
        sim_api_t *self = *self_p;
        //  Calls still waiting on the ring: their callbacks will not come
        //  (the ring client goes first), so free them here.
        s_waiting_t *waiting;
        while ((waiting = (s_waiting_t *) zlist_pop (self->waiting)))
            s_waiting_destroy (&waiting);
        zlist_destroy (&self->waiting);
        while ((waiting = (s_waiting_t *) zlist_pop (self->queued)))
            s_waiting_destroy (&waiting);
        zlist_destroy (&self->queued);
        json_decref (self->error_details);
        s_batch_t *batch;
        while ((batch = (s_batch_t *) zlist_pop (self->batches)))
            s_batch_destroy (&batch);
        zlist_destroy (&self->batches);
        zlistx_destroy (&self->subscriptions);
        sim_authority_destroy (&self->core);
        zhashx_destroy (&self->claims);  //  their calls dropped unanswered
        zhashx_destroy (&self->held);
        zhashx_destroy (&self->ring_held);
        zhashx_destroy (&self->early_grants);
        zhashx_destroy (&self->grantless);
        free (self);
        *self_p = NULL;
    }
}

void
sim_api_set_ring (sim_api_t *self, sim_ring_t *ring)
{
    //  Calls waiting on the old client were dropped with it: answer them.
    zlist_t *dropped = zlist_new ();
    for (s_waiting_t *waiting = (s_waiting_t *) zlist_first (self->waiting);
         waiting; waiting = (s_waiting_t *) zlist_next (self->waiting))
        if (waiting->on_ring)
            zlist_append (dropped, waiting);
    s_waiting_t *waiting;
    while ((waiting = (s_waiting_t *) zlist_pop (dropped))) {
        zlist_remove (self->waiting, waiting);
        static const char *message = "the sim changed its key meanwhile; retry";
        if (waiting->claim)
            sim_authority_refused (self->core, waiting->path, waiting->claim,
                                   SF_EUNAVAILABLE, message,
                                   sf_time_mono_ms ());
        api_router_fail (self->config.router, &waiting->call, SF_EUNAVAILABLE,
                         message);
        s_waiting_destroy (&waiting);
    }
    zlist_destroy (&dropped);
    s_batch_t *batch;
    while ((batch = (s_batch_t *) zlist_pop (self->batches)))
        s_batch_destroy (&batch);
    //  So were the check's pages: the next heartbeat starts it again;
    //  and the grants asked for: the next tick asks again.
    self->checking = false;
    for (s_grant_need_t *need =
             (s_grant_need_t *) zhashx_first (self->grantless);
         need; need = (s_grant_need_t *) zhashx_next (self->grantless))
        need->asking = false, need->next_ms = 0;
    self->grant_fetches = 0;
    zhashx_destroy (&self->held);
    zhashx_destroy (&self->ring_held);
    self->config.ring = ring;
}

void
sim_api_set_registered (sim_api_t *self, uint64_t registered_ms)
{
    self->registered_ms = registered_ms;
    if (!registered_ms)
        self->checked_once = false;  //  a new ring: its indexes are new
}

void
sim_api_set_beaten (sim_api_t *self, uint64_t at_ms, uint64_t every_ms)
{
    self->beaten_ms = at_ms;
    self->heartbeat_ms = every_ms;
}

//  An entity as the API shows it. A state that is not UTF-8 text (a peer
//  may send any bytes) is shown as "state_b64" instead.
static json_t *
s_entity_json (const sim_entity_t *entity)
{
    json_t *result = json_pack (
        "{s:s,s:I,s:I,s:b,s:o,s:I}", "path", entity->path, "epoch",
        (json_int_t) entity->epoch, "seq", (json_int_t) entity->seq,
        "authority", entity->authority, "source",
        entity->authority ? json_null () : json_string (entity->source),
        "updated_ms", (json_int_t) entity->updated_ms);
    json_t *state = json_stringn (
        entity->state ? (const char *) entity->state : "", entity->state_size);
    if (state)
        json_object_set_new (result, "state", state);
    else {
        size_t size = sodium_base64_encoded_len (
            entity->state_size, sodium_base64_VARIANT_ORIGINAL);
        char *text = (char *) malloc (size);
        sodium_bin2base64 (text, size, entity->state, entity->state_size,
                           sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new (result, "state", json_null ());
        json_object_set_new (result, "state_b64", json_string (text));
        free (text);
    }
    return result;
}

//  Push EVENT (lent; "prefix" and "missed" are set per subscription) to
//  every subscription whose prefix PATH starts with.
static void
s_publish (sim_api_t *self, const char *path, json_t *event)
{
    s_subscription_t *subscription =
        (s_subscription_t *) zlistx_first (self->subscriptions);
    while (subscription) {
        s_subscription_t *next =
            (s_subscription_t *) zlistx_next (self->subscriptions);
        if (strncmp (path, subscription->prefix, strlen (subscription->prefix))
            == 0) {
            json_object_set_new (event, "prefix",
                                 json_string (subscription->prefix));
            json_object_set_new (
                event, "missed",
                json_integer ((json_int_t) subscription->missed));
            if (api_router_push (self->config.router, subscription->routing_id,
                                 event)
                == 0) {
                subscription->missed = 0;
                self->events_sent++;
            }
            else if (errno == EHOSTUNREACH) {
                //  The client is gone: so is its subscription.
                zlistx_delete (self->subscriptions,
                               zlistx_find (self->subscriptions, subscription));
            }
            else {
                subscription->missed++;
                self->events_missed++;
            }
        }
        subscription = next;
    }
}

void
sim_api_notify (sim_api_t *self, const sim_entity_t *entity)
{
    if (zlistx_size (self->subscriptions) == 0)
        return;
    json_t *event = s_entity_json (entity);
    json_object_set_new (event, "event", json_string ("entity"));
    s_publish (self, entity->path, event);
    json_decref (event);
}

//  Tell subscribers PATH is gone.
static void
s_notify_deleted (sim_api_t *self, const char *path)
{
    json_t *event = json_pack ("{s:s,s:s,s:b}", "event", "entity", "path", path,
                               "deleted", 1);
    s_publish (self, path, event);
    json_decref (event);
}

//  The event of a transfer this sim acts on came from homeserver NODE;
//  recorded once (*TRACED), though a batch's event may be acted on for
//  several entities.
static void
s_trace_event (sim_api_t *self, const json_t *result, const char *node,
               bool *traced)
{
    if (*traced)
        return;
    *traced = true;
    json_t *transfer = json_object_get (result, "transfer");
    if (self->config.trace && json_is_integer (transfer))
        sf_trace_transfer (self->config.trace,
                           (uint64_t) json_integer_value (transfer), "event",
                           false, node, sf_time_wall_us ());
}

//  --------------------------------------------------------------------------
//  Our own grants (grants.md section 5). The ring's reply or event that
//  makes this sim an authority carries the grant of that epoch; an entity
//  held without one (resumed from a checkpoint, granted before the ring
//  had a key, or named by our former key after a rotation) gets one by
//  entity.grant. The stream sends an entity only with its grant.

//  True if ENTITY, held here, has the grant of its epoch naming our key.
static bool
s_grant_current (sim_api_t *self, const sim_entity_t *entity)
{
    return entity->grant && entity->grant_epoch == entity->epoch
           && (!self->has_key
               || memcmp (entity->grant_key, self->key, sizeof self->key) == 0);
}

//  Note that our ENTITY lacks its grant: the tick asks the ring for it.
static void
s_grant_missing (sim_api_t *self, const sim_entity_t *entity)
{
    if (!zhashx_lookup (self->grantless, entity->path))
        zhashx_insert (self->grantless, entity->path,
                       zmalloc (sizeof (s_grant_need_t)));
}

//  Give our ENTITY, held at GRANT's epoch, the grant GRANT (BYTES, SIZE)
//  and stream it again. One naming a former key of ours only stands in
//  while nothing better is there (peers accept it during that key's
//  grace), and the current one is asked for.
static void
s_grant_set (sim_api_t *self, sim_entity_t *entity, const grant_msg_t *grant,
             const uint8_t *bytes, size_t size)
{
    bool current =
        !self->has_key || memcmp (grant->key, self->key, sizeof self->key) == 0;
    if (!current && entity->grant && entity->grant_epoch == entity->epoch)
        return;
    //  The claim's reply and the ring's event carry the same grant: the
    //  second changes nothing, and must not send the entity again.
    if (entity->grant && entity->grant_size == size
        && memcmp (entity->grant, bytes, size) == 0)
        return;
    if (sim_store_set_grant (self->config.store, entity, bytes, size)) {
        s_grant_missing (self, entity);  //  out of memory: asked again
        return;
    }
    if (current)
        zhashx_delete (self->grantless, entity->path);
    else
        s_grant_missing (self, entity);
    if (self->config.stream)
        sim_stream_grant_changed (self->config.stream, entity);
}

//  The ring's grant JSON (its JSON form, lent; may be NULL or null): if
//  it is ours, given to the entity it proves, or kept until that epoch
//  is taken here (a claim's grant comes before its final state).
static void
s_grant_adopt (sim_api_t *self, const json_t *json)
{
    //  Most grants a sim hears of (events) are other sims': not decoded.
    //  An event's are unsigned (grants.md section 3): the reply, or
    //  entity.grant, brings ours signed.
    const char *sim = json_string_value (json_object_get (json, "sim"));
    if (!sim || !streq (sim, self->config.name)
        || !json_object_get (json, "signature"))
        return;
    grant_msg_t grant;
    sf_fault_t fault;
    if (grant_msg_from_json (&grant, json, &fault)) {
        sf_log_warning ("sim_api: a grant from the ring does not decode: %s",
                        fault.message);
        return;
    }
    uint8_t bytes [GRANT_MSG_MAX_SIZE];
    size_t size = grant_msg_encode (&grant, bytes, sizeof bytes);
    if (!size)
        return;  //  from_json refuses what encode would
    sim_entity_t *entity = sim_store_get (self->config.store, grant.path);
    if (entity && entity->authority && entity->epoch == grant.epoch) {
        s_grant_set (self, entity, &grant, bytes, size);
        return;
    }
    if (entity && entity->epoch > grant.epoch)
        return;  //  old news
    s_early_grant_t *early =
        (s_early_grant_t *) zhashx_lookup (self->early_grants, grant.path);
    if (early && early->epoch > grant.epoch)
        return;
    if (!early) {
        early = (s_early_grant_t *) zmalloc (sizeof (s_early_grant_t));
        zhashx_insert (self->early_grants, grant.path, early);
    }
    early->epoch = grant.epoch;
    early->kept_ms = sf_time_mono_ms ();
    early->size = size;
    memcpy (early->bytes, bytes, size);
}

//  The ring's grant JSON (lent; may be NULL or null) to another sim, heard
//  from the ring itself: kept for our replica of its entity as if proven,
//  so that the new authority's first update costs no signature check
//  (grants.md section 4). The ring's word, over its CURVE session, is
//  what the signature stands for. Only an entity already here: a grant
//  alone makes no replica.
static void
s_grant_learn (sim_api_t *self, const json_t *json)
{
    const char *sim = json_string_value (json_object_get (json, "sim"));
    if (!sim || streq (sim, self->config.name))
        return;
    const char *path = json_string_value (json_object_get (json, "path"));
    sim_entity_t *entity =
        path ? sim_store_get (self->config.store, path) : NULL;
    if (!entity || entity->authority)
        return;
    grant_msg_t grant;
    sf_fault_t fault;
    if (grant_msg_from_json (&grant, json, &fault) == 0
        || grant_msg_statement_from_json (&grant, json, &fault) == 0)
        sim_store_keep_grant (self->config.store, grant.path,
                              strlen (grant.path),
                              sim_store_hash (self->config.store, grant.path,
                                              strlen (grant.path)),
                              grant.epoch, grant.key, &entity);
}

//  ENTITY (may be NULL) is held here at its epoch from now on: it gets
//  that epoch's grant if it came already, else the tick asks for it.
static void
s_grant_need (sim_api_t *self, sim_entity_t *entity)
{
    if (!entity || !entity->authority)
        return;
    s_early_grant_t *early =
        (s_early_grant_t *) zhashx_lookup (self->early_grants, entity->path);
    if (early && early->epoch == entity->epoch
        && !s_grant_current (self, entity)) {
        grant_msg_t grant;
        if (grant_msg_decode (&grant, early->bytes, early->size) == 0)
            s_grant_set (self, entity, &grant, early->bytes, early->size);
    }
    if (early && early->epoch <= entity->epoch)
        zhashx_delete (self->early_grants, entity->path);
    if (s_grant_current (self, entity))
        zhashx_delete (self->grantless, entity->path);
    else if (self->enforced)
        s_grant_missing (self, entity);
}

//  Every entity held here needs its grant again (the ring's first key,
//  or our new key).
static void
s_grant_need_all (sim_api_t *self)
{
    uint32_t slots = sim_store_slots (self->config.store);
    for (uint32_t slot = 0; slot < slots; slot++)
        s_grant_need (self, sim_store_at (self->config.store, slot));
}

//  The ring answered an entity.grant.
static void
s_grant_fetched (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    self->grant_fetches--;
    if (!fault) {
        self->grants_fetched++;
        s_grant_adopt (self, json_object_get (reply, "grant"));
    }
    //  Still missing (no key yet, another epoch, our former key): later.
    s_grant_need_t *need =
        (s_grant_need_t *) zhashx_lookup (self->grantless, waiting->path);
    if (need) {
        need->asking = false;
        need->next_ms = sf_time_mono_ms () + S_GRANT_RETRY_MS;
    }
    if (self->config.stream)
        sim_stream_flush (self->config.stream, sf_time_mono_us ());
    s_waiting_destroy (&waiting);
}

//  Ask the ring for the grants still missing; forget early grants no
//  claim took.
static void
s_grant_tick (sim_api_t *self, uint64_t now_ms)
{
    zlist_t *done = zlist_new ();
    zlist_autofree (done);
    for (s_early_grant_t *early =
             (s_early_grant_t *) zhashx_first (self->early_grants);
         early; early = (s_early_grant_t *) zhashx_next (self->early_grants))
        if (now_ms - early->kept_ms > S_GRANT_KEEP_MS)
            zlist_append (done, (void *) zhashx_cursor (self->early_grants));
    char *path;
    while ((path = (char *) zlist_pop (done))) {
        zhashx_delete (self->early_grants, path);
        free (path);
    }
    if (!self->enforced || !self->registered_ms || !self->config.ring) {
        zlist_destroy (&done);
        return;
    }
    for (s_grant_need_t *need =
             (s_grant_need_t *) zhashx_first (self->grantless);
         need; need = (s_grant_need_t *) zhashx_next (self->grantless)) {
        const char *held = (const char *) zhashx_cursor (self->grantless);
        sim_entity_t *entity = sim_store_get (self->config.store, held);
        //  Another instance's entity is not streamed (federation.md
        //  section 9): its grant, the home's, is not fetched here.
        if (!entity || !entity->authority || entity->foreign
            || s_grant_current (self, entity)) {
            zlist_append (done, (void *) held);
            continue;
        }
        if (need->asking || now_ms < need->next_ms
            || self->grant_fetches >= S_GRANT_FETCHES)
            continue;
        need->asking = true;
        self->grant_fetches++;
        json_t *args = json_pack ("{s:s}", "path", held);
        api_call_t *none = NULL;
        if (!s_ring_wait (self, &none, "entity.grant", args, held, NULL,
                          s_grant_fetched)) {
            need->asking = false;
            need->next_ms = now_ms + S_GRANT_RETRY_MS;
            self->grant_fetches--;
        }
    }
    while ((path = (char *) zlist_pop (done))) {
        zhashx_delete (self->grantless, path);
        free (path);
    }
    zlist_destroy (&done);
}

void
sim_api_set_ring_keys (sim_api_t *self, size_t count)
{
    if (count && !self->enforced) {
        self->enforced = true;
        s_grant_need_all (self);
    }
}

void
sim_api_set_key (sim_api_t *self, const uint8_t *key)
{
    if (self->has_key && memcmp (self->key, key, sizeof self->key) == 0)
        return;
    memcpy (self->key, key, sizeof self->key);
    self->has_key = true;
    s_grant_need_all (self);
}

//  The grant the ring's entity ENTITY (lent, as a reply, an event or a
//  read shows it) says, of PATH unless it names its own. The grant's
//  strings and checkpoint are ENTITY's.
static sim_authority_grant_t
s_grant_of (const json_t *entity, const char *path)
{
    const char *named = json_string_value (json_object_get (entity, "path"));
    const char *checkpoint =
        json_string_value (json_object_get (entity, "checkpoint"));
    json_t *transfer = json_object_get (entity, "transfer");
    return (sim_authority_grant_t){
        .path = named ? named : path,
        .epoch =
            (uint64_t) json_integer_value (json_object_get (entity, "epoch")),
        .authority = json_string_value (json_object_get (entity, "authority")),
        .previous = json_string_value (json_object_get (entity, "previous")),
        .checkpoint = (const uint8_t *) checkpoint,
        .checkpoint_size = checkpoint ? strlen (checkpoint) : 0,
        .transfer = json_is_integer (transfer)
                        ? (uint64_t) json_integer_value (transfer)
                        : 0};
}

//  A grant of another instance's entity (RESULT, lent): its former
//  authority there hands the state over to us, and may open a session
//  for that (federation.md section 5).
static void
s_visit_previous (sim_api_t *self, const json_t *result, uint64_t now_ms)
{
    const char *previous =
        json_string_value (json_object_get (result, "previous"));
    const char *key =
        json_string_value (json_object_get (result, "previous_key"));
    if (previous && key && strchr (previous, '@') && self->config.handoff)
        sim_handoff_visit (
            self->config.handoff, previous, key,
            json_string_value (json_object_get (result, "previous_handoff")),
            now_ms + S_VISIT_MS);
}

static void
s_authority_one (sim_api_t *self, const char *op, const json_t *result,
                 const char *node, bool *traced)
{
    const char *path = json_string_value (json_object_get (result, "path"));
    const char *authority =
        json_string_value (json_object_get (result, "authority"));
    uint64_t epoch =
        (uint64_t) json_integer_value (json_object_get (result, "epoch"));
    const char *expired = json_string_value (json_object_get (result, "sim"));
    //  What the core does about it is traced as this event's hop.
    self->event = result;
    self->event_node = node;
    self->event_traced = traced;
    //  A claim's outcome that this ring learned from the entity's home
    //  after the claim's answer was lost (federation.md section 6): taken
    //  below as a grant heard from the ring.
    if (streq (op, "fed.outcome") && authority
        && streq (authority, self->config.name))
        s_visit_previous (self, result, sf_time_mono_ms ());
    if (streq (op, "sim.expire")) {
        //  The ring declared this sim dead and orphaned what it held: it
        //  holds nothing any more (it registers again with its heartbeat).
        if (expired && streq (expired, self->config.name))
            sim_authority_expired (self->core);
    }
    else if (!path)
        ;
    else if (streq (op, "authority.release")) {
        //  Released by someone acting for this sim (an administrator).
        if (!authority)
            sim_authority_orphaned (self->core, path, epoch);
    }
    else if (streq (op, "fed.fenced")) {
        //  Another instance, this entity's home, took it from this sim
        //  (federation.md section 6): the state goes to its new authority,
        //  which may be reached for that even if it is that instance's.
        if (expired && streq (expired, self->config.name)) {
            const char *key =
                json_string_value (json_object_get (result, "authority_key"));
            if (authority && key && strchr (authority, '@')
                && self->config.handoff)
                sim_handoff_visit (self->config.handoff, authority, key,
                                   json_string_value (json_object_get (
                                       result, "authority_handoff")),
                                   sf_time_mono_ms () + S_VISIT_MS);
            if (!authority)
                sim_authority_orphaned (self->core, path, epoch);
            else {
                sim_authority_grant_t grant = s_grant_of (result, path);
                sim_authority_seen (self->core, &grant, sf_time_mono_ms ());
            }
        }
    }
    else if (json_is_true (json_object_get (result, "pending"))) {
        //  Asked: only the authority asked hears of it.
        if (sim_authority_holds (self->core, path, NULL)) {
            s_trace_event (self, result, node, traced);
            json_t *event = json_pack (
                "{s:s,s:s,s:O,s:O,s:O}", "event", "ask", "path", path,
                "transfer", json_object_get (result, "transfer"), "to",
                json_object_get (result, "to"), "deadline_ms",
                json_object_get (result, "deadline_ms"));
            s_publish (self, path, event);
            json_decref (event);
        }
    }
    else if (epoch && !json_is_false (json_object_get (result, "granted"))) {
        //  A grant: to another sim it fences this one, to this sim
        //  without its claim (an administrator's) it is taken; its
        //  signed grant comes from entity.grant (an event's is not).
        s_grant_adopt (self, json_object_get (result, "grant"));
        sim_authority_grant_t grant = s_grant_of (result, path);
        sim_authority_seen (self->core, &grant, sf_time_mono_ms ());
        //  After the core: a former authority holds a replica from now on.
        s_grant_learn (self, json_object_get (result, "grant"));
    }
    self->event = NULL;
}

void
sim_api_authority_event (sim_api_t *self, const char *op, const json_t *result,
                         const char *node)
{
    bool traced = false;
    const json_t *items = json_object_get (result, "results");
    if (!json_is_array (items)) {
        s_authority_one (self, op, result, node, &traced);
        return;
    }
    //  A batch request: each grant as if it came alone.
    size_t index;
    const json_t *item;
    json_array_foreach (items, index, item)
    {
        if (json_is_true (json_object_get (item, "granted")))
            s_authority_one (self, op, item, node, &traced);
    }
}

size_t
sim_api_taking (sim_api_t *self, void (*fn) (void *arg, const char *path),
                void *arg)
{
    return sim_authority_taking (self->core, fn, arg);
}

void
sim_api_forget (sim_api_t *self, const char *path)
{
    sim_authority_deleted (self->core, path);  //  held: fenced and dropped
    sim_entity_t *entity = sim_store_get (self->config.store, path);
    if (!entity || entity->authority)
        return;
    bool shown = !entity->placeholder;
    sim_store_delete (self->config.store, path);
    if (shown)
        s_notify_deleted (self, path);
}

static void
s_merge (json_t *reply, json_t *result)
{
    json_object_update (reply, result);
    json_decref (result);
}

static int
s_path_arg (const json_t *root, const char *field, const char **path,
            sf_fault_t *fault)
{
    if (sf_json_string (root, field, true, path, fault))
        return -1;
    if (!sf_name_path_valid (*path, strlen (*path)))
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must be an entity path such as "
                             "/world/room1/cube42",
                             field);
    return 0;
}

//  As s_path_arg, or another instance's entity, PATH@INSTANCE
//  (federation.md section 5): for what a sim may do with one it holds.
static int
s_any_path_arg (const json_t *root, const char *field, const char **path,
                sf_fault_t *fault)
{
    if (sf_json_string (root, field, true, path, fault))
        return -1;
    if (!sf_name_global_path_valid (*path, strlen (*path)))
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must be an entity path such as "
                             "/world/room1/cube42, or one of another "
                             "instance such as /world/room1/cube42@east",
                             field);
    return 0;
}

//  Read the selector FIELD (a prefix or pattern; REQUIRED or left as it
//  is): it starts with '/' and is at most a path's length.
static int
s_prefix_arg (const json_t *root, const char *field, bool required,
              const char **value, sf_fault_t *fault)
{
    if (sf_json_string (root, field, required, value, fault))
        return -1;
    if ((*value) [0] != '/' || strlen (*value) > SF_NAME_MAX_PATH)
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must start with '/' and be at most "
                             "256 bytes",
                             field);
    return 0;
}

//  The state argument, checked against what one datagram can carry.
static int
s_state_arg (sim_api_t *self, const json_t *root, const char *path,
             const char **state, size_t *size, sf_fault_t *fault)
{
    json_t *value = json_object_get (root, "state");
    if (!value) {
        *state = NULL, *size = 0;
        return 0;
    }
    if (!json_is_string (value))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'state' must be a string");
    *state = json_string_value (value);
    *size = json_string_length (value);
    size_t limit = self->config.stream
                       ? sim_stream_state_limit (self->config.stream, path)
                       : 65536;
    if (*size > limit)
        return sf_fault_set (fault, SF_ETOOLARGE,
                             "field 'state' is %zu bytes; an update of this "
                             "path carries at most %zu (datagram_size)",
                             *size, limit);
    return 0;
}

static int
s_op_status (sim_api_t *self, api_call_t **call_p, json_t *reply,
             sf_fault_t *fault)
{
    (void) call_p, (void) fault;
    sim_store_t *store = self->config.store;
    size_t authoritative = sim_store_authoritative (store);
    s_merge (
        reply,
        json_pack ("{s:s,s:s,s:I,s:b,s:I,s:I,s:s,s:I,s:I}", "node",
                   self->config.name, "version", SIMFABRIC_VERSION, "uptime_ms",
                   (json_int_t) (sf_time_mono_ms () - self->config.started_ms),
                   "registered", self->registered_ms != 0, "registered_ms",
                   (json_int_t) self->registered_ms, "session",
                   (json_int_t) (self->config.stream
                                     ? sim_stream_session (self->config.stream)
                                     : 0),
                   "ring", sim_ring_target (self->config.ring), "entities",
                   (json_int_t) sim_store_size (store), "authoritative",
                   (json_int_t) authoritative));
    uint64_t now = sf_time_mono_ms ();
    json_object_set_new (reply, "heartbeat_ms",
                         json_integer ((json_int_t) self->heartbeat_ms));
    json_object_set_new (
        reply, "heartbeat_age_ms",
        self->beaten_ms ? json_integer ((json_int_t) (now - self->beaten_ms))
                        : json_null ());
    return 0;
}

static int
s_op_update (sim_api_t *self, api_call_t **call_p, json_t *reply,
             sf_fault_t *fault)
{
    const json_t *root = api_call_request (*call_p)->root;
    const char *path, *state;
    size_t size;
    bool traced = false;
    if (s_any_path_arg (root, "path", &path, fault)
        || sf_json_bool (root, "trace", false, &traced, fault))
        return -1;
    if (!json_object_get (root, "state"))
        return sf_fault_set (fault, SF_EINVAL, "field 'state' is required");
    if (s_state_arg (self, root, path, &state, &size, fault))
        return -1;
    sim_entity_t *entity = sim_store_get (self->config.store, path);
    if (!entity || entity->placeholder)
        return sf_fault_set (fault, SF_ENOTFOUND, "no entity '%s' here", path);
    uint64_t epoch, seq;
    if (sim_authority_edit (self->core, path, &epoch, &seq)) {
        //  Where to send it instead, as this sim last heard: the client
        //  goes there, not to the ring first.
        if (entity->source [0])
            self->error_details =
                json_pack ("{s:s}", "authority", entity->source);
        return sf_fault_set (fault, SF_EDENIED,
                             "this sim is not the authority of '%s' (a "
                             "replica from '%s')",
                             path, entity->source);
    }
    if (sim_store_set (self->config.store, entity, epoch, seq,
                       (const uint8_t *) state, size, sf_time_wall_ms ()))
        return sf_fault_set (fault, SF_EINTERNAL, "out of memory");
    //  A traced update (trace.md, Case 3): its id before it is sent.
    char trace [SF_TRACE_MAX_ID + 1] = "";
    if (traced) {
        snprintf (trace, sizeof trace, "%.20s.u%llu", self->config.name,
                  (unsigned long long) ++self->traces);
        if (!self->config.stream
            || sim_stream_trace (self->config.stream, trace, entity))
            return sf_fault_set (fault, SF_EUNAVAILABLE,
                                 "cannot trace this update: no peer, or %d "
                                 "traces in progress already",
                                 SIM_STREAM_TRACES);
    }
    if (self->config.stream) {
        sim_stream_changed (self->config.stream, entity);
        sim_stream_flush (self->config.stream, sf_time_mono_us ());
    }
    sim_api_notify (self, entity);
    s_merge (reply, json_pack ("{s:s,s:I,s:I}", "path", entity->path, "epoch",
                               (json_int_t) entity->epoch, "seq",
                               (json_int_t) entity->seq));
    if (traced)
        json_object_set_new (reply, "trace", json_string (trace));
    return 0;
}

static int
s_op_get (sim_api_t *self, api_call_t **call_p, json_t *reply,
          sf_fault_t *fault)
{
    const json_t *root = api_call_request (*call_p)->root;
    const char *path;
    if (s_any_path_arg (root, "path", &path, fault))
        return -1;
    sim_entity_t *entity = sim_store_get (self->config.store, path);
    if (!entity || entity->placeholder)
        return sf_fault_set (fault, SF_ENOTFOUND, "no entity '%s' here", path);
    s_merge (reply, s_entity_json (entity));
    return 0;
}

//  entity.list and entity.match: one page in path order.
static int
s_page (sim_api_t *self, const json_t *root, bool match, json_t *reply,
        sf_fault_t *fault)
{
    const char *selector = "/", *after = NULL;
    int64_t limit = 100;
    const char *field = match ? "pattern" : "prefix";
    if (s_prefix_arg (root, field, match, &selector, fault)
        || sf_json_string (root, "after", false, &after, fault)
        || sf_json_int (root, "limit", false, 1, S_LIST_LIMIT, &limit, fault))
        return -1;
    sim_entity_t *page [S_LIST_LIMIT];
    bool more;
    size_t count = match ? sim_store_match (self->config.store, selector, after,
                                            page, (size_t) limit, &more)
                         : sim_store_list (self->config.store, selector, after,
                                           page, (size_t) limit, &more);
    json_t *entities = json_array ();
    for (size_t at = 0; at < count; at++)
        json_array_append_new (entities, s_entity_json (page [at]));
    json_object_set_new (reply, "entities", entities);
    json_object_set_new (reply, "next",
                         more && count ? json_string (page [count - 1]->path)
                                       : json_null ());
    return 0;
}

static int
s_op_list (sim_api_t *self, api_call_t **call_p, json_t *reply,
           sf_fault_t *fault)
{
    return s_page (self, api_call_request (*call_p)->root, false, reply, fault);
}

static int
s_op_match (sim_api_t *self, api_call_t **call_p, json_t *reply,
            sf_fault_t *fault)
{
    return s_page (self, api_call_request (*call_p)->root, true, reply, fault);
}

static int
s_op_counters (sim_api_t *self, api_call_t **call_p, json_t *reply,
               sf_fault_t *fault)
{
    (void) call_p, (void) fault;
    json_t *counters = self->config.stream
                           ? sim_stream_counters (self->config.stream)
                           : json_object ();
    if (self->config.handoff)
        sim_handoff_counters (self->config.handoff, counters);
    if (self->config.saver)
        sim_saver_counters (self->config.saver, counters);
    if (self->config.ring)
        sim_ring_counters (self->config.ring, counters);
    json_object_set_new (counters, "authority_checks",
                         json_integer ((json_int_t) self->authority_checks));
    json_object_set_new (
        counters, "authority_checks_seen",
        json_integer ((json_int_t) self->authority_checks_seen));
    json_object_set_new (
        counters, "authority_checks_waited",
        json_integer ((json_int_t) self->authority_checks_waited));
    json_object_set_new (counters, "authority_adopted",
                         json_integer ((json_int_t) self->authority_adopted));
    json_object_set_new (
        counters, "authority_check_pages",
        json_integer ((json_int_t) self->authority_check_pages));
    json_object_set_new (counters, "events_sent",
                         json_integer ((json_int_t) self->events_sent));
    json_object_set_new (counters, "grants_fetched",
                         json_integer ((json_int_t) self->grants_fetched));
    json_object_set_new (
        counters, "grants_missing",
        json_integer ((json_int_t) zhashx_size (self->grantless)));
    json_object_set_new (counters, "events_missed",
                         json_integer ((json_int_t) self->events_missed));
    const api_router_counters_t *served =
        api_router_counters (self->config.router);
    json_object_set_new (counters, "api_requests",
                         json_integer ((json_int_t) served->requests));
    json_object_set_new (counters, "api_refused",
                         json_integer ((json_int_t) served->refused));
    if (self->config.zap)
        json_object_set_new (
            counters, "zap_refused",
            json_integer ((json_int_t) sf_zap_refused (self->config.zap)));
    json_object_set_new (reply, "counters", counters);
    json_object_set_new (reply, "peers",
                         self->config.stream
                             ? sim_stream_peers (self->config.stream)
                             : json_array ());
    return 0;
}

json_t *
sim_api_status (sim_api_t *self)
{
    json_t *status = json_object ();
    s_op_status (self, NULL, status, NULL);
    return status;
}

json_t *
sim_api_counters (sim_api_t *self)
{
    json_t *reply = json_object ();
    s_op_counters (self, NULL, reply, NULL);
    json_t *counters = json_incref (json_object_get (reply, "counters"));
    json_decref (reply);
    return counters;
}

static int
s_op_trace (sim_api_t *self, api_call_t **call_p, json_t *reply,
            sf_fault_t *fault)
{
    const json_t *root = api_call_request (*call_p)->root;
    json_t *answer = self->config.trace
                         ? sf_trace_answer (self->config.trace, root, fault)
                         : NULL;
    if (!answer) {
        if (!self->config.trace)
            sf_fault_set (fault, SF_EUNAVAILABLE, "this sim keeps no traces");
        return -1;
    }
    json_object_update (reply, answer);
    json_decref (answer);
    return 0;
}

//  The ring answered an entity.create.
static void
s_created (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    api_router_t *router = self->config.router;
    if (fault) {
        api_router_fail (router, &waiting->call, fault->error, fault->message);
        s_waiting_destroy (&waiting);
        return;
    }
    json_int_t epoch = json_integer_value (json_object_get (reply, "epoch"));
    sim_entity_t *entity = sim_store_get (self->config.store, waiting->path);
    if (entity && !entity->authority)
        //  A replica of an earlier incarnation: ours now.
        sim_store_delete (self->config.store, waiting->path), entity = NULL;
    if (!entity)
        entity = sim_store_create (self->config.store, waiting->path,
                                   strlen (waiting->path), (uint64_t) epoch, 0,
                                   true);
    size_t size = waiting->state ? strlen (waiting->state) : 0;
    if (!entity
        || sim_store_set (self->config.store, entity, (uint64_t) epoch, 1,
                          (const uint8_t *) waiting->state, size,
                          sf_time_wall_ms ())) {
        api_router_fail (router, &waiting->call, SF_EINTERNAL,
                         "cannot store the entity");
        s_waiting_destroy (&waiting);
        return;
    }
    sim_authority_hold (self->core, waiting->path, (uint64_t) epoch, 1);
    s_grant_adopt (self, json_object_get (reply, "grant"));
    s_grant_need (self, entity);
    if (self->config.stream) {
        sim_stream_changed (self->config.stream, entity);
        sim_stream_flush (self->config.stream, sf_time_mono_us ());
    }
    sim_api_notify (self, entity);
    json_t *result = s_entity_json (entity);
    json_object_set_new (result, "rule",
                         json_copy (json_object_get (reply, "rule")));
    json_object_set_new (result, "index",
                         json_copy (json_object_get (reply, "index")));
    api_router_reply (router, &waiting->call, result);
    json_decref (result);
    s_waiting_destroy (&waiting);
}

//  A copy finished.
static void
s_copied (void *arg, json_t *result, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    if (fault)
        api_router_fail (self->config.router, &waiting->call, fault->error,
                         fault->message);
    else
        api_router_reply (self->config.router, &waiting->call, result);
    s_waiting_destroy (&waiting);
}

//  entity.copy: the entities this sim holds under a prefix, to another sim
//  as replicas, over the handoff channel.
static int
s_op_copy (sim_api_t *self, api_call_t **call_p, json_t *reply,
           sf_fault_t *fault)
{
    (void) reply;
    const json_t *root = api_call_request (*call_p)->root;
    const char *to, *prefix = "/";
    if (sf_json_string (root, "to", true, &to, fault)
        || s_prefix_arg (root, "prefix", false, &prefix, fault))
        return -1;
    if (!self->config.handoff)
        return sf_fault_set (fault, SF_EUNAVAILABLE,
                             "this sim has no handoff channel (sim/handoff)");
    s_waiting_t *waiting = (s_waiting_t *) zmalloc (sizeof (s_waiting_t));
    waiting->api = self;
    waiting->call = *call_p;
    *call_p = NULL;
    zlist_append (self->waiting, waiting);  //  FN may run before copy returns
    if (sim_handoff_copy (self->config.handoff, to, prefix, s_copied, waiting,
                          fault)) {
        //  Not started: the call is answered with FAULT after all.
        zlist_remove (self->waiting, waiting);
        *call_p = waiting->call;
        waiting->call = NULL;
        s_waiting_destroy (&waiting);
        return -1;
    }
    return 0;
}

//  The ring answered an entity.delete.
static void
s_deleted (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    if (fault) {
        api_router_fail (self->config.router, &waiting->call, fault->error,
                         fault->message);
        s_waiting_destroy (&waiting);
        return;
    }
    //  Gone from the ring: no longer held or streamed here.
    sim_authority_deleted (self->core, waiting->path);
    if (sim_store_delete (self->config.store, waiting->path) == 0)
        s_notify_deleted (self, waiting->path);
    json_t *result =
        json_pack ("{s:s,s:b,s:O}", "path", waiting->path, "deleted", 1,
                   "index", json_object_get (reply, "index"));
    api_router_reply (self->config.router, &waiting->call, result);
    json_decref (result);
    s_waiting_destroy (&waiting);
}

//  The entity the "path" of ROOT names, which this sim must be the
//  authority of to WHAT it ("deletes", ...); else NULL with FAULT set.
static sim_entity_t *
s_held_arg (sim_api_t *self, const json_t *root, const char *what,
            sf_fault_t *fault)
{
    const char *path;
    //  Another instance's entity is released to its home (federation.md
    //  section 7); deleting one is its master's, at its home.
    if (streq (what, "releases") ? s_any_path_arg (root, "path", &path, fault)
                                 : s_path_arg (root, "path", &path, fault))
        return NULL;
    sim_entity_t *entity = sim_store_get (self->config.store, path);
    if (!entity || entity->placeholder)
        sf_fault_set (fault, SF_ENOTFOUND, "no entity here");
    else if (!entity->authority)
        sf_fault_set (fault, SF_EDENIED, "a replica: only its authority %s it",
                      what);
    return entity && entity->authority ? entity : NULL;
}

//  entity.delete: an entity this sim is the authority of, from the ring
//  and from here.
static int
s_op_delete (sim_api_t *self, api_call_t **call_p, json_t *reply,
             sf_fault_t *fault)
{
    (void) reply;
    sim_entity_t *entity =
        s_held_arg (self, api_call_request (*call_p)->root, "deletes", fault);
    if (!entity)
        return -1;
    json_t *args = json_pack ("{s:s}", "path", entity->path);
    s_ring_wait (self, call_p, "entity.delete", args, entity->path, NULL,
                 s_deleted);
    return 0;
}

//  The ring answered an entity.release.
static void
s_released (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    sim_entity_t *entity = sim_store_get (self->config.store, waiting->path);
    if (fault) {
        //  Still ours in the ring: ours here again, unless the ring moved
        //  it meanwhile (a newer epoch came with its event).
        uint64_t epoch = (uint64_t) strtoull (waiting->state, NULL, 10);
        if (entity && entity->epoch == epoch && !entity->source [0]) {
            sim_authority_hold (self->core, waiting->path, epoch, entity->seq);
            entity->authority =
                sim_authority_holds (self->core, waiting->path, NULL);
            s_grant_need (self, entity);
        }
        api_router_fail (self->config.router, &waiting->call, fault->error,
                         fault->message);
    }
    else {
        json_t *result = entity ? s_entity_json (entity) : json_object ();
        json_object_set_new (result, "released", json_true ());
        json_object_set (result, "index", json_object_get (reply, "index"));
        api_router_reply (self->config.router, &waiting->call, result);
        json_decref (result);
        //  Another instance's entity is not kept as a replica here: no
        //  one streams it to this instance (federation.md section 9).
        if (entity && entity->foreign && !entity->authority)
            sim_api_forget (self, waiting->path);
    }
    s_waiting_destroy (&waiting);
}

//  entity.release: give up the authority of an entity, its state saved in
//  the ring as the checkpoint the next authority starts from.
static int
s_op_release (sim_api_t *self, api_call_t **call_p, json_t *reply,
              sf_fault_t *fault)
{
    (void) reply;
    sim_entity_t *entity =
        s_held_arg (self, api_call_request (*call_p)->root, "releases", fault);
    if (!entity)
        return -1;
    const char *path = entity->path;
    json_t *checkpoint =
        json_stringn ((const char *) entity->state, entity->state_size);
    if (!checkpoint)
        return sf_fault_set (fault, SF_EINVAL,
                             "the entity's state is not UTF-8 text: it cannot "
                             "be the ring's checkpoint");
    //  No update may change it after the checkpoint is taken: from now on
    //  this sim holds it as a replica.
    sim_authority_release (self->core, path);
    entity->authority = false;
    entity->source [0] = 0;
    json_t *args = json_pack ("{s:s,s:s,s:o}", "path", path, "sim",
                              self->config.name, "checkpoint", checkpoint);
    char epoch [24];
    snprintf (epoch, sizeof epoch, "%llu", (unsigned long long) entity->epoch);
    s_ring_wait (self, call_p, "authority.release", args, path, strdup (epoch),
                 s_released);
    return 0;
}

//  The ring answered an authority.answer.
static void
s_answered (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    if (fault)
        api_router_fail (self->config.router, &waiting->call, fault->error,
                         fault->message);
    else {
        s_trace_reply (self, waiting, "answer", reply);
        json_t *result = json_deep_copy (reply);
        json_object_del (result, "id");
        json_object_del (result, "ok");
        json_object_del (result, "node");
        json_object_del (result, "leader");
        api_router_reply (self->config.router, &waiting->call, result);
        json_decref (result);
    }
    s_waiting_destroy (&waiting);
}

//  authority.answer: the game answers an ask addressed to this sim.
static int
s_op_answer (sim_api_t *self, api_call_t **call_p, json_t *reply,
             sf_fault_t *fault)
{
    (void) reply;
    const json_t *root = api_call_request (*call_p)->root;
    int64_t transfer;
    bool approve;
    if (sf_json_int (root, "transfer", true, 1, INT64_MAX, &transfer, fault)
        || sf_json_bool (root, "approve", true, &approve, fault))
        return -1;
    json_t *args =
        json_pack ("{s:I,s:s,s:b}", "transfer", (json_int_t) transfer, "sim",
                   self->config.name, "approve", approve);
    s_ring_wait (self, call_p, "authority.answer", args, NULL, NULL,
                 s_answered);
    return 0;
}

//  This sim is now the authority of PATH at EPOCH, starting from STATE:
//  create or convert the entity, stream it, tell subscribers.
static sim_entity_t *
s_take (sim_api_t *self, const char *path, uint64_t epoch, const uint8_t *state,
        size_t size)
{
    sim_entity_t *entity = sim_store_get (self->config.store, path);
    if (!entity)
        entity = sim_store_create (self->config.store, path, strlen (path),
                                   epoch, 0, true);
    if (!entity
        || sim_store_set (self->config.store, entity, epoch, 1, state, size,
                          sf_time_wall_ms ()))
        return NULL;
    entity->authority = true;
    entity->source [0] = 0;
    s_grant_need (self, entity);
    if (self->config.stream) {
        sim_stream_changed (self->config.stream, entity);
        sim_stream_flush (self->config.stream, sf_time_mono_us ());
    }
    sim_api_notify (self, entity);
    return entity;
}

//  The calls of claim ID (the core's), made first if MAKE; else NULL if
//  it has none (the core's own claim of an administrator's grant).
static s_claim_t *
s_claim_calls (sim_api_t *self, uint64_t id, bool make)
{
    char key [24];
    snprintf (key, sizeof key, "%llu", (unsigned long long) id);
    s_claim_t *claim = (s_claim_t *) zhashx_lookup (self->claims, key);
    if (!claim && make) {
        claim = (s_claim_t *) zmalloc (sizeof (s_claim_t));
        claim->calls = zlist_new ();
        claim->started_us = sf_time_mono_us ();
        zhashx_insert (self->claims, key, claim);
    }
    return claim;
}

//  ANSWER: every call of the claim gets the entity as held, or the error.
static void
s_claim_answer (sim_api_t *self, const sim_authority_action_t *action)
{
    bool take_failed = self->take_failed;
    self->take_failed = false;
    s_claim_t *claim = s_claim_calls (self, action->claim, false);
    if (!claim)
        return;  //  nobody asked
    sf_error_t error = action->error;
    const char *message = action->message;
    sim_entity_t *entity = sim_store_get (self->config.store, action->path);
    if (error == SF_OK && (take_failed || !entity)) {
        error = SF_EINTERNAL;
        message = "cannot store the entity";
    }
    json_t *result = NULL;
    if (error == SF_OK) {
        static const char *from [] = {"handoff", "checkpoint", "self"};
        result = s_entity_json (entity);
        json_object_set_new (result, "from", json_string (from [action->from]));
        json_object_set_new (result, "previous",
                             action->previous ? json_string (action->previous)
                                              : json_null ());
        json_object_set_new (result, "elapsed_us",
                             json_integer ((json_int_t) (sf_time_mono_us ()
                                                         - claim->started_us)));
        if (claim->transfer)
            json_object_set (result, "transfer", claim->transfer);
    }
    api_call_t *call;
    while ((call = (api_call_t *) zlist_pop (claim->calls))) {
        if (result)
            api_router_reply (self->config.router, &call, result);
        else
            api_router_fail (self->config.router, &call, error, message);
    }
    json_decref (result);
    char key [24];
    snprintf (key, sizeof key, "%llu", (unsigned long long) action->claim);
    zhashx_delete (self->claims, key);
}

//  FENCE: the entity is a replica here from now on (or gone, DELETED):
//  not streamed, updates denied; its subscribers hear it was fenced.
static void
s_fence (sim_api_t *self, const sim_authority_action_t *action)
{
    sim_entity_t *entity = sim_store_get (self->config.store, action->path);
    if (!entity)
        return;
    entity->authority = false;
    if (action->epoch > entity->epoch) {
        //  The new authority's updates come at that epoch, from seq 1.
        entity->epoch = action->epoch;
        entity->seq = 0;
    }
    snprintf (entity->source, sizeof entity->source, "%s",
              action->to ? action->to : "");
    json_t *event =
        json_pack ("{s:s,s:s,s:I,s:o}", "event", "fenced", "path", action->path,
                   "epoch", (json_int_t) entity->epoch, "authority",
                   action->to ? json_string (action->to) : json_null ());
    s_publish (self, action->path, event);
    json_decref (event);
    if (action->deleted) {
        //  Deleted in the ring: neither held nor kept here.
        sim_store_delete (self->config.store, action->path);
        s_notify_deleted (self, action->path);
    }
}

//  PASS_ON: a state this sim received for its claim but never held goes
//  on to the sim granted the entity after it, as a former authority's
//  final state would; kept here as a replica of that sim.
static void
s_pass_on (sim_api_t *self, const sim_authority_action_t *action)
{
    sim_store_t *store = self->config.store;
    sim_entity_t *entity = sim_store_get (store, action->path);
    if (!entity)
        entity = sim_store_create (store, action->path, strlen (action->path),
                                   action->epoch, 0, false);
    if (!entity
        || sim_store_set (store, entity, action->epoch, 1, action->state,
                          action->size, sf_time_wall_ms ()))
        return;  //  out of memory: the new authority takes the checkpoint
    entity->authority = false;
    if (self->config.handoff)
        sim_handoff_send (self->config.handoff, action->to, entity,
                          action->epoch, action->transfer);
    entity->seq = 0;
    snprintf (entity->source, sizeof entity->source, "%s", action->to);
}

//  What the core asks: into store, stream, handoff channel and replies.
static void
s_act (void *handle, const sim_authority_action_t *action)
{
    sim_api_t *self = (sim_api_t *) handle;
    if (self->event && action->kind != SIM_AUTHORITY_ANSWER
        && action->kind != SIM_AUTHORITY_REQUEST)
        s_trace_event (self, self->event, self->event_node, self->event_traced);
    switch (action->kind) {
        case SIM_AUTHORITY_REQUEST: {
            //  Sent by the caller of sim_authority_claim (s_claim) once
            //  the core returns: the core may not be called from here.
            api_call_t *none = NULL;
            s_waiting_t *waiting =
                s_waiting_new (self, &none, action->path, NULL);
            waiting->claim = action->claim;
            assert (!self->requested);
            self->requested = waiting;
            break;
        }
        case SIM_AUTHORITY_TAKE:
            self->take_failed = !s_take (self, action->path, action->epoch,
                                         action->state, action->size);
            break;
        case SIM_AUTHORITY_ANSWER:
            s_claim_answer (self, action);
            break;
        case SIM_AUTHORITY_HANDOFF: {
            sim_entity_t *entity =
                sim_store_get (self->config.store, action->path);
            if (entity && self->config.handoff)
                sim_handoff_send (self->config.handoff, action->to, entity,
                                  action->epoch, action->transfer);
            break;
        }
        case SIM_AUTHORITY_PASS_ON:
            s_pass_on (self, action);
            break;
        case SIM_AUTHORITY_FENCE:
            s_fence (self, action);
            break;
    }
}

//  The ring answered the claim of WAITING (taken): REPLY (lent) is the
//  grant, or FAULT why not.
static void
s_claim_replied (sim_api_t *self, s_waiting_t *waiting, const json_t *reply,
                 const sf_fault_t *fault)
{
    uint64_t now_ms = sf_time_mono_ms ();
    //  Not told what came of it: the ring's feed will say (fed.outcome),
    //  within the home's memory of it (ten minutes).
    if (fault && strchr (waiting->path, '@')
        && (fault->error == SF_ETIMEOUT || fault->error == SF_EUNAVAILABLE))
        self->unknown_until_ms = now_ms + S_OUTCOME_WAIT_MS;
    if (fault)
        sim_authority_refused (self->core, waiting->path, waiting->claim,
                               fault->error, fault->message, now_ms);
    else {
        s_claim_t *claim = s_claim_calls (self, waiting->claim, false);
        json_t *transfer = json_object_get (reply, "transfer");
        if (claim && transfer && !claim->transfer)
            claim->transfer = json_incref (transfer);
        //  Kept until the epoch is taken (s_take), if not at once.
        s_grant_adopt (self, json_object_get (reply, "grant"));
        s_visit_previous (self, reply, now_ms);
        sim_authority_grant_t grant = s_grant_of (reply, waiting->path);
        sim_authority_granted (self->core, waiting->claim, &grant, now_ms);
    }
    s_waiting_destroy (&waiting);
}

static void s_claim_send (sim_api_t *self, s_waiting_t *waiting);

//  The ring answered an entity.claim sent on its own.
static void
s_claimed (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    if (!fault)
        s_trace_reply (self, waiting, "request", reply);
    else if (waiting->retry_until_ms
             && (fault->error == SF_EUNAVAILABLE || fault->error == SF_ETIMEOUT
                 || fault->error == SF_ENOTLEADER)
             && sf_time_mono_ms () < waiting->retry_until_ms) {
        sf_log_info ("sim_api: claim of %s: %s; asking again", waiting->path,
                     fault->message);
        s_claim_send (self, waiting);
        return;
    }
    s_claim_replied (self, waiting, reply, fault);
}

//  Send the claim of WAITING (taken) to the ring on its own, with its
//  player if it has one.
static void
s_claim_send (sim_api_t *self, s_waiting_t *waiting)
{
    json_t *args = json_pack ("{s:s,s:s}", "path", waiting->path, "sim",
                              self->config.name);
    if (waiting->state)
        json_object_set_new (args, "player", json_string (waiting->state));
    //  Another instance's entity: the claim goes on from the ring to its
    //  home under an id of this sim's, so the ring's own retries are one
    //  claim there (federation.md section 6).
    if (strchr (waiting->path, '@')) {
        if (!waiting->retry_until_ms)
            waiting->retry_until_ms = sf_time_mono_ms () + S_FOREIGN_RETRY_MS;
        char request [48];
        snprintf (request, sizeof request, "%llu.%llu",
                  (unsigned long long) self->registered_ms,
                  (unsigned long long) waiting->claim);
        json_object_set_new (args, "request", json_string (request));
        json_object_set_new (args, "ttl_ms", json_integer (S_FOREIGN_TTL_MS));
    }
    waiting->sent_us = sf_time_wall_us ();
    zlist_append (self->waiting, waiting);
    int timeout_ms = strchr (waiting->path, '@') ? S_FOREIGN_TTL_MS + 1000
                                                 : S_RING_TIMEOUT_MS;
    if (sim_ring_call (self->config.ring, "authority.request", &args,
                       timeout_ms, s_claimed, waiting)) {
        zlist_remove (self->waiting, waiting);
        sf_fault_t fault;
        sf_fault_set (&fault, SF_EUNAVAILABLE, "cannot reach the ring");
        s_claim_replied (self, waiting, NULL, &fault);
    }
}

//  The ring answered a batch of claims: each as its item says. An item
//  refused because its rule asks goes again on its own, to be asked.
static void
s_claimed_batch (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_batch_t *batch = (s_batch_t *) arg;
    sim_api_t *self = batch->api;
    zlist_remove (self->batches, batch);
    const json_t *results = reply ? json_object_get (reply, "results") : NULL;
    sf_fault_t mismatch;
    if (!fault && json_array_size (results) != zlist_size (batch->calls)) {
        sf_fault_set (&mismatch, SF_EINTERNAL,
                      "the ring answered %zu claims of a batch of %zu",
                      json_array_size (results), zlist_size (batch->calls));
        fault = &mismatch;
    }
    //  One request, one reply: recorded once for the batch.
    if (!fault)
        s_trace_reply (self, (s_waiting_t *) zlist_first (batch->calls),
                       "request", reply);
    size_t at = 0;
    s_waiting_t *waiting;
    while ((waiting = (s_waiting_t *) zlist_pop (batch->calls))) {
        zlist_remove (self->waiting, waiting);
        const json_t *item = json_array_get (results, at++);
        if (fault)
            s_claim_replied (self, waiting, NULL, fault);
        else if (json_is_true (json_object_get (item, "granted")))
            s_claim_replied (self, waiting, item, NULL);
        else if (json_is_true (json_object_get (item, "ask")))
            s_claim_send (self, waiting);
        else {
            sf_fault_t refused;
            api_msg_code_fault (
                json_string_value (json_object_get (item, "error")),
                json_string_value (json_object_get (item, "message")),
                &refused);
            s_claim_replied (self, waiting, NULL, &refused);
        }
    }
    s_batch_destroy (&batch);
}

void
sim_api_flush (sim_api_t *self)
{
    if (zlist_size (self->queued) == 1)
        s_claim_send (self, (s_waiting_t *) zlist_pop (self->queued));
    while (zlist_size (self->queued)) {
        s_batch_t *batch = (s_batch_t *) zmalloc (sizeof (s_batch_t));
        batch->api = self;
        batch->calls = zlist_new ();
        json_t *paths = json_array ();
        s_waiting_t *waiting;
        while (zlist_size (batch->calls) < SIM_API_MAX_BATCH
               && (waiting = (s_waiting_t *) zlist_pop (self->queued))) {
            json_array_append_new (paths, json_string (waiting->path));
            waiting->sent_us = sf_time_wall_us ();
            zlist_append (batch->calls, waiting);
            zlist_append (self->waiting, waiting);
        }
        json_t *args =
            json_pack ("{s:s,s:o}", "sim", self->config.name, "paths", paths);
        zlist_append (self->batches, batch);
        if (sim_ring_call (self->config.ring, "authority.request", &args,
                           S_RING_TIMEOUT_MS, s_claimed_batch, batch)) {
            sf_fault_t fault;
            sf_fault_set (&fault, SF_EUNAVAILABLE, "cannot reach the ring");
            s_claimed_batch (batch, NULL, &fault);
        }
    }
}

//  entity.claim: ask the ring for the authority of an entity; once granted,
//  take it with the former authority's final state (or the ring's last
//  checkpoint when there is none, or none comes in time). The core keeps
//  one claim per entity in flight: a second call joins it and gets its
//  answer, so two replies can never name one epoch with two states.
static int
s_op_claim (sim_api_t *self, api_call_t **call_p, json_t *reply,
            sf_fault_t *fault)
{
    (void) reply;
    const json_t *root = api_call_request (*call_p)->root;
    const char *path, *player = NULL;
    if (s_any_path_arg (root, "path", &path, fault)
        || sf_json_string (root, "player", false, &player, fault))
        return -1;
    if (!self->registered_ms)
        return sf_fault_set (fault, SF_EUNAVAILABLE,
                             "this sim is not registered with the ring yet");
    bool joined;
    uint64_t id =
        sim_authority_claim (self->core, path, sf_time_mono_ms (), &joined);
    s_claim_t *claim = s_claim_calls (self, id, true);
    zlist_append (claim->calls, *call_p);
    *call_p = NULL;
    s_waiting_t *waiting = self->requested;
    self->requested = NULL;
    if (!waiting)
        return 0;  //  joined the claim in flight
    if (player || strchr (path, '@')) {
        waiting->state = player ? strdup (player) : NULL;
        s_claim_send (self, waiting);
    }
    else  //  sent with the other claims of this loop turn (sim_api_flush)
        zlist_append (self->queued, waiting);
    return 0;
}

uint8_t
sim_api_offer (void *arg, const char *from, const handoff_msg_entity_t *entity,
               char *trace)
{
    sim_api_t *self = (sim_api_t *) arg;
    char path [SF_NAME_MAX_PATH + SF_NAME_MAX_INSTANCE + 2];
    memcpy (path, entity->path, entity->path_size);
    path [entity->path_size] = 0;
    //  Another instance's sim hands over its instance's entity, which this
    //  sim claimed as PATH@INSTANCE, or this instance's entity that it was
    //  the foreign authority of (federation.md section 5).
    const char *instance = strchr (from, '@');
    if (instance) {
        char global [sizeof path];
        snprintf (global, sizeof global, "%s%s", path, instance);
        if (sim_authority_claiming (self->core, global)
            || sim_authority_holds (self->core, global, NULL)) {
            strcpy (path, global);
            //  That instance's transfer: TRANSFER@INSTANCE (trace.md).
            size_t used = strlen (trace);
            snprintf (trace + used, SF_TRACE_MAX_ID + 1 - used, "%s", instance);
        }
    }
    return sim_authority_handoff (self->core, path, from, entity->epoch,
                                  entity->state, entity->state_size,
                                  sf_time_mono_ms ());
}

void
sim_api_tick (sim_api_t *self, uint64_t now_ms)
{
    sim_authority_tick (self->core, now_ms);
    s_grant_tick (self, now_ms);
}

//  entity.create: the ring records the entity with this sim as authority
//  (epoch 1), then it is created here.
static int
s_op_create (sim_api_t *self, api_call_t **call_p, json_t *reply,
             sf_fault_t *fault)
{
    (void) reply;
    const json_t *root = api_call_request (*call_p)->root;
    const char *path, *state, *rule = NULL;
    size_t size;
    if (s_path_arg (root, "path", &path, fault)
        || s_state_arg (self, root, path, &state, &size, fault)
        || sf_json_string (root, "rule", false, &rule, fault))
        return -1;
    if (!self->registered_ms)
        return sf_fault_set (fault, SF_EUNAVAILABLE,
                             "this sim is not registered with the ring yet");
    sim_entity_t *entity = sim_store_get (self->config.store, path);
    if (entity && entity->authority)
        return sf_fault_set (fault, SF_EEXISTS,
                             "this sim already holds that entity");
    json_t *args =
        json_pack ("{s:s,s:s}", "path", path, "authority", self->config.name);
    if (rule)
        json_object_set_new (args, "rule", json_string (rule));
    s_ring_wait (self, call_p, "entity.create", args, path,
                 state ? strndup (state, size) : NULL, s_created);
    return 0;
}

//  The ring answered an entity.import: the batch is this sim's now.
static void
s_imported (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    api_router_t *router = self->config.router;
    if (fault) {
        api_router_fail (router, &waiting->call, fault->error, fault->message);
        s_waiting_destroy (&waiting);
        return;
    }
    uint64_t epoch =
        (uint64_t) json_integer_value (json_object_get (reply, "epoch"));
    uint64_t now_ms = sf_time_wall_ms ();
    const json_t *grants = json_object_get (reply, "grants");
    size_t index;
    json_t *item;
    size_t stored = 0;
    json_array_foreach (waiting->batch, index, item)
    {
        const char *path = json_string_value (json_object_get (item, "path"));
        const char *state =
            json_string_value (json_object_get (item, "checkpoint"));
        size_t size = state ? strlen (state) : 0;
        sim_entity_t *entity = sim_store_get (self->config.store, path);
        if (entity && !entity->authority)
            sim_store_delete (self->config.store, path), entity = NULL;
        if (!entity)
            entity = sim_store_create (self->config.store, path, strlen (path),
                                       epoch, 0, true);
        if (!entity
            || sim_store_set (self->config.store, entity, epoch, 1,
                              (const uint8_t *) state, size, now_ms))
            continue;
        entity->authority = true;
        entity->source [0] = 0;
        sim_authority_hold (self->core, path, epoch, 1);
        s_grant_adopt (self, json_array_get (grants, index));
        s_grant_need (self, entity);
        //  The ring holds this state already: its first checkpoint.
        entity->saved_epoch = epoch;
        entity->saved_seq = 1;
        stored++;
        if (self->config.stream)
            sim_stream_changed (self->config.stream, entity);
        sim_api_notify (self, entity);
    }
    if (self->config.stream)
        sim_stream_flush (self->config.stream, sf_time_mono_us ());
    if (stored < json_array_size (waiting->batch))
        api_router_fail (router, &waiting->call, SF_EINTERNAL,
                         "the ring took the batch but this sim could not store "
                         "all of it (out of memory?)");
    else {
        json_t *result = json_pack (
            "{s:I,s:O,s:O,s:I,s:O}", "imported", (json_int_t) stored, "first",
            json_object_get (reply, "first"), "last",
            json_object_get (reply, "last"), "epoch", (json_int_t) epoch,
            "index", json_object_get (reply, "index"));
        api_router_reply (router, &waiting->call, result);
        json_decref (result);
    }
    s_waiting_destroy (&waiting);
}

//  entity.import: a batch of entities, created in the ring in one command
//  with this sim as their authority, then held here.
static int
s_op_import (sim_api_t *self, api_call_t **call_p, json_t *reply,
             sf_fault_t *fault)
{
    (void) reply;
    const json_t *root = api_call_request (*call_p)->root;
    //  Each entity's own schema.
    static const char *fields [] = {"path", "state", "rule", "owner", NULL};
    const json_t *entities = json_object_get (root, "entities");
    if (!json_is_array (entities) || json_array_size (entities) < 1
        || json_array_size (entities) > SIM_API_MAX_IMPORT)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'entities' must be an array of 1..1000 "
                             "entities");
    if (!self->registered_ms)
        return sf_fault_set (fault, SF_EUNAVAILABLE,
                             "this sim is not registered with the ring yet");
    //  What the ring records: the state is the entity's first checkpoint.
    json_t *batch = json_array ();
    size_t index;
    const json_t *entity;
    json_array_foreach (entities, index, entity)
    {
        const char *path = NULL, *state = NULL;
        size_t size = 0;
        sf_fault_t refused;
        sf_fault_clear (&refused);
        if (!json_is_object (entity))
            sf_fault_set (&refused, SF_EINVAL, "an entity must be an object");
        else if (sf_json_only (entity, fields, &refused)
                 || s_path_arg (entity, "path", &path, &refused)
                 || s_state_arg (self, entity, path, &state, &size, &refused))
            ;
        else {
            sim_entity_t *held = sim_store_get (self->config.store, path);
            if (held && held->authority)
                sf_fault_set (&refused, SF_EEXISTS,
                              "this sim already holds '%s'", path);
        }
        if (refused.error != SF_OK) {
            json_decref (batch);
            return sf_fault_set (fault, refused.error, "entities[%zu]: %s",
                                 index, refused.message);
        }
        json_t *item = json_pack ("{s:s}", "path", path);
        if (state)
            json_object_set_new (item, "checkpoint",
                                 json_stringn (state, size));
        //  The ring checks rule and owner.
        json_t *rule = json_object_get (entity, "rule");
        json_t *owner = json_object_get (entity, "owner");
        if (rule)
            json_object_set (item, "rule", rule);
        if (owner)
            json_object_set (item, "owner", owner);
        json_array_append_new (batch, item);
    }
    json_t *args = json_pack ("{s:O,s:s}", "entities", batch, "authority",
                              self->config.name);
    s_waiting_t *waiting = s_ring_wait (self, call_p, "entity.import", args,
                                        NULL, NULL, s_imported);
    if (waiting)
        waiting->batch = batch;
    else
        json_decref (batch);
    return 0;
}

static s_subscription_t *
s_subscription_find (sim_api_t *self, zframe_t *routing_id, const char *prefix)
{
    for (s_subscription_t *subscription =
             (s_subscription_t *) zlistx_first (self->subscriptions);
         subscription;
         subscription = (s_subscription_t *) zlistx_next (self->subscriptions))
        if (zframe_eq (subscription->routing_id, routing_id)
            && strcmp (subscription->prefix, prefix) == 0)
            return subscription;
    return NULL;
}

//  subscribe and unsubscribe: they need the caller's connection.
static int
s_subscribe (sim_api_t *self, api_call_t **call_p, bool subscribe,
             json_t *reply, sf_fault_t *fault)
{
    const json_t *root = api_call_request (*call_p)->root;
    const char *prefix;
    if (s_prefix_arg (root, "prefix", true, &prefix, fault))
        return -1;
    if (api_call_delimited (*call_p))
        return sf_fault_set (fault, SF_EREQUEST,
                             "events need a DEALER socket; a REQ socket cannot "
                             "take them");
    zframe_t *routing_id = api_call_routing_id (*call_p);
    s_subscription_t *subscription =
        s_subscription_find (self, routing_id, prefix);
    json_object_set_new (reply, "prefix", json_string (prefix));
    if (subscribe && !subscription) {
        subscription = (s_subscription_t *) zmalloc (sizeof (s_subscription_t));
        subscription->routing_id = zframe_dup (routing_id);
        subscription->prefix = strdup (prefix);
        zlistx_add_end (self->subscriptions, subscription);
    }
    else if (!subscribe) {
        json_object_set_new (reply, "unsubscribed",
                             json_boolean (subscription != NULL));
        if (subscription)
            zlistx_delete (self->subscriptions,
                           zlistx_find (self->subscriptions, subscription));
    }
    return 0;
}

static int
s_op_subscribe (sim_api_t *self, api_call_t **call_p, json_t *reply,
                sf_fault_t *fault)
{
    return s_subscribe (self, call_p, true, reply, fault);
}

static int
s_op_unsubscribe (sim_api_t *self, api_call_t **call_p, json_t *reply,
                  sf_fault_t *fault)
{
    return s_subscribe (self, call_p, false, reply, fault);
}

//  --------------------------------------------------------------------------
//  Fencing without events: each heartbeat this sim reads from the ring
//  the entities it is the authority of (entity.list with "authority"),
//  and compares them with what it held when the read began. Only those
//  held then are judged: the grant of each was committed before this sim
//  took it, so the linearizable read shows it. One the ring no longer
//  gives this sim at that epoch is read once more (entity.get) to learn
//  who holds it now; then it goes as the ring's event would have said.

//  A path's epoch, as kept in the check's tables.
static uint64_t *
s_epoch_new (uint64_t epoch)
{
    uint64_t *copy = (uint64_t *) malloc (sizeof *copy);
    *copy = epoch;
    return copy;
}

static void s_check_page (sim_api_t *self, const char *after);

void
sim_api_seen (sim_api_t *self, const char *path, uint64_t epoch,
              const char *authority)
{
    if (authority)
        sim_authority_seen (self->core,
                            &(sim_authority_grant_t){.path = path,
                                                     .epoch = epoch,
                                                     .authority = authority},
                            sf_time_mono_ms ());
    else
        sim_authority_orphaned (self->core, path, epoch);
}

void
sim_api_hold (sim_api_t *self, const char *path)
{
    sim_entity_t *entity = sim_store_get (self->config.store, path);
    if (entity && entity->authority) {
        sim_authority_hold (self->core, path, entity->epoch, entity->seq);
        s_grant_need (self, entity);
    }
}

//  The ring's entity PATH, read because the ring no longer gives it to
//  this sim at the epoch it holds it at.
static void
s_check_read (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    if (fault && fault->error == SF_ENOTFOUND)
        sim_authority_deleted (self->core, waiting->path);
    else if (!fault) {
        //  As the grant's event would have told it: to another sim, the
        //  final state goes there and this sim is fenced; orphaned, it
        //  is fenced. Old news (the core learned meanwhile) changes
        //  nothing.
        s_grant_adopt (self, json_object_get (reply, "grant"));
        sim_authority_grant_t grant = s_grant_of (reply, waiting->path);
        if (grant.authority)
            sim_authority_seen (self->core, &grant, sf_time_mono_ms ());
        else
            sim_authority_orphaned (self->core, waiting->path, grant.epoch);
    }
    s_waiting_destroy (&waiting);
}

//  The ring's answer to one entity.get of the check, of an entity it
//  says is this sim's and this sim does not hold at that epoch: a grant
//  without its claim whose event never came (a gap in the feed, or no
//  feed). Taken as that event would have had it taken: the former
//  authority's final state by handoff, else the checkpoint.
static void
s_adopt_read (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_waiting_t *waiting = (s_waiting_t *) arg;
    sim_api_t *self = waiting->api;
    zlist_remove (self->waiting, waiting);
    if (!fault) {
        sim_authority_grant_t grant = s_grant_of (reply, waiting->path);
        if (grant.authority && streq (grant.authority, self->config.name)) {
            s_grant_adopt (self, json_object_get (reply, "grant"));
            sim_authority_seen (self->core, &grant, sf_time_mono_ms ());
            self->authority_adopted++;
        }
    }
    s_waiting_destroy (&waiting);
}

//  The check's pages are all in: judge what this sim held when it began.
static void
s_check_done (sim_api_t *self)
{
    for (uint64_t *epoch = (uint64_t *) zhashx_first (self->held); epoch;
         epoch = (uint64_t *) zhashx_next (self->held)) {
        const char *path = (const char *) zhashx_cursor (self->held);
        uint64_t now;
        if (!sim_authority_holds (self->core, path, &now) || now != *epoch)
            continue;  //  changed meanwhile: judged at the next check
        uint64_t *said = (uint64_t *) zhashx_lookup (self->ring_held, path);
        if (said && *said == *epoch)
            continue;
        json_t *args = json_pack ("{s:s}", "path", path);
        api_call_t *none = NULL;
        s_ring_wait (self, &none, "entity.get", args, path, NULL, s_check_read);
    }
    //  And what the ring says is this sim's but it does not hold.
    for (uint64_t *said = (uint64_t *) zhashx_first (self->ring_held); said;
         said = (uint64_t *) zhashx_next (self->ring_held)) {
        const char *path = (const char *) zhashx_cursor (self->ring_held);
        uint64_t now;
        if (strchr (path, '@')
            || (sim_authority_holds (self->core, path, &now) && now >= *said))
            continue;
        json_t *args = json_pack ("{s:s}", "path", path);
        api_call_t *none = NULL;
        s_ring_wait (self, &none, "entity.get", args, path, NULL, s_adopt_read);
    }
    zhashx_destroy (&self->held);
    zhashx_destroy (&self->ring_held);
    self->checked_once = true;
    self->checked_index = self->checking_index;
    self->checked_seen = self->checking_seen;
}

//  One page of the entities the ring says this sim holds.
static void
s_check_paged (void *arg, json_t *reply, const sf_fault_t *fault)
{
    sim_api_t *self = (sim_api_t *) arg;
    self->checking = false;
    if (!self->held)
        return;  //  the ring client was replaced meanwhile
    if (fault) {
        zhashx_destroy (&self->held);  //  the next heartbeat starts again
        zhashx_destroy (&self->ring_held);
        return;
    }
    size_t index;
    json_t *entity;
    json_array_foreach (json_object_get (reply, "entities"), index, entity)
    {
        const char *path = json_string_value (json_object_get (entity, "path"));
        json_int_t epoch =
            json_integer_value (json_object_get (entity, "epoch"));
        if (path)
            zhashx_update (self->ring_held, path,
                           s_epoch_new ((uint64_t) epoch));
    }
    const char *next = json_string_value (json_object_get (reply, "next"));
    if (next)
        s_check_page (self, next);
    else
        s_check_done (self);
}

static void
s_check_page (sim_api_t *self, const char *after)
{
    json_t *args = json_pack ("{s:s,s:s,s:i}", "authority", self->config.name,
                              "prefix", "/", "limit", S_LIST_LIMIT);
    if (after)
        json_object_set_new (args, "after", json_string (after));
    self->authority_check_pages++;
    if (sim_ring_call (self->config.ring, "entity.list", &args,
                       S_RING_TIMEOUT_MS, s_check_paged, self)
        == 0)
        self->checking = true;
    else {
        zhashx_destroy (&self->held);
        zhashx_destroy (&self->ring_held);
    }
}

//  sim_authority_each_held: note PATH, held at EPOCH, in HELD.
static void
s_note_held (void *arg, const char *path, uint64_t epoch)
{
    zhashx_insert ((zhashx_t *) arg, path, s_epoch_new (epoch));
}

void
sim_api_check (sim_api_t *self, uint64_t taken_index)
{
    if (!self->registered_ms || self->held || self->checking)
        return;  //  the check before this one is still on its way
    if (self->checked_once && taken_index <= self->checked_index)
        return;  //  nothing was taken from this sim since: O(1)
    //  The last check's read showed every change up to the newest event
    //  seen before it was sent (that change was applied before the read
    //  was served). If every change since came as an event and was acted
    //  on (each kind that takes an entity from a sim is one s_ring_wants
    //  parses), the ring's word is known already. O(1) too.
    uint64_t shown = self->checked_seen > self->checked_index
                         ? self->checked_seen
                         : self->checked_index;
    if (self->checked_once && self->config.ring) {
        uint64_t through = sim_ring_event_index (self->config.ring);
        if (sim_ring_saw (self->config.ring, shown, taken_index)) {
            self->checked_index = taken_index;
            self->authority_checks_seen++;
            return;
        }
        //  The events come on another socket than the heartbeat's reply,
        //  and a sim takes them a little at a time: under a stream of moves
        //  they lag it. What a whole chain covered is known; the rest waits
        //  for the next heartbeat, as long as the events move on (they
        //  fence this sim as they come; SHOWN is where they were at the
        //  last heartbeat). Events that stopped, or a gap, and it reads.
        if (through > shown
            && sim_ring_saw (self->config.ring, shown, through)) {
            self->checked_index = through;
            self->authority_checks_waited++;
            return;
        }
    }
    self->checking_index = taken_index;
    self->checking_seen =
        self->config.ring ? sim_ring_event_index (self->config.ring) : 0;
    self->authority_checks++;
    self->held = zhashx_new ();
    zhashx_set_destructor (self->held, (zhashx_destructor_fn *) zstr_free);
    self->ring_held = zhashx_new ();
    zhashx_set_destructor (self->ring_held, (zhashx_destructor_fn *) zstr_free);
    sim_authority_each_held (self->core, s_note_held, self->held);
    s_check_page (self, NULL);
}

//  Foreign entities checked at their home at most this often, and at most
//  this many each time (federation.md section 6).
#define S_FOREIGN_CHECK_MS 3000
#define S_FOREIGN_CHECKS 64

//  One held foreign entity's check: the home's word on it.
typedef struct {
    sim_api_t *api;
    char *path;      //  PATH@HOME
    uint64_t epoch;  //  the epoch held here when asked
} s_foreign_check_t;

static void
s_note_foreign (void *arg, const char *path, uint64_t epoch)
{
    zlist_t *held = (zlist_t *) arg;
    char item [SF_NAME_MAX_PATH + SF_NAME_MAX_INSTANCE + 32];
    snprintf (item, sizeof item, "%llu %s", (unsigned long long) epoch, path);
    //  The list copies what it is given (autofree).
    if (strchr (path, '@') && zlist_size (held) < S_FOREIGN_CHECKS)
        zlist_append (held, item);
}

//  The home's answer on a foreign entity held here: a newer epoch means
//  it was taken from this sim and the fence never came (a leader that
//  died, a link cut): this sim stops, as the fence would have told it.
static void
s_foreign_checked (void *arg, json_t *reply, const sf_fault_t *fault)
{
    s_foreign_check_t *check = (s_foreign_check_t *) arg;
    sim_api_t *self = check->api;
    uint64_t epoch =
        reply ? (uint64_t) json_integer_value (json_object_get (reply, "epoch"))
              : 0;
    const char *authority =
        reply ? json_string_value (json_object_get (reply, "authority")) : NULL;
    if (!fault && epoch > check->epoch
        && sim_authority_holds (self->core, check->path, NULL)) {
        sf_log_notice ("sim_api: %s is %s's at epoch %llu at its home: this "
                       "sim stops holding it",
                       check->path, authority ? authority : "no one's",
                       (unsigned long long) epoch);
        if (!authority)
            sim_authority_orphaned (self->core, check->path, epoch);
        else {
            sim_authority_grant_t grant = s_grant_of (reply, check->path);
            grant.path = check->path;
            sim_authority_seen (self->core, &grant, sf_time_mono_ms ());
        }
    }
    free (check->path);
    free (check);
}

bool
sim_api_awaits_outcomes (sim_api_t *self)
{
    return self->unknown_until_ms > sf_time_mono_ms ();
}

void
sim_api_check_foreign (sim_api_t *self, uint64_t now_ms)
{
    if (!self->registered_ms || !self->config.ring
        || now_ms - self->foreign_checked_ms < S_FOREIGN_CHECK_MS)
        return;
    self->foreign_checked_ms = now_ms;
    zlist_t *held = zlist_new ();
    zlist_autofree (held);
    sim_authority_each_held (self->core, s_note_foreign, held);
    for (char *item = (char *) zlist_first (held); item;
         item = (char *) zlist_next (held)) {
        s_foreign_check_t *check =
            (s_foreign_check_t *) zmalloc (sizeof (s_foreign_check_t));
        check->api = self;
        check->epoch = strtoull (item, NULL, 10);
        check->path = strdup (strchr (item, ' ') + 1);
        json_t *args = json_pack ("{s:s}", "path", check->path);
        if (sim_ring_call (self->config.ring, "entity.get", &args,
                           S_RING_TIMEOUT_MS, s_foreign_checked, check)) {
            free (check->path);
            free (check);
        }
    }
    zlist_destroy (&held);
}

//  --------------------------------------------------------------------------
//  The operations: SIM_OP_MAP's rows, and each one's schema and handler

//  Serve the request of *CALL_P, whose fields fit the op's schema: answer
//  at once (return 0 with the result's members added to REPLY, or -1 with
//  FAULT set), or take the call (null *CALL_P and return 0) to answer it
//  when the ring or a peer has.
typedef int (s_handler_fn) (sim_api_t *self, api_call_t **call_p, json_t *reply,
                            sf_fault_t *fault);

typedef struct {
    //  Its arguments besides "op" and "id", NULL-terminated: any other is
    //  refused before the handler runs.
    const char *fields [4];
    s_handler_fn *handler;
} s_op_t;

// clang-format off
static const s_op_t s_ops [SIM_OP_COUNT] = {
    [SIM_OP_STATUS] = {{NULL}, s_op_status},
    [SIM_OP_COUNTERS] = {{NULL}, s_op_counters},
    [SIM_OP_TRACE] = {{"trace"}, s_op_trace},
    [SIM_OP_SUBSCRIBE] = {{"prefix"}, s_op_subscribe},
    [SIM_OP_UNSUBSCRIBE] = {{"prefix"}, s_op_unsubscribe},
    [SIM_OP_ENTITY_CREATE] = {{"path", "state", "rule"}, s_op_create},
    [SIM_OP_ENTITY_IMPORT] = {{"entities"}, s_op_import},
    [SIM_OP_ENTITY_UPDATE] = {{"path", "state", "trace"}, s_op_update},
    [SIM_OP_ENTITY_DELETE] = {{"path"}, s_op_delete},
    [SIM_OP_ENTITY_CLAIM] = {{"path", "player"}, s_op_claim},
    [SIM_OP_ENTITY_RELEASE] = {{"path"}, s_op_release},
    [SIM_OP_ENTITY_COPY] = {{"to", "prefix"}, s_op_copy},
    [SIM_OP_AUTHORITY_ANSWER] = {{"transfer", "approve"}, s_op_answer},
    [SIM_OP_ENTITY_GET] = {{"path"}, s_op_get},
    [SIM_OP_ENTITY_LIST] = {{"prefix", "after", "limit"}, s_op_list},
    [SIM_OP_ENTITY_MATCH] = {{"pattern", "after", "limit"}, s_op_match},
};
// clang-format on

#define SIM_OP_ROW(id, name, kind, access) {id, name, kind, access},
static const sim_op_t s_op_rows [SIM_OP_COUNT] = {SIM_OP_MAP (SIM_OP_ROW)};
#undef SIM_OP_ROW

const sim_op_t *
sim_op_find (const char *name)
{
    for (int id = 0; id < SIM_OP_COUNT; id++)
        if (streq (s_op_rows [id].name, name))
            return &s_op_rows [id];
    return NULL;
}

//  ARGS has no field beyond the schema of operation ROW ("op" and "id"
//  besides). Returns 0, or -1 with FAULT naming the first other.
static int
s_check_fields (const sim_op_t *row, const json_t *args, sf_fault_t *fault)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) args, key, value)
    {
        bool known = streq (key, "op") || streq (key, "id");
        for (const char *const *field = s_ops [row->id].fields;
             *field && !known; field++)
            known = streq (*field, key);
        if (!known)
            return sf_fault_set (fault, SF_EINVAL, "unknown field '%s'", key);
    }
    return 0;
}

//  The caller may call operation ROW. Every row is open to any client
//  the API socket admitted: the ZAP handler decided when its session
//  began (sim/clients).
static int
s_access (const sim_op_t *row, sf_fault_t *fault)
{
    (void) fault;
    switch (row->access) {
        case SIM_OP_CLIENT:
            break;
    }
    return 0;
}

int
sim_api_handle (sim_api_t *self)
{
    api_router_t *router = self->config.router;
    api_call_t *call = api_router_recv (router, "sim_api");
    if (!call)
        return 0;
    //  In the spec's order (sim-api.md section 3): the op exists, no
    //  field beyond its schema, access, then the op itself.
    const api_msg_t *request = api_call_request (call);
    const sim_op_t *row = sim_op_find (request->op);
    json_t *reply = json_object ();
    sf_fault_t fault;
    sf_fault_clear (&fault);
    int rc;
    if (!row)
        rc = sf_fault_set (&fault, SF_EUNKNOWNOP, "no such operation '%s'",
                           request->op);
    else if (s_check_fields (row, request->root, &fault)
             || s_access (row, &fault))
        rc = -1;
    else {
        json_decref (self->error_details);  //  only this request's
        self->error_details = NULL;
        rc = s_ops [row->id].handler (self, &call, reply, &fault);
    }
    if (!call)
        ;  //  taken: answered later, or already
    else if (rc == 0)
        api_router_reply (router, &call, reply);
    else {
        api_router_fail_with (router, &call,
                              fault.error == SF_OK ? SF_EINTERNAL : fault.error,
                              fault.message, self->error_details);
        self->error_details = NULL;
    }
    json_decref (self->error_details);  //  a request answered later
    self->error_details = NULL;
    json_decref (reply);
    return 0;
}
