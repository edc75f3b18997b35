/*  sim_stream: sealed state datagrams over RADIO/DISH. */

#include "peer/sim_stream.h"
#include "common/sf_log.h"
#include "common/sf_name.h"
#include "common/sf_time.h"
#include "peer/sim_credit.h"
#include "peer/sim_grant.h"
#include "peer/sim_udp.h"
#include "peer/sim_seal.h"
#include "peer/sim_window.h"
#include "protocol/grant_msg.h"
#include "protocol/state_msg.h"

//  Refresh an ACK this often to a sender heard from recently, so a sender
//  that lost ACKs or a receiver that was stopped recovers (section 6).
#define S_ACK_REFRESH_US 250000
#define S_HEARD_RECENTLY_US 10000000
//  Acknowledge a sender after a quarter of the credit granted to it, and
//  after at least this many datagrams: credit comes back well before the
//  window closes, in as few ACKs as that takes (each costs as much in
//  system calls and wake-ups as a datagram of state).
#define S_ACK_EVERY 4

//  One key a peer sends from, and what we accepted from it.
typedef struct {
    uint8_t key [32];        //  the peer's public key
    uint8_t shared [32];     //  X25519 secret with it
    uint64_t registered_ms;  //  the registration its sessions derive from
    uint64_t in_session;     //  its newest session accepted, 0: none
    sim_seal_key_t in_key;   //  that session's key
    sim_window_t window;     //  its counters seen
} s_identity_t;

//  One peer: what we send it and what we received from it.
typedef struct {
    char *name;              //  its sim name
    uint8_t key [32];        //  its public key
    char key_text [41];      //  the same, Z85
    uint64_t registered_ms;  //  its current registration
    char *endpoint;          //  its state endpoint
    zsock_t *radio;          //  our RADIO to it
    uint8_t shared [32];     //  X25519 secret with it
    bool seen;               //  set in the current directory sweep
    //  Sending
    sim_seal_key_t out_key;  //  our session's key toward it
    uint64_t counter;        //  last counter used toward it
    sim_credit_t *credit;    //  what is due, in flight, allowed
    //  Receiving
    uint64_t in_session;       //  its newest session accepted, 0: none
    sim_seal_key_t in_key;     //  that session's key
    sim_window_t window;       //  its counters seen
    s_identity_t former;       //  its key before a re-key, during the grace
    uint64_t former_until_us;  //  end of the grace period, 0: none
    unsigned unacked;          //  STATE datagrams accepted since our last ACK
    uint32_t granted;          //  the credit our last ACK granted
    uint64_t heard_us;         //  last datagram accepted from it
    uint64_t acked_us;         //  last ACK we sent it
    size_t largest;            //  largest datagram accepted from it
} s_peer_t;

//  Counters, by name, in the order they are reported.
// clang-format off
#define S_COUNTERS(X)        \
    X (datagrams_sent)       \
    X (datagrams_received)   \
    X (bytes_sent)           \
    X (bytes_received)       \
    X (acks_sent)            \
    X (acks_received)        \
    X (updates_sent)         \
    X (updates_applied)      \
    X (send_failed)          \
    X (drop_malformed)       \
    X (drop_wrong_receiver)  \
    X (drop_unknown_sender)  \
    X (drop_stale_session)   \
    X (drop_replay)          \
    X (drop_forged)          \
    X (update_stale_epoch)   \
    X (update_conflict)      \
    X (update_superseded)    \
    X (update_unwatched)     \
    X (update_unproven)      \
    X (grants_sent)          \
    X (grants_proven)        \
    X (grant_bad_signature)  \
    X (grant_retired_key)    \
    X (grant_wrong_sender)   \
    X (grant_stale)
// clang-format on

#define S_FIELD(name) uint64_t name;
typedef struct {
    S_COUNTERS (S_FIELD)
} s_counters_t;

//  A traced update on its way to one peer (trace.md, Case 3).
typedef struct {
    char id [SF_TRACE_MAX_ID + 1];  //  "" when the entry is free
    const void *peer;               //  the s_peer_t it goes to
    uint32_t slot, generation;      //  the entity
    uint64_t seq;                   //  the update's seq
    uint64_t counter;               //  the datagram that carried it, 0: not yet
    uint64_t until_us;              //  given up then
} s_traced_t;

