/*  hs_http: a homeserver's HTTP surface (protocol/http.md). */

#include "broker/hs_http.h"
#include "common/sf_time.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

//  Most segments a route has (/v1/sims/{sim}/heartbeat: 4).
#define S_MAX_SEGMENTS 6

//  One route of HS_OP_MAP, split: "PUT /v1/entities/{path}".
typedef struct {
    const hs_op_t *op;
    char method [8];
    char *segments [S_MAX_SEGMENTS];  //  "v1", "entities", "{path}"
    size_t count;
} s_route_t;

//  A client of the change feed.
typedef struct {
    sf_http_req_t *req;
    char *prefix;  //  topics it wants
} s_stream_t;

//  HS_OP_MAP's routes, split once for the process.
static s_route_t s_routes [HS_OP_COUNT];
static size_t s_route_count;
static pthread_once_t s_routes_once = PTHREAD_ONCE_INIT;

struct _hs_http_t {
    sf_http_t *http;
    sf_loop_t *loop;  //  lent
    int keepalive;    //  the timer of the feed's keep-alive comments
    hs_http_hooks_t hooks;
    int64_t next_id;    //  the id of the next request made from HTTP
    zlistx_t *streams;  //  s_stream_t
};

//  A REST request waiting for its answer. Outlives neither its request
//  nor, usefully, its server; it refers to neither's owner.
typedef struct {
    sf_http_req_t *req;
    bool created;  //  a PUT that creates: 201
} s_pending_t;

unsigned
hs_http_status_of (const char *code)
{
    static const struct {
        const char *code;
        unsigned status;
    } map [] = {
        {"malformed_json", 400},   {"invalid_request", 400},
        {"invalid_argument", 400}, {"unauthorized", 403},
        {"not_member", 403},       {"not_found", 404},
        {"unknown_op", 404},       {"already_exists", 409},
        {"conflict", 409},         {"stale_epoch", 409},
        {"denied", 409},           {"too_large", 413},
        {"not_leader", 503},       {"unavailable", 503},
        {"store_failed", 503},     {"timeout", 504},
    };
    for (size_t at = 0; code && at < sizeof map / sizeof map [0]; at++)
        if (streq (map [at].code, code))
            return map [at].status;
    return 500;
}

