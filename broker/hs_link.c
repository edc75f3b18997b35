/*  hs_link: the Raft transport between ring members (raft-wire.md). */

#include "broker/hs_link.h"
#include "common/sf_curve.h"
#include "common/sf_log.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"

#include <assert.h>

//  One peer we send to.
typedef struct {
    raft_id id;
    char *address;        //  its raft endpoint
    char *key;            //  its public key, Z85
    zsock_t *dealer;      //  connected to address, pinned to key
    zsock_t *refusals;    //  the DEALER's failed handshakes (a monitor)
    uint64_t redial_at;   //  when a refused DEALER may be replaced
    uint64_t dialled_at;  //  when the DEALER was made
} s_peer_t;

struct _hs_link_t {
    raft_id id;       //  our raft id
    char *endpoint;   //  as bound
    zcert_t *cert;    //  lent: our key pair
    zactor_t *zap;    //  lent: the process's ZAP handler
    zsock_t *router;  //  receives from every peer
    zhashx_t *peers;  //  s_peer_t by id
    hs_link_counters_t counters;
};

static void s_disconnect (s_peer_t *peer);

static void
s_peer_destroy (void **item)
{
    s_peer_t *peer = (s_peer_t *) *item;
    if (peer) {
        s_disconnect (peer);
        free (peer->address);
        free (peer->key);
        free (peer);
        *item = NULL;
    }
}

//  Ids as hash keys: the table hashes and compares them as integers.
static size_t
s_id_hash (const void *key)
{
    return (size_t) (*(const raft_id *) key * 0x9e3779b97f4a7c15ull);
}

static int
s_id_compare (const void *left, const void *right)
{
    raft_id a = *(const raft_id *) left, b = *(const raft_id *) right;
    return a < b ? -1 : a > b;
}

hs_link_t *
hs_link_new (raft_id id, zcert_t *cert, zactor_t *zap)
{
    hs_link_t *self = (hs_link_t *) zmalloc (sizeof (hs_link_t));
    self->id = id;
    self->cert = cert;
    self->zap = zap;
    self->peers = zhashx_new ();
    zhashx_set_key_hasher (self->peers, s_id_hash);
    zhashx_set_key_comparator (self->peers, s_id_compare);
    zhashx_set_key_duplicator (self->peers, NULL);
    zhashx_set_key_destructor (self->peers, NULL);
    zhashx_set_destructor (self->peers, s_peer_destroy);
    self->router = zsock_new (ZMQ_ROUTER);
    zsock_set_maxmsgsize (self->router, (int64_t) RAFT_MSG_MAX_SIZE);
    sf_curve_server (self->router, cert, HS_LINK_DOMAIN);
    return self;
}

int
hs_link_bind (hs_link_t *self, const char *endpoint, sf_fault_t *fault)
{
    if (zsock_bind (self->router, "%s", endpoint) < 0)
        return sf_fault_set (fault, SF_EUNAVAILABLE,
                             "cannot bind raft endpoint %s: %s", endpoint,
                             zmq_strerror (zmq_errno ()));
    free (self->endpoint);
    self->endpoint = zsock_last_endpoint (self->router);
    return 0;
}

void
hs_link_destroy (hs_link_t **self_p)
{
    if (*self_p) {
        hs_link_t *self = *self_p;
        zhashx_destroy (&self->peers);
        zsock_destroy (&self->router);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

//  True if a peer other than ID has KEY.
static bool
s_key_shared (hs_link_t *self, raft_id id, const char *key)
{
    for (s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers); peer;
         peer = (s_peer_t *) zhashx_next (self->peers))
        if (peer->id != id && streq (peer->key, key))
            return true;
    return false;
}

static void s_connect (hs_link_t *self, s_peer_t *peer);

void
hs_link_add_peer (hs_link_t *self, raft_id id, const char *address,
                  const char *key)
{
    s_peer_t *peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
    peer->id = id;
    peer->address = strdup (address);
    peer->key = strdup (key);
    s_peer_t *known = (s_peer_t *) zhashx_lookup (self->peers, &id);
    if (known && !streq (known->key, key)
        && !s_key_shared (self, id, known->key))
        sf_zap_revoke (self->zap, HS_LINK_DOMAIN, known->key);
    sf_zap_allow (self->zap, HS_LINK_DOMAIN, key);
    //  Delete first: the table keeps the key pointer of the first insert.
    zhashx_delete (self->peers, &id);
    zhashx_insert (self->peers, &peer->id, peer);
    //  Connect now: a message sent before the session is up is dropped, and
    //  a candidate's first votes must not be.
    s_connect (self, peer);
}

void
hs_link_remove_peer (hs_link_t *self, raft_id id)
{
    s_peer_t *peer = (s_peer_t *) zhashx_lookup (self->peers, &id);
    if (!peer)
        return;
    if (!s_key_shared (self, id, peer->key))
        sf_zap_revoke (self->zap, HS_LINK_DOMAIN, peer->key);
    zhashx_delete (self->peers, &id);
}

bool
hs_link_knows (hs_link_t *self, raft_id id)
{
    return zhashx_lookup (self->peers, &id) != NULL;
}

zsock_t *
hs_link_socket (hs_link_t *self)
{
    return self->router;
}

const char *
hs_link_endpoint (hs_link_t *self)
{
    return self->endpoint;
}

//  Make PEER's DEALER and connect it.
static void
s_connect (hs_link_t *self, s_peer_t *peer)
{
    peer->dealer = zsock_new (ZMQ_DEALER);
    peer->dialled_at = sf_time_mono_ms ();
    //  Nothing waits for a peer that is not connected: Raft retries by its
    //  own timers, and a stale queue delivered on reconnection would only
    //  replay old terms. The mark bounds what a slow peer is owed.
    zsock_set_immediate (peer->dealer, 1);
    zsock_set_sndhwm (peer->dealer, 1000);
    zsock_set_linger (peer->dealer, 0);
    sf_curve_client (peer->dealer, self->cert, peer->key);
    peer->refusals = sf_curve_watch (peer->dealer);
    assert (peer->refusals);
    zsock_connect (peer->dealer, "%s", peer->address);
}

static void
s_disconnect (s_peer_t *peer)
{
    sf_curve_unwatch (peer->dealer, &peer->refusals);
    zsock_destroy (&peer->dealer);
    peer->redial_at = 0;
}

void
hs_link_check (hs_link_t *self, uint64_t now)
{
    for (s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers); peer;
         peer = (s_peer_t *) zhashx_next (self->peers)) {
        if (!peer->redial_at) {
            peer->redial_at =
                sf_curve_redial_at (peer->refusals, peer->dialled_at);
            if (peer->redial_at) {
                self->counters.refused++;
                sf_log_info ("hs_link: raft peer %llu refused our handshake; "
                             "dialling again",
                             (unsigned long long) peer->id);
            }
        }
        if (peer->redial_at && now >= peer->redial_at) {
            s_disconnect (peer);
            s_connect (self, peer);
        }
    }
}