struct _sim_stream_t {
    sf_trace_t *trace;  //  hop records (lent), or NULL
    s_traced_t traced [SIM_STREAM_TRACES];
    unsigned n_traced;                  //  entries in use
    zsock_t *dish;                      //  receives from every peer
    void *poller;                       //  zmq_poller of the DISH alone
    int fd;                             //  readable when the DISH is
    zcert_t *cert;                      //  our key pair (lent)
    uint8_t key_id [STATE_MSG_KEY_ID];  //  first bytes of our public key
    sim_store_t *store;                 //  entities (lent)
    char *name;                         //  our sim name
    size_t datagram_size;               //  largest datagram we send
    uint32_t credit;                    //  window we grant
    size_t buffer_budget;               //  receive buffer bytes we grant from
    uint64_t key_grace_us;              //  how long a former key is accepted
    uint32_t max_window;                //  window we use at most
    zlist_t *watch;                     //  prefixes replicated (strings)
    uint64_t session;                   //  ours, 0 until started
    zlistx_t *peers;                    //  s_peer_t
    sim_credit_item_t *items;           //  scratch: updates of one datagram
    size_t items_capacity;
    state_msg_update_t *updates;  //  scratch: a datagram received, decoded
    uint64_t *hashes;             //  scratch: their paths' sim_store_hash
    uint8_t *buffer;              //  scratch: one datagram
    sim_stream_fn *listener;      //  replica changes go here
    void *listener_arg;
    sim_grant_keys_t grant_keys;  //  the ring's keys, to check grants
    s_counters_t counters;
};

static void s_trace_acked (sim_stream_t *self, s_peer_t *peer, uint64_t top,
                           uint64_t bits, uint64_t now_us);

static void
s_peer_destroy (s_peer_t **self_p)
{
    if (*self_p) {
        s_peer_t *self = *self_p;
        zsock_destroy (&self->radio);
        sim_credit_destroy (&self->credit);
        free (self->endpoint);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

//  Size the DISH's socket to BYTES (0: leave it) and grant credit from
//  what the kernel gives it (section 6).
static void
s_size_buffer (sim_stream_t *self, const char *endpoint, size_t bytes)
{
    sf_fault_t fault;
    int port = sim_udp_port (endpoint);
    self->buffer_budget = port ? sim_udp_size (port, bytes, 1000, &fault) : 0;
    if (!self->buffer_budget) {
        self->buffer_budget = sim_udp_default ();
        sf_log_warning ("sim_stream: %s: %s; credit is granted from %zu bytes",
                        endpoint, port ? fault.message : "no port",
                        self->buffer_budget);
    }
    else if (self->buffer_budget < bytes)
        sf_log_notice ("sim_stream: the receive buffer of %s is %zu bytes, "
                       "not %zu: net.core.rmem_max caps it",
                       endpoint, self->buffer_budget, bytes);
}

sim_stream_t *
sim_stream_new (const char *endpoint, zcert_t *cert, sim_store_t *store,
                const sim_stream_config_t *config, sf_fault_t *fault)
{
    if (config->datagram_size < STATE_MSG_MIN_SIZE
        || config->datagram_size > SIM_STREAM_MAX_DATAGRAM) {
        sf_fault_set (fault, SF_EINVAL,
                      "datagram size %zu is out of range %d..%d (libzmq "
                      "drops larger UDP messages)",
                      config->datagram_size, STATE_MSG_MIN_SIZE,
                      SIM_STREAM_MAX_DATAGRAM);
        return NULL;
    }
    if (sim_seal_init ()) {
        sf_fault_set (fault, SF_EINTERNAL, "libsodium cannot start");
        return NULL;
    }
    sim_stream_t *self = (sim_stream_t *) zmalloc (sizeof (sim_stream_t));
    self->cert = cert;
    memcpy (self->key_id, zcert_public_key (cert), STATE_MSG_KEY_ID);
    self->store = store;
    self->name = strdup (config->name);
    self->datagram_size = config->datagram_size;
    self->credit = config->credit;
    self->key_grace_us = (uint64_t) config->key_grace_ms * 1000;
    self->max_window = config->max_window;
    self->peers = zlistx_new ();
    zlistx_set_destructor (self->peers,
                           (zlistx_destructor_fn *) s_peer_destroy);
    self->watch = zlist_new ();
    zlist_autofree (self->watch);
    char *watch = strdup (config->watch ? config->watch : "/");
    for (char *prefix = strtok (watch, ", "); prefix;
         prefix = strtok (NULL, ", ")) {
        if (prefix [0] != '/' || strlen (prefix) > SF_NAME_MAX_PATH) {
            sf_fault_set (fault, SF_EINVAL,
                          "watch prefix '%s' must start with '/'", prefix);
            free (watch);
            goto failed;
        }
        zlist_append (self->watch, prefix);
    }
    free (watch);
    //  The most updates a datagram can hold: each takes at least 6 bytes.
    self->items_capacity = self->datagram_size / 6 + 1;
    self->items = (sim_credit_item_t *) zmalloc (self->items_capacity
                                                 * sizeof (sim_credit_item_t));
    self->updates = (state_msg_update_t *) zmalloc (
        STATE_MSG_MAX_UPDATES * sizeof (state_msg_update_t));
    self->hashes =
        (uint64_t *) zmalloc (STATE_MSG_MAX_UPDATES * sizeof (uint64_t));
    self->buffer = (uint8_t *) zmalloc (SIM_STREAM_MAX_DATAGRAM + 1);
    if (!sim_udp_free (endpoint)) {
        //  Not the configuration's fault: SF_EUNAVAILABLE, as a TCP port in
        //  use (the daemon exits 1, not 2).
        sf_fault_set (fault, SF_EUNAVAILABLE,
                      "state endpoint '%s' is in use by another socket "
                      "(another sim with the same state endpoint?)",
                      endpoint);
        goto failed;
    }
    self->dish = zsock_new (ZMQ_DISH);
    if (zsock_bind (self->dish, "%s", endpoint) < 0) {
        sf_fault_set (fault, SF_EUNAVAILABLE,
                      "cannot bind state endpoint '%s': %s", endpoint,
                      zmq_strerror (zmq_errno ()));
        goto failed;
    }
    if (zsock_join (self->dish, SIM_STREAM_GROUP)) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot join the DISH group");
        goto failed;
    }
    //  A poller of its own gives the DISH a descriptor the daemon's loop
    //  can poll without handing libzmq a thread-safe socket.
    self->poller = zmq_poller_new ();
    if (!self->poller
        || zmq_poller_add (self->poller, zsock_resolve (self->dish), NULL,
                           ZMQ_POLLIN)
        || zmq_poller_fd (self->poller, &self->fd)) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot poll the DISH: %s",
                      zmq_strerror (zmq_errno ()));
        goto failed;
    }
    s_size_buffer (self, endpoint, config->receive_buffer);
    //  libzmq signals a reader only once it has found its pipe empty:
    //  read until then, or the descriptor never becomes readable.
    sim_stream_receive (self, sf_time_mono_us ());
    return self;
