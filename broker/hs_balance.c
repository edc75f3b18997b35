/*  hs_balance: the balancer. */

#include "broker/hs_balance.h"
#include "common/sf_name.h"
#include "common/sf_time.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

//  A sim's report shows a move once the sim acted on the move's change
//  (its "ring_index" is the move's index or newer: what it takes counts
//  as held from the grant on). A sim that follows no event feed says no
//  index: its report counts once received this long after the move was
//  sent.
#define S_SHOWN_MS 1000
//  How soon a round that found only such sims looks again.
#define S_RETRY_MS 100
//  A move of this member's not applied this long after it was sent was
//  refused whole (its sim drains, or is gone): it counts no more.
#define S_APPLY_MS 5000
//  Ask moves per round at most: each is a command and a question to a
//  game.
#define S_ASKS_PER_ROUND 16
//  Paths per balance.move: each is one loop turn's work at the sims
//  (fence, hand over, take), so a move never holds a sim's other
//  requests for long.
#ifndef S_MOVE_PATHS
#define S_MOVE_PATHS 64
#endif
//  Entities players own read per sim and round, to link its rooms: a
//  bound on the round's cost (an index range each).
#define S_OWNED_MAX 4096
//  Loads this close are equal (the model's sums are not exact).
#define S_EPSILON 1e-9
//  A queued decision's modelled load, taken off before it is sent.
#define S_LOAD_KEY "load"
//  The end of a reason of a move that parts a room on purpose (it alone
//  exceeds a share, or a drain has no room for it whole): one a new
//  leader does not finish.
#define S_PART "; a part of the room"

//  One group of a sim's report.
typedef struct {
    const char *name;  //  lent: the report's
    double entities, load;
    size_t unit;  //  the heaviest group it goes with: its own index if none
} s_group_t;

//  One candidate sim, as modelled.
typedef struct {
    const char *name;  //  lent: the reports'
    double capacity, load, share;
    bool draining, frozen;
    s_group_t *groups;  //  by load, the heaviest first
    size_t n_groups;
} s_sim_t;

//  One planned move: ENTITIES of GROUP (0: the whole group).
typedef struct {
    const char *group, *from, *to;  //  lent: the sims'
    size_t entities;
    double per_entity;  //  the load of each
    char reason [160];
} s_plan_t;

//  One side of a move this member sent, which that sim's report does not
//  show yet: LOAD (negative at the source) counts in its model until it
//  does, so the round after goes on without waiting for a heartbeat
//  (load.md section 5, step 1).
typedef struct {
    char *sim, *move;  //  owned
    uint64_t sent_ms;
    uint64_t index;  //  applied at (0: not yet)
    double load;
    size_t paths;  //  sent
} s_pending_t;

struct _hs_balance_t {
    hs_balance_config_t config;
    uint64_t next_ms;      //  the next round is due then
    uint64_t refill_ms;    //  the budget is counted to then
    double tokens;         //  entities that may move now
    json_t *queue;         //  decisions of the last round not sent yet
    json_t *torn;          //  group -> {"from", "to"}: another leader's moves
    zhashx_t *settled;     //  group -> ms until it may move again
    zhashx_t *moved;       //  sim -> another leader's last move of it
    s_pending_t *pending;  //  this member's moves not shown, oldest first
    size_t n_pending, max_pending;
    uint64_t term;       //  this member leads in it (its ids' prefix)
    uint64_t decisions;  //  made by this member, for ids
    uint64_t recalled;   //  the ring's decisions are read up to this index
};

static void *
s_stamp_new (uint64_t ms)
{
    uint64_t *stamp = (uint64_t *) malloc (sizeof (uint64_t));
    if (stamp)
        *stamp = ms;
    return stamp;
}

static void
s_stamp_free (void **item)
{
    free (*item);
    *item = NULL;
}

static uint64_t
s_stamp (zhashx_t *table, const char *key)
{
    uint64_t *stamp = (uint64_t *) zhashx_lookup (table, key);
    return stamp ? *stamp : 0;
}

static void
s_stamp_set (zhashx_t *table, const char *key, uint64_t ms)
{
    zhashx_update (table, key, s_stamp_new (ms));
}

//  Another leader's last move of a sim: when it was made, and the index
//  it was applied at. Its load is not known here: the sim waits for a
//  report that shows it.
typedef struct {
    uint64_t sent_ms, index;
} s_moved_t;

static void
s_moved_set (zhashx_t *table, const char *sim, uint64_t sent_ms, uint64_t index)
{
    s_moved_t *moved = (s_moved_t *) malloc (sizeof (s_moved_t));
    if (moved) {
        *moved = (s_moved_t){sent_ms, index};
        zhashx_update (table, sim, moved);
    }
}

//  Forget every pending move.
static void
s_pending_clear (hs_balance_t *self)
{
    for (size_t at = 0; at < self->n_pending; at++) {
        free (self->pending [at].sim);
        free (self->pending [at].move);
    }
    self->n_pending = 0;
}

//  Count LOAD of MOVE (PATHS paths) at SIM from SENT_MS on.
static void
s_pending_add (hs_balance_t *self, const char *sim, const char *move,
               size_t paths, double load, uint64_t sent_ms)
{
    if (self->n_pending == self->max_pending) {
        size_t max = self->max_pending ? 2 * self->max_pending : 64;
        s_pending_t *grown =
            (s_pending_t *) realloc (self->pending, max * sizeof (s_pending_t));
        if (!grown)
            return;  //  counted by the sim's next report instead
        self->pending = grown;
        self->max_pending = max;
    }
    self->pending [self->n_pending++] =
        (s_pending_t){strdup (sim), strdup (move), sent_ms, 0, load, paths};
}

//  Whether REPORT (of PENDING's sim, received at RECEIVED_MS) shows it.
static bool
s_pending_shown (const s_pending_t *pending, const json_t *report,
                 uint64_t received_ms)
{
    if (!pending->index)
        return false;  //  not applied yet
    double seen = json_number_value (json_object_get (report, "ring_index"));
    if (seen > 0)
        return seen >= (double) pending->index;
    return received_ms >= pending->sent_ms + S_SHOWN_MS;
}

//  Drop the moves SIMS' reports (lent) show at NOW_MS, and those never
//  applied.
static void
s_pending_prune (hs_balance_t *self, const json_t *sims, uint64_t now_ms)
{
    size_t kept = 0;
    for (size_t at = 0; at < self->n_pending; at++) {
        s_pending_t *pending = &self->pending [at];
        //  A sim with no report is no candidate: nothing to count at.
        const json_t *report = json_object_get (sims, pending->sim);
        double age = json_number_value (json_object_get (report, "age_ms"));
        bool done =
            pending->index
                ? !report
                      || s_pending_shown (pending, report,
                                          now_ms - (uint64_t) fmax (0, age))
                : now_ms >= pending->sent_ms + S_APPLY_MS;
        if (done) {
            free (pending->sim);
            free (pending->move);
        }
        else
            self->pending [kept++] = *pending;
    }
    self->n_pending = kept;
}

