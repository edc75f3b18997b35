/*  hs_relay: a local sim's claim sent on to the entity's home instance. */

#include "broker/hs_relay.h"
#include "common/sf_json.h"
#include "protocol/api_msg.h"
#include "common/sf_name.h"
#include "common/sf_time.h"
#include "common/sf_trace.h"

#include <sodium.h>
#include <string.h>

//  Longest request id a sim may give (its global form adds its name).
#define S_REQUEST_MAX 100

//  Longest global name: a name, '@', an instance.
#define S_GLOBAL_MAX (64 + 1 + SF_NAME_MAX_INSTANCE)

//  Longest global request id: a global name, '/', the sim's id.
#define S_ID_MAX (S_GLOBAL_MAX + S_REQUEST_MAX + 32)

//  A claim whose outcome is unknown this long after it was sent on is
//  withdrawn at its home (federation.md section 6): by then its sim has
//  stopped asking again, and a leader that has it in flight does not.
#define S_RECOVER_MS 15000

//  How long a read of another instance's entity waits for its home.
#define S_READ_MS 2000

struct _hs_relay_t {
    hs_fed_t *fed;           //  lent
    hs_fsm_t *fsm;           //  lent
    hs_api_t *api;           //  lent: submits fed.intent and fed.outcome
    sf_trace_t *trace;       //  lent: hop records (trace.md), or NULL
    zlistx_t *waits;         //  s_wait_t of claims sent on
    zhashx_t *inflight;      //  request ids sent on or being withdrawn
    uint64_t next;           //  claims given an id here
    uint32_t nonce;          //  makes those ids unique across restarts
    uint64_t checked_ms;     //  when open intents were last looked at
    json_t *outcomes;        //  fed.outcome arguments not submitted yet
    uint64_t flushed_ms;     //  when they were last submitted
    zlistx_t *queued;        //  s_wait_t taken this turn, not sent yet
    uint64_t claims_sent;    //  claims sent to their homes, again or not
    uint64_t messages_sent;  //  fed.claim messages that carried them
};

//  Claims sent to one home in one fed.claim at most (federation.md
//  section 5, the batch form): a turn's worth at 64 in flight.
#define S_BATCH_MAX 64

//  Known outcomes wait this long to go to the ring together: they only
//  put the transfer in this instance's feed (the sim heard the reply), so
//  one commit carries many, rather than one commit each.
#define S_OUTCOMES_MS 250

//  A claim sent on, waiting for its home's answer.
typedef struct {
    hs_relay_t *relay;
    api_call_t *call;                          //  the sim's request
    void *cursor;                              //  its place in waits
    char instance [SF_NAME_MAX_INSTANCE + 1];  //  the entity's home
    char path [SF_NAME_MAX_PATH + 1];          //  the home's path
    char sim [65];                             //  the sim, a local name
    char request [S_ID_MAX];                   //  the global request id
    uint64_t ttl_ms;
    uint64_t sent_us;  //  wall clock when it went to the home
    json_t *claim;     //  its fed.claim, until sent alone
    bool batchable;    //  no player, no ask timeout: may go in a batch
} s_wait_t;

//  Claims of one sim to one home sent together.
typedef struct {
    hs_relay_t *relay;
    size_t count;
    s_wait_t *waits [S_BATCH_MAX];
} s_batch_t;

hs_relay_t *
hs_relay_new (hs_fed_t *fed, hs_fsm_t *fsm, hs_api_t *api, sf_trace_t *trace)
{
    hs_relay_t *self = (hs_relay_t *) zmalloc (sizeof (hs_relay_t));
    self->trace = trace;
    self->fed = fed;
    self->fsm = fsm;
    self->api = api;
    self->waits = zlistx_new ();
    self->inflight = zhashx_new ();
    self->outcomes = json_array ();
    self->queued = zlistx_new ();
    self->nonce = randombytes_random ();
    return self;
}

void
hs_relay_destroy (hs_relay_t **self_p)
{
    if (*self_p) {
        hs_relay_t *self = *self_p;
        //  The waits' own answers never come: hs_fed answers them first
        //  (it is destroyed before this), so only calls are left here.
        s_wait_t *wait;
        while ((wait = (s_wait_t *) zlistx_detach (self->waits, NULL))) {
            api_router_fail (NULL, &wait->call, SF_EUNAVAILABLE,
                             "this homeserver is stopping; the entity's home "
                             "may have decided the claim: ask again with the "
                             "same request id");
            wait->relay = NULL;
            json_decref (wait->claim);
            free (wait);
        }
        zlistx_destroy (&self->waits);
        zlistx_destroy (&self->queued);
        zhashx_destroy (&self->inflight);
        json_decref (self->outcomes);
        free (self);
        *self_p = NULL;
    }
}

