/*  hs_fed: this homeserver's side of federation (protocol/federation.md
    sections 2 and 3): the instance it belongs to, the peer instances and
    their members as configured, and the federation socket, a CURVE ROUTER
    that admits only those members' keys and serves fed.* requests.

    The server registers the socket on its loop and calls hs_fed_handle
    when it is readable. Which instance a request speaks for is known from
    the key that opened the session, never from the request. */

#ifndef HS_FED_H_INCLUDED
#define HS_FED_H_INCLUDED

#include "broker/hs_fsm.h"
#include "common/sf_config.h"
#include "common/sf_error.h"
#include "protocol/api_router.h"

#include <czmq.h>
#include <jansson.h>

typedef struct _hs_fed_t hs_fed_t;

//  ZAP domain of the federation socket.
#define HS_FED_DOMAIN "federation"

//  The configuration keys of federation, for the homeserver's schema.
// clang-format off
#define HS_FED_KEYS                                                          \
    {"homeserver/instance", "instance", SF_CONFIG_STRING, false, NULL, NULL, \
     "this instance's name (federation.md), the same on every member"},     \
    {"homeserver/federation", "federation", SF_CONFIG_ENDPOINT, false, NULL, \
     "tcp", "this member's federation endpoint (a ROUTER)"},                \
    {"federation/*/member/*/federation", NULL, SF_CONFIG_ENDPOINT, false,    \
     NULL, "tcp", "a peer instance's member's federation endpoint"},        \
    {"federation/*/member/*/key", NULL, SF_CONFIG_PATH, false, NULL, NULL,   \
     "a peer instance's member's public certificate"},                      \
    {"homeserver/federation_key_ttl", "federation-key-ttl", SF_CONFIG_INT,   \
     false, "10000", "100..3600000",                                         \
     "ms a foreign name's key is kept before it is asked again"}
// clang-format on

//  What fed.status says of this member besides its instance and name: a
//  new JSON object ({"role", "leader", "applied_index"}).
typedef json_t *(hs_fed_status_fn) (void *arg);

//  True if CONFIG asks for federation (a federation endpoint, or peers).
bool hs_fed_configured (sf_config_t *config);

//  Read the federation section of CONFIG, admit the peer members' keys on
//  ZAP (the process's handler) and bind the federation socket with CERT
//  (lent, must outlive it). NODE is this member's name. FSM (lent) answers
//  lookups; STATUS and ARG fill fed.status. Returns NULL with FAULT naming
//  the config key at fault, or the endpoint that cannot be bound.
hs_fed_t *hs_fed_new (sf_config_t *config, const char *node, zcert_t *cert,
                      zactor_t *zap, hs_fsm_t *fsm, hs_fed_status_fn *status,
                      void *arg, sf_fault_t *fault);

//  Destroy and null the caller's pointer.
void hs_fed_destroy (hs_fed_t **self_p);

//  The federation socket, to register on a loop. Lent.
zsock_t *hs_fed_socket (hs_fed_t *self);

//  The federation endpoint as bound. Lent.
const char *hs_fed_endpoint (hs_fed_t *self);

//  This instance's name. Lent.
const char *hs_fed_instance (hs_fed_t *self);

//  This member's name. Lent.
const char *hs_fed_node (hs_fed_t *self);

//  The peer instance whose member holds KEY (Z85), or NULL. Lent.
const char *hs_fed_instance_of (hs_fed_t *self, const char *key);

//  Who serves what peer instances ask of the ring: fed.claim, fed.fenced,
//  fed.withdraw and fed.read (federation.md sections 5 to 7): FN takes
//  the call and the name of the peer instance whose member sent it.
typedef void (hs_fed_claim_fn) (void *arg, api_call_t *call,
                                const char *instance);
void hs_fed_on_claim (hs_fed_t *self, hs_fed_claim_fn *fn, void *arg);

//  Serve one request waiting on the socket. Returns 0.
int hs_fed_handle (hs_fed_t *self);

//  The sockets to the peer instances' members, NULL-terminated, to
//  register on a loop; call hs_fed_receive when one is readable. Lent.
zsock_t **hs_fed_links (hs_fed_t *self);

//  Read the replies waiting on LINK (one of hs_fed_links) at NOW (ms,
//  monotonic). Returns 0.
int hs_fed_receive (hs_fed_t *self, zsock_t *link, uint64_t now);

//  Give up on requests past their time, trying the instance's next member
//  (federation.md section 3). Call every 100 ms or so with NOW.
void hs_fed_tick (hs_fed_t *self, uint64_t now);

//  What a request to a peer instance came to: REPLY (lent; the whole
//  envelope, "ok": true) from MEMBER ("NAME@INSTANCE", lent), or NULL
//  with FAULT: the instance's own error, or
//  timeout (no member answered in time; what it did is unknown), or
//  not_found (no such instance), or unavailable (too many waiting).
typedef void (hs_fed_reply_fn) (void *arg, const json_t *reply,
                                const char *member, const sf_fault_t *fault);

//  Send REQUEST (taken: "op" and arguments; its "id" is set here) to peer
//  INSTANCE: to the member that last led it, else the first configured.
//  A member that names another as leader (not_leader "try NAME") or
//  cannot serve now has it sent on; one silent for ATTEMPT_MS is given up
//  on and the next member tried, until TIMEOUT_MS after NOW. So a request
//  may reach more than one member: only idempotent ones are sent. FN is
//  called once with ARG, at once or from hs_fed_receive or hs_fed_tick.
void hs_fed_call (hs_fed_t *self, const char *instance, json_t **request_p,
                  uint64_t attempt_ms, uint64_t timeout_ms, uint64_t now,
                  hs_fed_reply_fn *fn, void *arg);

//  What a lookup came to: ENTRY (lent; {"name", "kind", "key", ...}) or
//  NULL with FAULT.
typedef void (hs_fed_lookup_fn) (void *arg, const json_t *entry,
                                 const sf_fault_t *fault);

//  Look up the sim or player (KIND) NAME, a global name NAME@INSTANCE of
//  a peer instance (federation.md section 4): from the cache if asked
//  within federation_key_ttl, else from that instance. FN is called once
//  with ARG, at once or when the answer comes (not_found for an instance
//  not configured; unavailable if no member answered).
void hs_fed_lookup (hs_fed_t *self, const char *kind, const char *name,
                    uint64_t now, hs_fed_lookup_fn *fn, void *arg);

//  Tell every peer instance that this instance's KIND NAME (local) has
//  KEY now (fed.rekeyed), so their caches need not wait for their expiry.
//  Fire and forget: a push lost is bounded by the expiry.
void hs_fed_push_key (hs_fed_t *self, const char *kind, const char *name,
                      const char *key);

//  Requests served and refused on the federation socket, into COUNTERS
//  (a JSON object, lent) as federation_requests and federation_refused.
void hs_fed_counters (hs_fed_t *self, json_t *counters);

//  Whether a sim of this instance whose last heartbeat was committed at
//  HEARTBEAT_MS holds its lease: 1, 0, or -1 with FAULT (hs_api_sim_lease).
//  fed.lookup with "lease": true answers with it, "held" or "expired"
//  (federation.md section 6).
typedef int (hs_fed_lease_fn) (void *arg, uint64_t heartbeat_ms,
                               sf_fault_t *fault);
void hs_fed_on_lease (hs_fed_t *self, hs_fed_lease_fn *fn, void *arg);

//  The peer instances' names, each once: a new array.
json_t *hs_fed_peer_instances (hs_fed_t *self);

//  Self test; returns 0 on success.
int hs_fed_test (bool verbose);

#endif