void
hs_balance_applied (hs_balance_t *self, const json_t *result, uint64_t index)
{
    //  What it moved: paths skipped (moved meanwhile, gone, an ask) are
    //  no load of the move's.
    const char *move = json_string_value (json_object_get (result, "move"));
    json_int_t moved = json_integer_value (json_object_get (result, "moved"));
    if (!move)
        return;
    for (size_t at = 0; at < self->n_pending; at++) {
        s_pending_t *pending = &self->pending [at];
        if (streq (pending->move, move) && !pending->index) {
            pending->index = index;
            if (pending->paths)
                pending->load =
                    pending->load * (double) moved / (double) pending->paths;
        }
    }
}

hs_balance_t *
hs_balance_new (const hs_balance_config_t *config, uint64_t now_ms)
{
    hs_balance_t *self = (hs_balance_t *) zmalloc (sizeof (hs_balance_t));
    self->config = *config;
    self->settled = zhashx_new ();
    zhashx_set_destructor (self->settled, s_stamp_free);
    self->moved = zhashx_new ();
    zhashx_set_destructor (self->moved, s_stamp_free);  //  plain malloc
    self->queue = json_array ();
    self->torn = json_object ();
    hs_balance_reset (self, now_ms);
    return self;
}

void
hs_balance_destroy (hs_balance_t **self_p)
{
    if (*self_p) {
        hs_balance_t *self = *self_p;
        zhashx_destroy (&self->settled);
        zhashx_destroy (&self->moved);
        s_pending_clear (self);
        free (self->pending);
        json_decref (self->queue);
        json_decref (self->torn);
        free (self);
        *self_p = NULL;
    }
}

bool
hs_balance_enabled (hs_balance_t *self)
{
    return self->config.enabled;
}

double
hs_balance_band (hs_balance_t *self)
{
    return self->config.band;
}

void
hs_balance_reset (hs_balance_t *self, uint64_t now_ms)
{
    zhashx_purge (self->settled);
    zhashx_purge (self->moved);
    s_pending_clear (self);
    self->recalled = 0;
    self->next_ms = now_ms + self->config.interval_ms;
    self->refill_ms = now_ms;
    self->tokens = 0;
    json_array_clear (self->queue);
    json_object_clear (self->torn);
}

//  The most the sending budget holds: a tenth of a second's worth, so
//  moves go out as a stream, not as one burst per round that would stall
//  every sim's loop at once; and one command more, so what a turn leaves
//  of the budget (less than a command) is never cut off by the cap: at
//  2,500 moves/s a cap of 250 sent 192 paths a turn, 77% of the rate.
static double
s_budget_cap (const hs_balance_config_t *config)
{
    return config->moves_per_s / 10.0 + S_MOVE_PATHS;
}

static double
s_number (const json_t *object, const char *key)
{
    return json_number_value (json_object_get (object, key));
}

//  A sim's own figure, which only it vouches for: anything but a
//  number in [0, S_FIGURE_MAX] counts as its nearest bound, so a report
//  that lies moves nothing the sim does not hold and keeps every sum
//  finite.
#define S_FIGURE_MAX 1e9
static double
s_figure (const json_t *object, const char *key)
{
    return fmin (S_FIGURE_MAX, fmax (0, s_number (object, key)));
}

static int
s_by_name (const void *a, const void *b)
{
    return strcmp (((const s_sim_t *) a)->name, ((const s_sim_t *) b)->name);
}

static int
s_by_load (const void *a, const void *b)
{
    const s_group_t *left = (const s_group_t *) a;
    const s_group_t *right = (const s_group_t *) b;
    if (fabs (left->load - right->load) > S_EPSILON)
        return left->load > right->load ? -1 : 1;
    return strcmp (left->name, right->name);
}

static bool
s_listed (zlist_t *names, const char *name)
{
    for (const char *at = (const char *) zlist_first (names); at;
         at = (const char *) zlist_next (names))
        if (streq (at, name))
            return true;
    return false;
}

//  The candidates of SIMS (reports, lent) at NOW_MS, by name, with their
//  modelled loads and shares, with this member's moves the reports do not
//  show yet if IN_FLIGHT (else as reported): *COUNT of them. A new array
//  (free each one's groups, then it).
static s_sim_t *
s_model (hs_balance_t *self, const json_t *sims, zlist_t *draining,
         uint64_t now_ms, bool in_flight, size_t *count)
{
    const hs_balance_config_t *config = &self->config;
    s_sim_t *model =
        (s_sim_t *) calloc (json_object_size (sims) + 1, sizeof (s_sim_t));
    size_t at = 0;
    const char *name;
    const json_t *report;
    json_object_foreach ((json_t *) sims, name, report)
    {
        double age = s_number (report, "age_ms");
        if (age >= 3.0 * (double) config->interval_ms || age < 0)
            continue;  //  silent: not a candidate
        s_sim_t *sim = &model [at++];
        sim->name = name;
        sim->capacity = fmin (1000, fmax (1, s_figure (report, "capacity")));
        sim->draining = draining && s_listed (draining, name);
        //  Another leader's move this sim's report cannot show yet: its
        //  load is not known here, so the sim waits.
        s_moved_t *moved = (s_moved_t *) zhashx_lookup (self->moved, name);
        uint64_t received = now_ms - (uint64_t) age;
        double seen = s_number (report, "ring_index");
        if (moved && seen > 0)
            sim->frozen = seen < (double) moved->index;
        else if (moved)
            sim->frozen = received < moved->sent_ms + S_SHOWN_MS;
        const json_t *groups = json_object_get (report, "groups");
        sim->groups = (s_group_t *) calloc (json_array_size (groups) + 1,
                                            sizeof (s_group_t));
        size_t index;
        const json_t *group;
        json_array_foreach (groups, index, group)
        {
            const char *group_name =
                json_string_value (json_object_get (group, "group"));
            if (!group_name)
                continue;
            s_group_t *kept = &sim->groups [sim->n_groups++];
            kept->name = group_name;
            kept->entities = floor (s_figure (group, "entities"));
            kept->load =
                config->entity_cost * kept->entities
                + config->update_cost * s_figure (group, "updates_per_s");
            sim->load += kept->load;
        }
        const json_t *rest = json_object_get (report, "rest");
        sim->load += config->entity_cost * s_figure (rest, "entities")
                     + config->update_cost * s_figure (rest, "updates_per_s");
        //  This member's moves the report does not show yet.
        for (size_t pending = 0; in_flight && pending < self->n_pending;
             pending++)
            if (streq (self->pending [pending].sim, name)
                && !s_pending_shown (&self->pending [pending], report,
                                     received))
                sim->load += self->pending [pending].load;
        sim->load = fmax (0, sim->load);
        qsort (sim->groups, sim->n_groups, sizeof (s_group_t), s_by_load);
        for (size_t kept = 0; kept < sim->n_groups; kept++)
            sim->groups [kept].unit = kept;
    }
    *count = at;
    qsort (model, at, sizeof (s_sim_t), s_by_name);
    //  Shares: the total load over the capacity of the sims not draining.
    double total = 0, capacity = 0;
    for (size_t sim = 0; sim < at; sim++) {
        total += model [sim].load;
        if (!model [sim].draining)
            capacity += model [sim].capacity;
    }
    for (size_t sim = 0; sim < at; sim++)
        model [sim].share = model [sim].draining || capacity <= 0
                                ? 0
                                : total * model [sim].capacity / capacity;
    return model;
}

