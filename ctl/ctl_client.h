/*  ctl_client: blocking client of the JSON API, for fabricctl.

    One DEALER over CURVE to one daemon. Each request gets a fresh id and
    the reply with that id is awaited up to a timeout; stray replies (from
    an earlier request that timed out) are skipped. When no reply comes,
    the fault says what the connection did: nothing listening, a daemon
    that took the connection but not our CURVE handshake (its key is not
    the one we were given), one that refused our key, or one that was
    reached and did not answer in time. */

#ifndef CTL_CLIENT_H_INCLUDED
#define CTL_CLIENT_H_INCLUDED

#include "common/sf_error.h"

#include <czmq.h>
#include <jansson.h>

typedef struct _ctl_client_t ctl_client_t;

//  Connect to ENDPOINT, trusting only SERVER_KEY (Z85), as CERT (the
//  client takes it). Returns NULL with FAULT set on a bad endpoint.
ctl_client_t *ctl_client_new (const char *endpoint, const char *server_key,
                              zcert_t **cert, sf_fault_t *fault);

//  Destroy the client and null the caller's pointer.
void ctl_client_destroy (ctl_client_t **self_p);

//  Send request OP with ARGS (an object whose members are copied beside op
//  and id; may be NULL) and wait up to TIMEOUT_MS for the reply. Returns
//  the reply (caller decrefs) whether ok or not, or NULL with FAULT set to
//  SF_ETIMEOUT (no reply; the message names the endpoint, the time waited
//  and the likely cause) or SF_EMALFORMED (a reply we cannot read).
json_t *ctl_client_call (ctl_client_t *self, const char *op, const json_t *args,
                         int timeout_ms, sf_fault_t *fault);

//  Send request OP with ARGS (as ctl_client_call) without waiting; returns
//  its id. Several may be in flight; ctl_client_recv takes their replies.
int64_t ctl_client_send (ctl_client_t *self, const char *op,
                         const json_t *args);

//  The next reply, whichever request it answers, within TIMEOUT_MS.
//  Caller decrefs; NULL with FAULT as ctl_client_call.
json_t *ctl_client_recv (ctl_client_t *self, int timeout_ms, sf_fault_t *fault);

//  Send REQUEST (raw bytes, sent unchanged) and wait for one reply. For
//  debugging a daemon with hand-written requests. Returns the reply text
//  (caller frees) or NULL with FAULT set.
char *ctl_client_call_raw (ctl_client_t *self, const char *request,
                           int timeout_ms, sf_fault_t *fault);

#endif