failed:
    sim_stream_destroy (&self);
    return NULL;
}

void
sim_stream_destroy (sim_stream_t **self_p)
{
    if (*self_p) {
        sim_stream_t *self = *self_p;
        zlistx_destroy (&self->peers);
        zlist_destroy (&self->watch);
        if (self->poller)
            zmq_poller_destroy (&self->poller);
        zsock_destroy (&self->dish);
        free (self->buffer);
        free (self->hashes);
        free (self->updates);
        free (self->items);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

int
sim_stream_fd (sim_stream_t *self)
{
    return self->fd;
}

void
sim_stream_set_listener (sim_stream_t *self, sim_stream_fn *fn, void *arg)
{
    self->listener = fn;
    self->listener_arg = arg;
}

void
sim_stream_set_ring_keys (sim_stream_t *self, const sim_grant_key_t *keys,
                          size_t count)
{
    sim_grant_keys_set (&self->grant_keys, keys, count);
}

uint64_t
sim_stream_session (sim_stream_t *self)
{
    return self->session;
}

//  Every authoritative entity is due to PEER.
static void
s_peer_all_due (sim_stream_t *self, s_peer_t *peer)
{
    uint32_t slots = sim_store_slots (self->store);
    for (uint32_t slot = 0; slot < slots; slot++) {
        sim_entity_t *entity = sim_store_at (self->store, slot);
        if (entity && entity->authority)
            sim_credit_dirty (peer->credit, slot, entity->generation);
    }
}

static void
s_peer_derive_out (sim_stream_t *self, s_peer_t *peer)
{
    if (self->session)
        sim_seal_derive (&peer->out_key, peer->shared,
                         zcert_public_key (self->cert), peer->key,
                         self->session);
}

void
sim_stream_start (sim_stream_t *self, uint64_t session)
{
    self->session = session;
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        s_peer_derive_out (self, peer);
        peer->counter = 0;
        sim_credit_reset (peer->credit);
        s_peer_all_due (self, peer);
    }
}

void
sim_stream_rekey (sim_stream_t *self, zcert_t *cert, uint64_t session)
{
    self->cert = cert;
    memcpy (self->key_id, zcert_public_key (cert), STATE_MSG_KEY_ID);
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        if (sim_seal_shared (peer->shared, zcert_secret_key (cert), peer->key))
            memset (peer->shared, 0, sizeof peer->shared);
        //  Its sessions were sealed to our old key: start again.
        peer->in_session = 0;
        sim_window_reset (&peer->window);
        peer->former_until_us = 0;
        peer->unacked = 0;
    }
    sim_stream_start (self, session);
}

void
sim_stream_peers_begin (sim_stream_t *self)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        peer->seen = false;
}

static s_peer_t *
s_peer_named (sim_stream_t *self, const char *name)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        if (strcmp (peer->name, name) == 0)
            return peer;
    return NULL;
}