static void
s_model_free (s_sim_t **model_p, size_t count)
{
    for (size_t at = 0; at < count; at++)
        free ((*model_p) [at].groups);
    free (*model_p);
    *model_p = NULL;
}

//  The unit of GROUP in SIM: the heaviest group it is linked to.
static size_t
s_unit (const s_sim_t *sim, size_t group)
{
    while (sim->groups [group].unit != group)
        group = sim->groups [group].unit;
    return group;
}

//  Link the groups of SIM that a player's entities share: OWNED (lent)
//  lists what players own that SIM holds, by owner (hs_fsm_owned_held).
//  Each group's unit becomes the heaviest group linked to it, so the
//  rooms where the same players act move together (load.md section 5).
//  Groups outside the report's are not linked: their load is not known.
static void
s_link (s_sim_t *sim, const json_t *owned)
{
    zhashx_t *index = zhashx_new ();
    for (size_t group = 0; group < sim->n_groups; group++)
        zhashx_insert (index, sim->groups [group].name,
                       (void *) (uintptr_t) (group + 1));
    const char *owner = NULL;
    size_t first = 0;  //  the owner's first group found, + 1
    size_t at;
    const json_t *item;
    json_array_foreach (owned, at, item)
    {
        const char *path = json_string_value (json_object_get (item, "path"));
        const char *by = json_string_value (json_object_get (item, "owner"));
        if (!path || !by)
            continue;
        if (!owner || !streq (owner, by))
            first = 0;
        owner = by;
        //  The group of PATH as the sims count it: its parent path.
        const char *slash = strrchr (path, '/');
        char name [SF_NAME_MAX_PATH + 1];
        snprintf (name, sizeof name, "%.*s",
                  (int) (slash && slash != path ? slash - path : 1), path);
        size_t group = (size_t) (uintptr_t) zhashx_lookup (index, name);
        if (!group)
            continue;
        if (!first) {
            first = group;
            continue;
        }
        size_t left = s_unit (sim, first - 1), right = s_unit (sim, group - 1);
        if (left < right)
            sim->groups [right].unit = left;
        else
            sim->groups [left].unit = right;
    }
    for (size_t group = 0; group < sim->n_groups; group++)
        sim->groups [group].unit = s_unit (sim, group);
    zhashx_destroy (&index);
}

static bool
s_balanced (const s_sim_t *sim, double band)
{
    if (sim->draining)
        return sim->load <= S_EPSILON;
    return fabs (sim->load - sim->share) <= band * sim->share + S_EPSILON;
}

json_t *
hs_balance_view (hs_balance_t *self, const json_t *sims, zlist_t *draining)
{
    size_t count;
    s_sim_t *model =
        s_model (self, sims, draining, zclock_mono (), false, &count);
    json_t *view = json_object ();
    for (size_t at = 0; at < count; at++)
        json_object_set_new (
            view, model [at].name,
            json_pack ("{s:f,s:f,s:b,s:b}", "load", model [at].load, "share",
                       model [at].share, "balanced",
                       s_balanced (&model [at], self->config.band), "draining",
                       model [at].draining));
    s_model_free (&model, count);
    //  A silent sim is no candidate: its share is not known.
    const char *name;
    const json_t *report;
    json_object_foreach ((json_t *) sims, name, report)
    {
        if (!json_object_get (view, name))
            json_object_set_new (
                view, name,
                json_pack ("{s:n,s:n,s:n,s:b}", "load", "share", "balanced",
                           "draining", draining && s_listed (draining, name)));
    }
    return view;
}

//  Whether a source still gives: above its share's upper hysteresis
//  bound (above the share itself while a sim is STARVED), or draining
//  with anything left.
static bool
s_giving (const s_sim_t *sim, double band, bool starved)
{
    if (sim->draining)
        return sim->load > S_EPSILON || sim->n_groups > 0;
    return sim->load > (starved ? 1 : 1 + band / 2) * sim->share + S_EPSILON;
}

//  Whether a sim that may take is below the band: then any sim above
//  its share gives, so the band holds on both sides.
static bool
s_starved (const s_sim_t *model, size_t count, double band)
{
    for (size_t at = 0; at < count; at++)
        if (!model [at].frozen && !model [at].draining
            && model [at].load < (1 - band) * model [at].share - S_EPSILON)
            return true;
    return false;
}

//  The target with the most room for a group from SOURCE, or NULL.
static s_sim_t *
s_target (s_sim_t *model, size_t count, const s_sim_t *source)
{
    s_sim_t *best = NULL;
    for (size_t at = 0; at < count; at++) {
        s_sim_t *sim = &model [at];
        if (sim == source || sim->frozen || sim->draining
            || sim->load >= sim->share - S_EPSILON)
            continue;
        //  By name on a tie: the model is sorted by name.
        if (!best
            || sim->share - sim->load > best->share - best->load + S_EPSILON)
            best = sim;
    }
    return best;
}

//  Whether GROUP of SOURCE may move this round: it has entities, costs
//  something (or its sim drains) and is not settling.
static bool
s_movable (hs_balance_t *self, const s_sim_t *source, const s_group_t *group,
           uint64_t now_ms)
{
    return group->entities >= 1 && (group->load > S_EPSILON || source->draining)
           && s_stamp (self->settled, group->name) <= now_ms;
}

//  Fill PLAN: ENTITIES of MOVING from SOURCE to TARGET (one of MEMBERS
//  rooms moving together), the model's loads and *BUDGET as after it.
static void
s_plan_add (hs_balance_t *self, s_plan_t *plan, s_sim_t *source,
            s_sim_t *target, s_group_t *moving, double entities, bool starved,
            size_t members, uint64_t now_ms, double *budget)
{
    double band = self->config.band;
    plan->group = moving->name;
    plan->from = source->name;
    plan->to = target->name;
    plan->entities = entities >= moving->entities ? 0 : (size_t) entities;
    plan->per_entity = moving->load / moving->entities;
    int size;
    if (source->draining)
        size = snprintf (plan->reason, sizeof plan->reason, "draining");
    else if (starved)
        size = snprintf (plan->reason, sizeof plan->reason,
                         "below band: %.6f < %.2f * %.6f", target->load,
                         1 - band, target->share);
    else
        size = snprintf (plan->reason, sizeof plan->reason,
                         "above band: %.6f > %.2f * %.6f", source->load,
                         1 + band, source->share);
    if (members > 1 && size > 0 && (size_t) size < sizeof plan->reason)
        snprintf (plan->reason + size, sizeof plan->reason - (size_t) size,
                  "; with %zu rooms that players share", members - 1);
    else if (plan->entities && size > 0 && (size_t) size < sizeof plan->reason)
        snprintf (plan->reason + size, sizeof plan->reason - (size_t) size,
                  "%s", S_PART);
    double load = plan->per_entity * entities;
    source->load -= load;
    target->load += load;
    moving->entities -= entities;
    moving->load -= load;
    *budget -= entities;
    s_stamp_set (self->settled, moving->name, now_ms + self->config.settle_ms);
}

static s_sim_t *
s_named (s_sim_t *model, size_t count, const char *name)
{
    for (size_t at = 0; name && at < count; at++)
        if (streq (model [at].name, name))
            return &model [at];
    return NULL;
}

