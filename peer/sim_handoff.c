/*  sim_handoff: the handoff channel. */

#include "peer/sim_handoff.h"
#include "common/sf_curve.h"
#include "common/sf_log.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"
#include "protocol/handoff_msg.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>

#define S_CHUNK_SIZE 262144         //  bytes of one chunk at most
#define S_CREDIT 4                  //  chunks in flight per copy
#define S_RESEND_MS 2000            //  resend a chunk after this long unheard
#define S_HANDOFF_RESEND_MS 1000    //  resend a HANDOFF after this long unacked
#define S_GIVE_UP_MS 10000          //  fail after this long unheard
#define S_FOREIGN_GIVE_UP_MS 30000  //  a HANDOFF to another instance's sim
#define S_FOREIGN_REDIAL_MS 20      //  its refused handshake tried again
#define S_RECEIVING_IDLE_MS 60000   //  forget a half-received copy

//  A HANDOFF kept until its HANDOFF_ACK comes (handoff.md section 5).
typedef struct {
    uint64_t transfer;
    uint64_t epoch;
    char *path;
    uint8_t *frame;  //  the encoded HANDOFF
    size_t size;
    uint64_t queued_ms;  //  monotonic
    uint64_t sent_ms;    //  last handed to libzmq; 0 while it would not take it
    char trace [SF_TRACE_MAX_ID + 1];  //  its trace id: TRANSFER, or
                                       //  TRANSFER@HOME (another's entity)
} s_handoff_t;

//  One peer sim as the directory lists it.
typedef struct {
    char *name;                //  its sim name
    char key [41];             //  its public key, Z85
    uint8_t former [32];       //  its key before its last re-key, in grace
    uint64_t former_until_ms;  //  until when (monotonic), 0: none
    char *endpoint;            //  its handoff endpoint, or NULL
    zsock_t *dealer;           //  our client to it, made on first use
    zsock_t *refusals;         //  its failed handshakes (sf_curve_watch)
    uint64_t checked_ms;       //  when REFUSALS was last looked at
    uint64_t redial_ms;        //  when a refused DEALER is replaced, or 0
    uint64_t dialled_ms;       //  when the DEALER was made
    zlistx_t *handoffs;  //  s_handoff_t not yet acknowledged, oldest first
    bool waiting;        //  some of them wait for libzmq to take them
    bool seen;           //  set in the current directory sweep
    //  A sim of another instance admitted for one transfer until then
    //  (monotonic; federation.md section 5), whatever the directory says.
    uint64_t visiting_until_ms;
    //  Its instance if it is another instance's sim (NAME@INSTANCE), or
    //  NULL: a pointer into NAME.
    const char *instance;
} s_peer_t;

//  A copy we send.
typedef struct {
    uint64_t id;   //  transfer id
    char *to;      //  peer name
    char **paths;  //  entities to copy, fixed at the start
    size_t n_paths;
    uint32_t *starts;     //  starts [k]: index of chunk k's first path
    uint32_t built;       //  chunks whose start is known
    uint32_t sent;        //  highest chunk sent
    uint32_t acked;       //  highest chunk acknowledged
    uint32_t total;       //  the last chunk's number, 0 until built
    uint32_t credit;      //  the receiver's grant
    uint64_t entities;    //  entities sent (first sending only)
    uint64_t bytes;       //  bytes sent
    uint64_t started_ms;  //  monotonic
    uint64_t heard_ms;    //  last ACK, or start
    uint64_t resent_ms;   //  last resend, or start
    sim_handoff_fn *fn;   //  whom to tell
    void *arg;
} s_copy_t;

//  A copy we receive: the next chunk expected.
typedef struct {
    uint32_t expected;
    uint64_t heard_ms;
} s_receiving_t;

// clang-format off
#define S_COUNTERS(X)           \
    X (copies_started)          \
    X (copies_done)             \
    X (copies_failed)           \
    X (chunks_sent)             \
    X (chunks_received)         \
    X (copy_entities_sent)      \
    X (copy_entities_received)  \
    X (handoffs_refused)                                                  \
    X (handoffs_accepted)                                                 \
    X (handoffs_sent)                                                     \
    X (handoffs_resent)                                                   \
    X (handoffs_waited)                                                   \
    X (handoffs_acked)                                                    \
    X (handoffs_failed)                                                   \
    X (handoffs_refused_by_peer)        \
    X (handoff_dropped)                 \
    X (handshakes_refused)              \
    X (copy_update_unproven)            \
    X (copy_grants_proven)              \
    X (copy_grant_bad_signature)        \
    X (copy_grant_retired_key)          \
    X (copy_grant_wrong_sender)         \
    X (copy_grant_stale)
// clang-format on

#define S_FIELD(name) uint64_t name;
typedef struct {
    S_COUNTERS (S_FIELD)
} s_counters_t;

struct _sim_handoff_t {
    char *name;                      //  ours
    zcert_t *cert;                   //  our key pair (lent)
    zactor_t *zap;                   //  the process's ZAP handler (lent)
    sim_store_t *store;              //  entities (lent)
    zsock_t *router;                 //  the channel's server side
    sf_loop_t *loop;                 //  where peers' DEALERs are registered
    zlistx_t *peers;                 //  s_peer_t
    zlistx_t *copies;                //  s_copy_t we send
    zhashx_t *receiving;             //  "KEY/TRANSFER" -> s_receiving_t
    uint64_t next_transfer;          //  our transfer ids
    uint8_t *frame;                  //  scratch: one frame
    sim_handoff_offer_fn *offer_fn;  //  decides on HANDOFFs, or NULL
    void *offer_arg;
    sim_handoff_changed_fn *listener;
    void *listener_arg;
    sim_handoff_unknown_fn *unknown_fn;  //  told of unlisted sims, or NULL
    void *unknown_arg;
    sf_trace_t *trace;            //  hop records (lent), or NULL
    sim_grant_keys_t grant_keys;  //  the ring's keys, to check grants
    uint32_t key_grace_ms;        //  a re-keyed peer's former key, accepted
    s_counters_t counters;
};

