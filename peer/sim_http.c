/*  sim_http: a simulation server's HTTP surface. */

#include "peer/sim_http.h"

#include <assert.h>
#include <string.h>

struct _sim_http_t {
    sf_http_t *http;
    sim_http_hooks_t hooks;
};

json_t *
sim_http_health (const json_t *status)
{
    json_t *problems = json_array ();
    const char *node = json_string_value (json_object_get (status, "node"));
    bool registered = json_is_true (json_object_get (status, "registered"));
    json_t *age = json_object_get (status, "heartbeat_age_ms");
    json_int_t every =
        json_integer_value (json_object_get (status, "heartbeat_ms"));
    if (!registered)
        json_array_append_new (
            problems, json_sprintf ("sim %s is not registered with the ring",
                                    node ? node : "?"));
    else if (!json_is_integer (age))
        json_array_append_new (
            problems, json_sprintf ("sim %s has no heartbeat answered yet",
                                    node ? node : "?"));
    else if (json_integer_value (age) > 3 * every)
        json_array_append_new (
            problems,
            json_sprintf ("sim %s's last heartbeat was answered %lld ms ago "
                          "(every %lld ms): the ring does not hear it",
                          node ? node : "?",
                          (long long) json_integer_value (age),
                          (long long) every));
    json_t *checks = json_pack ("{s:b,s:O,s:I}", "registered", registered,
                                "heartbeat_age_ms", age ? age : json_null (),
                                "heartbeat_ms", every);
    return sf_http_health (problems, checks);
}

static void
s_handle (void *arg, sf_http_req_t *req)
{
    sim_http_t *self = (sim_http_t *) arg;
    const char *path = sf_http_req_path (req);
    const char *method = sf_http_req_method (req);
    bool get = streq (method, "GET") || streq (method, "HEAD");
    json_t *status = self->hooks.status (self->hooks.context);
    if (get && streq (path, "/health")) {
        json_t *health = sim_http_health (status);
        sf_http_respond_json (
            &req,
            json_is_true (json_object_get (health, "healthy")) ? 200 : 503,
            health, NULL);
        json_decref (health);
    }
    else if (get && streq (path, "/ready")) {
        bool ready = json_is_true (json_object_get (status, "registered"));
        json_t *body = ready ? json_pack ("{s:b}", "ready", 1)
                             : json_pack ("{s:b,s:s}", "ready", 0, "reason",
                                          "not registered with the ring yet");
        sf_http_respond_json (&req, ready ? 200 : 503, body, NULL);
        json_decref (body);
    }
    else if (get && streq (path, "/metrics")) {
        sf_prom_t *prom = sf_prom_new (
            "simserver", json_string_value (json_object_get (status, "node")));
        self->hooks.metrics (self->hooks.context, prom);
        const sf_http_counters_t *counters = sf_http_counters (self->http);
        sf_prom_family (prom, "http_requests_total", "counter",
                        "HTTP requests served to a handler");
        sf_prom_sample (prom, NULL, NULL, (double) counters->requests);
        size_t size;
        const char *text = sf_prom_text (prom, &size);
        sf_http_respond (&req, 200, "text/plain; version=0.0.4; charset=utf-8",
                         text, size, NULL);
        sf_prom_destroy (&prom);
    }
    else {
        char message [300];
        snprintf (message, sizeof message,
                  "no route %s %.200s: a sim serves /health, /ready and "
                  "/metrics",
                  method, path);
        json_t *body = json_pack ("{s:{s:s,s:s}}", "error", "code",
                                  "unknown_op", "message", message);
        sf_http_respond_json (&req, 404, body, NULL);
        json_decref (body);
    }
    json_decref (status);
}

sim_http_t *
sim_http_new (const sf_http_config_t *config, sf_loop_t *loop,
              const sim_http_hooks_t *hooks, sf_fault_t *fault)
{
    sim_http_t *self = (sim_http_t *) zmalloc (sizeof (sim_http_t));
    self->hooks = *hooks;
    self->http = sf_http_new (config, loop, s_handle, self, fault);
    if (!self->http)
        sim_http_destroy (&self);
    return self;
}

void
sim_http_destroy (sim_http_t **self_p)
{
    if (*self_p) {
        sf_http_destroy (&(*self_p)->http);
        free (*self_p);
        *self_p = NULL;
    }
}

const char *
sim_http_url (sim_http_t *self)
{
    return sf_http_url (self->http);
}

int
sim_http_test (bool verbose)
{
    if (verbose)
        printf (" * sim_http: ");
    json_t *status =
        json_pack ("{s:s,s:b,s:i,s:i}", "node", "sim1", "registered", 1,
                   "heartbeat_ms", 1000, "heartbeat_age_ms", 2500);
    json_t *health = sim_http_health (status);
    assert (json_is_true (json_object_get (health, "healthy")));
    json_decref (health);
    json_object_set_new (status, "heartbeat_age_ms", json_integer (3500));
    health = sim_http_health (status);
    assert (json_is_false (json_object_get (health, "healthy")));
    assert (strstr (json_string_value (json_array_get (
                        json_object_get (health, "problems"), 0)),
                    "answered 3500 ms ago"));
    json_decref (health);
    json_object_set_new (status, "registered", json_false ());
    health = sim_http_health (status);
    assert (strstr (json_string_value (json_array_get (
                        json_object_get (health, "problems"), 0)),
                    "sim1 is not registered"));
    json_decref (health);
    json_decref (status);
    if (verbose)
        printf ("OK\n");
    return 0;
}
