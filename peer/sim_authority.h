/*  sim_authority: what this sim is the authority of, and its claims, as a
    core without I/O (STYLE.md, "Cores without I/O").

    Per entity path the core knows one of:
    - held: this sim is the authority, at EPOCH; each local edit gets the
      next SEQ of that epoch, never one given before;
    - claimed: one claim in flight (CLAIM, its id), first on the ring,
      then granted at an epoch and waiting for the former authority's
      final state; a second claim of the path joins it and gets the same
      answer, so two answers can never name one epoch with two states;
    - neither (a replica, or nothing): edits are refused.

    Events go in as calls, time is passed in (monotonic ms), and the core
    tells the world what to do through one callback, ACT, with one action
    at a time. The core's own state is updated before each action goes
    out, and ACT must not call back into the core (follow-up events are
    fed in by the caller after the event that caused them returns).

          claim ──► REQUEST ──► granted ──► final state (HANDOFF from the
            │                     │         former authority, or the
            │ (in flight:         │         checkpoint of an orphan, or
            │  joins, same        │         after the wait) ──► TAKE,
            │  answer)            │                              ANSWER
            ▼                     ▼
          refused ──► ANSWER    another sim's grant after ours came
                      (error)   first: PASS_ON the state to it, ANSWER
                                (conflict)

    A grant seen for a held path (the ring's event, or the heartbeat's
    read of the ring) fences it: HANDOFF of the final state to the new
    authority, then FENCE. A grant to this sim that no claim here asked
    for (an administrator's) is taken as a claim would take it, answering
    no one. */

#ifndef SIM_AUTHORITY_H_INCLUDED
#define SIM_AUTHORITY_H_INCLUDED

#include "common/sf_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _sim_authority_t sim_authority_t;

//  How long a granted claim waits for the former authority's final state
//  before it starts from the ring's checkpoint.
#define SIM_AUTHORITY_HANDOFF_WAIT_MS 2000
//  How long a final state that came before its grant is kept.
#define SIM_AUTHORITY_EARLY_KEEP_MS 10000

//  Where a taken state came from.
typedef enum {
    SIM_AUTHORITY_FROM_HANDOFF,     //  the former authority's final state
    SIM_AUTHORITY_FROM_CHECKPOINT,  //  the ring's last checkpoint
    SIM_AUTHORITY_FROM_SELF,        //  held here already, nothing moved
} sim_authority_from_t;

//  What the core asks the world to do.
typedef enum {
    //  Send claim CLAIM of PATH to the ring (authority.request for this
    //  sim). Its reply comes back as sim_authority_granted or _refused.
    SIM_AUTHORITY_REQUEST,
    //  Hold PATH at EPOCH, seq 1, with STATE (SIZE bytes): the store's
    //  entity becomes authoritative and is streamed.
    SIM_AUTHORITY_TAKE,
    //  Answer every call of claim CLAIM of PATH: ERROR is SF_OK with the
    //  entity as held (FROM says where its state came from), else the
    //  error with MESSAGE. A claim the core made itself for a grant no
    //  claim here asked for has no calls, unless some joined it.
    SIM_AUTHORITY_ANSWER,
    //  Send PATH's final state (the store's, as held until now, or until
    //  it was fenced by a newer grant to this sim) to sim TO, its new
    //  authority at EPOCH, for ring transfer TRANSFER.
    SIM_AUTHORITY_HANDOFF,
    //  Send STATE (SIZE bytes), which this sim received for its claim at
    //  an older epoch but never held, on to sim TO at EPOCH (TRANSFER):
    //  a grant to TO came after this sim's before it held the path.
    SIM_AUTHORITY_PASS_ON,
    //  PATH is a replica here from now on, at EPOCH, its authority TO
    //  (NULL: orphaned). DELETED: the ring deleted it; drop it.
    SIM_AUTHORITY_FENCE,
} sim_authority_kind_t;

//  One action. Every pointer is lent for the duration of the ACT call.
typedef struct {
    sim_authority_kind_t kind;
    const char *path;
    uint64_t claim;             //  REQUEST, ANSWER: the claim's id
    uint64_t epoch;             //  TAKE, HANDOFF, PASS_ON, FENCE
    const char *to;             //  HANDOFF, PASS_ON, FENCE: the sim
    uint64_t transfer;          //  HANDOFF, PASS_ON: the ring's id, or 0
    const uint8_t *state;       //  TAKE, PASS_ON
    size_t size;                //  TAKE, PASS_ON: bytes of STATE
    sim_authority_from_t from;  //  TAKE, PASS_ON, ANSWER: STATE's origin
    sf_error_t error;           //  ANSWER: SF_OK or why the claim failed
    const char *message;        //  ANSWER: the error's message
    bool deleted;               //  FENCE: the ring deleted the path
    const char *previous;       //  ANSWER: the former authority the ring
                                //  named in its grant, or NULL
} sim_authority_action_t;

//  What the core needs from outside: ACT carries out one action.
typedef struct {
    void *handle;
    void (*act) (void *handle, const sim_authority_action_t *action);
} sim_authority_io_t;

