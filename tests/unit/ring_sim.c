/*  ring_sim: several hs_ring members in one process over a simulated
    network and simulated disks, deterministic from a seed.

    The network drops, duplicates, delays and so reorders messages, and
    every message goes through the real wire codec (protocol/raft_msg).
    Disks report writes durable after a delay; a crash loses whatever was
    not reported durable. Members crash and restart from their disks. A
    client submits commands to whoever is leader.

    Checked throughout and at the end:
    - state machines never diverge: at every index, every member that
      applied it applied the same command (Raft's State Machine Safety);
    - no acknowledged command is lost: a command applied by the member that
      took it, in the term it was submitted, is at that index everywhere;
    - after faults stop, every member converges to the same state;
    - the replica digests members exchange match wherever they are
      compared (through crashes, restarts and snapshots), and when one
      member applies one command differently (a case of its own), the
      divergence detector fires and names that member. */

#include "broker/hs_ring.h"
#include "common/sf_log.h"
#include "protocol/raft_msg.h"
#include "tests/unit/test_random.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_NODES 5
#define S_MAX_QUEUE 200000

//  A durable log entry on a simulated disk.
typedef struct {
    raft_term term;
    enum raft_entry_type type;
    char *data;
    size_t size;
} s_stored_t;

typedef struct {
    //  Simulated disk: what survives a crash.
    raft_term term;
    raft_id vote;
    s_stored_t *log;  //  index start .. start + count - 1
    unsigned count, capacity;
    raft_index start;
    raft_index synced;                       //  highest index reported durable
    struct raft_snapshot_metadata snapshot;  //  index 0: none
    char *snapshot_data;
    size_t snapshot_size;
    //  State machine: command applied at each index (NULL if none).
    char **applied;
    raft_index applied_count;  //  indexes 1..applied_count are known
    raft_index fsm_capacity;
    hs_ring_t *ring;  //  NULL while crashed
    char address [32];
} s_node_t;

//  Something that happens later: a message arrives or a write syncs.
typedef struct {
    uint64_t at;
    int kind;       //  0 message, 1 disk
    int to;         //  node
    uint8_t *data;  //  message frame
    size_t size;
    raft_index index;     //  disk: last index written
    raft_term term;       //  disk: its term
    unsigned generation;  //  disk: node's life it belongs to
} s_later_t;

static struct {
    unsigned nodes;
    s_node_t node [S_MAX_NODES];
    unsigned generation [S_MAX_NODES];
    s_later_t *later;
    unsigned later_count;
    uint64_t now;
    unsigned loss_percent;
    unsigned duplicate_percent;
    unsigned max_delay;
    unsigned max_disk_delay;
    //  Commands the client was told were applied: index and text.
    raft_index acked_index [20000];
    char *acked [20000];
    unsigned acked_count;
    //  Commands in flight: node, index, term, text.
    struct {
        int node;
        raft_index index;
        raft_term term;
        char *text;
    } inflight [20000];
    unsigned inflight_count;
    unsigned submitted;
    unsigned snapshots_installed;
    //  The divergence case: member DIVERGE (0: none) gets a different
    //  outcome from applying command DIVERGE_TEXT, and at what index it did.
    unsigned diverge;
    const char *diverge_text;
    raft_index diverged_at;
    //  Each member's digest counters, summed over its lives.
    hs_ring_digest_counters_t digests [S_MAX_NODES];
} s_sim;

static void
s_later_add (s_later_t later)
{
    assert (s_sim.later_count < S_MAX_QUEUE);
    s_sim.later [s_sim.later_count++] = later;
}

//  --------------------------------------------------------------------------
//  The io table of one node

static s_node_t *
s_node (void *handle)
{
    return (s_node_t *) handle;
}

static int
s_node_index (s_node_t *node)
{
    return (int) (node - s_sim.node);
}

static int
s_save_term_vote (void *handle, raft_term term, raft_id vote)
{
    s_node (handle)->term = term;
    s_node (handle)->vote = vote;
    return 0;
}

static void
s_disk_truncate (s_node_t *node, raft_index index)
{
    while (node->count && node->start + node->count - 1 >= index) {
        free (node->log [node->count - 1].data);
        node->count--;
    }
    if (node->synced >= index)
        node->synced = index - 1;
}

