/*  sim_authority: what this sim is the authority of, and its claims, as a
    core without I/O (see the header for the states and the diagram). */

#include "peer/sim_authority.h"

#include <czmq.h>

//  A grant of the path to another sim, seen while a claim of it was in
//  flight here.
typedef struct {
    uint64_t epoch;     //  the epoch it was granted at
    char *to;           //  the sim it was granted to
    uint64_t transfer;  //  the ring's id, or 0
} s_other_t;

//  What the core knows of one path. Kept once the path was held or
//  claimed here (KNOWN guards against old news), dropped on delete.
typedef struct {
    char *path;      //  the entity's path (the table's key is this)
    uint64_t known;  //  newest epoch this sim knows the path at
    //  Held: this sim is the authority.
    bool held;       //  this sim holds the path
    uint64_t epoch;  //  the epoch it holds it at
    uint64_t seq;    //  the last seq given in that epoch
    //  Owed: held at this epoch until a newer grant to this sim fenced
    //  it before the grant to another sim in between was seen here; that
    //  sim starts from this sim's final state, sent when its grant is
    //  seen. 0: nothing owed.
    uint64_t owed;
    //  Claimed: one claim in flight.
    uint64_t claim;               //  its id, 0: none
    bool granted;                 //  the ring granted it (at CLAIM_EPOCH)
    uint64_t claim_epoch;         //  the epoch granted
    char *previous;               //  the former authority the ring named
    uint8_t *checkpoint;          //  the ring's last checkpoint, or NULL
    size_t checkpoint_size;       //  its bytes
    uint64_t deadline_ms;         //  then the claim starts from the checkpoint
    sim_authority_grant_t *mine;  //  a grant to this sim seen while the
                                  //  claim was on the ring, or NULL
    s_other_t *others;            //  grants to other sims seen meanwhile
    size_t other_count;
    //  Early: a final state that came before its grant.
    char *early_from;      //  its sender, NULL: none
    uint64_t early_epoch;  //  the epoch it names
    uint8_t *early_state;  //  the state
    size_t early_size;     //  its bytes
    uint64_t early_until;  //  dropped then
} s_path_t;

struct _sim_authority_t {
    char *name;             //  this sim
    sim_authority_io_t io;  //  the world
    zhashx_t *paths;        //  path -> s_path_t
    //  path -> s_path_t (lent: PATHS'): those with a deadline (a granted
    //  claim, an early state), so the tick walks them, not every path
    //  (a sim may hold 100,000). Left when the tick finds none.
    zhashx_t *timed;
    uint64_t claims;  //  the last claim id given
};

static uint8_t *
s_copy (const uint8_t *data, size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
    if (size)
        memcpy (copy, data, size);
    return copy;
}

static bool
s_same (const char *one, const char *two)
{
    return one && two && strcmp (one, two) == 0;
}

static void
s_grant_free (sim_authority_grant_t **grant_p)
{
    if (*grant_p) {
        sim_authority_grant_t *grant = *grant_p;
        free ((char *) grant->path);
        free ((char *) grant->authority);
        free ((char *) grant->previous);
        free ((uint8_t *) grant->checkpoint);
        free (grant);
        *grant_p = NULL;
    }
}

static sim_authority_grant_t *
s_grant_dup (const sim_authority_grant_t *grant)
{
    sim_authority_grant_t *copy =
        (sim_authority_grant_t *) zmalloc (sizeof *copy);
    *copy = *grant;
    copy->path = strdup (grant->path);
    copy->authority = grant->authority ? strdup (grant->authority) : NULL;
    copy->previous = grant->previous ? strdup (grant->previous) : NULL;
    copy->checkpoint = grant->checkpoint
                           ? s_copy (grant->checkpoint, grant->checkpoint_size)
                           : NULL;
    return copy;
}

