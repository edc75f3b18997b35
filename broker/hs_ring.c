/*  hs_ring: the Raft ring driver. One member of a homeserver ring.

    Memory rules of raft 0.22.1 in step mode, which this file follows
    (checked against the library's own step-mode test harness and its
    legacy raft_io layer):
    - RAFT_UPDATE_ENTRIES: the entries array is not ours; the data batch
      (entries [0].batch) is, and is freed once the entries are copied.
    - Outgoing AppendEntries carry only prev_log_index and n_entries: the
      driver fills the entries from its log. Outgoing InstallSnapshot gets
      its configuration and data from the driver's snapshot.
    - Incoming AppendEntries: one raft_malloc'd entries array (ours, freed
      after the step) and one data batch (the core frees it or hands it
      back through RAFT_UPDATE_ENTRIES). Incoming InstallSnapshot: the core
      frees or takes its configuration and data.
    - RAFT_START, RAFT_SNAPSHOT, RAFT_CONFIGURATION and
      RAFT_PERSISTED_SNAPSHOT take the configuration they carry: pass a
      raft_malloc'd deep copy and never free it.
    - RAFT_UPDATE_SNAPSHOT's chunk and configuration are ours. */

#include "broker/hs_ring.h"
#include "protocol/raft_msg.h"
#include "common/sf_log.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Replica digests (raft-wire.md section 4): how many applied indexes a
//  member keeps digests of, the header a snapshot carries its digest in,
//  and how often a mismatch may be logged.
#define S_DIGEST_WINDOW 256
#define S_DIGEST_MAGIC "SFDG\x01"
#define S_DIGEST_MAGIC_SIZE 5
#define S_DIGEST_HEADER (S_DIGEST_MAGIC_SIZE + HS_RING_DIGEST_SIZE)
#define S_DIGEST_LOG_MS 10000

//  What we exchanged digests with one other member.
typedef struct {
    raft_id id;
    raft_index sent_index;      //  applied index of the last digest sent
    uint64_t sent_at;           //  and when
    raft_index compared_index;  //  its last index compared (or skipped)
    uint8_t compared [HS_RING_DIGEST_SIZE];  //  and its digest there
    raft_index held_index;  //  one of its digests past our applied
                            //  index, to compare when we get there; 0
    uint8_t held [HS_RING_DIGEST_SIZE];
} s_digest_peer_t;

//  A follow-up event, stepped after the current update is carried out.
typedef struct s_pending_t {
    struct raft_event event;
    struct s_pending_t *next;
} s_pending_t;

struct _hs_ring_t {
    struct raft raft;  //  the library's core, in step mode
    hs_ring_io_t io;   //  the world outside
    hs_ring_options_t options;
    char *address;  //  our raft endpoint
    bool started;   //  RAFT_START was stepped
    bool stepping;  //  inside s_step: queue, never nest

    //  The log tail in memory: entries [0] has index log_start.
    struct raft_entry *log;  //  own copies (buf.base malloc'd), batch NULL
    unsigned log_count;
    unsigned log_capacity;
    raft_index log_start;

    raft_index persisted;  //  highest index reported durable to the core
    raft_index applied;    //  last index applied to the state machine

    //  The last snapshot taken or installed.
    struct raft_snapshot_metadata snapshot;  //  index 0: none
    struct raft_buffer snapshot_data;        //  malloc'd image
    bool installing;       //  an InstallSnapshot is being persisted
    bool restore_pending;  //  state machine must load snapshot_data

    //  The last committed configuration and its index (for snapshots).
    struct raft_configuration committed;
    raft_index committed_index;

    s_pending_t *queue_head;  //  follow-up events, FIFO
    s_pending_t *queue_tail;
    uint64_t now;  //  time of the event being carried out

    //  The replica digest D(applied) and D(i) of the last applied indexes,
    //  at window [i % S_DIGEST_WINDOW] for window_first <= i <= applied.
    bool digest_known;  //  false after a snapshot without one
    uint8_t digest [HS_RING_DIGEST_SIZE];
    uint8_t window [S_DIGEST_WINDOW][HS_RING_DIGEST_SIZE];
    raft_index window_first;
    s_digest_peer_t *peers;  //  members we exchanged digests with
    unsigned n_peers;
    hs_ring_digest_counters_t digest_counters;
    uint64_t logged_at;  //  when a mismatch was last logged
    uint64_t unlogged;   //  mismatches since then
    bool logged;         //  one was ever logged
};

//  --------------------------------------------------------------------------
//  Small helpers

//  Deep copy of SOURCE in raft_malloc'd memory, for events that take it.
static int
s_conf_copy (const struct raft_configuration *source,
             struct raft_configuration *target)
{
    raft_configuration_init (target);
    for (unsigned index = 0; index < source->n; index++)
        if (raft_configuration_add (target, source->servers [index].id,
                                    source->servers [index].address,
                                    source->servers [index].role)) {
            raft_configuration_close (target);
            return -1;
        }
    return 0;
}

static void
s_queue (hs_ring_t *self, const struct raft_event *event)
{
    s_pending_t *pending = (s_pending_t *) calloc (1, sizeof (s_pending_t));
    assert (pending);
    pending->event = *event;
    if (self->queue_tail)
        self->queue_tail->next = pending;
    else
        self->queue_head = pending;
    self->queue_tail = pending;
}