//  Plan the rest of each room another leader moved part of (its queue
//  died with it, between the room's commands) to where that part went,
//  so no room stays split (load.md section 5, step 3): once neither sim
//  waits for a report, whatever the band, within *BUDGET. A rest the
//  source's report does not name (past its 64 groups) is counted in FSM
//  (lent; NULL: not), into SPARE (one per torn room). At most MAX moves
//  into PLANS; returns how many. Each room looked at is marked "done",
//  for s_finished once the plans are resolved (they lend its name).
static size_t
s_finish (hs_balance_t *self, s_sim_t *model, size_t count, hs_fsm_t *fsm,
          s_group_t *spare, double *budget, uint64_t now_ms, s_plan_t *plans,
          size_t max)
{
    size_t planned = 0, spared = 0;
    const char *group;
    json_t *torn;
    json_object_foreach (self->torn, group, torn)
    {
        s_sim_t *from = s_named (
            model, count, json_string_value (json_object_get (torn, "from")));
        s_sim_t *to = s_named (
            model, count, json_string_value (json_object_get (torn, "to")));
        //  Not reported to this leader yet (its first rounds), or their
        //  reports do not show the move yet: wait, while the room settles.
        if (!from || !to || from->frozen || to->frozen) {
            if ((uint64_t) json_integer_value (
                    json_object_get (torn, "until_ms"))
                <= now_ms)
                json_object_set_new (torn, "done", json_true ());
            continue;
        }
        s_group_t *rest = NULL;
        for (size_t at = 0; from && at < from->n_groups; at++)
            if (streq (from->groups [at].name, group))
                rest = &from->groups [at];
        if (!rest && fsm) {
            json_t *held = hs_fsm_group_held (fsm, group, from->name, NULL,
                                              HS_FSM_MAX_REQUESTS);
            double held_count = (double) json_array_size (held);
            json_decref (held);
            if (held_count >= 1) {
                rest = &spare [spared++];
                *rest = (s_group_t){group, held_count,
                                    held_count * self->config.entity_cost, 0};
            }
        }
        if (rest && rest->entities >= 1 && !to->draining) {
            if (planned == max || (rest->entities > *budget && planned > 0))
                break;
            //  Whole: s_resolve moves every path of it FROM holds.
            s_plan_add (self, &plans [planned], from, to, rest, rest->entities,
                        false, 1, now_ms, budget);
            snprintf (plans [planned].reason, sizeof plans [planned].reason,
                      "the rest of a room another leader moved part of");
            planned++;
        }
        json_object_set_new (torn, "done", json_true ());
    }
    return planned;
}

//  Forget the torn rooms s_finish looked at.
static void
s_finished (hs_balance_t *self)
{
    const char *group;
    json_t *torn;
    void *next;
    json_object_foreach_safe (self->torn, next, group, torn)
    {
        if (json_is_true (json_object_get (torn, "done")))
            json_object_del (self->torn, group);
    }
}

//  Plan a round on MODEL (COUNT sims) with at most BUDGET entities
//  moved, at most MAX moves into PLANS; NOW_MS for the groups settling.
//  Returns the moves planned; MODEL's loads are as after them.
static size_t
s_plan (hs_balance_t *self, s_sim_t *model, size_t count, double budget,
        uint64_t now_ms, s_plan_t *plans, size_t max)
{
    double band = self->config.band;
    size_t planned = 0;
    //  Sources by excess, the largest first; a drain before all.
    s_sim_t **sources = (s_sim_t **) calloc (count + 1, sizeof *sources);
    size_t n_sources = 0;
    bool starved = s_starved (model, count, band);
    double above = starved ? 1 : 1 + band;
    for (size_t at = 0; at < count; at++) {
        s_sim_t *sim = &model [at];
        if (!sim->frozen
            && (sim->draining ? sim->n_groups > 0
                              : sim->load > above * sim->share + S_EPSILON))
            sources [n_sources++] = sim;
    }
    for (size_t at = 1; at < n_sources; at++)
        for (size_t back = at; back > 0; back--) {
            s_sim_t *left = sources [back - 1], *right = sources [back];
            double left_excess =
                left->draining ? INFINITY : left->load - left->share;
            double right_excess =
                right->draining ? INFINITY : right->load - right->share;
            if (right_excess > left_excess + S_EPSILON
                || (fabs (right_excess - left_excess) <= S_EPSILON
                    && strcmp (right->name, left->name) < 0)) {
                sources [back - 1] = right;
                sources [back] = left;
            }
        }
    for (size_t at = 0; at < n_sources && planned < max; at++) {
        s_sim_t *source = sources [at];
        for (size_t group = 0; group < source->n_groups && planned < max;
             group++) {
            if (!s_giving (source, band, starved))
                break;
            s_group_t *moving = &source->groups [group];
            if (moving->unit != group
                || !s_movable (self, source, moving, now_ms))
                continue;  //  it goes with the heavier room it is linked to
            s_sim_t *target = s_target (model, count, source);
            if (!target)
                break;
            double room = target->share - target->load;
            //  Rooms the same players act in go together, if they fit.
            size_t members = 0;
            double unit_load = 0, unit_entities = 0;
            for (size_t other = group; other < source->n_groups; other++) {
                s_group_t *member = &source->groups [other];
                if (member->unit == group
                    && s_movable (self, source, member, now_ms)) {
                    members++;
                    unit_load += member->load;
                    unit_entities += member->entities;
                }
            }
            if (members > 1) {
                bool keeps =
                    source->draining
                    || source->load - unit_load >= source->share - S_EPSILON;
                if (unit_load <= room + S_EPSILON && keeps) {
                    if (unit_entities > budget + S_EPSILON && planned > 0)
                        goto done;
                    for (size_t other = group;
                         other < source->n_groups && planned < max; other++) {
                        s_group_t *member = &source->groups [other];
                        if (member->unit == group
                            && s_movable (self, source, member, now_ms))
                            s_plan_add (self, &plans [planned++], source,
                                        target, member, member->entities,
                                        starved, members, now_ms, &budget);
                    }
                    continue;
                }
                //  Parted only as a room is split: together they alone
                //  exceed a sim's share, or a drain must move them.
                if (!source->draining && unit_load <= target->share)
                    continue;
                for (size_t other = group; other < source->n_groups; other++)
                    if (source->groups [other].unit == group)
                        source->groups [other].unit = other;
            }
            double per_entity = moving->load / moving->entities;
            double entities = moving->entities;
            bool fits = moving->load <= room + S_EPSILON;
            bool keeps =
                source->draining
                || source->load - moving->load >= source->share - S_EPSILON;
            if (!(fits && keeps)) {
                //  Split only a room that alone exceeds a sim's share, or
                //  what a drain must move anyway.
                if (!source->draining && moving->load <= target->share)
                    continue;
                double part = per_entity > 0 ? floor (room / per_entity)
                                             : moving->entities;
                if (!source->draining && per_entity > 0)
                    part = fmin (part, floor ((source->load - source->share)
                                              / per_entity));
                if (source->draining && part < 1)
                    part = moving->entities;  //  no room fits it: anywhere
                if (part < 1)
                    continue;
                entities = fmin (part, moving->entities);
            }
            //  The round's budget; a group larger than it all goes alone.
            if (entities > budget + S_EPSILON && planned > 0)
                goto done;
            s_plan_add (self, &plans [planned++], source, target, moving,
                        entities, starved, 1, now_ms, &budget);
        }
    }
done:
    free (sources);
    return planned;
}