static void
s_append (void *handle, raft_index index, const struct raft_entry *entries,
          unsigned n)
{
    s_node_t *node = s_node (handle);
    s_disk_truncate (node, index);
    if (node->count == 0)
        node->start = index;
    assert (index == node->start + node->count);
    for (unsigned at = 0; at < n; at++) {
        if (node->count == node->capacity) {
            node->capacity = node->capacity ? node->capacity * 2 : 64;
            node->log = (s_stored_t *) realloc (
                node->log, node->capacity * sizeof (s_stored_t));
        }
        s_stored_t *stored = &node->log [node->count++];
        stored->term = entries [at].term;
        stored->type = entries [at].type;
        stored->size = entries [at].buf.len;
        stored->data = (char *) malloc (stored->size + 1);
        memcpy (stored->data, entries [at].buf.base, stored->size);
    }
    if (n == 0)
        return;
    s_later_t later = {
        .at = s_sim.now + 1 + test_random_below (s_sim.max_disk_delay),
        .kind = 1,
        .to = s_node_index (node),
        .index = index + n - 1,
        .term = entries [n - 1].term,
        .generation = s_sim.generation [s_node_index (node)],
    };
    s_later_add (later);
}

static void
s_send (void *handle, const struct raft_message *message)
{
    s_node_t *node = s_node (handle);
    int to = (int) message->server_id - 1;
    assert (to >= 0 && to < (int) s_sim.nodes);
    size_t size = raft_msg_size (message, node->address);
    assert (size > 0);
    uint8_t *frame = (uint8_t *) malloc (size);
    int rc = raft_msg_encode (message, (raft_id) s_node_index (node) + 1,
                              node->address, frame, size);
    assert (rc == 0);
    if (test_random_below (100) < s_sim.loss_percent) {
        free (frame);
        return;
    }
    int copies = test_random_below (100) < s_sim.duplicate_percent ? 2 : 1;
    for (int copy = 0; copy < copies; copy++) {
        uint8_t *data = frame;
        if (copy) {
            data = (uint8_t *) malloc (size);
            memcpy (data, frame, size);
        }
        s_later_t later = {.at = s_sim.now + 1
                                 + test_random_below (s_sim.max_delay),
                           .kind = 0,
                           .to = to,
                           .data = data,
                           .size = size};
        s_later_add (later);
    }
}

static void
s_fsm_set (s_node_t *node, raft_index index, const char *text)
{
    if (index > node->fsm_capacity) {
        raft_index capacity = node->fsm_capacity ? node->fsm_capacity : 256;
        while (capacity < index)
            capacity *= 2;
        node->applied =
            (char **) realloc (node->applied, (capacity + 1) * sizeof (char *));
        for (raft_index at = node->fsm_capacity + 1; at <= capacity; at++)
            node->applied [at] = NULL;
        node->fsm_capacity = capacity;
    }
    free (node->applied [index]);
    node->applied [index] = text ? strdup (text) : NULL;
}

static void
s_fsm_clear (s_node_t *node)
{
    for (raft_index at = 1; at <= node->fsm_capacity; at++) {
        free (node->applied [at]);
        node->applied [at] = NULL;
    }
    node->applied_count = 0;
}

//  Send member TO a Digest frame, over the same lossy network.
static void
s_send_digest (void *handle, raft_id to, raft_index index,
               const uint8_t *digest)
{
    s_node_t *node = s_node (handle);
    assert (to >= 1 && to <= s_sim.nodes);
    uint8_t *frame = (uint8_t *) malloc (RAFT_MSG_DIGEST_SIZE + 32);
    size_t size = raft_msg_encode_digest ((raft_id) s_node_index (node) + 1,
                                          node->address, index, digest, frame,
                                          RAFT_MSG_DIGEST_SIZE + 32);
    assert (size > 0);
    if (test_random_below (100) < s_sim.loss_percent) {
        free (frame);
        return;
    }
    s_later_t later = {.at =
                           s_sim.now + 1 + test_random_below (s_sim.max_delay),
                       .kind = 0,
                       .to = (int) to - 1,
                       .data = frame,
                       .size = size};
    s_later_add (later);
}

