/*  hs_fed: the federation socket and the peer instances it admits. */

#include "broker/hs_fed.h"
#include "common/sf_cert.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_name.h"
#include "common/sf_zap.h"
#include "protocol/api_router.h"

#include <assert.h>
#include <string.h>
#include <unistd.h>

//  A member of a peer instance as configured.
typedef struct {
    char *instance;                   //  its instance's name
    char *name;                       //  its section name
    char *endpoint;                   //  its federation endpoint
    char key [SF_CERT_KEY_TEXT + 1];  //  its public key, Z85
} s_peer_t;

struct _hs_fed_t {
    char *instance;          //  this instance's name
    char *node;              //  this member's name
    api_router_t *router;    //  the federation socket
    hs_fsm_t *fsm;           //  the applied state, for lookups
    hs_fed_status_fn *status;
    void *status_arg;
    s_peer_t *peers;
    size_t n_peers;
};

bool
hs_fed_configured (sf_config_t *config)
{
    zlist_t *instances = sf_config_names (config, "federation");
    bool peers = zlist_size (instances) > 0;
    zlist_destroy (&instances);
    return peers || sf_config_str (config, "homeserver/federation");
}

//  Read every peer member of CONFIG's federation section into SELF. FILE
//  names the config in faults. Returns 0, or -1 with FAULT.
static int
s_peers_load (hs_fed_t *self, sf_config_t *config, sf_fault_t *fault)
{
    const char *file = sf_config_filename (config);
    zlist_t *instances = sf_config_names (config, "federation");
    int rc = 0;
    for (char *instance = (char *) zlist_first (instances);
         instance && rc == 0; instance = (char *) zlist_next (instances)) {
        char prefix [300], path [400];
        snprintf (prefix, sizeof prefix, "federation/%s/member", instance);
        zlist_t *members = sf_config_names (config, prefix);
        if (!sf_name_instance_valid (instance))
            rc = sf_fault_set (fault, SF_EINVAL,
                               "config %s: federation/%s: an instance name "
                               "is 1 to 32 of a-z, 0-9 and '-'",
                               file, instance);
        else if (streq (instance, self->instance))
            rc = sf_fault_set (fault, SF_EINVAL,
                               "config %s: federation/%s is this instance "
                               "(homeserver/instance)",
                               file, instance);
        else if (zlist_size (members) == 0)
            rc = sf_fault_set (fault, SF_EINVAL,
                               "config %s: federation/%s has no member", file,
                               instance);
        self->peers = (s_peer_t *) realloc (
            self->peers, (self->n_peers + zlist_size (members) + 1)
                             * sizeof (s_peer_t));
        for (char *name = (char *) zlist_first (members); name && rc == 0;
             name = (char *) zlist_next (members)) {
            snprintf (path, sizeof path, "%s/%s/federation", prefix, name);
            const char *endpoint = sf_config_str (config, path);
            snprintf (path, sizeof path, "%s/%s/key", prefix, name);
            const char *key = sf_config_str (config, path);
            if (!endpoint || !key) {
                rc = sf_fault_set (fault, SF_EINVAL,
                                   "config %s: %s/%s needs federation and "
                                   "key (missing %s)",
                                   file, prefix, name,
                                   !endpoint ? "federation" : "key");
                break;
            }
            s_peer_t *peer = &self->peers [self->n_peers];
            memset (peer, 0, sizeof *peer);
            sf_fault_t why;
            if (sf_cert_load_public (key, peer->key, &why)) {
                rc = sf_fault_set (fault, why.error, "config %s: %s/%s: %s",
                                   file, prefix, name, why.message);
                break;
            }
            const char *other = hs_fed_instance_of (self, peer->key);
            if (other)
                rc = sf_fault_set (fault, SF_EINVAL,
                                   "config %s: %s/%s has the key of a member "
                                   "of instance '%s' too: a key speaks for one "
                                   "instance",
                                   file, prefix, name, other);
            peer->instance = strdup (instance);
            peer->name = strdup (name);
            peer->endpoint = strdup (endpoint);
            self->n_peers++;
        }
        zlist_destroy (&members);
    }
    zlist_destroy (&instances);
    return rc;
}

//  fed.status: who this member is, and whether it leads.
static int
s_fed_status (void *context, const api_msg_t *request, const char *principal,
              json_t *reply, sf_fault_t *fault)
{
    (void) request;
    (void) principal;
    (void) fault;
    hs_fed_t *self = (hs_fed_t *) context;
    json_object_set_new (reply, "instance", json_string (self->instance));
    json_object_set_new (reply, "node", json_string (self->node));
    if (self->status) {
        json_t *status = self->status (self->status_arg);
        json_object_update (reply, status);
        json_decref (status);
    }
    return 0;
}

