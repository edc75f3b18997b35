/*  api_router: serves the JSON API (homeserver-api.md) on a CURVE ROUTER. */

#include "protocol/api_router.h"
#include "common/sf_curve.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"

#include <assert.h>

struct _api_call_t {
    api_router_t *router;  //  the socket it came on, where it is answered
    zframe_t *routing_id;  //  the client's connection
    bool delimited;        //  answer with an empty delimiter (REQ client)
    char *principal;       //  client's public key
    api_msg_t request;     //  decoded request
    uint64_t received_us;  //  wall clock when it was taken off the socket
    char label [80];       //  who sent it, as the daemon names it, or ""
    //  A call made in this process (an HTTP request): answered through
    //  ANSWER_FN, not a socket.
    api_call_answer_fn *answer_fn;
    void *answer_arg;
};

struct _api_router_t {
    zsock_t *socket;       //  ROUTER, CURVE server
    char *endpoint;        //  as bound
    const char *log_name;  //  prefix of refusal log lines (static)
    api_router_counters_t counters;
    zhashx_t *latency;  //  op -> sf_prom_histo_t, answers' latency
};

static void
s_histo_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

api_router_t *
api_router_new (const char *endpoint, zcert_t *cert, const char *domain,
                sf_fault_t *fault)
{
    api_router_t *self = (api_router_t *) zmalloc (sizeof (api_router_t));
    self->socket = zsock_new (ZMQ_ROUTER);
    self->latency = zhashx_new ();
    zhashx_set_destructor (self->latency, s_histo_destroy);
    //  A ROUTER drops a reply when its client's queue is full, silently;
    //  at libzmq's default of 1,000 a burst of pipelined requests answered
    //  together could lose some before the I/O thread drained the queue.
    zsock_set_sndhwm (self->socket, API_ROUTER_MAX_UNREAD);
    sf_curve_server (self->socket, cert, domain);
    if (zsock_bind (self->socket, "%s", endpoint) < 0) {
        sf_fault_set (fault, SF_EUNAVAILABLE, "cannot bind %s endpoint %s: %s",
                      domain, endpoint, zmq_strerror (zmq_errno ()));
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
        zhashx_destroy (&self->latency);
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

api_call_t *
api_router_recv (api_router_t *self, const char *log_name)
{
    api_call_t *call = (api_call_t *) zmalloc (sizeof (api_call_t));
    call->router = self;
    call->received_us = sf_time_wall_us ();
    self->counters.requests++;
    zframe_t *body;
    int rc = sf_curve_recv (self->socket, &call->routing_id, &body,
                            &call->principal, &call->delimited);
    sf_fault_t fault;
    sf_fault_clear (&fault);
    if (rc)
        sf_fault_set (&fault, SF_EREQUEST,
                      "a request must be exactly one frame");
    else
        api_msg_decode (&call->request, zframe_data (body), zframe_size (body),
                        &fault);
    zframe_destroy (&body);
    self->log_name = log_name;
    if (fault.error == SF_OK)
        return call;
    if (call->routing_id)
        api_router_fail (self, &call, fault.error, fault.message);
    api_call_destroy (&call);
    return NULL;
}

const api_msg_t *
api_call_request (api_call_t *call)
{
    return &call->request;
}

void
api_call_set_label (api_call_t *call, const char *label)
{
    snprintf (call->label, sizeof call->label, "%s", label ? label : "");
}

const char *
api_call_label (api_call_t *call)
{
    return call->label [0] ? call->label : NULL;
}

static int
s_by_op (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

api_call_t *
api_call_new_local (const json_t *request, const char *principal,
                    api_call_answer_fn *answer_fn, void *answer_arg,
                    sf_fault_t *fault)
{
    char *text = api_msg_encode (request);
    api_call_t *call = (api_call_t *) zmalloc (sizeof (api_call_t));
    call->received_us = sf_time_wall_us ();
    int rc = api_msg_decode (&call->request, text, strlen (text), fault);
    free (text);
    if (rc) {
        api_call_destroy (&call);
        return NULL;
    }
    call->principal = strdup (principal);
    call->answer_fn = answer_fn;
    call->answer_arg = answer_arg;
    return call;
}

void
api_router_count (api_router_t *self)
{
    self->counters.requests++;
}

void
api_router_metrics (api_router_t *self, sf_prom_t *prom)
{
    sf_prom_family (prom, "request_duration_seconds", "histogram",
                    "a request from its receipt to its answer, by operation");
    const char **ops = (const char **) calloc (zhashx_size (self->latency) + 1,
                                               sizeof (char *));
    size_t count = 0;
    for (void *histo = zhashx_first (self->latency); histo;
         histo = zhashx_next (self->latency))
        ops [count++] = (const char *) zhashx_cursor (self->latency);
    qsort (ops, count, sizeof (char *), s_by_op);
    for (size_t at = 0; at < count; at++)
        sf_prom_histo (
            prom, "op", ops [at],
            (sf_prom_histo_t *) zhashx_lookup (self->latency, ops [at]));
    free (ops);
}

const sf_prom_histo_t *
api_router_latency (api_router_t *self, const char *op)
{
    return (const sf_prom_histo_t *) zhashx_lookup (self->latency, op);
}

uint64_t
api_call_received_us (api_call_t *call)
{
    return call->received_us;
}

const char *
api_call_principal (api_call_t *call)
{
    return call->principal ? call->principal : "";
}

int
api_call_rewrite (api_call_t *call, const json_t *request,
                  const char *principal, sf_fault_t *fault)
{
    json_t *copy = json_deep_copy (request);
    json_object_set (copy, "id", call->request.id);
    char *text = api_msg_encode (copy);
    json_decref (copy);
    api_msg_t rewritten;
    int rc = api_msg_decode (&rewritten, text, strlen (text), fault);
    free (text);
    if (rc) {
        api_msg_reset (&rewritten);
        return -1;
    }
    api_msg_reset (&call->request);
    call->request = rewritten;
    free (call->principal);
    call->principal = strdup (principal);
    return 0;
}

//  Answer *CALL_P with REPLY on the socket the call came on (SELF for a
//  call made elsewhere), so a daemon that serves two sockets with one
//  handler answers each caller where it asked.
static void
s_answer (api_router_t *self, api_call_t **call_p, json_t *reply)
{
    api_call_t *call = *call_p;
    if (call->router)
        self = call->router;
    bool refused = json_is_false (json_object_get (reply, "ok"));
    if (self) {
        //  Latency by op; an op the daemon does not have is "unknown", so
        //  a client cannot grow the table.
        const char *code = json_string_value (
            json_object_get (json_object_get (reply, "error"), "code"));
        const char *op =
            !call->request.op || (code && streq (code, "unknown_op"))
                ? "unknown"
                : call->request.op;
        sf_prom_histo_t *histo =
            (sf_prom_histo_t *) zhashx_lookup (self->latency, op);
        if (!histo) {
            histo = (sf_prom_histo_t *) zmalloc (sizeof (sf_prom_histo_t));
            zhashx_insert (self->latency, op, histo);
        }
        uint64_t now_us = sf_time_wall_us ();
        sf_prom_histo_observe (
            histo, now_us > call->received_us ? now_us - call->received_us : 0);
    }
    if (call->answer_fn) {
        api_call_answer_fn *answer_fn = call->answer_fn;
        call->answer_fn = NULL;
        answer_fn (call->answer_arg, reply);
        if (refused && self)
            self->counters.refused++;
        json_decref (reply);
        api_call_destroy (call_p);
        return;
    }
    char *text = api_msg_encode (reply);
    sf_curve_send (self->socket, call->routing_id, call->delimited, text,
                   strlen (text));
    //  Every refusal, whoever refused, is one log line.
    if (refused) {
        self->counters.refused++;
        sf_log_info ("%s: refused request from %.8s: %s",
                     self->log_name ? self->log_name : "api_router",
                     call->principal ? call->principal : "?", text);
    }
    free (text);
    json_decref (reply);
    api_call_destroy (call_p);
}

void
api_router_reply (api_router_t *self, api_call_t **call, const json_t *result)
{
    if (!*call)
        return;  //  a command of the daemon's own: nobody to answer
    json_t *reply = api_msg_reply_ok ((*call)->request.id);
    if (result)
        json_object_update_missing (reply, (json_t *) result);
    s_answer (self, call, reply);
}

void
api_router_fail (api_router_t *self, api_call_t **call, sf_error_t error,
                 const char *message)
{
    if (!*call)
        return;  //  a command of the daemon's own: nobody to answer
    s_answer (self, call,
              api_msg_reply_error ((*call)->request.id, error, message));
}

void
api_router_fail_with (api_router_t *self, api_call_t **call, sf_error_t error,
                      const char *message, json_t *details)
{
    if (!*call) {
        json_decref (details);
        return;
    }
    json_t *reply = api_msg_reply_error ((*call)->request.id, error, message);
    json_t *fields = json_object_get (reply, "error");
    //  The code and the message stay the codec's.
    json_object_update_missing (fields, details);
    json_decref (details);
    s_answer (self, call, reply);
}

void
api_call_destroy (api_call_t **call_p)
{
    if (*call_p) {
        api_call_t *call = *call_p;
        //  Dropped unanswered: its maker hears so.
        if (call->answer_fn)
            call->answer_fn (call->answer_arg, NULL);
        zframe_destroy (&call->routing_id);
        free (call->principal);
        api_msg_reset (&call->request);
        free (call);
        *call_p = NULL;
    }
}

zframe_t *
api_call_routing_id (api_call_t *call)
{
    return call->routing_id;
}

bool
api_call_delimited (api_call_t *call)
{
    return call->delimited;
}

int
api_router_push (api_router_t *self, zframe_t *routing_id, const json_t *body)
{
    char *text = json_is_object (body) || json_is_array (body)
                     ? sf_json_text (body)
                     : NULL;
    if (!text) {
        errno = EINVAL;
        return -1;
    }
    void *socket = zsock_resolve (self->socket);
    //  Mandatory routing only for pushes: a gone client is then reported
    //  (EHOSTUNREACH) instead of silently dropped, and a full queue fails
    //  at once (EAGAIN) instead of blocking. Replies keep the default.
    int mandatory = 1;
    zmq_setsockopt (socket, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory);
    int rc = zmq_send (socket, zframe_data (routing_id),
                       zframe_size (routing_id), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send (socket, text, strlen (text), ZMQ_DONTWAIT);
    int error = zmq_errno ();
    mandatory = 0;
    zmq_setsockopt (socket, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory);
    free (text);
    if (rc < 0) {
        errno = error;
        return -1;
    }
    return 0;
}

const api_router_counters_t *
api_router_counters (api_router_t *self)
{
    return &self->counters;
}

int
api_router_handle (api_router_t *self, const api_msg_op_t *ops, void *context,
                   const char *log_name)
{
    api_call_t *call = api_router_recv (self, log_name);
    if (call)  //  else malformed: already answered
        api_router_dispatch (self, &call, ops, context);
    return 0;
}

void
api_router_dispatch (api_router_t *self, api_call_t **call_p,
                     const api_msg_op_t *ops, void *context)
{
    api_call_t *call = *call_p;
    *call_p = NULL;
    const api_msg_t *request = api_call_request (call);
    const api_msg_op_t *entry = ops;
    while (entry->op && strcmp (entry->op, request->op) != 0)
        entry++;
    if (!entry->op) {
        char message [128];
        snprintf (message, sizeof message, "no such operation '%s'",
                  request->op);
        api_router_fail (self, &call, SF_EUNKNOWNOP, message);
        return;
    }
    json_t *result = json_object ();
    sf_fault_t fault;
    sf_fault_clear (&fault);
    if (entry->handler (context, request, api_call_principal (call), result,
                        &fault)
        == 0)
        api_router_reply (self, &call, result);
    else
        api_router_fail (self, &call,
                         fault.error == SF_OK ? SF_EINTERNAL : fault.error,
                         fault.message);
    json_decref (result);
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
    int rc;
    if (verbose)
        printf (" * api_router: ");
    zactor_t *zap = sf_zap_new ();
    sf_zap_allow_any (zap, API_ROUTER_DOMAIN);
    zcert_t *server_cert = zcert_new ();
    const char *server_key = zcert_public_txt (server_cert);
    sf_fault_t fault;
    api_router_t *router = api_router_new ("tcp://256.0.0.1:1", server_cert,
                                           API_ROUTER_DOMAIN, &fault);
    assert (!router);
    assert (strstr (fault.message, "cannot bind api endpoint"));

    router = api_router_new ("tcp://127.0.0.1:*", server_cert,
                             API_ROUTER_DOMAIN, &fault);
    assert (router);
    zcert_t *client_cert = zcert_new ();
    zsock_t *client = zsock_new (ZMQ_DEALER);
    sf_curve_client (client, client_cert, server_key);
    rc = zsock_connect (client, "%s", api_router_endpoint (router));
    assert (rc == 0);

    //  A REQ-style delimiter comes back; the principal is the client key.
    zstr_sendx (client, "", "{\"op\":\"whoami\",\"id\":1}", NULL);
    api_router_handle (router, s_test_ops, NULL, "test");
    char *empty, *reply;
    rc = zstr_recvx (client, &empty, &reply, NULL);
    assert (rc == 2);
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

    //  A call kept and answered later; a malformed one answered at once.
    zstr_send (client, "{\"op\":\"later\",\"id\":\"x\"}");
    api_call_t *call = api_router_recv (router, "test");
    assert (call);
    assert (streq (api_call_request (call)->op, "later"));
    assert (streq (api_call_principal (call), zcert_public_txt (client_cert)));
    zstr_send (client, "{\"op\":");
    api_call_t *malformed = api_router_recv (router, "test");
    assert (malformed == NULL);
    reply = zstr_recv (client);
    assert (strstr (reply, "\"malformed_json\""));
    zstr_free (&reply);
    json_t *result = json_pack ("{s:i,s:i}", "answer", 42, "id", 7);
    api_router_reply (router, &call, result);
    assert (!call);
    json_decref (result);
    reply = zstr_recv (client);
    //  The request's id wins over a result member of the same name.
    assert (streq (reply, "{\"id\":\"x\",\"ok\":true,\"answer\":42}"));
    zstr_free (&reply);
    zstr_send (client, "{\"op\":\"later\",\"id\":2}");
    call = api_router_recv (router, "test");
    api_router_fail (router, &call, SF_ENOTLEADER, "try hs2");
    reply = zstr_recv (client);
    assert (strstr (reply, "\"code\":\"not_leader\",\"message\":\"try hs2\""));
    zstr_free (&reply);
    //  An error that says more; its code and message stay the codec's.
    zstr_send (client, "{\"op\":\"edit\",\"id\":3}");
    call = api_router_recv (router, "test");
    api_router_fail_with (
        router, &call, SF_EDENIED, "a replica",
        json_pack ("{s:s,s:s}", "authority", "sim2", "code", "forged"));
    reply = zstr_recv (client);
    json_t *parsed = json_loads (reply, 0, NULL);
    const json_t *error = json_object_get (parsed, "error");
    assert (
        streq (json_string_value (json_object_get (error, "code")), "denied"));
    assert (streq (json_string_value (json_object_get (error, "authority")),
                   "sim2"));
    json_decref (parsed);
    zstr_free (&reply);
    //  Six requests read (one of them two frames, one malformed); four
    //  refused.
    const api_router_counters_t *counters = api_router_counters (router);
    assert (counters->requests == 6 && counters->refused == 4);

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