int
sim_stream_peer_set (sim_stream_t *self, const char *name, const char *key,
                     const char *endpoint, uint64_t registered_ms,
                     sf_fault_t *fault)
{
    if (strcmp (name, self->name) == 0)
        return 0;
    uint8_t public_key [32];
    if (strlen (key) != 40 || !zmq_z85_decode (public_key, key))
        return sf_fault_set (fault, SF_EINVAL, "sim '%s' has a bad key", name);
    s_peer_t *peer = s_peer_named (self, name);
    bool fresh = !peer || memcmp (peer->key, public_key, 32) != 0
                 || peer->registered_ms != registered_ms;
    if (peer && !fresh && peer->endpoint && endpoint
        && strcmp (peer->endpoint, endpoint) == 0) {
        peer->seen = true;
        return 0;  //  nothing changed
    }
    if (!peer) {
        peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
        peer->name = strdup (name);
        peer->credit = sim_credit_new (self->max_window);
        zlistx_add_end (self->peers, peer);
    }
    peer->seen = true;
    if (fresh && peer->registered_ms && memcmp (peer->key, public_key, 32) != 0
        && self->key_grace_us) {
        //  Re-keyed: datagrams from the old key stay welcome for a while
        //  (section 4, key rotation).
        s_identity_t *former = &peer->former;
        memcpy (former->key, peer->key, 32);
        memcpy (former->shared, peer->shared, 32);
        former->registered_ms = peer->registered_ms;
        former->in_session = peer->in_session;
        former->in_key = peer->in_key;
        former->window = peer->window;
        peer->former_until_us = sf_time_mono_us () + self->key_grace_us;
    }
    if (fresh) {
        //  A new key or a restart: nothing we knew of it holds.
        memcpy (peer->key, public_key, 32);
        strcpy (peer->key_text, key);
        peer->registered_ms = registered_ms;
        if (sim_seal_shared (peer->shared, zcert_secret_key (self->cert),
                             public_key))
            return sf_fault_set (fault, SF_EINVAL,
                                 "sim '%s' has an unusable key", name);
        peer->in_session = 0;
        sim_window_reset (&peer->window);
        peer->unacked = 0;
        s_peer_derive_out (self, peer);
        sim_credit_reset (peer->credit);
        s_peer_all_due (self, peer);
    }
    if (!peer->endpoint || !endpoint || strcmp (peer->endpoint, endpoint)) {
        zsock_destroy (&peer->radio);
        free (peer->endpoint);
        peer->endpoint = endpoint ? strdup (endpoint) : NULL;
        if (endpoint) {
            peer->radio = zsock_new (ZMQ_RADIO);
            zsock_set_sndhwm (peer->radio, 100000);
            if (zsock_connect (peer->radio, "%s", endpoint)) {
                zsock_destroy (&peer->radio);
                return sf_fault_set (fault, SF_EINVAL,
                                     "sim '%s': cannot reach state endpoint "
                                     "'%s'",
                                     name, endpoint);
            }
        }
    }
    return 0;
}

void
sim_stream_peers_end (sim_stream_t *self)
{
    s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers);
    while (peer) {
        s_peer_t *next = (s_peer_t *) zlistx_next (self->peers);
        if (!peer->seen) {
            //  Its traces end with it.
            for (unsigned at = 0; at < SIM_STREAM_TRACES; at++)
                if (self->traced [at].id [0]
                    && self->traced [at].peer == peer) {
                    self->traced [at].id [0] = 0;
                    self->n_traced--;
                }
            void *handle = zlistx_find (self->peers, peer);
            zlistx_delete (self->peers, handle);
        }
        peer = next;
    }
}

void
sim_stream_changed (sim_stream_t *self, sim_entity_t *entity)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        sim_credit_dirty (peer->credit, entity->slot, entity->generation);
}

void
sim_stream_grant_changed (sim_stream_t *self, sim_entity_t *entity)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        sim_credit_grant_changed (peer->credit, entity->slot);
        sim_credit_dirty (peer->credit, entity->slot, entity->generation);
    }
}

size_t
sim_stream_state_limit (sim_stream_t *self, const char *path)
{
    //  The update's type and varints at their widest: epoch and seq 10
    //  bytes each, lengths 2 each; and room for the grant before it (its
    //  record type, the path again, this sim's name with the longest
    //  instance a foreign home adds to it, and the deepest proof).
    size_t fixed = STATE_MSG_OVERHEAD + STATE_MSG_UPDATE_EXTRA + strlen (path)
                   + 1 + GRANT_MSG_FIXED + strlen (path) + strlen (self->name)
                   + 1 + SF_NAME_MAX_INSTANCE
                   + GRANT_MSG_MAX_DEPTH * GRANT_MSG_HASH;
    return self->datagram_size > fixed ? self->datagram_size - fixed : 0;
}

//  Seal the datagram in the buffer (its header and BODY_SIZE bytes of
//  body) straight into a message, and send it to PEER. Returns 0 or -1.
static int
s_send (sim_stream_t *self, s_peer_t *peer, size_t body_size)
{
    zmq_msg_t msg;
    size_t size = STATE_MSG_OVERHEAD + body_size;
    zmq_msg_init_size (&msg, size);
    sim_seal_close (&peer->out_key, self->buffer, body_size,
                    (uint8_t *) zmq_msg_data (&msg));
    zmq_msg_set_group (&msg, SIM_STREAM_GROUP);
    if (zmq_msg_send (&msg, zsock_resolve (peer->radio), ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&msg);
        self->counters.send_failed++;
        return -1;
    }
    self->counters.datagrams_sent++;
    self->counters.bytes_sent += size;
    return 0;
}

