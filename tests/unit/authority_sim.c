/*  authority_sim: several sims' sim_authority cores in one process, a
    model ring and a lossy network between them, deterministic from a
    seed.

    The model ring grants claims (rules ignored): each grant is the next
    epoch, names the former authority and carries the ring's checkpoint.
    An administrator moves entities without a claim, sims release them
    (their state becomes the checkpoint) and a saver copies held states
    to the checkpoint now and then. The ring's replies and events are
    lost, duplicated and delayed; a lost reply is a claim refused with
    timeout. HANDOFFs between sims are lost, duplicated and delayed too,
    and resent until acknowledged, as sim_handoff does. Each sim checks
    what it holds against the ring every heartbeat (the fencing that does
    not need events). Games edit entities and claim them, several claims
    of one entity at once. Sims restart from their local checkpoint (the
    store, as sim_checkpoint saves it), losing claims and HANDOFFs in
    flight.

    Checked after every step:
    - one state per (path, epoch, seq): no two takes or edits anywhere
      name the same (path, epoch, seq) with different states (two claims
      acknowledged at one epoch with two states would);
    - seq never reused within an epoch: every edit's seq is above every
      seq given before at that epoch, on any sim;
    - no acknowledged edit lost: a sim that takes an entity starts from
      the newest state acknowledged at an older epoch, unless the state
      is a checkpoint some claim fell back to after its wait (by design:
      the final state did not come in time; those takes are counted).
      A former authority hands its final state only to the grant right
      after the epoch it held (each grant is the next epoch), also when
      a newer grant to itself fenced it first: a later grant's sim takes
      its own former authority's state. (Without that, one that missed
      several grants in a row handed on an older state than a later
      authority acknowledged.) Such a take fails the run; with
      AUTHORITY_SIM_LENIENT set it is only counted and printed;
    - at most one sim holds an entity at any epoch, and so at most one
      believes it is the authority at the ring's newest epoch;
    - every claim is answered at most once, and a claim of a path starts
      only once the last one of it on that sim is answered (a second
      call joins the first and gets its answer). */

#include "peer/sim_authority.h"
#include "tests/unit/test_random.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SIMS 3
#define S_PATHS 4
#define S_MAX_LATER 4096
#define S_MAX_STATE 48
#define S_MAX_CLAIMS 8192
#define S_RING_TIMEOUT_MS 3000
#define S_HEARTBEAT_MS 1000
#define S_RESEND_MS 300

static const char *s_names [S_SIMS] = {"sim0", "sim1", "sim2"};
static const char *s_paths [S_PATHS] = {"/w/a", "/w/b", "/w/c", "/w/d"};

//  A message on its way.
typedef enum {
    S_REPLY,    //  ring -> sim: the reply to claim CLAIM
    S_EVENT,    //  ring -> sim: a grant's event
    S_HANDOFF,  //  sim -> sim: a final state
    S_ACK,      //  sim -> sim: a HANDOFF's acknowledgement
} s_kind_t;

typedef struct {
    uint64_t at;  //  delivered then
    s_kind_t kind;
    int to, from;              //  sims (from: HANDOFF, ACK)
    int path;                  //  index
    uint64_t claim;            //  REPLY
    bool granted;              //  REPLY
    int authority;             //  REPLY, EVENT: -1 none
    int previous;              //  REPLY, EVENT: -1 none
    uint64_t epoch;            //  REPLY, EVENT, HANDOFF, ACK
    char state [S_MAX_STATE];  //  REPLY, EVENT: checkpoint; HANDOFF
    unsigned life;             //  the life of the sim that sends (HANDOFF, ACK)
                               //  or receives (REPLY, EVENT)
} s_msg_t;

//  A HANDOFF a sim resends until acknowledged.
typedef struct {
    bool used;
    int to;
    int path;
    uint64_t epoch;
    char state [S_MAX_STATE];
    uint64_t next_ms;
} s_pending_t;

//  One sim: its core, its store and what its I/O layer keeps.
typedef struct {
    sim_authority_t *core;
    unsigned life;  //  bumped on restart
    //  The store (sim_store), which the local checkpoint keeps whole.
    struct {
        bool authority;
        uint64_t epoch, seq;
        char state [S_MAX_STATE];
    } store [S_PATHS];
    //  Claims on the ring: their reply, or timeout, is due.
    struct {
        uint64_t claim;
        uint64_t deadline;
    } asked [S_PATHS];
    s_pending_t pending [64];       //  HANDOFFs resent until acknowledged
    uint64_t next_heartbeat;        //  the next check against the ring
    uint64_t last_claim [S_PATHS];  //  the last claim started, per path
} s_node_t;