//  fed.lookup: a name of this instance, from the applied state. An
//  instance answers for its own names only.
static int
s_fed_lookup (void *context, const api_msg_t *request, const char *principal,
              json_t *reply, sf_fault_t *fault)
{
    (void) principal;
    hs_fed_t *self = (hs_fed_t *) context;
    static const char *const fields [] = {"op", "id", "name", "kind", NULL};
    const char *name, *kind;
    if (sf_json_only (request->root, fields, fault)
        || sf_json_string (request->root, "name", true, &name, fault)
        || sf_json_string (request->root, "kind", true, &kind, fault))
        return -1;
    //  NAME@INSTANCE must be ours; a bare name is.
    char local [65];
    const char *at = strchr (name, '@');
    size_t size = at ? (size_t) (at - name) : strlen (name);
    if (at && !streq (at + 1, self->instance))
        return sf_fault_set (fault, SF_EINVAL,
                             "'%s' is not a name of instance '%s': ask its "
                             "own instance",
                             name, self->instance);
    if (size == 0 || size >= sizeof local)
        return sf_fault_set (fault, SF_EINVAL, "field 'name' is not a name");
    memcpy (local, name, size);
    local [size] = 0;
    if (!sf_name_valid (local))
        return sf_fault_set (fault, SF_EINVAL, "field 'name' is not a name");
    json_t *entry = hs_fsm_lookup (self->fsm, kind, local, fault);
    if (!entry)
        return -1;
    char global [65 + SF_NAME_MAX_INSTANCE + 1];
    snprintf (global, sizeof global, "%s@%s", local, self->instance);
    json_object_set_new (entry, "name", json_string (global));
    json_object_update (reply, entry);
    json_decref (entry);
    return 0;
}

static const api_msg_op_t s_ops [] = {
    {"fed.status", s_fed_status},
    {"fed.lookup", s_fed_lookup},
    {NULL, NULL},
};

hs_fed_t *
hs_fed_new (sf_config_t *config, const char *node, zcert_t *cert,
            zactor_t *zap, hs_fsm_t *fsm, hs_fed_status_fn *status, void *arg,
            sf_fault_t *fault)
{
    const char *file = sf_config_filename (config);
    const char *instance = sf_config_str (config, "homeserver/instance");
    const char *endpoint = sf_config_str (config, "homeserver/federation");
    if (!instance || !endpoint) {
        sf_fault_set (fault, SF_EINVAL,
                      "config %s: federation needs homeserver/instance and "
                      "homeserver/federation (missing %s)",
                      file, !instance ? "homeserver/instance"
                                      : "homeserver/federation");
        return NULL;
    }
    if (!sf_name_instance_valid (instance)) {
        sf_fault_set (fault, SF_EINVAL,
                      "config %s: homeserver/instance '%s': an instance name "
                      "is 1 to 32 of a-z, 0-9 and '-'",
                      file, instance);
        return NULL;
    }
    hs_fed_t *self = (hs_fed_t *) zmalloc (sizeof (hs_fed_t));
    self->instance = strdup (instance);
    self->node = strdup (node);
    self->fsm = fsm;
    self->status = status;
    self->status_arg = arg;
    if (s_peers_load (self, config, fault))
        goto failed;
    for (size_t at = 0; at < self->n_peers; at++) {
        if (streq (self->peers [at].key, zcert_public_txt (cert))) {
            sf_fault_set (fault, SF_EINVAL,
                          "config %s: federation/%s/member/%s has this "
                          "member's own key",
                          file, self->peers [at].instance,
                          self->peers [at].name);
            goto failed;
        }
        sf_zap_allow (zap, HS_FED_DOMAIN, self->peers [at].key);
    }
    self->router = api_router_new (endpoint, cert, HS_FED_DOMAIN, fault);
    if (!self->router)
        goto failed;
    return self;
failed:
    hs_fed_destroy (&self);
    return NULL;
}