static void
s_handoff_destroy (s_handoff_t **self_p)
{
    if (*self_p) {
        s_handoff_t *self = *self_p;
        free (self->path);
        free (self->frame);
        free (self);
        *self_p = NULL;
    }
}

static void
s_peer_destroy (s_peer_t **self_p)
{
    if (*self_p) {
        s_peer_t *self = *self_p;
        zlistx_destroy (&self->handoffs);
        sf_curve_unwatch (self->dealer, &self->refusals);
        zsock_destroy (&self->dealer);
        free (self->endpoint);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

static void
s_copy_destroy (s_copy_t **self_p)
{
    if (*self_p) {
        s_copy_t *self = *self_p;
        for (size_t at = 0; at < self->n_paths; at++)
            free (self->paths [at]);
        free (self->paths);
        free (self->starts);
        free (self->to);
        free (self);
        *self_p = NULL;
    }
}

static void
s_free (void **item)
{
    free (*item);
    *item = NULL;
}

sim_handoff_t *
sim_handoff_new (const char *endpoint, const char *name, zcert_t *cert,
                 zactor_t *zap, sim_store_t *store, sf_fault_t *fault)
{
    sim_handoff_t *self = (sim_handoff_t *) zmalloc (sizeof (sim_handoff_t));
    self->name = strdup (name);
    self->cert = cert;
    self->zap = zap;
    self->store = store;
    self->peers = zlistx_new ();
    zlistx_set_destructor (self->peers,
                           (zlistx_destructor_fn *) s_peer_destroy);
    self->copies = zlistx_new ();
    zlistx_set_destructor (self->copies,
                           (zlistx_destructor_fn *) s_copy_destroy);
    self->receiving = zhashx_new ();
    zhashx_set_destructor (self->receiving, s_free);
    self->frame = (uint8_t *) zmalloc (HANDOFF_MSG_MAX_SIZE);
    self->next_transfer = (uint64_t) randombytes_random () << 20;
    self->router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (self->router, 0);
    sf_curve_server (self->router, cert, SIM_HANDOFF_DOMAIN);
    if (zsock_bind (self->router, "%s", endpoint) < 0) {
        sf_fault_set (fault, SF_EUNAVAILABLE,
                      "cannot bind handoff endpoint '%s': %s", endpoint,
                      zmq_strerror (zmq_errno ()));
        sim_handoff_destroy (&self);
    }
    return self;
}

void
sim_handoff_destroy (sim_handoff_t **self_p)
{
    if (*self_p) {
        sim_handoff_t *self = *self_p;
        zlistx_destroy (&self->copies);
        zlistx_destroy (&self->peers);
        zhashx_destroy (&self->receiving);
        zsock_destroy (&self->router);
        free (self->frame);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

static int s_handle_router (sf_loop_t *loop, zsock_t *router, void *arg);

//  Close PEER's DEALER (the next send makes another). What it held is gone
//  with it, so every HANDOFF not yet acknowledged goes again on the next.
static void
s_peer_close (sim_handoff_t *self, s_peer_t *peer)
{
    if (peer->dealer && self->loop)
        sf_loop_reader_end (self->loop, peer->dealer);
    sf_curve_unwatch (peer->dealer, &peer->refusals);
    zsock_destroy (&peer->dealer);
    peer->redial_ms = 0;
    for (s_handoff_t *handoff = (s_handoff_t *) zlistx_first (peer->handoffs);
         handoff; handoff = (s_handoff_t *) zlistx_next (peer->handoffs))
        handoff->sent_ms = 0;
    peer->waiting = zlistx_size (peer->handoffs) > 0;
}

int
sim_handoff_rekey (sim_handoff_t *self, zcert_t *cert, sf_fault_t *fault)
{
    self->cert = cert;
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        s_peer_close (self, peer);
    char *endpoint = zsock_last_endpoint (self->router);
    if (self->loop)
        sf_loop_reader_end (self->loop, self->router);
    zsock_destroy (&self->router);
    self->router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (self->router, 0);
    sf_curve_server (self->router, cert, SIM_HANDOFF_DOMAIN);
    //  The old socket lets go of the port asynchronously: try for a second.
    int rc = -1;
    for (int attempt = 0; attempt < 100 && rc < 0; attempt++) {
        rc = zsock_bind (self->router, "%s", endpoint);
        if (rc < 0)
            zclock_sleep (10);
    }
    if (rc < 0) {
        sf_fault_set (fault, SF_EUNAVAILABLE,
                      "cannot bind handoff endpoint '%s' again: %s", endpoint,
                      zmq_strerror (zmq_errno ()));
        free (endpoint);
        return -1;
    }
    free (endpoint);
    if (self->loop)
        sf_loop_reader (self->loop, self->router, s_handle_router, self);
    return 0;
}

void
sim_handoff_set_key_grace (sim_handoff_t *self, uint32_t grace_ms)
{
    self->key_grace_ms = grace_ms;
}

void
sim_handoff_set_ring_keys (sim_handoff_t *self, const sim_grant_key_t *keys,
                           size_t count)
{
    sim_grant_keys_set (&self->grant_keys, keys, count);
}

void
sim_handoff_set_offer_handler (sim_handoff_t *self, sim_handoff_offer_fn *fn,
                               void *arg)
{
    self->offer_fn = fn;
    self->offer_arg = arg;
}

void
sim_handoff_set_listener (sim_handoff_t *self, sim_handoff_changed_fn *fn,
                          void *arg)
{
    self->listener = fn;
    self->listener_arg = arg;
}

static s_peer_t *
s_peer_named (sim_handoff_t *self, const char *name)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        if (strcmp (peer->name, name) == 0)
            return peer;
    return NULL;
}

static s_peer_t *
s_peer_of_dealer (sim_handoff_t *self, zsock_t *dealer)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        if (peer->dealer == dealer)
            return peer;
    return NULL;
}

//  A HANDOFF (or its ack) of trace ID (a transfer; "0": none) went to or
//  came from PEER at US.
static void
s_trace_at (sim_handoff_t *self, const char *id, const char *msg, bool sent,
            const s_peer_t *peer, uint64_t us)
{
    if (self->trace && id [0] && !streq (id, "0"))
        sf_trace_record (self->trace, id, msg, sent, peer ? peer->name : "",
                         us);
}

static s_peer_t *
s_peer_keyed (sim_handoff_t *self, const char *key)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        if (strcmp (peer->key, key) == 0)
            return peer;
    return NULL;
}

//  --------------------------------------------------------------------------
//  Directory

void
sim_handoff_peers_begin (sim_handoff_t *self)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        peer->seen = false;
}

