/*  ctl_watch: fabricctl watch, the ring's changes as lines. */

#include "ctl/ctl_watch.h"
#include "common/sf_cert.h"
#include "common/sf_curve.h"
#include "common/sf_json.h"
#include "ctl/ctl_client.h"

#include <assert.h>
#include <string.h>

//  Silence after which the member followed is asked whether it is there.
#define S_QUIET_MS 1000

typedef struct {
    const ctl_watch_config_t *config;
    json_t *members;       //  the ring's members, [{"name", "api", "key"}]
    size_t at;             //  the one followed, in MEMBERS
    ctl_client_t *client;  //  its API
    zsock_t *sub;          //  its events, every topic
    uint64_t last;         //  the newest change accounted for
    bool started;          //  LAST is known
} s_watch_t;

char *
ctl_watch_line (const json_t *event)
{
    const json_t *result = json_object_get (event, "result");
    static const char *fields [] = {"authority", "epoch", "rule",   "owner",
                                    "from",      "to",    "moved",  "sim",
                                    "player",    "drain", "deleted"};
    char summary [512] = "";
    size_t used = 0;
    for (size_t at = 0; at < sizeof fields / sizeof fields [0]; at++) {
        json_t *value = json_object_get (result, fields [at]);
        if (!value || json_is_object (value) || json_is_array (value))
            continue;
        char *text = json_is_string (value)
                         ? strdup (json_string_value (value))
                         : json_dumps (value, JSON_ENCODE_ANY);
        int wrote = snprintf (summary + used, sizeof summary - used, "%s%s=%s",
                              used ? " " : "", fields [at], text);
        free (text);
        if (wrote < 0 || (size_t) wrote >= sizeof summary - used)
            break;
        used += (size_t) wrote;
    }
    return zsys_sprintf (
        "%lld %s %s%s%s",
        (long long) json_integer_value (json_object_get (event, "index")),
        json_string_value (json_object_get (event, "topic")) ?: "?",
        json_string_value (json_object_get (event, "op")) ?: "?",
        used ? " " : "", summary);
}

static bool
s_wanted (s_watch_t *self, const char *topic)
{
    const char *prefix = self->config->prefix;
    return !prefix || !*prefix
           || (topic && strncmp (topic, prefix, strlen (prefix)) == 0);
}

static void
s_print (s_watch_t *self, const json_t *event)
{
    if (self->config->json) {
        char *text = sf_json_text (event);
        fprintf (self->config->out, "%s\n", text);
        free (text);
    }
    else {
        char *line = ctl_watch_line (event);
        fprintf (self->config->out, "%s\n", line);
        free (line);
    }
    fflush (self->config->out);
}

//  Let go of the member followed.
static void
s_leave (s_watch_t *self)
{
    ctl_client_destroy (&self->client);
    zsock_destroy (&self->sub);
}

static json_t *
s_call (s_watch_t *self, const char *op, json_t *args)
{
    sf_fault_t fault;
    json_t *reply = ctl_client_call (self->client, op, args,
                                     self->config->timeout_ms, &fault);
    json_decref (args);
    if (reply && !json_is_true (json_object_get (reply, "ok"))) {
        char *text = sf_json_text (reply);
        fprintf (stderr, "fabricctl: watch: %s: %s\n", op, text);
        free (text);
        json_decref (reply);
        reply = NULL;
    }
    return reply;
}

//  What the feed no longer has: the state under the prefix, as the
//  ring's entities are now (homeserver-events.md, gaps).
static void
s_state (s_watch_t *self, uint64_t from, uint64_t to)
{
    fprintf (self->config->out,
             "gap: changes %llu..%llu are lost; the state now follows\n",
             (unsigned long long) from + 1, (unsigned long long) to);
    const char *prefix = self->config->prefix;
    const char *path = prefix && strncmp (prefix, "entity:", 7) == 0
                           ? prefix + 7
                           : (!prefix || !*prefix ? "/" : NULL);
    const char *after = NULL;
    char *after_copy = NULL;
    while (path) {
        json_t *args = json_pack ("{s:s,s:i}", "prefix", path, "limit", 1000);
        if (after)
            json_object_set_new (args, "after", json_string (after));
        json_t *page = s_call (self, "entity.list", args);
        if (!page)
            break;
        size_t index;
        json_t *entity;
        json_array_foreach (json_object_get (page, "entities"), index, entity)
        {
            json_t *event = json_pack (
                "{s:I,s:s,s:s,s:O}", "index",
                json_integer_value (json_object_get (entity, "revision")),
                "topic", "state", "op",
                json_string_value (json_object_get (entity, "path")) ?: "?",
                "result", entity);
            s_print (self, event);
            json_decref (event);
        }
        free (after_copy);
        after_copy =
            json_string_value (json_object_get (page, "next"))
                ? strdup (json_string_value (json_object_get (page, "next")))
                : NULL;
        after = after_copy;
        json_decref (page);
        if (!after)
            break;
    }
    free (after_copy);
    fflush (self->config->out);
}