static struct {
    s_node_t node [S_SIMS];
    uint64_t now;
    s_msg_t later [S_MAX_LATER];
    unsigned later_count;
    //  The model ring, per path.
    struct {
        uint64_t epoch;
        int authority;  //  -1: orphaned
        char checkpoint [S_MAX_STATE];
    } ring [S_PATHS];
    //  Truth: the newest acknowledged state per path.
    struct {
        uint64_t epoch, seq;
        char state [S_MAX_STATE];
    } newest [S_PATHS];
    //  Every (path, epoch, seq) given a state: in a table.
    zhashx_t *states;
    //  Highest seq given per (path, epoch): in a table.
    zhashx_t *seqs;
    //  Claims: calls waiting and answers given, by (sim, claim id).
    struct {
        unsigned calls;
        bool answered;
    } claims [S_SIMS][S_MAX_CLAIMS];
    zhashx_t *fallbacks;  //  states claims fell back to (checkpoints)
    unsigned lost;        //  takes that missed an acknowledged edit
    bool strict;          //  such a take fails the run
    unsigned edits, takes_handoff, takes_checkpoint, takes_self, conflicts,
        refused, fenced, restarts, joined, handoffs_lost;
    unsigned loss, duplicate;  //  percent
    bool verbose;
    const char *trace;  //  a path whose actions are printed, or NULL
    int failed;
} s_sim;

#define S_CHECK(cond, ...)                              \
    do {                                                \
        if (!(cond)) {                                  \
            fprintf (stderr, "authority_sim: t=%llu: ", \
                     (unsigned long long) s_sim.now);   \
            fprintf (stderr, __VA_ARGS__);              \
            fprintf (stderr, "\n");                     \
            s_sim.failed = 1;                           \
        }                                               \
    } while (0)

static int
s_path_index (const char *path)
{
    for (int at = 0; at < S_PATHS; at++)
        if (strcmp (s_paths [at], path) == 0)
            return at;
    assert (false);
    return -1;
}

static int
s_sim_index (const char *name)
{
    for (int at = 0; at < S_SIMS; at++)
        if (name && strcmp (s_names [at], name) == 0)
            return at;
    return -1;
}

//  Put MSG on the network: maybe lost, maybe twice, after a delay.
static void
s_send (s_msg_t msg)
{
    //  The ring talks to a sim's sockets of this life: a restarted sim's
    //  new sockets get nothing the old ones were sent.
    if (msg.kind == S_REPLY || msg.kind == S_EVENT)
        msg.life = s_sim.node [msg.to].life;
    if (test_random_below (100) < s_sim.loss)
        return;
    unsigned copies = test_random_below (100) < s_sim.duplicate ? 2 : 1;
    for (unsigned copy = 0; copy < copies; copy++) {
        if (s_sim.later_count == S_MAX_LATER)
            return;  //  a full network drops
        msg.at = s_sim.now + 1 + test_random_below (120);
        s_sim.later [s_sim.later_count++] = msg;
    }
}

//  A (path, epoch, seq) got STATE somewhere: one state each.
static void
s_record (int path, uint64_t epoch, uint64_t seq, const char *state)
{
    char key [64];
    snprintf (key, sizeof key, "%d/%llu/%llu", path, (unsigned long long) epoch,
              (unsigned long long) seq);
    const char *said = (const char *) zhashx_lookup (s_sim.states, key);
    if (said)
        S_CHECK (strcmp (said, state) == 0,
                 "%s epoch %llu seq %llu has two states: '%s' and '%s'",
                 s_paths [path], (unsigned long long) epoch,
                 (unsigned long long) seq, said, state);
    else
        zhashx_insert (s_sim.states, key, strdup (state));
    snprintf (key, sizeof key, "%d/%llu", path, (unsigned long long) epoch);
    uint64_t *top = (uint64_t *) zhashx_lookup (s_sim.seqs, key);
    if (!top) {
        top = (uint64_t *) calloc (1, sizeof *top);
        zhashx_insert (s_sim.seqs, key, top);
    }
    if (seq > 1 || *top)
        S_CHECK (seq > *top || (seq == *top && said),
                 "%s epoch %llu: seq %llu given after %llu", s_paths [path],
                 (unsigned long long) epoch, (unsigned long long) seq,
                 (unsigned long long) *top);
    if (seq > *top)
        *top = seq;
}

