/*  hs_store: the durable state of one ring member, in one SQLite file. */

#include "broker/hs_store.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Format of the file; bump with a migration when the schema changes.
#define S_FORMAT 1

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS log ("
    "  idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,"
    "  type INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS snapshot ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL,"
    "  term INTEGER NOT NULL, conf BLOB NOT NULL, conf_idx INTEGER NOT NULL,"
    "  data BLOB NOT NULL);";

//  Entries staged for the next flush, each batch as the ring gave it.
typedef struct {
    raft_index index;  //  first index
    unsigned n;
    struct raft_entry *entries;  //  own copies (buf malloc'd)
} s_staged_t;

struct _hs_store_t {
    sqlite3 *db;         //  the open file
    s_staged_t *staged;  //  batches waiting for hs_store_flush
    unsigned staged_count, staged_capacity;
    sqlite3_stmt *set_meta;      //  INSERT OR REPLACE INTO meta
    sqlite3_stmt *truncate;      //  DELETE FROM log WHERE idx >= ?
    sqlite3_stmt *insert;        //  INSERT INTO log
    sqlite3_stmt *compact;       //  DELETE FROM log WHERE idx < ?
    sqlite3_stmt *put_snapshot;  //  INSERT OR REPLACE INTO snapshot
};

static void s_staged_clear (hs_store_t *self);

static int
s_fail (hs_store_t *self, sf_fault_t *fault, const char *what)
{
    return sf_fault_set (fault, SF_ESTORE, "store: %s: %s", what,
                         sqlite3_errmsg (self->db));
}

static int
s_exec (hs_store_t *self, const char *sql, sf_fault_t *fault)
{
    char *error = NULL;
    if (sqlite3_exec (self->db, sql, NULL, NULL, &error) == SQLITE_OK)
        return 0;
    sf_fault_set (fault, SF_ESTORE, "store: %s: %s", sql,
                  error ? error : "failed");
    sqlite3_free (error);
    return -1;
}

static int64_t
s_meta (hs_store_t *self, const char *key, int64_t fallback)
{
    sqlite3_stmt *stmt;
    int64_t value = fallback;
    if (sqlite3_prepare_v2 (self->db, "SELECT value FROM meta WHERE key = ?",
                            -1, &stmt, NULL)
        != SQLITE_OK)
        return fallback;
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step (stmt) == SQLITE_ROW)
        value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return value;
}