void
hs_relay_counters (hs_relay_t *self, json_t *counters)
{
    json_object_set_new (counters, "federation_claims_sent",
                         json_integer ((json_int_t) self->claims_sent));
    json_object_set_new (counters, "federation_claim_messages",
                         json_integer ((json_int_t) self->messages_sent));
}

size_t
hs_relay_waiting (hs_relay_t *self)
{
    return zlistx_size (self->waits);
}

//  Set FIELD of RESULT to NAME@INSTANCE, if it is a name of the home's
//  (a bare name); a name with an instance already is left as it is.
static void
s_globalize (json_t *result, const char *field, const char *instance)
{
    const char *name = json_string_value (json_object_get (result, field));
    if (!name || strchr (name, '@'))
        return;
    char global [S_GLOBAL_MAX + 1];
    snprintf (global, sizeof global, "%s@%s", name, instance);
    json_object_set_new (result, field, json_string (global));
}

//  The home's answer REPLY (lent) to the claim of SIM of HOME's PATH, in
//  the sim's terms: a new object.
static json_t *
s_translate (const json_t *reply, const char *home, const char *path,
             const char *sim, const char *node)
{
    json_t *result = json_deep_copy (reply);
    json_object_del (result, "id");
    json_object_del (result, "ok");
    //  Who answered is this instance's member (the home's names its own).
    json_object_del (result, "leader");
    json_object_set_new (result, "node", json_string (node));
    char global [SF_NAME_MAX_PATH + SF_NAME_MAX_INSTANCE + 2];
    snprintf (global, sizeof global, "%s@%s", path, home);
    json_object_set_new (result, "path", json_string (global));
    json_object_set_new (result, "home", json_string (home));
    json_object_set_new (result, "home_path", json_string (path));
    //  The sim is "b" here; the home calls it "b@HERE" (and so does the
    //  grant, which stays as the home signed it).
    if (json_object_get (result, "authority"))
        json_object_set_new (result, "authority", json_string (sim));
    s_globalize (result, "previous", home);
    s_globalize (result, "master", home);
    return result;
}

//  Record in this ring that sim SIM's claim REQUEST of HOME's PATH was
//  sent on and its outcome is unknown (OUTCOME NULL: fed.intent), or what
//  it came to (OUTCOME taken: fed.outcome), off the sim's critical path.
//  An intent lets a later leader finish the claim (hs_relay_tick); an
//  outcome puts the transfer in this instance's feed, where the sim
//  learns a grant it did not hear.
static void
s_record (hs_relay_t *self, const char *request, const char *home,
          const char *path, const char *sim, json_t *outcome)
{
    char global [SF_NAME_MAX_PATH + SF_NAME_MAX_INSTANCE + 2];
    snprintf (global, sizeof global, "%s@%s", path, home);
    json_t *args = json_pack ("{s:s,s:s,s:s}", "request", request, "path",
                              global, "sim", sim);
    if (outcome) {
        json_object_set_new (args, "outcome", outcome);
        json_array_append_new (self->outcomes, args);
    }
    else
        hs_api_submit_own (self->api, "fed.intent", args);
}

bool
hs_relay_flush (hs_relay_t *self, uint64_t now)
{
    if (!json_array_size (self->outcomes)
        || now - self->flushed_ms < S_OUTCOMES_MS)
        return false;
    self->flushed_ms = now;
    //  One sim's outcomes as one command (the batch form): they cost the
    //  ring one entry, one apply and one event rather than one each.
    size_t count = json_array_size (self->outcomes);
    bool *sent = (bool *) calloc (count, sizeof (bool));
    for (size_t first = 0; first < count; first++) {
        if (sent [first])
            continue;
        json_t *lead = json_array_get (self->outcomes, first);
        const char *sim = json_string_value (json_object_get (lead, "sim"));
        json_t *outcomes = json_array ();
        for (size_t at = first;
             at < count && json_array_size (outcomes) < HS_FSM_MAX_REQUESTS;
             at++) {
            json_t *args = json_array_get (self->outcomes, at);
            if (sent [at]
                || !streq (json_string_value (json_object_get (args, "sim")),
                           sim))
                continue;
            sent [at] = true;
            json_array_append_new (
                outcomes, json_pack ("{s:O,s:O,s:O}", "request",
                                     json_object_get (args, "request"), "path",
                                     json_object_get (args, "path"), "outcome",
                                     json_object_get (args, "outcome")));
        }
        if (json_array_size (outcomes) == 1) {
            json_decref (outcomes);
            hs_api_submit_own (self->api, "fed.outcome", json_incref (lead));
        }
        else
            hs_api_submit_own (
                self->api, "fed.outcome",
                json_pack ("{s:s,s:o}", "sim", sim, "outcomes", outcomes));
    }
    free (sent);
    json_array_clear (self->outcomes);
    return true;
}