//  The peer named NAME, made (without key or endpoint) if it is new.
static s_peer_t *
s_peer_require (sim_handoff_t *self, const char *name)
{
    s_peer_t *peer = s_peer_named (self, name);
    if (!peer) {
        peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
        peer->name = strdup (name);
        const char *at = strchr (peer->name, '@');
        peer->instance = at ? at + 1 : NULL;
        peer->handoffs = zlistx_new ();
        zlistx_set_destructor (peer->handoffs,
                               (zlistx_destructor_fn *) s_handoff_destroy);
        zlistx_add_end (self->peers, peer);
    }
    return peer;
}

//  PEER now has KEY (Z85) and ENDPOINT (NULL: none): admitted on ZAP, and
//  dialled again on next use if either changed.
static void s_peer_learn (sim_handoff_t *self, s_peer_t *peer, const char *key,
                          const char *endpoint);

void
sim_handoff_peer_set (sim_handoff_t *self, const char *name, const char *key,
                      const char *endpoint)
{
    if (strcmp (name, self->name) == 0 || strlen (key) != 40)
        return;
    s_peer_t *peer = s_peer_require (self, name);
    peer->seen = true;
    s_peer_learn (self, peer, key, endpoint);
}

void
sim_handoff_visit (sim_handoff_t *self, const char *name, const char *key,
                   const char *endpoint, uint64_t until_ms)
{
    if (!strchr (name, '@') || strlen (key) != 40)
        return;
    s_peer_t *peer = s_peer_require (self, name);
    if (peer->visiting_until_ms < until_ms)
        peer->visiting_until_ms = until_ms;
    s_peer_learn (self, peer, key, endpoint);
}

void
sim_handoff_on_unknown (sim_handoff_t *self, sim_handoff_unknown_fn *fn,
                        void *arg)
{
    self->unknown_fn = fn;
    self->unknown_arg = arg;
}

static void
s_peer_learn (sim_handoff_t *self, s_peer_t *peer, const char *key,
              const char *endpoint)
{
    bool rekeyed = strcmp (peer->key, key) != 0;
    bool moved = (peer->endpoint == NULL) != (endpoint == NULL)
                 || (endpoint && strcmp (peer->endpoint, endpoint) != 0);
    if (rekeyed) {
        //  Its grants name the key they were made for until it fetches new
        //  ones: the former key proves its CHUNKs for the grace period.
        peer->former_until_ms = 0;
        if (peer->key [0] && self->key_grace_ms
            && zmq_z85_decode (peer->former, peer->key))
            peer->former_until_ms = sf_time_mono_ms () + self->key_grace_ms;
        if (peer->key [0])
            sf_zap_revoke (self->zap, SIM_HANDOFF_DOMAIN, peer->key);
        strcpy (peer->key, key);
        sf_zap_allow (self->zap, SIM_HANDOFF_DOMAIN, key);
    }
    if (rekeyed || moved) {
        //  The next send makes a DEALER pinned to the key as listed now.
        s_peer_close (self, peer);
        free (peer->endpoint);
        peer->endpoint = endpoint ? strdup (endpoint) : NULL;
    }
}

//  True if PEER, not in the directory, is kept anyway: a visitor in its
//  time, or a sim never listed that HANDOFFs wait for (until they are
//  given up on).
static bool
s_peer_kept (const s_peer_t *peer, uint64_t now_ms)
{
    return peer->visiting_until_ms > now_ms
           || (!peer->key [0] && zlistx_size (peer->handoffs) > 0);
}

static void s_handoffs_send (sim_handoff_t *self, s_peer_t *peer,
                             uint64_t now_ms);

void
sim_handoff_peers_end (sim_handoff_t *self)
{
    uint64_t now = sf_time_mono_ms ();
    s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers);
    while (peer) {
        s_peer_t *next = (s_peer_t *) zlistx_next (self->peers);
        //  HANDOFFs kept for a sim the directory did not list go as soon
        //  as it does.
        if (peer->seen && peer->endpoint && peer->waiting)
            s_handoffs_send (self, peer, now);
        if (!peer->seen && !s_peer_kept (peer, now)) {
            sf_zap_revoke (self->zap, SIM_HANDOFF_DOMAIN, peer->key);
            s_peer_close (self, peer);
            //  Gone from the directory: its grants expire with it.
            self->counters.handoffs_failed += zlistx_size (peer->handoffs);
            zlistx_delete (self->peers, zlistx_find (self->peers, peer));
        }
        peer = next;
    }
}

//  --------------------------------------------------------------------------
//  Sending copies

static int s_handle_dealer (sf_loop_t *loop, zsock_t *dealer, void *arg);

//  True when PEER's DEALER is dead of a refused handshake (the peer had
//  not learned our key yet when we dialled) and due to be replaced.
static bool
s_refused (sim_handoff_t *self, s_peer_t *peer)
{
    uint64_t now = sf_time_mono_ms ();
    if (now == peer->checked_ms)
        return false;
    peer->checked_ms = now;
    if (!peer->redial_ms) {
        peer->redial_ms = sf_curve_redial_at (peer->refusals, peer->dialled_ms);
        //  Another instance's sim admits us only once its own ring told it
        //  our key, just after our ring told us to hand over: soon.
        if (peer->redial_ms && peer->instance)
            peer->redial_ms = peer->dialled_ms + S_FOREIGN_REDIAL_MS;
        if (peer->redial_ms) {
            self->counters.handshakes_refused++;
            sf_log_info ("sim_handoff: sim '%s' refused our handshake; "
                         "dialling again",
                         peer->name);
        }
    }
    return peer->redial_ms && now >= peer->redial_ms;
}

