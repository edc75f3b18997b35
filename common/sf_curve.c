/*  sf_curve: CurveZMQ plumbing shared by the daemons and fabricctl. */

#include "common/sf_curve.h"
#include "common/sf_zap.h"

#include <assert.h>
#include <string.h>

void
sf_curve_server (zsock_t *socket, zcert_t *cert, const char *domain)
{
    zcert_apply (cert, socket);
    zsock_set_curve_server (socket, 1);
    zsock_set_zap_domain (socket, domain);
}

void
sf_curve_client (zsock_t *socket, zcert_t *cert, const char *server_key)
{
    zcert_apply (cert, socket);
    zsock_set_curve_serverkey (socket, server_key);
}

int
sf_curve_recv (zsock_t *router, zframe_t **routing_id, zframe_t **body,
               char **principal, bool *delimited)
{
    *routing_id = NULL;
    *body = NULL;
    *principal = NULL;
    *delimited = false;
    zmsg_t *msg = zmsg_recv (router);
    if (!msg)
        return -1;
    *routing_id = zmsg_pop (msg);
    zframe_t *frame = zmsg_pop (msg);
    if (frame && zframe_size (frame) == 0 && zmsg_size (msg) > 0) {
        zframe_destroy (&frame);
        frame = zmsg_pop (msg);
        *delimited = true;
    }
    *body = frame;
    int rc = (*routing_id && frame && zmsg_size (msg) == 0) ? 0 : -1;
    if (frame) {
        const char *user = zframe_meta (frame, "User-Id");
        if (user)
            *principal = strdup (user);
    }
    zmsg_destroy (&msg);
    return rc;
}

int
sf_curve_send (zsock_t *router, zframe_t *routing_id, bool delimited,
               const void *body, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zframe_t *copy = zframe_dup (routing_id);
    zmsg_append (msg, &copy);
    if (delimited)
        zmsg_addmem (msg, NULL, 0);
    zmsg_addmem (msg, body, size);
    return zmsg_send (&msg, router);
}

int
sf_curve_test (bool verbose)
{
    if (verbose)
        printf (" * sf_curve: ");
    zactor_t *zap = sf_zap_new ();
    assert (zap);
    sf_zap_allow_any (zap, "test");

    zcert_t *server_cert = zcert_new ();
    zcert_t *client_cert = zcert_new ();
    zsock_t *server = zsock_new (ZMQ_ROUTER);
    sf_curve_server (server, server_cert, "test");
    int port = zsock_bind (server, "tcp://127.0.0.1:*");
    assert (port > 0);
    char *endpoint = zsys_sprintf ("tcp://127.0.0.1:%d", port);

    zsock_t *client = zsock_new (ZMQ_DEALER);
    sf_curve_client (client, client_cert, zcert_public_txt (server_cert));
    assert (zsock_connect (client, "%s", endpoint) == 0);
    zstr_send (client, "hello");

    zframe_t *routing_id, *body;
    char *principal;
    bool delimited;
    int rc = sf_curve_recv (server, &routing_id, &body, &principal, &delimited);
    assert (rc == 0);
    assert (!delimited);
    assert (zframe_streq (body, "hello"));
    //  The principal is the client's public key, proven by the handshake.
    assert (principal);
    assert (strcmp (principal, zcert_public_txt (client_cert)) == 0);
    assert (sf_curve_send (server, routing_id, false, "world", 5) == 0);
    char *reply = zstr_recv (client);
    assert (reply && strcmp (reply, "world") == 0);
    free (reply);
    zframe_destroy (&routing_id);
    zframe_destroy (&body);
    free (principal);

    //  Extra frames are reported, with the parts still handed back.
    zstr_sendx (client, "one", "two", NULL);
    rc = sf_curve_recv (server, &routing_id, &body, &principal, &delimited);
    assert (rc == -1);
    assert (routing_id && body);
    zframe_destroy (&routing_id);
    zframe_destroy (&body);
    free (principal);

    //  A client that pins the wrong server key never gets a session.
    zcert_t *other = zcert_new ();
    zsock_t *intruder = zsock_new (ZMQ_DEALER);
    sf_curve_client (intruder, client_cert, zcert_public_txt (other));
    assert (zsock_connect (intruder, "%s", endpoint) == 0);
    zstr_send (intruder, "sneak");
    zpoller_t *poller = zpoller_new (server, NULL);
    assert (zpoller_wait (poller, 300) == NULL);
    zpoller_destroy (&poller);

    zsock_destroy (&intruder);
    zsock_destroy (&client);
    zsock_destroy (&server);
    zcert_destroy (&other);
    zcert_destroy (&client_cert);
    zcert_destroy (&server_cert);
    free (endpoint);
    zactor_destroy (&zap);
    if (verbose)
        printf ("OK\n");
    return 0;
}