//  Append to DECISIONS a balance.move of PLAN's PATHS (taken), with the
//  load they carry.
static void
s_decide (json_t *decisions, const s_plan_t *plan, json_t *paths)
{
    double load = plan->per_entity * (double) json_array_size (paths);
    json_array_append_new (
        decisions,
        json_pack ("{s:s,s:s,s:s,s:s,s:o,s:s,s:f}", "move", "", "group",
                   plan->group, "from", plan->from, "to", plan->to, "paths",
                   paths, "reason", plan->reason, S_LOAD_KEY, load));
}

//  Append to DECISIONS the balance.move arguments of PLAN: its paths, as
//  FSM has them, in commands of at most S_MOVE_PATHS; an ask
//  each for those under ask while *ASKS lasts.
static void
s_resolve (hs_balance_t *self, const s_plan_t *plan, hs_fsm_t *fsm,
           json_t *decisions, size_t *asks)
{
    size_t wanted = plan->entities ? plan->entities : SIZE_MAX;
    json_t *paths = json_array ();
    char *after = NULL;
    size_t taken = 0;
    while (taken < wanted) {
        json_t *held = hs_fsm_group_held (fsm, plan->group, plan->from, after,
                                          HS_FSM_MAX_REQUESTS);
        size_t index;
        json_t *item;
        json_array_foreach (held, index, item)
        {
            if (taken >= wanted)
                break;
            const char *path =
                json_string_value (json_object_get (item, "path"));
            const char *rule =
                json_string_value (json_object_get (item, "rule"));
            if (streq (rule, "deny"))
                continue;  //  pinned: never moves
            taken++;
            if (streq (rule, "ask")) {
                if (*asks == 0)
                    continue;
                (*asks)--;
                json_array_append_new (
                    decisions,
                    json_pack ("{s:s,s:s,s:s,s:s,s:[s],s:s,s:b,s:I,s:f}",
                               "move", "", "group", plan->group, "from",
                               plan->from, "to", plan->to, "paths", path,
                               "reason", plan->reason, "ask", true,
                               "timeout_ms",
                               (json_int_t) self->config.ask_timeout_ms,
                               S_LOAD_KEY, plan->per_entity));
                continue;
            }
            json_array_append_new (paths, json_string (path));
            if (json_array_size (paths) == S_MOVE_PATHS) {
                s_decide (decisions, plan, paths);
                paths = json_array ();
            }
        }
        size_t got = json_array_size (held);
        free (after);
        after = got ? strdup (json_string_value (
                    json_object_get (json_array_get (held, got - 1), "path")))
                    : NULL;
        json_decref (held);
        if (got < HS_FSM_MAX_REQUESTS)
            break;
    }
    free (after);
    if (json_array_size (paths))
        s_decide (decisions, plan, paths);
    else
        json_decref (paths);
}

//  Whether MOVE's id is this member's, in the term it leads: counted in
//  its pending moves already.
static bool
s_own (hs_balance_t *self, const char *move)
{
    char prefix [32];
    int size = snprintf (prefix, sizeof prefix, "%llu.",
                         (unsigned long long) self->term);
    return move && strncmp (move, prefix, (size_t) size) == 0;
}

//  What the ring's recent decisions (FSM's moves table) say at NOW_MS:
//  the groups still settling and each sim's newest move of another
//  leader's. So a new leader paces as the old one did.
static void
s_recall (hs_balance_t *self, hs_fsm_t *fsm, uint64_t now_ms)
{
    uint64_t wall_ms = sf_time_wall_ms ();
    //  Those read before are in the tables already: a round that waits
    //  for reports looks again ten times a second.
    json_t *moves = hs_fsm_moves (fsm, self->recalled, 1000);
    size_t index;
    const json_t *move;
    json_array_foreach (moves, index, move)
    {
        uint64_t applied = (uint64_t) s_number (move, "index");
        if (applied > self->recalled)
            self->recalled = applied;
        uint64_t at_ms = (uint64_t) s_number (move, "at_ms");
        uint64_t age = wall_ms > at_ms ? wall_ms - at_ms : 0;
        if (age >= now_ms)
            continue;  //  older than this member's clock can say
        const char *group = json_string_value (json_object_get (move, "group"));
        if (group && age < self->config.settle_ms) {
            uint64_t until = now_ms + (self->config.settle_ms - age);
            if (s_stamp (self->settled, group) < until)
                s_stamp_set (self->settled, group, until);
        }
        if (s_own (self, json_string_value (json_object_get (move, "move"))))
            continue;
        //  Its room may be torn: the rest of its commands died with its
        //  leader's queue. Finished once its sims' reports show it, while
        //  the room settles.
        const char *from = json_string_value (json_object_get (move, "from"));
        const char *to = json_string_value (json_object_get (move, "to"));
        const char *reason =
            json_string_value (json_object_get (move, "reason"));
        if (group && from && to && age < self->config.settle_ms
            && !(reason && strstr (reason, S_PART)))
            json_object_set_new (
                self->torn, group,
                json_pack (
                    "{s:s,s:s,s:I}", "from", from, "to", to, "until_ms",
                    (json_int_t) (now_ms + self->config.settle_ms - age)));
        static const char *const sides [] = {"from", "to"};
        for (size_t side = 0; side < 2; side++) {
            const char *sim =
                json_string_value (json_object_get (move, sides [side]));
            s_moved_t *moved =
                sim ? (s_moved_t *) zhashx_lookup (self->moved, sim) : NULL;
            if (sim && (!moved || moved->index < applied))
                s_moved_set (self->moved, sim, now_ms - age, applied);
        }
    }
    json_decref (moves);
}

