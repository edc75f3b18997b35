/*  ctl_client: blocking client of the JSON API, for fabricctl. */

#include "ctl/ctl_client.h"
#include "common/sf_curve.h"
#include "common/sf_time.h"
#include "protocol/api_msg.h"

struct _ctl_client_t {
    zcert_t *cert;    //  our key pair
    zsock_t *dealer;  //  to the daemon
    int64_t next_id;  //  id of the next request
};

ctl_client_t *
ctl_client_new (const char *endpoint, const char *server_key, zcert_t **cert,
                sf_fault_t *fault)
{
    ctl_client_t *self = (ctl_client_t *) zmalloc (sizeof (ctl_client_t));
    self->cert = *cert;
    *cert = NULL;
    self->next_id = 1;
    self->dealer = zsock_new (ZMQ_DEALER);
    zsock_set_linger (self->dealer, 0);
    sf_curve_client (self->dealer, self->cert, server_key);
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
        zsock_destroy (&self->dealer);
        zcert_destroy (&self->cert);
        free (self);
        *self_p = NULL;
    }
}

//  Wait until DEADLINE (monotonic ms) for one frame. Caller frees.
static char *
s_recv_until (ctl_client_t *self, uint64_t deadline, sf_fault_t *fault)
{
    uint64_t now = sf_time_mono_ms ();
    if (now >= deadline) {
        sf_fault_set (fault, SF_ETIMEOUT, "no reply in time");
        return NULL;
    }
    zsock_set_rcvtimeo (self->dealer, (int) (deadline - now));
    zmsg_t *msg = zmsg_recv (self->dealer);
    if (!msg) {
        sf_fault_set (fault, SF_ETIMEOUT, "no reply in time");
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
    char *text =
        s_recv_until (self, sf_time_mono_ms () + (uint64_t) timeout_ms, fault);
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
    uint64_t deadline = sf_time_mono_ms () + (uint64_t) timeout_ms;
    while (true) {
        char *reply_text = s_recv_until (self, deadline, fault);
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
    return s_recv_until (self, sf_time_mono_ms () + (uint64_t) timeout_ms,
                         fault);
}