static void
s_newest (int path, uint64_t epoch, uint64_t seq, const char *state)
{
    if (epoch > s_sim.newest [path].epoch
        || (epoch == s_sim.newest [path].epoch
            && seq > s_sim.newest [path].seq)) {
        s_sim.newest [path].epoch = epoch;
        s_sim.newest [path].seq = seq;
        snprintf (s_sim.newest [path].state, S_MAX_STATE, "%s", state);
    }
}

static void
s_handoff_queue (int sim, int to, int path, uint64_t epoch, const char *state)
{
    s_node_t *node = &s_sim.node [sim];
    for (int at = 0; at < 64; at++)
        if (!node->pending [at].used) {
            node->pending [at] = (s_pending_t){true, to, path, epoch, "", 0};
            snprintf (node->pending [at].state, S_MAX_STATE, "%s", state);
            return;
        }
    s_sim.handoffs_lost++;
}

//  What a core asks of its sim.
static void
s_act (void *handle, const sim_authority_action_t *action)
{
    int sim = (int) (intptr_t) handle;
    s_node_t *node = &s_sim.node [sim];
    int path = s_path_index (action->path);
    if (s_sim.trace && strcmp (s_sim.trace, action->path) == 0)
        printf ("t=%llu %s: kind %d epoch %llu to %s state '%.*s' from %d "
                "error %d claim %llu ring %llu/%d\n",
                (unsigned long long) s_sim.now, s_names [sim],
                (int) action->kind, (unsigned long long) action->epoch,
                action->to ? action->to : "-", (int) action->size,
                action->state ? (const char *) action->state : "",
                (int) action->from, (int) action->error,
                (unsigned long long) action->claim,
                (unsigned long long) s_sim.ring [path].epoch,
                s_sim.ring [path].authority);
    switch (action->kind) {
        case SIM_AUTHORITY_REQUEST: {
            //  The ring applies it at once; the reply may be lost.
            node->asked [path].claim = action->claim;
            node->asked [path].deadline = s_sim.now + S_RING_TIMEOUT_MS;
            int previous = s_sim.ring [path].authority;
            //  A new epoch, unless SIM is the authority already.
            if (previous != sim)
                s_sim.ring [path].epoch++;
            s_sim.ring [path].authority = sim;
            s_msg_t msg = {.kind = S_REPLY,
                           .to = sim,
                           .path = path,
                           .claim = action->claim,
                           .granted = true,
                           .authority = sim,
                           .previous = previous,
                           .epoch = s_sim.ring [path].epoch};
            snprintf (msg.state, S_MAX_STATE, "%s",
                      s_sim.ring [path].checkpoint);
            s_send (msg);
            for (int to = 0; to < S_SIMS; to++) {
                msg.kind = S_EVENT;
                msg.to = to;
                s_send (msg);
            }
            break;
        }
        case SIM_AUTHORITY_TAKE: {
            char state [S_MAX_STATE];
            snprintf (state, sizeof state, "%.*s", (int) action->size,
                      (const char *) action->state);
            node->store [path].authority = true;
            node->store [path].epoch = action->epoch;
            node->store [path].seq = 1;
            snprintf (node->store [path].state, S_MAX_STATE, "%s", state);
            s_record (path, action->epoch, 1, state);
            bool fallback = action->from == SIM_AUTHORITY_FROM_CHECKPOINT
                            || zhashx_lookup (s_sim.fallbacks, state);
            if (action->from == SIM_AUTHORITY_FROM_CHECKPOINT)
                zhashx_update (s_sim.fallbacks, state, (void *) 1);
            if (!fallback && s_sim.newest [path].epoch < action->epoch
                && strcmp (s_sim.newest [path].state, state) != 0) {
                s_sim.lost++;
                if (s_sim.strict || s_sim.verbose)
                    printf ("authority_sim: t=%llu: %s taken by %s at epoch "
                            "%llu from '%s', but '%s' was acknowledged "
                            "before\n",
                            (unsigned long long) s_sim.now, s_paths [path],
                            s_names [sim], (unsigned long long) action->epoch,
                            state, s_sim.newest [path].state);
            }
            if (!fallback && s_sim.strict)
                S_CHECK (s_sim.newest [path].epoch >= action->epoch
                             || strcmp (s_sim.newest [path].state, state) == 0,
                         "%s taken by %s at epoch %llu from '%s', but '%s' "
                         "was acknowledged before",
                         s_paths [path], s_names [sim],
                         (unsigned long long) action->epoch, state,
                         s_sim.newest [path].state);
            if (!fallback)
                s_sim.takes_handoff++;
            else
                s_sim.takes_checkpoint++;
            //  A take from the checkpoint starts the truth again from it.
            if (fallback && action->epoch > s_sim.newest [path].epoch) {
                s_sim.newest [path].epoch = action->epoch;
                s_sim.newest [path].seq = 1;
                snprintf (s_sim.newest [path].state, S_MAX_STATE, "%s", state);
            }
            s_newest (path, action->epoch, 1, state);
            break;
        }
        case SIM_AUTHORITY_ANSWER: {
            assert (action->claim < S_MAX_CLAIMS);
            S_CHECK (!s_sim.claims [sim][action->claim].answered,
                     "%s answered claim %llu twice", s_names [sim],
                     (unsigned long long) action->claim);
            s_sim.claims [sim][action->claim].answered = true;
            if (action->error == SF_OK
                && action->from == SIM_AUTHORITY_FROM_SELF)
                s_sim.takes_self++;
            else if (action->error == SF_ECONFLICT)
                s_sim.conflicts++;
            else if (action->error != SF_OK)
                s_sim.refused++;
            if (action->error == SF_OK)
                S_CHECK (node->store [path].authority,
                         "%s answered a claim of %s it does not hold",
                         s_names [sim], s_paths [path]);
            break;
        }
        case SIM_AUTHORITY_HANDOFF:
            //  What it holds, or held until a newer grant to it fenced it.
            S_CHECK (node->store [path].epoch < action->epoch,
                     "%s hands off %s at epoch %llu, held at %llu",
                     s_names [sim], s_paths [path],
                     (unsigned long long) action->epoch,
                     (unsigned long long) node->store [path].epoch);
            s_handoff_queue (sim, s_sim_index (action->to), path, action->epoch,
                             node->store [path].state);
            break;
        case SIM_AUTHORITY_PASS_ON: {
            char state [S_MAX_STATE];
            snprintf (state, sizeof state, "%.*s", (int) action->size,
                      (const char *) action->state);
            if (action->from == SIM_AUTHORITY_FROM_CHECKPOINT)
                zhashx_update (s_sim.fallbacks, state, (void *) 1);
            s_handoff_queue (sim, s_sim_index (action->to), path, action->epoch,
                             state);
            break;
        }
        case SIM_AUTHORITY_FENCE:
            node->store [path].authority = false;
            node->store [path].epoch = action->epoch;
            s_sim.fenced++;
            break;
    }
}