json_t *
hs_balance_round (hs_balance_t *self, const json_t *sims, hs_fsm_t *fsm,
                  uint64_t term, uint64_t now_ms)
{
    json_t *decisions = json_array ();
    if (!self->config.enabled)
        return decisions;
    self->term = term;
    self->tokens =
        fmin (s_budget_cap (&self->config),
              self->tokens
                  + self->config.moves_per_s
                        * (double) (now_ms - self->refill_ms) / 1000.0);
    self->refill_ms = now_ms;
    //  A round plans an interval's worth of moves once the last one's
    //  are all sent.
    if (json_array_size (self->queue) == 0 && now_ms >= self->next_ms) {
        self->next_ms = now_ms + self->config.interval_ms;
        s_recall (self, fsm, now_ms);
        s_pending_prune (self, sims, now_ms);
        zlist_t *draining = hs_fsm_draining (fsm);
        size_t count;
        s_sim_t *model = s_model (self, sims, draining, now_ms, true, &count);
        zlist_destroy (&draining);
        //  Only a sim that may give needs its rooms linked.
        for (size_t at = 0; at < count; at++) {
            if (model [at].frozen
                || (!model [at].draining
                    && model [at].load <= model [at].share))
                continue;
            json_t *owned =
                hs_fsm_owned_held (fsm, model [at].name, S_OWNED_MAX);
            s_link (&model [at], owned);
            json_decref (owned);
        }
        //  A plan per group at most, the torn rooms' rests counted apart.
        size_t max = json_object_size (self->torn);
        for (size_t at = 0; at < count; at++)
            max += model [at].n_groups;
        s_plan_t *plans = (s_plan_t *) calloc (max + 1, sizeof (s_plan_t));
        s_group_t *spare = (s_group_t *) calloc (
            json_object_size (self->torn) + 1, sizeof (s_group_t));
        double budget = self->config.moves_per_s
                        * (double) self->config.interval_ms / 1000.0;
        size_t planned = s_finish (self, model, count, fsm, spare, &budget,
                                   now_ms, plans, max);
        planned += s_plan (self, model, count, budget, now_ms, plans + planned,
                           max - planned);
        //  Nothing to do while a sim waits for its report: look again
        //  soon, not an interval later.
        bool waiting = false;
        for (size_t at = 0; at < count; at++)
            waiting |= model [at].frozen;
        if (!planned && waiting)
            self->next_ms = now_ms + S_RETRY_MS;
        size_t asks = S_ASKS_PER_ROUND;
        for (size_t at = 0; at < planned; at++)
            s_resolve (self, &plans [at], fsm, self->queue, &asks);
        free (plans);
        free (spare);
        s_finished (self);
        s_model_free (&model, count);
    }
    //  Sent as the budget allows, each with its id; its load counts at
    //  its sims until their reports show it.
    while (json_array_size (self->queue)) {
        json_t *decision = json_array_get (self->queue, 0);
        size_t paths = json_array_size (json_object_get (decision, "paths"));
        if ((double) paths > self->tokens + S_EPSILON)
            break;
        self->tokens -= (double) paths;
        char id [48];
        snprintf (id, sizeof id, "%llu.%llu", (unsigned long long) term,
                  (unsigned long long) ++self->decisions);
        json_object_set_new (decision, "move", json_string (id));
        double load = s_number (decision, S_LOAD_KEY);
        json_object_del (decision, S_LOAD_KEY);
        s_pending_add (self,
                       json_string_value (json_object_get (decision, "from")),
                       id, paths, -load, now_ms);
        s_pending_add (self,
                       json_string_value (json_object_get (decision, "to")), id,
                       paths, load, now_ms);
        json_array_append (decisions, decision);
        json_array_remove (self->queue, 0);
    }
    return decisions;
}

//  --------------------------------------------------------------------------
//  Self test

//  A report of GROUPS groups of ENTITIES entities each, named
//  PREFIX/roomN, the first with HOT updates per second, received AGE ms
//  ago.
static json_t *
s_test_report (const char *prefix, size_t groups, size_t entities, double hot,
               double age)
{
    json_t *list = json_array ();
    for (size_t at = 0; at < groups; at++) {
        char name [64];
        snprintf (name, sizeof name, "%s/room%02zu", prefix, at);
        json_array_append_new (
            list, json_pack ("{s:s,s:I,s:f}", "group", name, "entities",
                             (json_int_t) entities, "updates_per_s",
                             at == 0 ? hot : 0.0));
    }
    return json_pack ("{s:f,s:i,s:o,s:{s:i,s:i,s:f}}", "age_ms", age,
                      "capacity", 1, "groups", list, "rest", "groups", 0,
                      "entities", 0, "updates_per_s", 0.0);
}

//  Apply PLANS to SIMS' reports as the sims would report them after.
static void
s_test_apply (json_t *sims, const s_plan_t *plans, size_t planned)
{
    for (size_t at = 0; at < planned; at++) {
        json_t *from = json_object_get (sims, plans [at].from);
        json_t *to = json_object_get (sims, plans [at].to);
        json_t *groups = json_object_get (from, "groups");
        size_t index;
        json_t *group;
        json_array_foreach (groups, index, group)
        {
            if (!streq (json_string_value (json_object_get (group, "group")),
                        plans [at].group))
                continue;
            json_int_t held =
                json_integer_value (json_object_get (group, "entities"));
            json_int_t moved =
                plans [at].entities ? (json_int_t) plans [at].entities : held;
            double rate = s_number (group, "updates_per_s");
            double moved_rate = rate * (double) moved / (double) held;
            json_array_append_new (
                json_object_get (to, "groups"),
                json_pack ("{s:s,s:I,s:f}", "group", plans [at].group,
                           "entities", moved, "updates_per_s", moved_rate));
            json_object_set_new (group, "entities",
                                 json_integer (held - moved));
            json_object_set_new (group, "updates_per_s",
                                 json_real (rate - moved_rate));
            break;
        }
    }
}