//  Answer REQ with error CODE, MESSAGE and STATUS (0: CODE's).
static void
s_fail (sf_http_req_t **req_p, const char *code, const char *message,
        unsigned status)
{
    json_t *body =
        json_pack ("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    status = status ? status : hs_http_status_of (code);
    const char *retry [] = {"Retry-After", "1", NULL};
    const char *bearer [] = {"WWW-Authenticate", "Bearer realm=\"simfabric\"",
                             NULL};
    sf_http_respond_json (req_p, status, body,
                          status == 503   ? retry
                          : status == 401 ? bearer
                                          : NULL);
    json_decref (body);
}

//  --------------------------------------------------------------------------
//  Health and readiness

json_t *
hs_http_health (const json_t *status, uint64_t max_apply_lag)
{
    json_t *problems = json_array ();
    const char *leader = json_string_value (json_object_get (status, "leader"));
    json_int_t term = json_integer_value (json_object_get (status, "term"));
    json_int_t commit =
        json_integer_value (json_object_get (status, "commit_index"));
    json_int_t applied =
        json_integer_value (json_object_get (status, "applied_index"));
    json_int_t lag = commit > applied ? commit - applied : 0;
    if (!leader)
        json_array_append_new (
            problems,
            json_sprintf ("%s knows no leader (term %lld): no quorum, or an "
                          "election is under way",
                          json_string_value (json_object_get (status, "node")),
                          (long long) term));
    if ((uint64_t) lag > max_apply_lag)
        json_array_append_new (
            problems,
            json_sprintf ("apply lag %lld entries (bound %llu)",
                          (long long) lag, (unsigned long long) max_apply_lag));
    json_t *checks =
        json_pack ("{s:O,s:O,s:O,s:O,s:O,s:I}", "leader",
                   json_object_get (status, "leader"), "role",
                   json_object_get (status, "role"), "term",
                   json_object_get (status, "term"), "commit_index",
                   json_object_get (status, "commit_index"), "applied_index",
                   json_object_get (status, "applied_index"), "apply_lag", lag);
    return sf_http_health (problems, checks);
}

static void
s_health (hs_http_t *self, sf_http_req_t *req)
{
    json_t *status = self->hooks.status (self->hooks.context);
    json_t *health = hs_http_health (status, self->hooks.max_apply_lag);
    sf_http_respond_json (
        &req, json_is_true (json_object_get (health, "healthy")) ? 200 : 503,
        health, NULL);
    json_decref (health);
    json_decref (status);
}

//  Ready: a leader is known and what it committed is applied here, within
//  the health bound (a member catching up is not ready).
static void
s_ready (hs_http_t *self, sf_http_req_t *req)
{
    json_t *status = self->hooks.status (self->hooks.context);
    json_int_t commit =
        json_integer_value (json_object_get (status, "commit_index"));
    json_int_t applied =
        json_integer_value (json_object_get (status, "applied_index"));
    const char *reason = NULL;
    if (!json_is_string (json_object_get (status, "leader")))
        reason = "no leader is known";
    else if (applied + (json_int_t) self->hooks.max_apply_lag < commit)
        reason = "catching up: the ring committed more than this member "
                 "applied";
    json_t *body = reason
                       ? json_pack ("{s:b,s:s}", "ready", 0, "reason", reason)
                       : json_pack ("{s:b}", "ready", 1);
    sf_http_respond_json (&req, reason ? 503 : 200, body, NULL);
    json_decref (body);
    json_decref (status);
}

static void
s_metrics (hs_http_t *self, sf_http_req_t *req)
{
    json_t *status = self->hooks.status (self->hooks.context);
    sf_prom_t *prom = sf_prom_new (
        "homeserver", json_string_value (json_object_get (status, "node")));
    json_decref (status);
    self->hooks.metrics (self->hooks.context, prom);
    const sf_http_counters_t *counters = sf_http_counters (self->http);
    sf_prom_family (prom, "http_requests_total", "counter",
                    "HTTP requests served to a handler");
    sf_prom_sample (prom, NULL, NULL, (double) counters->requests);
    sf_prom_family (prom, "http_refused_total", "counter",
                    "HTTP requests refused before a handler, by reason");
    sf_prom_sample (prom, "reason", "body_too_large",
                    (double) counters->body_too_large);
    sf_prom_sample (prom, "reason", "stream_too_slow",
                    (double) counters->streams_cut);
    size_t size;
    const char *text = sf_prom_text (prom, &size);
    sf_http_respond (&req, 200, "text/plain; version=0.0.4; charset=utf-8",
                     text, size, NULL);
    sf_prom_destroy (&prom);
}

//  --------------------------------------------------------------------------
//  REST: routes, tokens, arguments

static void
s_routes_build (void)
{
    for (int id = 0; id < HS_OP_COUNT; id++) {
        const hs_op_t *op = hs_op_get ((hs_op_id_t) id);
        if (!op->route)
            continue;
        s_route_t *route = &s_routes [s_route_count++];
        route->op = op;
        const char *space = strchr (op->route, ' ');
        assert (space && (size_t) (space - op->route) < sizeof route->method);
        memcpy (route->method, op->route, (size_t) (space - op->route));
        char *copy = strdup (space + 2);  //  after " /"
        char *rest = copy;
        char *segment;
        while ((segment = strsep (&rest, "/")))
            if (*segment) {
                assert (route->count < S_MAX_SEGMENTS);
                route->segments [route->count++] = strdup (segment);
            }
        free (copy);
    }
}

//  Whether PATH (segments SEGMENTS, COUNT of them; the raw path is PATH)
//  is ROUTE's; its parameters go into PARAMS. {path} takes the rest of
//  the path, with its leading slash.
static bool
s_route_match (const s_route_t *route, const char *path, char **segments,
               size_t count, json_t *params)
{
    json_object_clear (params);
    for (size_t at = 0; at < route->count; at++) {
        const char *want = route->segments [at];
        if (want [0] == '{') {
            char name [32];
            snprintf (name, sizeof name, "%.*s", (int) strlen (want) - 2,
                      want + 1);
            if (streq (name, "path")) {
                //  The rest of the path: skip AT segments of PATH.
                const char *rest = path;
                for (size_t seen = 0; rest && seen < at; seen++) {
                    while (*rest == '/')
                        rest++;
                    rest = strchr (rest, '/');
                }
                if (!rest || !rest [1])
                    return false;
                json_object_set_new (params, name, json_string (rest));
                return true;
            }
            if (at >= count)
                return false;
            json_object_set_new (params, name, json_string (segments [at]));
            continue;
        }
        if (at >= count || !streq (want, segments [at]))
            return false;
    }
    return count == route->count;
}

//  The principal of REQ's bearer token, or NULL with FAULT (unauthorized)
//  saying what is wrong. The caller frees.
static char *
s_principal (hs_http_t *self, sf_http_req_t *req, sf_fault_t *fault)
{
    const char *header = sf_http_req_header (req, "Authorization");
    if (!header) {
        sf_fault_set (fault, SF_EUNAUTHORIZED,
                      "no token: send Authorization: Bearer TOKEN "
                      "(fabricctl token create)");
        return NULL;
    }
    char id [17], secret [64];
    const char *token =
        strncasecmp (header, "Bearer ", 7) == 0 ? header + 7 : NULL;
    const char *dot = token && strncmp (token, "sf1.", 4) == 0
                          ? strchr (token + 4, '.')
                          : NULL;
    if (!dot || dot - (token + 4) != 16 || strlen (dot + 1) >= sizeof secret
        || strlen (dot + 1) < 8) {
        sf_fault_set (fault, SF_EUNAUTHORIZED,
                      "the Authorization header is not Bearer sf1.ID.SECRET");
        return NULL;
    }
    memcpy (id, token + 4, 16);
    id [16] = '\0';
    snprintf (secret, sizeof secret, "%s", dot + 1);
    uint8_t hash [32];
    char hash_text [41];
    crypto_generichash (hash, sizeof hash, (const uint8_t *) secret,
                        strlen (secret), NULL, 0);
    zmq_z85_encode (hash_text, hash, sizeof hash);
    sodium_memzero (secret, sizeof secret);
    char *principal = NULL;
    if (hs_fsm_access (self->hooks.fsm, id, hash_text, sf_time_wall_ms (),
                       &principal, fault))
        return NULL;
    return principal;
}

//  VALUE of a query argument: a number, true, false or null as such,
//  else the text.
static json_t *
s_query_value (const char *value)
{
    json_error_t error;
    json_t *parsed = json_loads (value, JSON_DECODE_ANY, &error);
    if (parsed
        && (json_is_number (parsed) || json_is_boolean (parsed)
            || json_is_null (parsed)))
        return parsed;
    json_decref (parsed);
    return json_string (value);
}

//  Add FROM's members to INTO; one already there is a conflict. Returns
//  0, or -1 with FAULT naming the field.
static int
s_merge (json_t *into, json_t *from, sf_fault_t *fault)
{
    const char *key;
    json_t *value;
    json_object_foreach (from, key, value)
    {
        if (streq (key, "op") || streq (key, "id"))
            return sf_fault_set (fault, SF_EINVAL,
                                 "field '%s' is the route's, not the "
                                 "request's",
                                 key);
        if (json_object_get (into, key))
            return sf_fault_set (fault, SF_EINVAL,
                                 "field '%s' is given twice (route, query "
                                 "or body)",
                                 key);
        json_object_set (into, key, value);
    }
    return 0;
}

static void
s_answered (void *arg, const json_t *reply)
{
    s_pending_t *pending = (s_pending_t *) arg;
    if (!reply)
        s_fail (&pending->req, "unavailable",
                "the request was dropped unanswered (the member stops, or "
                "it timed out); retry",
                0);
    else if (json_is_true (json_object_get (reply, "ok"))) {
        json_t *body = json_deep_copy (reply);
        json_object_del (body, "id");
        json_object_del (body, "ok");
        sf_http_respond_json (&pending->req, pending->created ? 201 : 200, body,
                              NULL);
        json_decref (body);
    }
    else {
        json_t *error = json_object_get (reply, "error");
        json_t *body = json_pack ("{s:O}", "error", error);
        unsigned status = hs_http_status_of (
            json_string_value (json_object_get (error, "code")));
        const char *retry [] = {"Retry-After", "1", NULL};
        sf_http_respond_json (&pending->req, status, body,
                              status == 503 ? retry : NULL);
        json_decref (body);
    }
    free (pending);
}

const hs_op_t *
hs_http_route (const char *method, const char *path, json_t *params,
               char *allow, size_t allow_size)
{
    pthread_once (&s_routes_once, s_routes_build);
    if (allow_size)
        allow [0] = '\0';
    //  The path's segments; more than a route has match none.
    char *copy = strdup (path [0] == '/' ? path + 1 : path);
    char *segments [S_MAX_SEGMENTS + 1];
    size_t count = 0;
    char *rest = copy, *segment;
    while ((segment = strsep (&rest, "/")) && count <= S_MAX_SEGMENTS)
        if (*segment)
            segments [count++] = segment;
    const hs_op_t *found = NULL;
    for (size_t at = 0; at < s_route_count && !found; at++) {
        const s_route_t *route = &s_routes [at];
        if (!s_route_match (route, path, segments, count, params))
            continue;
        if (streq (route->method, method))
            found = route->op;
        else if (allow_size && !strstr (allow, route->method))
            snprintf (allow + strlen (allow), allow_size - strlen (allow),
                      "%s%s", allow [0] ? ", " : "", route->method);
    }
    free (copy);
    if (!found)
        json_object_clear (params);
    return found;
}

json_t *
hs_http_arguments (const hs_op_t *op, const json_t *params, const json_t *query,
                   const char *body, size_t size, int64_t id, sf_fault_t *fault)
{
    json_t *request =
        json_pack ("{s:I,s:s}", "id", (json_int_t) id, "op", op->name);
    json_t *values = json_object ();
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) query, key, value)
    {
        if (json_is_string (value))
            json_object_set_new (values, key,
                                 s_query_value (json_string_value (value)));
    }
    json_t *object = NULL;
    if (size) {
        json_error_t error;
        object = json_loadb (body, size, 0, &error);
        if (!json_is_object (object))
            sf_fault_set (fault, SF_EMALFORMED,
                          "the body is not a JSON object: %s",
                          object ? "another value" : error.text);
    }
    else
        object = json_object ();
    if (fault->error == SF_OK
        && (s_merge (request, (json_t *) params, fault)
            || s_merge (request, values, fault)
            || s_merge (request, object, fault)))
        fault->error = fault->error ? fault->error : SF_EINVAL;
    json_decref (values);
    json_decref (object);
    if (fault->error != SF_OK) {
        json_decref (request);
        return NULL;
    }
    return request;
}