static raft_index
s_log_last (hs_ring_t *self)
{
    return self->log_count ? self->log_start + self->log_count - 1
                           : self->snapshot.index;
}

//  The entry at INDEX, or NULL if it is not in the in-memory log.
static struct raft_entry *
s_log_get (hs_ring_t *self, raft_index index)
{
    if (index < self->log_start || index >= self->log_start + self->log_count)
        return NULL;
    return &self->log [index - self->log_start];
}

//  Term of the entry at INDEX, from the log or the snapshot; 0 if unknown.
static raft_term
s_log_term (hs_ring_t *self, raft_index index)
{
    struct raft_entry *entry = s_log_get (self, index);
    if (entry)
        return entry->term;
    return index == self->snapshot.index ? self->snapshot.term : 0;
}

//  Drop every entry at INDEX or after.
static void
s_log_truncate (hs_ring_t *self, raft_index index)
{
    while (self->log_count && s_log_last (self) >= index) {
        free (self->log [self->log_count - 1].buf.base);
        self->log_count--;
    }
}

//  Drop every entry before INDEX.
static void
s_log_compact (hs_ring_t *self, raft_index index)
{
    unsigned drop = 0;
    while (drop < self->log_count && self->log_start + drop < index)
        free (self->log [drop++].buf.base);
    memmove (self->log, self->log + drop,
             (self->log_count - drop) * sizeof (struct raft_entry));
    self->log_count -= drop;
    self->log_start += drop;
}

static void
s_log_clear (hs_ring_t *self, raft_index next_index)
{
    s_log_truncate (self, 0);
    self->log_start = next_index;
}

//  Append a copy of ENTRY as the next index.
static void
s_log_append (hs_ring_t *self, const struct raft_entry *entry)
{
    if (self->log_count == self->log_capacity) {
        self->log_capacity = self->log_capacity ? self->log_capacity * 2 : 64;
        self->log = (struct raft_entry *) realloc (
            self->log, self->log_capacity * sizeof (struct raft_entry));
        assert (self->log);
    }
    struct raft_entry *copy = &self->log [self->log_count++];
    copy->term = entry->term;
    copy->type = entry->type;
    copy->buf.len = entry->buf.len;
    copy->buf.base = malloc (entry->buf.len ? entry->buf.len : 1);
    assert (copy->buf.base);
    if (entry->buf.len)
        memcpy (copy->buf.base, entry->buf.base, entry->buf.len);
    copy->batch = NULL;
}

//  --------------------------------------------------------------------------
//  Replica digests (raft-wire.md section 4)

//  The first 6 bytes of DIGEST in hex, for log lines.
static void
s_digest_head (const uint8_t *digest, char text [13])
{
    for (unsigned at = 0; at < 6; at++)
        snprintf (text + 2 * at, 3, "%02x", digest [at]);
}

//  Start the digest over at INDEX from DIGEST, or with none if NULL.
static void
s_digest_reset (hs_ring_t *self, raft_index index, const uint8_t *digest)
{
    self->digest_known = digest != NULL;
    memset (self->digest, 0, sizeof self->digest);
    if (digest)
        memcpy (self->digest, digest, sizeof self->digest);
    memcpy (self->window [index % S_DIGEST_WINDOW], self->digest,
            sizeof self->digest);
    self->window_first = index;
}

//  Our digest at INDEX, or NULL if we have none there (not applied yet,
//  or no longer kept).
static const uint8_t *
s_digest_at (hs_ring_t *self, raft_index index)
{
    if (!self->digest_known || index > self->applied
        || index < self->window_first
        || self->applied - index >= S_DIGEST_WINDOW)
        return NULL;
    return self->window [index % S_DIGEST_WINDOW];
}

//  The record of member ID, made on first use.
static s_digest_peer_t *
s_digest_peer (hs_ring_t *self, raft_id id)
{
    for (unsigned at = 0; at < self->n_peers; at++)
        if (self->peers [at].id == id)
            return &self->peers [at];
    self->peers = (s_digest_peer_t *) realloc (
        self->peers, (self->n_peers + 1) * sizeof (s_digest_peer_t));
    assert (self->peers);
    s_digest_peer_t *peer = &self->peers [self->n_peers++];
    memset (peer, 0, sizeof *peer);
    peer->id = id;
    return peer;
}

//  Compare PEER's DIGEST at INDEX (applied by us) with ours.
static void
s_digest_compare (hs_ring_t *self, s_digest_peer_t *peer, raft_index index,
                  const uint8_t *digest)
{
    peer->compared_index = index;
    memcpy (peer->compared, digest, HS_RING_DIGEST_SIZE);
    const uint8_t *ours = s_digest_at (self, index);
    if (!ours)
        return;  //  too old to compare: skipped
    hs_ring_digest_counters_t *counters = &self->digest_counters;
    counters->compared++;
    if (sodium_memcmp (ours, digest, HS_RING_DIGEST_SIZE) == 0)
        return;
    counters->mismatches++;
    counters->mismatch_member = peer->id;
    counters->mismatch_index = index;
    self->unlogged++;
    //  One line per S_DIGEST_LOG_MS at most: a diverged replica differs
    //  at every index from then on.
    if (self->logged && self->now - self->logged_at < S_DIGEST_LOG_MS)
        return;
    char head_ours [13], head_theirs [13];
    s_digest_head (ours, head_ours);
    s_digest_head (digest, head_theirs);
    sf_log_error ("hs_ring: replica diverged from member %llu at index %llu "
                  "(digest %s here, %s there; %llu mismatch(es) since the "
                  "last such line)",
                  (unsigned long long) peer->id, (unsigned long long) index,
                  head_ours, head_theirs, (unsigned long long) self->unlogged);
    self->logged = true;
    self->logged_at = self->now;
    self->unlogged = 0;
}

