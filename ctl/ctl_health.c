/*  ctl_health: what is wrong with a ring or a sim. */

#include "ctl/ctl_health.h"

#include <assert.h>
#include <czmq.h>
#include <stdarg.h>

static void
s_problem (json_t *problems, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = zsys_vprintf (format, args);
    va_end (args);
    json_array_append_new (problems, json_string (text));
    free (text);
}

static const char *
s_text (const json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

static json_int_t
s_int (const json_t *object, const char *key)
{
    return json_integer_value (json_object_get (object, key));
}

//  Whether STATUS is an answer (an object that says ok).
static bool
s_answered (const json_t *status)
{
    return json_is_object (status)
           && json_is_true (json_object_get (status, "ok"));
}

json_t *
ctl_health_ring (const json_t *members, const json_t *statuses,
                 const json_t *loads, int64_t max_lag)
{
    json_t *problems = json_array ();
    size_t voters = 0, answering = 0;
    size_t at;
    const json_t *member;
    json_array_foreach (members, at, member)
    {
        const char *name = s_text (member, "name");
        const char *role = s_text (member, "role");
        bool voter = role && streq (role, "voter");
        voters += voter;
        const json_t *status = name ? json_object_get (statuses, name) : NULL;
        if (s_answered (status)) {
            answering += voter;
            continue;
        }
        const char *api = s_text (member, "api");
        const char *why =
            json_is_string (status) ? json_string_value (status)
            : json_is_object (status)
                ? s_text (json_object_get (status, "error"), "message")
                : NULL;
        s_problem (problems, "%s: unreachable (%s): %s",
                   name ? name : "(a member with no name)",
                   api ? api : "no api",
                   why ? why : "not asked: its name, api or key is unknown");
    }
    if (voters && answering < voters / 2 + 1)
        s_problem (problems, "ring: no quorum: %zu of %zu voters answer",
                   answering, voters);

    //  Leaders: none known, or two named in one term.
    const char *name;
    const json_t *status;
    const char *leader = NULL, *leader_of = NULL;
    json_int_t leader_term = -1, commit = 0;
    json_object_foreach ((json_t *) statuses, name, status)
    {
        if (!s_answered (status))
            continue;
        const char *known = s_text (status, "leader");
        json_int_t term = s_int (status, "term");
        if (s_int (status, "commit_index") > commit)
            commit = s_int (status, "commit_index");
        if (!known)
            continue;
        if (leader && term == leader_term && !streq (known, leader))
            s_problem (problems,
                       "ring: %s and %s name different leaders in term %lld",
                       leader_of, name, (long long) term);
        if (!leader || term > leader_term) {
            leader = known;
            leader_of = name;
            leader_term = term;
        }
    }
    if (!leader)
        s_problem (problems, "ring: no leader");
    //  The leader's own status, if it answered: the configuration as the
    //  ring has it.
    const json_t *ruling = leader ? json_object_get (statuses, leader) : NULL;
    if (!s_answered (ruling) || !s_text (ruling, "role")
        || !streq (s_text (ruling, "role"), "leader"))
        ruling = NULL;

    json_object_foreach ((json_t *) statuses, name, status)
    {
        if (!s_answered (status))
            continue;
        json_int_t lag = commit - s_int (status, "applied_index");
        if (lag > max_lag)
            s_problem (problems, "%s: apply lag %lld > %lld", name,
                       (long long) lag, (long long) max_lag);
        //  A member removed from the ring is not told: it keeps running on
        //  the configuration it applied last (homeserver-api.md, status).
        bool listed = !ruling;
        json_int_t self = s_int (status, "raft_id");
        json_array_foreach (json_object_get (ruling, "members"), at, member)
            listed |= s_int (member, "id") == self;
        if (!listed)
            s_problem (problems, "%s: removed from the ring, still running",
                       name);
    }
    const json_t *report;
    json_object_foreach ((json_t *) loads, name, report)
    {
        const json_t *over = json_object_get (report, "overloaded");
        if (over)
            s_problem (problems, "%s: overloaded: %s", name,
                       s_text (over, "reason") ? s_text (over, "reason")
                                               : "(no reason given)");
    }
    return problems;
}

json_t *
ctl_health_sim (const json_t *status, const json_t *counters,
                const json_t *sims)
{
    json_t *problems = json_array ();
    const char *node = s_text (status, "node");
    if (!node)
        node = "sim";
    if (!json_is_true (json_object_get (status, "registered"))) {
        s_problem (problems, "%s: not registered", node);
        return problems;
    }
    const json_t *age = json_object_get (status, "heartbeat_age_ms");
    json_int_t every = s_int (status, "heartbeat_ms");
    if (json_is_null (age) || !age)
        s_problem (problems, "%s: no heartbeat answered yet", node);
    else if (every > 0 && json_integer_value (age) > 3 * every)
        s_problem (problems, "%s: last heartbeat answered %lld ms ago", node,
                   (long long) json_integer_value (age));
    //  Each sim the ring lists: a peer this sim streams to (it knows
    //  its state endpoint, "state" in its counters' peers).
    size_t at;
    const json_t *sim;
    json_array_foreach (sims, at, sim)
    {
        const char *other = s_text (sim, "sim");
        if (!other || streq (other, node))
            continue;
        bool known = false;
        size_t index;
        const json_t *peer;
        json_array_foreach (json_object_get (counters, "peers"), index, peer)
        {
            const char *name = s_text (peer, "sim");
            known |= name && streq (name, other) && s_text (peer, "state");
        }
        if (!known)
            s_problem (problems, "%s: %s is not a peer", node, other);
    }
    return problems;
}

//  --------------------------------------------------------------------------
//  Self test

static bool
s_has (const json_t *problems, const char *text)
{
    size_t at;
    const json_t *problem;
    json_array_foreach (
        problems, at,
        problem) if (streq (json_string_value (problem), text)) return true;
    return false;
}

//  A member's status: NAME (raft ID), LEADER (NULL: none) in TERM, its
//  commit and applied indexes, listing members 1..LISTED.
static json_t *
s_status (const char *name, int id, const char *leader, int term, int commit,
          int applied, int listed)
{
    json_t *members = json_array ();
    for (int at = 1; at <= listed; at++)
        json_array_append_new (members, json_pack ("{s:i}", "id", at));
    bool leading = leader && streq (leader, name);
    return json_pack ("{s:b,s:s,s:i,s:s,s:s?,s:i,s:i,s:i,s:o}", "ok", true,
                      "node", name, "raft_id", id, "role",
                      leading ? "leader" : "follower", "leader", leader, "term",
                      term, "commit_index", commit, "applied_index", applied,
                      "members", members);
}

int
ctl_health_test (bool verbose)
{
    if (verbose)
        printf (" * ctl_health: ");
    json_t *members =
        json_pack ("[{s:s,s:i,s:s,s:s},{s:s,s:i,s:s,s:s},{s:s,s:i,s:s,s:s}]",
                   "name", "hs1", "id", 1, "api", "tcp://a:1", "role", "voter",
                   "name", "hs2", "id", 2, "api", "tcp://a:2", "role", "voter",
                   "name", "hs3", "id", 3, "api", "tcp://a:3", "role", "voter");

    //  Healthy: all answer, one leader, no lag.
    json_t *statuses = json_pack (
        "{s:o,s:o,s:o}", "hs1", s_status ("hs1", 1, "hs1", 4, 90, 90, 3), "hs2",
        s_status ("hs2", 2, "hs1", 4, 90, 88, 3), "hs3",
        s_status ("hs3", 3, "hs1", 4, 90, 90, 3));
    json_t *problems = ctl_health_ring (members, statuses, NULL, 10000);
    assert (json_array_size (problems) == 0);
    json_decref (problems);

    //  One down, one lagging, an overloaded leader.
    json_object_set_new (statuses, "hs3", json_string ("no answer in 5000 ms"));
    json_object_set_new (statuses, "hs2",
                         s_status ("hs2", 2, "hs1", 4, 90, 20, 3));
    json_t *loads = json_pack ("{s:{s:{s:s}},s:{}}", "hs1", "overloaded",
                               "reason", "commit p99 84 ms > 50 ms", "hs2");
    problems = ctl_health_ring (members, statuses, loads, 50);
    assert (json_array_size (problems) == 3);
    assert (s_has (problems, "hs3: unreachable (tcp://a:3): no answer in "
                             "5000 ms"));
    assert (s_has (problems, "hs2: apply lag 70 > 50"));
    assert (s_has (problems, "hs1: overloaded: commit p99 84 ms > 50 ms"));
    json_decref (problems);
    json_decref (loads);

    //  Two down: no quorum; the one left knows no leader.
    json_object_set_new (statuses, "hs2", json_string ("connection refused"));
    json_object_set_new (statuses, "hs1",
                         s_status ("hs1", 1, NULL, 5, 90, 90, 3));
    problems = ctl_health_ring (members, statuses, NULL, 10000);
    assert (s_has (problems, "ring: no quorum: 1 of 3 voters answer"));
    assert (s_has (problems, "ring: no leader"));
    assert (json_array_size (problems) == 4);
    json_decref (problems);

    //  Two leaders named in one term.
    json_object_set_new (statuses, "hs1",
                         s_status ("hs1", 1, "hs1", 6, 90, 90, 3));
    json_object_set_new (statuses, "hs2",
                         s_status ("hs2", 2, "hs2", 6, 90, 90, 3));
    json_object_set_new (statuses, "hs3",
                         s_status ("hs3", 3, "hs1", 6, 90, 90, 3));
    problems = ctl_health_ring (members, statuses, NULL, 10000);
    assert (json_array_size (problems) == 1);
    assert (s_has (problems, "ring: hs1 and hs2 name different leaders in "
                             "term 6")
            || s_has (problems, "ring: hs2 and hs1 name different leaders "
                                "in term 6"));
    json_decref (problems);
    //  A removed member (hs3, asked directly) still lists itself and knows
    //  no leader; the leader's configuration has two members.
    json_object_set_new (statuses, "hs2",
                         s_status ("hs2", 2, "hs1", 6, 90, 90, 3));
    json_object_set_new (statuses, "hs1",
                         s_status ("hs1", 1, "hs1", 7, 95, 95, 2));
    json_object_set_new (statuses, "hs3",
                         s_status ("hs3", 3, NULL, 6, 90, 90, 3));
    problems = ctl_health_ring (members, statuses, NULL, 10000);
    assert (json_array_size (problems) == 1);
    assert (s_has (problems, "hs3: removed from the ring, still running"));
    json_decref (problems);
    json_decref (statuses);
    json_decref (members);

    //  A sim: healthy, then silent, then without a session, then not
    //  registered.
    json_t *status = json_pack ("{s:b,s:s,s:b,s:i,s:i}", "ok", true, "node",
                                "sim1", "registered", true, "heartbeat_ms",
                                1000, "heartbeat_age_ms", 400);
    json_t *counters = json_pack ("{s:[{s:s,s:s}]}", "peers", "sim", "sim2",
                                  "state", "udp://127.0.0.1:7301");
    json_t *sims = json_pack ("[{s:s},{s:s}]", "sim", "sim1", "sim", "sim2");
    problems = ctl_health_sim (status, counters, sims);
    assert (json_array_size (problems) == 0);
    json_decref (problems);
    json_object_set_new (status, "heartbeat_age_ms", json_integer (5200));
    json_array_append_new (sims, json_pack ("{s:s}", "sim", "sim3"));
    problems = ctl_health_sim (status, counters, sims);
    assert (json_array_size (problems) == 2);
    assert (s_has (problems, "sim1: last heartbeat answered 5200 ms ago"));
    assert (s_has (problems, "sim1: sim3 is not a peer"));
    json_decref (problems);
    json_object_set_new (status, "registered", json_false ());
    problems = ctl_health_sim (status, counters, sims);
    assert (json_array_size (problems) == 1
            && s_has (problems, "sim1: not registered"));
    json_decref (problems);
    json_decref (status);
    json_decref (counters);
    json_decref (sims);
    if (verbose)
        printf ("OK\n");
    return 0;
}