static void
s_rest (hs_http_t *self, sf_http_req_t *req)
{
    const char *path = sf_http_req_path (req);
    const char *method = sf_http_req_method (req);
    json_t *params = json_object ();
    char allow [64];
    const hs_op_t *op =
        hs_http_route (method, path, params, allow, sizeof allow);
    if (!op) {
        json_decref (params);
        char message [300];
        if (allow [0]) {
            snprintf (message, sizeof message, "%.200s has no %s; it has %s",
                      path, method, allow);
            json_t *body = json_pack ("{s:{s:s,s:s}}", "error", "code",
                                      "invalid_request", "message", message);
            const char *headers [] = {"Allow", allow, NULL};
            sf_http_respond_json (&req, 405, body, headers);
            json_decref (body);
        }
        else {
            snprintf (message, sizeof message, "no route %s %.200s", method,
                      path);
            s_fail (&req, "unknown_op", message, 0);
        }
        return;
    }
    //  Who asks, before what they ask is read.
    sf_fault_t fault;
    sf_fault_clear (&fault);
    char *principal = s_principal (self, req, &fault);
    if (!principal) {
        json_decref (params);
        s_fail (&req, "unauthorized", fault.message, 401);
        return;
    }
    size_t size;
    const char *body = sf_http_req_body (req, &size);
    json_t *request = hs_http_arguments (op, params, sf_http_req_query (req),
                                         body, size, ++self->next_id, &fault);
    json_decref (params);
    if (!request) {
        free (principal);
        s_fail (&req, sf_error_code (fault.error), fault.message, 0);
        return;
    }
    s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
    pending->req = req;
    pending->created = streq (method, "PUT") && op->id == HS_OP_ENTITY_CREATE;
    api_call_t *call =
        api_call_new_local (request, principal, s_answered, pending, &fault);
    free (principal);
    json_decref (request);
    if (!call) {
        free (pending);
        s_fail (&req, sf_error_code (fault.error), fault.message, 0);
        return;
    }
    self->hooks.serve (self->hooks.context, call);
}