//  Compare the digests peers sent ahead of us that we have now applied.
static void
s_digest_compare_held (hs_ring_t *self)
{
    for (unsigned at = 0; at < self->n_peers; at++) {
        s_digest_peer_t *peer = &self->peers [at];
        if (peer->held_index && peer->held_index <= self->applied) {
            if (peer->held_index > peer->compared_index)
                s_digest_compare (self, peer, peer->held_index, peer->held);
            peer->held_index = 0;
        }
    }
}

//  Fold the entry at INDEX, and OUTCOME (what applying it did), into the
//  digest: D(i) = BLAKE2b-16 (D(i-1), i, term, type, length, data,
//  outcome).
static void
s_digest_fold (hs_ring_t *self, raft_index index,
               const struct raft_entry *entry, const uint8_t *outcome)
{
    if (!self->digest_known)
        return;
    uint8_t fixed [8 + 8 + 1 + 4];
    for (unsigned at = 0; at < 8; at++) {
        fixed [at] = (uint8_t) (index >> (56 - 8 * at));
        fixed [8 + at] = (uint8_t) (entry->term >> (56 - 8 * at));
    }
    fixed [16] = (uint8_t) entry->type;
    for (unsigned at = 0; at < 4; at++)
        fixed [17 + at] = (uint8_t) (entry->buf.len >> (24 - 8 * at));
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, HS_RING_DIGEST_SIZE);
    crypto_generichash_update (&state, self->digest, HS_RING_DIGEST_SIZE);
    crypto_generichash_update (&state, fixed, sizeof fixed);
    if (entry->buf.len)
        crypto_generichash_update (
            &state, (const unsigned char *) entry->buf.base, entry->buf.len);
    crypto_generichash_update (&state, outcome, HS_RING_DIGEST_SIZE);
    crypto_generichash_final (&state, self->digest, HS_RING_DIGEST_SIZE);
    memcpy (self->window [index % S_DIGEST_WINDOW], self->digest,
            HS_RING_DIGEST_SIZE);
}

//  Send member TO our digest with the raft message we are sending it: at
//  most once per heartbeat interval, and only if we applied more since
//  the last one or an election timeout passed (the last may be lost).
static void
s_digest_send (hs_ring_t *self, raft_id to)
{
    if (!self->io.send_digest || !self->digest_known || self->applied == 0)
        return;
    s_digest_peer_t *peer = s_digest_peer (self, to);
    uint64_t since = self->now - peer->sent_at;
    if (peer->sent_index
        && (since < self->options.heartbeat_timeout_ms
            || (peer->sent_index == self->applied
                && since < self->options.election_timeout_ms)))
        return;
    peer->sent_index = self->applied;
    peer->sent_at = self->now;
    self->io.send_digest (self->io.handle, to, self->applied, self->digest);
}

//  The image inside snapshot DATA, and into *DIGEST the digest it carries
//  or NULL if it has none (a bare image from before digests).
static struct raft_buffer
s_snapshot_image (const struct raft_buffer *data, const uint8_t **digest)
{
    *digest = NULL;
    if (data->len < S_DIGEST_HEADER
        || memcmp (data->base, S_DIGEST_MAGIC, S_DIGEST_MAGIC_SIZE) != 0)
        return *data;
    const uint8_t *bytes = (const uint8_t *) data->base;
    *digest = bytes + S_DIGEST_MAGIC_SIZE;
    struct raft_buffer image = {(void *) (bytes + S_DIGEST_HEADER),
                                data->len - S_DIGEST_HEADER};
    return image;
}

//  Replace the state machine with snapshot DATA taken at INDEX, and the
//  digest with the one it carries. Returns what io.snapshot_restore did.
static int
s_snapshot_restore (hs_ring_t *self, raft_index index,
                    const struct raft_buffer *data)
{
    const uint8_t *digest;
    struct raft_buffer image = s_snapshot_image (data, &digest);
    int rc = self->io.snapshot_restore (self->io.handle, index, &image);
    s_digest_reset (self, index, digest);
    return rc;
}

//  --------------------------------------------------------------------------
//  Carrying out an update


static void
s_handle_entries (hs_ring_t *self, const struct raft_update *update)
{
    raft_index index = update->entries.index;
    unsigned count = update->entries.n;
    if (index <= s_log_last (self)) {
        s_log_truncate (self, index);
        if (self->persisted >= index)
            self->persisted = index - 1;
    }
    if (self->log_count == 0)
        self->log_start = index;
    for (unsigned at = 0; at < count; at++)
        s_log_append (self, &update->entries.batch [at]);
    self->io.append (self->io.handle, index, update->entries.batch, count);
    if (count)
        raft_free (update->entries.batch [0].batch);
}