//  The home's answer to WAIT's claim (federation.md section 5), told to
//  the sim in its own instance's terms, and recorded unless unknown.
//  The four hops of WAIT's claim seen here (trace.md): the sim's request
//  and the reply to it, the claim sent on to MEMBER and its answer, under
//  the home's transfer id TRANSFER, written TRANSFER@HOME.
static void
s_trace_hops (hs_relay_t *self, s_wait_t *wait, const json_t *transfer,
              const char *member, uint64_t received_us)
{
    if (!self || !self->trace || !json_is_integer (transfer) || !member
        || !wait->call)
        return;
    char id [SF_TRACE_MAX_ID + 1];
    snprintf (id, sizeof id, "%lld@%s",
              (long long) json_integer_value (transfer), wait->instance);
    sf_trace_record (self->trace, id, "request", false, wait->sim,
                     api_call_received_us (wait->call));
    sf_trace_record (self->trace, id, "request", true, member, wait->sent_us);
    sf_trace_record (self->trace, id, "reply", false, member, received_us);
    sf_trace_record (self->trace, id, "reply", true, wait->sim,
                     sf_time_wall_us ());
}

static void
s_wait_free (s_wait_t **wait_p)
{
    if (*wait_p) {
        json_decref ((*wait_p)->claim);
        free (*wait_p);
        *wait_p = NULL;
    }
}

//  WAIT's claim answered (REPLY, the home's result, from MEMBER, at
//  RECEIVED_US) or not (FAULT): the sim is told, the outcome recorded
//  unless unknown, and WAIT destroyed.
static void
s_settle (hs_relay_t *self, s_wait_t *wait, const json_t *reply,
          const char *member, const sf_fault_t *fault, uint64_t received_us)
{
    if (self) {
        zlistx_delete (self->waits, wait->cursor);
        zhashx_delete (self->inflight, wait->request);
    }
    if (reply) {
        json_t *result =
            s_translate (reply, wait->instance, wait->path, wait->sim,
                         self ? hs_fed_node (self->fed) : "");
        s_trace_hops (self, wait, json_object_get (reply, "transfer"), member,
                      received_us);
        api_router_reply (NULL, &wait->call, result);
        if (self)
            s_record (self, wait->request, wait->instance, wait->path,
                      wait->sim, result);
        else
            json_decref (result);
    }
    else if (fault->error == SF_ETIMEOUT || fault->error == SF_EUNAVAILABLE) {
        char message [sizeof fault->message + 320];
        snprintf (message, sizeof message,
                  "outcome unknown: instance '%s' did not answer within "
                  "%llu ms (%s); the entity's home decides the claim: ask "
                  "again with the same request id",
                  wait->instance, (unsigned long long) wait->ttl_ms,
                  fault->message);
        api_router_fail (NULL, &wait->call, SF_ETIMEOUT, message);
        if (self)
            s_record (self, wait->request, wait->instance, wait->path,
                      wait->sim, NULL);
    }
    else {
        if (self)
            s_record (self, wait->request, wait->instance, wait->path,
                      wait->sim,
                      json_pack ("{s:b,s:s,s:s}", "granted", 0, "error",
                                 sf_error_code (fault->error), "message",
                                 fault->message));
        api_router_fail (NULL, &wait->call, fault->error, fault->message);
    }
    s_wait_free (&wait);
}

static void
s_answered (void *arg, const json_t *reply, const char *member,
            const sf_fault_t *fault)
{
    s_wait_t *wait = (s_wait_t *) arg;
    s_settle (wait->relay, wait, reply, member, fault, sf_time_wall_us ());
}

//  Send WAIT's claim to its home on its own (the single form).
static void
s_send_alone (hs_relay_t *self, s_wait_t *wait, uint64_t now)
{
    json_t *claim = json_deep_copy (wait->claim);
    //  One attempt spans the whole time: a claim may wait at its home for
    //  an ask, and a member silent that long is given up on for the next
    //  claim (hs_fed_tick).
    wait->sent_us = sf_time_wall_us ();
    self->claims_sent++;
    self->messages_sent++;
    hs_fed_call (self->fed, wait->instance, &claim, wait->ttl_ms, wait->ttl_ms,
                 now, s_answered, wait);
}

