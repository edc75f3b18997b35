/*  hs_persist: the persistence thread of a homeserver.

    Pipe protocol (loop -> thread; frames):
        "APPEND" index(8) then per entry: header(term 8, type 1), data
        "TERMVOTE" term(8) vote(8)                -> "OK" | "ERR"
        "SNAPSHOT" metadata(index 8, term 8, conf_index 8) conf data keep(8)
                                                  -> "OK" | "ERR"
        "$TERM"
    Completions (thread -> loop, on a PAIR): index(8) term(8). */

#include "broker/hs_persist.h"
#include "protocol/raft_msg.h"
#include "common/sf_log.h"

#include <assert.h>
#include <string.h>

struct _hs_persist_t {
    zactor_t *actor;  //  the thread
    zsock_t *done;    //  completions arrive here
    char *endpoint;   //  inproc endpoint of the completions PAIR
};

typedef struct {
    hs_store_t *store;  //  owned by the thread
    char *endpoint;     //  where to connect the completions PAIR
} s_args_t;

static uint64_t
s_u64 (zframe_t *frame)
{
    uint64_t value = 0;
    if (frame && zframe_size (frame) == 8)
        memcpy (&value, zframe_data (frame), 8);
    return value;
}

static void
s_add_u64 (zmsg_t *msg, uint64_t value)
{
    zmsg_addmem (msg, &value, 8);
}

//  Flush what is staged and report it on DONE.
static void
s_flush (hs_store_t *store, zsock_t *done)
{
    raft_index index;
    raft_term term;
    sf_fault_t fault;
    if (hs_store_flush (store, &index, &term, &fault)) {
        //  Not durable, so never reported: the ring never counts on it.
        sf_log_error ("hs_persist: %s", fault.message);
        return;
    }
    if (index) {
        zmsg_t *report = zmsg_new ();
        s_add_u64 (report, index);
        s_add_u64 (report, term);
        zmsg_send (&report, done);
    }
}

//  Handle one command; returns false on $TERM.
static bool
s_command (hs_store_t *store, zsock_t *pipe, zsock_t *done, zmsg_t *msg)
{
    char *command = zmsg_popstr (msg);
    bool running = true;
    if (!command || streq (command, "$TERM"))
        running = false;
    else if (streq (command, "APPEND")) {
        zframe_t *first = zmsg_pop (msg);
        raft_index index = s_u64 (first);
        zframe_destroy (&first);
        unsigned n = (unsigned) (zmsg_size (msg) / 2);
        struct raft_entry *entries = (struct raft_entry *) calloc (
            n ? n : 1, sizeof (struct raft_entry));
        zframe_t *frame = zmsg_first (msg);
        for (unsigned at = 0; at < n; at++) {
            const uint8_t *header = zframe_data (frame);
            memcpy (&entries [at].term, header, 8);
            entries [at].type = (enum raft_entry_type) header [8];
            frame = zmsg_next (msg);
            entries [at].buf.base = zframe_data (frame);
            entries [at].buf.len = zframe_size (frame);
            frame = zmsg_next (msg);
        }
        hs_store_stage (store, index, entries, n);
        free (entries);
    }
    else {
        //  Synchronous commands come after everything handed before them.
        s_flush (store, done);
        sf_fault_t fault;
        int rc = -1;
        if (streq (command, "TERMVOTE")) {
            zframe_t *term = zmsg_pop (msg), *vote = zmsg_pop (msg);
            rc = hs_store_save_term_vote (store, s_u64 (term), s_u64 (vote),
                                          &fault);
            zframe_destroy (&term);
            zframe_destroy (&vote);
        }
        else if (streq (command, "SNAPSHOT")) {
            zframe_t *index = zmsg_pop (msg), *term = zmsg_pop (msg);
            zframe_t *conf_index = zmsg_pop (msg), *conf = zmsg_pop (msg);
            zframe_t *data = zmsg_pop (msg), *keep = zmsg_pop (msg);
            struct raft_snapshot_metadata metadata = {
                .index = s_u64 (index),
                .term = s_u64 (term),
                .configuration_index = s_u64 (conf_index),
            };
            raft_configuration_init (&metadata.configuration);
            struct raft_buffer encoded = {zframe_data (conf),
                                          zframe_size (conf)};
            struct raft_buffer image = {zframe_data (data), zframe_size (data)};
            if (raft_msg_conf_decode (&encoded, &metadata.configuration) == 0)
                rc = hs_store_snapshot_save (store, &metadata, &image,
                                             s_u64 (keep), &fault);
            else
                sf_fault_set (&fault, SF_EINTERNAL, "bad configuration");
            raft_configuration_close (&metadata.configuration);
            zframe_destroy (&index);
            zframe_destroy (&term);
            zframe_destroy (&conf_index);
            zframe_destroy (&conf);
            zframe_destroy (&data);
            zframe_destroy (&keep);
        }
        if (rc)
            sf_log_error ("hs_persist: %s: %s", command, fault.message);
        zstr_send (pipe, rc ? "ERR" : "OK");
    }
    free (command);
    return running;
}