//  --------------------------------------------------------------------------
//  The change feed (http.md section 6)

static void
s_stream_end (hs_http_t *self, s_stream_t *stream)
{
    sf_http_stream_end (&stream->req);
    free (stream->prefix);
    zlistx_delete (self->streams, zlistx_find (self->streams, stream));
    free (stream);
}

//  Send FRAME (SIZE bytes) to STREAM if its prefix wants TOPIC (NULL: a
//  comment, to every stream); a stream whose client is gone or too slow
//  ends. Returns 0, or -1 if it ended.
static int
s_stream_send (hs_http_t *self, s_stream_t *stream, const char *topic,
               const char *frame, size_t size)
{
    if (topic && strncmp (topic, stream->prefix, strlen (stream->prefix)))
        return 0;
    if (sf_http_stream_write (stream->req, frame, size) == 0)
        return 0;
    s_stream_end (self, stream);
    return -1;
}

//  CHANGE as a server-sent event, whole; the caller frees.
static char *
s_frame (const hs_kept_change_t *change, size_t *size)
{
    char *frame = zsys_sprintf ("id: %llu\nevent: %s\ndata: %s\n\n",
                                (unsigned long long) change->index, change->op,
                                change->body);
    *size = strlen (frame);
    return frame;
}

void
hs_http_change (hs_http_t *self, const hs_kept_change_t *change)
{
    if (zlistx_size (self->streams) == 0)
        return;
    size_t size;
    char *frame = s_frame (change, &size);
    //  A copy of the list: a stream that ends leaves it.
    zlistx_t *streams = zlistx_dup (self->streams);
    for (s_stream_t *stream = (s_stream_t *) zlistx_first (streams); stream;
         stream = (s_stream_t *) zlistx_next (streams))
        s_stream_send (self, stream, change->topic, frame, size);
    zlistx_destroy (&streams);
    free (frame);
}