static void
s_apply (void *handle, raft_index index, raft_term term,
         const struct raft_buffer *command, uint8_t *outcome)
{
    s_node_t *node = s_node (handle);
    char text [64];
    snprintf (text, sizeof text, "%.*s", (int) command->len,
              (const char *) command->base);
    //  The outcome: what this state machine answered, here the text it
    //  stored. The diverging member answers one command differently,
    //  as a state machine with a bug would, though it stores the same.
    memcpy (outcome, text, strlen (text) < 16 ? strlen (text) : 16);
    if (s_sim.diverge == (unsigned) s_node_index (node) + 1
        && strcmp (text, s_sim.diverge_text) == 0) {
        outcome [15] ^= 1;
        s_sim.diverged_at = index;
    }
    //  Entries apply in order, none skipped (non-commands leave a gap).
    assert (index > node->applied_count);
    s_fsm_set (node, index, text);
    node->applied_count = index;
    //  Safety: nobody applied anything else at this index.
    for (unsigned other = 0; other < s_sim.nodes; other++) {
        s_node_t *peer = &s_sim.node [other];
        if (peer != node && peer->applied_count >= index
            && peer->applied [index]) {
            if (strcmp (peer->applied [index], text) != 0) {
                fprintf (stderr, "ring_sim: DIVERGED at %llu: %s vs %s\n",
                         index, peer->applied [index], text);
                abort ();
            }
        }
    }
    //  The client learns the outcome from the member it submitted to.
    for (unsigned at = 0; at < s_sim.inflight_count; at++)
        if (s_sim.inflight [at].node == s_node_index (node)
            && s_sim.inflight [at].index == index) {
            if (s_sim.inflight [at].term == term
                && strcmp (s_sim.inflight [at].text, text) == 0) {
                s_sim.acked_index [s_sim.acked_count] = index;
                s_sim.acked [s_sim.acked_count++] = s_sim.inflight [at].text;
            }
            else
                free (s_sim.inflight [at].text);
            s_sim.inflight [at] = s_sim.inflight [--s_sim.inflight_count];
            break;
        }
}

//  The image: "index text\n" for every command applied.
static int
s_snapshot_take (void *handle, struct raft_buffer *data)
{
    s_node_t *node = s_node (handle);
    size_t size = 32;
    for (raft_index at = 1; at <= node->applied_count; at++)
        if (node->applied [at])
            size += 24 + strlen (node->applied [at]);
    char *image = (char *) raft_malloc (size);
    size_t used =
        (size_t) snprintf (image, size, "%llu\n", node->applied_count);
    for (raft_index at = 1; at <= node->applied_count; at++)
        if (node->applied [at])
            used += (size_t) snprintf (image + used, size - used, "%llu %s\n",
                                       at, node->applied [at]);
    data->base = image;
    data->len = used;
    return 0;
}

static int
s_snapshot_save (void *handle, const struct raft_snapshot_metadata *metadata,
                 const struct raft_buffer *data, raft_index keep_from)
{
    s_node_t *node = s_node (handle);
    //  A store writes in order: the snapshot is durable only after every
    //  entry appended before it (hs_persist flushes them first).
    if (node->count && node->start + node->count - 1 > node->synced)
        node->synced = node->start + node->count - 1;
    raft_configuration_close (&node->snapshot.configuration);
    node->snapshot = *metadata;
    raft_configuration_init (&node->snapshot.configuration);
    for (unsigned at = 0; at < metadata->configuration.n; at++)
        raft_configuration_add (&node->snapshot.configuration,
                                metadata->configuration.servers [at].id,
                                metadata->configuration.servers [at].address,
                                metadata->configuration.servers [at].role);
    free (node->snapshot_data);
    node->snapshot_data = (char *) malloc (data->len + 1);
    memcpy (node->snapshot_data, data->base, data->len);
    node->snapshot_size = data->len;
    //  Drop entries before KEEP_FROM; an installed snapshot drops them all.
    if (node->count == 0 || keep_from > node->start + node->count - 1) {
        s_disk_truncate (node, 0);
        node->start = metadata->index + 1;
        node->synced = metadata->index;
        return 0;
    }
    unsigned drop = 0;
    while (drop < node->count && node->start + drop < keep_from)
        free (node->log [drop++].data);
    memmove (node->log, node->log + drop,
             (node->count - drop) * sizeof (s_stored_t));
    node->count -= drop;
    node->start += drop;
    return 0;
}