//  Print what the member kept after LAST, page by page; on a gap, the
//  state instead. Returns 0, or -1 if the member did not answer.
static int
s_catch_up (s_watch_t *self)
{
    while (true) {
        json_t *reply =
            s_call (self, "events.read",
                    json_pack ("{s:I,s:i}", "from", (json_int_t) self->last,
                               "limit", 1000));
        if (!reply)
            return -1;
        uint64_t through =
            (uint64_t) json_integer_value (json_object_get (reply, "through"));
        if (json_is_true (json_object_get (reply, "gap"))) {
            s_state (self, self->last, through);
            self->last = through;
            json_decref (reply);
            return 0;
        }
        size_t index;
        json_t *event;
        json_array_foreach (json_object_get (reply, "events"), index, event)
        {
            uint64_t at = (uint64_t) json_integer_value (
                json_object_get (event, "index"));
            if (at <= self->last)
                continue;
            if (s_wanted (self,
                          json_string_value (json_object_get (event, "topic"))))
                s_print (self, event);
            self->last = at;
        }
        if (through > self->last)
            self->last = through;
        bool more = json_is_true (json_object_get (reply, "more"));
        json_decref (reply);
        if (!more)
            return 0;
    }
}

//  Follow member AT of the ring: its API, its events (subscribed before
//  anything is read, so nothing falls between), what it kept since LAST.
//  Returns 0, or -1 if it does not answer.
static int
s_follow (s_watch_t *self, size_t at)
{
    json_t *member = json_array_get (self->members, at);
    const char *api = json_string_value (json_object_get (member, "api"));
    const char *key = json_string_value (json_object_get (member, "key"));
    if (!api || !key)
        return -1;
    sf_fault_t fault;
    zcert_t *cert = self->config->secret
                        ? sf_cert_load_secret (self->config->secret, &fault)
                        : zcert_new ();
    if (!cert)
        return -1;
    zcert_t *sub_cert = zcert_dup (cert);
    self->client = ctl_client_new (api, key, &cert, &fault);
    json_t *status = self->client ? s_call (self, "status", NULL) : NULL;
    const char *events = json_string_value (json_object_get (status, "events"));
    if (!events) {
        if (status)
            fprintf (stderr,
                     "fabricctl: watch: %s has no events endpoint "
                     "(homeserver/events)\n",
                     json_string_value (json_object_get (member, "name")));
        json_decref (status);
        zcert_destroy (&sub_cert);
        s_leave (self);
        return -1;
    }
    self->at = at;
    self->sub = zsock_new (ZMQ_SUB);
    sf_curve_client (self->sub, sub_cert, key);
    zcert_destroy (&sub_cert);
    zsock_set_subscribe (self->sub, "");
    zsock_connect (self->sub, "%s", events);
    json_decref (status);
    if (!self->started) {
        //  From now on: the member's newest change is where we start.
        json_t *reply = s_call (self, "events.read",
                                json_pack ("{s:i,s:i}", "from", 0, "limit", 1));
        if (!reply) {
            s_leave (self);
            return -1;
        }
        self->last =
            (uint64_t) json_integer_value (json_object_get (reply, "last"));
        self->started = true;
        json_decref (reply);
        fprintf (stderr, "fabricctl: watch: following %s after index %llu\n",
                 api, (unsigned long long) self->last);
        return 0;
    }
    if (s_catch_up (self)) {
        s_leave (self);
        return -1;
    }
    return 0;
}

