/*  sim_server: the simulation server daemon's actor. */

#include "peer/sim_server.h"
#include "common/sf_cert.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_program.h"
#include "common/sf_time.h"
#include "common/sf_zap.h"
#include "protocol/api_router.h"

const sf_config_key_t sim_server_schema [] = {
    {"sim/name", "name", SF_CONFIG_STRING, true, NULL, NULL,
     "simulation server name, unique in its instance"},
    {"sim/api", "api", SF_CONFIG_ENDPOINT, true, NULL, "tcp|ipc|inproc",
     "endpoint of the JSON API"},
    {"sim/secret_key", "secret-key", SF_CONFIG_PATH, true, NULL, NULL,
     "this node's secret certificate (mode 0600)"},
    {"sim/clients", "clients", SF_CONFIG_PATH, false, NULL, NULL,
     "folder of client certificates allowed to connect (default: any "
     "CURVE client; requests are then authorised per principal)"},
    SF_PROGRAM_LOG_KEYS,
    {NULL},
};

struct _sim_server_t {
    char *name;           //  node name
    zcert_t *cert;        //  this node's key pair
    zactor_t *zap;        //  ZAP handler: who may open a CURVE session
    api_router_t *api;    //  JSON requests over CURVE
    uint64_t started_ms;  //  monotonic start time, for uptime
};

static int
s_op_status (void *context, const api_msg_t *request, const char *principal,
             json_t *reply, sf_fault_t *fault)
{
    sim_server_t *self = (sim_server_t *) context;
    (void) principal;
    static const char *allowed [] = {"op", "id", NULL};
    if (sf_json_only (request->root, allowed, fault))
        return -1;
    json_object_set_new (reply, "node", json_string (self->name));
    json_object_set_new (reply, "version", json_string (SIMFABRIC_VERSION));
    json_object_set_new (
        reply, "uptime_ms",
        json_integer ((json_int_t) (sf_time_mono_ms () - self->started_ms)));
    return 0;
}

static const api_msg_op_t s_ops [] = {
    {"status", s_op_status},
    {NULL, NULL},
};

sim_server_t *
sim_server_new (sf_config_t *config, sf_fault_t *fault)
{
    sim_server_t *self = (sim_server_t *) zmalloc (sizeof (sim_server_t));
    self->name = strdup (sf_config_str (config, "sim/name"));
    self->started_ms = sf_time_mono_ms ();
    self->cert =
        sf_cert_load_secret (sf_config_str (config, "sim/secret_key"), fault);
    if (!self->cert)
        goto failed;
    self->zap = sf_zap_new ();
    if (!self->zap) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot start the ZAP handler");
        goto failed;
    }
    const char *clients = sf_config_str (config, "sim/clients");
    if (!clients)
        sf_zap_allow_any (self->zap, API_ROUTER_DOMAIN);
    else if (sf_zap_allow_dir (self->zap, API_ROUTER_DOMAIN, clients, fault)
             < 0)
        goto failed;
    self->api =
        api_router_new (sf_config_str (config, "sim/api"), self->cert, fault);
    if (!self->api)
        goto failed;
    return self;
failed:
    sim_server_destroy (&self);
    return NULL;
}

void
sim_server_destroy (sim_server_t **self_p)
{
    if (*self_p) {
        sim_server_t *self = *self_p;
        api_router_destroy (&self->api);
        zactor_destroy (&self->zap);
        zcert_destroy (&self->cert);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

const char *
sim_server_endpoint (sim_server_t *self)
{
    return api_router_endpoint (self->api);
}

static int
s_handle_api (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop, (void) reader;
    sim_server_t *self = (sim_server_t *) arg;
    return api_router_handle (self->api, s_ops, self, "sim_server");
}

static int
s_handle_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    sim_server_t *self = (sim_server_t *) arg;
    char *command = zstr_recv (pipe);
    if (!command)
        return -1;  //  interrupted
    int rc = 0;
    if (streq (command, "$TERM"))
        rc = -1;
    else if (streq (command, "ENDPOINT"))
        zstr_send (pipe, api_router_endpoint (self->api));
    else
        sf_log_error ("sim_server: unknown pipe command %s", command);
    free (command);
    return rc;
}

void
sim_server_actor (zsock_t *pipe, void *args)
{
    sim_server_t *self = (sim_server_t *) args;
    zloop_t *loop = zloop_new ();
    zloop_reader (loop, pipe, s_handle_pipe, self);
    zloop_reader (loop, api_router_socket (self->api), s_handle_api, self);
    zsock_signal (pipe, 0);
    sf_log_notice ("sim_server: ready api=%s", api_router_endpoint (self->api));
    zloop_start (loop);
    zloop_destroy (&loop);
    sim_server_destroy (&self);
}