static void
s_start (int sim)
{
    s_node_t *node = &s_sim.node [sim];
    sim_authority_io_t io = {(void *) (intptr_t) sim, s_act};
    node->core = sim_authority_new (s_names [sim], &io);
    memset (node->asked, 0, sizeof node->asked);
    memset (node->pending, 0, sizeof node->pending);
    memset (node->last_claim, 0, sizeof node->last_claim);
    node->next_heartbeat = s_sim.now + S_HEARTBEAT_MS;
    //  Resumed from the local checkpoint, seq far above the saved one.
    for (int path = 0; path < S_PATHS; path++)
        if (node->store [path].authority) {
            node->store [path].seq += 1u << 20;
            sim_authority_hold (node->core, s_paths [path],
                                node->store [path].epoch,
                                node->store [path].seq);
        }
}

//  Claims of a restarted sim got no answer: their calls saw it go.
static void
s_restart (int sim)
{
    s_node_t *node = &s_sim.node [sim];
    sim_authority_destroy (&node->core);
    node->life++;
    //  The new core numbers its claims from 1 again.
    memset (s_sim.claims [sim], 0, sizeof s_sim.claims [sim]);
    s_sim.restarts++;
    s_start (sim);
}

//  Each path's grant as the ring has it now (the heartbeat's read).
static void
s_heartbeat (int sim)
{
    s_node_t *node = &s_sim.node [sim];
    for (int path = 0; path < S_PATHS; path++) {
        uint64_t epoch;
        if (!sim_authority_holds (node->core, s_paths [path], &epoch))
            continue;
        int authority = s_sim.ring [path].authority;
        if (authority == sim && s_sim.ring [path].epoch == epoch)
            continue;
        if (authority < 0)
            sim_authority_orphaned (node->core, s_paths [path],
                                    s_sim.ring [path].epoch);
        else {
            sim_authority_grant_t grant = {.path = s_paths [path],
                                           .epoch = s_sim.ring [path].epoch,
                                           .authority = s_names [authority]};
            sim_authority_seen (node->core, &grant, s_sim.now);
        }
    }
}