static void
s_header (sim_stream_t *self, s_peer_t *peer, uint8_t kind)
{
    state_msg_header_t header = {
        kind, {0}, {0}, self->session, ++peer->counter};
    memcpy (header.sender, self->key_id, STATE_MSG_KEY_ID);
    memcpy (header.receiver, peer->key, STATE_MSG_KEY_ID);
    state_msg_header_encode (&header, self->buffer);
}

//  The credit PEER gets (section 6): our configured credit, but no more
//  than its share of the receive buffer in datagrams of the size it sends,
//  shared with every sender heard from recently, so that what all of them
//  may have in flight fits in the buffer instead of overflowing it.
static uint32_t
s_grant (sim_stream_t *self, s_peer_t *peer, uint64_t now_us)
{
    size_t senders = 0;
    for (s_peer_t *other = (s_peer_t *) zlistx_first (self->peers); other;
         other = (s_peer_t *) zlistx_next (self->peers))
        if (other->in_session && now_us - other->heard_us < S_HEARD_RECENTLY_US)
            senders++;
    size_t size = peer->largest > 1200 ? peer->largest : 1200;
    size_t share = self->buffer_budget / (senders ? senders : 1) / size;
    if (share < 1)
        share = 1;
    return share < self->credit ? (uint32_t) share : self->credit;
}

static void
s_send_ack (sim_stream_t *self, s_peer_t *peer, uint64_t now_us)
{
    if (!self->session || !peer->radio || !peer->in_session)
        return;
    s_header (self, peer, STATE_MSG_ACK);
    peer->granted = s_grant (self, peer, now_us);
    state_msg_ack_t ack = {peer->in_session, peer->window.top,
                           sim_window_ack_bits (&peer->window), peer->granted};
    state_msg_ack_encode (&ack, self->buffer + STATE_MSG_HEADER);
    if (s_send (self, peer, STATE_MSG_ACK_BODY) == 0)
        self->counters.acks_sent++;
    peer->unacked = 0;
    peer->acked_us = now_us;
}

static bool
s_watched (sim_stream_t *self, const char *path, size_t size)
{
    for (char *prefix = (char *) zlist_first (self->watch); prefix;
         prefix = (char *) zlist_next (self->watch)) {
        size_t prefix_size = strlen (prefix);
        if (prefix_size <= size && memcmp (path, prefix, prefix_size) == 0)
            return true;
    }
    return false;
}

//  Check the grant before UPDATE from a sender with SENDER's keys, keep it
//  if it passes, count it if not.
static void
s_check_grant (sim_stream_t *self, const state_msg_update_t *update,
               const sim_store_sender_t *sender, uint64_t now_ms)
{
    switch (sim_grant_check (&self->grant_keys, self->store, update->path,
                             update->path_size, update->epoch, update->grant,
                             update->grant_size, sender, now_ms)) {
        case SIM_GRANT_PROVEN:
            self->counters.grants_proven++;
            break;
        case SIM_GRANT_BAD_SIGNATURE:
            self->counters.grant_bad_signature++;
            break;
        case SIM_GRANT_RETIRED_KEY:
            self->counters.grant_retired_key++;
            break;
        case SIM_GRANT_WRONG_SENDER:
            self->counters.grant_wrong_sender++;
            break;
        case SIM_GRANT_STALE:
            self->counters.grant_stale++;
            break;
        case SIM_GRANT_KEPT:
        case SIM_GRANT_OURS:
        case SIM_GRANT_NO_MEMORY:
            break;  //  the update decides
    }
}

