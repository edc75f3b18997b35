/*  sim_checkpoint: the local checkpoint file. */

#include "peer/sim_checkpoint.h"
#include "common/sf_name.h"

#include <assert.h>
#include <czmq.h>
#include <sqlite3.h>

struct _sim_checkpoint_t {
    sqlite3 *db;  //  the file
};

static int
s_exec (sim_checkpoint_t *self, const char *sql, sf_fault_t *fault)
{
    char *error = NULL;
    if (sqlite3_exec (self->db, sql, NULL, NULL, &error) != SQLITE_OK) {
        sf_fault_set (fault, SF_ESTORE, "checkpoint: %s",
                      error ? error : "unknown error");
        sqlite3_free (error);
        return -1;
    }
    return 0;
}

sim_checkpoint_t *
sim_checkpoint_open (const char *path, sf_fault_t *fault)
{
    sim_checkpoint_t *self =
        (sim_checkpoint_t *) zmalloc (sizeof (sim_checkpoint_t));
    if (sqlite3_open_v2 (path, &self->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)
        != SQLITE_OK) {
        sf_fault_set (fault, SF_EINVAL, "cannot open checkpoint file '%s': %s",
                      path, sqlite3_errmsg (self->db));
        sim_checkpoint_destroy (&self);
        return NULL;
    }
    //  Locked for as long as we hold it open (set before the WAL is first
    //  opened), so that two sims given the same file do not both resume
    //  from it and save over each other. A cache: a crash may lose the last
    //  save, never corrupt the file.
    if (s_exec (self, "PRAGMA locking_mode=EXCLUSIVE", fault)
        || s_exec (self, "PRAGMA journal_mode=WAL", fault)
        || s_exec (self, "PRAGMA synchronous=NORMAL", fault)
        || s_exec (self,
                   "CREATE TABLE IF NOT EXISTS entities (path TEXT PRIMARY "
                   "KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, state "
                   "BLOB, updated_ms INTEGER NOT NULL)",
                   fault)
        || s_exec (self,
                   "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
                   "value INTEGER)",
                   fault)) {
        if (sqlite3_errcode (self->db) == SQLITE_BUSY)
            sf_fault_set (fault, SF_EINVAL,
                          "checkpoint file '%s' is in use by another process "
                          "(another sim with the same sim/checkpoint?)",
                          path);
        else
            sf_fault_set (fault, SF_EINVAL,
                          "'%s' is not a usable checkpoint: %s", path,
                          fault->message);
        sim_checkpoint_destroy (&self);
        return NULL;
    }
    return self;
}

void
sim_checkpoint_destroy (sim_checkpoint_t **self_p)
{
    if (*self_p) {
        sim_checkpoint_t *self = *self_p;
        sqlite3_close (self->db);
        free (self);
        *self_p = NULL;
    }
}