static int
s_snapshot_restore (void *handle, raft_index index,
                    const struct raft_buffer *data)
{
    s_node_t *node = s_node (handle);
    s_fsm_clear (node);
    char *text = (char *) malloc (data->len + 1);
    memcpy (text, data->base, data->len);
    text [data->len] = 0;
    char *line = strtok (text, "\n");
    raft_index count = strtoull (line, NULL, 10);
    while ((line = strtok (NULL, "\n"))) {
        char *space = strchr (line, ' ');
        raft_index at = strtoull (line, NULL, 10);
        s_fsm_set (node, at, space + 1);
    }
    node->applied_count = count;
    free (text);
    //  The image never holds commands past the index it claims.
    assert (count <= index);
    s_sim.snapshots_installed++;
    return 0;
}

//  --------------------------------------------------------------------------
//  Driving the simulation

static hs_ring_io_t s_io = {
    .save_term_vote = s_save_term_vote,
    .append = s_append,
    .send = s_send,
    .apply = s_apply,
    .snapshot_take = s_snapshot_take,
    .snapshot_save = s_snapshot_save,
    .snapshot_restore = s_snapshot_restore,
    .send_digest = s_send_digest,
};

//  Add what NODE's ring counted to its sums, before the ring goes.
static void
s_digests_collect (unsigned index)
{
    const hs_ring_digest_counters_t *counters =
        hs_ring_digest_counters (s_sim.node [index].ring);
    hs_ring_digest_counters_t *sum = &s_sim.digests [index];
    sum->compared += counters->compared;
    sum->mismatches += counters->mismatches;
    if (counters->mismatches) {
        sum->mismatch_member = counters->mismatch_member;
        sum->mismatch_index = counters->mismatch_index;
    }
}

//  Start NODE from what its disk holds.
static void
s_node_start (unsigned index)
{
    s_node_t *node = &s_sim.node [index];
    hs_ring_io_t io = s_io;
    io.handle = node;
    hs_ring_options_t options = {
        .election_timeout_ms = 150,
        .heartbeat_timeout_ms = 30,
        .snapshot_threshold = 64,
        .snapshot_trailing = 16,
        .seed = (unsigned) test_random (),
    };
    node->ring = hs_ring_new (index + 1, node->address, &io, &options);
    assert (node->ring);
    //  The state machine is rebuilt from the snapshot and the log.
    s_fsm_clear (node);
    hs_ring_state_t state = {
        .term = node->term,
        .voted_for = node->vote,
        .start_index = node->count ? node->start : node->snapshot.index + 1,
        .n_entries = node->count,
    };
    if (node->snapshot.index) {
        state.snapshot = &node->snapshot;
        state.snapshot_data.base = node->snapshot_data;
        state.snapshot_data.len = node->snapshot_size;
    }
    struct raft_entry *entries = (struct raft_entry *) calloc (
        node->count + 1, sizeof (struct raft_entry));
    for (unsigned at = 0; at < node->count; at++) {
        entries [at].term = node->log [at].term;
        entries [at].type = node->log [at].type;
        entries [at].buf.base = node->log [at].data;
        entries [at].buf.len = node->log [at].size;
    }
    state.entries = entries;
    sf_fault_t fault;
    int rc = hs_ring_start (node->ring, &state, s_sim.now, &fault);
    if (rc)
        fprintf (stderr, "ring_sim: start of %u failed: %s\n", index + 1,
                 fault.message);
    assert (rc == 0);
    free (entries);
}

//  Crash NODE: writes not yet reported durable are lost.
static void
s_node_crash (unsigned index)
{
    s_node_t *node = &s_sim.node [index];
    s_digests_collect (index);
    hs_ring_destroy (&node->ring);
    s_disk_truncate (node, node->synced + 1);
    s_sim.generation [index]++;
    //  The client's requests to it are lost with it.
    for (unsigned at = 0; at < s_sim.inflight_count;)
        if (s_sim.inflight [at].node == (int) index) {
            free (s_sim.inflight [at].text);
            s_sim.inflight [at] = s_sim.inflight [--s_sim.inflight_count];
        }
        else
            at++;
}