static void
s_deliver (const s_msg_t *msg)
{
    s_node_t *node = &s_sim.node [msg->to];
    sim_authority_grant_t grant = {
        .path = s_paths [msg->path],
        .epoch = msg->epoch,
        .authority = msg->authority >= 0 ? s_names [msg->authority] : NULL,
        .previous = msg->previous >= 0 ? s_names [msg->previous] : NULL,
        .checkpoint = (const uint8_t *) msg->state,
        .checkpoint_size = strlen (msg->state)};
    if ((msg->kind == S_REPLY || msg->kind == S_EVENT)
        && msg->life != node->life)
        return;
    switch (msg->kind) {
        case S_REPLY:
            if (node->asked [msg->path].claim != msg->claim)
                return;  //  timed out, or a restart forgot it
            node->asked [msg->path].claim = 0;
            sim_authority_granted (node->core, msg->claim, &grant, s_sim.now);
            break;
        case S_EVENT:
            sim_authority_seen (node->core, &grant, s_sim.now);
            break;
        case S_HANDOFF: {
            uint8_t status = sim_authority_handoff (
                node->core, s_paths [msg->path], s_names [msg->from],
                msg->epoch, (const uint8_t *) msg->state, strlen (msg->state),
                s_sim.now);
            (void) status;  //  any answer stops the resends
            s_msg_t ack = {.kind = S_ACK,
                           .to = msg->from,
                           .from = msg->to,
                           .path = msg->path,
                           .epoch = msg->epoch,
                           .life = msg->life};
            s_send (ack);
            break;
        }
        case S_ACK:
            if (msg->life != node->life)
                return;
            for (int at = 0; at < 64; at++)
                if (node->pending [at].used
                    && node->pending [at].to == msg->from
                    && node->pending [at].path == msg->path
                    && node->pending [at].epoch == msg->epoch)
                    node->pending [at].used = false;
            break;
    }
}

//  Every invariant that can be read off the present.
//  sim_authority_taking: each path it names is not held there (the
//  load report counts it as held, so it must never count twice).
typedef struct {
    int sim;
    size_t named;
} s_taking_t;

static void
s_taking_one (void *arg, const char *path)
{
    s_taking_t *taking = (s_taking_t *) arg;
    taking->named++;
    S_CHECK (!sim_authority_holds (s_sim.node [taking->sim].core, path, NULL),
             "%s reports %s as being taken and holds it", s_names [taking->sim],
             path);
}

static void
s_check (void)
{
    for (int sim = 0; sim < S_SIMS; sim++) {
        s_taking_t taking = {sim, 0};
        size_t count =
            sim_authority_taking (s_sim.node [sim].core, s_taking_one, &taking);
        S_CHECK (count == taking.named, "%s counts %zu paths taken, names %zu",
                 s_names [sim], count, taking.named);
    }
    for (int path = 0; path < S_PATHS; path++) {
        int holders_at_newest = 0;
        for (int one = 0; one < S_SIMS; one++) {
            uint64_t epoch_one;
            if (!sim_authority_holds (s_sim.node [one].core, s_paths [path],
                                      &epoch_one))
                continue;
            if (epoch_one == s_sim.ring [path].epoch)
                holders_at_newest++;
            for (int two = one + 1; two < S_SIMS; two++) {
                uint64_t epoch_two;
                if (sim_authority_holds (s_sim.node [two].core, s_paths [path],
                                         &epoch_two))
                    S_CHECK (epoch_one != epoch_two,
                             "%s and %s both hold %s at epoch %llu",
                             s_names [one], s_names [two], s_paths [path],
                             (unsigned long long) epoch_one);
            }
        }
        S_CHECK (holders_at_newest <= 1, "%d sims hold %s at epoch %llu",
                 holders_at_newest, s_paths [path],
                 (unsigned long long) s_sim.ring [path].epoch);
    }
}

