/*  sim_ring: asynchronous client of the homeserver ring. */

#include "peer/sim_ring.h"
#include "common/sf_cert.h"
#include "common/sf_curve.h"
#include "common/sf_log.h"
#include "common/sf_time.h"
#include "protocol/api_msg.h"
#include "protocol/event_head.h"

typedef struct {
    char *name;       //  member name (as its replies call it)
    zsock_t *dealer;  //  CURVE client to its API
    char *events;     //  its events endpoint, or NULL
    char key [41];    //  its public key
} s_member_t;

typedef struct {
    sim_ring_fn *fn;       //  whom to tell
    void *arg;             //  and with what
    uint64_t deadline_ms;  //  monotonic
    size_t member;         //  asked
} s_pending_t;

struct _sim_ring_t {
    bool detached;                //  off its loop: handlers do nothing
    sf_loop_t *loop;              //  attached to, or NULL
    int timer;                    //  its timeout timer there
    zsock_t *events;              //  SUB to one member's events, or NULL
    size_t source;                //  that member, or SIZE_MAX if none yet
    zcert_t *cert;                //  our own copy, for those connections
    sim_ring_wants_fn *wants_fn;  //  which kinds of change it parses
    sim_ring_event_fn *event_fn;  //  whom to tell of a change
    void *event_arg;
    uint64_t event_index;      //  newest change seen
    uint64_t chain_from;       //  every change from this one on was seen
    uint64_t events_followed;  //  changes seen, each index once
    uint64_t events_read;      //  of which parsed and passed on
    sim_ring_gap_fn *gap_fn;   //  told of lost events, or NULL
    void *gap_arg;
    s_member_t *members;  //  the ring, from configuration
    size_t n_members;
    size_t target;      //  index of the member asked now
    zhashx_t *pending;  //  request id text -> s_pending_t
    uint64_t next_id;   //  ids of our requests
};

static void
s_pending_free (void **item)
{
    free (*item);
    *item = NULL;
}

//  Take the ring's events from the member requests go to (the leader, once
//  a reply has named it): it applies each change first, and one copy per
//  change is all a sim needs; every member publishing to every sim cost
//  the ring and the sims twice that again in CURVE messages. What a
//  switch loses shows as a gap in the chain at the next change (every
//  sim's heartbeat is one), and the gap handler re-reads.
static int
s_follow_target (sim_ring_t *self, sf_fault_t *fault)
{
    size_t next = self->target;
    if (!self->members [next].events) {
        //  A member without events keeps us where we are, or, at the
        //  start, sends us to the first that has them.
        if (self->source != SIZE_MAX)
            return 0;
        for (next = 0; next < self->n_members && !self->members [next].events;
             next++)
            ;
        if (next == self->n_members)
            return 0;
    }
    if (next == self->source)
        return 0;
    if (self->source != SIZE_MAX)
        zsock_disconnect (self->events, "%s",
                          self->members [self->source].events);
    self->source = SIZE_MAX;
    //  The server key applies per connection: set it before each.
    sf_curve_client (self->events, self->cert, self->members [next].key);
    if (zsock_connect (self->events, "%s", self->members [next].events)) {
        //  At start the caller reports it; later, the log does.
        if (!fault)
            sf_log_warning ("sim_ring: cannot connect to the events of '%s' "
                            "at %s",
                            self->members [next].name,
                            self->members [next].events);
        return sf_fault_set (
            fault, SF_EINVAL, "ring member '%s': cannot connect to events '%s'",
            self->members [next].name, self->members [next].events);
    }
    sf_log_info ("sim_ring: following the events of '%s'",
                 self->members [next].name);
    self->source = next;
    return 0;
}