//  The home answered a batch: each claim as its item says; one that
//  would ask goes again on its own, to be asked.
static void
s_batch_answered (void *arg, const json_t *reply, const char *member,
                  const sf_fault_t *fault)
{
    uint64_t received_us = sf_time_wall_us ();
    s_batch_t *batch = (s_batch_t *) arg;
    hs_relay_t *self = batch->relay;
    const json_t *results = reply ? json_object_get (reply, "results") : NULL;
    sf_fault_t mismatch;
    if (reply && json_array_size (results) != batch->count) {
        sf_fault_set (&mismatch, SF_EINTERNAL,
                      "the entity's home answered %zu claims of a batch of "
                      "%zu",
                      json_array_size (results), batch->count);
        fault = &mismatch;
        reply = NULL;
    }
    for (size_t at = 0; at < batch->count; at++) {
        s_wait_t *wait = batch->waits [at];
        const json_t *item = json_array_get (results, at);
        const char *request =
            json_string_value (json_object_get (item, "request"));
        sf_fault_t refused;
        if (!reply)
            s_settle (self, wait, NULL, NULL, fault, received_us);
        else if (!request || !streq (request, wait->request)) {
            sf_fault_set (&refused, SF_EINTERNAL,
                          "the entity's home answered claim %s in place of "
                          "%s",
                          request ? request : "(none)", wait->request);
            s_settle (self, wait, NULL, NULL, &refused, received_us);
        }
        else if (json_is_true (json_object_get (item, "granted"))) {
            json_t *grant = json_deep_copy (item);
            json_object_set (grant, "ring_keys",
                             json_object_get (reply, "ring_keys"));
            s_settle (self, wait, grant, member, NULL, received_us);
            json_decref (grant);
        }
        else if (json_is_true (json_object_get (item, "ask")) && self)
            s_send_alone (self, wait, sf_time_mono_ms ());
        else {
            api_msg_code_fault (
                json_string_value (json_object_get (item, "error")),
                json_string_value (json_object_get (item, "message")),
                &refused);
            s_settle (self, wait, NULL, NULL, &refused, received_us);
        }
    }
    free (batch);
}

void
hs_relay_send (hs_relay_t *self, uint64_t now)
{
    size_t count = zlistx_size (self->queued);
    if (!count)
        return;
    s_wait_t **all = (s_wait_t **) malloc (count * sizeof *all);
    for (size_t at = 0; at < count; at++)
        all [at] = (s_wait_t *) zlistx_detach (self->queued, NULL);
    //  One sim's claims of one home, in the order they came.
    for (size_t first = 0; first < count; first++) {
        if (!all [first])
            continue;
        s_wait_t *lead = all [first];
        s_batch_t *batch = (s_batch_t *) zmalloc (sizeof (s_batch_t));
        batch->relay = self;
        for (size_t at = first; at < count && batch->count < S_BATCH_MAX; at++)
            if (all [at] && streq (all [at]->instance, lead->instance)
                && streq (all [at]->sim, lead->sim)) {
                batch->waits [batch->count++] = all [at];
                all [at] = NULL;
            }
        if (batch->count == 1) {
            s_send_alone (self, lead, now);
            free (batch);
            continue;
        }
        json_t *claims = json_array ();
        uint64_t ttl_ms = lead->ttl_ms, sent_us = sf_time_wall_us ();
        for (size_t at = 0; at < batch->count; at++) {
            s_wait_t *wait = batch->waits [at];
            json_array_append_new (claims, json_pack ("{s:s,s:s}", "request",
                                                      wait->request, "path",
                                                      wait->path));
            wait->sent_us = sent_us;
            if (wait->ttl_ms < ttl_ms)
                ttl_ms = wait->ttl_ms;
        }
        json_t *request =
            json_pack ("{s:s,s:o}", "op", "fed.claim", "claims", claims);
        for (const char *const *field =
                 (const char *const []){"sim", "key", "handoff", "state", NULL};
             *field; field++)
            if (json_object_get (lead->claim, *field))
                json_object_set (request, *field,
                                 json_object_get (lead->claim, *field));
        self->claims_sent += batch->count;
        self->messages_sent++;
        hs_fed_call (self->fed, lead->instance, &request, ttl_ms, ttl_ms, now,
                     s_batch_answered, batch);
    }
    free (all);
}

//  The caller of CALL is sim SIM of this instance (its registered key), so
//  this instance vouches for it: SIM's directory entry, a new reference.
//  Or NULL with FAULT: not_found if there is no such sim, unauthorized
//  ("only sim 'SIM' (its registered key) may DEED") if the key is another's.
static json_t *
s_vouch (hs_relay_t *self, api_call_t *call, const char *sim, const char *deed,
         sf_fault_t *fault)
{
    json_t *entry = hs_fsm_lookup (self->fsm, "sim", sim, fault);
    if (!entry)
        return NULL;
    const char *key = json_string_value (json_object_get (entry, "key"));
    if (key && streq (key, api_call_principal (call)))
        return entry;
    json_decref (entry);
    sf_fault_set (fault, SF_EUNAUTHORIZED,
                  "only sim '%s' (its registered key) may %s", sim, deed);
    return NULL;
}

