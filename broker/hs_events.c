/*  hs_events: publishes every applied change. */

#include "broker/hs_events.h"
#include "common/sf_curve.h"
#include "common/sf_json.h"
#include "protocol/api_router.h"

struct _hs_events_t {
    zsock_t *pub;        //  XPUB, CURVE server
    char *endpoint;      //  as bound
    char *node;          //  this member's name
    size_t topics;       //  topics some subscriber asked for
    uint64_t published;  //  events sent since start
};

hs_events_t *
hs_events_new (const char *endpoint, zcert_t *cert, const char *node,
               sf_fault_t *fault)
{
    hs_events_t *self = (hs_events_t *) zmalloc (sizeof (hs_events_t));
    self->node = strdup (node);
    //  XPUB, not PUB, to learn whether anyone listens: a member nobody
    //  follows publishes nothing, and its grants need no signature.
    self->pub = zsock_new (ZMQ_XPUB);
    //  A slow subscriber loses events (and sees the gap) rather than
    //  growing our memory.
    zsock_set_sndhwm (self->pub, 100000);
    sf_curve_server (self->pub, cert, API_ROUTER_DOMAIN);
    if (zsock_bind (self->pub, "%s", endpoint) < 0) {
        sf_fault_set (fault, SF_EUNAVAILABLE,
                      "cannot bind events endpoint %s: %s", endpoint,
                      zmq_strerror (zmq_errno ()));
        hs_events_destroy (&self);
        return NULL;
    }
    self->endpoint = zsock_last_endpoint (self->pub);
    return self;
}

void
hs_events_destroy (hs_events_t **self_p)
{
    if (*self_p) {
        zsock_destroy (&(*self_p)->pub);
        free ((*self_p)->endpoint);
        free ((*self_p)->node);
        free (*self_p);
        *self_p = NULL;
    }
}

const char *
hs_events_endpoint (hs_events_t *self)
{
    return self->endpoint;
}

bool
hs_events_wanted (hs_events_t *self)
{
    //  libzmq passes only a topic's first subscription and its last
    //  unsubscription (a subscriber's going away included), one frame
    //  each: 1 or 0, then the topic. So counting them counts the topics,
    //  whatever bytes the topics hold. Anything else a client sends is
    //  dropped here.
    while (zsock_events (self->pub) & ZMQ_POLLIN) {
        zframe_t *frame = zframe_recv (self->pub);
        const uint8_t *data = frame ? zframe_data (frame) : NULL;
        if (frame && zframe_size (frame) >= 1) {
            if (data [0] == 1)
                self->topics++;
            else if (data [0] == 0 && self->topics > 0)
                self->topics--;
        }
        zframe_destroy (&frame);
    }
    return self->topics > 0;
}

uint64_t
hs_events_published (hs_events_t *self)
{
    return self->published;
}

char *
hs_events_topic (const char *op, const json_t *result)
{
    //  The topic says what changed, so subscribers filter by prefix.
    const char *path = json_string_value (json_object_get (result, "path"));
    const char *sim = json_string_value (json_object_get (result, "sim"));
    const char *player = json_string_value (json_object_get (result, "player"));
    //  A balancer's move names its sims and group, so the sims in neither
    //  side that watch nothing of the group skip it unparsed.
    const char *from = json_string_value (json_object_get (result, "from"));
    const char *to = json_string_value (json_object_get (result, "to"));
    const char *group = json_string_value (json_object_get (result, "group"));
    bool move = streq (op, "balance.move") && from && to && group;
    return path     ? zsys_sprintf ("entity:%s", path)
           : move   ? zsys_sprintf ("ring:move/%s/%s%s", from, to, group)
           : sim    ? zsys_sprintf ("sim:%s", sim)
           : player ? zsys_sprintf ("player:%s", player)
                    : zsys_sprintf ("ring:");
}

json_t *
hs_events_body (raft_index index, raft_index prev, const char *op,
                const json_t *result, const char *node)
{
    return json_pack ("{s:I,s:I,s:s,s:O,s:s}", "index", (json_int_t) index,
                      "prev", (json_int_t) prev, "op", op, "result", result,
                      "node", node);
}

void
hs_events_publish (hs_events_t *self, raft_index index, raft_index prev,
                   const char *op, const json_t *result)
{
    char *topic = hs_events_topic (op, result);
    json_t *event = hs_events_body (index, prev, op, result, self->node);
    char *text = sf_json_text (event);
    zstr_sendx (self->pub, topic, text, NULL);
    self->published++;
    free (text);
    json_decref (event);
    free (topic);
}