static int
s_set_meta (hs_store_t *self, const char *key, int64_t value)
{
    sqlite3_reset (self->set_meta);
    sqlite3_bind_text (self->set_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (self->set_meta, 2, value);
    return sqlite3_step (self->set_meta) == SQLITE_DONE ? 0 : -1;
}

hs_store_t *
hs_store_new (const char *path, sf_fault_t *fault)
{
    hs_store_t *self = (hs_store_t *) calloc (1, sizeof (hs_store_t));
    assert (self);
    if (sqlite3_open_v2 (path, &self->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                             | SQLITE_OPEN_NOMUTEX,
                         NULL)
        != SQLITE_OK) {
        sf_fault_set (fault, SF_ESTORE, "store %s: cannot open: %s", path,
                      self->db ? sqlite3_errmsg (self->db) : "out of memory");
        goto failed;
    }
    //  WAL + synchronous=FULL: a commit returns after the WAL is fsynced.
    //  Exclusive locking, set before the WAL is first opened: the file stays
    //  locked for as long as we hold it open, so a second daemon given the
    //  same data folder stops here instead of writing the same raft log,
    //  and no commit takes or drops a file lock (nor maps a -shm file).
    if (s_exec (self, "PRAGMA locking_mode=EXCLUSIVE", fault))
        goto failed;
    if (s_exec (self, "PRAGMA journal_mode=WAL", fault)) {
        if (sqlite3_errcode (self->db) == SQLITE_BUSY)
            sf_fault_set (fault, SF_ESTORE,
                          "store %s is in use by another process (another "
                          "homeserver with the same data folder?)",
                          path);
        goto failed;
    }
    if (s_exec (self, "PRAGMA synchronous=FULL", fault)
        || s_exec (self, s_schema, fault))
        goto failed;
    int64_t format = s_meta (self, "format", 0);
    if (format > S_FORMAT) {
        sf_fault_set (fault, SF_ESTORE,
                      "store %s has format %lld; this version reads %d", path,
                      (long long) format, S_FORMAT);
        goto failed;
    }
    if (sqlite3_prepare_v2 (self->db,
                            "INSERT OR REPLACE INTO meta (key, value) "
                            "VALUES (?, ?)",
                            -1, &self->set_meta, NULL)
            != SQLITE_OK
        || sqlite3_prepare_v2 (self->db, "DELETE FROM log WHERE idx >= ?", -1,
                               &self->truncate, NULL)
               != SQLITE_OK
        || sqlite3_prepare_v2 (self->db,
                               "INSERT INTO log (idx, term, type, data) "
                               "VALUES (?, ?, ?, ?)",
                               -1, &self->insert, NULL)
               != SQLITE_OK
        || sqlite3_prepare_v2 (self->db, "DELETE FROM log WHERE idx < ?", -1,
                               &self->compact, NULL)
               != SQLITE_OK
        || sqlite3_prepare_v2 (self->db,
                               "INSERT OR REPLACE INTO snapshot "
                               "(id, idx, term, conf, conf_idx, data) VALUES "
                               "(1, ?, ?, ?, ?, ?)",
                               -1, &self->put_snapshot, NULL)
               != SQLITE_OK) {
        s_fail (self, fault, "prepare");
        goto failed;
    }
    if (format == 0 && s_set_meta (self, "format", S_FORMAT)) {
        s_fail (self, fault, "write format");
        goto failed;
    }
    return self;
failed:
    hs_store_destroy (&self);
    return NULL;
}

void
hs_store_destroy (hs_store_t **self_p)
{
    if (*self_p) {
        hs_store_t *self = *self_p;
        s_staged_clear (self);
        free (self->staged);
        sqlite3_finalize (self->set_meta);
        sqlite3_finalize (self->truncate);
        sqlite3_finalize (self->insert);
        sqlite3_finalize (self->compact);
        sqlite3_finalize (self->put_snapshot);
        sqlite3_close (self->db);
        free (self);
        *self_p = NULL;
    }
}

bool
hs_store_empty (hs_store_t *self)
{
    return s_meta (self, "term", 0) == 0;
}

int
hs_store_save_term_vote (hs_store_t *self, raft_term term, raft_id vote,
                         sf_fault_t *fault)
{
    if (s_exec (self, "BEGIN IMMEDIATE", fault))
        return -1;
    if (s_set_meta (self, "term", (int64_t) term)
        || s_set_meta (self, "vote", (int64_t) vote)) {
        s_fail (self, fault, "save term and vote");
        s_exec (self, "ROLLBACK", NULL);
        return -1;
    }
    return s_exec (self, "COMMIT", fault);
}

int
hs_store_append (hs_store_t *self, raft_index index,
                 const struct raft_entry *entries, unsigned n,
                 sf_fault_t *fault)
{
    if (s_exec (self, "BEGIN IMMEDIATE", fault))
        return -1;
    sqlite3_reset (self->truncate);
    sqlite3_bind_int64 (self->truncate, 1, (int64_t) index);
    if (sqlite3_step (self->truncate) != SQLITE_DONE)
        goto failed;
    for (unsigned at = 0; at < n; at++) {
        sqlite3_reset (self->insert);
        sqlite3_bind_int64 (self->insert, 1, (int64_t) (index + at));
        sqlite3_bind_int64 (self->insert, 2, (int64_t) entries [at].term);
        sqlite3_bind_int (self->insert, 3, (int) entries [at].type);
        sqlite3_bind_blob64 (self->insert, 4, entries [at].buf.base,
                             entries [at].buf.len, SQLITE_STATIC);
        if (sqlite3_step (self->insert) != SQLITE_DONE)
            goto failed;
    }
    return s_exec (self, "COMMIT", fault);
failed:
    s_fail (self, fault, "append");
    s_exec (self, "ROLLBACK", NULL);
    return -1;
}

static void
s_staged_clear (hs_store_t *self)
{
    for (unsigned at = 0; at < self->staged_count; at++) {
        for (unsigned entry = 0; entry < self->staged [at].n; entry++)
            free (self->staged [at].entries [entry].buf.base);
        free (self->staged [at].entries);
    }
    self->staged_count = 0;
}

void
hs_store_stage (hs_store_t *self, raft_index index,
                const struct raft_entry *entries, unsigned n)
{
    if (self->staged_count == self->staged_capacity) {
        self->staged_capacity =
            self->staged_capacity ? self->staged_capacity * 2 : 16;
        self->staged = (s_staged_t *) realloc (
            self->staged, self->staged_capacity * sizeof (s_staged_t));
        assert (self->staged);
    }
    s_staged_t *batch = &self->staged [self->staged_count++];
    batch->index = index;
    batch->n = n;
    batch->entries =
        (struct raft_entry *) calloc (n ? n : 1, sizeof (struct raft_entry));
    for (unsigned at = 0; at < n; at++) {
        batch->entries [at] = entries [at];
        batch->entries [at].buf.base = malloc (entries [at].buf.len + 1);
        memcpy (batch->entries [at].buf.base, entries [at].buf.base,
                entries [at].buf.len);
        batch->entries [at].batch = NULL;
    }
}

int
hs_store_flush (hs_store_t *self, raft_index *index, raft_term *term,
                sf_fault_t *fault)
{
    *index = 0;
    *term = 0;
    if (self->staged_count == 0)
        return 0;
    if (s_exec (self, "BEGIN IMMEDIATE", fault)) {
        s_staged_clear (self);
        return -1;
    }
    //  In order: a later batch may truncate what an earlier one wrote.
    for (unsigned at = 0; at < self->staged_count; at++) {
        s_staged_t *batch = &self->staged [at];
        sqlite3_reset (self->truncate);
        sqlite3_bind_int64 (self->truncate, 1, (int64_t) batch->index);
        if (sqlite3_step (self->truncate) != SQLITE_DONE)
            goto failed;
        for (unsigned entry = 0; entry < batch->n; entry++) {
            sqlite3_reset (self->insert);
            sqlite3_bind_int64 (self->insert, 1,
                                (int64_t) (batch->index + entry));
            sqlite3_bind_int64 (self->insert, 2,
                                (int64_t) batch->entries [entry].term);
            sqlite3_bind_int (self->insert, 3,
                              (int) batch->entries [entry].type);
            sqlite3_bind_blob64 (self->insert, 4,
                                 batch->entries [entry].buf.base,
                                 batch->entries [entry].buf.len, SQLITE_STATIC);
            if (sqlite3_step (self->insert) != SQLITE_DONE)
                goto failed;
        }
        if (batch->n) {
            *index = batch->index + batch->n - 1;
            *term = batch->entries [batch->n - 1].term;
        }
        else
            *index = 0;
    }
    s_staged_clear (self);
    if (s_exec (self, "COMMIT", fault)) {
        *index = 0;
        return -1;
    }
    return 0;
failed:
    s_fail (self, fault, "flush");
    s_exec (self, "ROLLBACK", NULL);
    s_staged_clear (self);
    *index = 0;
    return -1;
}

int
hs_store_snapshot_save (hs_store_t *self,
                        const struct raft_snapshot_metadata *metadata,
                        const struct raft_buffer *data, raft_index keep_from,
                        sf_fault_t *fault)
{
    struct raft_buffer conf;
    if (raft_configuration_encode (&metadata->configuration, &conf))
        return sf_fault_set (fault, SF_ESTORE,
                             "store: cannot encode configuration");
    if (s_exec (self, "BEGIN IMMEDIATE", fault)) {
        raft_free (conf.base);
        return -1;
    }
    sqlite3_stmt *put = self->put_snapshot;
    sqlite3_reset (put);
    sqlite3_bind_int64 (put, 1, (int64_t) metadata->index);
    sqlite3_bind_int64 (put, 2, (int64_t) metadata->term);
    sqlite3_bind_blob64 (put, 3, conf.base, conf.len, SQLITE_STATIC);
    sqlite3_bind_int64 (put, 4, (int64_t) metadata->configuration_index);
    sqlite3_bind_blob64 (put, 5, data->base ? data->base : "", data->len,
                         SQLITE_STATIC);
    int rc = sqlite3_step (put) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset (put);  //  release the bound buffers before freeing them
    raft_free (conf.base);
    //  An installed snapshot replaces the whole log; a taken one keeps the
    //  trailing entries from KEEP_FROM on.
    sqlite3_stmt *drop =
        keep_from > metadata->index ? self->truncate : self->compact;
    if (rc == 0) {
        sqlite3_reset (drop);
        sqlite3_bind_int64 (
            drop, 1, keep_from > metadata->index ? 0 : (int64_t) keep_from);
        rc = sqlite3_step (drop) == SQLITE_DONE ? 0 : -1;
    }
    if (rc) {
        s_fail (self, fault, "save snapshot");
        s_exec (self, "ROLLBACK", NULL);
        return -1;
    }
    return s_exec (self, "COMMIT", fault);
}

int
hs_store_load (hs_store_t *self, hs_ring_state_t *state, sf_fault_t *fault)
{
    memset (state, 0, sizeof *state);
    state->term = (raft_term) s_meta (self, "term", 0);
    state->voted_for = (raft_id) s_meta (self, "vote", 0);

    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (self->db,
                            "SELECT idx, term, conf, conf_idx, data "
                            "FROM snapshot WHERE id = 1",
                            -1, &stmt, NULL)
        != SQLITE_OK)
        return s_fail (self, fault, "load snapshot");
    if (sqlite3_step (stmt) == SQLITE_ROW) {
        struct raft_snapshot_metadata *metadata =
            (struct raft_snapshot_metadata *) calloc (1, sizeof *metadata);
        metadata->index = (raft_index) sqlite3_column_int64 (stmt, 0);
        metadata->term = (raft_term) sqlite3_column_int64 (stmt, 1);
        metadata->configuration_index =
            (raft_index) sqlite3_column_int64 (stmt, 3);
        struct raft_buffer conf = {(void *) sqlite3_column_blob (stmt, 2),
                                   (size_t) sqlite3_column_bytes (stmt, 2)};
        raft_configuration_init (&metadata->configuration);
        if (!conf.base
            || raft_configuration_decode (&conf, &metadata->configuration)) {
            sqlite3_finalize (stmt);
            free (metadata);
            return sf_fault_set (fault, SF_ESTORE,
                                 "store: snapshot configuration is corrupt");
        }
        size_t size = (size_t) sqlite3_column_bytes (stmt, 4);
        state->snapshot_data.base = malloc (size + 1);
        state->snapshot_data.len = size;
        if (size)
            memcpy (state->snapshot_data.base, sqlite3_column_blob (stmt, 4),
                    size);
        state->snapshot = metadata;
    }
    sqlite3_finalize (stmt);

    if (sqlite3_prepare_v2 (self->db,
                            "SELECT idx, term, type, data FROM log "
                            "ORDER BY idx",
                            -1, &stmt, NULL)
        != SQLITE_OK)
        return s_fail (self, fault, "load log");
    unsigned capacity = 0;
    raft_index expect = 0;
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        raft_index index = (raft_index) sqlite3_column_int64 (stmt, 0);
        if (state->n_entries == 0) {
            state->start_index = index;
            expect = index;
        }
        if (index != expect) {
            sqlite3_finalize (stmt);
            hs_store_state_release (state);
            return sf_fault_set (fault, SF_ESTORE,
                                 "store: log has a hole before index %llu",
                                 index);
        }
        if (state->n_entries == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            state->entries = (struct raft_entry *) realloc (
                state->entries, capacity * sizeof (struct raft_entry));
        }
        struct raft_entry *entry = &state->entries [state->n_entries++];
        entry->term = (raft_term) sqlite3_column_int64 (stmt, 1);
        entry->type = (enum raft_entry_type) sqlite3_column_int (stmt, 2);
        entry->buf.len = (size_t) sqlite3_column_bytes (stmt, 3);
        entry->buf.base = malloc (entry->buf.len + 1);
        if (entry->buf.len)
            memcpy (entry->buf.base, sqlite3_column_blob (stmt, 3),
                    entry->buf.len);
        entry->batch = NULL;
        expect++;
    }
    sqlite3_finalize (stmt);
    if (state->n_entries == 0)
        state->start_index = state->snapshot ? state->snapshot->index + 1 : 1;
    return 0;
}