//  Follow another member, starting after the current one, until one
//  answers or we are interrupted.
static void
s_move (s_watch_t *self)
{
    s_leave (self);
    size_t count = json_array_size (self->members);
    while (!zsys_interrupted) {
        for (size_t step = 1; step <= count && !zsys_interrupted; step++)
            if (s_follow (self, (self->at + step) % count) == 0) {
                fprintf (
                    stderr, "fabricctl: watch: following %s\n",
                    json_string_value (json_object_get (
                        json_array_get (self->members, self->at), "name")));
                return;
            }
        zclock_sleep (500);
    }
}

//  One event from the feed: printed if it continues the chain; a gap is
//  filled from the member's kept changes first.
static void
s_event (s_watch_t *self, const char *topic, const char *text)
{
    json_error_t error;
    json_t *event = json_loads (text, 0, &error);
    if (!json_is_object (event)) {
        json_decref (event);
        return;
    }
    //  The feed's body has no topic: it is the message's first frame.
    json_object_set_new (event, "topic", json_string (topic));
    uint64_t index =
        (uint64_t) json_integer_value (json_object_get (event, "index"));
    uint64_t prev =
        (uint64_t) json_integer_value (json_object_get (event, "prev"));
    if (index > self->last && prev > self->last && s_catch_up (self))
        s_move (self);
    if (index > self->last && prev <= self->last) {
        if (s_wanted (self,
                      json_string_value (json_object_get (event, "topic"))))
            s_print (self, event);
        self->last = index;
    }
    json_decref (event);
}

int
ctl_watch_run (const ctl_watch_config_t *config, sf_fault_t *fault)
{
    s_watch_t self = {.config = config};
    //  The ring's members, from the one named.
    self.members = json_pack ("[{s:s,s:s,s:s}]", "name", "(server)", "api",
                              config->server, "key", config->server_key);
    if (s_follow (&self, 0))
        return sf_fault_set (fault, SF_ETIMEOUT,
                             "watch: %s did not answer (or has no events "
                             "endpoint)",
                             config->server);
    json_t *status = s_call (&self, "status", NULL);
    json_t *listed = json_object_get (status, "members");
    if (json_array_size (listed)) {
        //  Start at the member asked; the others follow in their order.
        json_t *members = json_array ();
        json_array_append (members, json_array_get (self.members, 0));
        size_t index;
        json_t *member;
        json_array_foreach (listed, index, member)
        {
            const char *api =
                json_string_value (json_object_get (member, "api"));
            if (api && !streq (api, config->server))
                json_array_append (members, member);
        }
        json_decref (self.members);
        self.members = members;
    }
    json_decref (status);
    while (!zsys_interrupted && self.sub) {
        zmq_pollitem_t item = {zsock_resolve (self.sub), 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll (&item, 1, S_QUIET_MS);
        if (ready < 0)
            break;  //  interrupted
        if (ready > 0) {
            char *topic = NULL, *body = NULL;
            if (zstr_recvx (self.sub, &topic, &body, NULL) == 2)
                s_event (&self, topic, body);
            free (topic);
            free (body);
            continue;
        }
        //  Quiet: is the member still there, and did we miss nothing?
        if (s_catch_up (&self))
            s_move (&self);
    }
    s_leave (&self);
    json_decref (self.members);
    return 0;
}

int
ctl_watch_test (bool verbose)
{
    if (verbose)
        printf (" * ctl_watch: ");
    json_t *event = json_pack (
        "{s:i,s:i,s:s,s:s,s:{s:s,s:s,s:i,s:s,s:{}}}", "index", 42, "prev", 40,
        "op", "authority.request", "topic", "entity:/world/a", "result", "path",
        "/world/a", "authority", "sim2", "epoch", 3, "rule", "ask", "grant");
    char *line = ctl_watch_line (event);
    assert (streq (line, "42 entity:/world/a authority.request "
                         "authority=sim2 epoch=3 rule=ask"));
    free (line);
    json_decref (event);
    event = json_pack ("{s:i,s:s,s:s,s:{}}", "index", 7, "op", "ring.key",
                       "topic", "ring:", "result");
    line = ctl_watch_line (event);
    assert (streq (line, "7 ring: ring.key"));
    free (line);
    json_decref (event);
    if (verbose)
        printf ("OK\n");
    return 0;
}