//  A follower received a snapshot: persist it, then tell the core.
static void
s_handle_snapshot (hs_ring_t *self, struct raft_update *update)
{
    struct raft_snapshot_metadata *metadata = &update->snapshot.metadata;
    s_log_clear (self, metadata->index + 1);
    raft_configuration_close (&self->snapshot.configuration);
    free (self->snapshot_data.base);
    //  Keep the image (for our own followers later) and a copy of the
    //  metadata; the core takes the metadata's configuration back.
    self->snapshot = *metadata;
    if (s_conf_copy (&metadata->configuration, &self->snapshot.configuration))
        abort ();
    self->snapshot_data.len = update->snapshot.chunk.len;
    self->snapshot_data.base = malloc (self->snapshot_data.len + 1);
    assert (self->snapshot_data.base);
    memcpy (self->snapshot_data.base, update->snapshot.chunk.base,
            self->snapshot_data.len);
    raft_free (update->snapshot.chunk.base);
    self->installing = true;
    if (self->io.snapshot_save (self->io.handle, &self->snapshot,
                                &self->snapshot_data, metadata->index + 1))
        sf_log_error ("hs_ring: cannot persist the installed snapshot at %llu",
                      metadata->index);
    self->installing = false;
    self->restore_pending = true;
    self->persisted = metadata->index;

    struct raft_event event = {.type = RAFT_PERSISTED_SNAPSHOT};
    event.persisted_snapshot.metadata = *metadata;  //  configuration moves
    event.persisted_snapshot.offset = update->snapshot.offset;
    event.persisted_snapshot.last = update->snapshot.last;
    s_queue (self, &event);
}

static void
s_handle_messages (hs_ring_t *self, struct raft_update *update)
{
    for (unsigned at = 0; at < update->messages.n; at++) {
        struct raft_message *message = &update->messages.batch [at];
        struct raft_entry *entries = NULL;
        if (message->type == RAFT_APPEND_ENTRIES) {
            struct raft_append_entries *body = &message->append_entries;
            if (body->n_entries) {
                entries = (struct raft_entry *) calloc (
                    body->n_entries, sizeof (struct raft_entry));
                assert (entries);
                for (unsigned index = 0; index < body->n_entries; index++) {
                    struct raft_entry *entry =
                        s_log_get (self, body->prev_log_index + 1 + index);
                    //  The core only asks for entries we handed it.
                    assert (entry);
                    entries [index] = *entry;
                }
            }
            body->entries = entries;
        }
        else if (message->type == RAFT_INSTALL_SNAPSHOT) {
            struct raft_install_snapshot *body = &message->install_snapshot;
            body->conf = self->snapshot.configuration;
            body->data = self->snapshot_data;
        }
        self->io.send (self->io.handle, message);
        //  The leader's digest rides with its AppendEntries, a follower's
        //  with its answers.
        if (message->type == RAFT_APPEND_ENTRIES
            || message->type == RAFT_APPEND_ENTRIES_RESULT)
            s_digest_send (self, message->server_id);
        free (entries);
        if (message->type == RAFT_APPEND_ENTRIES)
            message->append_entries.entries = NULL;
    }
}

//  Take a snapshot if enough entries were applied since the last one.
static void
s_maybe_snapshot (hs_ring_t *self)
{
    if (self->installing || self->restore_pending
        || self->applied
               < self->snapshot.index + self->options.snapshot_threshold
        || self->committed_index == 0 || self->committed_index > self->applied)
        return;
    struct raft_buffer data;
    if (self->io.snapshot_take (self->io.handle, &data)) {
        sf_log_error ("hs_ring: cannot serialize the state machine");
        return;
    }
    if (self->digest_known) {
        //  The digest at the snapshot's index goes in front of the image.
        struct raft_buffer image = data;
        data.len = S_DIGEST_HEADER + image.len;
        data.base = raft_malloc (data.len);
        assert (data.base);
        memcpy (data.base, S_DIGEST_MAGIC, S_DIGEST_MAGIC_SIZE);
        memcpy ((uint8_t *) data.base + S_DIGEST_MAGIC_SIZE, self->digest,
                HS_RING_DIGEST_SIZE);
        memcpy ((uint8_t *) data.base + S_DIGEST_HEADER, image.base, image.len);
        raft_free (image.base);
    }
    struct raft_snapshot_metadata metadata = {
        .index = self->applied,
        .term = s_log_term (self, self->applied),
        .configuration_index = self->committed_index,
    };
    if (s_conf_copy (&self->committed, &metadata.configuration))
        abort ();
    raft_index keep_from =
        metadata.index > self->options.snapshot_trailing
            ? metadata.index - self->options.snapshot_trailing + 1
            : 1;
    int rc =
        self->io.snapshot_save (self->io.handle, &metadata, &data, keep_from);
    if (rc) {
        sf_log_error ("hs_ring: cannot persist a snapshot at %llu",
                      metadata.index);
        raft_configuration_close (&metadata.configuration);
        raft_free (data.base);
        return;
    }
    raft_configuration_close (&self->snapshot.configuration);
    free (self->snapshot_data.base);
    self->snapshot = metadata;  //  the ring keeps this configuration
    self->snapshot_data.len = data.len;
    self->snapshot_data.base = malloc (data.len + 1);
    assert (self->snapshot_data.base);
    memcpy (self->snapshot_data.base, data.base, data.len);
    raft_free (data.base);
    s_log_compact (self, keep_from);

    struct raft_event event = {.type = RAFT_SNAPSHOT};
    event.snapshot.metadata = metadata;
    if (s_conf_copy (&self->committed, &event.snapshot.metadata.configuration))
        abort ();
    event.snapshot.trailing = self->options.snapshot_trailing;
    s_queue (self, &event);
}