//  PEER's DEALER, made and connected on first use, and made again after a
//  refused handshake. NULL if PEER has no handoff endpoint.
static zsock_t *
s_dealer (sim_handoff_t *self, s_peer_t *peer)
{
    if (peer->dealer && s_refused (self, peer))
        s_peer_close (self, peer);
    if (!peer->dealer && peer->endpoint) {
        peer->dealer = zsock_new (ZMQ_DEALER);
        peer->dialled_ms = sf_time_mono_ms ();
        zsock_set_linger (peer->dealer, 0);
        //  Credit bounds the chunks, and HANDOFFs wait in peer->handoffs
        //  when libzmq will not take them: the mark only sizes libzmq's
        //  queue, big enough for the bursts of many transfers at once.
        zsock_set_sndhwm (peer->dealer, 1000);
        sf_curve_client (peer->dealer, self->cert, peer->key);
        peer->refusals = sf_curve_watch (peer->dealer);
        if (!peer->refusals
            || zsock_connect (peer->dealer, "%s", peer->endpoint)) {
            sf_curve_unwatch (peer->dealer, &peer->refusals);
            zsock_destroy (&peer->dealer);
            return NULL;
        }
        if (self->loop)
            sf_loop_reader (self->loop, peer->dealer, s_handle_dealer, self);
    }
    return peer->dealer;
}

//  Build chunk NUMBER of COPY into the frame. Returns its size, 0 if the
//  chunk would be empty (everything left was deleted meanwhile).
static size_t
s_build (sim_handoff_t *self, s_copy_t *copy, uint32_t number, bool first)
{
    size_t used = HANDOFF_MSG_CHUNK_HEADER;
    uint16_t count = 0;
    size_t index = copy->starts [number];
    for (; index < copy->n_paths && count < HANDOFF_MSG_MAX_COUNT; index++) {
        sim_entity_t *entity = sim_store_get (self->store, copy->paths [index]);
        if (!entity || !entity->authority)
            continue;
        //  Every entity carries its grant (handoff.md section 3); one
        //  without, once the ring signs grants, is refused there.
        bool has_grant = entity->grant && entity->grant_epoch == entity->epoch;
        handoff_msg_entity_t item = {entity->path,
                                     entity->path_size,
                                     entity->epoch,
                                     entity->seq,
                                     entity->state,
                                     entity->state_size,
                                     has_grant ? entity->grant : NULL,
                                     has_grant ? entity->grant_size : 0};
        if (handoff_msg_chunk_put (self->frame, S_CHUNK_SIZE, &used, &item))
            break;
        count++;
    }
    if (number == copy->built) {
        copy->starts [number + 1] = (uint32_t) index;
        copy->built++;
    }
    bool last = index >= copy->n_paths;
    if (last)
        copy->total = number;
    if (count == 0)
        return 0;
    if (first) {
        copy->entities += count;
        self->counters.copy_entities_sent += count;
    }
    return handoff_msg_chunk_finish (self->frame, used, copy->id, number, last,
                                     count);
}

//  Tell COPY's caller how it ended, and forget it.
static void
s_finish (sim_handoff_t *self, s_copy_t *copy, const sf_fault_t *fault)
{
    json_t *result = NULL;
    if (fault)
        self->counters.copies_failed++;
    else {
        self->counters.copies_done++;
        result = json_pack (
            "{s:s,s:I,s:I,s:I,s:I,s:I}", "to", copy->to, "transfer",
            (json_int_t) copy->id, "entities", (json_int_t) copy->entities,
            "chunks", (json_int_t) copy->total, "bytes",
            (json_int_t) copy->bytes, "elapsed_ms",
            (json_int_t) (sf_time_mono_ms () - copy->started_ms));
    }
    copy->fn (copy->arg, result, fault);
    json_decref (result);
    zlistx_delete (self->copies, zlistx_find (self->copies, copy));
}

//  Send what COPY's credit allows. Returns -1 if COPY ended.
static int
s_pump (sim_handoff_t *self, s_copy_t *copy)
{
    if (copy->n_paths == 0) {
        s_finish (self, copy, NULL);  //  nothing to copy
        return -1;
    }
    s_peer_t *peer = s_peer_named (self, copy->to);
    zsock_t *dealer = peer ? s_dealer (self, peer) : NULL;
    if (!dealer) {
        sf_fault_t fault;
        sf_fault_set (&fault, SF_EUNAVAILABLE,
                      "sim '%s' left the directory or has no handoff endpoint",
                      copy->to);
        s_finish (self, copy, &fault);
        return -1;
    }
    while ((copy->total == 0 || copy->sent < copy->total)
           && copy->sent < copy->acked + copy->credit) {
        uint32_t number = copy->sent + 1;
        bool first = number == copy->built;
        size_t size = s_build (self, copy, number, first);
        if (size == 0) {
            //  Every entity left was deleted meanwhile: the copy ends with
            //  what was sent, once that is acknowledged.
            copy->total = number - 1;
            break;
        }
        if (zmq_send (zsock_resolve (dealer), self->frame, size, ZMQ_DONTWAIT)
            < 0)
            break;  //  queue full: the resend timer tries again
        copy->sent = number;
        copy->bytes += size;
        self->counters.chunks_sent++;
    }
    if (copy->total != 0 && copy->acked >= copy->total) {
        s_finish (self, copy, NULL);
        return -1;
    }
    return 0;
}