//  Forget the claim of RECORD (its answer went out already).
static void
s_claim_clear (s_path_t *record)
{
    record->claim = 0;
    record->granted = false;
    record->claim_epoch = 0;
    free (record->previous);
    record->previous = NULL;
    free (record->checkpoint);
    record->checkpoint = NULL;
    record->checkpoint_size = 0;
    s_grant_free (&record->mine);
    for (size_t at = 0; at < record->other_count; at++)
        free (record->others [at].to);
    free (record->others);
    record->others = NULL;
    record->other_count = 0;
}

static void
s_early_clear (s_path_t *record)
{
    free (record->early_from);
    record->early_from = NULL;
    free (record->early_state);
    record->early_state = NULL;
    record->early_size = 0;
    record->early_epoch = 0;
}

static void
s_path_destroy (s_path_t **record_p)
{
    if (*record_p) {
        s_path_t *record = *record_p;
        s_claim_clear (record);
        s_early_clear (record);
        free (record->path);
        free (record);
        *record_p = NULL;
    }
}

sim_authority_t *
sim_authority_new (const char *name, const sim_authority_io_t *io)
{
    sim_authority_t *self = (sim_authority_t *) zmalloc (sizeof *self);
    self->name = strdup (name);
    self->io = *io;
    self->paths = zhashx_new ();
    zhashx_set_destructor (self->paths,
                           (zhashx_destructor_fn *) s_path_destroy);
    self->timed = zhashx_new ();
    return self;
}