//  Send the SIZE bytes encoded in BUFFER to PEER (NULL: unknown), or drop
//  them (SIZE 0: the encoder refused), and count which.
static void
s_send_encoded (hs_link_t *self, s_peer_t *peer, const uint8_t *buffer,
                size_t size)
{
    if (peer && size > 0
        && zmq_send (zsock_resolve (peer->dealer), buffer, size, ZMQ_DONTWAIT)
               >= 0)
        self->counters.sent++;
    else
        self->counters.send_dropped++;
}

void
hs_link_send_probe (hs_link_t *self, raft_id to, int type, raft_term term,
                    uint64_t seq)
{
    uint8_t buffer [RAFT_MSG_PROBE_SIZE + RAFT_MSG_MAX_ADDRESS];
    size_t size = raft_msg_encode_probe (type, self->id, self->endpoint, term,
                                         seq, buffer, sizeof buffer);
    s_send_encoded (self, (s_peer_t *) zhashx_lookup (self->peers, &to), buffer,
                    size);
}

void
hs_link_send_members (hs_link_t *self, raft_id to, int type,
                      const raft_msg_member_t *members, unsigned n)
{
    uint8_t *buffer = (uint8_t *) malloc (RAFT_MSG_MEMBERS_MAX_SIZE);
    assert (buffer);
    size_t size =
        raft_msg_encode_members (type, self->id, self->endpoint, members, n,
                                 buffer, RAFT_MSG_MEMBERS_MAX_SIZE);
    s_send_encoded (self, (s_peer_t *) zhashx_lookup (self->peers, &to), buffer,
                    size);
    free (buffer);
}

void
hs_link_send_digest (hs_link_t *self, raft_id to, raft_index index,
                     const uint8_t *digest)
{
    uint8_t buffer [RAFT_MSG_DIGEST_SIZE + RAFT_MSG_MAX_ADDRESS];
    size_t size = raft_msg_encode_digest (self->id, self->endpoint, index,
                                          digest, buffer, sizeof buffer);
    s_send_encoded (self, (s_peer_t *) zhashx_lookup (self->peers, &to), buffer,
                    size);
}

unsigned
hs_link_peer_ids (hs_link_t *self, raft_id *ids, unsigned max)
{
    unsigned count = 0;
    for (s_peer_t *peer = (s_peer_t *) zhashx_first (self->peers);
         peer && count < max; peer = (s_peer_t *) zhashx_next (self->peers))
        ids [count++] = peer->id;
    return count;
}

void
hs_link_send (hs_link_t *self, const struct raft_message *message)
{
    s_peer_t *peer =
        (s_peer_t *) zhashx_lookup (self->peers, &message->server_id);
    size_t size = raft_msg_size (message, self->endpoint);
    if (!peer || size == 0) {
        self->counters.send_dropped++;
        return;
    }
    zframe_t *frame = zframe_new (NULL, size);
    if (raft_msg_encode (message, self->id, self->endpoint, zframe_data (frame),
                         size)
        || zframe_send (&frame, peer->dealer, ZFRAME_DONTWAIT)) {
        zframe_destroy (&frame);
        self->counters.send_dropped++;
        return;
    }
    self->counters.sent++;
}

int
hs_link_recv (hs_link_t *self, raft_msg_t *msg)
{
    zmsg_t *frames = zmsg_recv (self->router);
    if (!frames)
        return -1;
    zframe_t *routing_id = zmsg_pop (frames);
    zframe_t *body = zmsg_pop (frames);
    int rc = -1;
    if (!body || zmsg_size (frames) != 0
        || raft_msg_decode (msg, zframe_data (body), zframe_size (body)))
        self->counters.malformed++;
    else {
        //  The id in the frame must be the one whose key opened the session.
        const char *principal = zframe_meta (body, "User-Id");
        s_peer_t *peer =
            (s_peer_t *) zhashx_lookup (self->peers, &msg->message.server_id);
        if (!peer || !principal || strcmp (principal, peer->key) != 0) {
            self->counters.impostor++;
            raft_msg_release (msg);
        }
        else {
            self->counters.received++;
            rc = 0;
        }
    }
    zframe_destroy (&routing_id);
    zframe_destroy (&body);
    zmsg_destroy (&frames);
    return rc;
}

const hs_link_counters_t *
hs_link_counters (hs_link_t *self)
{
    return &self->counters;
}