//  Apply the COUNT updates decoded from a verified STATE body from PEER
//  (section 5). Every path is hashed and its lookup prefetched before the
//  first is applied: the lookups' cache misses then overlap.
static void
s_apply (sim_stream_t *self, s_peer_t *peer, size_t count, uint64_t now_us)
{
    for (size_t at = 0; at < count; at++) {
        const state_msg_update_t *update = &self->updates [at];
        self->hashes [at] =
            sim_store_hash (self->store, update->path, update->path_size);
        sim_store_prefetch (self->store, self->hashes [at]);
    }
    uint64_t now_ms = sf_time_wall_ms ();
    //  The keys this peer may send from: a grant must name one of them
    //  (grants.md section 4). Until the ring's keys are known, none is
    //  asked for.
    sim_store_sender_t sender = {{peer->key, NULL}, 1};
    if (peer->former_until_us > now_us)
        sender.keys [sender.count++] = peer->former.key;
    const sim_store_sender_t *proof =
        self->grant_keys.enforced ? &sender : NULL;
    for (size_t at = 0; at < count; at++) {
        const state_msg_update_t *update = &self->updates [at];
        if (!s_watched (self, update->path, update->path_size)) {
            self->counters.update_unwatched++;
            continue;
        }
        if (update->grant && proof)
            s_check_grant (self, update, &sender, now_ms);
        sim_entity_t *entity = NULL;
        switch (sim_store_offer (self->store, update->path, update->path_size,
                                 self->hashes [at], update->epoch, update->seq,
                                 update->state, update->state_size, peer->name,
                                 proof, now_ms, &entity)) {
            case SIM_STORE_APPLIED:
                self->counters.updates_applied++;
                if (self->listener)
                    self->listener (self->listener_arg, entity);
                break;
            case SIM_STORE_STALE_EPOCH:
                self->counters.update_stale_epoch++;
                break;
            case SIM_STORE_CONFLICT:
                self->counters.update_conflict++;
                break;
            case SIM_STORE_SUPERSEDED:
                self->counters.update_superseded++;
                break;
            case SIM_STORE_UNPROVEN:
                self->counters.update_unproven++;
                break;
            case SIM_STORE_NO_MEMORY:
                break;  //  it stays due at the sender
        }
    }
}

//  The peer whose current key, or former key still in its grace period,
//  starts with KEY_ID; the matching identity into *IDENTITY (a view of
//  the current one built in *SCRATCH, or the former one itself).
static s_peer_t *
s_peer_by_key_id (sim_stream_t *self, const uint8_t *key_id, uint64_t now_us,
                  s_identity_t **identity, bool *former)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        if (memcmp (peer->key, key_id, STATE_MSG_KEY_ID) == 0) {
            *former = false;
            *identity = NULL;
            return peer;
        }
        if (peer->former_until_us > now_us
            && memcmp (peer->former.key, key_id, STATE_MSG_KEY_ID) == 0) {
            *former = true;
            *identity = &peer->former;
            return peer;
        }
    }
    return NULL;
}

//  One datagram, through the checks of section 4 in their order.
static void
s_receive_one (sim_stream_t *self, const uint8_t *data, size_t size,
               uint64_t now_us)
{
    s_counters_t *counters = &self->counters;
    counters->datagrams_received++;
    counters->bytes_received += size;
    state_msg_header_t header;
    if (state_msg_header_decode (&header, data, size)) {
        counters->drop_malformed++;
        return;
    }
    if (memcmp (header.receiver, self->key_id, STATE_MSG_KEY_ID) != 0) {
        counters->drop_wrong_receiver++;
        return;
    }
    s_identity_t *identity, current;
    bool former;
    s_peer_t *peer =
        s_peer_by_key_id (self, header.sender, now_us, &identity, &former);
    if (!peer) {
        counters->drop_unknown_sender++;
        return;
    }
    if (!former) {
        //  A view of the current identity, written back below.
        memcpy (current.key, peer->key, 32);
        memcpy (current.shared, peer->shared, 32);
        current.registered_ms = peer->registered_ms;
        current.in_session = peer->in_session;
        current.in_key = peer->in_key;
        identity = &current;
    }
    if (header.session >> 16 != identity->registered_ms
        || header.session < identity->in_session) {
        counters->drop_stale_session++;
        return;
    }
    bool new_session = header.session != identity->in_session;
    sim_window_t *window = former ? &peer->former.window : &peer->window;
    if (!new_session && !sim_window_check (window, header.counter)) {
        counters->drop_replay++;
        return;
    }
    sim_seal_key_t key = identity->in_key;
    if (new_session)
        sim_seal_derive (&key, identity->shared, identity->key,
                         zcert_public_key (self->cert), header.session);
    uint8_t *body = self->buffer;
    size_t body_size = size - STATE_MSG_OVERHEAD;
    if (sim_seal_open (&key, data, size, body)) {
        counters->drop_forged++;
        return;
    }
    state_msg_ack_t ack;
    int count = 0;
    if (header.kind == STATE_MSG_ACK
            ? state_msg_ack_decode (&ack, body, body_size) != 0
            : (count = state_msg_body_decode (body, body_size, self->updates,
                                              STATE_MSG_MAX_UPDATES))
                  < 0) {
        counters->drop_malformed++;
        return;
    }
    if (new_session) {
        sim_window_reset (window);
        if (former) {
            peer->former.in_session = header.session;
            peer->former.in_key = key;
        }
        else {
            peer->in_session = header.session;
            peer->in_key = key;
        }
    }
    sim_window_mark (window, header.counter);
    if (former) {
        //  The old key's last words: applied, not acknowledged (its
        //  sender has moved to a new session and credit).
        if (header.kind == STATE_MSG_STATE)
            s_apply (self, peer, (size_t) count, now_us);
        return;
    }
    peer->heard_us = now_us;
    if (size > peer->largest)
        peer->largest = size;
    if (header.kind == STATE_MSG_ACK) {
        counters->acks_received++;
        if (ack.session == self->session) {
            sim_credit_ack (peer->credit, ack.top, ack.bits, ack.window,
                            now_us);
            if (self->n_traced)
                s_trace_acked (self, peer, ack.top, ack.bits, now_us);
        }
        return;
    }
    s_apply (self, peer, (size_t) count, now_us);
    //  Credit comes back sooner than after a whole drained batch.
    if (++peer->unacked >= S_ACK_EVERY && peer->unacked >= peer->granted / 4)
        s_send_ack (self, peer, now_us);
}

