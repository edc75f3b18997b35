/*  sf_curve: CurveZMQ plumbing shared by the daemons and fabricctl. */

#include "common/sf_curve.h"
#include "common/sf_zap.h"

#include <assert.h>
#include <stdio.h>
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

zsock_t *
sf_curve_watch_events (zsock_t *socket, int events)
{
    //  Each monitor needs an endpoint of its own, and a closed socket's is
    //  released only later, by libzmq's reaper: never reuse a name.
    static _Atomic unsigned s_watches;
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://sf-curve-watch-%u",
              s_watches++);
    if (zmq_socket_monitor (zsock_resolve (socket), endpoint, events))
        return NULL;
    //  A receive mark of 0 here leaves the inproc pipe from the monitor
    //  unbounded (libzmq sums the two ends' marks only when neither is 0),
    //  so the I/O thread's blocking send always finds room.
    zsock_t *watch = zsock_new (ZMQ_PAIR);
    if (watch) {
        zsock_set_rcvhwm (watch, 0);
        if (zsock_connect (watch, "%s", endpoint))
            zsock_destroy (&watch);
    }
    if (!watch)
        zmq_socket_monitor (zsock_resolve (socket), NULL, 0);
    return watch;
}

zsock_t *
sf_curve_watch (zsock_t *socket)
{
    return sf_curve_watch_events (socket,
                                  ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                                      | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                      | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
}

void
sf_curve_unwatch (zsock_t *socket, zsock_t **watch_p)
{
    //  Under the socket's monitor lock: no event is being sent once this
    //  returns, and none is sent after, so the reader may go.
    if (*watch_p && socket)
        zmq_socket_monitor (zsock_resolve (socket), NULL, 0);
    zsock_destroy (watch_p);
}

bool
sf_curve_refused (zsock_t *watch)
{
    bool refused = false;
    while (zsock_events (watch) & ZMQ_POLLIN) {
        zmsg_t *event = zmsg_recv (watch);
        zmsg_destroy (&event);
        refused = true;
    }
    return refused;
}

uint64_t
sf_curve_redial_at (zsock_t *watch, uint64_t dialled_ms)
{
    return sf_curve_refused (watch) ? dialled_ms + SF_CURVE_REDIAL_MS : 0;
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

//  Send one message from CLIENT and read it on SERVER, within a bound
//  far above any scheduling delay: proof that the I/O thread still runs.
static void
s_test_ping (zsock_t *client, zsock_t *server)
{
    zstr_send (client, "ping");
    zpoller_t *poller = zpoller_new (server, NULL);
    void *ready = zpoller_wait (poller, 20000);
    assert (ready == server);
    zmsg_t *msg = zmsg_recv (server);
    assert (msg && zmsg_size (msg) == 2);
    zmsg_destroy (&msg);
    zpoller_destroy (&poller);
}

int
sf_curve_test (bool verbose)
{
    int rc;
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
    rc = zsock_connect (client, "%s", endpoint);
    assert (rc == 0);
    zstr_send (client, "hello");

    zframe_t *routing_id, *body;
    char *principal;
    bool delimited;
    rc = sf_curve_recv (server, &routing_id, &body, &principal, &delimited);
    assert (rc == 0);
    assert (!delimited);
    assert (zframe_streq (body, "hello"));
    //  The principal is the client's public key, proven by the handshake.
    assert (principal);
    assert (strcmp (principal, zcert_public_txt (client_cert)) == 0);
    rc = sf_curve_send (server, routing_id, false, "world", 5);
    assert (rc == 0);
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
    //  Watched before it connects: a handshake can fail before the next
    //  line of this thread runs, and an event before the watch is lost.
    zsock_t *watch = sf_curve_watch (intruder);
    assert (watch);
    rc = zsock_connect (intruder, "%s", endpoint);
    assert (rc == 0);
    zstr_send (intruder, "sneak");
    zpoller_t *poller = zpoller_new (server, NULL);
    void *ready = zpoller_wait (poller, 300);
    assert (ready == NULL);
    //  ... and says so through its watch (again at each redial).
    int64_t give_up = zclock_mono () + 30000;
    while (!sf_curve_refused (watch)) {
        assert (zclock_mono () < give_up);
        zclock_sleep (10);
    }
    sf_curve_unwatch (intruder, &watch);
    zsock_destroy (&intruder);

    //  A watch left unread, and one ended while its socket still redials,
    //  stall nothing: libzmq's I/O thread, which every socket here shares,
    //  sends each event with a blocking send. Redials every millisecond,
    //  with every kind of event watched, pass libzmq's default marks
    //  (2,000 events queued) within a second or two.
    zsock_t *noisy = zsock_new (ZMQ_DEALER);
    sf_curve_client (noisy, client_cert, zcert_public_txt (other));
    zsock_set_reconnect_ivl (noisy, 1);
    watch = sf_curve_watch_events (noisy, ZMQ_EVENT_ALL);
    assert (watch);
    rc = zsock_connect (noisy, "%s", endpoint);
    assert (rc == 0);
    size_t events = 0;
    for (int nap = 1000; events <= 2000; nap *= 2) {
        assert (nap <= 16000);
        zclock_sleep (nap);
        s_test_ping (client, server);
        for (events = 0; zsock_events (watch) & ZMQ_POLLIN; events++) {
            zmsg_t *event = zmsg_recv (watch);
            zmsg_destroy (&event);
        }
    }
    sf_curve_unwatch (noisy, &watch);
    assert (!watch);
    zclock_sleep (100);
    s_test_ping (client, server);
    zsock_destroy (&noisy);

    //  A key the ZAP handler does not admit is refused, and a new session
    //  succeeds once it is admitted: the refused one never would.
    zsock_t *picky = zsock_new (ZMQ_ROUTER);
    sf_curve_server (picky, server_cert, "picky");
    port = zsock_bind (picky, "tcp://127.0.0.1:*");
    assert (port > 0);
    zsock_t *early = zsock_new (ZMQ_DEALER);
    sf_curve_client (early, client_cert, zcert_public_txt (server_cert));
    watch = sf_curve_watch (early);
    rc = zsock_connect (early, "tcp://127.0.0.1:%d", port);
    assert (rc == 0);
    zstr_send (early, "too soon");
    //  The refusal takes a ZAP round trip on another thread: on a loaded
    //  machine that can take seconds, so wait for it, bounded only against
    //  a hang (ctest's timeout is the other bound).
    give_up = zclock_mono () + 30000;
    while (!sf_curve_refused (watch)) {
        assert (zclock_mono () < give_up);
        zclock_sleep (10);
    }
    //  A refused session is never dialled again, so it is reported once.
    zclock_sleep (300);
    bool refused = sf_curve_refused (watch);
    assert (!refused);
    sf_zap_allow (zap, "picky", zcert_public_txt (client_cert));
    zsock_t *later = zsock_new (ZMQ_DEALER);
    sf_curve_client (later, client_cert, zcert_public_txt (server_cert));
    rc = zsock_connect (later, "tcp://127.0.0.1:%d", port);
    assert (rc == 0);
    zstr_send (later, "admitted");
    rc = sf_curve_recv (picky, &routing_id, &body, &principal, &delimited);
    assert (rc == 0 && zframe_streq (body, "admitted"));
    zframe_destroy (&routing_id);
    zframe_destroy (&body);
    free (principal);
    zsock_destroy (&later);
    sf_curve_unwatch (early, &watch);
    zsock_destroy (&early);
    zsock_destroy (&picky);
    zpoller_destroy (&poller);

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