int
hs_balance_test (bool verbose)
{
    if (verbose)
        printf (" * hs_balance: ");
    hs_balance_config_t config = {
        .enabled = true,
        .band = 0.15,
        .interval_ms = 2000,
        .moves_per_s = 1000000,
        .settle_ms = 30000,
        .ask_timeout_ms = 5000,
        .entity_cost = 20e-6,
        .update_cost = 40e-6,
    };
    hs_balance_t *self = hs_balance_new (&config, 0);

    //  200 rooms of 100 entities on a; b, c and d empty: one round puts
    //  every sim in the band, rooms whole, and moves no entity twice.
    json_t *sims = json_pack ("{s:o,s:o,s:o,s:o}", "a",
                              s_test_report ("/w", 200, 100, 0, 10), "b",
                              s_test_report ("/w", 0, 0, 0, 10), "c",
                              s_test_report ("/w", 0, 0, 0, 10), "d",
                              s_test_report ("/w", 0, 0, 0, 10));
    size_t count;
    s_sim_t *model = s_model (self, sims, NULL, 100000, true, &count);
    assert (count == 4 && streq (model [0].name, "a"));
    assert (fabs (model [0].share - 0.1) < 1e-9);
    s_plan_t plans [512];
    size_t planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    size_t moved = 0;
    for (size_t at = 0; at < planned; at++) {
        assert (plans [at].entities == 0);  //  whole rooms
        assert (streq (plans [at].from, "a"));
        for (size_t other = 0; other < at; other++)
            assert (!streq (plans [at].group, plans [other].group));
        moved += 100;
    }
    for (size_t at = 0; at < count; at++)
        assert (s_balanced (&model [at], config.band));
    //  The fewest moves to the band: each of b, c, d at least 0.85 of
    //  its share (4,250 entities), a at most 1.15 (5,750).
    assert (moved >= 3 * 4300 && moved <= 15000);
    s_test_apply (sims, plans, planned);
    s_model_free (&model, count);

    //  The same reports give the same decisions (a new leader's).
    hs_balance_t *again = hs_balance_new (&config, 0);
    json_t *before =
        json_pack ("{s:o,s:o}", "a", s_test_report ("/w", 200, 100, 0, 10), "b",
                   s_test_report ("/v", 0, 0, 0, 10));
    s_plan_t first [256], second [256];
    model = s_model (self, before, NULL, 100000, true, &count);
    zhashx_purge (self->settled);
    size_t first_count = s_plan (self, model, count, 1e9, 100000, first, 256);
    s_model_free (&model, count);
    model = s_model (again, before, NULL, 100000, true, &count);
    size_t second_count =
        s_plan (again, model, count, 1e9, 100000, second, 256);
    s_model_free (&model, count);
    assert (first_count == second_count && first_count > 0);
    for (size_t at = 0; at < first_count; at++)
        assert (streq (first [at].group, second [at].group)
                && streq (first [at].to, second [at].to));
    json_decref (before);
    hs_balance_destroy (&again);

    //  After the moves: in the band, nothing more to do; the moved sims
    //  wait for reports that show the move.
    model = s_model (self, sims, NULL, 100000, true, &count);
    for (size_t at = 0; at < count; at++)
        assert (s_balanced (&model [at], config.band));
    assert (s_plan (self, model, count, 1e9, 100000, plans, 512) == 0);
    s_model_free (&model, count);
    json_decref (sims);

    //  A skewed load: one room of 100 entities with 2,000 updates/s (80
    //  ms/s) against 20 rooms of 100 idle ones (2 ms/s each), on a; b
    //  empty. The hot room alone is above the share: it is split, and b
    //  ends with fewer entities than a loads.
    zhashx_purge (self->settled);
    sims = json_pack ("{s:o,s:o}", "a", s_test_report ("/s", 21, 100, 2000, 10),
                      "b", s_test_report ("/s", 0, 0, 0, 10));
    model = s_model (self, sims, NULL, 100000, true, &count);
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    assert (planned >= 1);
    for (size_t at = 0; at < count; at++)
        assert (s_balanced (&model [at], config.band));
    s_model_free (&model, count);
    s_test_apply (sims, plans, planned);
    json_t *b_groups = json_object_get (json_object_get (sims, "b"), "groups");
    double b_entities = 0;
    for (size_t at = 0; at < json_array_size (b_groups); at++)
        b_entities += s_number (json_array_get (b_groups, at), "entities");
    assert (b_entities > 0 && b_entities < 1050);  //  a holds the other 1,000+
    json_decref (sims);

    //  A drain: everything of c goes to a and b, whatever the band; a
    //  frozen sim (moved by another leader 500 ms ago) neither gives nor
    //  takes.
    zhashx_purge (self->settled);
    sims = json_pack ("{s:o,s:o,s:o}", "a", s_test_report ("/x", 10, 10, 0, 10),
                      "b", s_test_report ("/y", 10, 10, 0, 10), "c",
                      s_test_report ("/z", 3, 10, 0, 10));
    zlist_t *draining = zlist_new ();
    zlist_append (draining, (void *) "c");
    model = s_model (self, sims, draining, 100000, true, &count);
    assert (model [2].share == 0 && model [2].draining);
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    assert (planned == 3);
    for (size_t at = 0; at < planned; at++)
        assert (streq (plans [at].from, "c")
                && (streq (plans [at].reason, "draining")
                    || streq (plans [at].reason, "draining" S_PART)));
    s_model_free (&model, count);
    s_moved_set (self->moved, "a", 99500, 1);
    zhashx_purge (self->settled);
    model = s_model (self, sims, draining, 100000, true, &count);
    assert (model [0].frozen && !model [1].frozen);
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    for (size_t at = 0; at < planned; at++)
        assert (streq (plans [at].to, "b"));
    s_model_free (&model, count);
    //  The budget: 15 entities allow one room of 10 now, not two.
    zhashx_purge (self->settled);
    zhashx_purge (self->moved);
    model = s_model (self, sims, draining, 100000, true, &count);
    assert (s_plan (self, model, count, 15, 100000, plans, 512) == 1);
    s_model_free (&model, count);
    zlist_destroy (&draining);
    json_decref (sims);

    //  Below the band with nobody above it (three sims at 1.07 of the
    //  share, a fourth at 0.8): those above their share give to it.
    zhashx_purge (self->settled);
    sims = json_pack ("{s:o,s:o,s:o,s:o}", "a",
                      s_test_report ("/a", 16, 50, 0, 10), "b",
                      s_test_report ("/b", 16, 50, 0, 10), "c",
                      s_test_report ("/c", 16, 50, 0, 10), "d",
                      s_test_report ("/d", 12, 50, 0, 10));
    model = s_model (self, sims, NULL, 100000, true, &count);
    assert (!s_balanced (&model [3], config.band));
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    assert (planned == 3);
    for (size_t at = 0; at < count; at++)
        assert (s_balanced (&model [at], config.band));
    assert (strstr (plans [0].reason, "below band"));
    s_model_free (&model, count);
    json_decref (sims);

    //  Rooms the same players own entities in go together: 8 equal rooms
    //  on a would part 00-03 from 04-07; ada's 01 and 06, and bob's 02 and
    //  05, end on one sim each. Together above a share, they part.
    zhashx_purge (self->settled);
    sims = json_pack ("{s:o,s:o}", "a", s_test_report ("/w", 8, 25, 0, 10), "b",
                      s_test_report ("/w", 0, 0, 0, 10));
    json_t *owned = json_pack (
        "[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "path",
        "/w/room01/e1", "owner", "ada", "path", "/w/room06/e2", "owner", "ada",
        "path", "/w/room02/e3", "owner", "bob", "path", "/w/room05/e4", "owner",
        "bob", "path", "/elsewhere/e5", "owner", "bob");
    model = s_model (self, sims, NULL, 100000, true, &count);
    s_link (&model [0], owned);
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    zhashx_t *where = zhashx_new ();
    for (size_t at = 0; at < planned; at++)
        zhashx_insert (where, plans [at].group, (void *) plans [at].to);
    assert (zhashx_lookup (where, "/w/room01")
            == zhashx_lookup (where, "/w/room06"));
    assert (zhashx_lookup (where, "/w/room02")
            == zhashx_lookup (where, "/w/room05"));
    assert (zhashx_size (where) == 4);
    for (size_t at = 0; at < count; at++)
        assert (s_balanced (&model [at], config.band));
    zhashx_destroy (&where);
    s_model_free (&model, count);
    json_decref (sims);
    zhashx_purge (self->settled);
    sims = json_pack ("{s:o,s:o}", "a", s_test_report ("/w", 2, 25, 0, 10), "b",
                      s_test_report ("/w", 0, 0, 0, 10));
    model = s_model (self, sims, NULL, 100000, true, &count);
    json_decref (owned);
    owned = json_pack ("[{s:s,s:s},{s:s,s:s}]", "path", "/w/room00/e1", "owner",
                       "ada", "path", "/w/room01/e2", "owner", "ada");
    s_link (&model [0], owned);
    assert (model [0].groups [1].unit == 0);
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    assert (planned == 1 && plans [0].entities == 0);
    s_model_free (&model, count);
    json_decref (owned);
    json_decref (sims);

    //  This member's moves count at their sims until a report shows
    //  them, and those sims go on: a (40 rooms of 100) sent b a move of
    //  10 rooms' worth (0.02) that moved 5 of its 10 paths.
    zhashx_purge (self->settled);
    zhashx_purge (self->moved);
    sims = json_pack ("{s:o,s:o}", "a", s_test_report ("/p", 40, 100, 0, 10),
                      "b", s_test_report ("/p", 0, 0, 0, 10));
    json_object_set_new (json_object_get (sims, "a"), "ring_index",
                         json_integer (39));
    json_object_set_new (json_object_get (sims, "b"), "ring_index",
                         json_integer (39));
    s_pending_add (self, "a", "7.1", 10, -0.02, 99000);
    s_pending_add (self, "b", "7.1", 10, 0.02, 99000);
    model = s_model (self, sims, NULL, 100000, true, &count);
    assert (!model [0].frozen && !model [1].frozen);
    assert (fabs (model [0].load - 0.06) < 1e-9);
    assert (fabs (model [1].load - 0.02) < 1e-9);
    s_model_free (&model, count);
    //  A move this member did not send changes nothing of them.
    json_t *result = json_pack ("{s:s,s:s,s:s,s:i}", "move", "6.1", "from", "a",
                                "to", "b", "moved", 10);
    hs_balance_applied (self, result, 40);
    json_decref (result);
    assert (self->n_pending == 2 && self->pending [0].index == 0);
    result = json_pack ("{s:s,s:s,s:s,s:i}", "move", "7.1", "from", "a", "to",
                        "b", "moved", 5);
    hs_balance_applied (self, result, 40);
    json_decref (result);
    assert (self->n_pending == 2 && self->pending [0].index == 40);
    model = s_model (self, sims, NULL, 100000, true, &count);
    assert (fabs (model [0].load - 0.07) < 1e-9);  //  half moved
    assert (fabs (model [1].load - 0.01) < 1e-9);
    //  The next round plans from there: b (below the band) takes 15
    //  rooms, to 0.04 each, not the 20 the reports alone would say.
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    assert (planned == 15 && fabs (plans [0].per_entity - 20e-6) < 1e-12);
    s_model_free (&model, count);
    //  Reports at index 40 show it: it counts no more, and is dropped.
    json_object_set_new (json_object_get (sims, "b"), "ring_index",
                         json_integer (40));
    model = s_model (self, sims, NULL, 100000, true, &count);
    assert (fabs (model [1].load) < 1e-9);
    s_model_free (&model, count);
    s_pending_prune (self, sims, 100000);
    assert (self->n_pending == 1 && streq (self->pending [0].sim, "a"));
    //  One never applied (refused whole) counts until S_APPLY_MS.
    s_pending_add (self, "b", "7.2", 10, 0.02, 100000);
    s_pending_prune (self, sims, 100000 + S_APPLY_MS - 1);
    assert (self->n_pending == 2);
    s_pending_prune (self, sims, 100000 + S_APPLY_MS);
    assert (self->n_pending == 1);
    json_decref (sims);

    //  A room another leader moved part of (/t/room00: 64 of 100 went to
    //  b before its queue died) is finished to b, whatever the band, once
    //  neither sim waits for a report; a room it parted on purpose is not.
    zhashx_purge (self->settled);
    zhashx_purge (self->moved);
    sims = json_pack ("{s:o,s:o}", "a", s_test_report ("/t", 2, 36, 0, 10), "b",
                      s_test_report ("/t", 1, 64, 0, 10));
    json_object_set_new (self->torn, "/t/room00",
                         json_pack ("{s:s,s:s,s:i}", "from", "a", "to", "b",
                                    "until_ms", 200000));
    json_object_set_new (self->torn, "/t/room01",
                         json_pack ("{s:s,s:s,s:i}", "from", "b", "to", "a",
                                    "until_ms", 200000));
    model = s_model (self, sims, NULL, 100000, true, &count);
    double budget = 1e9;
    s_group_t spare [2];
    planned =
        s_finish (self, model, count, NULL, spare, &budget, 100000, plans, 512);
    assert (planned == 1 && streq (plans [0].group, "/t/room00")
            && streq (plans [0].from, "a") && streq (plans [0].to, "b")
            && plans [0].entities == 0);
    s_finished (self);
    assert (json_object_size (self->torn) == 0);
    s_model_free (&model, count);
    //  Waiting for a report, or for a sim's first report to this leader:
    //  kept for the next round, while the room settles.
    json_object_set_new (self->torn, "/t/room01",
                         json_pack ("{s:s,s:s,s:i}", "from", "a", "to", "b",
                                    "until_ms", 200000));
    json_object_set_new (self->torn, "/t/room02",
                         json_pack ("{s:s,s:s,s:i}", "from", "a", "to", "z",
                                    "until_ms", 200000));
    s_moved_set (self->moved, "b", 99500, 7);
    model = s_model (self, sims, NULL, 100000, true, &count);
    assert (
        s_finish (self, model, count, NULL, spare, &budget, 100000, plans, 512)
        == 0);
    s_finished (self);
    assert (json_object_size (self->torn) == 2);
    //  Once the room settled, a torn room waits no more.
    assert (
        s_finish (self, model, count, NULL, spare, &budget, 200000, plans, 512)
        == 0);
    s_finished (self);
    assert (json_object_size (self->torn) == 0);
    s_model_free (&model, count);
    json_object_clear (self->torn);
    zhashx_purge (self->moved);
    json_decref (sims);
    //  A part on purpose says so in its reason (a hot room, as above).
    zhashx_purge (self->settled);
    sims = json_pack ("{s:o,s:o}", "a", s_test_report ("/s", 21, 100, 2000, 10),
                      "b", s_test_report ("/s", 0, 0, 0, 10));
    model = s_model (self, sims, NULL, 100000, true, &count);
    planned = s_plan (self, model, count, 1e9, 100000, plans, 512);
    bool parted = false;
    for (size_t at = 0; at < planned; at++)
        if (plans [at].entities)
            parted = strstr (plans [at].reason, S_PART) != NULL;
    assert (parted);
    s_model_free (&model, count);
    json_decref (sims);

    //  Sent at the configured rate, whatever is left of a turn's budget:
    //  2,500 paths/s in commands of 64, turns every 100 ms, for 10 s.
    hs_balance_config_t paced = config;
    paced.moves_per_s = 2500;
    hs_balance_t *sender = hs_balance_new (&paced, 0);
    for (size_t at = 0; at < 400; at++) {
        json_t *paths = json_array ();
        for (size_t path = 0; path < S_MOVE_PATHS; path++)
            json_array_append_new (paths, json_string ("/p/x"));
        json_array_append_new (
            sender->queue, json_pack ("{s:s,s:s,s:o,s:f}", "from", "a", "to",
                                      "b", "paths", paths, S_LOAD_KEY, 0.0));
    }
    size_t sent = 0;
    for (uint64_t now = 100; now <= 10000; now += 100) {
        json_t *decisions = hs_balance_round (sender, NULL, NULL, 3, now);
        for (size_t at = 0; at < json_array_size (decisions); at++) {
            json_t *decision = json_array_get (decisions, at);
            assert (!json_object_get (decision, S_LOAD_KEY));
            sent += json_array_size (json_object_get (decision, "paths"));
        }
        json_decref (decisions);
    }
    assert (sent >= 24000 && sent <= 25000 + 2 * S_MOVE_PATHS);
    assert (sender->n_pending == 2 * sent / S_MOVE_PATHS);
    hs_balance_destroy (&sender);

    //  A silent sim (no report for three intervals) is no candidate.
    sims = json_pack ("{s:o,s:o}", "a", s_test_report ("/q", 4, 10, 0, 10), "b",
                      s_test_report ("/q", 0, 0, 0, 6000));
    model = s_model (self, sims, NULL, 100000, true, &count);
    assert (count == 1);
    s_model_free (&model, count);
    json_decref (sims);

    hs_balance_destroy (&self);
    if (verbose)
        printf ("OK\n");
    return 0;
}