static int
s_keepalive (sf_loop_t *loop, int timer_id, void *arg)
{
    (void) loop, (void) timer_id;
    hs_http_t *self = (hs_http_t *) arg;
    const char *comment = ": keep-alive\n\n";
    zlistx_t *streams = zlistx_dup (self->streams);
    for (s_stream_t *stream = (s_stream_t *) zlistx_first (streams); stream;
         stream = (s_stream_t *) zlistx_next (streams))
        s_stream_send (self, stream, NULL, comment, strlen (comment));
    zlistx_destroy (&streams);
    return 0;
}

//  GET /v1/events?from=INDEX&prefix=PREFIX: the kept changes after INDEX
//  (a gap first if some are no longer kept), then each change as it is
//  applied, until the client goes.
static void
s_events (hs_http_t *self, sf_http_req_t *req)
{
    if (!streq (sf_http_req_method (req), "GET")) {
        json_t *body =
            json_pack ("{s:{s:s,s:s}}", "error", "code", "invalid_request",
                       "message", "/v1/events has GET only");
        const char *headers [] = {"Allow", "GET", NULL};
        sf_http_respond_json (&req, 405, body, headers);
        json_decref (body);
        return;
    }
    sf_fault_t fault;
    sf_fault_clear (&fault);
    char *principal = s_principal (self, req, &fault);
    if (!principal) {
        s_fail (&req, "unauthorized", fault.message, 401);
        return;
    }
    free (principal);
    const json_t *query = sf_http_req_query (req);
    const char *from_text = sf_http_req_header (req, "Last-Event-ID");
    if (!from_text)
        from_text = json_string_value (json_object_get (query, "from"));
    char *end = NULL;
    unsigned long long from = from_text ? strtoull (from_text, &end, 10) : 0;
    if (from_text && (*end || end == from_text || from_text [0] == '-')) {
        s_fail (&req, "invalid_argument",
                "from (or Last-Event-ID) must be a log index", 0);
        return;
    }
    const char *prefix = json_string_value (json_object_get (query, "prefix"));
    s_stream_t *stream = (s_stream_t *) zmalloc (sizeof (s_stream_t));
    stream->req = req;
    stream->prefix = strdup (prefix ? prefix : "");
    zlistx_add_end (self->streams, stream);
    sf_http_stream_open (req, 200, "text/event-stream");
    //  Without FROM, the changes from now on; with it, the kept ones after
    //  it first, and a gap if one after it is no longer kept.
    hs_kept_t *kept = self->hooks.kept;
    const hs_kept_change_t *oldest = hs_kept_at (kept, 0);
    uint64_t dropped =
        oldest ? hs_kept_dropped (kept) : hs_fsm_last_change (self->hooks.fsm);
    if (from_text && dropped > from) {
        char *frame = zsys_sprintf (
            "event: gap\ndata: {\"from\":%llu,\"oldest\":%llu}\n\n", from,
            (unsigned long long) (oldest ? oldest->index : dropped + 1));
        int rc = s_stream_send (self, stream, NULL, frame, strlen (frame));
        free (frame);
        if (rc)
            return;
    }
    for (size_t at = hs_kept_after (kept, from);
         from_text && at < hs_kept_count (kept); at++) {
        const hs_kept_change_t *change = hs_kept_at (kept, at);
        size_t size;
        char *frame = s_frame (change, &size);
        int rc = s_stream_send (self, stream, change->topic, frame, size);
        free (frame);
        if (rc)
            return;
    }
    //  A comment at once, so the client knows the stream is open.
    s_stream_send (self, stream, NULL, ": open\n\n", 8);
}