sim_ring_t *
sim_ring_new (sf_config_t *config, zcert_t *cert, sf_fault_t *fault)
{
    sim_ring_t *self = (sim_ring_t *) zmalloc (sizeof (sim_ring_t));
    self->pending = zhashx_new ();
    zhashx_set_destructor (self->pending, s_pending_free);
    zlist_t *names = sf_config_names (config, "ring/member");
    self->members =
        (s_member_t *) zmalloc ((zlist_size (names) + 1) * sizeof (s_member_t));
    for (char *name = (char *) zlist_first (names); name;
         name = (char *) zlist_next (names)) {
        char path [300];
        snprintf (path, sizeof path, "ring/member/%s/api", name);
        const char *api = sf_config_str (config, path);
        snprintf (path, sizeof path, "ring/member/%s/key", name);
        const char *key_path = sf_config_str (config, path);
        if (!api)
            continue;  //  a member we cannot ask (no API endpoint known)
        char key [41];
        if (!key_path) {
            sf_fault_set (fault, SF_EINVAL, "ring member '%s' needs a key",
                          name);
            goto failed;
        }
        if (sf_cert_load_public (key_path, key, fault))
            goto failed;
        snprintf (path, sizeof path, "ring/member/%s/events", name);
        const char *events = sf_config_str (config, path);
        if (events && !self->events) {
            self->events = zsock_new (ZMQ_SUB);
            zsock_set_linger (self->events, 0);
            //  Every topic, so the chain of indexes is whole and a
            //  missing link means a lost event (homeserver-events.md).
            zsock_set_subscribe (self->events, "");
            self->cert = zcert_dup (cert);
        }
        s_member_t *member = &self->members [self->n_members++];
        member->name = strdup (name);
        member->events = events ? strdup (events) : NULL;
        memcpy (member->key, key, sizeof member->key);
        member->dealer = zsock_new (ZMQ_DEALER);
        zsock_set_linger (member->dealer, 0);
        zsock_set_sndhwm (member->dealer, 1000);
        sf_curve_client (member->dealer, cert, key);
        if (zsock_connect (member->dealer, "%s", api)) {
            sf_fault_set (fault, SF_EINVAL,
                          "ring member '%s': cannot connect to '%s'", name,
                          api);
            goto failed;
        }
    }
    zlist_destroy (&names);
    self->source = SIZE_MAX;
    if (self->n_members == 0) {
        sf_fault_set (fault, SF_EINVAL,
                      "no ring member with an API endpoint: set "
                      "ring/member/NAME/api and ring/member/NAME/key");
        sim_ring_destroy (&self);
    }
    else if (self->events && s_follow_target (self, fault))
        sim_ring_destroy (&self);
    return self;
failed:
    zlist_destroy (&names);
    sim_ring_destroy (&self);
    return NULL;
}

void
sim_ring_destroy (sim_ring_t **self_p)
{
    if (*self_p) {
        sim_ring_t *self = *self_p;
        for (size_t at = 0; at < self->n_members; at++) {
            zsock_destroy (&self->members [at].dealer);
            free (self->members [at].name);
            free (self->members [at].events);
        }
        free (self->members);
        zsock_destroy (&self->events);
        zcert_destroy (&self->cert);
        zhashx_destroy (&self->pending);
        free (self);
        *self_p = NULL;
    }
}

//  Messages one handler call takes off a socket before the loop polls
//  again: one poll of every socket per message would cost more than the
//  messages.
#define S_DRAIN 64

//  A reply on one member's DEALER.
static void
s_reply_one (sim_ring_t *self, zsock_t *dealer)
{
    char *text = zstr_recv (dealer);
    if (!text)
        return;
    json_t *reply = json_loads (text, 0, NULL);
    zstr_free (&text);
    json_t *id = reply ? json_object_get (reply, "id") : NULL;
    if (!json_is_integer (id)) {
        json_decref (reply);
        return;  //  nothing we asked for
    }
    char key [24];
    snprintf (key, sizeof key, "%lld", (long long) json_integer_value (id));
    s_pending_t *pending = (s_pending_t *) zhashx_lookup (self->pending, key);
    if (!pending) {
        json_decref (reply);
        return;  //  answered after its timeout
    }
    s_pending_t call = *pending;
    zhashx_delete (self->pending, key);
    //  Follow the leader the reply names
    const char *leader = json_string_value (json_object_get (reply, "leader"));
    for (size_t at = 0; leader && at < self->n_members; at++)
        if (strcmp (self->members [at].name, leader) == 0)
            self->target = at;
    s_follow_target (self, NULL);
    sf_fault_t fault;
    const sf_fault_t *failure =
        api_msg_reply_fault (reply, &fault) ? &fault : NULL;
    call.fn (call.arg, reply, failure);
    json_decref (reply);
}

