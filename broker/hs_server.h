/*  hs_server: the homeserver daemon's actor.

    Owns every socket of one homeserver on one sf_loop: for now the JSON API
    ROUTER (CURVE), answering "status". The Raft ring, its SQLite store
    and the events socket attach here.

    Pipe commands (from the thread that made the actor):
        "$TERM"      stop and destroy the server
        "ENDPOINT"   reply with the API endpoint actually bound */

#ifndef HS_SERVER_H_INCLUDED
#define HS_SERVER_H_INCLUDED

#include "common/sf_config.h"

#include <czmq.h>

typedef struct _hs_server_t hs_server_t;

//  Configuration keys of the homeserver, ended by a NULL path.
extern const sf_config_key_t hs_server_schema [];

//  Build a server from CONFIG (lent): loads the key, starts the ZAP
//  handler and binds the sockets. Returns NULL with FAULT set on failure.
hs_server_t *hs_server_new (sf_config_t *config, sf_fault_t *fault);

//  homeserver --restore FILE (operations.md section 3): make this
//  member's data folder hold a new ring whose state is the backup FILE's,
//  at the backup's index, term 1, the members CONFIG's ring names. The
//  folder must hold no ring yet. Returns the index restored, or 0 with
//  FAULT.
uint64_t hs_server_restore (sf_config_t *config, const char *file,
                            sf_fault_t *fault);

//  Destroy the server and null the caller's pointer.
void hs_server_destroy (hs_server_t **self_p);

//  The API endpoint as bound (an ephemeral port resolved). Lent.
const char *hs_server_endpoint (hs_server_t *self);

//  Actor body: ARGS is an hs_server_t that the actor takes over and
//  destroys when it stops.
void hs_server_actor (zsock_t *pipe, void *args);

#endif