int
sim_handoff_copy (sim_handoff_t *self, const char *to, const char *prefix,
                  sim_handoff_fn *fn, void *arg, sf_fault_t *fault)
{
    s_peer_t *peer = s_peer_named (self, to);
    if (!peer)
        return sf_fault_set (fault, SF_ENOTFOUND,
                             "no sim '%s' in the directory", to);
    if (!peer->endpoint)
        return sf_fault_set (fault, SF_EUNAVAILABLE,
                             "sim '%s' registered no handoff endpoint", to);
    s_copy_t *copy = (s_copy_t *) zmalloc (sizeof (s_copy_t));
    copy->id = ++self->next_transfer;
    copy->to = strdup (to);
    copy->fn = fn;
    copy->arg = arg;
    copy->credit = S_CREDIT;
    copy->started_ms = copy->heard_ms = copy->resent_ms = sf_time_mono_ms ();
    //  The entities to copy are fixed now; their states are read as each
    //  chunk is built, so the newest go.
    size_t capacity = 1024;
    copy->paths = (char **) zmalloc (capacity * sizeof (char *));
    sim_entity_t *page [1000];
    const char *after = NULL;
    bool more = true;
    while (more) {
        size_t count =
            sim_store_list (self->store, prefix, after, page, 1000, &more);
        for (size_t at = 0; at < count; at++) {
            if (!page [at]->authority)
                continue;
            if (copy->n_paths == capacity) {
                capacity *= 2;
                copy->paths =
                    (char **) realloc (copy->paths, capacity * sizeof (char *));
            }
            copy->paths [copy->n_paths++] = strdup (page [at]->path);
        }
        if (count)
            after = page [count - 1]->path;
    }
    //  At most one chunk per entity, plus the start of the one after.
    copy->starts =
        (uint32_t *) zmalloc ((copy->n_paths + 3) * sizeof (uint32_t));
    copy->built = 1;
    zlistx_add_end (self->copies, copy);
    self->counters.copies_started++;
    s_pump (self, copy);
    return 0;
}

static s_copy_t *
s_copy_find (sim_handoff_t *self, uint64_t id)
{
    for (s_copy_t *copy = (s_copy_t *) zlistx_first (self->copies); copy;
         copy = (s_copy_t *) zlistx_next (self->copies))
        if (copy->id == id)
            return copy;
    return NULL;
}

//  Hand HANDOFF to libzmq on PEER's DEALER. Returns -1 if it would not
//  take it (its queue is full) or PEER has no endpoint.
static int
s_handoff_push (sim_handoff_t *self, s_peer_t *peer, s_handoff_t *handoff,
                uint64_t now_ms)
{
    zsock_t *dealer = s_dealer (self, peer);
    if (!dealer)
        return -1;
    //  Stamped before it goes: the receiver may record it first.
    uint64_t sent_us = sf_time_wall_us ();
    if (zmq_send (zsock_resolve (dealer), handoff->frame, handoff->size,
                  ZMQ_DONTWAIT)
        < 0) {
        self->counters.handoffs_waited++;
        return -1;
    }
    if (handoff->sent_ms)
        self->counters.handoffs_resent++;
    else {
        s_trace_at (self, handoff->trace, "handoff", true, peer, sent_us);
        self->counters.handoffs_sent++;
    }
    handoff->sent_ms = now_ms;
    return 0;
}

//  Hand PEER's unacknowledged HANDOFFs to libzmq, in order: those it has
//  not taken yet, and those unacknowledged for S_HANDOFF_RESEND_MS (a
//  reconnection may have lost them; the receiver answers a repeat as
//  stale, so none is taken twice). Stops at the first it will not take.
static void
s_handoffs_send (sim_handoff_t *self, s_peer_t *peer, uint64_t now_ms)
{
    for (s_handoff_t *handoff = (s_handoff_t *) zlistx_first (peer->handoffs);
         handoff; handoff = (s_handoff_t *) zlistx_next (peer->handoffs)) {
        if (handoff->sent_ms && now_ms - handoff->sent_ms < S_HANDOFF_RESEND_MS)
            continue;
        if (s_handoff_push (self, peer, handoff, now_ms)) {
            peer->waiting = true;  //  the next ack or tick tries again
            return;
        }
    }
    peer->waiting = false;
}

//  PEER acknowledged the HANDOFF MSG names: forget it, its trace id into
//  TRACE. False if it was not waiting (a repeat's second ack).
static bool
s_handoff_acked (s_peer_t *peer, const handoff_msg_t *msg, char *trace)
{
    for (s_handoff_t *handoff = (s_handoff_t *) zlistx_first (peer->handoffs);
         handoff; handoff = (s_handoff_t *) zlistx_next (peer->handoffs))
        if (handoff->transfer == msg->transfer
            && handoff->epoch == msg->entity.epoch
            && strlen (handoff->path) == msg->entity.path_size
            && memcmp (handoff->path, msg->entity.path, msg->entity.path_size)
                   == 0) {
            strcpy (trace, handoff->trace);
            zlistx_delete (peer->handoffs, zlistx_cursor (peer->handoffs));
            return true;
        }
    return false;
}

//  A reply from a peer's server: acknowledgements of our copies.
static int
s_handle_dealer (sf_loop_t *loop, zsock_t *dealer, void *arg)
{
    (void) loop;
    sim_handoff_t *self = (sim_handoff_t *) arg;
    zframe_t *frame = zframe_recv (dealer);
    if (!frame)
        return 0;
    handoff_msg_t msg;
    if (handoff_msg_decode (&msg, zframe_data (frame), zframe_size (frame)) == 0
        && msg.type == HANDOFF_MSG_HANDOFF_ACK) {
        s_peer_t *peer = s_peer_of_dealer (self, dealer);
        uint64_t heard_us = sf_time_wall_us ();
        char trace [SF_TRACE_MAX_ID + 1];
        if (peer && s_handoff_acked (peer, &msg, trace)) {
            s_trace_at (self, trace, "handoff_ack", false, peer, heard_us);
            if (msg.status == HANDOFF_MSG_OK)
                self->counters.handoffs_acked++;
            else
                self->counters.handoffs_refused_by_peer++;
            //  The peer reads: what waited for room may go now.
            if (peer->waiting)
                s_handoffs_send (self, peer, sf_time_mono_ms ());
        }
        zframe_destroy (&frame);
        return 0;
    }
    if (handoff_msg_decode (&msg, zframe_data (frame), zframe_size (frame))
        || msg.type != HANDOFF_MSG_CHUNK_ACK) {
        self->counters.handoff_dropped++;
        zframe_destroy (&frame);
        return 0;
    }
    zframe_destroy (&frame);
    s_copy_t *copy = s_copy_find (self, msg.transfer);
    if (!copy)
        return 0;  //  finished or given up
    copy->heard_ms = sf_time_mono_ms ();
    if (msg.status != HANDOFF_MSG_OK) {
        sf_fault_t fault;
        sf_fault_set (&fault, SF_EDENIED, "sim '%s' refused the copy",
                      copy->to);
        s_finish (self, copy, &fault);
        return 0;
    }
    if (msg.chunk > copy->acked && msg.chunk <= copy->sent)
        copy->acked = msg.chunk;
    if (msg.credit >= 1 && msg.credit <= 64)
        copy->credit = msg.credit;
    s_pump (self, copy);
    return 0;
}

