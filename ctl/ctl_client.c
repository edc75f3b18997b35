/*  ctl_client: blocking client of the JSON API, for fabricctl. */

#include "ctl/ctl_client.h"
#include "common/sf_curve.h"
#include "common/sf_time.h"
#include "protocol/api_msg.h"

struct _ctl_client_t {
    zcert_t *cert;     //  our key pair
    zsock_t *dealer;   //  to the daemon
    zsock_t *monitor;  //  the dealer's connection events, or NULL
    char *endpoint;    //  the daemon's, for messages
    char *server_key;  //  the key we trust it with (Z85), for messages
    int64_t next_id;   //  id of the next request
    bool connected;    //  a TCP/IPC connection was made at least once
    bool handshaken;   //  a CURVE handshake completed at least once
    bool refused;      //  the daemon refused our key (ZAP)
};

//  Connection events that tell "nothing listens" from "it does not take
//  our handshake" when no reply comes.
#define CTL_CLIENT_EVENTS                                \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED \
     | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

ctl_client_t *
ctl_client_new (const char *endpoint, const char *server_key, zcert_t **cert,
                sf_fault_t *fault)
{
    ctl_client_t *self = (ctl_client_t *) zmalloc (sizeof (ctl_client_t));
    self->cert = *cert;
    *cert = NULL;
    self->next_id = 1;
    self->endpoint = strdup (endpoint);
    self->server_key = strdup (server_key);
    self->dealer = zsock_new (ZMQ_DEALER);
    zsock_set_linger (self->dealer, 0);
    sf_curve_client (self->dealer, self->cert, server_key);
    //  Without the monitor a missing reply is only "no reply"; with it,
    //  the message can say why.
    self->monitor = sf_curve_watch_events (self->dealer, CTL_CLIENT_EVENTS);
    if (zsock_connect (self->dealer, "%s", endpoint) < 0) {
        sf_fault_set (fault, SF_EINVAL, "cannot connect to %s: %s", endpoint,
                      zmq_strerror (zmq_errno ()));
        ctl_client_destroy (&self);
    }
    return self;
}

void
ctl_client_destroy (ctl_client_t **self_p)
{
    if (*self_p) {
        ctl_client_t *self = *self_p;
        sf_curve_unwatch (self->dealer, &self->monitor);
        zsock_destroy (&self->dealer);
        zcert_destroy (&self->cert);
        free (self->endpoint);
        free (self->server_key);
        free (self);
        *self_p = NULL;
    }
}

//  Take the connection events queued so far.
static void
s_read_events (ctl_client_t *self)
{
    while (self->monitor && (zsock_events (self->monitor) & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (self->monitor);
        zframe_t *head = zmsg_first (msg);
        if (head && zframe_size (head) >= 2) {
            uint16_t event;
            memcpy (&event, zframe_data (head), sizeof event);
            if (event == ZMQ_EVENT_CONNECTED)
                self->connected = true;
            else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                self->handshaken = true;
            else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                self->refused = true;
        }
        zmsg_destroy (&msg);
    }
}

//  Set FAULT to SF_ETIMEOUT, saying what the connection did in WAITED_MS.
static void
s_no_reply (ctl_client_t *self, uint64_t waited_ms, sf_fault_t *fault)
{
    s_read_events (self);
    const char *why = "the daemon did not answer in time";
    char wrong_key [192];
    if (!self->monitor)
        why = "no reply in time";
    else if (self->refused)
        why = "it refused our key (not among its clients?)";
    else if (!self->connected)
        why = "nothing is listening there";
    else if (!self->handshaken) {
        snprintf (wrong_key, sizeof wrong_key,
                  "it took the connection but not the CURVE handshake: its "
                  "key is not %s (check --server-key)",
                  self->server_key);
        why = wrong_key;
    }
    sf_fault_set (fault, SF_ETIMEOUT, "no reply from %s in %g s: %s",
                  self->endpoint, (double) waited_ms / 1000.0, why);
}

//  Wait until DEADLINE (monotonic ms) for one frame, a request sent at
//  SENT. Caller frees.
static char *
s_recv_until (ctl_client_t *self, uint64_t sent, uint64_t deadline,
              sf_fault_t *fault)
{
    uint64_t now = sf_time_mono_ms ();
    if (now >= deadline) {
        s_no_reply (self, deadline - sent, fault);
        return NULL;
    }
    zsock_set_rcvtimeo (self->dealer, (int) (deadline - now));
    zmsg_t *msg = zmsg_recv (self->dealer);
    if (!msg) {
        s_no_reply (self, deadline - sent, fault);
        return NULL;
    }
    char *text = zmsg_popstr (msg);
    zmsg_destroy (&msg);
    return text;
}

int64_t
ctl_client_send (ctl_client_t *self, const char *op, const json_t *args)
{
    int64_t id = self->next_id++;
    json_t *request = json_pack ("{s:s,s:I}", "op", op, "id", (json_int_t) id);
    if (args)
        json_object_update_missing (request, (json_t *) args);
    char *text = api_msg_encode (request);
    json_decref (request);
    zstr_send (self->dealer, text);
    free (text);
    return id;
}

json_t *
ctl_client_recv (ctl_client_t *self, int timeout_ms, sf_fault_t *fault)
{
    uint64_t now = sf_time_mono_ms ();
    char *text = s_recv_until (self, now, now + (uint64_t) timeout_ms, fault);
    if (!text)
        return NULL;
    json_t *reply = api_msg_decode_reply (text, strlen (text), fault);
    free (text);
    return reply;
}

json_t *
ctl_client_call (ctl_client_t *self, const char *op, const json_t *args,
                 int timeout_ms, sf_fault_t *fault)
{
    int64_t id = ctl_client_send (self, op, args);
    uint64_t sent = sf_time_mono_ms ();
    uint64_t deadline = sent + (uint64_t) timeout_ms;
    while (true) {
        char *reply_text = s_recv_until (self, sent, deadline, fault);
        if (!reply_text)
            return NULL;
        json_t *reply =
            api_msg_decode_reply (reply_text, strlen (reply_text), fault);
        free (reply_text);
        if (!reply)
            return NULL;
        json_t *reply_id = json_object_get (reply, "id");
        if (json_is_integer (reply_id) && json_integer_value (reply_id) == id)
            return reply;
        //  A null id means the daemon could not read our request at all.
        if (json_is_null (reply_id))
            return reply;
        json_decref (reply);  //  late reply to an earlier request
    }
}

char *
ctl_client_call_raw (ctl_client_t *self, const char *request, int timeout_ms,
                     sf_fault_t *fault)
{
    zstr_send (self->dealer, request);
    uint64_t sent = sf_time_mono_ms ();
    return s_recv_until (self, sent, sent + (uint64_t) timeout_ms, fault);
}