//  Run the simulation until END, submitting commands and, if CRASHES,
//  crashing members now and then.
static void
s_run (uint64_t end, bool crashes, bool submit, bool verbose)
{
    uint64_t next_submit = submit ? s_sim.now : UINT64_MAX;
    uint64_t next_crash = s_sim.now + 1000;
    int crashed = -1;
    uint64_t restart_at = 0;
    while (s_sim.now < end) {
        //  The earliest of: a queued event, a timer, the client, faults.
        uint64_t next = end;
        int which = -1;
        for (unsigned at = 0; at < s_sim.later_count; at++)
            if (s_sim.later [at].at < next) {
                next = s_sim.later [at].at;
                which = (int) at;
            }
        int timer_node = -1;
        for (unsigned at = 0; at < s_sim.nodes; at++)
            if (s_sim.node [at].ring
                && hs_ring_timeout (s_sim.node [at].ring) < next) {
                next = hs_ring_timeout (s_sim.node [at].ring);
                timer_node = (int) at;
                which = -1;
            }
        if (next_submit <= next) {
            next = next_submit;
            which = -2;
        }
        if (crashes && crashed < 0 && next_crash <= next) {
            next = next_crash;
            which = -3;
        }
        if (crashed >= 0 && restart_at <= next) {
            next = restart_at;
            which = -4;
        }
        if (next > s_sim.now)
            s_sim.now = next;
        if (which == -2) {
            next_submit = s_sim.now + 2 + test_random_below (4);
            for (unsigned at = 0; at < s_sim.nodes; at++) {
                hs_ring_t *ring = s_sim.node [at].ring;
                if (!ring || hs_ring_role (ring) != HS_RING_LEADER)
                    continue;
                char text [64];
                snprintf (text, sizeof text, "c%u", s_sim.submitted);
                sf_fault_t fault;
                raft_index index = hs_ring_submit (ring, text, strlen (text),
                                                   s_sim.now, &fault);
                if (index == 0)
                    continue;
                assert (s_sim.inflight_count < 20000);
                s_sim.inflight [s_sim.inflight_count].node = (int) at;
                s_sim.inflight [s_sim.inflight_count].index = index;
                s_sim.inflight [s_sim.inflight_count].term =
                    hs_ring_term (ring);
                s_sim.inflight [s_sim.inflight_count++].text = strdup (text);
                s_sim.submitted++;
                break;
            }
        }
        else if (which == -3) {
            //  One member crashes, or (one time in four) all of them at
            //  once, as in a power cut: only what was synced survives.
            crashed = test_random_below (4) == 0
                          ? (int) s_sim.nodes
                          : (int) test_random_below (s_sim.nodes);
            for (unsigned at = 0; at < s_sim.nodes; at++)
                if ((int) at == crashed || crashed == (int) s_sim.nodes)
                    s_node_crash (at);
            restart_at = s_sim.now + 300 + test_random_below (2000);
            if (verbose)
                printf (
                    "\n   t=%llu crash %s%d", (unsigned long long) s_sim.now,
                    crashed == (int) s_sim.nodes ? "all " : "", crashed + 1);
        }
        else if (which == -4) {
            for (unsigned at = 0; at < s_sim.nodes; at++)
                if ((int) at == crashed || crashed == (int) s_sim.nodes)
                    s_node_start (at);
            crashed = -1;
            next_crash = s_sim.now + 500 + test_random_below (2500);
        }
        else if (which >= 0) {
            s_later_t later = s_sim.later [which];
            s_sim.later [which] = s_sim.later [--s_sim.later_count];
            s_node_t *node = &s_sim.node [later.to];
            if (later.kind == 0) {
                raft_msg_t msg;
                int rc = raft_msg_decode (&msg, later.data, later.size);
                assert (rc == 0);
                if (node->ring && msg.probe == RAFT_MSG_DIGEST)
                    hs_ring_digest_received (node->ring, msg.message.server_id,
                                             msg.digest_index, msg.digest,
                                             s_sim.now);
                else if (node->ring)
                    hs_ring_receive (node->ring, &msg.message, s_sim.now);
                else
                    raft_msg_release (&msg);
                free (later.data);
            }
            else if (node->ring
                     && later.generation == s_sim.generation [later.to]) {
                //  The write is durable now, if it is still in the log.
                if (later.index >= node->start
                    && later.index < node->start + node->count
                    && node->log [later.index - node->start].term == later.term
                    && later.index > node->synced)
                    node->synced = later.index;
                hs_ring_persisted (node->ring, later.index, later.term,
                                   s_sim.now);
            }
        }
        else if (timer_node >= 0)
            hs_ring_tick (s_sim.node [timer_node].ring, s_sim.now);
    }
    for (unsigned at = 0; crashed >= 0 && at < s_sim.nodes; at++)
        if ((int) at == crashed || crashed == (int) s_sim.nodes)
            s_node_start (at);
}