//  The game claims PATH at SIM (a call; maybe a second one joining).
static void
s_claim (int sim, int path)
{
    bool joined;
    uint64_t claim = sim_authority_claim (s_sim.node [sim].core, s_paths [path],
                                          s_sim.now, &joined);
    assert (claim < S_MAX_CLAIMS);
    //  One claim per path in flight: a new one only once the last is
    //  answered, so every call waiting gets an answer.
    uint64_t last = s_sim.node [sim].last_claim [path];
    if (!joined && last)
        S_CHECK (s_sim.claims [sim][last].answered,
                 "%s started claim %llu of %s while claim %llu of it is "
                 "unanswered",
                 s_names [sim], (unsigned long long) claim, s_paths [path],
                 (unsigned long long) last);
    s_sim.node [sim].last_claim [path] = claim;
    s_sim.claims [sim][claim].calls++;
    if (joined)
        s_sim.joined++;
}

static void
s_edit (int sim, int path)
{
    s_node_t *node = &s_sim.node [sim];
    uint64_t epoch, seq;
    if (sim_authority_edit (node->core, s_paths [path], &epoch, &seq))
        return;
    char state [S_MAX_STATE];
    snprintf (state, sizeof state, "%s:%llu.%llu", s_names [sim],
              (unsigned long long) epoch, (unsigned long long) seq);
    S_CHECK (node->store [path].authority && node->store [path].epoch == epoch,
             "%s edits %s at epoch %llu but its store says otherwise",
             s_names [sim], s_paths [path], (unsigned long long) epoch);
    node->store [path].seq = seq;
    snprintf (node->store [path].state, S_MAX_STATE, "%s", state);
    s_record (path, epoch, seq, state);
    s_newest (path, epoch, seq, state);
    s_sim.edits++;
}

//  One step of the world: a message, a timer, or a game's or an
//  administrator's request.
static void
s_step (void)
{
    s_sim.now += 1 + test_random_below (10);
    //  Messages due, in the order they are found (so reordered).
    for (unsigned at = 0; at < s_sim.later_count;) {
        if (s_sim.later [at].at <= s_sim.now) {
            s_msg_t msg = s_sim.later [at];
            s_sim.later [at] = s_sim.later [--s_sim.later_count];
            s_deliver (&msg);
            s_check ();
        }
        else
            at++;
    }
    for (int sim = 0; sim < S_SIMS; sim++) {
        s_node_t *node = &s_sim.node [sim];
        sim_authority_tick (node->core, s_sim.now);
        for (int path = 0; path < S_PATHS; path++)
            if (node->asked [path].claim
                && node->asked [path].deadline <= s_sim.now) {
                uint64_t claim = node->asked [path].claim;
                node->asked [path].claim = 0;
                sim_authority_refused (node->core, s_paths [path], claim,
                                       SF_ETIMEOUT, "no reply", s_sim.now);
            }
        for (int at = 0; at < 64; at++) {
            s_pending_t *pending = &node->pending [at];
            if (pending->used && pending->next_ms <= s_sim.now) {
                s_msg_t msg = {.kind = S_HANDOFF,
                               .to = pending->to,
                               .from = sim,
                               .path = pending->path,
                               .epoch = pending->epoch,
                               .life = node->life};
                snprintf (msg.state, S_MAX_STATE, "%s", pending->state);
                s_send (msg);
                pending->next_ms = s_sim.now + S_RESEND_MS;
            }
        }
        if (node->next_heartbeat <= s_sim.now) {
            node->next_heartbeat = s_sim.now + S_HEARTBEAT_MS;
            s_heartbeat (sim);
        }
    }
    s_check ();
    int sim = (int) test_random_below (S_SIMS);
    int path = (int) test_random_below (S_PATHS);
    s_node_t *node = &s_sim.node [sim];
    unsigned roll = test_random_below (1000);
    if (roll < 500)
        s_edit (sim, path);
    else if (roll < 560) {
        s_claim (sim, path);
        if (test_random_below (3) == 0)
            s_claim (sim, path);  //  a second call joins the first
    }
    else if (roll < 570) {
        //  An administrator grants the path to SIM without its claim.
        s_sim.ring [path].epoch++;
        int previous = s_sim.ring [path].authority;
        s_sim.ring [path].authority = sim;
        s_msg_t msg = {.kind = S_EVENT,
                       .path = path,
                       .authority = sim,
                       .previous = previous,
                       .epoch = s_sim.ring [path].epoch};
        snprintf (msg.state, S_MAX_STATE, "%s", s_sim.ring [path].checkpoint);
        for (int to = 0; to < S_SIMS; to++) {
            msg.to = to;
            s_send (msg);
        }
    }
    else if (roll < 575) {
        //  SIM releases the path: its state is the checkpoint.
        uint64_t epoch = sim_authority_release (node->core, s_paths [path]);
        if (epoch && s_sim.ring [path].authority == sim
            && s_sim.ring [path].epoch == epoch) {
            node->store [path].authority = false;
            s_sim.ring [path].authority = -1;
            memcpy (s_sim.ring [path].checkpoint, node->store [path].state,
                    S_MAX_STATE);
        }
        else if (epoch) {
            //  The ring refuses: held again if nothing moved.
            sim_authority_hold (node->core, s_paths [path], epoch,
                                node->store [path].seq);
        }
    }
    else if (roll < 600) {
        //  The saver: the authority's state is the ring's checkpoint.
        if (s_sim.ring [path].authority == sim && node->store [path].authority
            && node->store [path].epoch == s_sim.ring [path].epoch)
            memcpy (s_sim.ring [path].checkpoint, node->store [path].state,
                    S_MAX_STATE);
    }
    else if (roll < 602)
        s_restart (sim);
    s_check ();
}