bool
sim_stream_receive (sim_stream_t *self, uint64_t now_us)
{
    //  Take the poller's signal first, then drain: a datagram arriving
    //  after the DISH ran dry signals the descriptor again.
    zmq_poller_event_t event;
    zmq_poller_wait (self->poller, &event, 0);
    void *dish = zsock_resolve (self->dish);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    bool more = true;
    for (int count = 0; count < SIM_STREAM_DRAIN; count++) {
        if (zmq_msg_recv (&msg, dish, ZMQ_DONTWAIT) < 0) {
            more = false;
            break;
        }
        s_receive_one (self, (const uint8_t *) zmq_msg_data (&msg),
                       zmq_msg_size (&msg), now_us);
    }
    zmq_msg_close (&msg);
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers))
        if (peer->unacked)
            s_send_ack (self, peer, now_us);
    return more;
}

//  The datagram about to go to PEER (its counter is peer->counter) carries
//  the COUNT items packed: note the traced updates among them. The first
//  datagram carrying one is its send; one sent again (the first was lost)
//  is the datagram whose ACK completes it.
static void
s_trace_sent (sim_stream_t *self, s_peer_t *peer, size_t count, uint64_t now_us)
{
    for (unsigned at = 0; at < SIM_STREAM_TRACES; at++) {
        s_traced_t *traced = &self->traced [at];
        if (!traced->id [0] || traced->peer != peer)
            continue;
        for (size_t item = 0; item < count; item++)
            if (self->items [item].slot == traced->slot
                && self->items [item].generation == traced->generation
                && self->items [item].seq >= traced->seq) {
                if (!traced->counter) {
                    traced->until_us = now_us + 10000000u;
                    sf_trace_record (self->trace, traced->id, "update", true,
                                     peer->name, sf_time_wall_us ());
                }
                traced->counter = peer->counter;
                break;
            }
    }
}

//  PEER acknowledged counters TOP and those BITS mark below it: traced
//  datagrams among them are done; those past their time are dropped.
static void
s_trace_acked (sim_stream_t *self, s_peer_t *peer, uint64_t top, uint64_t bits,
               uint64_t now_us)
{
    for (unsigned at = 0; at < SIM_STREAM_TRACES; at++) {
        s_traced_t *traced = &self->traced [at];
        if (!traced->id [0])
            continue;
        bool acked = false;
        if (traced->peer == peer && traced->counter) {
            uint64_t counter = traced->counter;
            acked = counter == top
                    || (counter < top && top - counter <= 64
                        && (bits >> (top - 1 - counter)) & 1);
            if (acked)
                sf_trace_record (self->trace, traced->id, "ack", false,
                                 peer->name, sf_time_wall_us ());
        }
        if (acked || (traced->until_us && traced->until_us < now_us)) {
            traced->id [0] = 0;
            self->n_traced--;
        }
    }
}

void
sim_stream_set_trace (sim_stream_t *self, sf_trace_t *trace)
{
    self->trace = trace;
}

int
sim_stream_trace (sim_stream_t *self, const char *id,
                  const sim_entity_t *entity)
{
    if (!self->trace || zlistx_size (self->peers) == 0
        || self->n_traced + zlistx_size (self->peers) > SIM_STREAM_TRACES)
        return -1;
    uint64_t now_us = sf_time_mono_us ();
    unsigned at = 0;
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        while (self->traced [at].id [0])
            at++;
        s_traced_t *traced = &self->traced [at];
        snprintf (traced->id, sizeof traced->id, "%s", id);
        traced->peer = peer;
        traced->slot = entity->slot;
        traced->generation = entity->generation;
        traced->seq = entity->seq;
        traced->counter = 0;
        //  Not sent within 10 s (no credit, the peer gone): dropped.
        traced->until_us = now_us + 10000000u;
        self->n_traced++;
    }
    return 0;
}