void
sim_authority_destroy (sim_authority_t **self_p)
{
    if (*self_p) {
        sim_authority_t *self = *self_p;
        zhashx_destroy (&self->timed);
        zhashx_destroy (&self->paths);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

static s_path_t *
s_lookup (sim_authority_t *self, const char *path)
{
    return (s_path_t *) zhashx_lookup (self->paths, path);
}

static s_path_t *
s_require (sim_authority_t *self, const char *path)
{
    s_path_t *record = s_lookup (self, path);
    if (!record) {
        record = (s_path_t *) zmalloc (sizeof *record);
        record->path = strdup (path);
        zhashx_insert (self->paths, path, record);
    }
    return record;
}

static void
s_act (sim_authority_t *self, sim_authority_action_t action)
{
    self->io.act (self->io.handle, &action);
}

static void
s_answer (sim_authority_t *self, const char *path, uint64_t claim,
          sf_error_t error, const char *message, sim_authority_from_t from,
          const char *previous)
{
    s_act (self, (sim_authority_action_t){.kind = SIM_AUTHORITY_ANSWER,
                                          .path = path,
                                          .claim = claim,
                                          .error = error,
                                          .message = message,
                                          .from = from,
                                          .previous = previous});
}

//  The first grant to another sim after the granted epoch, or NULL.
static s_other_t *
s_overtaking (s_path_t *record)
{
    s_other_t *first = NULL;
    for (size_t at = 0; at < record->other_count; at++) {
        s_other_t *other = &record->others [at];
        if (other->epoch > record->claim_epoch
            && (!first || other->epoch < first->epoch))
            first = other;
    }
    return first;
}

//  The granted claim of RECORD has its state (STATE, SIZE, from FROM):
//  held from now on, unless another sim's grant came after it first;
//  then the state goes on to that sim and the claim fails.
static void
s_finish (sim_authority_t *self, s_path_t *record, const uint8_t *state,
          size_t size, sim_authority_from_t from)
{
    uint64_t claim = record->claim;
    char *previous = record->previous ? strdup (record->previous) : NULL;
    record->owed = 0;  //  the state here changes now
    s_other_t *next = s_overtaking (record);
    if (next) {
        char message [320];  //  two names of at most 64 bytes
        snprintf (message, sizeof message,
                  "granted at epoch %llu, but sim '%s' took it at epoch %llu "
                  "before this sim held it; its state went on to '%s'",
                  (unsigned long long) record->claim_epoch, next->to,
                  (unsigned long long) next->epoch, next->to);
        uint64_t epoch = next->epoch;
        char *to = strdup (next->to);
        uint64_t transfer = next->transfer;
        if (epoch > record->known)
            record->known = epoch;
        record->held = false;
        s_claim_clear (record);
        s_act (self, (sim_authority_action_t){.kind = SIM_AUTHORITY_PASS_ON,
                                              .path = record->path,
                                              .epoch = epoch,
                                              .to = to,
                                              .transfer = transfer,
                                              .state = state,
                                              .size = size,
                                              .from = from});
        s_answer (self, record->path, claim, SF_ECONFLICT, message, from,
                  previous);
        free (to);
        free (previous);
        return;
    }
    uint64_t epoch = record->claim_epoch;
    record->held = true;
    record->epoch = epoch;
    record->seq = 1;
    if (epoch > record->known)
        record->known = epoch;
    s_claim_clear (record);
    s_act (self, (sim_authority_action_t){.kind = SIM_AUTHORITY_TAKE,
                                          .path = record->path,
                                          .epoch = epoch,
                                          .state = state,
                                          .size = size,
                                          .from = from});
    s_answer (self, record->path, claim, SF_OK, NULL, from, previous);
    free (previous);
}

uint64_t
sim_authority_claim (sim_authority_t *self, const char *path, uint64_t now_ms,
                     bool *joined)
{
    (void) now_ms;
    s_path_t *record = s_require (self, path);
    if (record->claim) {
        *joined = true;
        return record->claim;
    }
    *joined = false;
    record->claim = ++self->claims;
    s_act (self, (sim_authority_action_t){.kind = SIM_AUTHORITY_REQUEST,
                                          .path = path,
                                          .claim = record->claim});
    return record->claim;
}

static void s_fence (sim_authority_t *self, s_path_t *record, uint64_t epoch,
                     const char *to, bool deleted);

//  GRANT gives RECORD's path to this sim at a newer epoch than it holds
//  it at: it missed being fenced in between, and what it holds is not
//  the newest state. Edits stop now; the grant brings the state.
static void
s_fence_missed (sim_authority_t *self, s_path_t *record,
                const sim_authority_grant_t *grant)
{
    (void) grant;
    //  The grant to another sim in between (the one right after ours,
    //  if any: a reply can overtake the event before it) needs our
    //  final state: owed until its event comes.
    record->owed = record->epoch;
    s_fence (self, record, record->epoch, NULL, false);
}

//  The claim of RECORD was granted as GRANT says.
static void
s_granted (sim_authority_t *self, s_path_t *record,
           const sim_authority_grant_t *grant, uint64_t now_ms)
{
    if (s_same (grant->previous, self->name) && record->held
        && record->epoch == grant->epoch) {
        //  Ours already, nothing moved (the ring grants no new epoch to
        //  the authority it has): the entity as it is.
        uint64_t claim = record->claim;
        s_claim_clear (record);
        s_answer (self, record->path, claim, SF_OK, NULL,
                  SIM_AUTHORITY_FROM_SELF, self->name);
        return;
    }
    if (grant->epoch <= record->known) {
        //  An epoch this sim has held and left already (it released the
        //  path after the ring answered): taking it again would give
        //  seqs of that epoch twice.
        char message [160];
        snprintf (message, sizeof message,
                  "granted at epoch %llu, which this sim gave up before the "
                  "grant reached it; claim it again",
                  (unsigned long long) grant->epoch);
        uint64_t claim = record->claim;
        s_claim_clear (record);
        s_answer (self, record->path, claim, SF_ECONFLICT, message,
                  SIM_AUTHORITY_FROM_SELF, grant->previous);
        return;
    }
    if (record->held && record->epoch < grant->epoch)
        s_fence_missed (self, record, grant);
    record->granted = true;
    record->claim_epoch = grant->epoch;
    record->previous = grant->previous ? strdup (grant->previous) : NULL;
    if (grant->checkpoint) {
        record->checkpoint = s_copy (grant->checkpoint, grant->checkpoint_size);
        record->checkpoint_size = grant->checkpoint_size;
    }
    record->deadline_ms = now_ms + SIM_AUTHORITY_HANDOFF_WAIT_MS;
    zhashx_update (self->timed, record->path, record);
    s_grant_free (&record->mine);
    if (!grant->previous || s_same (grant->previous, self->name)) {
        //  An orphan (or ours, lost meanwhile): the ring's checkpoint.
        uint8_t *checkpoint = record->checkpoint;
        record->checkpoint = NULL;
        s_finish (self, record, checkpoint, record->checkpoint_size,
                  SIM_AUTHORITY_FROM_CHECKPOINT);
        free (checkpoint);
    }
    else if (record->early_from && record->early_epoch == grant->epoch
             && s_same (record->early_from, grant->previous)) {
        uint8_t *state = record->early_state;
        size_t size = record->early_size;
        record->early_state = NULL;
        s_early_clear (record);
        s_finish (self, record, state, size, SIM_AUTHORITY_FROM_HANDOFF);
        free (state);
    }
}

void
sim_authority_granted (sim_authority_t *self, uint64_t claim,
                       const sim_authority_grant_t *grant, uint64_t now_ms)
{
    s_path_t *record = s_lookup (self, grant->path);
    if (!record || record->claim != claim || record->granted)
        return;  //  answered already
    s_granted (self, record, grant, now_ms);
}

void
sim_authority_refused (sim_authority_t *self, const char *path, uint64_t claim,
                       sf_error_t error, const char *message, uint64_t now_ms)
{
    s_path_t *record = s_lookup (self, path);
    if (!record || record->claim != claim || record->granted)
        return;
    if (record->mine && record->mine->epoch > record->known) {
        //  The reply was lost but the grant's event came: take it.
        sim_authority_grant_t *mine = record->mine;
        record->mine = NULL;
        s_granted (self, record, mine, now_ms);
        s_grant_free (&mine);
        return;
    }
    s_claim_clear (record);
    s_answer (self, path, claim, error, message, SIM_AUTHORITY_FROM_HANDOFF,
              NULL);
}

//  Fence RECORD, held until now: a replica at EPOCH, its authority TO.
static void
s_fence (sim_authority_t *self, s_path_t *record, uint64_t epoch,
         const char *to, bool deleted)
{
    record->held = false;
    if (epoch > record->known)
        record->known = epoch;
    s_act (self, (sim_authority_action_t){.kind = SIM_AUTHORITY_FENCE,
                                          .path = record->path,
                                          .epoch = epoch,
                                          .to = to,
                                          .deleted = deleted});
}

void
sim_authority_seen (sim_authority_t *self, const sim_authority_grant_t *grant,
                    uint64_t now_ms)
{
    bool mine = s_same (grant->authority, self->name);
    s_path_t *record = s_lookup (self, grant->path);
    if (!mine && !record)
        return;  //  never ours, not claimed: nothing to do
    if (mine && record && record->held && grant->epoch > record->epoch)
        s_fence_missed (self, record, grant);
    if (record && record->owed && grant->epoch > record->owed) {
        //  Only the grant right after the epoch this sim held (each grant
        //  is the next epoch) starts from its final state; any later one
        //  from its own former authority's.
        bool next =
            !mine && grant->authority && grant->epoch == record->owed + 1;
        record->owed = 0;
        if (next)
            s_act (self, (sim_authority_action_t){.kind = SIM_AUTHORITY_HANDOFF,
                                                  .path = record->path,
                                                  .epoch = grant->epoch,
                                                  .to = grant->authority,
                                                  .transfer = grant->transfer});
    }
    if (!mine && record && record->held && grant->epoch > record->epoch) {
        //  The new authority starts from our final state (Case 2's third
        //  hop); if it cannot be reached it starts from the checkpoint.
        //  So even while a claim of the path is in flight here (a claim
        //  of what this sim holds): that claim learns it gave it up.
        //  Only to the grant right after ours (each grant is the next
        //  epoch): a later one's sim starts from its own former
        //  authority's state, newer than ours, and would take ours if
        //  that former authority is this sim, granted since but not
        //  holding yet (its claim passes the right state on).
        if (grant->authority && grant->epoch == record->epoch + 1)
            s_act (self, (sim_authority_action_t){.kind = SIM_AUTHORITY_HANDOFF,
                                                  .path = record->path,
                                                  .epoch = grant->epoch,
                                                  .to = grant->authority,
                                                  .transfer = grant->transfer});
        s_fence (self, record, grant->epoch, grant->authority, false);
    }
    if (record && record->claim) {
        //  Its own reply answers the claim; the event is kept for when
        //  the reply was lost. Grants to others are kept to learn, once
        //  granted, whether ours was overtaken before we held it.
        if (mine && !record->granted
            && (!record->mine || record->mine->epoch < grant->epoch)) {
            s_grant_free (&record->mine);
            record->mine = s_grant_dup (grant);
        }
        else if (!mine && grant->authority
                 && (!record->granted || grant->epoch > record->claim_epoch)) {
            record->others = (s_other_t *) realloc (
                record->others, (record->other_count + 1) * sizeof (s_other_t));
            record->others [record->other_count++] = (s_other_t){
                grant->epoch, strdup (grant->authority), grant->transfer};
        }
        return;
    }
    if (mine) {
        if (record && grant->epoch <= record->known)
            return;  //  old news, or held at that epoch already
        //  Granted to this sim without a claim here (an administrator
        //  moved it): taken as a claim would take it, answering no one.
        record = s_require (self, grant->path);
        record->claim = ++self->claims;
        s_granted (self, record, grant, now_ms);
        return;
    }
    if (grant->epoch > record->known)
        record->known = grant->epoch;
}

void
sim_authority_orphaned (sim_authority_t *self, const char *path, uint64_t epoch)
{
    s_path_t *record = s_lookup (self, path);
    if (record && record->held && record->epoch <= epoch)
        s_fence (self, record, epoch, NULL, false);
}

void
sim_authority_deleted (sim_authority_t *self, const char *path)
{
    s_path_t *record = s_lookup (self, path);
    if (!record)
        return;
    if (record->held)
        s_fence (self, record, record->epoch, NULL, true);
    if (!record->claim) {
        zhashx_delete (self->timed, path);
        zhashx_delete (self->paths, path);
    }
}

void
sim_authority_expired (sim_authority_t *self)
{
    for (s_path_t *record = (s_path_t *) zhashx_first (self->paths); record;
         record = (s_path_t *) zhashx_next (self->paths))
        if (record->held)
            s_fence (self, record, record->epoch, NULL, false);
}

uint8_t
sim_authority_handoff (sim_authority_t *self, const char *path,
                       const char *from, uint64_t epoch, const uint8_t *state,
                       size_t size, uint64_t now_ms)
{
    s_path_t *record = s_lookup (self, path);
    if (record && record->claim && record->granted) {
        if (record->claim_epoch != epoch || !s_same (record->previous, from))
            return 1;  //  REFUSED: not what the ring granted
        s_finish (self, record, state, size, SIM_AUTHORITY_FROM_HANDOFF);
        return 0;
    }
    //  A repeat of one taken already (its sender heard no ack in time),
    //  or older than what this sim knows.
    if (record && (record->known >= epoch || record->early_epoch >= epoch))
        return 2;  //  STALE_EPOCH
    //  The grant has not reached this sim yet: keep the state a while; it
    //  is used only if the grant names this sender and this epoch.
    record = s_require (self, path);
    s_early_clear (record);
    record->early_from = strdup (from);
    record->early_epoch = epoch;
    record->early_state = s_copy (state, size);
    record->early_size = size;
    record->early_until = now_ms + SIM_AUTHORITY_EARLY_KEEP_MS;
    zhashx_update (self->timed, record->path, record);
    return 0;
}

void
sim_authority_tick (sim_authority_t *self, uint64_t now_ms)
{
    //  s_finish acts, and the world may not change the table meanwhile,
    //  but the cursor must not move under us: collect first.
    zlist_t *due = zlist_new ();
    zlist_t *idle = zlist_new ();
    for (s_path_t *record = (s_path_t *) zhashx_first (self->timed); record;
         record = (s_path_t *) zhashx_next (self->timed)) {
        if (record->early_from && record->early_until <= now_ms)
            s_early_clear (record);
        if (record->claim && record->granted && record->deadline_ms <= now_ms)
            zlist_append (due, record);
        else if (!record->early_from && !(record->claim && record->granted))
            zlist_append (idle, record);
    }
    for (s_path_t *record = (s_path_t *) zlist_first (idle); record;
         record = (s_path_t *) zlist_next (idle))
        zhashx_delete (self->timed, record->path);
    zlist_destroy (&idle);
    for (s_path_t *record = (s_path_t *) zlist_first (due); record;
         record = (s_path_t *) zlist_next (due)) {
        uint8_t *checkpoint = record->checkpoint;
        size_t size = record->checkpoint_size;
        record->checkpoint = NULL;
        s_finish (self, record, checkpoint, size,
                  SIM_AUTHORITY_FROM_CHECKPOINT);
        free (checkpoint);
    }
    zlist_destroy (&due);
}

int
sim_authority_edit (sim_authority_t *self, const char *path, uint64_t *epoch,
                    uint64_t *seq)
{
    s_path_t *record = s_lookup (self, path);
    if (!record || !record->held)
        return -1;
    *epoch = record->epoch;
    *seq = ++record->seq;
    return 0;
}

void
sim_authority_hold (sim_authority_t *self, const char *path, uint64_t epoch,
                    uint64_t seq)
{
    s_path_t *record = s_require (self, path);
    if ((record->held && record->epoch >= epoch)
        || (record->claim && record->granted && record->claim_epoch >= epoch))
        return;
    record->held = true;
    record->epoch = epoch;
    record->seq = seq;
    if (epoch > record->known)
        record->known = epoch;
}

uint64_t
sim_authority_release (sim_authority_t *self, const char *path)
{
    s_path_t *record = s_lookup (self, path);
    if (!record || !record->held)
        return 0;
    record->held = false;
    return record->epoch;
}

bool
sim_authority_holds (sim_authority_t *self, const char *path, uint64_t *epoch)
{
    s_path_t *record = s_lookup (self, path);
    if (!record || !record->held)
        return false;
    if (epoch)
        *epoch = record->epoch;
    return true;
}

bool
sim_authority_claiming (sim_authority_t *self, const char *path)
{
    s_path_t *record = s_lookup (self, path);
    return record && record->claim;
}

size_t
sim_authority_taking (sim_authority_t *self,
                      void (*fn) (void *arg, const char *path), void *arg)
{
    //  A granted claim has a deadline: it is timed.
    size_t taking = 0;
    for (s_path_t *record = (s_path_t *) zhashx_first (self->timed); record;
         record = (s_path_t *) zhashx_next (self->timed))
        if (record->claim && record->granted && !record->held) {
            taking++;
            if (fn)
                fn (arg, record->path);
        }
    return taking;
}

void
sim_authority_each_held (sim_authority_t *self,
                         void (*fn) (void *arg, const char *path,
                                     uint64_t epoch),
                         void *arg)
{
    for (s_path_t *record = (s_path_t *) zhashx_first (self->paths); record;
         record = (s_path_t *) zhashx_next (self->paths))
        if (record->held)
            fn (arg, record->path, record->epoch);
}