void
sim_handoff_tick (sim_handoff_t *self, uint64_t now_ms)
{
    //  HANDOFFs: give up on those unacknowledged too long (the new
    //  authority has started from the checkpoint by then), send the rest.
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        //  Another instance's sim may learn that it may take the state
        //  only after its claim's outcome was found again across a crash
        //  (federation.md section 6): it is given longer.
        uint64_t give_up_ms =
            peer->instance ? S_FOREIGN_GIVE_UP_MS : S_GIVE_UP_MS;
        s_handoff_t *handoff = (s_handoff_t *) zlistx_first (peer->handoffs);
        while (handoff && now_ms - handoff->queued_ms >= give_up_ms) {
            sf_log_warning ("sim_handoff: no ack from '%s' for the handoff of "
                            "%s at epoch %llu in %llu s; given up",
                            peer->name, handoff->path,
                            (unsigned long long) handoff->epoch,
                            (unsigned long long) give_up_ms / 1000);
            self->counters.handoffs_failed++;
            zlistx_delete (peer->handoffs, zlistx_cursor (peer->handoffs));
            handoff = (s_handoff_t *) zlistx_first (peer->handoffs);
        }
        //  A refused handshake loses what was queued on it: dialled
        //  again, everything unacknowledged goes again at once.
        if (peer->dealer && s_refused (self, peer))
            s_peer_close (self, peer);  //  redialled by the next send
        if (zlistx_size (peer->handoffs))
            s_handoffs_send (self, peer, now_ms);
    }
    s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers);
    while (peer) {
        s_peer_t *next = (s_peer_t *) zlistx_next (self->peers);
        if (!peer->seen && !s_peer_kept (peer, now_ms)
            && (peer->visiting_until_ms || !peer->key [0])) {
            if (peer->key [0])
                sf_zap_revoke (self->zap, SIM_HANDOFF_DOMAIN, peer->key);
            s_peer_close (self, peer);
            zlistx_delete (self->peers, zlistx_find (self->peers, peer));
        }
        peer = next;
    }
    s_copy_t *copy = (s_copy_t *) zlistx_first (self->copies);
    while (copy) {
        s_copy_t *next = (s_copy_t *) zlistx_next (self->copies);
        uint64_t quiet = now_ms - copy->heard_ms;
        if (quiet >= S_GIVE_UP_MS) {
            sf_fault_t fault;
            sf_fault_set (&fault, SF_ETIMEOUT,
                          "sim '%s' acknowledged nothing for %d s", copy->to,
                          S_GIVE_UP_MS / 1000);
            s_finish (self, copy, &fault);
        }
        else if (quiet >= S_RESEND_MS && now_ms - copy->resent_ms >= S_RESEND_MS
                 && copy->sent > copy->acked) {
            copy->sent = copy->acked;  //  go back to the first unacknowledged
            copy->resent_ms = now_ms;
            s_pump (self, copy);
        }
        copy = next;
    }
    //  Forget copies we were receiving that went quiet.
    zlist_t *stale = zlist_new ();
    zlist_autofree (stale);
    for (s_receiving_t *receiving =
             (s_receiving_t *) zhashx_first (self->receiving);
         receiving; receiving = (s_receiving_t *) zhashx_next (self->receiving))
        if (now_ms - receiving->heard_ms >= S_RECEIVING_IDLE_MS)
            zlist_append (stale, (void *) zhashx_cursor (self->receiving));
    for (char *key = (char *) zlist_first (stale); key;
         key = (char *) zlist_next (stale))
        zhashx_delete (self->receiving, key);
    zlist_destroy (&stale);
}

//  --------------------------------------------------------------------------
//  Receiving

//  Check the grant of the CHUNK entity ITEM from a sender with SENDER's
//  keys; kept if it passes, counted if not.
static void
s_check_grant (sim_handoff_t *self, const handoff_msg_entity_t *item,
               const sim_store_sender_t *sender, uint64_t now_ms)
{
    switch (sim_grant_check (&self->grant_keys, self->store, item->path,
                             item->path_size, item->epoch, item->grant,
                             item->grant_size, sender, now_ms)) {
        case SIM_GRANT_PROVEN:
            self->counters.copy_grants_proven++;
            break;
        case SIM_GRANT_BAD_SIGNATURE:
            self->counters.copy_grant_bad_signature++;
            break;
        case SIM_GRANT_RETIRED_KEY:
            self->counters.copy_grant_retired_key++;
            break;
        case SIM_GRANT_WRONG_SENDER:
            self->counters.copy_grant_wrong_sender++;
            break;
        case SIM_GRANT_STALE:
            self->counters.copy_grant_stale++;
            break;
        case SIM_GRANT_KEPT:
        case SIM_GRANT_OURS:
        case SIM_GRANT_NO_MEMORY:
            break;  //  the entity's offer decides
    }
}