//  Apply every committed entry not applied yet (Raft paper 5.3: "If
//  commitIndex > lastApplied: increment lastApplied, apply").
static void
s_apply_committed (hs_ring_t *self)
{
    raft_index commit = raft_commit_index (&self->raft);
    if (self->restore_pending && commit >= self->snapshot.index) {
        if (s_snapshot_restore (self, self->snapshot.index,
                                &self->snapshot_data))
            sf_log_error ("hs_ring: cannot restore snapshot %llu",
                          self->snapshot.index);
        self->restore_pending = false;
        self->applied = self->snapshot.index;
        raft_configuration_close (&self->committed);
        if (s_conf_copy (&self->snapshot.configuration, &self->committed))
            abort ();
        self->committed_index = self->snapshot.configuration_index;
        if (self->io.configuration)
            self->io.configuration (self->io.handle, &self->committed);
    }
    while (self->applied < commit) {
        raft_index index = self->applied + 1;
        struct raft_entry *entry = s_log_get (self, index);
        assert (entry);  //  committed entries are in the log tail
        uint8_t outcome [HS_RING_DIGEST_SIZE] = {0};
        if (entry->type == RAFT_COMMAND)
            self->io.apply (self->io.handle, index, entry->term, &entry->buf,
                            outcome);
        else if (entry->type == RAFT_CHANGE) {
            struct raft_event event = {.type = RAFT_CONFIGURATION};
            event.configuration.index = index;
            struct raft_configuration decoded;
            raft_configuration_init (&decoded);
            if (raft_msg_conf_decode (&entry->buf, &decoded) == 0) {
                if (self->io.apply_change)
                    self->io.apply_change (self->io.handle, index,
                                           &self->committed, &decoded);
                raft_configuration_close (&self->committed);
                if (s_conf_copy (&decoded, &self->committed))
                    abort ();
                self->committed_index = index;
                event.configuration.conf = decoded;  //  the core takes it
                s_queue (self, &event);
                if (self->io.configuration)
                    self->io.configuration (self->io.handle, &self->committed);
            }
            else {
                raft_configuration_close (&decoded);
                sf_log_error ("hs_ring: undecodable configuration at %llu",
                              index);
            }
        }
        s_digest_fold (self, index, entry, outcome);
        self->applied = index;
    }
    s_digest_compare_held (self);
    s_maybe_snapshot (self);
}

//  Carry out UPDATE, in the order the library requires.
static void
s_carry_out (hs_ring_t *self, struct raft_update *update)
{
    //  Term and vote must be durable before any message goes out.
    if (update->flags & (RAFT_UPDATE_CURRENT_TERM | RAFT_UPDATE_VOTED_FOR))
        if (self->io.save_term_vote (self->io.handle,
                                     raft_current_term (&self->raft),
                                     raft_voted_for (&self->raft))) {
            //  Without a durable vote we must not speak.
            sf_log_error ("hs_ring: cannot persist term and vote; "
                          "dropping this update's messages");
            update->flags &= ~(unsigned) RAFT_UPDATE_MESSAGES;
        }
    if (update->flags & RAFT_UPDATE_ENTRIES)
        s_handle_entries (self, update);
    if (update->flags & RAFT_UPDATE_SNAPSHOT)
        s_handle_snapshot (self, update);
    if (update->flags & RAFT_UPDATE_MESSAGES)
        s_handle_messages (self, update);
    if (update->flags & RAFT_UPDATE_STATE)
        sf_log_info ("hs_ring: %llu is now %s in term %llu", self->raft.id,
                     hs_ring_role_name (hs_ring_role (self)),
                     raft_current_term (&self->raft));
    if (update->flags & RAFT_UPDATE_COMMIT_INDEX)
        s_apply_committed (self);
}

//  Step EVENT and carry out its update, then the queued follow-ups. Inside
//  a step, events are queued instead (the core is not reentrant). Returns
//  the library's code for EVENT itself.
static int
s_step (hs_ring_t *self, struct raft_event *event)
{
    if (self->stepping) {
        s_queue (self, event);
        return 0;
    }
    self->stepping = true;
    self->now = event->time;
    struct raft_update update;
    memset (&update, 0, sizeof update);
    int rc = raft_step (&self->raft, event, &update);
    if (rc)
        sf_log_warning ("hs_ring: raft_step (event %d) failed: %s",
                        (int) event->type, raft_errmsg (&self->raft));
    else
        s_carry_out (self, &update);
    self->stepping = false;
    while (self->queue_head) {
        s_pending_t *pending = self->queue_head;
        self->queue_head = pending->next;
        if (!self->queue_head)
            self->queue_tail = NULL;
        pending->event.time = event->time;
        s_step (self, &pending->event);
        free (pending);
    }
    return rc;
}

//  --------------------------------------------------------------------------
//  Public API