//  Read CALL's arguments into WAIT and the home's fed.claim into CLAIM
//  (a new object). Returns 0, or -1 with FAULT.
static int
s_read_claim (hs_relay_t *self, api_call_t *call, s_wait_t *wait,
              json_t **claim, sf_fault_t *fault)
{
    const json_t *args = api_call_request (call)->root;
    static const char *const fields [] = {"op",     "id",      "path",
                                          "sim",    "request", "timeout_ms",
                                          "ttl_ms", "player",  NULL};
    const char *path, *sim, *request = NULL, *player = NULL;
    int64_t timeout_ms = 0, ttl_ms = HS_RELAY_TTL_MS;
    if (sf_json_only (args, fields, fault)
        || sf_json_string (args, "path", true, &path, fault)
        || sf_json_string (args, "sim", true, &sim, fault)
        || sf_json_string (args, "request", false, &request, fault)
        || sf_json_int (args, "timeout_ms", false, 1, 60000, &timeout_ms, fault)
        || sf_json_int (args, "ttl_ms", false, 100, HS_RELAY_TTL_MAX_MS,
                        &ttl_ms, fault)
        || sf_json_string (args, "player", false, &player, fault))
        return -1;
    const char *at = strrchr (path, '@');
    size_t size = at ? (size_t) (at - path) : 0;
    if (!at || !sf_name_path_valid (path, size)
        || !sf_name_instance_valid (at + 1))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'path' must be PATH@INSTANCE, an entity "
                             "path and an instance name");
    if (!sf_name_valid (sim))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'sim' must be the name of a sim of this "
                             "instance");
    if (request && (!*request || strlen (request) > S_REQUEST_MAX))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'request' must be 1 to %d characters",
                             S_REQUEST_MAX);
    wait->batchable = !player && !timeout_ms;
    if (player && !sf_name_valid (player))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'player' must be the name of a player of "
                             "this instance");
    //  The player the sim acts for, as this instance knows it: the home
    //  compares its key with the entity's master's.
    json_t *player_entry =
        player ? hs_fsm_lookup (self->fsm, "player", player, fault) : NULL;
    if (player && !player_entry)
        return -1;
    //  This instance vouches for SIM: its own key asks, and the key and
    //  endpoints the home will record are the ones registered here.
    json_t *entry = s_vouch (self, call, sim, "claim for it", fault);
    if (!entry) {
        json_decref (player_entry);
        return -1;
    }
    const char *key = json_string_value (json_object_get (entry, "key"));
    memcpy (wait->path, path, size);
    wait->path [size] = 0;
    snprintf (wait->instance, sizeof wait->instance, "%s", at + 1);
    snprintf (wait->sim, sizeof wait->sim, "%s", sim);
    wait->ttl_ms = (uint64_t) ttl_ms;
    const char *here = hs_fed_instance (self->fed);
    char global [S_GLOBAL_MAX + 1], *id = wait->request;
    snprintf (global, sizeof global, "%s@%s", sim, here);
    //  The sim's id makes a retry the same claim at the home; without one
    //  the claim is new each time.
    if (request)
        snprintf (id, S_ID_MAX, "%s/%s", global, request);
    else
        snprintf (id, S_ID_MAX, "%s/~%08x.%llu", global, self->nonce,
                  (unsigned long long) ++self->next);
    *claim = json_pack ("{s:s,s:s,s:s,s:s,s:s}", "op", "fed.claim", "request",
                        id, "path", wait->path, "sim", global, "key", key);
    for (const char *const *field =
             (const char *const []){"handoff", "state", NULL};
         *field; field++)
        if (json_object_get (entry, *field))
            json_object_set (*claim, *field, json_object_get (entry, *field));
    if (timeout_ms)
        json_object_set_new (*claim, "timeout_ms",
                             json_integer ((json_int_t) timeout_ms));
    if (player_entry) {
        snprintf (global, sizeof global, "%s@%s", player, here);
        json_object_set_new (*claim, "player", json_string (global));
        json_object_set (*claim, "player_key",
                         json_object_get (player_entry, "key"));
    }
    json_decref (player_entry);
    json_decref (entry);
    return 0;
}

