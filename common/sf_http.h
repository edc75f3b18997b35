/*  sf_http: an HTTP server (libmicrohttpd) on a daemon's sf_loop
    (protocol/http.md section 1).

    Why on the loop and not in a thread of its own: a request is served by
    the same state, in the same order, as the daemon's ZeroMQ requests, so
    nothing is locked. libmicrohttpd runs in its external epoll mode: its
    epoll descriptor is one more reader of the loop, and a timer runs it
    for its connection timeouts.

    A request reaches the handler once, with its whole body read. The
    handler answers at once, or keeps the request and answers later (a
    write waiting for its commit): the connection is suspended meanwhile.
    A request is freed once it is answered and its client is done, in
    either order, so a handler may hold it past its client's going away,
    or the server's. A stream (server-sent events) is an answer whose body
    the handler goes on writing until it ends it. */

#ifndef SF_HTTP_H_INCLUDED
#define SF_HTTP_H_INCLUDED

#include "common/sf_error.h"
#include "common/sf_loop.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _sf_http_t sf_http_t;
typedef struct _sf_http_req_t sf_http_req_t;

//  The largest request body read; a longer one is answered 413.
#define SF_HTTP_MAX_BODY 65536

//  Connections served at once; the next is refused at accept.
#define SF_HTTP_MAX_CONNECTIONS 256

//  Unsent stream bytes after which a stream's client is cut off.
#define SF_HTTP_MAX_STREAM_QUEUE (16 * 1024 * 1024)

typedef struct {
    const char *endpoint;   //  tcp://HOST:PORT; port 0: any free one
    const char *cert_file;  //  PEM chain; with KEY_FILE, HTTPS only
    const char *key_file;   //  PEM private key, not readable by others
    unsigned tick_ms;       //  how often idle connections are looked at
                            //  (0: 500)
} sf_http_config_t;

//  Called once per request, with its whole body; REQ is lent until it is
//  answered with sf_http_respond or sf_http_stream_open (then it belongs
//  to the handler until ended).
typedef void (sf_http_handler_fn) (void *arg, sf_http_req_t *req);

//  Serve CONFIG's endpoint on LOOP (lent; must outlive the server),
//  calling FN with ARG for each request. Returns NULL with FAULT naming
//  the problem: a malformed endpoint, a port taken, a certificate or key
//  that does not load.
sf_http_t *sf_http_new (const sf_http_config_t *config, sf_loop_t *loop,
                        sf_http_handler_fn *fn, void *arg, sf_fault_t *fault);

//  Stop serving: unanswered requests' clients are closed; the requests
//  stay the handler's until it answers them (which then frees them).
void sf_http_destroy (sf_http_t **self_p);

//  The port bound (the one chosen for port 0).
int sf_http_port (sf_http_t *self);

//  The URL as bound, "http://127.0.0.1:PORT" or "https://...". Lent.
const char *sf_http_url (sf_http_t *self);

//  What this server refused before a handler saw it, and what it served.
typedef struct {
    uint64_t requests;        //  requests handed to the handler
    uint64_t body_too_large;  //  answered 413 here
    uint64_t streams_cut;     //  streams closed for a client too slow
} sf_http_counters_t;

const sf_http_counters_t *sf_http_counters (sf_http_t *self);

//  REQ's method ("GET") and path ("/v1/entities/a", percent-decoded).
const char *sf_http_req_method (sf_http_req_t *req);
const char *sf_http_req_path (sf_http_req_t *req);

//  REQ's header NAME (case-insensitive) or NULL. Lent.
const char *sf_http_req_header (sf_http_req_t *req, const char *name);

//  REQ's query arguments as {name: value} strings, decoded. Lent.
const json_t *sf_http_req_query (sf_http_req_t *req);

//  REQ's body and its size (empty: "" and 0). Lent.
const char *sf_http_req_body (sf_http_req_t *req, size_t *size);

//  Whether REQ's client is still there to answer.
bool sf_http_req_connected (sf_http_req_t *req);

//  Answer *REQ_P with STATUS, CONTENT_TYPE and BODY (SIZE bytes, copied),
//  plus HEADERS: NULL, or name, value, name, value, ..., NULL. Frees the
//  request once its client is done; nulls the caller's pointer.
void sf_http_respond (sf_http_req_t **req_p, unsigned status,
                      const char *content_type, const char *body, size_t size,
                      const char *const *headers);

//  As sf_http_respond, with BODY a JSON value (lent) and
//  application/json.
void sf_http_respond_json (sf_http_req_t **req_p, unsigned status,
                           const json_t *body, const char *const *headers);

//  Answer REQ with STATUS and CONTENT_TYPE and a body written later with
//  sf_http_stream_write; the handler keeps REQ until sf_http_stream_end.
void sf_http_stream_open (sf_http_req_t *req, unsigned status,
                          const char *content_type);

//  Append SIZE bytes of DATA to REQ's stream. Returns 0, or -1 when the
//  client is gone or was too slow (more than SF_HTTP_MAX_STREAM_QUEUE
//  unsent): end the stream.
int sf_http_stream_write (sf_http_req_t *req, const char *data, size_t size);

//  Bytes of REQ's stream not yet sent.
size_t sf_http_stream_queued (sf_http_req_t *req);

//  End the stream of *REQ_P (its client sees the end of the body) and
//  give the request back; nulls the caller's pointer.
void sf_http_stream_end (sf_http_req_t **req_p);

//  A /health answer (http.md section 2) from PROBLEMS (an array of lines,
//  taken) and CHECKS (an object, taken): {"healthy", "checks",
//  "problems" when there is any}. A new reference.
json_t *sf_http_health (json_t *problems, json_t *checks);

//  Self test; returns 0 on success.
int sf_http_test (bool verbose);

#endif