//  Pack and send one STATE datagram to PEER. Returns false when nothing
//  was left to send.
static bool
s_send_state (sim_stream_t *self, s_peer_t *peer, uint64_t now_us)
{
    uint8_t *body = self->buffer + STATE_MSG_HEADER;
    size_t capacity = self->datagram_size - STATE_MSG_OVERHEAD, used = 0;
    size_t count = 0;
    uint32_t slot, generation;
    while (count < self->items_capacity
           && sim_credit_take (peer->credit, &slot, &generation)) {
        sim_entity_t *entity = sim_store_slot (self->store, slot, generation);
        if (!entity || !entity->authority || entity->foreign)
            continue;  //  deleted, no longer ours, or another instance's
        //  Our grant of this epoch goes first until the peer acknowledged
        //  it (grants.md section 5). Without one, once the ring signs
        //  grants, the entity waits for it (sim_stream_changed then).
        bool has_grant = entity->grant && entity->grant_epoch == entity->epoch;
        if (!has_grant && self->grant_keys.enforced)
            continue;
        bool with_grant = has_grant
                          && sim_credit_grant_due (peer->credit, slot,
                                                   generation, entity->epoch);
        state_msg_update_t update = {entity->path,
                                     entity->path_size,
                                     entity->epoch,
                                     entity->seq,
                                     entity->state,
                                     entity->state_size,
                                     with_grant ? entity->grant : NULL,
                                     with_grant ? entity->grant_size : 0};
        if (state_msg_update_put (&update, body, capacity, &used)) {
            sim_credit_untake (peer->credit, slot, generation);
            break;
        }
        self->counters.grants_sent += with_grant;
        self->items [count++] = (sim_credit_item_t){
            slot, generation, entity->epoch, entity->seq, with_grant};
    }
    if (count == 0)
        return false;
    s_header (self, peer, STATE_MSG_STATE);
    if (self->n_traced)
        s_trace_sent (self, peer, count, now_us);
    s_send (self, peer, used);  //  a failed send times out like a loss
    self->counters.updates_sent += count;
    sim_credit_sent (peer->credit, peer->counter, now_us, self->items, count);
    return true;
}

void
sim_stream_flush (sim_stream_t *self, uint64_t now_us)
{
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        if (!self->session || !peer->radio)
            continue;
        sim_credit_expire (peer->credit, now_us);
        if (peer->in_session && now_us - peer->acked_us >= S_ACK_REFRESH_US
            && now_us - peer->heard_us < S_HEARD_RECENTLY_US)
            s_send_ack (self, peer, now_us);
        while (sim_credit_open (peer->credit)
               && s_send_state (self, peer, now_us))
            ;
    }
}

json_t *
sim_stream_counters (sim_stream_t *self)
{
    json_t *counters = json_object ();
#define S_JSON(name)                      \
    json_object_set_new (counters, #name, \
                         json_integer ((json_int_t) self->counters.name));
    S_COUNTERS (S_JSON)
    //  The ring keys grants are checked with (0: not checked yet)
    json_object_set_new (counters, "ring_keys",
                         json_integer ((json_int_t) self->grant_keys.count));
    //  Flow control, summed over peers
    sim_credit_stats_t sum = {0}, stats;
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        sim_credit_stats (peer->credit, &stats);
        sum.lost += stats.lost;
        sum.requeued += stats.requeued;
        sum.coalesced += stats.coalesced;
        sum.credit_stalls += stats.credit_stalls;
        sum.dirty += stats.dirty;
        sum.in_flight += stats.in_flight;
    }
    json_object_set_new (counters, "datagrams_lost",
                         json_integer ((json_int_t) sum.lost));
    json_object_set_new (counters, "updates_requeued",
                         json_integer ((json_int_t) sum.requeued));
    json_object_set_new (counters, "updates_coalesced",
                         json_integer ((json_int_t) sum.coalesced));
    json_object_set_new (counters, "credit_stalls",
                         json_integer ((json_int_t) sum.credit_stalls));
    json_object_set_new (counters, "entities_due",
                         json_integer ((json_int_t) sum.dirty));
    json_object_set_new (counters, "datagrams_in_flight",
                         json_integer ((json_int_t) sum.in_flight));
    json_object_set_new (counters, "receive_buffer",
                         json_integer ((json_int_t) self->buffer_budget));
    return counters;
}

json_t *
sim_stream_peers (sim_stream_t *self)
{
    json_t *peers = json_array ();
    for (s_peer_t *peer = (s_peer_t *) zlistx_first (self->peers); peer;
         peer = (s_peer_t *) zlistx_next (self->peers)) {
        sim_credit_stats_t stats;
        sim_credit_stats (peer->credit, &stats);
        json_array_append_new (
            peers,
            json_pack (
                "{s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                "sim", peer->name, "key", peer->key_text, "state",
                peer->endpoint ? json_string (peer->endpoint) : json_null (),
                "registered_ms", (json_int_t) peer->registered_ms, "session_in",
                (json_int_t) peer->in_session, "window",
                (json_int_t) stats.window, "granted",
                (json_int_t) stats.granted, "grants",
                (json_int_t) peer->granted, "in_flight",
                (json_int_t) stats.in_flight, "due", (json_int_t) stats.dirty,
                "srtt_us", (json_int_t) stats.srtt_us, "lost",
                (json_int_t) stats.lost, "credit_stalls",
                (json_int_t) stats.credit_stalls, "sent",
                (json_int_t) stats.sent));
    }
    return peers;
}