//  Apply a CHUNK from PEER in order; returns the highest chunk applied.
//  *REFUSED is set if an entity of it was refused as unproven (the
//  CHUNK_ACK then says so, and the sender gives the copy up).
static uint32_t
s_receive_chunk (sim_handoff_t *self, s_peer_t *peer, const handoff_msg_t *msg,
                 bool *refused)
{
    char key [80];
    snprintf (key, sizeof key, "%s/%llu", peer->key,
              (unsigned long long) msg->transfer);
    s_receiving_t *receiving =
        (s_receiving_t *) zhashx_lookup (self->receiving, key);
    if (!receiving) {
        receiving = (s_receiving_t *) zmalloc (sizeof (s_receiving_t));
        receiving->expected = 1;
        zhashx_insert (self->receiving, key, receiving);
    }
    uint64_t now = sf_time_mono_ms ();
    receiving->heard_ms = now;
    uint32_t applied = receiving->expected - 1;
    if (msg->chunk != receiving->expected)
        return applied;  //  a resend of one we have, or a gap: say where we are
    size_t offset = 0;
    handoff_msg_entity_t item;
    uint64_t wall = sf_time_wall_ms ();
    //  The sender's key on this channel is what its grants must name
    //  (handoff.md section 4).
    uint8_t sender_key [32];
    sim_store_sender_t sender = {
        {sender_key, NULL}, zmq_z85_decode (sender_key, peer->key) ? 1 : 0};
    if (sender.count && peer->former_until_ms > now)
        sender.keys [sender.count++] = peer->former;
    const sim_store_sender_t *proof =
        self->grant_keys.enforced ? &sender : NULL;
    while (handoff_msg_next (msg, &offset, &item)) {
        if (item.grant && proof)
            s_check_grant (self, &item, proof, wall);
        sim_entity_t *entity = NULL;
        sim_store_offer_t offered = sim_store_offer (
            self->store, item.path, item.path_size,
            sim_store_hash (self->store, item.path, item.path_size), item.epoch,
            item.seq, item.state, item.state_size, peer->name, proof, wall,
            &entity);
        if (offered == SIM_STORE_APPLIED) {
            self->counters.copy_entities_received++;
            if (self->listener)
                self->listener (self->listener_arg, entity);
        }
        else if (offered == SIM_STORE_UNPROVEN) {
            self->counters.copy_update_unproven++;
            *refused = true;
        }
    }
    self->counters.chunks_received++;
    receiving->expected++;
    applied = msg->chunk;
    if (msg->last)
        zhashx_delete (self->receiving, key);
    return applied;
}

static void
s_router_one (sim_handoff_t *self, zsock_t *router)
{
    zframe_t *routing_id = NULL, *body = NULL;
    char *principal = NULL;
    bool delimited = false;
    int rc = sf_curve_recv (router, &routing_id, &body, &principal, &delimited);
    s_peer_t *peer = principal ? s_peer_keyed (self, principal) : NULL;
    handoff_msg_t msg;
    if (rc || !body || !peer
        || handoff_msg_decode (&msg, zframe_data (body), zframe_size (body))) {
        self->counters.handoff_dropped++;
        goto done;
    }
    uint8_t reply [64 + 256];
    size_t size = 0;
    if (msg.type == HANDOFF_MSG_CHUNK && peer->instance) {
        //  Copies (replicas) across instances are not in this version
        //  (federation.md section 9): refused, so the sender gives up.
        self->counters.copy_update_unproven++;
        size = handoff_msg_encode_chunk_ack (reply, msg.transfer, 0, S_CREDIT,
                                             HANDOFF_MSG_REFUSED);
    }
    else if (msg.type == HANDOFF_MSG_CHUNK) {
        bool refused = false;
        uint32_t applied = s_receive_chunk (self, peer, &msg, &refused);
        size = handoff_msg_encode_chunk_ack (
            reply, msg.transfer, applied, S_CREDIT,
            refused ? HANDOFF_MSG_REFUSED : HANDOFF_MSG_OK);
    }
    else if (msg.type == HANDOFF_MSG_HANDOFF) {
        uint64_t heard_us = sf_time_wall_us ();
        char trace [SF_TRACE_MAX_ID + 1];
        snprintf (trace, sizeof trace, "%llu",
                  (unsigned long long) msg.transfer);
        //  Authority moves only when the ring grants it: the handler
        //  checks this sim's grant (without one, refused), and names the
        //  trace another instance's transfer is (TRANSFER@HOME).
        uint8_t status = self->offer_fn ? self->offer_fn (
                             self->offer_arg, peer->name, &msg.entity, trace)
                                        : HANDOFF_MSG_REFUSED;
        s_trace_at (self, trace, "handoff", false, peer, heard_us);
        if (status == HANDOFF_MSG_OK)
            self->counters.handoffs_accepted++;
        else
            self->counters.handoffs_refused++;
        size = handoff_msg_encode_handoff_ack (
            reply, sizeof reply, msg.transfer, msg.entity.epoch, status,
            msg.entity.path, msg.entity.path_size);
        s_trace_at (self, trace, "handoff_ack", true, peer, sf_time_wall_us ());
    }
    else
        self->counters.handoff_dropped++;
    if (size)
        sf_curve_send (router, routing_id, delimited, reply, size);
done:
    zframe_destroy (&routing_id);
    zframe_destroy (&body);
    free (principal);
}

//  Messages taken per wakeup, as the API does.
#define S_DRAIN 64

static int
s_handle_router (sf_loop_t *loop, zsock_t *router, void *arg)
{
    (void) loop;
    sim_handoff_t *self = (sim_handoff_t *) arg;
    for (int count = 0; count < S_DRAIN && (zsock_events (router) & ZMQ_POLLIN);
         count++)
        s_router_one (self, router);
    return 0;
}

int
sim_handoff_attach (sim_handoff_t *self, sf_loop_t *loop)
{
    self->loop = loop;
    return sf_loop_reader (loop, self->router, s_handle_router, self);
}

void
sim_handoff_counters (sim_handoff_t *self, json_t *object)
{
#define S_JSON(name)                    \
    json_object_set_new (object, #name, \
                         json_integer ((json_int_t) self->counters.name));
    S_COUNTERS (S_JSON)
}

void
sim_handoff_set_trace (sim_handoff_t *self, sf_trace_t *trace)
{
    self->trace = trace;
}