static int
s_run (uint64_t seed, unsigned steps, unsigned loss, unsigned duplicate,
       bool verbose)
{
    memset (&s_sim, 0, sizeof s_sim);
    test_random_seed (seed * 2 + 1);
    s_sim.loss = loss;
    s_sim.duplicate = duplicate;
    s_sim.verbose = verbose;
    s_sim.trace = getenv ("AUTHORITY_SIM_TRACE");
    s_sim.strict = getenv ("AUTHORITY_SIM_LENIENT") == NULL;
    s_sim.states = zhashx_new ();
    zhashx_set_destructor (s_sim.states, (zhashx_destructor_fn *) zstr_free);
    s_sim.fallbacks = zhashx_new ();
    s_sim.seqs = zhashx_new ();
    zhashx_set_destructor (s_sim.seqs, (zhashx_destructor_fn *) zstr_free);
    for (int path = 0; path < S_PATHS; path++) {
        s_sim.ring [path].authority = -1;
        snprintf (s_sim.ring [path].checkpoint, S_MAX_STATE, "init");
        snprintf (s_sim.newest [path].state, S_MAX_STATE, "init");
    }
    for (int sim = 0; sim < S_SIMS; sim++)
        s_start (sim);
    for (unsigned step = 0; step < steps && !s_sim.failed; step++)
        s_step ();
    for (int sim = 0; sim < S_SIMS; sim++)
        sim_authority_destroy (&s_sim.node [sim].core);
    zhashx_destroy (&s_sim.states);
    zhashx_destroy (&s_sim.seqs);
    zhashx_destroy (&s_sim.fallbacks);
    if (verbose || s_sim.failed)
        printf ("authority_sim: seed %llu loss %u%% dup %u%%: %u edits, %u "
                "takes by handoff, %u from checkpoint, %u self, %u "
                "conflicts, %u refused, %u joined, %u fenced, %u restarts, "
                "%u takes missing an acknowledged edit%s\n",
                (unsigned long long) seed, loss, duplicate, s_sim.edits,
                s_sim.takes_handoff, s_sim.takes_checkpoint, s_sim.takes_self,
                s_sim.conflicts, s_sim.refused, s_sim.joined, s_sim.fenced,
                s_sim.restarts, s_sim.lost, s_sim.failed ? ": FAILED" : "");
    return s_sim.failed ? -1 : 0;
}

int authority_sim_test (bool verbose);

int
authority_sim_test (bool verbose)
{
    printf (" * authority_sim: ");
    const char *env = getenv ("AUTHORITY_SIM_SEEDS");
    unsigned seeds = env ? (unsigned) atoi (env) : 40;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        unsigned loss = (unsigned) (seed % 4) * 10;
        unsigned duplicate = (unsigned) (seed % 3) * 10;
        if (s_run (seed, 20000, loss, duplicate, verbose))
            return -1;
    }
    printf ("OK\n");
    return 0;
}