void
hs_relay_claim (hs_relay_t *self, api_call_t *call, uint64_t now)
{
    s_wait_t *wait = (s_wait_t *) zmalloc (sizeof (s_wait_t));
    sf_fault_t fault;
    if (s_read_claim (self, call, wait, &wait->claim, &fault)) {
        api_router_fail (NULL, &call, fault.error, fault.message);
        s_wait_free (&wait);
        return;
    }
    wait->relay = self;
    wait->call = call;
    wait->cursor = zlistx_add_end (self->waits, wait);
    zhashx_update (self->inflight, wait->request, self);
    //  Sent with the other claims of this turn (hs_relay_send), unless it
    //  may ask or names a player: those go alone.
    if (wait->batchable)
        zlistx_add_end (self->queued, wait);
    else
        s_send_alone (self, wait, now);
}

//  A withdrawal on its way: what to record when the home answers.
typedef struct {
    hs_relay_t *relay;
    char request [S_ID_MAX];
    char instance [SF_NAME_MAX_INSTANCE + 1];
    char path [SF_NAME_MAX_PATH + 1];
    char sim [65];
} s_withdraw_t;

static void
s_withdrawn (void *arg, const json_t *reply, const char *member,
             const sf_fault_t *fault)
{
    (void) fault, (void) member;
    s_withdraw_t *withdraw = (s_withdraw_t *) arg;
    hs_relay_t *self = withdraw->relay;
    zhashx_delete (self->inflight, withdraw->request);
    //  Unanswered, or an ask still waiting: looked at again next time.
    if (reply && !json_is_true (json_object_get (reply, "pending")))
        s_record (self, withdraw->request, withdraw->instance, withdraw->path,
                  withdraw->sim,
                  s_translate (reply, withdraw->instance, withdraw->path,
                               withdraw->sim, hs_fed_node (self->fed)));
    free (withdraw);
}

void
hs_relay_tick (hs_relay_t *self, uint64_t now)
{
    if (now - self->checked_ms < 1000)
        return;
    self->checked_ms = now;
    json_t *open =
        hs_fsm_open_intents (self->fsm, sf_time_wall_ms () - S_RECOVER_MS);
    size_t index;
    json_t *intent;
    json_array_foreach (open, index, intent)
    {
        const char *request =
            json_string_value (json_object_get (intent, "request"));
        const char *path = json_string_value (json_object_get (intent, "path"));
        const char *sim = json_string_value (json_object_get (intent, "sim"));
        const char *at = path ? strrchr (path, '@') : NULL;
        if (!request || !at || !sim || strlen (request) >= S_ID_MAX
            || zhashx_lookup (self->inflight, request))
            continue;
        s_withdraw_t *withdraw = (s_withdraw_t *) zmalloc (sizeof *withdraw);
        withdraw->relay = self;
        snprintf (withdraw->request, sizeof withdraw->request, "%s", request);
        snprintf (withdraw->instance, sizeof withdraw->instance, "%s", at + 1);
        snprintf (withdraw->path, sizeof withdraw->path, "%.*s",
                  (int) (at - path), path);
        snprintf (withdraw->sim, sizeof withdraw->sim, "%s", sim);
        zhashx_update (self->inflight, request, self);
        json_t *ask =
            json_pack ("{s:s,s:s}", "op", "fed.withdraw", "request", request);
        hs_fed_call (self->fed, withdraw->instance, &ask, 2000, 2000, now,
                     s_withdrawn, withdraw);
    }
    json_decref (open);
}

//  REPLY (lent), the home's answer about its entity, in this instance's
//  terms: a new object without the home's envelope, its path as
//  PATH@HOME, with "home_path" and "home".
static json_t *
s_home_terms (const json_t *reply, const char *home)
{
    json_t *result = json_deep_copy (reply);
    json_object_del (result, "id");
    json_object_del (result, "ok");
    json_object_del (result, "leader");
    const char *path = json_string_value (json_object_get (result, "path"));
    if (path) {
        char global [SF_NAME_MAX_PATH + SF_NAME_MAX_INSTANCE + 2];
        snprintf (global, sizeof global, "%s@%s", path, home);
        json_object_set_new (result, "home_path", json_string (path));
        json_object_set_new (result, "path", json_string (global));
    }
    json_object_set_new (result, "home", json_string (home));
    return result;
}

//  A read of another instance's entity on its way.
typedef struct {
    api_call_t *call;
    char *here;                                //  this instance
    char instance [SF_NAME_MAX_INSTANCE + 1];  //  the entity's home
} s_read_t;