int
sim_handoff_send (sim_handoff_t *self, const char *to,
                  const sim_entity_t *entity, uint64_t epoch, uint64_t transfer)
{
    s_peer_t *peer = s_peer_named (self, to);
    if (peer && !peer->endpoint && peer->key [0])
        return -1;  //  listed, without a handoff channel
    //  Not listed (yet): kept for it while the directory is read again,
    //  and given up on like any HANDOFF unacknowledged.
    bool unknown = !peer;
    if (unknown) {
        if (strcmp (to, self->name) == 0 || strlen (to) > 64 + 33)
            return -1;
        peer = s_peer_require (self, to);
    }
    //  A foreign entity goes back to its home by the home's own path
    //  (PATH@HOME is this instance's name for it, never on the wire).
    size_t path_size = entity->path_size;
    const char *at = entity->foreign ? strrchr (entity->path, '@') : NULL;
    if (at && peer->instance && strcmp (at + 1, peer->instance) == 0)
        path_size = (size_t) (at - entity->path);
    else if (at)
        return -1;  //  only its home's sims may take it from here
    handoff_msg_entity_t item = {entity->path,  path_size,
                                 epoch,         entity->seq,
                                 entity->state, entity->state_size};
    //  The ring's transfer id travels in the frame, so both ends record
    //  the hop under it.
    if (!transfer)
        transfer = ++self->next_transfer;
    size_t size = handoff_msg_encode_handoff (self->frame, HANDOFF_MSG_MAX_SIZE,
                                              transfer, &item);
    if (!size)
        return -1;
    s_handoff_t *handoff = (s_handoff_t *) zmalloc (sizeof (s_handoff_t));
    handoff->transfer = transfer;
    snprintf (handoff->trace, sizeof handoff->trace, "%llu%s%s",
              (unsigned long long) transfer, at ? "@" : "", at ? at + 1 : "");
    handoff->epoch = epoch;
    handoff->path = strndup (entity->path, path_size);
    handoff->frame = (uint8_t *) malloc (size);
    memcpy (handoff->frame, self->frame, size);
    handoff->size = size;
    handoff->queued_ms = sf_time_mono_ms ();
    zlistx_add_end (peer->handoffs, handoff);
    //  In order: while others wait, this one waits behind them.
    if (!peer->waiting
        && s_handoff_push (self, peer, handoff, handoff->queued_ms))
        peer->waiting = true;
    if (unknown && self->unknown_fn)
        self->unknown_fn (self->unknown_arg, to);
    return 0;
}

//  --------------------------------------------------------------------------
//  Self test: a HANDOFF to a peer that does not know our key yet gets
//  through once it does. Both channels live in this process and share its
//  ZAP handler, so "b knows a" is exactly "a's key is admitted".

typedef struct {
    sim_handoff_t *a, *b;
    uint64_t learn_at, give_up_at;
    int offers;
} s_test_t;

static uint8_t
s_test_offer (void *arg, const char *from, const handoff_msg_entity_t *entity,
              char *trace)
{
    (void) from, (void) entity, (void) trace;
    ((s_test_t *) arg)->offers++;
    return HANDOFF_MSG_OK;
}

static int
s_test_tick (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    s_test_t *test = (s_test_t *) arg;
    uint64_t now = sf_time_mono_ms ();
    if (test->learn_at && now >= test->learn_at) {
        //  b learns of a from the directory (a's endpoint is not needed).
        sim_handoff_peers_begin (test->b);
        sim_handoff_peer_set (test->b, "a", zcert_public_txt (test->a->cert),
                              NULL);
        sim_handoff_peers_end (test->b);
        test->learn_at = 0;
    }
    sim_handoff_tick (test->a, now);
    sim_handoff_tick (test->b, now);
    return test->a->counters.handoffs_acked || now >= test->give_up_at ? -1 : 0;
}

int
sim_handoff_test (bool verbose)
{
    if (verbose)
        printf (" * sim_handoff: ");
    zactor_t *zap = sf_zap_new ();
    assert (zap);
    zcert_t *cert_a = zcert_new (), *cert_b = zcert_new ();
    sim_store_t *store_a = sim_store_new (), *store_b = sim_store_new ();
    sf_fault_t fault;
    s_test_t test = {0};
    test.a = sim_handoff_new ("tcp://127.0.0.1:*", "a", cert_a, zap, store_a,
                              &fault);
    test.b = sim_handoff_new ("tcp://127.0.0.1:*", "b", cert_b, zap, store_b,
                              &fault);
    assert (test.a && test.b);
    sim_handoff_set_offer_handler (test.b, s_test_offer, &test);
    char *endpoint_b = zsock_last_endpoint (test.b->router);
    sim_handoff_peers_begin (test.a);
    sim_handoff_peer_set (test.a, "b", zcert_public_txt (cert_b), endpoint_b);
    sim_handoff_peers_end (test.a);

    sf_loop_t *loop = sf_loop_new ();
    int rc = sim_handoff_attach (test.a, loop);
    assert (rc == 0);
    rc = sim_handoff_attach (test.b, loop);
    assert (rc == 0);
    sim_entity_t *entity = sim_store_create (store_a, "/t/e", 4, 1, 1, true);
    assert (entity);
    rc = sim_handoff_send (test.a, "b", entity, 2, 0);
    assert (rc == 0);
    //  b refuses a's first session; a dials again once b has learned a's
    //  key, which b does 300 ms on.
    test.learn_at = sf_time_mono_ms () + 300;
    test.give_up_at = sf_time_mono_ms () + 8000;
    sf_loop_timer (loop, 20, 0, s_test_tick, &test);
    sf_loop_start (loop);
    assert (test.a->counters.handshakes_refused >= 1);
    assert (test.a->counters.handoffs_acked == 1);
    assert (test.offers == 1);

    sf_loop_destroy (&loop);
    free (endpoint_b);
    sim_handoff_destroy (&test.a);
    sim_handoff_destroy (&test.b);
    sim_store_destroy (&store_a);
    sim_store_destroy (&store_b);
    zcert_destroy (&cert_a);
    zcert_destroy (&cert_b);
    zactor_destroy (&zap);
    if (verbose)
        printf ("OK\n");
    return 0;
}
