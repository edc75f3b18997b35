/*  sim_server: the simulation server daemon's actor.

    Owns every socket of one simulation server on one sf_loop: the client
    API ROUTER (CURVE, sim_api), the ring client (sim_ring: registration,
    heartbeats, the directory of peers), and the UDP state stream
    (sim_stream) over the entity store (sim_store). The handoff channel
    will attach here.

    Pipe commands (from the thread that made the actor):
        "$TERM"      stop and destroy the server
        "ENDPOINT"   reply with the API endpoint actually bound */

#ifndef SIM_SERVER_H_INCLUDED
#define SIM_SERVER_H_INCLUDED

#include "common/sf_config.h"

#include <czmq.h>

typedef struct _sim_server_t sim_server_t;

//  Configuration keys of the simulation server, ended by a NULL path.
extern const sf_config_key_t sim_server_schema [];

//  Build a server from CONFIG (lent): loads the key, starts the ZAP
//  handler and binds the sockets. Returns NULL with FAULT set on failure.
sim_server_t *sim_server_new (sf_config_t *config, sf_fault_t *fault);

//  Destroy the server and null the caller's pointer.
void sim_server_destroy (sim_server_t **self_p);

//  The API endpoint as bound (an ephemeral port resolved). Lent.
const char *sim_server_endpoint (sim_server_t *self);

//  Actor body: ARGS is an sim_server_t that the actor takes over and
//  destroys when it stops.
void sim_server_actor (zsock_t *pipe, void *args);

#endif