//  Every pair of members agrees wherever both applied.
static void
s_check_agreement (bool require_equal)
{
    for (unsigned first = 0; first < s_sim.nodes; first++)
        for (unsigned second = first + 1; second < s_sim.nodes; second++) {
            s_node_t *a = &s_sim.node [first], *b = &s_sim.node [second];
            raft_index upto = a->applied_count < b->applied_count
                                  ? a->applied_count
                                  : b->applied_count;
            for (raft_index at = 1; at <= upto; at++) {
                const char *left = a->applied [at], *right = b->applied [at];
                //  A snapshot image holds commands only where some were.
                if (left && right && strcmp (left, right) != 0) {
                    fprintf (stderr, "ring_sim: %u and %u differ at %llu\n",
                             first + 1, second + 1, at);
                    abort ();
                }
            }
            if (require_equal && a->applied_count != b->applied_count) {
                for (unsigned at = 0; at < s_sim.nodes; at++) {
                    s_node_t *node = &s_sim.node [at];
                    fprintf (
                        stderr,
                        "ring_sim: node %u %s term %llu commit %llu "
                        "applied %llu fsm %llu last %llu snap %llu\n",
                        at + 1, hs_ring_role_name (hs_ring_role (node->ring)),
                        hs_ring_term (node->ring),
                        hs_ring_commit_index (node->ring),
                        hs_ring_applied_index (node->ring), node->applied_count,
                        hs_ring_last_index (node->ring),
                        hs_ring_snapshot_index (node->ring));
                }
                abort ();
            }
        }
}

static void
s_free_node (s_node_t *node)
{
    hs_ring_destroy (&node->ring);
    s_disk_truncate (node, 0);
    free (node->log);
    s_fsm_clear (node);
    free (node->applied);
    free (node->snapshot_data);
    raft_configuration_close (&node->snapshot.configuration);
}

//  The digest counters at the end of a run: without a diverging member no
//  digest ever differs, though many were compared; with one, members
//  that compared digests with it saw it diverge, and only it.
static void
s_check_digests (bool verbose)
{
    uint64_t compared = 0, others_mismatched = 0;
    for (unsigned at = 0; at < s_sim.nodes; at++) {
        const hs_ring_digest_counters_t *sum = &s_sim.digests [at];
        compared += sum->compared;
        if (verbose)
            printf ("\n   member %u: %llu digests compared, %llu differed "
                    "(last from %llu at %llu)",
                    at + 1, (unsigned long long) sum->compared,
                    (unsigned long long) sum->mismatches,
                    (unsigned long long) sum->mismatch_member,
                    (unsigned long long) sum->mismatch_index);
        //  Each member compared digests with the others.
        assert (sum->compared > 0);
        if (!s_sim.diverge) {
            if (sum->mismatches) {
                fprintf (stderr,
                         "ring_sim: member %u saw a digest mismatch from %llu "
                         "at %llu with no member diverging\n",
                         at + 1, (unsigned long long) sum->mismatch_member,
                         (unsigned long long) sum->mismatch_index);
                abort ();
            }
        }
        else if (at + 1 == s_sim.diverge)
            assert (sum->mismatches > 0
                    && sum->mismatch_index >= s_sim.diverged_at);
        else if (sum->mismatches) {
            others_mismatched += sum->mismatches;
            assert (sum->mismatch_member == s_sim.diverge);
            assert (sum->mismatch_index >= s_sim.diverged_at);
        }
    }
    assert (compared > 0);
    if (s_sim.diverge)
        assert (s_sim.diverged_at > 0 && others_mismatched > 0);
}