hs_ring_t *
hs_ring_new (raft_id id, const char *address, const hs_ring_io_t *io,
             const hs_ring_options_t *options)
{
    hs_ring_t *self = (hs_ring_t *) calloc (1, sizeof (hs_ring_t));
    assert (self);
    self->io = *io;
    if (options)
        self->options = *options;
    if (!self->options.election_timeout_ms)
        self->options.election_timeout_ms = 300;
    if (!self->options.heartbeat_timeout_ms)
        self->options.heartbeat_timeout_ms = 50;
    if (!self->options.snapshot_threshold)
        self->options.snapshot_threshold = 65536;
    if (!self->options.snapshot_trailing)
        self->options.snapshot_trailing = 4096;
    self->address = strdup (address);
    self->log_start = 1;
    raft_configuration_init (&self->snapshot.configuration);
    raft_configuration_init (&self->committed);
    if (raft_init (&self->raft, NULL, NULL, id, self->address)) {
        free (self->address);
        free (self);
        return NULL;
    }
    raft_seed (&self->raft,
               self->options.seed ? self->options.seed : (unsigned) id * 7919u);
    raft_set_election_timeout (&self->raft, self->options.election_timeout_ms);
    raft_set_heartbeat_timeout (&self->raft,
                                self->options.heartbeat_timeout_ms);
    //  Pre-vote (thesis 9.6): a member that was cut off does not disrupt
    //  the ring with a higher term when it comes back.
    raft_set_pre_vote (&self->raft, true);
    return self;
}

void
hs_ring_destroy (hs_ring_t **self_p)
{
    if (*self_p) {
        hs_ring_t *self = *self_p;
        raft_close (&self->raft, NULL);
        while (self->queue_head) {
            s_pending_t *pending = self->queue_head;
            self->queue_head = pending->next;
            free (pending);
        }
        s_log_truncate (self, 0);
        free (self->log);
        raft_configuration_close (&self->snapshot.configuration);
        raft_configuration_close (&self->committed);
        free (self->snapshot_data.base);
        free (self->peers);
        free (self->address);
        free (self);
        *self_p = NULL;
    }
}

int
hs_ring_bootstrap_state (const struct raft_configuration *configuration,
                         hs_ring_state_t *state)
{
    memset (state, 0, sizeof *state);
    struct raft_buffer encoded;
    if (raft_configuration_encode (configuration, &encoded))
        return -1;
    state->entries =
        (struct raft_entry *) raft_calloc (1, sizeof (struct raft_entry));
    state->entries [0].term = 1;
    state->entries [0].type = RAFT_CHANGE;
    state->entries [0].buf = encoded;
    state->entries [0].batch = encoded.base;
    state->n_entries = 1;
    state->start_index = 1;
    state->term = 1;
    return 0;
}

void
hs_ring_state_release (hs_ring_state_t *state)
{
    for (unsigned index = 0; index < state->n_entries; index++)
        raft_free (state->entries [index].buf.base);
    raft_free (state->entries);
    memset (state, 0, sizeof *state);
}

int
hs_ring_start (hs_ring_t *self, const hs_ring_state_t *state, uint64_t now,
               sf_fault_t *fault)
{
    if (self->started)
        return sf_fault_set (fault, SF_EINTERNAL, "ring already started");
    self->now = now;
    //  Without a snapshot the digest starts from D(0), all zero.
    uint8_t genesis [HS_RING_DIGEST_SIZE] = {0};
    s_digest_reset (self, 0, genesis);
    //  Our own copies: the in-memory log and the snapshot.
    self->log_start = state->start_index ? state->start_index : 1;
    for (unsigned index = 0; index < state->n_entries; index++)
        s_log_append (self, &state->entries [index]);
    self->persisted = s_log_last (self);
    if (state->snapshot) {
        self->snapshot = *state->snapshot;
        if (s_conf_copy (&state->snapshot->configuration,
                         &self->snapshot.configuration))
            return sf_fault_set (fault, SF_EINTERNAL, "out of memory");
        self->snapshot_data.len = state->snapshot_data.len;
        self->snapshot_data.base = malloc (state->snapshot_data.len + 1);
        memcpy (self->snapshot_data.base, state->snapshot_data.base,
                state->snapshot_data.len);
        //  The state machine starts from the snapshot image, the digest
        //  from the one it carries; applying the log recomputes the rest.
        if (s_snapshot_restore (self, self->snapshot.index,
                                &self->snapshot_data))
            return sf_fault_set (fault, SF_ESTORE,
                                 "cannot restore snapshot %llu",
                                 self->snapshot.index);
        self->applied = self->snapshot.index;
        if (s_conf_copy (&self->snapshot.configuration, &self->committed))
            return sf_fault_set (fault, SF_EINTERNAL, "out of memory");
        self->committed_index = self->snapshot.configuration_index;
        if (self->io.configuration)
            self->io.configuration (self->io.handle, &self->committed);
    }

    //  The core takes the entries (one raft_malloc'd batch) and the
    //  snapshot's configuration.
    struct raft_event event = {.time = now, .type = RAFT_START};
    event.start.term = state->term;
    event.start.voted_for = state->voted_for;
    event.start.start_index = self->log_start;
    event.start.n_entries = state->n_entries;
    struct raft_snapshot_metadata metadata;
    if (state->snapshot) {
        metadata = *state->snapshot;
        if (s_conf_copy (&state->snapshot->configuration,
                         &metadata.configuration))
            return sf_fault_set (fault, SF_EINTERNAL, "out of memory");
        event.start.metadata = &metadata;
    }
    if (state->n_entries) {
        size_t total = 0;
        for (unsigned index = 0; index < state->n_entries; index++)
            total += state->entries [index].buf.len;
        uint8_t *batch = (uint8_t *) raft_malloc (total ? total : 1);
        event.start.entries = (struct raft_entry *) raft_calloc (
            state->n_entries, sizeof (struct raft_entry));
        uint8_t *cursor = batch;
        for (unsigned index = 0; index < state->n_entries; index++) {
            struct raft_entry *entry = &event.start.entries [index];
            *entry = state->entries [index];
            memcpy (cursor, entry->buf.base, entry->buf.len);
            entry->buf.base = cursor;
            entry->batch = batch;
            cursor += entry->buf.len;
        }
    }
    self->started = true;
    if (s_step (self, &event)) {
        self->started = false;
        //  On failure the core has freed the entries and configuration.
        return sf_fault_set (fault, SF_ESTORE, "raft start failed: %s",
                             raft_errmsg (&self->raft));
    }
    if (event.start.entries) {
        raft_free (event.start.entries [0].batch);
        raft_free (event.start.entries);
    }
    return 0;
}