static void
s_handle (void *arg, sf_http_req_t *req)
{
    hs_http_t *self = (hs_http_t *) arg;
    const char *path = sf_http_req_path (req);
    const char *method = sf_http_req_method (req);
    bool get = streq (method, "GET") || streq (method, "HEAD");
    if (streq (path, "/health") && get)
        s_health (self, req);
    else if (streq (path, "/ready") && get)
        s_ready (self, req);
    else if (streq (path, "/metrics") && get)
        s_metrics (self, req);
    else if (streq (path, "/v1/events"))
        s_events (self, req);
    else if (strncmp (path, "/v1/", 4) == 0)
        s_rest (self, req);
    else {
        char message [300];
        snprintf (message, sizeof message, "no route %s %.200s", method, path);
        s_fail (&req, "unknown_op", message, 0);
    }
}

hs_http_t *
hs_http_new (const sf_http_config_t *config, sf_loop_t *loop,
             const hs_http_hooks_t *hooks, sf_fault_t *fault)
{
    hs_http_t *self = (hs_http_t *) zmalloc (sizeof (hs_http_t));
    self->hooks = *hooks;
    self->loop = loop;
    self->keepalive = -1;
    self->streams = zlistx_new ();
    self->http = sf_http_new (config, loop, s_handle, self, fault);
    if (!self->http) {
        hs_http_destroy (&self);
        return NULL;
    }
    self->keepalive =
        sf_loop_timer (loop, HS_HTTP_KEEPALIVE_S * 1000, 0, s_keepalive, self);
    return self;
}

void
hs_http_destroy (hs_http_t **self_p)
{
    if (*self_p) {
        hs_http_t *self = *self_p;
        s_stream_t *stream;
        while ((stream = (s_stream_t *) zlistx_first (self->streams)))
            s_stream_end (self, stream);
        zlistx_destroy (&self->streams);
        if (self->keepalive >= 0)
            sf_loop_timer_end (self->loop, self->keepalive);
        sf_http_destroy (&self->http);
        free (self);
        *self_p = NULL;
    }
}

const char *
hs_http_url (hs_http_t *self)
{
    return sf_http_url (self->http);
}