void
hs_store_state_release (hs_ring_state_t *state)
{
    for (unsigned at = 0; at < state->n_entries; at++)
        free (state->entries [at].buf.base);
    free (state->entries);
    if (state->snapshot) {
        raft_configuration_close (&state->snapshot->configuration);
        free (state->snapshot);
    }
    free (state->snapshot_data.base);
    memset (state, 0, sizeof *state);
}

int
hs_store_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * hs_store: ");
    char dir [] = "/tmp/hs_store_test_XXXXXX";
    char *made = mkdtemp (dir);
    assert (made);
    char path [128];
    snprintf (path, sizeof path, "%s/raft.db", dir);
    sf_fault_t fault;

    hs_store_t *store = hs_store_new (path, &fault);
    assert (store);
    assert (hs_store_empty (store));
    //  Nobody else may open it while we hold it (a second daemon on the
    //  same data folder), and trying changes nothing for us.
    hs_store_t *second = hs_store_new (path, &fault);
    assert (!second);
    assert (fault.error == SF_ESTORE);
    assert (strstr (fault.message, "is in use by another process"));
    assert (strstr (fault.message, path));
    rc = hs_store_save_term_vote (store, 3, 2, &fault);
    assert (rc == 0);
    assert (!hs_store_empty (store));
    char one [] = "one", two [] = "two", three [] = "three";
    struct raft_entry entries [3] = {
        {.term = 1, .type = RAFT_CHANGE, .buf = {one, 3}},
        {.term = 2, .type = RAFT_COMMAND, .buf = {two, 3}},
        {.term = 2, .type = RAFT_COMMAND, .buf = {three, 5}},
    };
    rc = hs_store_append (store, 1, entries, 3, &fault);
    assert (rc == 0);
    //  A conflict at 3 replaces the tail.
    struct raft_entry replacement = {
        .term = 3, .type = RAFT_COMMAND, .buf = {one, 3}};
    rc = hs_store_append (store, 3, &replacement, 1, &fault);
    assert (rc == 0);
    //  Group commit: two staged batches, the second truncating the first,
    //  land in one flush.
    char four [] = "four";
    struct raft_entry more [2] = {
        {.term = 3, .type = RAFT_COMMAND, .buf = {four, 4}},
        {.term = 3, .type = RAFT_COMMAND, .buf = {four, 4}},
    };
    hs_store_stage (store, 4, more, 2);
    hs_store_stage (store, 5, more, 1);
    raft_index flushed;
    raft_term flushed_term;
    rc = hs_store_flush (store, &flushed, &flushed_term, &fault);
    assert (rc == 0);
    assert (flushed == 5 && flushed_term == 3);
    rc = hs_store_flush (store, &flushed, &flushed_term, &fault);
    assert (rc == 0);
    assert (flushed == 0);
    //  Back to three entries for what follows.
    rc = hs_store_append (store, 4, NULL, 0, &fault);
    assert (rc == 0);

    hs_store_destroy (&store);

    //  Everything survives a reopen.
    store = hs_store_new (path, &fault);
    assert (store);
    hs_ring_state_t state;
    rc = hs_store_load (store, &state, &fault);
    assert (rc == 0);
    assert (state.term == 3 && state.voted_for == 2);
    assert (state.start_index == 1 && state.n_entries == 3);
    assert (state.entries [2].term == 3);
    assert (memcmp (state.entries [2].buf.base, "one", 3) == 0);
    assert (state.entries [0].type == RAFT_CHANGE);
    assert (!state.snapshot);
    hs_store_state_release (&state);

    //  A snapshot at 2 keeping from 2 drops entry 1 only.
    struct raft_snapshot_metadata metadata = {
        .index = 2, .term = 2, .configuration_index = 1};
    raft_configuration_init (&metadata.configuration);
    raft_configuration_add (&metadata.configuration, 1, "tcp://a:1",
                            RAFT_VOTER);
    struct raft_buffer image = {"image", 5};
    rc = hs_store_snapshot_save (store, &metadata, &image, 2, &fault);
    assert (rc == 0);
    rc = hs_store_load (store, &state, &fault);
    assert (rc == 0);
    assert (state.snapshot && state.snapshot->index == 2);
    assert (state.snapshot->configuration.n == 1);
    assert (
        strcmp (state.snapshot->configuration.servers [0].address, "tcp://a:1")
        == 0);
    assert (state.snapshot_data.len == 5);
    assert (state.start_index == 2 && state.n_entries == 2);
    hs_store_state_release (&state);

    //  An installed snapshot (keep_from past it) drops the whole log.
    metadata.index = 10;
    rc = hs_store_snapshot_save (store, &metadata, &image, 11, &fault);
    assert (rc == 0);
    rc = hs_store_load (store, &state, &fault);
    assert (rc == 0);
    assert (state.n_entries == 0 && state.start_index == 11);
    hs_store_state_release (&state);
    raft_configuration_close (&metadata.configuration);
    hs_store_destroy (&store);
    hs_store_destroy (&store);

    //  Not a database: a clear error.
    FILE *junk = fopen (path, "w");
    fputs ("this is not sqlite, not at all, not even close........", junk);
    fclose (junk);
    char wal [160];
    snprintf (wal, sizeof wal, "%s-wal", path);
    unlink (wal);
    snprintf (wal, sizeof wal, "%s-shm", path);
    unlink (wal);
    store = hs_store_new (path, &fault);
    assert (!store);
    assert (strstr (fault.message, "store"));
    unlink (path);
    rmdir (dir);
    if (verbose)
        printf ("OK\n");
    return 0;
}