void
hs_ring_receive (hs_ring_t *self, struct raft_message *message, uint64_t now)
{
    if (!self->started) {
        //  Not ours to step: free what the decoder allocated.
        if (message->type == RAFT_APPEND_ENTRIES
            && message->append_entries.n_entries)
            raft_free (message->append_entries.entries [0].batch);
        if (message->type == RAFT_INSTALL_SNAPSHOT) {
            raft_configuration_close (&message->install_snapshot.conf);
            raft_free (message->install_snapshot.data.base);
        }
        if (message->type == RAFT_APPEND_ENTRIES)
            raft_free (message->append_entries.entries);
        return;
    }
    struct raft_event event = {.time = now, .type = RAFT_RECEIVE};
    event.receive.message = message;
    s_step (self, &event);
    //  The entries array is ours; the batch went to the core.
    if (message->type == RAFT_APPEND_ENTRIES) {
        raft_free (message->append_entries.entries);
        message->append_entries.entries = NULL;
    }
}

void
hs_ring_persisted (hs_ring_t *self, raft_index index, raft_term term,
                   uint64_t now)
{
    //  A write that finished after its entries were replaced, or while a
    //  snapshot is being installed, proves nothing about the current log.
    if (!self->started || self->installing || index <= self->persisted
        || s_log_term (self, index) != term)
        return;
    self->persisted = index;
    struct raft_event event = {.time = now, .type = RAFT_PERSISTED_ENTRIES};
    event.persisted_entries.index = index;
    s_step (self, &event);
}

void
hs_ring_digest_received (hs_ring_t *self, raft_id from, raft_index index,
                         const uint8_t *digest, uint64_t now)
{
    if (!self->started || !self->digest_known || index == 0
        || from == self->raft.id)
        return;
    self->now = now;
    s_digest_peer_t *peer = s_digest_peer (self, from);
    //  Old, or a repeat. The same index with another digest is not a
    //  repeat: the member restarted and re-applied its log differently
    //  (say its stored log was altered), and nothing new was written since.
    if (index < peer->compared_index
        || (index == peer->compared_index
            && sodium_memcmp (digest, peer->compared, HS_RING_DIGEST_SIZE)
                   == 0))
        return;
    if (index <= self->applied) {
        s_digest_compare (self, peer, index, digest);
        return;
    }
    //  Ahead of us: hold it until we applied that far. The one held
    //  already is kept, or a member always ahead would never be compared.
    if (!peer->held_index) {
        peer->held_index = index;
        memcpy (peer->held, digest, HS_RING_DIGEST_SIZE);
    }
}

bool
hs_ring_digest (hs_ring_t *self, raft_index *index, uint8_t *digest)
{
    *index = self->digest_known ? self->applied : 0;
    memcpy (digest, self->digest, HS_RING_DIGEST_SIZE);
    return self->digest_known;
}

const hs_ring_digest_counters_t *
hs_ring_digest_counters (hs_ring_t *self)
{
    return &self->digest_counters;
}

uint64_t
hs_ring_timeout (hs_ring_t *self)
{
    return raft_timeout (&self->raft);
}

void
hs_ring_tick (hs_ring_t *self, uint64_t now)
{
    if (!self->started || now < raft_timeout (&self->raft))
        return;
    struct raft_event event = {.time = now, .type = RAFT_TIMEOUT};
    s_step (self, &event);
}