void
hs_fed_destroy (hs_fed_t **self_p)
{
    if (*self_p) {
        hs_fed_t *self = *self_p;
        api_router_destroy (&self->router);
        for (size_t at = 0; at < self->n_peers; at++) {
            free (self->peers [at].instance);
            free (self->peers [at].name);
            free (self->peers [at].endpoint);
        }
        free (self->peers);
        free (self->instance);
        free (self->node);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
hs_fed_socket (hs_fed_t *self)
{
    return api_router_socket (self->router);
}

const char *
hs_fed_endpoint (hs_fed_t *self)
{
    return api_router_endpoint (self->router);
}

const char *
hs_fed_instance (hs_fed_t *self)
{
    return self->instance;
}

const char *
hs_fed_instance_of (hs_fed_t *self, const char *key)
{
    for (size_t at = 0; at < self->n_peers; at++)
        if (streq (self->peers [at].key, key))
            return self->peers [at].instance;
    return NULL;
}

int
hs_fed_handle (hs_fed_t *self)
{
    return api_router_handle (self->router, s_ops, self, "hs_fed");
}

void
hs_fed_counters (hs_fed_t *self, json_t *counters)
{
    const api_router_counters_t *served = api_router_counters (self->router);
    json_object_set_new (counters, "federation_requests",
                         json_integer ((json_int_t) served->requests));
    json_object_set_new (counters, "federation_refused",
                         json_integer ((json_int_t) served->refused));
}

//  --------------------------------------------------------------------------
//  Self test

//  A config of TEXT, loaded from a file against the federation keys.
static sf_config_t *
s_test_config (const char *text)
{
    static const sf_config_key_t schema [] = {HS_FED_KEYS, {NULL}};
    char file [] = "/tmp/hs_fed_test_XXXXXX";
    int fd = mkstemp (file);
    assert (fd >= 0);
    ssize_t written = write (fd, text, strlen (text));
    assert (written == (ssize_t) strlen (text));
    close (fd);
    sf_fault_t fault;
    sf_config_t *config = sf_config_new (schema);
    int rc = sf_config_load (config, file, &fault);
    assert (rc == 0);
    unlink (file);
    return config;
}

int
hs_fed_test (bool verbose)
{
    if (verbose)
        printf (" * hs_fed: ");
    zactor_t *zap = sf_zap_new ();
    assert (zap);
    zcert_t *cert = zcert_new ();
    zcert_t *east = zcert_new ();
    char east_file [] = "/tmp/hs_fed_east_XXXXXX", own_file [64];
    int fd = mkstemp (east_file);
    assert (fd >= 0);
    close (fd);
    int rc = zcert_save_public (east, east_file);
    assert (rc == 0);
    snprintf (own_file, sizeof own_file, "%s.own", east_file);
    rc = zcert_save_public (cert, own_file);
    assert (rc == 0);
    char text [2048];
    sf_fault_t fault;

    //  Not configured: no endpoint, no peers
    sf_config_t *config = s_test_config ("homeserver\n    instance = \"w\"\n");
    assert (!hs_fed_configured (config));
    sf_config_destroy (&config);

    //  A peer instance with one member, pinned
    snprintf (text, sizeof text,
              "homeserver\n    instance = \"west\"\n"
              "    federation = \"tcp://127.0.0.1:*\"\n"
              "federation\n    east\n        member\n            hs1\n"
              "                federation = \"tcp://127.0.0.1:9\"\n"
              "                key = \"%s\"\n",
              east_file);
    config = s_test_config (text);
    assert (hs_fed_configured (config));
    hs_fed_t *fed =
        hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
    assert (fed);
    assert (streq (hs_fed_instance (fed), "west"));
    assert (streq (hs_fed_instance_of (fed, zcert_public_txt (east)), "east"));
    assert (!hs_fed_instance_of (fed, zcert_public_txt (cert)));
    assert (strncmp (hs_fed_endpoint (fed), "tcp://127.0.0.1:", 16) == 0);
    hs_fed_destroy (&fed);
    sf_config_destroy (&config);

    //  Misconfigurations name what is wrong
    static const struct {
        const char *instance, *peer, *endpoint;
        bool own_key;
        const char *expected;
    } bad [] = {
        {"West", "east", "tcp://127.0.0.1:9", false, "homeserver/instance"},
        {"west", "west", "tcp://127.0.0.1:9", false, "is this instance"},
        {"west", "e_1", "tcp://127.0.0.1:9", false, "an instance name"},
        {"west", "east", NULL, false, "missing federation"},
        {"west", "east", "tcp://127.0.0.1:9", true, "own key"},
    };
    for (size_t at = 0; at < sizeof bad / sizeof bad [0]; at++) {
        char endpoint [64] = "";
        if (bad [at].endpoint)
            snprintf (endpoint, sizeof endpoint,
                      "                federation = \"%s\"\n",
                      bad [at].endpoint);
        snprintf (text, sizeof text,
                  "homeserver\n    instance = \"%s\"\n"
                  "    federation = \"tcp://127.0.0.1:*\"\n"
                  "federation\n    %s\n        member\n            hs1\n"
                  "%s                key = \"%s\"\n",
                  bad [at].instance, bad [at].peer, endpoint,
                  bad [at].own_key ? own_file : east_file);
        config = s_test_config (text);
        sf_fault_clear (&fault);
        fed = hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
        assert (!fed && fault.error == SF_EINVAL);
        assert (strstr (fault.message, bad [at].expected));
        sf_config_destroy (&config);
    }
    //  One key in two instances
    snprintf (text, sizeof text,
              "homeserver\n    instance = \"west\"\n"
              "    federation = \"tcp://127.0.0.1:*\"\n"
              "federation\n    east\n        member\n            hs1\n"
              "                federation = \"tcp://127.0.0.1:9\"\n"
              "                key = \"%s\"\n"
              "    north\n        member\n            hs1\n"
              "                federation = \"tcp://127.0.0.1:8\"\n"
              "                key = \"%s\"\n",
              east_file, east_file);
    config = s_test_config (text);
    fed = hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
    assert (!fed && strstr (fault.message, "speaks for one instance"));
    sf_config_destroy (&config);
    //  A federation endpoint without an instance name
    config = s_test_config (
        "homeserver\n    federation = \"tcp://127.0.0.1:*\"\n");
    fed = hs_fed_new (config, "hs1", cert, zap, NULL, NULL, NULL, &fault);
    assert (!fed && strstr (fault.message, "missing homeserver/instance"));
    sf_config_destroy (&config);

    unlink (east_file);
    unlink (own_file);
    zcert_destroy (&east);
    zcert_destroy (&cert);
    zactor_destroy (&zap);
    if (verbose)
        printf ("OK\n");
    return 0;
}