static void
s_actor (zsock_t *pipe, void *arguments)
{
    s_args_t *args = (s_args_t *) arguments;
    hs_store_t *store = args->store;
    zsock_t *done = zsock_new_pair (args->endpoint);
    free (args->endpoint);
    free (args);
    zsock_signal (pipe, 0);
    bool running = true;
    while (running) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;
        running = s_command (store, pipe, done, msg);
        zmsg_destroy (&msg);
        //  Group commit: take everything handed meanwhile, then one flush.
        while (running && (zsock_events (pipe) & ZMQ_POLLIN)) {
            msg = zmsg_recv (pipe);
            if (!msg)
                break;
            running = s_command (store, pipe, done, msg);
            zmsg_destroy (&msg);
        }
        if (running)
            s_flush (store, done);
    }
    zsock_destroy (&done);
    hs_store_destroy (&store);
}

hs_persist_t *
hs_persist_new (hs_store_t **store)
{
    hs_persist_t *self = (hs_persist_t *) zmalloc (sizeof (hs_persist_t));
    self->endpoint = zsys_sprintf ("inproc://hs_persist-%p", (void *) self);
    self->done = zsock_new_pair (NULL);
    zsock_bind (self->done, "%s", self->endpoint);
    s_args_t *args = (s_args_t *) zmalloc (sizeof (s_args_t));
    args->store = *store;
    args->endpoint = strdup (self->endpoint);
    *store = NULL;
    self->actor = zactor_new (s_actor, args);
    return self;
}

void
hs_persist_destroy (hs_persist_t **self_p)
{
    if (*self_p) {
        hs_persist_t *self = *self_p;
        zactor_destroy (&self->actor);
        zsock_destroy (&self->done);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

void
hs_persist_append (hs_persist_t *self, raft_index index,
                   const struct raft_entry *entries, unsigned n)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "APPEND");
    s_add_u64 (msg, index);
    for (unsigned at = 0; at < n; at++) {
        uint8_t header [9];
        memcpy (header, &entries [at].term, 8);
        header [8] = (uint8_t) entries [at].type;
        zmsg_addmem (msg, header, sizeof header);
        zmsg_addmem (msg, entries [at].buf.base, entries [at].buf.len);
    }
    zmsg_send (&msg, self->actor);
}

//  Wait for the thread's answer to a synchronous command.
static int
s_wait (hs_persist_t *self)
{
    char *answer = zstr_recv (self->actor);
    int rc = answer && streq (answer, "OK") ? 0 : -1;
    free (answer);
    return rc;
}

int
hs_persist_save_term_vote (hs_persist_t *self, raft_term term, raft_id vote)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "TERMVOTE");
    s_add_u64 (msg, term);
    s_add_u64 (msg, vote);
    zmsg_send (&msg, self->actor);
    return s_wait (self);
}