//  One full run with NODES members from SEED, members crashing now and
//  then if CRASHES. If DIVERGE, that member applies one command
//  differently.
static void
s_scenario (unsigned nodes, uint64_t seed, bool crashes, unsigned diverge,
            bool verbose)
{
    int rc;
    memset (&s_sim, 0, sizeof s_sim);
    test_random_seed (seed);
    s_sim.nodes = nodes;
    s_sim.diverge = diverge;
    s_sim.diverge_text = "c100";
    s_sim.later = (s_later_t *) calloc (S_MAX_QUEUE, sizeof (s_later_t));
    s_sim.loss_percent = 10;
    s_sim.duplicate_percent = 5;
    s_sim.max_delay = 15;
    s_sim.max_disk_delay = 20;

    struct raft_configuration configuration;
    raft_configuration_init (&configuration);
    for (unsigned at = 0; at < nodes; at++) {
        snprintf (s_sim.node [at].address, sizeof s_sim.node [at].address,
                  "tcp://10.0.0.%u:7101", at + 1);
        raft_configuration_add (&configuration, at + 1, s_sim.node [at].address,
                                RAFT_VOTER);
        raft_configuration_init (&s_sim.node [at].snapshot.configuration);
    }
    //  Bootstrap: every member persists the same first entry.
    hs_ring_state_t bootstrap;
    rc = hs_ring_bootstrap_state (&configuration, &bootstrap);
    assert (rc == 0);
    for (unsigned at = 0; at < nodes; at++) {
        s_node_t *node = &s_sim.node [at];
        node->term = bootstrap.term;
        s_append (node, 1, bootstrap.entries, 1);
        node->synced = 1;
    }
    s_sim.later_count = 0;  //  the bootstrap writes are already durable
    hs_ring_state_release (&bootstrap);
    raft_configuration_close (&configuration);
    for (unsigned at = 0; at < nodes; at++)
        s_node_start (at);

    //  Faults for 30 simulated seconds, then a calm 10 s to converge.
    s_run (30000, crashes, true, verbose);
    s_check_agreement (false);
    s_sim.loss_percent = 0;
    s_sim.duplicate_percent = 0;
    unsigned submitted_before = s_sim.submitted;
    s_run (s_sim.now + 10000, false, true, verbose);
    assert (s_sim.submitted > submitted_before);  //  the ring took writes
    //  Then no more writes: everyone catches up with everything.
    s_run (s_sim.now + 3000, false, false, verbose);
    s_check_agreement (true);

    //  Every acknowledged command is in every state machine.
    for (unsigned at = 0; at < s_sim.acked_count; at++)
        for (unsigned node = 0; node < nodes; node++) {
            const char *got =
                s_sim.node [node].applied [s_sim.acked_index [at]];
            if (!got || strcmp (got, s_sim.acked [at]) != 0) {
                fprintf (stderr,
                         "ring_sim: acknowledged %s at %llu lost on %u\n",
                         s_sim.acked [at], s_sim.acked_index [at], node + 1);
                abort ();
            }
        }
    if (verbose)
        printf ("\n   %u members, seed %llu: %u submitted, %u acknowledged, "
                "applied %llu, %u snapshot restores\n",
                nodes, (unsigned long long) seed, s_sim.submitted,
                s_sim.acked_count, s_sim.node [0].applied_count,
                s_sim.snapshots_installed);
    //  A sane run acknowledges most of what it submitted.
    assert (s_sim.acked_count > s_sim.submitted / 2);
    assert (s_sim.snapshots_installed > 0 || !crashes);
    for (unsigned at = 0; at < nodes; at++)
        s_digests_collect (at);
    s_check_digests (verbose);

    for (unsigned at = 0; at < s_sim.acked_count; at++)
        free (s_sim.acked [at]);
    for (unsigned at = 0; at < s_sim.inflight_count; at++)
        free (s_sim.inflight [at].text);
    for (unsigned at = 0; at < s_sim.later_count; at++)
        free (s_sim.later [at].data);
    free (s_sim.later);
    for (unsigned at = 0; at < nodes; at++)
        s_free_node (&s_sim.node [at]);
}

int ring_sim_test (bool verbose);

int
ring_sim_test (bool verbose)
{
    if (verbose)
        printf (" * ring_sim: ");
    //  Quiet the ring's own state-change lines.
    sf_log_open ("ring_sim", SF_LOG_WARNING, NULL, NULL);
    const char *seeds = getenv ("RING_SIM_SEEDS");
    unsigned runs = seeds ? (unsigned) atoi (seeds) : 4;
    for (unsigned run = 0; run < runs; run++)
        s_scenario (run % 2 ? 5 : 3, 0x9e3779b97f4a7c15ull * (run + 1), true, 0,
                    verbose);
    //  Member 2 applies one command differently: the detector must fire.
    s_scenario (3, 0x2545f4914f6cdd1dull, false, 2, verbose);
    if (verbose)
        printf ("   OK\n");
    return 0;
}