//  Submit N entries of TYPE holding copies of COMMANDS, in one step.
static raft_index
s_submit (hs_ring_t *self, enum raft_entry_type type,
          const struct raft_buffer *commands, unsigned n, uint64_t now,
          sf_fault_t *fault)
{
    if (n == 0 || !self->started || raft_state (&self->raft) != RAFT_LEADER) {
        sf_fault_set (fault, SF_ENOTLEADER, "this node is not the leader");
        return 0;
    }
    //  One data batch for all the entries: the core frees entries [0].batch
    //  only (raft 0.22.1).
    size_t total = 0;
    for (unsigned at = 0; at < n; at++)
        total += commands [at].len;
    uint8_t *batch = (uint8_t *) raft_malloc (total ? total : 1);
    struct raft_entry *entries =
        (struct raft_entry *) calloc (n, sizeof (struct raft_entry));
    uint8_t *cursor = batch;
    raft_term term = raft_current_term (&self->raft);
    for (unsigned at = 0; at < n; at++) {
        if (commands [at].len)
            memcpy (cursor, commands [at].base, commands [at].len);
        entries [at].term = term;
        entries [at].type = type;
        entries [at].buf.base = cursor;
        entries [at].buf.len = commands [at].len;
        entries [at].batch = batch;
        cursor += commands [at].len;
    }
    raft_index index = raft_last_index (&self->raft) + 1;
    struct raft_event event = {.time = now, .type = RAFT_SUBMIT};
    event.submit.entries = entries;
    event.submit.n = n;
    assert (!self->stepping);
    int rc = s_step (self, &event);
    free (entries);
    if (rc) {
        raft_free (batch);
        sf_fault_set (fault,
                      rc == RAFT_NOTLEADER ? SF_ENOTLEADER : SF_EUNAVAILABLE,
                      "cannot submit: %s", raft_errmsg (&self->raft));
        return 0;
    }
    return index;
}

raft_index
hs_ring_submit (hs_ring_t *self, const void *command, size_t size, uint64_t now,
                sf_fault_t *fault)
{
    struct raft_buffer buffer = {(void *) command, size};
    return s_submit (self, RAFT_COMMAND, &buffer, 1, now, fault);
}

raft_index
hs_ring_submit_many (hs_ring_t *self, const struct raft_buffer *commands,
                     unsigned n, uint64_t now, sf_fault_t *fault)
{
    return s_submit (self, RAFT_COMMAND, commands, n, now, fault);
}

raft_index
hs_ring_change (hs_ring_t *self, const struct raft_configuration *configuration,
                uint64_t now, sf_fault_t *fault)
{
    struct raft_buffer encoded;
    if (raft_configuration_encode (configuration, &encoded)) {
        sf_fault_set (fault, SF_EINTERNAL, "cannot encode configuration");
        return 0;
    }
    raft_index index = s_submit (self, RAFT_CHANGE, &encoded, 1, now, fault);
    raft_free (encoded.base);
    return index;
}

bool
hs_ring_read_ready (hs_ring_t *self)
{
    return self->started && raft_state (&self->raft) == RAFT_LEADER
           && s_log_term (self, raft_commit_index (&self->raft))
                  == raft_current_term (&self->raft);
}

const struct raft_configuration *
hs_ring_configuration (hs_ring_t *self)
{
    return &self->raft.configuration;
}

const struct raft_configuration *
hs_ring_applied_configuration (hs_ring_t *self)
{
    return &self->committed;
}

raft_index
hs_ring_match_index (hs_ring_t *self, raft_id id)
{
    raft_index index = 0;
    if (raft_match_index (&self->raft, id, &index))
        return 0;
    return index;
}

raft_index
hs_ring_barrier (hs_ring_t *self, uint64_t now, sf_fault_t *fault)
{
    struct raft_buffer empty = {NULL, 0};
    return s_submit (self, RAFT_BARRIER, &empty, 1, now, fault);
}

int
hs_ring_transfer (hs_ring_t *self, raft_id id, uint64_t now, sf_fault_t *fault)
{
    if (!self->started || raft_state (&self->raft) != RAFT_LEADER)
        return sf_fault_set (fault, SF_ENOTLEADER,
                             "only the leader can transfer leadership");
    struct raft_event event = {.time = now, .type = RAFT_TRANSFER};
    event.transfer.server_id = id;
    s_step (self, &event);
    if (raft_transferee (&self->raft) == 0
        && raft_state (&self->raft) == RAFT_LEADER)
        return sf_fault_set (fault, SF_EINVAL,
                             "cannot transfer leadership to %llu: %s", id,
                             raft_errmsg (&self->raft));
    return 0;
}

hs_ring_role_t
hs_ring_role (hs_ring_t *self)
{
    if (!self->started)
        return HS_RING_STOPPED;
    switch (raft_state (&self->raft)) {
        case RAFT_LEADER:
            return HS_RING_LEADER;
        case RAFT_CANDIDATE:
            return HS_RING_CANDIDATE;
        case RAFT_FOLLOWER:
            return HS_RING_FOLLOWER;
        default:
            return HS_RING_STOPPED;
    }
}

raft_term
hs_ring_term (hs_ring_t *self)
{
    return raft_current_term (&self->raft);
}

raft_index
hs_ring_commit_index (hs_ring_t *self)
{
    return raft_commit_index (&self->raft);
}

raft_index
hs_ring_applied_index (hs_ring_t *self)
{
    return self->applied;
}

raft_index
hs_ring_last_index (hs_ring_t *self)
{
    return s_log_last (self);
}

raft_id
hs_ring_leader (hs_ring_t *self, const char **address)
{
    raft_id id = 0;
    const char *where = NULL;
    if (self->started)
        raft_leader (&self->raft, &id, &where);
    if (address)
        *address = where;
    return id;
}

raft_index
hs_ring_snapshot_index (hs_ring_t *self)
{
    return self->snapshot.index;
}

const char *
hs_ring_errmsg (hs_ring_t *self)
{
    return raft_errmsg (&self->raft);
}

const char *
hs_ring_role_name (hs_ring_role_t role)
{
    static const char *names [] = {"follower", "candidate", "leader",
                                   "stopped"};
    return (unsigned) role <= HS_RING_STOPPED ? names [role] : "?";
}