//  NAME (a name of the home's, or NAME@INSTANCE) as this instance says
//  it: its own sims by their bare names, the home's and others' global.
static void
s_localize (json_t *result, const char *field, const char *here,
            const char *home)
{
    const char *name = json_string_value (json_object_get (result, field));
    const char *at = name ? strchr (name, '@') : NULL;
    if (at && streq (at + 1, here)) {
        char local [65];
        snprintf (local, sizeof local, "%.*s", (int) (at - name), name);
        json_object_set_new (result, field, json_string (local));
    }
    else
        s_globalize (result, field, home);
}

static void
s_read_answered (void *arg, const json_t *reply, const char *member,
                 const sf_fault_t *fault)
{
    (void) member;
    s_read_t *read = (s_read_t *) arg;
    if (reply) {
        json_t *result = s_home_terms (reply, read->instance);
        s_localize (result, "authority", read->here, read->instance);
        s_localize (result, "owner", read->here, read->instance);
        api_router_reply (NULL, &read->call, result);
        json_decref (result);
    }
    else
        api_router_fail (NULL, &read->call, fault->error, fault->message);
    free (read->here);
    free (read);
}

void
hs_relay_read (hs_relay_t *self, api_call_t *call, uint64_t now)
{
    const json_t *args = api_call_request (call)->root;
    static const char *const fields [] = {"op", "id", "path", "consistency",
                                          NULL};
    const char *path = NULL;
    sf_fault_t fault;
    if (sf_json_only (args, fields, &fault)
        || sf_json_string (args, "path", true, &path, &fault)) {
        api_router_fail (NULL, &call, fault.error, fault.message);
        return;
    }
    const char *at = strrchr (path, '@');
    size_t size = at ? (size_t) (at - path) : 0;
    if (!at || !sf_name_path_valid (path, size)
        || !sf_name_instance_valid (at + 1)) {
        api_router_fail (NULL, &call, SF_EINVAL,
                         "field 'path' must be PATH@INSTANCE, an entity path "
                         "and an instance name");
        return;
    }
    s_read_t *read = (s_read_t *) zmalloc (sizeof (s_read_t));
    read->call = call;
    read->here = strdup (hs_fed_instance (self->fed));
    snprintf (read->instance, sizeof read->instance, "%s", at + 1);
    json_t *ask =
        json_pack ("{s:s,s:s%}", "op", "fed.read", "path", path, size);
    hs_fed_call (self->fed, read->instance, &ask, S_READ_MS, S_READ_MS, now,
                 s_read_answered, read);
}

//  A checkpoint of another instance's entities on its way.
typedef struct {
    api_call_t *call;
    char sim [65];                             //  the sim, a local name
    char instance [SF_NAME_MAX_INSTANCE + 1];  //  the entities' home
} s_saving_t;

static void
s_saved (void *arg, const json_t *reply, const char *member,
         const sf_fault_t *fault)
{
    (void) member;
    s_saving_t *saving = (s_saving_t *) arg;
    if (reply) {
        json_t *stale = json_array ();
        size_t index;
        json_t *path;
        json_array_foreach (json_object_get (reply, "stale"), index, path)
        {
            char global [SF_NAME_MAX_PATH + SF_NAME_MAX_INSTANCE + 2];
            snprintf (global, sizeof global, "%s@%s",
                      json_string_value (path) ? json_string_value (path) : "",
                      saving->instance);
            json_array_append_new (stale, json_string (global));
        }
        json_t *result =
            json_pack ("{s:s,s:O,s:o}", "sim", saving->sim, "saved",
                       json_object_get (reply, "saved"), "stale", stale);
        api_router_reply (NULL, &saving->call, result);
        json_decref (result);
    }
    else
        api_router_fail (NULL, &saving->call, fault->error, fault->message);
    free (saving);
}

//  CALL's entities in their home's terms, into ENTITIES (a new array),
//  and that home into SAVING. Returns 0, or -1 with FAULT.
static int
s_read_checkpoint (hs_relay_t *self, api_call_t *call, s_saving_t *saving,
                   json_t **entities, sf_fault_t *fault)
{
    const json_t *args = api_call_request (call)->root;
    static const char *const fields [] = {"op", "id", "sim", "entities", NULL};
    const char *sim;
    const json_t *given = json_object_get (args, "entities");
    if (sf_json_only (args, fields, fault)
        || sf_json_string (args, "sim", true, &sim, fault))
        return -1;
    if (!sf_name_valid (sim))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'sim' must be the name of a sim of this "
                             "instance");
    json_t *entry = s_vouch (self, call, sim, "save its entities", fault);
    if (!entry)
        return -1;
    json_decref (entry);
    snprintf (saving->sim, sizeof saving->sim, "%s", sim);
    *entities = json_array ();
    size_t index;
    const json_t *entity;
    json_array_foreach (given, index, entity)
    {
        const char *path = json_string_value (json_object_get (entity, "path"));
        const char *at = path ? strrchr (path, '@') : NULL;
        if (!at || !sf_name_instance_valid (at + 1)
            || (index && !streq (at + 1, saving->instance))) {
            json_decref (*entities);
            return sf_fault_set (fault, SF_EINVAL,
                                 "entities[%zu]: every path must be "
                                 "PATH@INSTANCE of one instance (send each "
                                 "home's entities, and this instance's, "
                                 "apart)",
                                 index);
        }
        if (!index)
            snprintf (saving->instance, sizeof saving->instance, "%s", at + 1);
        json_t *copy = json_deep_copy (entity);
        json_object_set_new (copy, "path",
                             json_stringn (path, (size_t) (at - path)));
        json_array_append_new (*entities, copy);
    }
    return 0;
}

