/*  sf_curve: CurveZMQ plumbing shared by the daemons and fabricctl.

    Servers apply their certificate and name a ZAP domain (sf_zap decides
    who is admitted); clients pin the server's public key. A request read from a
    CURVE ROUTER carries its principal: the client's public key, as
    ZAP's User-Id. */

#ifndef SF_CURVE_H_INCLUDED
#define SF_CURVE_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>

//  Make SOCKET a CURVE server with CERT (lent), its clients checked by the
//  ZAP handler's policy for DOMAIN (see sf_zap).
void sf_curve_server (zsock_t *socket, zcert_t *cert, const char *domain);

//  Make SOCKET a CURVE client with CERT (lent), trusting only SERVER_KEY
//  (Z85 text).
void sf_curve_client (zsock_t *socket, zcert_t *cert, const char *server_key);

//  Watch SOCKET's connection EVENTS (ZMQ_EVENT_* bits). Returns a new
//  monitor socket to read them from, or NULL; end it with sf_curve_unwatch,
//  never with zsock_destroy. libzmq's I/O thread sends each event with a
//  blocking send, so an event for a watch already closed, or one its owner
//  stopped reading, would stall every socket of the process: the watch
//  queues without limit, and sf_curve_unwatch stops the events first.
zsock_t *sf_curve_watch_events (zsock_t *socket, int events);

//  Watch client SOCKET's failed handshakes. libzmq never redials a session
//  refused by the server's ZAP handler (the server did not know our key
//  yet), and a session that pins a key that is not the server's fails
//  every redial, so the owner must replace SOCKET. Returns a new watch as
//  sf_curve_watch_events does.
zsock_t *sf_curve_watch (zsock_t *socket);

//  Stop SOCKET's events and destroy *WATCH_P (NULL is fine); call it
//  before SOCKET is destroyed.
void sf_curve_unwatch (zsock_t *socket, zsock_t **watch_p);

//  True if a handshake of the socket WATCH watches has failed since the
//  last call. Cheap enough to ask before each send, though not free.
bool sf_curve_refused (zsock_t *watch);

//  A client is replaced no sooner than this after it was dialled, so a
//  server that refuses it for good is not dialled without pause.
#define SF_CURVE_REDIAL_MS 500

//  When to replace the client WATCH watches, dialled at DIALLED_MS: 0 while
//  no handshake has failed, else SF_CURVE_REDIAL_MS after the dial.
uint64_t sf_curve_redial_at (zsock_t *watch, uint64_t dialled_ms);

//  Receive one request from ROUTER: its routing id, its body frame, and
//  the principal that sent it (Z85 public key). Returns 0; or -1 if the
//  message was not one routing id plus one body (an optional empty
//  delimiter, as REQ sends, is accepted), in which case whatever could be
//  read is still returned so the caller can reply. Caller destroys frames
//  and frees the principal.
int sf_curve_recv (zsock_t *router, zframe_t **routing_id, zframe_t **body,
                   char **principal, bool *delimited);

//  Send BODY (SIZE bytes) to ROUTING_ID on ROUTER, with an empty delimiter
//  first when DELIMITED. Returns 0 or -1.
int sf_curve_send (zsock_t *router, zframe_t *routing_id, bool delimited,
                   const void *body, size_t size);

//  Self test; returns 0 on success.
int sf_curve_test (bool verbose);

#endif
