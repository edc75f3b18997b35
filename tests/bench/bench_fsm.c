/*  bench_fsm: what applying one committed write costs a ring member, against
    a floor measured in the same run.

    Every member applies every command, so this cost is paid three times per
    write in a three-member ring. The command is the one bench_ring writes:
    entity.create with an 80-byte checkpoint, encoded as the ring replicates
    it (protocol/ring-commands.md).

    1. apply: hs_fsm_apply (decode, check, one transaction) and the result
       released.
    2. apply + publish: the same, then the change published on the events
       PUB (no subscriber) and the result encoded as the leader's reply
       does, as the daemon does after every write.
    3. floor: one prepared INSERT of the same row, in its own transaction,
       into a bare in-memory SQLite table with the same primary key: what
       any SQLite state machine pays.

    Per-command ns, averaged over batches; the three alternate batch by
    batch so machine noise hits them alike. Prints medians, p99s and the
    ratios to the floor. Usage: bench_fsm [BATCHES] */

#include "broker/hs_events.h"
#include "broker/hs_fsm.h"
#include "common/sf_json.h"
#include "common/sf_time.h"
#include "protocol/ring_cmd.h"
#include "tests/bench/bench_stats.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 200

typedef struct {
    uint8_t *data;
    size_t size;
} s_command_t;

static void
s_print (const char *what, uint64_t *samples, size_t count, double floor)
{
    bench_stats_sort (samples, count);
    double median = (double) bench_stats_rank (samples, count, 0.5);
    double p99 = (double) bench_stats_rank (samples, count, 0.99);
    printf ("%-22s median %7.0f ns  p99 %7.0f ns", what, median, p99);
    if (floor > 0)
        printf ("  %5.2fx the floor", median / floor);
    printf ("\n");
}

//  Command number NUMBER: entity.create of its own path.
static s_command_t
s_command (const char *principal, size_t number)
{
    char path [64];
    snprintf (path, sizeof path, "/bench/fsm/%zu", number);
    json_t *args = json_pack ("{s:s,s:s}", "path", path, "checkpoint",
                              "00000000000000000000000000000000000000000000"
                              "000000000000000000000000000000000000");
    s_command_t command = {NULL, 0};
    if (ring_cmd_encode ("entity.create", principal, false, 1700000000000ull,
                         args, &command.data, &command.size))
        abort ();
    json_decref (args);
    return command;
}

//  Apply BATCH commands from NEXT on; publish and encode when EVENTS.
static uint64_t
s_apply (hs_fsm_t *fsm, hs_events_t *events, s_command_t *commands,
         size_t *next)
{
    uint64_t started = sf_time_mono_ns ();
    for (int index = 0; index < BATCH; index++, (*next)++) {
        sf_fault_t fault;
        json_t *result = hs_fsm_apply (fsm, *next + 1, commands [*next].data,
                                       commands [*next].size, &fault);
        if (!result) {
            fprintf (stderr, "bench_fsm: apply failed: %s\n", fault.message);
            exit (1);
        }
        if (events) {
            hs_events_publish (events, *next + 1, *next, "entity.create",
                               result);
            char *reply = sf_json_text (result);
            free (reply);
        }
        json_decref (result);
    }
    return (sf_time_mono_ns () - started) / BATCH;
}

static sqlite3_stmt *
s_floor_prepare (sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) != SQLITE_OK)
        abort ();
    return stmt;
}

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *begin, *insert, *commit;
    size_t next;
} s_floor_t;

static uint64_t
s_floor (s_floor_t *floor)
{
    uint64_t started = sf_time_mono_ns ();
    for (int index = 0; index < BATCH; index++, floor->next++) {
        char path [64];
        snprintf (path, sizeof path, "/bench/fsm/%zu", floor->next);
        sqlite3_step (floor->begin);
        sqlite3_reset (floor->begin);
        sqlite3_bind_text (floor->insert, 1, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text (floor->insert, 2,
                           "0000000000000000000000000000000000000000"
                           "0000000000000000000000000000000000000000",
                           -1, SQLITE_STATIC);
        sqlite3_bind_int64 (floor->insert, 3, 1700000000000ll);
        if (sqlite3_step (floor->insert) != SQLITE_DONE)
            abort ();
        sqlite3_reset (floor->insert);
        sqlite3_step (floor->commit);
        sqlite3_reset (floor->commit);
    }
    return (sf_time_mono_ns () - started) / BATCH;
}

int
main (int argc, char *argv [])
{
    size_t batches = argc > 1 ? (size_t) atol (argv [1]) : 100;
    if (batches < 10)
        batches = 10;
    size_t total = batches * BATCH;
    zcert_t *cert = zcert_new ();
    s_command_t *commands =
        (s_command_t *) calloc (2 * total, sizeof (s_command_t));
    for (size_t index = 0; index < 2 * total; index++)
        commands [index] = s_command (zcert_public_txt (cert), index);

    sf_fault_t fault;
    hs_fsm_t *plain = hs_fsm_new (&fault);
    hs_fsm_t *published = hs_fsm_new (&fault);
    hs_events_t *events =
        hs_events_new ("inproc://bench-fsm-events", cert, "hs1", &fault);
    if (!plain || !published || !events) {
        fprintf (stderr, "bench_fsm: %s\n", fault.message);
        return 1;
    }
    s_floor_t floor = {NULL, NULL, NULL, NULL, 0};
    if (sqlite3_open (":memory:", &floor.db) != SQLITE_OK
        || sqlite3_exec (floor.db,
                         "CREATE TABLE entities (path TEXT PRIMARY KEY, "
                         "checkpoint TEXT, updated_ms INTEGER NOT NULL)",
                         NULL, NULL, NULL)
               != SQLITE_OK)
        abort ();
    floor.begin = s_floor_prepare (floor.db, "BEGIN");
    floor.insert = s_floor_prepare (
        floor.db,
        "INSERT INTO entities (path, checkpoint, updated_ms) VALUES (?, ?, ?)");
    floor.commit = s_floor_prepare (floor.db, "COMMIT");

    uint64_t *apply = (uint64_t *) calloc (batches, sizeof (uint64_t));
    uint64_t *publish = (uint64_t *) calloc (batches, sizeof (uint64_t));
    uint64_t *bare = (uint64_t *) calloc (batches, sizeof (uint64_t));
    size_t next_plain = 0, next_published = total;
    for (size_t index = 0; index < batches; index++) {
        bare [index] = s_floor (&floor);
        apply [index] = s_apply (plain, NULL, commands, &next_plain);
        publish [index] =
            s_apply (published, events, commands, &next_published);
    }
    bench_stats_sort (bare, batches);
    double floor_median = (double) bench_stats_rank (bare, batches, 0.5);
    s_print ("floor: SQLite insert", bare, batches, 0);
    s_print ("apply", apply, batches, floor_median);
    s_print ("apply + publish", publish, batches, floor_median);

    sqlite3_finalize (floor.begin);
    sqlite3_finalize (floor.insert);
    sqlite3_finalize (floor.commit);
    sqlite3_close (floor.db);
    hs_events_destroy (&events);
    hs_fsm_destroy (&plain);
    hs_fsm_destroy (&published);
    for (size_t index = 0; index < 2 * total; index++)
        free (commands [index].data);
    free (commands);
    free (apply);
    free (publish);
    free (bare);
    zcert_destroy (&cert);
    return 0;
}