//  A grant, as the ring's reply to a claim or its event says: PATH given
//  to AUTHORITY (NULL: orphaned) at EPOCH; PREVIOUS, the former authority
//  (NULL: none); CHECKPOINT (CHECKPOINT_SIZE bytes, NULL: none), the
//  ring's last saved state; TRANSFER, the ring's id (0: none). All lent.
typedef struct {
    const char *path;
    uint64_t epoch;
    const char *authority;
    const char *previous;
    const uint8_t *checkpoint;
    size_t checkpoint_size;
    uint64_t transfer;
} sim_authority_grant_t;

//  A new core for the sim called NAME (copied), acting through IO.
sim_authority_t *sim_authority_new (const char *name,
                                    const sim_authority_io_t *io);

//  Destroy the core and null the caller's pointer. Claims in flight are
//  dropped without answers (the caller drops their calls).
void sim_authority_destroy (sim_authority_t **self_p);

//  A claim of PATH at NOW_MS. Returns its id (never 0). *JOINED is set
//  true if a claim of PATH was in flight already: the id is that claim's,
//  and its answer will be this one's too; else a REQUEST goes out.
uint64_t sim_authority_claim (sim_authority_t *self, const char *path,
                              uint64_t now_ms, bool *joined);

//  The ring granted claim CLAIM as GRANT says (its AUTHORITY is this sim).
void sim_authority_granted (sim_authority_t *self, uint64_t claim,
                            const sim_authority_grant_t *grant,
                            uint64_t now_ms);

//  The ring refused claim CLAIM of PATH, or no reply came: ERROR and
//  MESSAGE (lent) are the answer. If a grant of PATH to this sim was seen
//  meanwhile (the reply was lost, the event was not), it is taken instead.
void sim_authority_refused (sim_authority_t *self, const char *path,
                            uint64_t claim, sf_error_t error,
                            const char *message, uint64_t now_ms);

//  The ring granted GRANT->path to GRANT->authority (or orphaned it), as
//  its event or this sim's read of it says. Repeats and old news are
//  ignored; a held path given to another at a newer epoch is fenced.
void sim_authority_seen (sim_authority_t *self,
                         const sim_authority_grant_t *grant, uint64_t now_ms);

//  The ring orphaned PATH at EPOCH without this sim asking (an
//  administrator's release): fenced if held at EPOCH or older.
void sim_authority_orphaned (sim_authority_t *self, const char *path,
                             uint64_t epoch);

//  The ring deleted PATH: fenced (and dropped) if held.
void sim_authority_deleted (sim_authority_t *self, const char *path);

//  The ring declared this sim dead: every held path is orphaned.
void sim_authority_expired (sim_authority_t *self);

//  A HANDOFF of PATH at EPOCH with STATE (SIZE bytes, lent) from sim
//  FROM. Returns the handoff_msg status to answer: 0 OK (taken, or kept
//  until its grant comes), 1 REFUSED (not from the former authority the
//  ring named, or not for the epoch it granted), 2 STALE_EPOCH (held at
//  that epoch or newer already: a repeat).
uint8_t sim_authority_handoff (sim_authority_t *self, const char *path,
                               const char *from, uint64_t epoch,
                               const uint8_t *state, size_t size,
                               uint64_t now_ms);

//  Time passes: granted claims past their wait start from the checkpoint;
//  early final states nobody claimed are dropped. Call on a timer.
void sim_authority_tick (sim_authority_t *self, uint64_t now_ms);

//  A local edit of PATH: returns 0 and its (*EPOCH, *SEQ) if this sim
//  holds PATH, else -1 (refused; nothing changes).
int sim_authority_edit (sim_authority_t *self, const char *path,
                        uint64_t *epoch, uint64_t *seq);

//  This sim holds PATH at EPOCH, its last seq SEQ, on the ring's word
//  without a claim: created or imported here, resumed from the local
//  checkpoint, or a release the ring refused (the caller checks nothing
//  moved meanwhile). Ignored if the path is held, or a claim of it
//  granted, at EPOCH or newer.
void sim_authority_hold (sim_authority_t *self, const char *path,
                         uint64_t epoch, uint64_t seq);

//  This sim gives PATH up (entity.release): not held from now on, no
//  action. Returns the epoch it was held at, or 0 if it was not.
uint64_t sim_authority_release (sim_authority_t *self, const char *path);

//  True if this sim holds PATH; its epoch then in *EPOCH (may be NULL).
bool sim_authority_holds (sim_authority_t *self, const char *path,
                          uint64_t *epoch);

//  True if a claim of PATH is in flight here.
bool sim_authority_claiming (sim_authority_t *self, const char *path);

//  Paths granted to this sim whose state it waits for (a handoff, or
//  the checkpoint at the deadline): held soon, not yet. Returns how
//  many, and calls FN (if not NULL) with ARG for each. FN must not call
//  into the core. O(paths with a deadline).
size_t sim_authority_taking (sim_authority_t *self,
                             void (*fn) (void *arg, const char *path),
                             void *arg);

//  Call FN with ARG for every held path and its epoch (the heartbeat's
//  check takes a snapshot this way). FN must not call into the core.
void sim_authority_each_held (sim_authority_t *self,
                              void (*fn) (void *arg, const char *path,
                                          uint64_t epoch),
                              void *arg);

#endif