int
hs_http_test (bool verbose)
{
    if (verbose)
        printf (" * hs_http: ");
    //  Every error code has its status; an unknown one is 500.
    assert (hs_http_status_of ("not_found") == 404);
    assert (hs_http_status_of ("not_leader") == 503);
    assert (hs_http_status_of ("stale_epoch") == 409);
    assert (hs_http_status_of ("timeout") == 504);
    assert (hs_http_status_of ("internal") == 500);
    assert (hs_http_status_of ("no_such_code") == 500);
    for (int error = SF_OK + 1; error <= SF_EINTERNAL; error++)
        assert (hs_http_status_of (sf_error_code ((sf_error_t) error)) >= 400);

    //  Routes: each op with one is found by its own path, with its
    //  parameters; {path} takes the rest.
    const struct {
        const char *method, *path, *op, *param, *value;
    } cases [] = {
        {"GET", "/v1/entities/world/room1/cube", "entity.get", "path",
         "/world/room1/cube"},
        {"PUT", "/v1/entities/a", "entity.create", "path", "/a"},
        {"DELETE", "/v1/entities/a/b", "entity.delete", "path", "/a/b"},
        {"GET", "/v1/entities", "entity.list", NULL, NULL},
        {"POST", "/v1/sims/sim1/heartbeat", "sim.heartbeat", "sim", "sim1"},
        {"DELETE", "/v1/access/0123456789abcdef", "access.revoke", "token_id",
         "0123456789abcdef"},
        {"GET", "/v1/status", "status", NULL, NULL},
        {"GET", "/v1/entities/", "entity.list", NULL, NULL},
        {"GET", "/v1//entities//x", "entity.get", "path", "//x"},
        {"POST", "/v1/nothing", NULL, NULL, NULL},
        {"GET", "/v1/sims/sim1/heartbeat/more", NULL, NULL, NULL},
        {"GET", "/v1/a/b/c/d/e/f/g/h", NULL, NULL, NULL},
        {"GET", "", NULL, NULL, NULL},
    };
    json_t *params = json_object ();
    for (size_t at = 0; at < sizeof cases / sizeof cases [0]; at++) {
        const hs_op_t *op =
            hs_http_route (cases [at].method, cases [at].path, params, NULL, 0);
        assert ((op == NULL) == (cases [at].op == NULL));
        assert (!op || streq (op->name, cases [at].op));
        if (cases [at].param)
            assert (streq (
                json_string_value (json_object_get (params, cases [at].param)),
                cases [at].value));
    }
    //  A path with another method's route says which methods it has.
    char allow [64];
    assert (
        !hs_http_route ("POST", "/v1/entities/a", params, allow, sizeof allow));
    assert (streq (allow, "PUT, GET, DELETE"));
    json_decref (params);

    //  Arguments: the route's, then the query's (numbers and literals as
    //  such), then the body's; a field given twice is refused.
    const hs_op_t *list = hs_op_find ("entity.list");
    params = json_object ();
    json_t *query = json_pack ("{s:s,s:s,s:s}", "limit", "50", "prefix",
                               "/world/", "after", "true");
    sf_fault_t fault;
    sf_fault_clear (&fault);
    json_t *request =
        hs_http_arguments (list, params, query, NULL, 0, 7, &fault);
    assert (request);
    assert (json_integer_value (json_object_get (request, "limit")) == 50);
    assert (json_is_true (json_object_get (request, "after")));
    assert (streq (json_string_value (json_object_get (request, "op")),
                   "entity.list"));
    json_decref (request);
    const char *twice = "{\"prefix\": \"/x/\"}";
    assert (!hs_http_arguments (list, params, query, twice, strlen (twice), 8,
                                &fault));
    assert (fault.error == SF_EINVAL && strstr (fault.message, "prefix"));
    const char *bodies [] = {"[1]", "{", "{\"op\": \"status\"}", "{\"id\": 3}"};
    for (size_t at = 0; at < sizeof bodies / sizeof bodies [0]; at++) {
        sf_fault_clear (&fault);
        assert (!hs_http_arguments (list, params, NULL, bodies [at],
                                    strlen (bodies [at]), 9, &fault));
        assert (fault.error == SF_EMALFORMED || fault.error == SF_EINVAL);
    }
    json_decref (query);
    json_decref (params);

    //  Health: a leader and a small lag are healthy; otherwise one line
    //  per problem.
    json_t *status = json_pack ("{s:s,s:s,s:s,s:i,s:i,s:i}", "node", "hs1",
                                "leader", "hs2", "role", "follower", "term", 3,
                                "commit_index", 100, "applied_index", 99);
    json_t *health = hs_http_health (status, 10);
    assert (json_is_true (json_object_get (health, "healthy")));
    assert (!json_object_get (health, "problems"));
    json_decref (health);
    json_object_set_new (status, "leader", json_null ());
    json_object_set_new (status, "applied_index", json_integer (50));
    health = hs_http_health (status, 10);
    assert (json_is_false (json_object_get (health, "healthy")));
    json_t *problems = json_object_get (health, "problems");
    assert (json_array_size (problems) == 2);
    assert (strstr (json_string_value (json_array_get (problems, 0)),
                    "hs1 knows no leader (term 3)"));
    assert (strstr (json_string_value (json_array_get (problems, 1)),
                    "apply lag 50 entries"));
    json_decref (health);
    json_decref (status);
    if (verbose)
        printf ("OK\n");
    return 0;
}