void
hs_relay_checkpoint (hs_relay_t *self, api_call_t *call, uint64_t now)
{
    s_saving_t *saving = (s_saving_t *) zmalloc (sizeof (s_saving_t));
    json_t *entities = NULL;
    sf_fault_t fault;
    if (s_read_checkpoint (self, call, saving, &entities, &fault)) {
        api_router_fail (NULL, &call, fault.error, fault.message);
        free (saving);
        return;
    }
    saving->call = call;
    char global [S_GLOBAL_MAX + 1];
    snprintf (global, sizeof global, "%s@%s", saving->sim,
              hs_fed_instance (self->fed));
    json_t *request = json_pack ("{s:s,s:s,s:o}", "op", "fed.checkpoint", "sim",
                                 global, "entities", entities);
    hs_fed_call (self->fed, saving->instance, &request, S_READ_MS, S_READ_MS,
                 now, s_saved, saving);
}

//  A release of another instance's entity on its way.
typedef struct {
    api_call_t *call;
    char sim [65];                             //  the sim, a local name
    char instance [SF_NAME_MAX_INSTANCE + 1];  //  the entity's home
} s_releasing_t;

static void
s_released (void *arg, const json_t *reply, const char *member,
            const sf_fault_t *fault)
{
    (void) member;
    s_releasing_t *releasing = (s_releasing_t *) arg;
    if (reply) {
        json_t *result = s_home_terms (reply, releasing->instance);
        json_object_set_new (result, "sim", json_string (releasing->sim));
        api_router_reply (NULL, &releasing->call, result);
        json_decref (result);
    }
    else
        api_router_fail (NULL, &releasing->call, fault->error, fault->message);
    free (releasing);
}

void
hs_relay_release (hs_relay_t *self, api_call_t *call, uint64_t now)
{
    const json_t *args = api_call_request (call)->root;
    static const char *const fields [] = {"op",  "id",         "path",
                                          "sim", "checkpoint", NULL};
    const char *path, *sim, *checkpoint = NULL;
    sf_fault_t fault;
    if (sf_json_only (args, fields, &fault)
        || sf_json_string (args, "path", true, &path, &fault)
        || sf_json_string (args, "sim", true, &sim, &fault)
        || sf_json_string (args, "checkpoint", false, &checkpoint, &fault)) {
        api_router_fail (NULL, &call, fault.error, fault.message);
        return;
    }
    const char *at = strrchr (path, '@');
    size_t size = at ? (size_t) (at - path) : 0;
    if (!at || !sf_name_path_valid (path, size)
        || !sf_name_instance_valid (at + 1) || !sf_name_valid (sim)) {
        api_router_fail (NULL, &call, SF_EINVAL,
                         "fields 'path' (PATH@INSTANCE) and 'sim' (a sim of "
                         "this instance) are needed");
        return;
    }
    json_t *entry = s_vouch (self, call, sim, "release what it holds", &fault);
    if (!entry) {
        api_router_fail (NULL, &call, fault.error, fault.message);
        return;
    }
    json_decref (entry);
    s_releasing_t *releasing = (s_releasing_t *) zmalloc (sizeof *releasing);
    releasing->call = call;
    snprintf (releasing->sim, sizeof releasing->sim, "%s", sim);
    snprintf (releasing->instance, sizeof releasing->instance, "%s", at + 1);
    char global [S_GLOBAL_MAX + 1];
    snprintf (global, sizeof global, "%s@%s", sim, hs_fed_instance (self->fed));
    json_t *request = json_pack ("{s:s,s:s%,s:s}", "op", "fed.release", "path",
                                 path, size, "sim", global);
    if (checkpoint)
        json_object_set_new (request, "checkpoint", json_string (checkpoint));
    hs_fed_call (self->fed, releasing->instance, &request, S_READ_MS, S_READ_MS,
                 now, s_released, releasing);
}