int
sim_checkpoint_save (sim_checkpoint_t *self, sim_store_t *store,
                     uint64_t now_ms, sf_fault_t *fault)
{
    if (s_exec (self, "BEGIN", fault))
        return -1;
    sqlite3_stmt *insert = NULL;
    int saved = 0;
    if (s_exec (self, "DELETE FROM entities", fault))
        goto failed;
    if (sqlite3_prepare_v2 (self->db,
                            "INSERT INTO entities (path, epoch, seq, state, "
                            "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                            -1, &insert, NULL)
        != SQLITE_OK) {
        sf_fault_set (fault, SF_ESTORE, "checkpoint: %s",
                      sqlite3_errmsg (self->db));
        goto failed;
    }
    uint32_t slots = sim_store_slots (store);
    for (uint32_t slot = 0; slot < slots; slot++) {
        sim_entity_t *entity = sim_store_at (store, slot);
        //  A foreign entity's authority after a restart is its home's word.
        if (!entity || !entity->authority || entity->foreign)
            continue;
        sqlite3_reset (insert);
        sqlite3_bind_text (insert, 1, entity->path, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (insert, 2, (sqlite3_int64) entity->epoch);
        sqlite3_bind_int64 (insert, 3, (sqlite3_int64) entity->seq);
        sqlite3_bind_blob (insert, 4,
                           entity->state ? entity->state : (void *) "",
                           (int) entity->state_size, SQLITE_STATIC);
        sqlite3_bind_int64 (insert, 5, (sqlite3_int64) entity->updated_ms);
        if (sqlite3_step (insert) != SQLITE_DONE) {
            sf_fault_set (fault, SF_ESTORE, "checkpoint: %s",
                          sqlite3_errmsg (self->db));
            goto failed;
        }
        saved++;
    }
    sqlite3_finalize (insert);
    insert = NULL;
    char sql [96];
    snprintf (sql, sizeof sql,
              "INSERT OR REPLACE INTO meta (key, value) VALUES ('saved_ms', "
              "%llu)",
              (unsigned long long) now_ms);
    if (s_exec (self, sql, fault) || s_exec (self, "COMMIT", fault))
        goto failed;
    return saved;
failed:
    sqlite3_finalize (insert);
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

int
sim_checkpoint_load (sim_checkpoint_t *self, sim_store_t *store,
                     sf_fault_t *fault)
{
    sqlite3_stmt *select = NULL;
    if (sqlite3_prepare_v2 (self->db,
                            "SELECT path, epoch, seq, state, updated_ms FROM "
                            "entities",
                            -1, &select, NULL)
        != SQLITE_OK)
        return sf_fault_set (fault, SF_ESTORE, "checkpoint: %s",
                             sqlite3_errmsg (self->db));
    int loaded = 0, rc;
    while ((rc = sqlite3_step (select)) == SQLITE_ROW) {
        const char *path = (const char *) sqlite3_column_text (select, 0);
        sqlite3_int64 epoch = sqlite3_column_int64 (select, 1);
        sqlite3_int64 seq = sqlite3_column_int64 (select, 2);
        const void *state = sqlite3_column_blob (select, 3);
        size_t size = (size_t) sqlite3_column_bytes (select, 3);
        //  A file is input like any other: check what it says.
        if (!path || !sf_name_path_valid (path, strlen (path)) || epoch < 1
            || seq < 0 || sim_store_get (store, path))
            continue;
        sim_entity_t *entity =
            sim_store_create (store, path, strlen (path), (uint64_t) epoch,
                              (uint64_t) seq + SIM_CHECKPOINT_SEQ_JUMP, true);
        if (!entity
            || sim_store_set (store, entity, entity->epoch, entity->seq,
                              (const uint8_t *) state, size,
                              (uint64_t) sqlite3_column_int64 (select, 4))) {
            sqlite3_finalize (select);
            return sf_fault_set (fault, SF_EINTERNAL, "out of memory");
        }
        loaded++;
    }
    sqlite3_finalize (select);
    if (rc != SQLITE_DONE)
        return sf_fault_set (fault, SF_ESTORE, "checkpoint: %s",
                             sqlite3_errmsg (self->db));
    return loaded;
}

int
sim_checkpoint_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sim_checkpoint: ");
    char path [] = "/tmp/sim_checkpoint_test.XXXXXX";
    int fd = mkstemp (path);
    assert (fd >= 0);
    close (fd);
    sf_fault_t fault;
    sim_checkpoint_t *checkpoint = sim_checkpoint_open (path, &fault);
    assert (checkpoint);
    //  A second sim given the same file is refused while we hold it.
    sim_checkpoint_t *second = sim_checkpoint_open (path, &fault);
    assert (!second);
    assert (strstr (fault.message, "is in use by another process"));

    sim_store_t *store = sim_store_new ();
    sim_entity_t *mine = sim_store_create (store, "/a/mine", 7, 3, 10, true);
    sim_store_set (store, mine, 3, 10, (const uint8_t *) "x\0y", 3, 5);
    sim_store_create (store, "/a/replica", 10, 1, 4, false);
    sim_entity_t *empty = sim_store_create (store, "/a/empty", 8, 1, 1, true);
    assert (empty);
    rc = sim_checkpoint_save (checkpoint, store, 100, &fault);
    assert (rc == 2);
    //  Saving again replaces, it does not add
    sim_store_delete (store, "/a/empty");
    rc = sim_checkpoint_save (checkpoint, store, 200, &fault);
    assert (rc == 1);
    sim_store_destroy (&store);
    sim_checkpoint_destroy (&checkpoint);

    //  Reopened: what was saved comes back, seq with headroom
    checkpoint = sim_checkpoint_open (path, &fault);
    store = sim_store_new ();
    rc = sim_checkpoint_load (checkpoint, store, &fault);
    assert (rc == 1);
    mine = sim_store_get (store, "/a/mine");
    assert (mine && mine->authority && mine->epoch == 3);
    assert (mine->seq == 10 + SIM_CHECKPOINT_SEQ_JUMP);
    assert (mine->state_size == 3 && memcmp (mine->state, "x\0y", 3) == 0);
    assert (!sim_store_get (store, "/a/replica"));
    //  Loading twice leaves what is there alone
    rc = sim_checkpoint_load (checkpoint, store, &fault);
    assert (rc == 0);
    sim_store_destroy (&store);
    sim_checkpoint_destroy (&checkpoint);

    //  A file that is not a database is refused with a clear error
    FILE *file = fopen (path, "w");
    fputs ("this is not a checkpoint, just text long enough to be read as a "
           "database header and refused",
           file);
    fclose (file);
    char wal [64];
    snprintf (wal, sizeof wal, "%s-wal", path);
    remove (wal);
    snprintf (wal, sizeof wal, "%s-shm", path);
    remove (wal);
    checkpoint = sim_checkpoint_open (path, &fault);
    assert (!checkpoint && fault.error == SF_EINVAL);
    remove (path);
    if (verbose)
        printf ("OK\n");
    return 0;
}
