/*  api_router: serves the JSON API (homeserver-api.md) on a CURVE ROUTER. */

#include "protocol/api_router.h"
#include "common/sf_curve.h"
#include "common/sf_log.h"
#include "common/sf_zap.h"

#include <assert.h>

struct _api_router_t {
    zsock_t *socket;  //  ROUTER, CURVE server
    char *endpoint;   //  as bound
};

api_router_t *
api_router_new (const char *endpoint, zcert_t *cert, sf_fault_t *fault)
{
    api_router_t *self = (api_router_t *) zmalloc (sizeof (api_router_t));
    self->socket = zsock_new (ZMQ_ROUTER);
    sf_curve_server (self->socket, cert, API_ROUTER_DOMAIN);
    if (zsock_bind (self->socket, "%s", endpoint) < 0) {
        sf_fault_set (fault, SF_EUNAVAILABLE, "cannot bind api endpoint %s: %s",
                      endpoint, zmq_strerror (zmq_errno ()));
        api_router_destroy (&self);
        return NULL;
    }
    self->endpoint = zsock_last_endpoint (self->socket);
    return self;
}

void
api_router_destroy (api_router_t **self_p)
{
    if (*self_p) {
        api_router_t *self = *self_p;
        zsock_destroy (&self->socket);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
api_router_socket (api_router_t *self)
{
    return self->socket;
}

const char *
api_router_endpoint (api_router_t *self)
{
    return self->endpoint;
}

int
api_router_handle (api_router_t *self, const api_msg_op_t *ops, void *context,
                   const char *log_name)
{
    zframe_t *routing_id, *body;
    char *principal;
    bool delimited;
    int rc = sf_curve_recv (self->socket, &routing_id, &body, &principal,
                            &delimited);
    char *reply;
    sf_error_t error = SF_EREQUEST;
    if (rc == 0)
        reply = api_msg_serve (ops, context, zframe_data (body),
                               zframe_size (body), principal, &error);
    else {
        json_t *refusal = api_msg_reply_error (
            NULL, SF_EREQUEST, "a request must be exactly one frame");
        reply = api_msg_encode (refusal);
        json_decref (refusal);
    }
    if (routing_id)
        sf_curve_send (self->socket, routing_id, delimited, reply,
                       strlen (reply));
    if (error != SF_OK)
        sf_log_info ("%s: refused request from %.8s: %s", log_name,
                     principal ? principal : "?", reply);
    free (reply);
    free (principal);
    zframe_destroy (&body);
    zframe_destroy (&routing_id);
    return 0;
}

//  --------------------------------------------------------------------------
//  Self test

static int
s_test_whoami (void *context, const api_msg_t *request, const char *principal,
               json_t *reply, sf_fault_t *fault)
{
    (void) context, (void) request, (void) fault;
    json_object_set_new (reply, "principal", json_string (principal));
    return 0;
}

static const api_msg_op_t s_test_ops [] = {
    {"whoami", s_test_whoami},
    {NULL, NULL},
};

int
api_router_test (bool verbose)
{
    if (verbose)
        printf (" * api_router: ");
    zactor_t *zap = sf_zap_new ();
    sf_zap_allow_any (zap, API_ROUTER_DOMAIN);
    zcert_t *server_cert = zcert_new ();
    const char *server_key = zcert_public_txt (server_cert);
    sf_fault_t fault;
    assert (!api_router_new ("tcp://256.0.0.1:1", server_cert, &fault));
    assert (strstr (fault.message, "cannot bind api endpoint"));

    api_router_t *router =
        api_router_new ("tcp://127.0.0.1:*", server_cert, &fault);
    assert (router);
    zcert_t *client_cert = zcert_new ();
    zsock_t *client = zsock_new (ZMQ_DEALER);
    sf_curve_client (client, client_cert, server_key);
    assert (zsock_connect (client, "%s", api_router_endpoint (router)) == 0);

    //  A REQ-style delimiter comes back; the principal is the client key.
    zstr_sendx (client, "", "{\"op\":\"whoami\",\"id\":1}", NULL);
    api_router_handle (router, s_test_ops, NULL, "test");
    char *empty, *reply;
    assert (zstr_recvx (client, &empty, &reply, NULL) == 2);
    assert (streq (empty, ""));
    char *expect = zsys_sprintf ("{\"id\":1,\"ok\":true,\"principal\":\"%s\"}",
                                 zcert_public_txt (client_cert));
    if (!streq (reply, expect))
        fprintf (stderr, "api_router: got %s\n", reply);
    assert (streq (reply, expect));
    zstr_free (&empty);
    zstr_free (&reply);
    zstr_free (&expect);

    //  Extra frames get invalid_request with a null id.
    zstr_sendx (client, "{}", "{}", NULL);
    api_router_handle (router, s_test_ops, NULL, "test");
    reply = zstr_recv (client);
    assert (strstr (reply, "\"code\":\"invalid_request\""));
    assert (strstr (reply, "\"id\":null"));
    zstr_free (&reply);

    zsock_destroy (&client);
    zcert_destroy (&client_cert);
    api_router_destroy (&router);
    api_router_destroy (&router);
    zcert_destroy (&server_cert);
    zactor_destroy (&zap);
    if (verbose)
        printf ("OK\n");
    return 0;
}