static int
s_handle_reply (sf_loop_t *loop, zsock_t *dealer, void *arg)
{
    (void) loop;
    sim_ring_t *self = (sim_ring_t *) arg;
    for (int count = 0; count < S_DRAIN && !self->detached
                        && (zsock_events (dealer) & ZMQ_POLLIN);
         count++)
        s_reply_one (self, dealer);
    return 0;
}

//  Time out requests past their deadline.
static int
s_handle_timer (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    sim_ring_t *self = (sim_ring_t *) arg;
    if (self->detached)
        return 0;
    uint64_t now = sf_time_mono_ms ();
    zlist_t *expired = zlist_new ();
    zlist_autofree (expired);
    bool silent = false;  //  the member we ask now left a request unanswered
    for (s_pending_t *pending = (s_pending_t *) zhashx_first (self->pending);
         pending; pending = (s_pending_t *) zhashx_next (self->pending))
        if (pending->deadline_ms <= now) {
            zlist_append (expired, (void *) zhashx_cursor (self->pending));
            silent |= pending->member == self->target;
        }
    //  Ask the next member next time; not when the requests that expired
    //  went to a member we had already left (a reply had named another
    //  leader), or every late expiry would move us off a good one.
    if (silent) {
        self->target = (self->target + 1) % self->n_members;
        s_follow_target (self, NULL);
    }
    for (char *key = (char *) zlist_first (expired); key;
         key = (char *) zlist_next (expired)) {
        s_pending_t call = *(s_pending_t *) zhashx_lookup (self->pending, key);
        zhashx_delete (self->pending, key);
        sf_fault_t fault;
        sf_fault_set (&fault, SF_ETIMEOUT, "no answer from the ring");
        call.fn (call.arg, NULL, &fault);
    }
    zlist_destroy (&expired);
    return 0;
}

//  Change INDEX (after PREV) is the newest seen: a PREV newer than the
//  last one seen means the changes between were lost (a slow subscriber,
//  a partition). The first change is the start.
static void
s_advance (sim_ring_t *self, uint64_t index, uint64_t prev)
{
    bool gap = self->event_index && prev > self->event_index;
    if (!self->event_index || gap)
        self->chain_from = index;
    self->event_index = index;
    self->events_followed++;
    if (gap && self->gap_fn)
        self->gap_fn (self->gap_arg);
}

//  The head of BODY, parsed because its text did not start with one (a
//  publisher of another version): true if it has one.
static bool
s_head_of (const json_t *body, event_head_t *head)
{
    json_t *index = json_object_get (body, "index");
    json_t *prev = json_object_get (body, "prev");
    const char *op = json_string_value (json_object_get (body, "op"));
    if (!json_is_integer (index) || json_integer_value (index) < 1 || !op
        || strlen (op) > EVENT_HEAD_MAX_OP)
        return false;
    head->index = (uint64_t) json_integer_value (index);
    head->prev =
        json_is_integer (prev) ? (uint64_t) json_integer_value (prev) : 0;
    strcpy (head->op, op);
    return true;
}

//  A change published by a member; each member publishes every change, so
//  only the first copy of each index is passed on, and only if the
//  follower acts on its kind: the rest is told from the head, unparsed.
static void
s_event_one (sim_ring_t *self, zsock_t *events)
{
    zmsg_t *msg = zmsg_recv (events);
    if (!msg)
        return;
    char *topic = zmsg_popstr (msg);
    zframe_t *frame = zmsg_first (msg);
    const char *text = frame ? (const char *) zframe_data (frame) : NULL;
    size_t size = frame ? zframe_size (frame) : 0;
    event_head_t head;
    json_t *body = NULL;
    bool known = text && event_head_read (&head, (const uint8_t *) text, size);
    if (!known && text) {
        body = json_loadb (text, size, 0, NULL);
        known = s_head_of (body, &head);
    }
    if (topic && known && head.index > self->event_index) {
        s_advance (self, head.index, head.prev);
        if (!self->wants_fn
            || self->wants_fn (self->event_arg, topic, head.op)) {
            if (!body)
                body = json_loadb (text, size, 0, NULL);
            if (body) {
                self->events_read++;
                if (self->event_fn)
                    self->event_fn (self->event_arg, topic, body);
            }
        }
    }
    json_decref (body);
    zstr_free (&topic);
    zmsg_destroy (&msg);
}