int
hs_persist_snapshot_save (hs_persist_t *self,
                          const struct raft_snapshot_metadata *metadata,
                          const struct raft_buffer *data, raft_index keep_from)
{
    struct raft_buffer conf;
    if (raft_configuration_encode (&metadata->configuration, &conf))
        return -1;
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "SNAPSHOT");
    s_add_u64 (msg, metadata->index);
    s_add_u64 (msg, metadata->term);
    s_add_u64 (msg, metadata->configuration_index);
    zmsg_addmem (msg, conf.base, conf.len);
    zmsg_addmem (msg, data->base, data->len);
    s_add_u64 (msg, keep_from);
    raft_free (conf.base);
    zmsg_send (&msg, self->actor);
    return s_wait (self);
}

zsock_t *
hs_persist_socket (hs_persist_t *self)
{
    return self->done;
}

int
hs_persist_completed (hs_persist_t *self, raft_index *index, raft_term *term)
{
    zmsg_t *msg = zmsg_recv (self->done);
    if (!msg)
        return -1;
    zframe_t *first = zmsg_first (msg), *second = zmsg_next (msg);
    *index = s_u64 (first);
    *term = s_u64 (second);
    zmsg_destroy (&msg);
    return 0;
}

int
hs_persist_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * hs_persist: ");
    char dir [] = "/tmp/hs_persist_test_XXXXXX";
    char *made = mkdtemp (dir);
    assert (made);
    char path [128];
    snprintf (path, sizeof path, "%s/raft.db", dir);
    sf_fault_t fault;
    hs_store_t *store = hs_store_new (path, &fault);
    assert (store);
    hs_persist_t *persist = hs_persist_new (&store);
    assert (!store);

    //  Many appends handed at once are reported, the last one last.
    char data [] = "command";
    struct raft_entry entry = {
        .term = 2, .type = RAFT_COMMAND, .buf = {data, sizeof data}};
    for (raft_index index = 1; index <= 50; index++)
        hs_persist_append (persist, index, &entry, 1);
    raft_index index = 0, last = 0;
    raft_term term = 0;
    zpoller_t *poller = zpoller_new (hs_persist_socket (persist), NULL);
    while (last < 50) {
        void *ready = zpoller_wait (poller, 5000);
        assert (ready);
        rc = hs_persist_completed (persist, &index, &term);
        assert (rc == 0);
        assert (index > last && term == 2);
        last = index;
    }
    zpoller_destroy (&poller);
    rc = hs_persist_save_term_vote (persist, 3, 1);
    assert (rc == 0);
    struct raft_snapshot_metadata metadata = {
        .index = 40, .term = 2, .configuration_index = 1};
    raft_configuration_init (&metadata.configuration);
    raft_configuration_add (&metadata.configuration, 1, "tcp://a:1",
                            RAFT_VOTER);
    struct raft_buffer image = {"image", 5};
    rc = hs_persist_snapshot_save (persist, &metadata, &image, 30);
    assert (rc == 0);
    raft_configuration_close (&metadata.configuration);
    hs_persist_destroy (&persist);
    hs_persist_destroy (&persist);

    //  What was reported is on disk.
    store = hs_store_new (path, &fault);
    hs_ring_state_t state;
    rc = hs_store_load (store, &state, &fault);
    assert (rc == 0);
    assert (state.term == 3 && state.voted_for == 1);
    assert (state.start_index == 30 && state.n_entries == 21);
    assert (state.snapshot && state.snapshot->index == 40);
    hs_store_state_release (&state);
    hs_store_destroy (&store);
    char other [160];
    snprintf (other, sizeof other, "%s-wal", path);
    unlink (other);
    snprintf (other, sizeof other, "%s-shm", path);
    unlink (other);
    unlink (path);
    rmdir (dir);
    if (verbose)
        printf ("OK\n");
    return 0;
}
