/*  hs_link: the Raft transport between ring members (raft-wire.md).

    A ROUTER bound on this member's raft endpoint receives; one DEALER per
    peer sends. Both directions use CURVE: the ROUTER's ZAP domain "raft"
    admits only peers' keys, and each DEALER pins its peer's key. A received
    frame is decoded and its sender id checked against the key that
    authenticated it, so no member can speak for another. Bad frames are
    dropped and counted, never logged one by one. */

#ifndef HS_LINK_H_INCLUDED
#define HS_LINK_H_INCLUDED

#include "common/sf_error.h"
#include "protocol/raft_msg.h"

#include <czmq.h>

//  ZAP domain of raft sockets.
#define HS_LINK_DOMAIN "raft"

typedef struct _hs_link_t hs_link_t;

//  How often hs_link_check should run.
#define HS_LINK_CHECK_MS 100

//  Counters, for status and tests.
typedef struct {
    uint64_t sent;          //  frames handed to a DEALER
    uint64_t send_dropped;  //  no such peer, or its queue was full
    uint64_t received;      //  frames decoded and accepted
    uint64_t malformed;     //  frames that did not decode
    uint64_t impostor;      //  sender id not a peer, or not the sender's key
    uint64_t refused;       //  handshakes a peer refused (then redialled)
} hs_link_counters_t;

//  The raft link of member ID with CERT (lent), using ZAP handler ZAP
//  (lent) for the "raft" domain. Add the peers the configuration names,
//  then bind: a peer that dials before its key is admitted is refused.
hs_link_t *hs_link_new (raft_id id, zcert_t *cert, zactor_t *zap);

//  Bind the raft ROUTER on ENDPOINT. Returns 0, or -1 with FAULT.
int hs_link_bind (hs_link_t *self, const char *endpoint, sf_fault_t *fault);

//  Destroy the link and null the caller's pointer.
void hs_link_destroy (hs_link_t **self_p);

//  Know peer ID at raft ADDRESS with public KEY (Z85): admit its key and
//  connect a DEALER to it. Replaces what was known of ID before (another
//  key it had is no longer admitted). A peer
//  that refuses our handshake (it did not know our key yet: we joined, or
//  it restarted and has yet to learn of us from the log) is dialled
//  again by hs_link_check (sf_curve_redial_at).
void hs_link_add_peer (hs_link_t *self, raft_id id, const char *address,
                       const char *key);

//  Forget peer ID (a member removed from the ring): close its DEALER and
//  stop admitting its key on the raft ROUTER. A session it opened before
//  stays open until it ends, but what arrives on it is dropped as from an
//  unknown sender (counted as impostor). Nothing if ID is not known.
void hs_link_remove_peer (hs_link_t *self, raft_id id);

//  Replace the DEALERs whose handshake was refused, once they are due
//  (libzmq never redials them). Call every HS_LINK_CHECK_MS; NOW is
//  sf_time_mono_ms.
void hs_link_check (hs_link_t *self, uint64_t now);

//  True if peer ID is known.
bool hs_link_knows (hs_link_t *self, raft_id id);

//  The ROUTER, to register on a loop. Lent.
zsock_t *hs_link_socket (hs_link_t *self);

//  The raft endpoint as bound. Lent.
const char *hs_link_endpoint (hs_link_t *self);

//  Encode MESSAGE and send it to message->server_id. Best effort.
void hs_link_send (hs_link_t *self, const struct raft_message *message);

//  Send a read probe or its ack (raft-wire.md types 7, 8) to member TO.
void hs_link_send_probe (hs_link_t *self, raft_id to, int type, raft_term term,
                         uint64_t seq);

//  Send a MembersQuery (N 0) or Members frame naming N MEMBERS
//  (raft-wire.md types 9, 10) to member TO.
void hs_link_send_members (hs_link_t *self, raft_id to, int type,
                           const raft_msg_member_t *members, unsigned n);

//  Send member TO our replica DIGEST at applied INDEX (raft-wire.md type
//  11).
void hs_link_send_digest (hs_link_t *self, raft_id to, raft_index index,
                          const uint8_t *digest);

//  Ids of the peers known, up to MAX into IDS. Returns how many.
unsigned hs_link_peer_ids (hs_link_t *self, raft_id *ids, unsigned max);

//  Receive one frame waiting on the ROUTER into MSG. Returns 0 if MSG holds
//  an accepted message (the caller then owns what the decoder allocated),
//  or -1 if the frame was dropped (and counted).
int hs_link_recv (hs_link_t *self, raft_msg_t *msg);

//  The counters. Lent.
const hs_link_counters_t *hs_link_counters (hs_link_t *self);

#endif