//  Time the events may take per turn of the loop: a burst of moves (64
//  paths an event, each fenced, handed over or taken) must not hold the
//  sim's API for the whole burst; the loop calls again next turn.
#define S_EVENTS_US 1000

static int
s_handle_event (sf_loop_t *loop, zsock_t *events, void *arg)
{
    (void) loop;
    sim_ring_t *self = (sim_ring_t *) arg;
    uint64_t until = sf_time_mono_us () + S_EVENTS_US;
    for (int count = 0; count < S_DRAIN && !self->detached
                        && (count == 0 || sf_time_mono_us () < until)
                        && (zsock_events (events) & ZMQ_POLLIN);
         count++)
        s_event_one (self, events);
    return 0;
}

uint64_t
sim_ring_event_index (sim_ring_t *self)
{
    return self->event_index;
}

bool
sim_ring_saw (sim_ring_t *self, uint64_t after, uint64_t through)
{
    return self->chain_from && self->chain_from <= after + 1
           && through <= self->event_index;
}

void
sim_ring_on_gap (sim_ring_t *self, sim_ring_gap_fn *fn, void *arg)
{
    self->gap_fn = fn;
    self->gap_arg = arg;
}

int
sim_ring_follow (sim_ring_t *self, sim_ring_wants_fn *wants,
                 sim_ring_event_fn *fn, void *arg)
{
    self->wants_fn = wants;
    self->event_fn = fn;
    self->event_arg = arg;
    return 0;
}

void
sim_ring_detach (sim_ring_t *self)
{
    //  The calls pending here are dropped (their owners were answered
    //  already); the flag keeps a late reply or timer from acting.
    self->detached = true;
    zhashx_purge (self->pending);
    if (!self->loop)
        return;
    if (self->events)
        sf_loop_reader_end (self->loop, self->events);
    for (size_t at = 0; at < self->n_members; at++)
        sf_loop_reader_end (self->loop, self->members [at].dealer);
    sf_loop_timer_end (self->loop, self->timer);
    self->loop = NULL;
}

int
sim_ring_attach (sim_ring_t *self, sf_loop_t *loop)
{
    self->loop = loop;
    if (self->events
        && sf_loop_reader (loop, self->events, s_handle_event, self))
        return -1;
    for (size_t at = 0; at < self->n_members; at++)
        if (sf_loop_reader (loop, self->members [at].dealer, s_handle_reply,
                            self))
            return -1;
    self->timer = sf_loop_timer (loop, 50, 0, s_handle_timer, self);
    return self->timer < 0 ? -1 : 0;
}

int
sim_ring_call (sim_ring_t *self, const char *op, json_t **args, int timeout_ms,
               sim_ring_fn *fn, void *arg)
{
    json_t *request = *args ? *args : json_object ();
    *args = NULL;
    uint64_t id = ++self->next_id;
    json_object_set_new (request, "op", json_string (op));
    json_object_set_new (request, "id", json_integer ((json_int_t) id));
    char *text = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    if (!text)
        return -1;
    zsock_t *dealer = self->members [self->target].dealer;
    //  Never block the loop: a member that is gone fills its queue.
    int rc =
        zmq_send (zsock_resolve (dealer), text, strlen (text), ZMQ_DONTWAIT);
    free (text);
    if (rc < 0)
        return -1;
    s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    pending->fn = fn;
    pending->arg = arg;
    pending->deadline_ms = sf_time_mono_ms () + (uint64_t) timeout_ms;
    pending->member = self->target;
    char key [24];
    snprintf (key, sizeof key, "%llu", (unsigned long long) id);
    zhashx_insert (self->pending, key, pending);
    return 0;
}

const char *
sim_ring_target (sim_ring_t *self)
{
    return self->members [self->target].name;
}

void
sim_ring_counters (sim_ring_t *self, json_t *counters)
{
    json_object_set_new (counters, "ring_events",
                         json_integer ((json_int_t) self->events_followed));
    json_object_set_new (counters, "ring_events_read",
                         json_integer ((json_int_t) self->events_read));
}
