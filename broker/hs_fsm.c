/*  hs_fsm: the ring's state machine, in an in-memory SQLite database. */

#include "broker/hs_fsm.h"
#include "common/sf_cert.h"
#include "common/sf_config.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_name.h"
#include "common/sf_trace.h"
#include "protocol/grant_msg.h"
#include "protocol/ring_cmd.h"

#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CHECKPOINT 65536
//  How long an ask transfer waits for its answer by default (ms).
#define S_ASK_TIMEOUT_MS 2000
#define S_MAX_LIST 1000
//  Highest raft id a member may have (the configuration file's limit).
#define S_MAX_RAFT_ID 4611686018427387903ll
//  How long a rotated ring key still signs-as-valid by default (ms).
#define S_KEY_GRACE_MS 60000
//  Longest grace of a rotated key, and longest life of a join token (ms).
#define S_MAX_GRACE_MS 86400000
#define S_MAX_TOKEN_TTL_MS (30ll * 86400000)

//  The ring's Ed25519 signing keys (grants.md section 2): the current one
//  has no retires_ms; a retired one's secret is forgotten (NULL) by the
//  first rotation after its grace. One-use join tokens (grants.md section
//  6), by their BLAKE2b-256 hash (Z85): the token itself is never stored.
#define S_GRANT_TABLES                                                 \
    "CREATE TABLE IF NOT EXISTS ring_keys ("                           \
    "  key_id INTEGER PRIMARY KEY, public TEXT NOT NULL, secret BLOB," \
    "  created_ms INTEGER NOT NULL, retires_ms INTEGER);"              \
    "CREATE TABLE IF NOT EXISTS tokens ("                              \
    "  hash TEXT PRIMARY KEY, sim TEXT NOT NULL,"                      \
    "  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,"      \
    "  used_ms INTEGER);"

//  Bearer tokens of the HTTP API (http.md section 5), by id: each
//  stands for a principal's key. Only the secret's BLAKE2b-256 hash
//  (Z85) is kept. Created when missing, so an image from before opens.
#define S_ACCESS_TABLE                                            \
    "CREATE TABLE IF NOT EXISTS access ("                         \
    "  token_id TEXT PRIMARY KEY, principal TEXT NOT NULL,"       \
    "  hash TEXT NOT NULL, note TEXT NOT NULL,"                   \
    "  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL," \
    "  revoked_ms INTEGER);"

//  Raft ids removed from the ring's configuration, so no member admits
//  them again from its configuration file or on another member's word
//  until a cluster.add records them anew. Created when missing, so an
//  image from before it opens too.
#define S_REMOVED_TABLE                    \
    "CREATE TABLE IF NOT EXISTS removed (" \
    "  raft_id INTEGER PRIMARY KEY, removed_at INTEGER NOT NULL);"

//  Federation's records (federation.md sections 5 and 6), created when
//  missing, so an image from before them opens too. fed_claims: claims
//  from other instances by the request id their instance gave them,
//  with the result this ring answered (the same claim again is answered
//  from here and changes nothing). fed_intents: claims this ring sent on
//  to an entity's home, until their outcome is known. fed_fenced: this
//  instance's sims fenced at other instances' entities, as the home told
//  (the newest epoch per global path, so a repeat changes nothing). Every
//  claim prunes and every ask's answer decides: indexed, so neither scans;
//  so are the entities foreign sims hold, which the leader looks up
//  every few seconds (section 6), a few among many.
#define S_FED_TABLE                                                    \
    "CREATE TABLE IF NOT EXISTS fed_claims ("                          \
    "  request TEXT PRIMARY KEY, path TEXT NOT NULL,"                  \
    "  sim TEXT NOT NULL, epoch INTEGER NOT NULL,"                     \
    "  result TEXT NOT NULL, created_ms INTEGER NOT NULL);"            \
    "CREATE TABLE IF NOT EXISTS fed_intents ("                         \
    "  request TEXT PRIMARY KEY, path TEXT NOT NULL,"                  \
    "  sim TEXT NOT NULL, created_ms INTEGER NOT NULL, outcome TEXT);" \
    "CREATE TABLE IF NOT EXISTS fed_fenced ("                          \
    "  path TEXT PRIMARY KEY, epoch INTEGER NOT NULL,"                 \
    "  sim TEXT NOT NULL, authority TEXT, told_ms INTEGER NOT NULL);"  \
    "CREATE INDEX IF NOT EXISTS fed_claims_age ON fed_claims"          \
    "  (created_ms);"                                                  \
    "CREATE INDEX IF NOT EXISTS fed_claims_asking ON fed_claims"       \
    "  (json_extract (result, '$.transfer'))"                          \
    "  WHERE json_extract (result, '$.pending');"                      \
    "CREATE INDEX IF NOT EXISTS fed_intents_age ON fed_intents"        \
    "  (created_ms);"                                                  \
    "CREATE INDEX IF NOT EXISTS fed_intents_open ON fed_intents"       \
    "  (created_ms) WHERE outcome IS NULL;"                            \
    "CREATE INDEX IF NOT EXISTS entities_foreign ON entities"          \
    "  (authority) WHERE authority LIKE '%@%';"

//  The balancer's records (load.md sections 6 and 7), created when
//  missing, so an image from before them opens too: its decisions (the
//  last 1,000, by the index of the command that made each) and the sims
//  draining. The entities players own, by sim, for the rooms that go
//  together (section 5): partial, so an entity without an owner costs
//  no index write.
#define S_BALANCE_TABLES                                                    \
    "CREATE TABLE IF NOT EXISTS moves ("                                    \
    "  id INTEGER PRIMARY KEY, move TEXT NOT NULL, at_ms INTEGER NOT NULL," \
    "  grp TEXT NOT NULL, from_sim TEXT NOT NULL, to_sim TEXT NOT NULL,"    \
    "  moved INTEGER NOT NULL, skipped INTEGER NOT NULL,"                   \
    "  reason TEXT NOT NULL);"                                              \
    "CREATE TABLE IF NOT EXISTS draining ("                                 \
    "  sim TEXT PRIMARY KEY, since_ms INTEGER NOT NULL);"                   \
    "CREATE INDEX IF NOT EXISTS entities_owned ON entities"                 \
    "  (authority, owner, path) WHERE owner IS NOT NULL;"

static const char *s_schema =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('applied', 0);"
    "INSERT INTO meta VALUES ('change', 0);"
    "CREATE TABLE players ("
    "  id TEXT PRIMARY KEY, key TEXT NOT NULL,"
    "  registered_ms INTEGER NOT NULL);"
    "CREATE TABLE sims ("
    "  id TEXT PRIMARY KEY, key TEXT NOT NULL, handoff TEXT, state TEXT,"
    "  api TEXT, load TEXT, heartbeat_ms INTEGER,"
    "  registered_ms INTEGER NOT NULL,"
    //  The raft index of the last change that took an entity from the
    //  sim (granted away, orphaned, released, deleted) or gave it one it
    //  did not ask for (an administrator's grant, a balancer's move):
    //  its heartbeat reply tells it, so it reads what it holds only when
    //  this moved.
    "  taken_index INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE entities ("
    "  path TEXT PRIMARY KEY, owner TEXT, authority TEXT,"
    "  master TEXT NOT NULL,"
    //  Not "rule IN (...)": SQLite builds an ephemeral table for that
    //  list at every insert.
    "  rule TEXT NOT NULL"
    "    CHECK (rule = 'allow' OR rule = 'ask' OR rule = 'deny'),"
    "  epoch INTEGER NOT NULL, checkpoint TEXT,"
    "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    "  revision INTEGER NOT NULL,"
    //  The transfer that granted the current epoch (0: create, import):
    //  part of the grant, so it is signed alike whenever handed out.
    "  transfer INTEGER NOT NULL DEFAULT 0,"
    //  The authority before the current epoch's grant (null: none).
    "  previous TEXT);" S_GRANT_TABLES
    //  Ring members added at run time: what the raft configuration does
    //  not hold (keys, API endpoints), so every member can reach them.
    "CREATE TABLE members ("
    "  name TEXT PRIMARY KEY, raft_id INTEGER NOT NULL UNIQUE,"
    "  raft TEXT NOT NULL, api TEXT, key TEXT NOT NULL);" S_REMOVED_TABLE
        S_FED_TABLE S_BALANCE_TABLES S_ACCESS_TABLE
    //  Authority transfers waiting for an answer (the ask rule).
    "CREATE TABLE transfers ("
    "  id INTEGER PRIMARY KEY, path TEXT NOT NULL, from_sim TEXT,"
    "  to_sim TEXT NOT NULL, player TEXT, epoch INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL);";

//  The columns of a new entity, in s_entity_json's order.
#define S_ENTITY_COLUMNS                                                    \
    "path, owner, authority, master, rule, epoch, checkpoint, created_ms, " \
    "updated_ms, revision"
//  The columns s_entity_json reads: and the authority before the current
//  epoch's grant, so a sim that missed that grant's event knows whose
//  final state to wait for (sim-api.md section 3).
#define S_ENTITY_READ S_ENTITY_COLUMNS ", previous"

//  Every statement the state machine runs, each SQL text once: X (name,
//  SQL). All are prepared when a database opens (hs_fsm_new, and
//  hs_fsm_restore for the database it brings in) and run by name, so each
//  name is always the same SQL, on every member, whatever ran before it.
//  Integers (times, indexes, epochs, ids, limits) are bound as integers.
// clang-format off
#define S_STMT_MAP(X)                                                       \
    X (S_BEGIN, "BEGIN")                                                    \
    X (S_COMMIT, "COMMIT")                                                  \
    X (S_ROLLBACK, "ROLLBACK")                                              \
    X (S_META_SET, "UPDATE meta SET value = ?2 WHERE key = ?1")             \
    X (S_META_GET,                                                          \
       "SELECT (SELECT value FROM meta WHERE key = 'applied'), "            \
       "(SELECT value FROM meta WHERE key = 'change')")                     \
    X (S_PLAYER_KEY, "SELECT key FROM players WHERE id = ?1")               \
    /*  The key it has again writes no row: nothing changed.  */            \
    X (S_PLAYER_PUT,                                                        \
       "INSERT INTO players (id, key, registered_ms) VALUES (?1, ?2, ?3) "  \
       "ON CONFLICT (id) DO UPDATE SET key = ?2 WHERE key IS NOT ?2")       \
    X (S_SIM_KEY, "SELECT key FROM sims WHERE id = ?1")                     \
    X (S_SIM_LOOKUP,                                                        \
       "SELECT key, handoff, state, heartbeat_ms FROM sims WHERE id = ?1")  \
    /*  Foreign sims (NAME@INSTANCE) that hold an entity here.  */         \
    X (S_FOREIGN_HOLDERS,                                                   \
       "SELECT DISTINCT authority FROM entities WHERE authority LIKE "      \
       "'%@%'")                                                             \
    /*  A foreign sim as its instance vouched for it: no heartbeat here  \
        (its lease is its own instance's), so never found silent.  */    \
    X (S_FED_CLAIM_DECIDE,                                                  \
       "UPDATE fed_claims SET result = ?2, epoch = ?3 WHERE "               \
       "json_extract (result, '$.pending') AND "                            \
       "json_extract (result, '$.transfer') = ?1")                          \
    X (S_FED_CLAIM_PRUNE,                                                   \
       "DELETE FROM fed_claims WHERE created_ms < ?1")                      \
    X (S_FED_WITHDRAW,                                                      \
       "INSERT INTO fed_claims (request, path, sim, epoch, result, "        \
       "created_ms) VALUES (?1, '', '', 0, ?2, ?3)")                        \
    X (S_INTENT_PUT,                                                        \
       "INSERT INTO fed_intents (request, path, sim, created_ms) VALUES "   \
       "(?1, ?2, ?3, ?4) ON CONFLICT (request) DO NOTHING")                 \
    X (S_INTENT_DECIDE,                                                     \
       "INSERT INTO fed_intents (request, path, sim, created_ms, outcome) " \
       "VALUES (?1, ?3, ?4, ?5, ?2) ON CONFLICT (request) DO UPDATE SET "   \
       "outcome = ?2 WHERE outcome IS NULL")                                \
    X (S_INTENT_PRUNE,                                                      \
       "DELETE FROM fed_intents WHERE created_ms < ?1 AND outcome IS NOT "  \
       "NULL")                                                              \
    X (S_INTENTS_OPEN,                                                      \
       "SELECT request, path, sim FROM fed_intents WHERE outcome IS NULL "  \
       "AND created_ms < ?1 ORDER BY created_ms LIMIT 100")                 \
    X (S_FENCED_GET, "SELECT epoch FROM fed_fenced WHERE path = ?1")        \
    X (S_FENCED_PUT,                                                        \
       "INSERT INTO fed_fenced (path, epoch, sim, authority, told_ms) "     \
       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (path) DO UPDATE SET "      \
       "epoch = ?2, sim = ?3, authority = ?4, told_ms = ?5")                \
    X (S_SIM_FOREIGN_PUT,                                                   \
       "INSERT INTO sims (id, key, handoff, state, registered_ms) "         \
       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET "        \
       "key = ?2, handoff = ?3, state = ?4 WHERE key IS NOT ?2 OR "         \
       "handoff IS NOT ?3 OR state IS NOT ?4")                              \
    X (S_FED_CLAIM_GET,                                                     \
       "SELECT fed_claims.result, fed_claims.epoch = entities.epoch AND "   \
       "fed_claims.sim IS entities.authority FROM fed_claims LEFT JOIN "    \
       "entities ON entities.path = fed_claims.path WHERE request = ?1")    \
    X (S_FED_CLAIM_PUT,                                                     \
       "INSERT INTO fed_claims (request, path, sim, epoch, result, "        \
       "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                       \
    X (S_SIM_PUT,                                                           \
       "INSERT INTO sims (id, key, handoff, state, registered_ms, "         \
       "heartbeat_ms, api) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) "            \
       "ON CONFLICT (id) DO UPDATE SET key = ?2, handoff = ?3, state = ?4, " \
       "heartbeat_ms = ?5, registered_ms = ?5, api = ?6")                   \
    X (S_SIM_HEARTBEAT,                                                     \
       "SELECT heartbeat_ms, taken_index FROM sims WHERE id = ?1")          \
    /*  Sim ?1, or the authority of entity ?2, loses an entity at ?3.  */  \
    X (S_SIM_TAKEN,                                                         \
       "UPDATE sims SET taken_index = ?3 WHERE id = coalesce (?1, "         \
       "(SELECT authority FROM entities WHERE path = ?2))")                 \
    X (S_SIM_BEAT,                                                          \
       "UPDATE sims SET heartbeat_ms = ?2, load = coalesce (?3, load) "     \
       "WHERE id = ?1")                                                     \
    X (S_SIM_LIST,                                                          \
       "SELECT id, key, handoff, state, load, heartbeat_ms, registered_ms, " \
       "api, EXISTS (SELECT 1 FROM draining WHERE draining.sim = sims.id) " \
       "FROM sims ORDER BY id")                                             \
    X (S_MOVE_PUT,                                                          \
       "INSERT INTO moves (id, move, at_ms, grp, from_sim, to_sim, moved, " \
       "skipped, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")      \
    X (S_MOVES_PRUNE,                                                       \
       "DELETE FROM moves WHERE id <= (SELECT id FROM moves ORDER BY id "   \
       "DESC LIMIT 1 OFFSET 1000)")                                         \
    X (S_MOVES_LIST,                                                        \
       "SELECT move, id, at_ms, grp, from_sim, to_sim, moved, skipped, "    \
       "reason FROM moves WHERE id > ?2 ORDER BY id DESC LIMIT ?1")         \
    X (S_DRAIN_PUT,                                                         \
       "INSERT OR IGNORE INTO draining (sim, since_ms) VALUES (?1, ?2)")    \
    X (S_DRAIN_DROP, "DELETE FROM draining WHERE sim = ?1")                 \
    X (S_DRAIN_GET, "SELECT since_ms FROM draining WHERE sim = ?1")         \
    X (S_DRAINING, "SELECT sim FROM draining ORDER BY sim")                 \
    /*  A group's entities held by ?3 (load.md section 5): the paths in   \
        (?1, ?2), in path order. One lower bound: given two, SQLite ranges \
        the index on one of them only, which may be the table's start.  */ \
    X (S_GROUP_HELD,                                                        \
       "SELECT path, rule FROM entities WHERE path > ?1 AND path < ?2 "     \
       "AND authority = ?3 ORDER BY path LIMIT ?4")                         \
    /*  The entities players own that ?1 holds, by owner (load.md      \
        section 5).  */                                                    \
    X (S_OWNED_HELD,                                                        \
       "SELECT path, owner FROM entities WHERE authority = ?1 AND owner "   \
       "IS NOT NULL ORDER BY owner, path LIMIT ?2")                         \
    /*  Silent sims holding something. Not a join: SQLite drove that     \
        from the entities, a scan of every row each second on the        \
        leader (60 ms at 100,000). This scans only for a silent sim.  */ \
    X (S_SIMS_SILENT,                                                       \
       "SELECT id FROM sims WHERE heartbeat_ms < ?1 AND EXISTS (SELECT 1 "  \
       "FROM entities WHERE authority = sims.id)")                          \
    /*  A member recorded exactly so already writes no row: nothing      \
        changed. Otherwise it replaces the rows of its name and raft id.  */ \
    X (S_MEMBER_PUT,                                                        \
       "INSERT OR REPLACE INTO members (name, raft_id, raft, api, key) "    \
       "SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM members " \
       "WHERE name = ?1 AND raft_id = ?2 AND raft = ?3 AND api IS ?4 AND "  \
       "key = ?5)")                                                         \
    X (S_MEMBER_LIST,                                                       \
       "SELECT name, raft_id, raft, api, key FROM members ORDER BY name")   \
    X (S_MEMBER_NAMED, "SELECT raft_id FROM members WHERE name = ?1")      \
    X (S_MEMBER_RAFT, "SELECT raft FROM members WHERE raft_id = ?1")       \
    X (S_MEMBER_KEYED,                                                      \
       "SELECT raft_id FROM members WHERE key = ?1 AND raft_id <> ?2")      \
    X (S_MEMBER_DROP, "DELETE FROM members WHERE raft_id = ?1")            \
    X (S_REMOVED_PUT,                                                       \
       "INSERT OR REPLACE INTO removed (raft_id, removed_at) "              \
       "VALUES (?1, ?2)")                                                   \
    X (S_REMOVED_DROP, "DELETE FROM removed WHERE raft_id = ?1")           \
    X (S_REMOVED_GET, "SELECT removed_at FROM removed WHERE raft_id = ?1") \
    X (S_ENTITY_GET,                                                        \
       "SELECT " S_ENTITY_READ " FROM entities WHERE path = ?1")            \
    X (S_ENTITY_MASTER, "SELECT master FROM entities WHERE path = ?1")      \
    X (S_ENTITY_HOLDER,                                                     \
       "SELECT authority, epoch FROM entities WHERE path = ?1")             \
    X (S_ENTITY_DECIDE,                                                     \
       "SELECT master, rule, authority, epoch, checkpoint FROM entities "   \
       "WHERE path = ?1")                                                   \
    X (S_ENTITY_IMPORTED,                                                   \
       "SELECT 1 FROM entities WHERE path = ?1 AND authority IS ?2 AND "    \
       "master = ?3 AND checkpoint IS ?4 AND epoch = ?5")                   \
    X (S_ENTITY_INSERT,                                                     \
       "INSERT INTO entities (" S_ENTITY_COLUMNS ") VALUES (?1, ?2, ?3, "   \
       "?4, ?5, ?6, ?7, ?8, ?8, ?9)")                                       \
    X (S_ENTITY_CHECKPOINT,                                                 \
       "UPDATE entities SET checkpoint = ?2, updated_ms = ?5, "             \
       "revision = ?6 WHERE path = ?1 AND authority = ?3 AND epoch = ?4")   \
    X (S_ENTITY_SET_RULE,                                                   \
       "UPDATE entities SET rule = ?2, updated_ms = ?3, revision = ?4 "     \
       "WHERE path = ?1")                                                   \
    X (S_ENTITY_DELETE, "DELETE FROM entities WHERE path = ?1")             \
    X (S_ENTITY_GRANT,                                                      \
       "UPDATE entities SET previous = authority, authority = ?2, "         \
       "epoch = epoch + 1, "                                                \
       "owner = COALESCE (?5, owner), updated_ms = ?3, revision = ?4, "     \
       "transfer = ?6 WHERE path = ?1")                                     \
    /*  What a grant of the current epoch says (grants.md section 3).  */ \
    X (S_ENTITY_GRANT_OF,                                                   \
       "SELECT entities.authority, entities.epoch, entities.transfer, "     \
       "sims.key FROM entities JOIN sims ON sims.id = entities.authority "  \
       "WHERE entities.path = ?1")                                          \
    X (S_KEY_CURRENT,                                                       \
       "SELECT key_id, secret FROM ring_keys WHERE retires_ms IS NULL "     \
       "AND secret IS NOT NULL")                                            \
    X (S_KEY_LIST,                                                          \
       "SELECT key_id, public, retires_ms FROM ring_keys ORDER BY key_id")  \
    X (S_KEY_INSERT,                                                        \
       "INSERT INTO ring_keys (key_id, public, secret, created_ms) SELECT " \
       "coalesce (max (key_id), 0) + 1, ?1, ?2, ?3 FROM ring_keys")         \
    /*  ?1: the command's time.  */                                       \
    X (S_KEY_FORGET,                                                        \
       "UPDATE ring_keys SET secret = NULL WHERE retires_ms < ?1 AND "      \
       "secret IS NOT NULL")                                                \
    /*  ?1: the command's time, ?2: the grace of the key retired now.  */ \
    X (S_KEY_RETIRE,                                                        \
       "UPDATE ring_keys SET retires_ms = ?1 + ?2 WHERE retires_ms IS NULL") \
    X (S_TOKEN_INSERT,                                                      \
       "INSERT INTO tokens (hash, sim, created_ms, expires_ms) VALUES "     \
       "(?1, ?2, ?3, ?4)")                                                  \
    X (S_TOKEN_GET,                                                         \
       "SELECT sim, expires_ms, used_ms FROM tokens WHERE hash = ?1")       \
    X (S_TOKEN_USE, "UPDATE tokens SET used_ms = ?2 WHERE hash = ?1")       \
    X (S_ACCESS_INSERT,                                                     \
       "INSERT INTO access (token_id, principal, hash, note, created_ms, "   \
       "expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                        \
    X (S_ACCESS_GET,                                                        \
       "SELECT principal, hash, expires_ms, revoked_ms FROM access WHERE "  \
       "token_id = ?1")                                                     \
    X (S_ACCESS_REVOKE,                                                     \
       "UPDATE access SET revoked_ms = ?2 WHERE token_id = ?1")             \
    /*  ?1: the command's time: a day after a token ended, it goes.  */   \
    X (S_ACCESS_PRUNE,                                                      \
       "DELETE FROM access WHERE coalesce (revoked_ms, expires_ms) < "      \
       "?1 - 86400000")                                                     \
    X (S_ACCESS_LIST,                                                       \
       "SELECT token_id, principal, note, created_ms, expires_ms, "         \
       "revoked_ms FROM access ORDER BY created_ms, token_id")              \
    X (S_ENTITY_RELEASE,                                                    \
       "UPDATE entities SET authority = NULL, checkpoint = COALESCE (?4, "  \
       "checkpoint), updated_ms = ?2, revision = ?3 WHERE path = ?1")       \
    X (S_ENTITY_ORPHAN_FOREIGN,                                             \
       "UPDATE entities SET authority = NULL, updated_ms = ?2, "            \
       "revision = ?3 WHERE authority = ?1 AND authority LIKE '%@%'")       \
    X (S_ENTITY_ORPHAN,                                                     \
       "UPDATE entities SET authority = NULL, updated_ms = ?2, "            \
       "revision = ?3 WHERE authority = ?1")                                \
    /*  Paths in [?1, ?2) (?1 itself unless ?4), at most ?3 of them.  */   \
    X (S_ENTITY_LIST,                                                       \
       "SELECT " S_ENTITY_READ " FROM entities WHERE (path > ?1 OR "        \
       "(path = ?1 AND NOT ?4)) AND path < ?2 ORDER BY path LIMIT ?3")      \
    /*  The same, of one authority ?5's entities only.  */                 \
    X (S_ENTITY_LIST_OF,                                                    \
       "SELECT " S_ENTITY_READ " FROM entities WHERE (path > ?1 OR "        \
       "(path = ?1 AND NOT ?4)) AND path < ?2 AND authority = ?5 "          \
       "ORDER BY path LIMIT ?3")                                            \
    X (S_TRANSFER_INSERT,                                                   \
       "INSERT INTO transfers (id, path, from_sim, to_sim, player, epoch, " \
       "created_ms, deadline_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")  \
    X (S_TRANSFER_GET,                                                      \
       "SELECT transfers.path, from_sim, to_sim, player, transfers.epoch, " \
       "deadline_ms, entities.epoch, entities.authority FROM transfers "    \
       "LEFT JOIN entities ON entities.path = transfers.path "              \
       "WHERE id = ?1")                                                     \
    X (S_TRANSFER_DEADLINE,                                                 \
       "SELECT path, deadline_ms FROM transfers WHERE id = ?1")             \
    X (S_TRANSFER_DELETE, "DELETE FROM transfers WHERE id = ?1")            \
    X (S_TRANSFERS_LATE, "SELECT id FROM transfers WHERE deadline_ms < ?1")
// clang-format on

#define S_STMT_ENUM(name, sql) name,
typedef enum { S_STMT_MAP (S_STMT_ENUM) S_STMT_COUNT } s_stmt_id_t;
#undef S_STMT_ENUM

#define S_STMT_SQL(name, sql) sql,
static const char *s_stmt_sql [S_STMT_COUNT] = {S_STMT_MAP (S_STMT_SQL)};
#undef S_STMT_SQL

struct _hs_fsm_t {
    sqlite3 *db;                         //  in-memory database
    sqlite3_stmt *stmts [S_STMT_COUNT];  //  the table's, prepared on db
    raft_index applied;                  //  last index applied
    raft_index change;                   //  last index that changed something
    uint64_t signed_grants;              //  grants signed since start
};

//  --------------------------------------------------------------------------
//  Arguments, shared by the leader's check and every member's apply

typedef struct {
    int64_t raft_id;
    const char *name, *raft, *api;
    const char *player, *sim, *key, *path, *rule, *owner, *authority;
    const char *handoff, *state, *checkpoint, *prefix, *after;
    json_t *load;
    const json_t *entities;  //  entity.import
    const json_t *paths;     //  authority.request, the batch form
    const json_t *claims;    //  fed.claim and fed.outcome, the batch form
    int64_t limit;
    int64_t transfer;       //  authority.answer, authority.expire
    int64_t timeout_ms;     //  authority.request: how long an ask may wait
    bool approve;           //  authority.answer
    int64_t to;             //  cluster.transfer: the member to hand over to
    const char *principal;  //  ring.forward: the client's key
    const char *public, *secret;  //  ring.key, ring.rotate_key (Z85)
    int64_t grace_ms;             //  ring.rotate_key
    const char *hash;             //  token.create: the token's hash (Z85)
    int64_t ttl_ms;               //  token.create
    const char *token;            //  sim.register: a join token (Z85)
    const char *token_id;         //  access.*: a bearer token's id (hex)
    const char *principal_key;    //  access.create: whom it stands for
    const char *note;             //  access.create
    bool open;             //  sim.register: the leader's registration is open
    json_t *request;       //  ring.forward: the client's request
    const char *claim;     //  fed.claim: the request id its instance gave
    const char *instance;  //  fed.*: the peer instance that sent it (leader's)
    int64_t epoch;         //  fed.fenced: the home's new epoch
    const char *player_key;  //  fed.claim: the player's key, as vouched
    json_t *outcome;         //  fed.outcome: what the home answered
    const char *move, *from, *reason;  //  balance.move (a->sim is "to")
    bool ask;                          //  balance.move: ask for the path
    bool drain;                        //  sim.drain
    char trace [SF_TRACE_MAX_ID + 1];  //  trace: the trace id
} s_args_t;

static int
s_name (const json_t *args, const char *field, bool required,
        const char **value, sf_fault_t *fault)
{
    if (sf_json_string (args, field, required, value, fault))
        return -1;
    if (*value && !sf_name_valid (*value))
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must be 1..64 letters, digits, "
                             "'_', '-' or '.'",
                             field);
    return 0;
}

static int
s_path (const json_t *args, const char *field, const char **value,
        sf_fault_t *fault)
{
    if (sf_json_string (args, field, true, value, fault))
        return -1;
    if (!sf_name_path_valid (*value, strlen (*value)))
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must be a path like /world/room1/cube "
                             "(segments of letters, digits, '_', '-', '.', "
                             "':'; at most 256 bytes)",
                             field);
    return 0;
}

static int
s_rule (const json_t *args, bool required, const char **value,
        sf_fault_t *fault)
{
    if (sf_json_string (args, "rule", required, value, fault))
        return -1;
    if (*value && strcmp (*value, "allow") && strcmp (*value, "ask")
        && strcmp (*value, "deny"))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'rule' must be allow, ask or deny");
    return 0;
}

static int
s_key (const json_t *args, const char **value, sf_fault_t *fault)
{
    if (sf_json_string (args, "key", false, value, fault))
        return -1;
    if (*value && !sf_cert_key_valid (*value))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'key' must be a 40-character Z85 CURVE "
                             "public key");
    return 0;
}

static int
s_endpoint (const json_t *args, const char *field, const char *schemes,
            const char **value, sf_fault_t *fault)
{
    if (sf_json_string (args, field, false, value, fault))
        return -1;
    char reason [128];
    if (*value
        && sf_config_check_endpoint (*value, schemes, reason, sizeof reason))
        return sf_fault_set (fault, SF_EINVAL, "field '%s': %s", field, reason);
    return 0;
}

//  The batch of an entity.import or entity.checkpoint into A: an array of
//  1..HS_FSM_MAX_IMPORT items (each checked by the caller).
static int
s_entities (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->entities = json_object_get (args, "entities");
    size_t count = json_array_size (a->entities);
    if (!json_is_array (a->entities) || count < 1 || count > HS_FSM_MAX_IMPORT)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'entities' must be an array of 1..%d "
                             "entities",
                             HS_FSM_MAX_IMPORT);
    return 0;
}

//  The arguments of each operation, parsed into A: one function an
//  operation (or a few alike), run after the generic check that no field
//  is unknown (s_parse). Each returns 0, or -1 with FAULT naming the field.

static int
s_parse_player_register (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_name (args, "player", true, &a->player, fault)
                   || s_key (args, &a->key, fault)
               ? -1
               : 0;
}

static int
s_parse_player (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_name (args, "player", true, &a->player, fault);
}

//  A Z85 text field KEY of BYTES bytes once decoded (optional).
static int
s_z85 (const json_t *args, const char *key, size_t bytes, const char **value,
       sf_fault_t *fault)
{
    if (sf_json_string (args, key, false, value, fault))
        return -1;
    uint8_t decoded [64];
    assert (bytes <= sizeof decoded);
    if (*value
        && (strlen (*value) != bytes * 5 / 4
            || !zmq_z85_decode (decoded, *value)))
        return sf_fault_set (fault, SF_EINVAL,
                             "field '%s' must be %zu characters of Z85", key,
                             bytes * 5 / 4);
    return 0;
}

static int
s_parse_sim_register (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    const char *registration = NULL;
    if (s_name (args, "sim", true, &a->sim, fault)
        || s_key (args, &a->key, fault)
        || s_endpoint (args, "handoff", "tcp|ipc", &a->handoff, fault)
        || s_endpoint (args, "state", "udp", &a->state, fault)
        || s_endpoint (args, "api", "tcp|ipc", &a->api, fault)
        || s_z85 (args, "token", 32, &a->token, fault)
        || sf_json_string (args, "registration", false, &registration, fault))
        return -1;
    //  Set by the leader only (hs_api), from homeserver/registration.
    a->open = registration && streq (registration, "open");
    return 0;
}

//  ring.key, ring.rotate_key: the key pair is the leader's (hs_api adds
//  it), so a request may come without it.
static int
s_parse_ring_key (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->grace_ms = S_KEY_GRACE_MS;
    return s_z85 (args, "public", 32, &a->public, fault)
                   || s_z85 (args, "secret", 64, &a->secret, fault)
                   || sf_json_int (args, "grace_ms", false, 0, S_MAX_GRACE_MS,
                                   &a->grace_ms, fault)
               ? -1
               : 0;
}

//  token.create: the hash is the leader's (hs_api makes the token).
static int
s_parse_token_create (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_name (args, "sim", true, &a->sim, fault)
                   || sf_json_int (args, "ttl_ms", true, 1000,
                                   S_MAX_TOKEN_TTL_MS, &a->ttl_ms, fault)
                   || s_z85 (args, "hash", 32, &a->hash, fault)
               ? -1
               : 0;
}

//  A bearer token's id: 16 lowercase hex digits (http.md section 5).
static int
s_token_id (const json_t *args, bool required, const char **value,
            sf_fault_t *fault)
{
    if (sf_json_string (args, "token_id", required, value, fault))
        return -1;
    if (*value
        && (strlen (*value) != 16 || strspn (*value, "0123456789abcdef") != 16))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'token_id' must be 16 hex digits");
    return 0;
}

//  access.create: the id and the hash are the leader's (hs_api makes the
//  token).
static int
s_parse_access_create (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->note = "";
    if (s_z85 (args, "principal", 32, &a->principal_key, fault)
        || sf_json_int (args, "ttl_ms", true, 1000, 31536000000ll, &a->ttl_ms,
                        fault)
        || sf_json_string (args, "note", false, &a->note, fault)
        || s_token_id (args, false, &a->token_id, fault)
        || s_z85 (args, "hash", 32, &a->hash, fault))
        return -1;
    if (!a->principal_key)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'principal' is required: the Z85 public "
                             "key the token stands for");
    if (strlen (a->note) > 200)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'note' is longer than 200 bytes");
    return 0;
}

static int
s_parse_access_revoke (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_token_id (args, true, &a->token_id, fault);
}

static int
s_parse_sim_heartbeat (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_name (args, "sim", true, &a->sim, fault)
                   || sf_json_object (args, "load", false, &a->load, fault)
               ? -1
               : 0;
}

static int
s_parse_cluster_add (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (s_name (args, "name", true, &a->name, fault)
        || sf_json_int (args, "raft_id", true, 1, S_MAX_RAFT_ID, &a->raft_id,
                        fault)
        || s_endpoint (args, "raft", "tcp|ipc", &a->raft, fault)
        || s_endpoint (args, "api", "tcp|ipc", &a->api, fault)
        || s_key (args, &a->key, fault))
        return -1;
    if (!a->raft || !a->key)
        return sf_fault_set (fault, SF_EINVAL,
                             "cluster.add needs 'raft' and 'key'");
    return 0;
}

//  cluster.remove
static int
s_parse_raft_id (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return sf_json_int (args, "raft_id", true, 1, S_MAX_RAFT_ID, &a->raft_id,
                        fault);
}

//  cluster.transfer: 0 or absent lets the raft library pick.
static int
s_parse_cluster_transfer (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return sf_json_int (args, "to", false, 0, S_MAX_RAFT_ID, &a->to, fault);
}

//  ring.forward: the inner request is checked when it is served.
static int
s_parse_ring_forward (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (sf_json_string (args, "principal", true, &a->principal, fault)
        || sf_json_object (args, "request", true, &a->request, fault))
        return -1;
    if (!sf_cert_key_valid (a->principal))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'principal' is not a public key");
    return 0;
}

static int
s_parse_trace (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return sf_trace_id (args, a->trace, fault);
}

//  A backup's id: 16 lowercase hex digits (operations.md section 2).
static int
s_backup_id (const json_t *args, const char **value, sf_fault_t *fault)
{
    if (sf_json_string (args, "backup", true, value, fault))
        return -1;
    if (strlen (*value) != 16 || strspn (*value, "0123456789abcdef") != 16)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'backup' must be 16 hex digits");
    return 0;
}

static int
s_parse_backup_read (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    const char *id;
    int64_t offset = 0, length = 0;
    (void) a;
    return s_backup_id (args, &id, fault)
                   || sf_json_int (args, "offset", true, 0, INT64_MAX, &offset,
                                   fault)
                   || sf_json_int (args, "length", false, 1, 49152, &length,
                                   fault)
               ? -1
               : 0;
}

static int
s_parse_backup_end (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    const char *id;
    (void) a;
    return s_backup_id (args, &id, fault);
}

//  events.read: served from the member's kept changes (hs_api).
static int
s_parse_events_read (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    int64_t from = 0;
    a->limit = 1000;
    return sf_json_int (args, "from", true, 0, INT64_MAX, &from, fault)
                   || sf_json_string (args, "prefix", false, &a->prefix, fault)
                   || sf_json_int (args, "limit", false, 1, 1000, &a->limit,
                                   fault)
               ? -1
               : 0;
}

static int
s_parse_entity_create (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (s_path (args, "path", &a->path, fault)
        || s_rule (args, false, &a->rule, fault)
        || s_name (args, "owner", false, &a->owner, fault)
        || s_name (args, "authority", false, &a->authority, fault)
        || sf_json_string (args, "checkpoint", false, &a->checkpoint, fault))
        return -1;
    if (a->checkpoint && strlen (a->checkpoint) > S_MAX_CHECKPOINT)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'checkpoint' exceeds %d bytes",
                             S_MAX_CHECKPOINT);
    if (!a->rule)
        a->rule = "allow";
    return 0;
}

static int s_checkpoints (s_args_t *a, sf_fault_t *fault);

static int
s_parse_entity_checkpoint (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_name (args, "sim", true, &a->sim, fault)
                   || s_entities (args, a, fault) || s_checkpoints (a, fault)
               ? -1
               : 0;
}

//  Field "sim" is a global name, NAME@INSTANCE (federation.md section
//  1). Returns 0, or -1 with FAULT.
static int
s_global_sim (const s_args_t *a, sf_fault_t *fault)
{
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    if (!sf_name_split (a->sim, local, instance) || !instance [0])
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'sim' must be a global name, "
                             "NAME@INSTANCE");
    return 0;
}

//  fed.checkpoint (federation.md section 7): entity.checkpoint's for a
//  foreign sim, a global name, and "instance" as for fed.claim.
static int
s_parse_fed_checkpoint (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (sf_json_string (args, "sim", true, &a->sim, fault)
        || sf_json_string (args, "instance", false, &a->instance, fault)
        || s_entities (args, a, fault) || s_checkpoints (a, fault))
        return -1;
    if (s_global_sim (a, fault))
        return -1;
    return 0;
}

//  Each of entity.checkpoint's entities: a path, an epoch, a state.
static int
s_checkpoints (s_args_t *a, sf_fault_t *fault)
{
    static const char *fields [] = {"path", "epoch", "checkpoint", NULL};
    size_t index;
    const json_t *entity;
    json_array_foreach (a->entities, index, entity)
    {
        const char *path = NULL, *checkpoint = NULL;
        int64_t epoch = 0;
        if (!json_is_object (entity) || sf_json_only (entity, fields, fault)
            || s_path (entity, "path", &path, fault)
            || sf_json_int (entity, "epoch", true, 1, INT64_MAX, &epoch, fault)
            || sf_json_string (entity, "checkpoint", true, &checkpoint, fault)
            || strlen (checkpoint) > S_MAX_CHECKPOINT)
            return sf_fault_set (fault, SF_EINVAL,
                                 "entities[%zu]: an object with path, "
                                 "epoch (>= 1) and checkpoint (a string "
                                 "of at most %d bytes)",
                                 index, S_MAX_CHECKPOINT);
    }
    return 0;
}

static int
s_parse_entity_import (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (s_name (args, "authority", false, &a->authority, fault)
        || s_entities (args, a, fault))
        return -1;
    static const char *fields [] = {"path", "rule", "owner", "checkpoint",
                                    NULL};
    size_t index;
    const json_t *entity;
    json_array_foreach (a->entities, index, entity)
    {
        const char *path = NULL, *rule = NULL, *owner = NULL;
        const char *checkpoint = NULL;
        if (!json_is_object (entity))
            return sf_fault_set (fault, SF_EINVAL,
                                 "entities[%zu]: an entity must be an "
                                 "object with path, rule?, owner?, "
                                 "checkpoint?",
                                 index);
        if (sf_json_only (entity, fields, fault)
            || s_path (entity, "path", &path, fault)
            || s_rule (entity, false, &rule, fault)
            || s_name (entity, "owner", false, &owner, fault)
            || sf_json_string (entity, "checkpoint", false, &checkpoint,
                               fault)) {
            char reason [sizeof fault->message];
            snprintf (reason, sizeof reason, "%s", fault->message);
            return sf_fault_set (fault, SF_EINVAL, "entities[%zu]: %s", index,
                                 reason);
        }
        if (checkpoint && strlen (checkpoint) > S_MAX_CHECKPOINT)
            return sf_fault_set (fault, SF_EINVAL,
                                 "entities[%zu]: field 'checkpoint' "
                                 "exceeds %d bytes",
                                 index, S_MAX_CHECKPOINT);
    }
    return 0;
}

static int
s_parse_path (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_path (args, "path", &a->path, fault);
}

static int
s_parse_entity_set_rule (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_path (args, "path", &a->path, fault)
                   || s_rule (args, true, &a->rule, fault)
               ? -1
               : 0;
}

static int
s_parse_sim_expire (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    int64_t lease;
    if (s_name (args, "sim", true, &a->sim, fault)
        || sf_json_int (args, "lease_ms", true, 1, INT64_MAX, &lease, fault))
        return -1;
    a->limit = lease;
    return 0;
}

//  load.member (load.md section 2): a member's report, an object.
static int
s_parse_report (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    (void) a;
    const json_t *report = json_object_get (args, "report");
    if (!json_is_object (report) || json_object_size (report) > 64)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'report' must be an object of at most 64 "
                             "figures");
    return 0;
}

//  The batch form's claims: 1 to HS_FSM_MAX_REQUESTS objects, each a
//  request id and a path, no request twice.
static int
s_parse_fed_claims (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    static const char *const fields [] = {"request", "path", NULL};
    a->claims = json_object_get (args, "claims");
    size_t count = json_array_size (a->claims);
    if (!json_is_array (a->claims) || count < 1 || count > HS_FSM_MAX_REQUESTS)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'claims' must be an array of 1..%d "
                             "claims",
                             HS_FSM_MAX_REQUESTS);
    size_t index;
    const json_t *claim;
    json_array_foreach (a->claims, index, claim)
    {
        const char *request, *path;
        if (!json_is_object (claim) || sf_json_only (claim, fields, fault)
            || sf_json_string (claim, "request", true, &request, fault)
            || sf_json_string (claim, "path", true, &path, fault)
            || strlen (request) < 1 || strlen (request) > 200
            || !sf_name_path_valid (path, strlen (path)))
            return sf_fault_set (fault, SF_EINVAL,
                                 "claims[%zu] must be {\"request\": 1 to 200 "
                                 "characters, \"path\": a path like "
                                 "/world/room1/cube}",
                                 index);
        for (size_t before = 0; before < index; before++)
            if (streq (request,
                       json_string_value (json_object_get (
                           json_array_get (a->claims, before), "request"))))
                return sf_fault_set (fault, SF_EINVAL,
                                     "claims[%zu] repeats request '%s'", index,
                                     request);
    }
    return 0;
}

//  fed.claim (federation.md section 5): a claim that another instance's
//  leader relays for one of its sims, named NAME@INSTANCE, vouching for
//  its key and endpoints; "instance" is this leader's own word of who
//  relayed it (the peer's key), never the peer's.
static int
s_parse_fed_claim (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->timeout_ms = S_ASK_TIMEOUT_MS;
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    bool batch = json_object_get (args, "claims") != NULL;
    //  The batch form never asks and never speaks for a player.
    if (batch
        && (json_object_get (args, "request") || json_object_get (args, "path")
            || json_object_get (args, "timeout_ms")
            || json_object_get (args, "player")
            || json_object_get (args, "player_key")))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'claims' goes without 'request', 'path', "
                             "'timeout_ms', 'player' and 'player_key'");
    if ((batch ? s_parse_fed_claims (args, a, fault)
               : sf_json_string (args, "request", true, &a->claim, fault)
                     || s_path (args, "path", &a->path, fault))
        || sf_json_string (args, "sim", true, &a->sim, fault)
        || s_key (args, &a->key, fault)
        || s_endpoint (args, "handoff", "tcp", &a->handoff, fault)
        || s_endpoint (args, "state", "udp", &a->state, fault)
        || sf_json_string (args, "instance", false, &a->instance, fault)
        || sf_json_int (args, "timeout_ms", false, 1, 60000, &a->timeout_ms,
                        fault)
        || sf_json_string (args, "player", false, &a->player, fault)
        || sf_json_string (args, "player_key", false, &a->player_key, fault))
        return -1;
    //  A master's claim: its instance vouches for the player's key, which
    //  the rule compares with the master's, as for a local player.
    if ((a->player != NULL) != (a->player_key != NULL)
        || (a->player
            && (!sf_name_split (a->player, local, instance) || !instance [0]
                || !sf_cert_key_valid (a->player_key))))
        return sf_fault_set (fault, SF_EINVAL,
                             "fields 'player' (NAME@INSTANCE) and "
                             "'player_key' (its key) go together");
    if (a->claim && (strlen (a->claim) < 1 || strlen (a->claim) > 200))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'request' must be 1 to 200 characters");
    if (s_global_sim (a, fault))
        return -1;
    if (!a->key)
        return sf_fault_set (fault, SF_EINVAL,
                             "fed.claim carries the sim's key ('key')");
    return 0;
}

//  fed.fenced (federation.md section 6): an entity's home tells that one
//  of this instance's sims no longer holds it from EPOCH on; "instance"
//  is the home, as for fed.claim.
static int
s_parse_fed_fenced (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    if (s_path (args, "path", &a->path, fault)
        || sf_json_int (args, "epoch", true, 1, INT64_MAX, &a->epoch, fault)
        || s_name (args, "sim", true, &a->sim, fault)
        || sf_json_string (args, "authority", false, &a->authority, fault)
        || s_key (args, &a->key, fault)
        || s_endpoint (args, "handoff", "tcp", &a->handoff, fault)
        || sf_json_string (args, "instance", false, &a->instance, fault))
        return -1;
    if (a->authority && !sf_name_split (a->authority, local, instance))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'authority' must be a name or "
                             "NAME@INSTANCE");
    return 0;
}

//  The request id REQUEST of a foreign claim is its sim's global name,
//  '/', and the sim's own id (federation.md section 6): an instance
//  names only its own sims' requests.
static bool
s_request_of (const char *request, const char *instance)
{
    const char *slash = strchr (request, '/');
    const char *at =
        slash ? memchr (request, '@', (size_t) (slash - request)) : NULL;
    return at && instance && (size_t) (slash - at - 1) == strlen (instance)
           && strncmp (at + 1, instance, strlen (instance)) == 0;
}

//  fed.expired (federation.md section 6): "sim", a global name, and
//  "instance" as for fed.claim.
static int
s_parse_fed_expired (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (sf_json_string (args, "sim", true, &a->sim, fault)
        || sf_json_string (args, "instance", false, &a->instance, fault))
        return -1;
    if (s_global_sim (a, fault))
        return -1;
    return 0;
}

//  fed.withdraw (federation.md section 6): "request", and "instance" as
//  for fed.claim.
static int
s_parse_fed_withdraw (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (sf_json_string (args, "request", true, &a->claim, fault)
        || sf_json_string (args, "instance", false, &a->instance, fault))
        return -1;
    if (strlen (a->claim) < 1 || strlen (a->claim) > 200)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'request' must be 1 to 200 characters");
    return 0;
}

//  fed.intent and fed.outcome: this ring's own record of a claim it sent
//  on to an entity's home (federation.md section 6).
static int
s_parse_fed_intent (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (sf_json_string (args, "request", true, &a->claim, fault)
        || sf_json_string (args, "path", true, &a->path, fault)
        || s_name (args, "sim", true, &a->sim, fault))
        return -1;
    if (!sf_name_global_path_valid (a->path, strlen (a->path))
        || !strchr (a->path, '@'))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'path' must be PATH@INSTANCE");
    return 0;
}

static int
s_parse_fed_outcome (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (!json_object_get (args, "outcomes"))
        return s_parse_fed_intent (args, a, fault)
                       || sf_json_object (args, "outcome", true, &a->outcome,
                                          fault)
                   ? -1
                   : 0;
    //  The batch form: one sim's outcomes learnt together.
    if (json_object_get (args, "request") || json_object_get (args, "path")
        || json_object_get (args, "outcome"))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'outcomes' goes without 'request', "
                             "'path' and 'outcome'");
    if (s_name (args, "sim", true, &a->sim, fault))
        return -1;
    a->claims = json_object_get (args, "outcomes");
    size_t count = json_array_size (a->claims);
    if (!json_is_array (a->claims) || count < 1 || count > HS_FSM_MAX_REQUESTS)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'outcomes' must be an array of 1..%d "
                             "outcomes",
                             HS_FSM_MAX_REQUESTS);
    static const char *const fields [] = {"request", "path", "outcome", NULL};
    size_t index;
    const json_t *item;
    json_array_foreach (a->claims, index, item)
    {
        s_args_t one = {.sim = a->sim};
        if (!json_is_object (item) || sf_json_only (item, fields, fault)
            || sf_json_string (item, "request", true, &one.claim, fault)
            || sf_json_string (item, "path", true, &one.path, fault)
            || sf_json_object (item, "outcome", true, &one.outcome, fault)
            || !sf_name_global_path_valid (one.path, strlen (one.path))
            || !strchr (one.path, '@'))
            return sf_fault_set (fault, SF_EINVAL,
                                 "outcomes[%zu] must be {\"request\", "
                                 "\"path\": PATH@INSTANCE, \"outcome\": an "
                                 "object}",
                                 index);
    }
    return 0;
}

//  Field "paths": an array of 1 to MAX paths. Returns 0, or -1 with
//  FAULT.
static int
s_paths (const json_t *args, s_args_t *a, size_t max, sf_fault_t *fault)
{
    a->paths = json_object_get (args, "paths");
    size_t count = json_array_size (a->paths);
    if (!json_is_array (a->paths) || count < 1 || count > max)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'paths' must be an array of 1..%zu "
                             "paths",
                             max);
    size_t index;
    const json_t *path;
    json_array_foreach (a->paths, index, path)
    {
        const char *text = json_string_value (path);
        if (!text || !sf_name_path_valid (text, strlen (text)))
            return sf_fault_set (fault, SF_EINVAL,
                                 "paths[%zu] must be a path like "
                                 "/world/room1/cube",
                                 index);
    }
    return 0;
}

static int
s_parse_authority_request (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->timeout_ms = S_ASK_TIMEOUT_MS;
    if (s_name (args, "sim", true, &a->sim, fault)
        || s_name (args, "player", false, &a->player, fault))
        return -1;
    if (!json_object_get (args, "paths"))
        return s_path (args, "path", &a->path, fault)
                       || sf_json_int (args, "timeout_ms", false, 1, 60000,
                                       &a->timeout_ms, fault)
                   ? -1
                   : 0;
    //  The batch form never asks, so it has no ask timeout.
    if (json_object_get (args, "path") || json_object_get (args, "timeout_ms"))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'paths' goes without 'path' and "
                             "'timeout_ms'");
    return s_paths (args, a, HS_FSM_MAX_REQUESTS, fault);
}

static int
s_parse_authority_answer (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return sf_json_int (args, "transfer", true, 1, INT64_MAX, &a->transfer,
                        fault)
                   || s_name (args, "sim", true, &a->sim, fault)
                   || sf_json_bool (args, "approve", true, &a->approve, fault)
               ? -1
               : 0;
}

static int
s_parse_authority_expire (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return sf_json_int (args, "transfer", true, 1, INT64_MAX, &a->transfer,
                        fault);
}

static int
s_parse_authority_release (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (s_path (args, "path", &a->path, fault)
        || s_name (args, "sim", true, &a->sim, fault)
        || sf_json_string (args, "checkpoint", false, &a->checkpoint, fault))
        return -1;
    if (a->checkpoint && strlen (a->checkpoint) > S_MAX_CHECKPOINT)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'checkpoint' exceeds %d bytes",
                             S_MAX_CHECKPOINT);
    return 0;
}

//  fed.release (federation.md section 7): authority.release's for a
//  foreign sim, a global name, and "instance" as for fed.claim.
static int
s_parse_fed_release (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    if (s_path (args, "path", &a->path, fault)
        || sf_json_string (args, "sim", true, &a->sim, fault)
        || sf_json_string (args, "checkpoint", false, &a->checkpoint, fault)
        || sf_json_string (args, "instance", false, &a->instance, fault))
        return -1;
    if (s_global_sim (a, fault))
        return -1;
    if (a->checkpoint && strlen (a->checkpoint) > S_MAX_CHECKPOINT)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'checkpoint' exceeds %d bytes",
                             S_MAX_CHECKPOINT);
    return 0;
}

//  balance.move (load.md section 6): a group's paths, from one sim to
//  another, with why; "ask" with one path under ask.
static int
s_parse_balance_move (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->timeout_ms = S_ASK_TIMEOUT_MS;
    if (sf_json_string (args, "move", true, &a->move, fault)
        || s_name (args, "from", true, &a->from, fault)
        || s_name (args, "to", true, &a->sim, fault)
        || sf_json_string (args, "group", true, &a->prefix, fault)
        || sf_json_string (args, "reason", true, &a->reason, fault)
        || sf_json_bool (args, "ask", false, &a->ask, fault)
        || sf_json_int (args, "timeout_ms", false, 1, 60000, &a->timeout_ms,
                        fault))
        return -1;
    if (strcmp (a->prefix, "/")
        && !sf_name_path_valid (a->prefix, strlen (a->prefix)))
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'group' must be / or a path like "
                             "/world/room1");
    if (strlen (a->move) > 64 || strlen (a->reason) > 256)
        return sf_fault_set (fault, SF_EINVAL,
                             "fields 'move' and 'reason' must be at most 64 "
                             "and 256 bytes");
    if (strcmp (a->from, a->sim) == 0)
        return sf_fault_set (fault, SF_EINVAL,
                             "fields 'from' and 'to' must name two sims");
    //  An ask is one path's.
    return s_paths (args, a, a->ask ? 1 : HS_FSM_MAX_REQUESTS, fault);
}

static int
s_parse_sim_drain (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    return s_name (args, "sim", true, &a->sim, fault)
                   || sf_json_bool (args, "drain", true, &a->drain, fault)
               ? -1
               : 0;
}

static int
s_parse_balance_moves (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->limit = 50;
    return sf_json_int (args, "limit", false, 1, 1000, &a->limit, fault);
}

static int
s_parse_entity_list (const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    a->prefix = "/";
    a->limit = 100;
    if (s_name (args, "authority", false, &a->authority, fault)
        || sf_json_string (args, "prefix", false, &a->prefix, fault)
        || sf_json_string (args, "after", false, &a->after, fault)
        || sf_json_int (args, "limit", false, 1, S_MAX_LIST, &a->limit, fault))
        return -1;
    if (a->prefix [0] != '/' || strlen (a->prefix) > 256)
        return sf_fault_set (fault, SF_EINVAL,
                             "field 'prefix' must start with '/'");
    return 0;
}

//  --------------------------------------------------------------------------
//  SQL helpers

//  Finalize every statement in STMTS and close DB; either may be empty.
static void
s_close (sqlite3 *db, sqlite3_stmt **stmts)
{
    for (int id = 0; id < S_STMT_COUNT; id++) {
        sqlite3_finalize (stmts [id]);
        stmts [id] = NULL;
    }
    sqlite3_close (db);
}

//  Open an in-memory database into *DB_P holding IMAGE (SIZE bytes, lent),
//  or the empty schema if IMAGE is NULL, and prepare every statement of
//  S_STMT_MAP on it into STMTS. Returns 0, or -1 with FAULT and nothing
//  left open.

//  Add COLUMN of DECLARATION to TABLE unless it has it: a snapshot taken
//  before the column existed restores with it. Returns 0 or -1.
static int
s_ensure_column (sqlite3 *db, const char *table, const char *column,
                 const char *declaration)
{
    char *probe = sqlite3_mprintf ("SELECT %s FROM %s LIMIT 0", column, table);
    int rc = probe ? sqlite3_exec (db, probe, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free (probe);
    if (rc == SQLITE_OK)
        return 0;
    char *alter = sqlite3_mprintf ("ALTER TABLE %s ADD COLUMN %s %s", table,
                                   column, declaration);
    rc = alter ? sqlite3_exec (db, alter, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free (alter);
    return rc == SQLITE_OK ? 0 : -1;
}
static int
s_open (sqlite3 **db_p, sqlite3_stmt **stmts, const void *image, size_t size,
        sf_fault_t *fault)
{
    sqlite3 *db = NULL;
    memset (stmts, 0, S_STMT_COUNT * sizeof (sqlite3_stmt *));
    if (sqlite3_open_v2 (":memory:", &db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                             | SQLITE_OPEN_NOMUTEX,
                         NULL)
        != SQLITE_OK)
        goto failed;
    if (image) {
        unsigned char *copy = (unsigned char *) sqlite3_malloc64 (size);
        if (!copy)
            goto failed;
        memcpy (copy, image, size);
        //  SQLite owns COPY from here, and frees it even on failure.
        if (sqlite3_deserialize (
                db, "main", copy, (sqlite3_int64) size, (sqlite3_int64) size,
                SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE)
            != SQLITE_OK)
            goto failed;
        if (sqlite3_exec (
                db, S_REMOVED_TABLE S_FED_TABLE S_BALANCE_TABLES S_ACCESS_TABLE,
                NULL, NULL, NULL)
            != SQLITE_OK)
            goto failed;
    }
    else if (sqlite3_exec (db, s_schema, NULL, NULL, NULL) != SQLITE_OK)
        goto failed;
    //  An image from before grants (issue 22) gains their tables and
    //  column, and one from before fencing by heartbeat its taken_index,
    //  alike on every member that restores it.
    if (image
        && (sqlite3_exec (db, S_GRANT_TABLES, NULL, NULL, NULL) != SQLITE_OK
            || s_ensure_column (db, "entities", "transfer",
                                "INTEGER NOT NULL DEFAULT 0")
            || s_ensure_column (db, "sims", "taken_index",
                                "INTEGER NOT NULL DEFAULT 0")
            || s_ensure_column (db, "entities", "previous", "TEXT")))
        goto failed;
    for (int id = 0; id < S_STMT_COUNT; id++)
        if (sqlite3_prepare_v3 (db, s_stmt_sql [id], -1,
                                SQLITE_PREPARE_PERSISTENT, &stmts [id], NULL)
            != SQLITE_OK)
            goto failed;
    *db_p = db;
    return 0;

failed:
    sf_fault_set (fault, SF_ESTORE, "state machine: %s",
                  db ? sqlite3_errmsg (db) : "out of memory");
    s_close (db, stmts);
    return -1;
}

//  Statement ID, ready to bind (s_bind_text, s_bind_int) and step. Give
//  it back with s_done.
static sqlite3_stmt *
s_stmt (hs_fsm_t *self, s_stmt_id_t id)
{
    sqlite3_stmt *stmt = self->stmts [id];
    //  Every statement was prepared when the database opened.
    assert (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return stmt;
}

//  Bind VALUE (copied; NULL binds NULL) to parameter INDEX of STMT.
static void
s_bind_text (sqlite3_stmt *stmt, int index, const char *value)
{
    sqlite3_bind_text (stmt, index, value, -1, SQLITE_TRANSIENT);
}

//  Bind the integer VALUE to parameter INDEX of STMT.
static void
s_bind_int (sqlite3_stmt *stmt, int index, int64_t value)
{
    sqlite3_bind_int64 (stmt, index, (sqlite3_int64) value);
}

//  Done with STMT from s_stmt: end its run, so it holds nothing open.
static void
s_done (sqlite3_stmt *stmt)
{
    sqlite3_reset (stmt);
}

//  Run statement ID, one without parameters or rows (BEGIN, COMMIT, ...).
static void
s_run (hs_fsm_t *self, s_stmt_id_t id)
{
    sqlite3_stmt *stmt = s_stmt (self, id);
    sqlite3_step (stmt);
    s_done (stmt);
}

static const char *
s_column (sqlite3_stmt *stmt, int column)
{
    return (const char *) sqlite3_column_text (stmt, column);
}

static json_t *
s_text_or_null (sqlite3_stmt *stmt, int column)
{
    const char *text = s_column (stmt, column);
    return text ? json_string (text) : json_null ();
}

//  Column 0 of the first row of statement ID with KEY bound to ?1, as
//  text copied (caller frees), or NULL if no row or a NULL value.
static char *
s_lookup (hs_fsm_t *self, s_stmt_id_t id, const char *key)
{
    sqlite3_stmt *stmt = s_stmt (self, id);
    s_bind_text (stmt, 1, key);
    char *value = NULL;
    if (sqlite3_step (stmt) == SQLITE_ROW && s_column (stmt, 0))
        value = strdup (s_column (stmt, 0));
    s_done (stmt);
    return value;
}

//  An entity as clients see it; OWNER, AUTHORITY and CHECKPOINT may be NULL.
static json_t *
s_entity_pack (const char *path, const char *owner, const char *authority,
               const char *master, const char *rule, int64_t epoch,
               int64_t created_ms, int64_t updated_ms, int64_t revision,
               const char *checkpoint)
{
    json_t *entity = json_pack (
        "{s:s,s:o,s:o,s:s,s:s,s:I,s:I,s:I,s:I}", "path", path, "owner",
        owner ? json_string (owner) : json_null (), "authority",
        authority ? json_string (authority) : json_null (), "master", master,
        "rule", rule, "epoch", (json_int_t) epoch, "created_ms",
        (json_int_t) created_ms, "updated_ms", (json_int_t) updated_ms,
        "revision", (json_int_t) revision);
    if (checkpoint)
        json_object_set_new (entity, "checkpoint", json_string (checkpoint));
    return entity;
}

//  The entity in STMT's row (the columns of S_ENTITY_READ).
static json_t *
s_entity_json (sqlite3_stmt *stmt)
{
    json_t *entity = s_entity_pack (
        s_column (stmt, 0), s_column (stmt, 1), s_column (stmt, 2),
        s_column (stmt, 3), s_column (stmt, 4), sqlite3_column_int64 (stmt, 5),
        sqlite3_column_int64 (stmt, 7), sqlite3_column_int64 (stmt, 8),
        sqlite3_column_int64 (stmt, 9), s_column (stmt, 6));
    json_object_set_new (entity, "previous", s_text_or_null (stmt, 10));
    return entity;
}

static json_t *
s_entity_get (hs_fsm_t *self, const char *path, sf_fault_t *fault)
{
    sqlite3_stmt *stmt = s_stmt (self, S_ENTITY_GET);
    s_bind_text (stmt, 1, path);
    json_t *entity = NULL;
    if (sqlite3_step (stmt) == SQLITE_ROW)
        entity = s_entity_json (stmt);
    else
        sf_fault_set (fault, SF_ENOTFOUND, "no entity at '%s'", path);
    s_done (stmt);
    return entity;
}

//  What an applied command's result carries where it grants PATH: the
//  path itself, a JSON string, which hs_fsm_make_grants replaces by the
//  signed grant where the result leaves this member. Grants are made
//  there, not here: most members hand most results to nobody, and a
//  grant's row lookup and signature cost more than the rest of a grant's
//  command.
static json_t *
s_grant_due (const char *path)
{
    return json_string (path);
}

//  Read the grant of PATH's current epoch into GRANT, unsigned. Returns
//  0, or -1 if PATH has no authority.
static int
s_grant_read (hs_fsm_t *self, const char *path, grant_msg_t *grant)
{
    memset (grant, 0, sizeof *grant);
    sqlite3_stmt *stmt = s_stmt (self, S_ENTITY_GRANT_OF);
    s_bind_text (stmt, 1, path);
    int rc = -1;
    //  The sim's key was checked when it registered.
    if (sqlite3_step (stmt) == SQLITE_ROW && s_column (stmt, 3)
        && strlen (s_column (stmt, 3)) == SF_CERT_KEY_TEXT
        && zmq_z85_decode (grant->key, s_column (stmt, 3))) {
        snprintf (grant->path, sizeof grant->path, "%s", path);
        snprintf (grant->sim, sizeof grant->sim, "%s", s_column (stmt, 0));
        grant->epoch = (uint64_t) sqlite3_column_int64 (stmt, 1);
        grant->transfer = (uint64_t) sqlite3_column_int64 (stmt, 2);
        rc = 0;
    }
    s_done (stmt);
    return rc;
}

//  Sign the COUNT grants at GRANTS with the ring's current key, in trees
//  of at most GRANT_MSG_MAX_LEAVES: one signature per tree (grants.md
//  section 3). Returns 0, or -1 (none signed) if the ring has no key yet.
static int
s_grants_sign (hs_fsm_t *self, grant_msg_t *grants, size_t count)
{
    sqlite3_stmt *stmt = s_stmt (self, S_KEY_CURRENT);
    int rc = -1;
    if (sqlite3_step (stmt) == SQLITE_ROW
        && sqlite3_column_bytes (stmt, 1) == GRANT_MSG_SECRET_SIZE) {
        uint32_t key_id = (uint32_t) sqlite3_column_int64 (stmt, 0);
        const uint8_t *secret = sqlite3_column_blob (stmt, 1);
        rc = 0;
        for (size_t at = 0; at < count && rc == 0; at += GRANT_MSG_MAX_LEAVES) {
            size_t tree = count - at < GRANT_MSG_MAX_LEAVES
                              ? count - at
                              : GRANT_MSG_MAX_LEAVES;
            rc = grant_msg_sign_batch (grants + at, tree, key_id, secret);
        }
        if (rc == 0)
            self->signed_grants += count;
    }
    s_done (stmt);
    return rc;
}

//  PATH's grant, signed alone (for reads): a new reference, or
//  json_null () if PATH has no authority or the ring no key yet.
static json_t *
s_grant_signed (hs_fsm_t *self, const char *path)
{
    grant_msg_t grant;
    json_t *json = s_grant_read (self, path, &grant) == 0
                           && s_grants_sign (self, &grant, 1) == 0
                       ? grant_msg_to_json (&grant)
                       : json_null ();
    sodium_memzero (&grant, sizeof grant);
    return json;
}

uint64_t
hs_fsm_signed_grants (hs_fsm_t *self)
{
    return self->signed_grants;
}

//  Where a result names a grant to make: OBJECT's KEY, or ARRAY's INDEX.
typedef struct {
    json_t *object;
    const char *key;
    json_t *array;
    size_t index;
} s_grant_slot_t;

static json_t *
s_grant_slot_value (const s_grant_slot_t *slot)
{
    return slot->object ? json_object_get (slot->object, slot->key)
                        : json_array_get (slot->array, slot->index);
}

static void
s_grant_slot_set (const s_grant_slot_t *slot, json_t *value)
{
    if (slot->object)
        json_object_set_new (slot->object, slot->key, value);
    else
        json_array_set_new (slot->array, slot->index, value);
}

//  Add the slot at OBJECT's KEY or ARRAY's INDEX to SLOTS (COUNT so far,
//  room for all) if it still has a grant to make: the path granted
//  (s_grant_due's) or, when SIGNING, the grant unsigned.
static void
s_grant_slot_add (s_grant_slot_t *slots, size_t *count, bool signing,
                  json_t *object, const char *key, json_t *array, size_t index)
{
    slots [*count] = (s_grant_slot_t){object, key, array, index};
    json_t *value = s_grant_slot_value (&slots [*count]);
    if (json_is_string (value)
        || (signing && json_is_object (value)
            && !json_object_get (value, "signature")))
        (*count)++;
}

void
hs_fsm_make_grants (hs_fsm_t *self, json_t *result, bool sign)
{
    json_t *grants = json_object_get (result, "grants");
    json_t *results = json_object_get (result, "results");
    size_t room = 1 + json_array_size (grants) + json_array_size (results);
    s_grant_slot_t *slots = malloc (room * sizeof *slots);
    grant_msg_t *made = malloc (room * sizeof *made);
    bool *held = malloc (room * sizeof *held);
    size_t count = 0, index;
    json_t *item;
    if (slots && made && held) {
        s_grant_slot_add (slots, &count, sign, result, "grant", NULL, 0);
        json_array_foreach (grants, index, item)
            s_grant_slot_add (slots, &count, sign, NULL, NULL, grants, index);
        json_array_foreach (results, index, item)
            s_grant_slot_add (slots, &count, sign, item, "grant", NULL, 0);
    }
    //  Signed: all the result's grants in as few signatures as trees
    //  allow. A path without an authority (or, signing, a ring without a
    //  key) gets null.
    size_t held_count = 0;
    for (size_t at = 0; at < count; at++) {
        json_t *value = s_grant_slot_value (&slots [at]);
        held [at] = json_is_string (value)
                        ? s_grant_read (self, json_string_value (value),
                                        &made [held_count])
                              == 0
                        : grant_msg_statement_from_json (&made [held_count],
                                                         value, NULL)
                              == 0;
        held_count += held [at];
    }
    bool signed_all = sign && s_grants_sign (self, made, held_count) == 0;
    for (size_t at = 0, next = 0; at < count; at++) {
        json_t *grant = json_null ();
        if (held [at] && signed_all)
            grant = grant_msg_to_json (&made [next]);
        else if (held [at] && !sign)
            grant = grant_msg_statement_to_json (&made [next]);
        next += held [at];
        s_grant_slot_set (&slots [at], grant);
    }
    if (made)
        sodium_memzero (made, room * sizeof *made);
    free (held);
    free (made);
    free (slots);
}

json_t *
hs_fsm_lookup (hs_fsm_t *self, const char *kind, const char *name,
               sf_fault_t *fault)
{
    json_t *entry = NULL;
    if (streq (kind, "player")) {
        char *key = s_lookup (self, S_PLAYER_KEY, name);
        if (key)
            entry = json_pack ("{s:s,s:s,s:s}", "name", name, "kind", kind,
                               "key", key);
        free (key);
    }
    else if (streq (kind, "sim")) {
        sqlite3_stmt *stmt = s_stmt (self, S_SIM_LOOKUP);
        s_bind_text (stmt, 1, name);
        if (sqlite3_step (stmt) == SQLITE_ROW) {
            entry = json_pack ("{s:s,s:s,s:s}", "name", name, "kind", kind,
                               "key", s_column (stmt, 0));
            if (s_column (stmt, 1))
                json_object_set_new (entry, "handoff",
                                     json_string (s_column (stmt, 1)));
            if (s_column (stmt, 2))
                json_object_set_new (entry, "state",
                                     json_string (s_column (stmt, 2)));
            if (s_column (stmt, 3))
                json_object_set_new (
                    entry, "heartbeat_ms",
                    json_integer (sqlite3_column_int64 (stmt, 3)));
        }
        s_done (stmt);
    }
    else {
        sf_fault_set (fault, SF_EINVAL,
                      "field 'kind' must be \"sim\" or \"player\"");
        return NULL;
    }
    if (!entry)
        sf_fault_set (fault, SF_ENOTFOUND, "no %s '%s'", kind, name);
    return entry;
}

bool
hs_fsm_has_ring_key (hs_fsm_t *self)
{
    sqlite3_stmt *stmt = s_stmt (self, S_KEY_CURRENT);
    bool found = sqlite3_step (stmt) == SQLITE_ROW;
    s_done (stmt);
    return found;
}

json_t *
hs_fsm_ring_keys (hs_fsm_t *self)
{
    json_t *keys = json_array ();
    sqlite3_stmt *stmt = s_stmt (self, S_KEY_LIST);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (
            keys,
            json_pack ("{s:I,s:s,s:o}", "key_id",
                       (json_int_t) sqlite3_column_int64 (stmt, 0), "public",
                       s_column (stmt, 1), "retires_ms",
                       sqlite3_column_type (stmt, 2) == SQLITE_NULL
                           ? json_null ()
                           : json_integer (
                               (json_int_t) sqlite3_column_int64 (stmt, 2))));
    s_done (stmt);
    return keys;
}

//  Step STMT (bound) to its end. Returns 0, or -1 with FAULT.
static int
s_exec_stmt (hs_fsm_t *self, sqlite3_stmt *stmt, sf_fault_t *fault)
{
    int rc = sqlite3_step (stmt) == SQLITE_DONE ? 0 : -1;
    if (rc)
        sf_fault_set (fault, SF_ESTORE, "state machine: %s",
                      sqlite3_errmsg (self->db));
    s_done (stmt);
    return rc;
}

//  --------------------------------------------------------------------------
//  Applying commands

typedef struct {
    hs_fsm_t *self;
    raft_index index;
    const ring_cmd_t *cmd;
    const char *principal;  //  Z85
    const s_args_t *a;
    sf_fault_t *fault;
    bool would_ask;  //  a batch item refused because its rule asks
} s_apply_t;

//  Bind the command's time and log index, which every change records
//  (updated_ms, revision), to parameters MS and REVISION of STMT.
static void
s_bind_stamp (const s_apply_t *ctx, sqlite3_stmt *stmt, int ms, int revision)
{
    s_bind_int (stmt, ms, (int64_t) ctx->cmd->time_ms);
    s_bind_int (stmt, revision, (int64_t) ctx->index);
}

//  Admit new sim NAME by the join token in CTX's arguments, consuming
//  it. Returns 0, or -1 with FAULT saying what is wrong with the token.
static int
s_admit (s_apply_t *ctx, const char *name)
{
    if (!ctx->a->token)
        return sf_fault_set (
            ctx->fault, SF_EUNAUTHORIZED,
            "sim '%s' is not registered: a new sim needs a join token from "
            "an administrator (fabricctl token create --sim %s)",
            name, name);
    uint8_t token [32], hash [32];
    char hash_text [41];
    zmq_z85_decode (token, ctx->a->token);  //  checked by s_parse
    crypto_generichash (hash, sizeof hash, token, sizeof token, NULL, 0);
    zmq_z85_encode (hash_text, hash, sizeof hash);
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_TOKEN_GET);
    s_bind_text (stmt, 1, hash_text);
    const char *problem = "is unknown";
    if (sqlite3_step (stmt) == SQLITE_ROW) {
        if (!streq (s_column (stmt, 0), name))
            problem = "is for another sim name";
        else if (sqlite3_column_type (stmt, 2) != SQLITE_NULL)
            problem = "was used already";
        else if ((uint64_t) sqlite3_column_int64 (stmt, 1) < ctx->cmd->time_ms)
            problem = "has expired";
        else
            problem = NULL;
    }
    s_done (stmt);
    if (problem)
        return sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                             "the join token for sim '%s' %s", name, problem);
    stmt = s_stmt (ctx->self, S_TOKEN_USE);
    s_bind_text (stmt, 1, hash_text);
    s_bind_int (stmt, 2, (int64_t) ctx->cmd->time_ms);
    return s_exec_stmt (ctx->self, stmt, ctx->fault);
}

//  Register (or re-key) player NAME, or sim NAME if SIM.
static json_t *
s_register (s_apply_t *ctx, bool sim, const char *name)
{
    const char *key = ctx->a->key ? ctx->a->key : ctx->principal;
    char *current = s_lookup (ctx->self, sim ? S_SIM_KEY : S_PLAYER_KEY, name);
    //  Anyone may register their own key; re-keying takes the current key
    //  or an admin.
    bool allowed = ctx->cmd->admin
                   || (current ? strcmp (current, ctx->principal) == 0
                               : strcmp (key, ctx->principal) == 0);
    bool new_sim = sim && !current;
    free (current);
    if (!allowed) {
        sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                      "%s '%s' is registered to another key, or the key "
                      "given is not the caller's",
                      sim ? "sim" : "player", name);
        return NULL;
    }
    //  A new sim name is admitted by an administrator: its own call, or
    //  a join token it issued (grants.md section 6).
    if (new_sim && !ctx->cmd->admin && !ctx->a->open && s_admit (ctx, name))
        return NULL;
    sqlite3_stmt *stmt;
    if (!sim) {
        stmt = s_stmt (ctx->self, S_PLAYER_PUT);
        s_bind_text (stmt, 1, name);
        s_bind_text (stmt, 2, key);
        s_bind_int (stmt, 3, (int64_t) ctx->cmd->time_ms);
        if (s_exec_stmt (ctx->self, stmt, ctx->fault))
            return NULL;
        return json_pack ("{s:s,s:s}", "player", name, "key", key);
    }
    stmt = s_stmt (ctx->self, S_SIM_PUT);
    s_bind_text (stmt, 1, name);
    s_bind_text (stmt, 2, key);
    s_bind_text (stmt, 3, ctx->a->handoff);
    s_bind_text (stmt, 4, ctx->a->state);
    s_bind_int (stmt, 5, (int64_t) ctx->cmd->time_ms);
    s_bind_text (stmt, 6, ctx->a->api);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack (
        "{s:s,s:s,s:o,s:o,s:o,s:I}", "sim", name, "key", key, "handoff",
        ctx->a->handoff ? json_string (ctx->a->handoff) : json_null (), "state",
        ctx->a->state ? json_string (ctx->a->state) : json_null (), "api",
        ctx->a->api ? json_string (ctx->a->api) : json_null (), "registered_ms",
        (json_int_t) ctx->cmd->time_ms);
}

//  Record a ring member's name, raft endpoint, API endpoint and key; the
//  same member again, exactly, changes nothing (no event is due). A name
//  recorded for another raft id, or a raft id recorded at another raft
//  address, is refused: replacing that row would leave the configuration
//  and the table disagreeing about a member.
static json_t *
s_member_add (s_apply_t *ctx)
{
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_MEMBER_NAMED);
    s_bind_text (stmt, 1, ctx->a->name);
    int64_t named = sqlite3_step (stmt) == SQLITE_ROW
                        ? sqlite3_column_int64 (stmt, 0)
                        : ctx->a->raft_id;
    s_done (stmt);
    if (named != ctx->a->raft_id) {
        sf_fault_set (ctx->fault, SF_ECONFLICT,
                      "name '%s' is raft id %lld's; choose another name, or "
                      "cluster.remove raft id %lld first",
                      ctx->a->name, (long long) named, (long long) named);
        return NULL;
    }
    stmt = s_stmt (ctx->self, S_MEMBER_RAFT);
    s_bind_int (stmt, 1, ctx->a->raft_id);
    char *raft = sqlite3_step (stmt) == SQLITE_ROW && s_column (stmt, 0)
                     ? strdup (s_column (stmt, 0))
                     : NULL;
    s_done (stmt);
    if (raft && strcmp (raft, ctx->a->raft) != 0) {
        sf_fault_set (ctx->fault, SF_ECONFLICT,
                      "raft id %lld is a member at %s; to move it to %s, "
                      "cluster.remove it, then cluster.add it again",
                      (long long) ctx->a->raft_id, raft, ctx->a->raft);
        free (raft);
        return NULL;
    }
    free (raft);
    //  Members know each other by key: one shared by two raft ids would
    //  let one speak as the other.
    stmt = s_stmt (ctx->self, S_MEMBER_KEYED);
    s_bind_text (stmt, 1, ctx->a->key);
    s_bind_int (stmt, 2, ctx->a->raft_id);
    int64_t keyed =
        sqlite3_step (stmt) == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
    s_done (stmt);
    if (keyed) {
        sf_fault_set (ctx->fault, SF_ECONFLICT,
                      "key %s is raft id %lld's; each member needs a key of "
                      "its own (make one with fabricctl keygen)",
                      ctx->a->key, (long long) keyed);
        return NULL;
    }
    stmt = s_stmt (ctx->self, S_REMOVED_DROP);
    s_bind_int (stmt, 1, ctx->a->raft_id);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    stmt = s_stmt (ctx->self, S_MEMBER_PUT);
    s_bind_text (stmt, 1, ctx->a->name);
    s_bind_int (stmt, 2, ctx->a->raft_id);
    s_bind_text (stmt, 3, ctx->a->raft);
    s_bind_text (stmt, 4, ctx->a->api);
    s_bind_text (stmt, 5, ctx->a->key);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack ("{s:s,s:I,s:s,s:o,s:s}", "name", ctx->a->name, "raft_id",
                      (json_int_t) ctx->a->raft_id, "raft", ctx->a->raft, "api",
                      ctx->a->api ? json_string (ctx->a->api) : json_null (),
                      "key", ctx->a->key);
}

static json_t *
s_heartbeat (s_apply_t *ctx)
{
    char *load = ctx->a->load
                     ? json_dumps (ctx->a->load, JSON_COMPACT | JSON_SORT_KEYS)
                     : NULL;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_SIM_BEAT);
    s_bind_text (stmt, 1, ctx->a->sim);
    s_bind_int (stmt, 2, (int64_t) ctx->cmd->time_ms);
    s_bind_text (stmt, 3, load);
    free (load);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    sqlite3_stmt *row = s_stmt (ctx->self, S_SIM_HEARTBEAT);
    s_bind_text (row, 1, ctx->a->sim);
    int64_t taken =
        sqlite3_step (row) == SQLITE_ROW ? sqlite3_column_int64 (row, 1) : 0;
    s_done (row);
    return json_pack ("{s:s,s:I,s:I}", "sim", ctx->a->sim, "heartbeat_ms",
                      (json_int_t) ctx->cmd->time_ms, "taken_index",
                      (json_int_t) taken);
}

//  Sim SIM, or the authority of PATH (one of them NULL), loses an entity
//  in this command: its next heartbeat reads what it holds again.
static int
s_taken (s_apply_t *ctx, const char *sim, const char *path)
{
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_SIM_TAKEN);
    s_bind_text (stmt, 1, sim);
    s_bind_text (stmt, 2, path);
    s_bind_int (stmt, 3, (int64_t) ctx->index);
    return s_exec_stmt (ctx->self, stmt, ctx->fault);
}

static int s_entity_insert (s_apply_t *ctx);

//  True if every entity of the import in CTX exists exactly as the import
//  would have made it (same authority, master, checkpoint, first epoch):
//  the same batch sent again after an answer that left its fate open.
static bool
s_imported_already (s_apply_t *ctx)
{
    const char *first = json_string_value (
        json_object_get (json_array_get (ctx->a->entities, 0), "path"));
    char *exists = s_lookup (ctx->self, S_ENTITY_MASTER, first);
    if (!exists)
        return false;
    free (exists);
    size_t index;
    const json_t *entity;
    json_array_foreach (ctx->a->entities, index, entity)
    {
        sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_IMPORTED);
        s_bind_text (stmt, 1,
                     json_string_value (json_object_get (entity, "path")));
        s_bind_text (stmt, 2, ctx->a->authority);
        s_bind_text (stmt, 3, ctx->principal);
        s_bind_text (
            stmt, 4,
            json_string_value (json_object_get (entity, "checkpoint")));
        s_bind_int (stmt, 5, ctx->a->authority ? 1 : 0);
        bool same = sqlite3_step (stmt) == SQLITE_ROW;
        s_done (stmt);
        if (!same)
            return false;
    }
    return true;
}

//  entity.import: every entity of the batch created as entity.create
//  would, in the command's one transaction: all of them or none. The same
//  batch again is answered as done ("again": true), so a client may send
//  it again when an answer was lost.
static json_t *
s_entity_import (s_apply_t *ctx)
{
    bool again = s_imported_already (ctx);
    s_args_t one = *ctx->a;
    s_apply_t each = *ctx;
    each.a = &one;
    size_t index;
    const json_t *entity;
    json_array_foreach (ctx->a->entities, index, entity)
    {
        one.path = json_string_value (json_object_get (entity, "path"));
        one.rule = json_string_value (json_object_get (entity, "rule"));
        one.owner = json_string_value (json_object_get (entity, "owner"));
        one.checkpoint =
            json_string_value (json_object_get (entity, "checkpoint"));
        if (!one.rule)
            one.rule = "allow";
        if (!again && s_entity_insert (&each))
            return NULL;
    }
    const json_t *first = json_array_get (ctx->a->entities, 0);
    const json_t *last = json_array_get (ctx->a->entities, index - 1);
    json_t *result = json_pack (
        "{s:I,s:o,s:s,s:s,s:I,s:b}", "imported", (json_int_t) index,
        "authority",
        ctx->a->authority ? json_string (ctx->a->authority) : json_null (),
        "first", json_string_value (json_object_get (first, "path")), "last",
        json_string_value (json_object_get (last, "path")), "epoch",
        (json_int_t) (ctx->a->authority ? 1 : 0), "again", again);
    //  The authority's grants, in the batch's order (grants.md section 3).
    if (result && ctx->a->authority) {
        json_t *grants = json_array ();
        json_array_foreach (ctx->a->entities, index, entity)
            json_array_append_new (grants,
                                   s_grant_due (json_string_value (
                                       json_object_get (entity, "path"))));
        json_object_set_new (result, "grants", grants);
    }
    return result;
}


//  entity.checkpoint: SIM saves the current state of entities it is the
//  authority of, each at the epoch it holds it at: a former authority's
//  late checkpoint (another epoch, or no longer its own) is skipped, so
//  the fencing holds for checkpoints too.
static json_t *
s_entity_checkpoint (s_apply_t *ctx)
{
    json_int_t saved = 0;
    json_t *stale = json_array ();
    size_t index;
    const json_t *entity;
    json_array_foreach (ctx->a->entities, index, entity)
    {
        const char *path = json_string_value (json_object_get (entity, "path"));
        sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_CHECKPOINT);
        s_bind_text (stmt, 1, path);
        s_bind_text (
            stmt, 2,
            json_string_value (json_object_get (entity, "checkpoint")));
        s_bind_text (stmt, 3, ctx->a->sim);
        s_bind_int (stmt, 4,
                    json_integer_value (json_object_get (entity, "epoch")));
        s_bind_stamp (ctx, stmt, 5, 6);
        if (s_exec_stmt (ctx->self, stmt, ctx->fault)) {
            json_decref (stale);
            return NULL;
        }
        if (sqlite3_changes (ctx->self->db) == 1)
            saved++;
        else
            json_array_append_new (stale, json_string (path));
    }
    return json_pack ("{s:s,s:I,s:o}", "sim", ctx->a->sim, "saved", saved,
                      "stale", stale);
}

//  Whether the instance that sent this command (its leader's word,
//  "instance") speaks for the foreign sim it names: only for its own.
//  Returns 0, or -1 with FAULT (unauthorized).
static int
s_vouched (s_apply_t *ctx)
{
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    sf_name_split (ctx->a->sim, local, instance);
    if (ctx->a->instance && streq (instance, ctx->a->instance))
        return 0;
    return sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                         "instance '%s' speaks only for its own sims, not '%s'",
                         ctx->a->instance ? ctx->a->instance : "?",
                         ctx->a->sim);
}

//  fed.checkpoint: a foreign authority's states, as its instance vouched
//  for them: saved as entity.checkpoint saves a local sim's.
static json_t *
s_fed_checkpoint (s_apply_t *ctx)
{
    if (s_vouched (ctx))
        return NULL;
    return s_entity_checkpoint (ctx);
}

static json_t *s_authority_release (s_apply_t *ctx);

//  fed.release: a foreign authority gives its entity up, as its instance
//  vouched: orphaned as authority.release orphans a local sim's.
static json_t *
s_fed_release (s_apply_t *ctx)
{
    if (s_vouched (ctx))
        return NULL;
    return s_authority_release (ctx);
}

//  The new entity as s_entity_json would read it back: built from what was
//  inserted, so a create costs one statement.
static json_t *
s_entity_create (s_apply_t *ctx)
{
    if (s_entity_insert (ctx))
        return NULL;
    const s_args_t *a = ctx->a;
    int64_t ms = (int64_t) ctx->cmd->time_ms;
    json_t *entity = s_entity_pack (
        a->path, a->owner, a->authority, ctx->principal, a->rule,
        a->authority ? 1 : 0, ms, ms, (int64_t) ctx->index, a->checkpoint);
    if (entity && a->authority)
        json_object_set_new (entity, "grant", s_grant_due (a->path));
    return entity;
}

//  Insert the entity of CTX's arguments. Returns 0, or -1 with FAULT
//  (exists, or an unknown owner or authority).
static int
s_entity_insert (s_apply_t *ctx)
{
    const s_args_t *a = ctx->a;
    if (a->owner) {
        char *found = s_lookup (ctx->self, S_PLAYER_KEY, a->owner);
        if (!found) {
            sf_fault_set (ctx->fault, SF_ENOTFOUND, "no player '%s'", a->owner);
            return -1;
        }
        free (found);
    }
    if (a->authority) {
        char *key = s_lookup (ctx->self, S_SIM_KEY, a->authority);
        if (!key) {
            sf_fault_set (ctx->fault, SF_ENOTFOUND, "no sim '%s'",
                          a->authority);
            return -1;
        }
        free (key);
    }
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_INSERT);
    s_bind_text (stmt, 1, a->path);
    s_bind_text (stmt, 2, a->owner);
    s_bind_text (stmt, 3, a->authority);
    s_bind_text (stmt, 4, ctx->principal);
    s_bind_text (stmt, 5, a->rule);
    //  An entity with an authority starts at epoch 1; orphans at 0.
    s_bind_int (stmt, 6, a->authority ? 1 : 0);
    s_bind_text (stmt, 7, a->checkpoint);
    s_bind_stamp (ctx, stmt, 8, 9);
    //  The primary key refuses a second entity at a path: no lookup first.
    int rc = s_exec_stmt (ctx->self, stmt, ctx->fault);
    if (rc
        && sqlite3_extended_errcode (ctx->self->db)
               == SQLITE_CONSTRAINT_PRIMARYKEY)
        sf_fault_set (ctx->fault, SF_EEXISTS, "an entity exists at '%s'",
                      a->path);
    return rc;
}

//  The principal is the master of the entity at the command's path, or
//  an administrator. Returns 0, or -1 with FAULT (not_found,
//  unauthorized).
static int
s_is_master (s_apply_t *ctx, const char *op)
{
    char *master = s_lookup (ctx->self, S_ENTITY_MASTER, ctx->a->path);
    if (!master)
        return sf_fault_set (ctx->fault, SF_ENOTFOUND, "no entity at '%s'",
                             ctx->a->path);
    bool allowed = ctx->cmd->admin || strcmp (master, ctx->principal) == 0;
    free (master);
    if (!allowed)
        return sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                             "only the master of '%s' may call %s",
                             ctx->a->path, op);
    return 0;
}

static json_t *
s_entity_set_rule (s_apply_t *ctx)
{
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_SET_RULE);
    s_bind_text (stmt, 1, ctx->a->path);
    s_bind_text (stmt, 2, ctx->a->rule);
    s_bind_stamp (ctx, stmt, 3, 4);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return s_entity_get (ctx->self, ctx->a->path, ctx->fault);
}

static json_t *
s_entity_delete (s_apply_t *ctx)
{
    if (s_taken (ctx, NULL, ctx->a->path))
        return NULL;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_DELETE);
    s_bind_text (stmt, 1, ctx->a->path);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack ("{s:s,s:b}", "path", ctx->a->path, "deleted", 1);
}

//  The principal may act for sim NAME: it is the sim's registered key, or
//  an administrator. Returns 0, or -1 with FAULT (not_found, unauthorized).
static int
s_acts_for_sim (s_apply_t *ctx, const char *name)
{
    char *key = s_lookup (ctx->self, S_SIM_KEY, name);
    if (!key)
        return sf_fault_set (ctx->fault, SF_ENOTFOUND, "no sim '%s'", name);
    bool allowed = ctx->cmd->admin || strcmp (key, ctx->principal) == 0;
    free (key);
    if (!allowed)
        return sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                             "a sim acts only for itself: the caller is not "
                             "sim '%s'",
                             name);
    return 0;
}

//  The ask rule: record a transfer of PATH, at EPOCH, for the current
//  authority FROM to answer before its deadline. The result says it is
//  pending.
static json_t *
s_ask (s_apply_t *ctx, const char *path, const char *from, int64_t epoch)
{
    uint64_t deadline = ctx->cmd->time_ms + (uint64_t) ctx->a->timeout_ms;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_TRANSFER_INSERT);
    s_bind_int (stmt, 1, (int64_t) ctx->index);
    s_bind_text (stmt, 2, path);
    s_bind_text (stmt, 3, from);
    s_bind_text (stmt, 4, ctx->a->sim);
    s_bind_text (stmt, 5, ctx->a->player);
    s_bind_int (stmt, 6, epoch);
    s_bind_int (stmt, 7, (int64_t) ctx->cmd->time_ms);
    s_bind_int (stmt, 8, (int64_t) deadline);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    json_t *result = s_entity_get (ctx->self, path, ctx->fault);
    if (result) {
        json_object_set_new (result, "pending", json_true ());
        json_object_set_new (result, "transfer",
                             json_integer ((json_int_t) ctx->index));
        json_object_set_new (result, "to", json_string (ctx->a->sim));
        json_object_set_new (result, "deadline_ms",
                             json_integer ((json_int_t) deadline));
    }
    return result;
}

//  Make SIM the authority of PATH at the next epoch by TRANSFER, PLAYER
//  (may be NULL) the owner. Returns 0 or -1 with FAULT.
static int
s_grant (s_apply_t *ctx, const char *path, const char *sim, const char *player,
         int64_t transfer)
{
    if (s_taken (ctx, NULL, path))
        return -1;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_GRANT);
    s_bind_text (stmt, 1, path);
    s_bind_text (stmt, 2, sim);
    s_bind_stamp (ctx, stmt, 3, 4);
    s_bind_text (stmt, 5, player);
    s_bind_int (stmt, 6, transfer);
    return s_exec_stmt (ctx->self, stmt, ctx->fault);
}

//  A transfer ends without a grant: REASON says why.
static json_t *
s_transfer_refused (const char *path, int64_t transfer, const char *reason)
{
    return json_pack ("{s:s,s:I,s:b,s:s}", "path", path, "transfer",
                      (json_int_t) transfer, "granted", 0, "reason", reason);
}

static void s_foreign_contact (hs_fsm_t *self, json_t *result);

//  How long a decided fed.claim is remembered (federation.md section 6).
#define S_FED_CLAIM_KEEP_MS (10 * 60 * 1000)

//  The ask of TRANSFER was decided as RESULT (a grant, or a refusal): a
//  foreign claim waiting on it is decided too, so the same request again
//  is answered as it was (fed.claim). Returns 0, or -1 with FAULT.
static int
s_fed_decided (s_apply_t *ctx, int64_t transfer, const json_t *result)
{
    json_t *kept = json_deep_copy (result);
    json_object_del (kept, "grant");
    char *text = json_dumps (kept, JSON_COMPACT);
    json_decref (kept);
    if (!text)
        return sf_fault_set (ctx->fault, SF_EINTERNAL, "out of memory");
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_FED_CLAIM_DECIDE);
    s_bind_int (stmt, 1, transfer);
    s_bind_text (stmt, 2, text);
    s_bind_int (stmt, 3,
                json_integer_value (json_object_get (result, "epoch")));
    free (text);
    return s_exec_stmt (ctx->self, stmt, ctx->fault);
}

//  authority.answer: the sim asked (the transfer's from_sim) approves or
//  denies; a transfer past its deadline, or overtaken by another grant,
//  is refused whatever the answer.
static json_t *
s_authority_answer (s_apply_t *ctx)
{
    int64_t id = ctx->a->transfer;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_TRANSFER_GET);
    s_bind_int (stmt, 1, id);
    if (sqlite3_step (stmt) != SQLITE_ROW) {
        s_done (stmt);
        sf_fault_set (ctx->fault, SF_ENOTFOUND, "no pending transfer %" PRId64,
                      id);
        return NULL;
    }
    char *path = strdup (s_column (stmt, 0));
    char *from = s_column (stmt, 1) ? strdup (s_column (stmt, 1)) : NULL;
    char *to = strdup (s_column (stmt, 2));
    char *player = s_column (stmt, 3) ? strdup (s_column (stmt, 3)) : NULL;
    int64_t asked_epoch = sqlite3_column_int64 (stmt, 4);
    uint64_t deadline = (uint64_t) sqlite3_column_int64 (stmt, 5);
    int64_t epoch = sqlite3_column_int64 (stmt, 6);
    bool still_from =
        s_column (stmt, 7) && from && strcmp (s_column (stmt, 7), from) == 0;
    s_done (stmt);
    json_t *result = NULL;
    if (!from || strcmp (from, ctx->a->sim) != 0)
        sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                      "only sim '%s', the authority asked, answers transfer "
                      "%" PRId64,
                      from ? from : "(none)", id);
    else {
        sqlite3_stmt *drop = s_stmt (ctx->self, S_TRANSFER_DELETE);
        s_bind_int (drop, 1, id);
        if (s_exec_stmt (ctx->self, drop, ctx->fault))
            goto done;
        if (ctx->cmd->time_ms > deadline)
            result = s_transfer_refused (path, ctx->a->transfer, "timeout");
        else if (epoch != asked_epoch || !still_from)
            result = s_transfer_refused (path, ctx->a->transfer, "stale");
        else if (!ctx->a->approve)
            result = s_transfer_refused (path, ctx->a->transfer, "denied");
        else if (s_grant (ctx, path, to, player, ctx->a->transfer) == 0) {
            result = s_entity_get (ctx->self, path, ctx->fault);
            if (result) {
                json_object_set_new (result, "grant", s_grant_due (path));
                json_object_set_new (result, "granted", json_true ());
                json_object_set_new (result, "previous", json_string (from));
                json_object_set_new (
                    result, "transfer",
                    json_integer ((json_int_t) ctx->a->transfer));
                s_foreign_contact (ctx->self, result);
            }
        }
        if (result && s_fed_decided (ctx, ctx->a->transfer, result)) {
            json_decref (result);
            result = NULL;
        }
    }
done:
    free (path);
    free (from);
    free (to);
    free (player);
    return result;
}

//  authority.expire: the ring's own, for a transfer past its deadline.
static json_t *
s_authority_expire (s_apply_t *ctx)
{
    int64_t id = ctx->a->transfer;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_TRANSFER_DEADLINE);
    s_bind_int (stmt, 1, id);
    char *path = NULL;
    uint64_t deadline = 0;
    if (sqlite3_step (stmt) == SQLITE_ROW) {
        path = strdup (s_column (stmt, 0));
        deadline = (uint64_t) sqlite3_column_int64 (stmt, 1);
    }
    s_done (stmt);
    json_t *result = NULL;
    if (!path)
        sf_fault_set (ctx->fault, SF_ENOTFOUND, "no pending transfer %" PRId64,
                      id);
    else if (deadline >= ctx->cmd->time_ms)
        sf_fault_set (ctx->fault, SF_ECONFLICT,
                      "transfer %" PRId64 " is still within its deadline", id);
    else {
        sqlite3_stmt *drop = s_stmt (ctx->self, S_TRANSFER_DELETE);
        s_bind_int (drop, 1, id);
        if (s_exec_stmt (ctx->self, drop, ctx->fault) == 0)
            result = s_transfer_refused (path, id, "timeout");
        if (result && s_fed_decided (ctx, id, result)) {
            json_decref (result);
            result = NULL;
        }
    }
    free (path);
    return result;
}

zlist_t *
hs_fsm_expired_transfers (hs_fsm_t *self, uint64_t now_ms)
{
    zlist_t *ids = zlist_new ();
    zlist_autofree (ids);
    sqlite3_stmt *stmt = s_stmt (self, S_TRANSFERS_LATE);
    s_bind_int (stmt, 1, (int64_t) now_ms);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        zlist_append (ids, (void *) s_column (stmt, 0));
    s_done (stmt);
    return ids;
}

//  Whether SIM is draining (load.md section 7).
static bool
s_draining (hs_fsm_t *self, const char *sim)
{
    sqlite3_stmt *stmt = s_stmt (self, S_DRAIN_GET);
    s_bind_text (stmt, 1, sim);
    bool draining = sqlite3_step (stmt) == SQLITE_ROW;
    s_done (stmt);
    return draining;
}

//  Refuse a grant to SIM while it drains. Returns 0, or -1 with FAULT.
static int
s_not_draining (s_apply_t *ctx, const char *sim)
{
    if (!s_draining (ctx->self, sim))
        return 0;
    return sf_fault_set (ctx->fault, SF_EUNAVAILABLE,
                         "sim '%s' is draining: it takes no entity", sim);
}

//  authority.request (homeserver-api.md) of one PATH: grant SIM its
//  authority under its rule, with the next epoch; a request by the master
//  (the caller, or the player of PLAYER_KEY it acts for) is always granted.
//  Under ask, opens a pending transfer if MAY_ASK, else is denied. The
//  grant is the whole entity, or if BRIEF what a sim needs to take it over.
static json_t *
s_request_one (s_apply_t *ctx, const char *path, const char *player_key,
               bool may_ask, bool brief)
{
    //  One read of the row: what decides, and what a brief grant tells.
    sqlite3_stmt *row = s_stmt (ctx->self, S_ENTITY_DECIDE);
    s_bind_text (row, 1, path);
    char *master = NULL, *rule = NULL, *authority = NULL, *checkpoint = NULL;
    int64_t epoch = 0;
    if (sqlite3_step (row) == SQLITE_ROW) {
        master = strdup (s_column (row, 0));
        rule = strdup (s_column (row, 1));
        authority = s_column (row, 2) ? strdup (s_column (row, 2)) : NULL;
        epoch = sqlite3_column_int64 (row, 3);
        //  Only where no other sim hands the state over.
        if (brief && s_column (row, 4)
            && (!authority || strcmp (authority, ctx->a->sim) == 0))
            checkpoint = strdup (s_column (row, 4));
    }
    s_done (row);
    if (!master) {
        sf_fault_set (ctx->fault, SF_ENOTFOUND, "no entity at '%s'", path);
        return NULL;
    }
    bool by_master = ctx->cmd->admin || strcmp (master, ctx->principal) == 0
                     || (player_key && strcmp (master, player_key) == 0);
    free (master);
    bool already = authority && strcmp (authority, ctx->a->sim) == 0;
    //  An orphan has no sim to ask: ask grants it like allow.
    bool ask = rule && strcmp (rule, "ask") == 0;
    bool granted = by_master || already || (rule && strcmp (rule, "allow") == 0)
                   || (ask && !authority);
    free (rule);
    json_t *result = NULL;
    ctx->would_ask = !granted && ask && !may_ask;
    if (!granted && ask && may_ask)
        result = s_ask (ctx, path, authority, epoch);
    else if (ctx->would_ask)
        sf_fault_set (ctx->fault, SF_EDENIED,
                      "the rule of '%s' is ask: request it on its own to ask "
                      "its authority",
                      path);
    else if (!granted)
        sf_fault_set (ctx->fault, SF_EDENIED,
                      "the rule of '%s' is deny: only its master may take it",
                      path);
    //  Every grant is a new epoch: the fencing token receivers check. A
    //  sim granted by an administrator did not ask: its heartbeat's
    //  taken_index tells it to look, should the event not reach it.
    else if (already
             || (s_grant (ctx, path, ctx->a->sim, ctx->a->player,
                          (int64_t) ctx->index)
                     == 0
                 && (!ctx->cmd->admin
                     || s_taken (ctx, ctx->a->sim, NULL) == 0))) {
        //  Brief: the row as the grant left it, without reading it again.
        result = brief ? json_pack ("{s:s,s:s,s:I}", "path", path, "authority",
                                    ctx->a->sim, "epoch",
                                    (json_int_t) (already ? epoch : epoch + 1))
                       : s_entity_get (ctx->self, path, ctx->fault);
        if (result) {
            json_object_set_new (result, "granted", json_true ());
            json_object_set_new (result, "previous",
                                 authority ? json_string (authority)
                                           : json_null ());
            //  The grant's id for hop accounting (trace.md): this
            //  command's index, as for an ask.
            if (!already)
                json_object_set_new (result, "transfer",
                                     json_integer ((json_int_t) ctx->index));
            if (checkpoint)
                json_object_set_new (result, "checkpoint",
                                     json_string (checkpoint));
            json_object_set_new (result, "grant", s_grant_due (path));
        }
        else
            //  The row was just read and written: only storage fails here.
            sf_fault_set (ctx->fault, SF_ESTORE,
                          "state machine: '%s' unreadable after its grant",
                          path);
    }
    free (authority);
    free (checkpoint);
    return result;
}

//  The batch form: every path decided on its own, as a single request
//  that may not ask would be; the items' outcomes in order. A batch is
//  one transfer (one command, one event) of all it grants. A refusal
//  writes nothing, so items need no savepoint; a storage failure, which
//  is no item's outcome, fails the whole command.
static json_t *
s_request_batch (s_apply_t *ctx, const char *player_key)
{
    json_t *results = json_array ();
    size_t granted = 0, index;
    const json_t *item;
    json_array_foreach (ctx->a->paths, index, item)
    {
        const char *path = json_string_value (item);
        sf_fault_t fault;
        sf_fault_clear (&fault);
        s_apply_t one = *ctx;
        one.fault = &fault;
        json_t *result = s_request_one (&one, path, player_key, false, true);
        if (!result && fault.error == SF_ESTORE) {
            *ctx->fault = fault;
            json_decref (results);
            return NULL;
        }
        if (result) {
            granted++;
            json_array_append_new (results, result);
        }
        else {
            json_t *refused = json_pack (
                "{s:s,s:b,s:s,s:s}", "path", path, "granted", false, "error",
                sf_error_code (fault.error), "message", fault.message);
            if (one.would_ask)
                json_object_set_new (refused, "ask", json_true ());
            json_array_append_new (results, refused);
        }
    }
    return json_pack ("{s:s,s:I,s:I,s:o}", "sim", ctx->a->sim, "transfer",
                      (json_int_t) ctx->index, "grants", (json_int_t) granted,
                      "results", results);
}

static json_t *
s_authority_request (s_apply_t *ctx)
{
    if (s_not_draining (ctx, ctx->a->sim))
        return NULL;
    char *player_key = NULL;
    if (ctx->a->player) {
        player_key = s_lookup (ctx->self, S_PLAYER_KEY, ctx->a->player);
        if (!player_key) {
            sf_fault_set (ctx->fault, SF_ENOTFOUND, "no player '%s'",
                          ctx->a->player);
            return NULL;
        }
    }
    json_t *result = ctx->a->paths ? s_request_batch (ctx, player_key)
                                   : s_request_one (ctx, ctx->a->path,
                                                    player_key, true, false);
    free (player_key);
    return result;
}

//  A result granting a foreign sim (NAME@INSTANCE) carries what that
//  sim cannot learn from its own ring (federation.md section 5): the
//  former authority's key and handoff endpoint, to admit its HANDOFF,
//  and this ring's signing keys, to check the grants it carries.
static void
s_foreign_contact (hs_fsm_t *self, json_t *result)
{
    const char *authority =
        json_string_value (json_object_get (result, "authority"));
    const char *previous =
        json_string_value (json_object_get (result, "previous"));
    if (!authority || !strchr (authority, '@'))
        return;
    if (previous) {
        sf_fault_t fault;
        json_t *entry = hs_fsm_lookup (self, "sim", previous, &fault);
        if (entry) {
            json_object_set (result, "previous_key",
                             json_object_get (entry, "key"));
            if (json_object_get (entry, "handoff"))
                json_object_set (result, "previous_handoff",
                                 json_object_get (entry, "handoff"));
        }
        json_decref (entry);
    }
    json_object_set_new (result, "ring_keys", hs_fsm_ring_keys (self));
}

//  What the ring answered claim REQUEST before, as a repeat gets it, in
//  *AGAIN (a new object; NULL for a request never seen): a grant (with
//  its grant only while the entity is still at the epoch it granted) or
//  an ask still waiting. Returns 0, or -1 with FAULT denied for a claim
//  refused.
static int
s_fed_again (s_apply_t *ctx, const char *request, bool contact,
             json_t **again_p)
{
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_FED_CLAIM_GET);
    s_bind_text (stmt, 1, request);
    json_t *again = NULL;
    if (sqlite3_step (stmt) == SQLITE_ROW) {
        again = json_loads (s_column (stmt, 0), 0, NULL);
        bool current = sqlite3_column_int (stmt, 1) == 1;
        const char *path = json_string_value (json_object_get (again, "path"));
        if (json_is_object (again)
            && !json_is_true (json_object_get (again, "pending"))
            && !json_is_false (json_object_get (again, "granted"))) {
            json_object_set_new (again, "grant",
                                 current && path ? s_grant_due (path)
                                                 : json_null ());
            if (contact)
                s_foreign_contact (ctx->self, again);
        }
        if (json_is_object (again))
            json_object_set_new (again, "again", json_true ());
    }
    s_done (stmt);
    //  An ask still waiting is answered when decided (as the first time);
    //  one refused is refused again.
    if (json_is_false (json_object_get (again, "granted"))) {
        const char *reason =
            json_string_value (json_object_get (again, "reason"));
        sf_fault_set (ctx->fault, SF_EDENIED,
                      "claim %s was refused (%s); nothing changed", request,
                      reason ? reason : "denied");
        json_decref (again);
        return -1;
    }
    *again_p = again;
    return 0;
}

//  Claim REQUEST of PATH for the foreign sim of CTX, decided as a local
//  sim's would be, and recorded against REQUEST; asking the authority
//  only if MAY_ASK. NULL with FAULT when refused (nothing recorded).
static json_t *
s_fed_claim_one (s_apply_t *ctx, const char *request, const char *path,
                 bool may_ask)
{
    json_t *result =
        s_request_one (ctx, path, ctx->a->player_key, may_ask, true);
    if (!result)
        return NULL;
    //  Kept without its grant: a grant is made from the state where it
    //  leaves (hs_fsm_make_grants), and only while it is still this one.
    //  An ask is kept pending until decided (s_fed_decided).
    json_t *kept = json_deep_copy (result);
    json_object_del (kept, "grant");
    char *text = json_dumps (kept, JSON_COMPACT);
    json_decref (kept);
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_FED_CLAIM_PUT);
    s_bind_text (stmt, 1, request);
    s_bind_text (stmt, 2, path);
    s_bind_text (stmt, 3, ctx->a->sim);
    s_bind_int (stmt, 4,
                json_integer_value (json_object_get (result, "epoch")));
    s_bind_text (stmt, 5, text);
    s_bind_int (stmt, 6, (int64_t) ctx->cmd->time_ms);
    int rc = text ? s_exec_stmt (ctx->self, stmt, ctx->fault)
                  : sf_fault_set (ctx->fault, SF_ESTORE, "out of memory");
    free (text);
    if (rc) {
        json_decref (result);
        return NULL;
    }
    json_object_set_new (result, "request", json_string (request));
    return result;
}

//  The batch form: each claim decided on its own, in order, never
//  asking; one command and one transfer for all it grants. A claim that
//  would ask, or waits on an ask already, is refused with "ask" so its
//  instance sends it alone; a refusal records nothing. A storage
//  failure, no claim's outcome, fails the whole command.
static json_t *
s_fed_claim_batch (s_apply_t *ctx)
{
    json_t *results = json_array ();
    size_t granted = 0, index;
    const json_t *claim;
    json_array_foreach (ctx->a->claims, index, claim)
    {
        const char *request =
            json_string_value (json_object_get (claim, "request"));
        const char *path = json_string_value (json_object_get (claim, "path"));
        sf_fault_t fault;
        sf_fault_clear (&fault);
        s_apply_t one = *ctx;
        one.fault = &fault;
        json_t *result = NULL;
        int was_refused = s_fed_again (&one, request, false, &result);
        bool ask = json_is_true (json_object_get (result, "pending"));
        if (ask) {
            json_decref (result);
            result = NULL;
            sf_fault_set (&fault, SF_EDENIED,
                          "claim %s waits on the authority of '%s': send it "
                          "on its own",
                          request, path);
        }
        else if (!result && !was_refused) {
            result = s_fed_claim_one (&one, request, path, false);
            ask = one.would_ask;
        }
        if (!result && fault.error == SF_ESTORE) {
            *ctx->fault = fault;
            json_decref (results);
            return NULL;
        }
        if (result) {
            granted++;
            s_foreign_contact (ctx->self, result);
            json_object_del (result, "ring_keys");
            json_array_append_new (results, result);
            continue;
        }
        json_t *refused =
            json_pack ("{s:s,s:s,s:b,s:s,s:s}", "request", request, "path",
                       path, "granted", false, "error",
                       sf_error_code (fault.error), "message", fault.message);
        if (ask)
            json_object_set_new (refused, "ask", json_true ());
        json_array_append_new (results, refused);
    }
    return json_pack ("{s:s,s:I,s:I,s:o,s:o}", "sim", ctx->a->sim, "transfer",
                      (json_int_t) ctx->index, "grants", (json_int_t) granted,
                      "ring_keys", hs_fsm_ring_keys (ctx->self), "results",
                      results);
}

//  fed.claim: a foreign sim's claim, decided as a local sim's would be
//  (the rule, a new epoch, the former authority fenced by the event). The
//  foreign sim gets a row as its instance vouched for it. The same
//  request again is answered from fed_claims and changes nothing; its
//  grant only while the entity is still at the epoch it granted.
static json_t *
s_fed_claim (s_apply_t *ctx)
{
    char local [65], instance [SF_NAME_MAX_INSTANCE + 1];
    sf_name_split (ctx->a->sim, local, instance);
    bool own = ctx->a->instance && streq (instance, ctx->a->instance);
    const char *stray =
        ctx->a->claim && !s_request_of (ctx->a->claim, ctx->a->instance)
            ? ctx->a->claim
            : NULL;
    size_t index;
    const json_t *claim;
    json_array_foreach (ctx->a->claims, index, claim)
    {
        const char *request =
            json_string_value (json_object_get (claim, "request"));
        if (!stray && !s_request_of (request, ctx->a->instance))
            stray = request;
    }
    if (!own || stray) {
        sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                      "instance '%s' speaks only for its own sims and "
                      "requests, not '%s' ('%s')",
                      ctx->a->instance ? ctx->a->instance : "?", ctx->a->sim,
                      stray ? stray : "");
        return NULL;
    }
    json_t *again = NULL;
    if (ctx->a->claim) {
        if (s_fed_again (ctx, ctx->a->claim, true, &again) || again)
            return again;
    }
    //  Requests decided long ago are forgotten (federation.md section 6).
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_FED_CLAIM_PRUNE);
    s_bind_int (stmt, 1, (int64_t) ctx->cmd->time_ms - S_FED_CLAIM_KEEP_MS);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    stmt = s_stmt (ctx->self, S_SIM_FOREIGN_PUT);
    s_bind_text (stmt, 1, ctx->a->sim);
    s_bind_text (stmt, 2, ctx->a->key);
    s_bind_text (stmt, 3, ctx->a->handoff);
    s_bind_text (stmt, 4, ctx->a->state);
    s_bind_int (stmt, 5, (int64_t) ctx->cmd->time_ms);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    if (ctx->a->claims)
        return s_fed_claim_batch (ctx);
    json_t *result = s_fed_claim_one (ctx, ctx->a->claim, ctx->a->path, true);
    if (result)
        s_foreign_contact (ctx->self, result);
    return result;
}

//  fed.expired: the instance of foreign sim SIM expired it (its own
//  lease), or this ring's leader learnt so (an administrator's word):
//  every entity it holds here is orphaned, as sim.expire does for a
//  local sim. Again, it orphans nothing more.
static json_t *
s_fed_expired (s_apply_t *ctx)
{
    //  An administrator's word is the ring's own (its leader learnt it).
    if (!ctx->cmd->admin && s_vouched (ctx))
        return NULL;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_ORPHAN_FOREIGN);
    s_bind_text (stmt, 1, ctx->a->sim);
    s_bind_stamp (ctx, stmt, 2, 3);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    //  Who said so: the sim's instance (its push), or none (this ring's
    //  leader, from that instance's answer, or an administrator).
    return json_pack ("{s:s,s:I,s:s?}", "sim", ctx->a->sim, "orphaned",
                      (json_int_t) sqlite3_changes (ctx->self->db), "instance",
                      ctx->a->instance);
}

json_t *
hs_fsm_foreign_holders (hs_fsm_t *self)
{
    json_t *names = json_array ();
    sqlite3_stmt *stmt = s_stmt (self, S_FOREIGN_HOLDERS);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (names, json_string (s_column (stmt, 0)));
    s_done (stmt);
    return names;
}

//  fed.withdraw: the instance that sent claim REQUEST gives up waiting
//  for it. Decided already, it is answered as fed.claim would answer it
//  again; else it is recorded as withdrawn, so a copy of the claim that
//  arrives later is refused: the outcome is final either way.
static json_t *
s_fed_withdraw (s_apply_t *ctx)
{
    if (!s_request_of (ctx->a->claim, ctx->a->instance)) {
        sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                      "instance '%s' withdraws only its own requests, not "
                      "'%s'",
                      ctx->a->instance ? ctx->a->instance : "?", ctx->a->claim);
        return NULL;
    }
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_FED_CLAIM_GET);
    s_bind_text (stmt, 1, ctx->a->claim);
    json_t *known = NULL;
    bool current = false;
    if (sqlite3_step (stmt) == SQLITE_ROW) {
        known = json_loads (s_column (stmt, 0), 0, NULL);
        current = sqlite3_column_int (stmt, 1) == 1;
    }
    s_done (stmt);
    if (json_is_object (known)) {
        const char *path = json_string_value (json_object_get (known, "path"));
        if (path && json_is_true (json_object_get (known, "granted"))) {
            json_object_set_new (known, "grant",
                                 current ? s_grant_due (path) : json_null ());
            s_foreign_contact (ctx->self, known);
        }
        json_object_set_new (known, "again", json_true ());
        return known;
    }
    json_decref (known);
    json_t *withdrawn = json_pack ("{s:s,s:b,s:s}", "request", ctx->a->claim,
                                   "granted", 0, "reason", "withdrawn");
    char *text = json_dumps (withdrawn, JSON_COMPACT);
    stmt = s_stmt (ctx->self, S_FED_WITHDRAW);
    s_bind_text (stmt, 1, ctx->a->claim);
    s_bind_text (stmt, 2, text);
    s_bind_int (stmt, 3, (int64_t) ctx->cmd->time_ms);
    free (text);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault)) {
        json_decref (withdrawn);
        return NULL;
    }
    return withdrawn;
}

//  fed.intent: this ring's leader sent sim SIM's claim REQUEST of PATH
//  (PATH@HOME) on to its home and did not hear what came of it; recorded
//  until its outcome is known, so a leader finishes it (hs_relay), and
//  published on the path's topic.
static json_t *
s_fed_intent (s_apply_t *ctx)
{
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_INTENT_PRUNE);
    s_bind_int (stmt, 1, (int64_t) ctx->cmd->time_ms - S_FED_CLAIM_KEEP_MS);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    stmt = s_stmt (ctx->self, S_INTENT_PUT);
    s_bind_text (stmt, 1, ctx->a->claim);
    s_bind_text (stmt, 2, ctx->a->path);
    s_bind_text (stmt, 3, ctx->a->sim);
    s_bind_int (stmt, 4, (int64_t) ctx->cmd->time_ms);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack ("{s:s,s:s,s:s}", "request", ctx->a->claim, "path",
                      ctx->a->path, "sim", ctx->a->sim);
}

//  fed.outcome: what the home decided of claim REQUEST (the sim's view:
//  hs_relay's translation of the home's answer), once: published on the
//  path's topic, where the sim takes a grant it did not hear in reply.
//  Record that claim REQUEST of PATH by SIM came to OUTCOME (lent), and
//  return what the feed tells of it: OUTCOME with its request and path.
//  The ring keeps only its gist (whether granted, the epoch, the home's
//  transfer, the error): the whole of it, a signed grant and keys, is
//  for the sim, which has it from the event.
static json_t *
s_fed_outcome_one (s_apply_t *ctx, const char *request, const char *path,
                   const json_t *outcome)
{
    json_t *gist = json_object ();
    static const char *const kept [] = {"granted", "epoch", "transfer", "error",
                                        NULL};
    for (const char *const *field = kept; *field; field++)
        if (json_object_get (outcome, *field))
            json_object_set (gist, *field, json_object_get (outcome, *field));
    char *text = json_dumps (gist, JSON_COMPACT);
    json_decref (gist);
    if (!text) {
        sf_fault_set (ctx->fault, SF_EINTERNAL, "out of memory");
        return NULL;
    }
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_INTENT_DECIDE);
    s_bind_text (stmt, 1, request);
    s_bind_text (stmt, 2, text);
    s_bind_text (stmt, 3, path);
    s_bind_text (stmt, 4, ctx->a->sim);
    s_bind_int (stmt, 5, (int64_t) ctx->cmd->time_ms);
    free (text);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    json_t *result = json_deep_copy (outcome);
    json_object_set_new (result, "request", json_string (request));
    if (!json_object_get (result, "path"))
        json_object_set_new (result, "path", json_string (path));
    return result;
}

static json_t *
s_fed_outcome (s_apply_t *ctx)
{
    if (!ctx->a->claims)
        return s_fed_outcome_one (ctx, ctx->a->claim, ctx->a->path,
                                  ctx->a->outcome);
    //  The batch form: one command and one event (on sim:SIM) for a sim's
    //  outcomes learnt together.
    json_t *results = json_array ();
    size_t index;
    const json_t *item;
    json_array_foreach (ctx->a->claims, index, item)
    {
        json_t *result = s_fed_outcome_one (
            ctx, json_string_value (json_object_get (item, "request")),
            json_string_value (json_object_get (item, "path")),
            json_object_get (item, "outcome"));
        if (!result) {
            json_decref (results);
            return NULL;
        }
        json_array_append_new (results, result);
    }
    return json_pack ("{s:s,s:o}", "sim", ctx->a->sim, "results", results);
}

json_t *
hs_fsm_open_intents (hs_fsm_t *self, uint64_t before_ms)
{
    json_t *open = json_array ();
    sqlite3_stmt *stmt = s_stmt (self, S_INTENTS_OPEN);
    s_bind_int (stmt, 1, (int64_t) before_ms);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (open, json_pack ("{s:s,s:s,s:s}", "request",
                                                s_column (stmt, 0), "path",
                                                s_column (stmt, 1), "sim",
                                                s_column (stmt, 2)));
    s_done (stmt);
    return open;
}

//  fed.fenced: a home told that SIM of this instance no longer holds its
//  entity PATH (PATH@HOME here) from EPOCH on: AUTHORITY holds it, or
//  no one. Recorded so that the sim hears it through this ring's feed
//  (an event, as for a grant here) and a repeat changes nothing.
static json_t *
s_fed_fenced (s_apply_t *ctx)
{
    if (!ctx->a->instance) {
        sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                      "fed.fenced comes from the entity's home instance");
        return NULL;
    }
    char *key = s_lookup (ctx->self, S_SIM_KEY, ctx->a->sim);
    bool registered = key != NULL;
    free (key);
    if (!registered) {
        sf_fault_set (ctx->fault, SF_ENOTFOUND, "no sim '%s'", ctx->a->sim);
        return NULL;
    }
    char global [SF_NAME_MAX_PATH + SF_NAME_MAX_INSTANCE + 2];
    snprintf (global, sizeof global, "%s@%s", ctx->a->path, ctx->a->instance);
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_FENCED_GET);
    s_bind_text (stmt, 1, global);
    bool known = sqlite3_step (stmt) == SQLITE_ROW
                 && sqlite3_column_int64 (stmt, 0) >= ctx->a->epoch;
    s_done (stmt);
    json_t *result = json_pack (
        "{s:s,s:I,s:s,s:s,s:o,s:b}", "path", global, "epoch",
        (json_int_t) ctx->a->epoch, "home", ctx->a->instance, "sim",
        ctx->a->sim, "authority",
        ctx->a->authority ? json_string (ctx->a->authority) : json_null (),
        "granted", ctx->a->authority != NULL);
    if (ctx->a->key)
        json_object_set_new (result, "authority_key",
                             json_string (ctx->a->key));
    if (ctx->a->handoff)
        json_object_set_new (result, "authority_handoff",
                             json_string (ctx->a->handoff));
    if (known)
        return result;
    stmt = s_stmt (ctx->self, S_FENCED_PUT);
    s_bind_text (stmt, 1, global);
    s_bind_int (stmt, 2, ctx->a->epoch);
    s_bind_text (stmt, 3, ctx->a->sim);
    s_bind_text (stmt, 4, ctx->a->authority);
    s_bind_int (stmt, 5, (int64_t) ctx->cmd->time_ms);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault)) {
        json_decref (result);
        return NULL;
    }
    return result;
}

//  authority.release: SIM, the authority of PATH, gives it up with its
//  final checkpoint; the entity is orphaned until someone takes it.
static json_t *
s_authority_release (s_apply_t *ctx)
{
    sqlite3_stmt *row = s_stmt (ctx->self, S_ENTITY_HOLDER);
    s_bind_text (row, 1, ctx->a->path);
    bool exists = sqlite3_step (row) == SQLITE_ROW;
    bool holder = exists && s_column (row, 0)
                  && strcmp (s_column (row, 0), ctx->a->sim) == 0;
    s_done (row);
    if (!exists) {
        sf_fault_set (ctx->fault, SF_ENOTFOUND, "no entity at '%s'",
                      ctx->a->path);
        return NULL;
    }
    if (!holder) {
        sf_fault_set (ctx->fault, SF_ECONFLICT,
                      "sim '%s' is not the authority of '%s'", ctx->a->sim,
                      ctx->a->path);
        return NULL;
    }
    //  The sim's own release tells it nothing new; an administrator's
    //  acting for it does.
    if (ctx->cmd->admin && s_taken (ctx, ctx->a->sim, NULL))
        return NULL;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_RELEASE);
    s_bind_text (stmt, 1, ctx->a->path);
    s_bind_stamp (ctx, stmt, 2, 3);
    s_bind_text (stmt, 4, ctx->a->checkpoint);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return s_entity_get (ctx->self, ctx->a->path, ctx->fault);
}

//  The key pair of a ring.key or ring.rotate_key into SECRET, checked:
//  the public key is the secret key's. Returns 0, or -1 with FAULT.
static int
s_key_pair (s_apply_t *ctx, uint8_t secret [64])
{
    uint8_t public [32], derived [32];
    if (!ctx->a->public || !ctx->a->secret)
        return sf_fault_set (ctx->fault, SF_EINVAL,
                             "%s carries the leader's key pair ('public', "
                             "'secret')",
                             ctx->cmd->op);
    zmq_z85_decode (public, ctx->a->public);  //  checked by s_parse
    zmq_z85_decode (secret, ctx->a->secret);
    crypto_sign_ed25519_sk_to_pk (derived, secret);
    if (sodium_memcmp (derived, public, sizeof public) != 0)
        return sf_fault_set (ctx->fault, SF_EINVAL,
                             "field 'public' is not the secret key's");
    return 0;
}

//  Add the key pair of CTX as the ring's current key. Returns its
//  key_id's row as listed, or NULL with FAULT.
static json_t *
s_key_add (s_apply_t *ctx, const uint8_t secret [64])
{
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_KEY_INSERT);
    s_bind_text (stmt, 1, ctx->a->public);
    sqlite3_bind_blob (stmt, 2, secret, 64, SQLITE_TRANSIENT);
    s_bind_int (stmt, 3, (int64_t) ctx->cmd->time_ms);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack ("{s:I,s:s,s:n}", "key_id",
                      (json_int_t) sqlite3_last_insert_rowid (ctx->self->db),
                      "public", ctx->a->public, "retires_ms");
}

//  ring.key: the ring's first signing key, submitted by a leader that
//  found none. A second one (another leader's, before it saw the first)
//  is refused and changes nothing.
static json_t *
s_ring_key (s_apply_t *ctx)
{
    uint8_t secret [64];
    json_t *result = NULL;
    if (s_key_pair (ctx, secret) == 0) {
        if (hs_fsm_has_ring_key (ctx->self))
            sf_fault_set (ctx->fault, SF_ECONFLICT,
                          "the ring has a signing key already; "
                          "ring.rotate_key replaces it");
        else
            result = s_key_add (ctx, secret);
    }
    sodium_memzero (secret, sizeof secret);
    return result;
}

//  ring.rotate_key: a new current key; the previous one retires after
//  grace_ms, and retired keys past their grace lose their secrets.
static json_t *
s_ring_rotate_key (s_apply_t *ctx)
{
    uint8_t secret [64];
    json_t *result = NULL;
    if (s_key_pair (ctx, secret) == 0) {
        sqlite3_stmt *forget = s_stmt (ctx->self, S_KEY_FORGET);
        s_bind_int (forget, 1, (int64_t) ctx->cmd->time_ms);
        sqlite3_stmt *retire = NULL;
        if (s_exec_stmt (ctx->self, forget, ctx->fault) == 0) {
            retire = s_stmt (ctx->self, S_KEY_RETIRE);
            s_bind_int (retire, 1, (int64_t) ctx->cmd->time_ms);
            s_bind_int (retire, 2, ctx->a->grace_ms);
        }
        if (retire && s_exec_stmt (ctx->self, retire, ctx->fault) == 0)
            result = s_key_add (ctx, secret);
        if (result)
            json_object_set_new (result, "ring_keys",
                                 hs_fsm_ring_keys (ctx->self));
    }
    sodium_memzero (secret, sizeof secret);
    return result;
}

//  token.create: a one-use join token for sim SIM, kept as its hash; the
//  leader answers the token itself to the administrator (hs_api).
static json_t *
s_token_create (s_apply_t *ctx)
{
    if (!ctx->a->hash) {
        sf_fault_set (ctx->fault, SF_EINVAL,
                      "token.create carries the token's hash (the leader "
                      "adds it)");
        return NULL;
    }
    int64_t expires = (int64_t) ctx->cmd->time_ms + ctx->a->ttl_ms;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_TOKEN_INSERT);
    s_bind_text (stmt, 1, ctx->a->hash);
    s_bind_text (stmt, 2, ctx->a->sim);
    s_bind_int (stmt, 3, (int64_t) ctx->cmd->time_ms);
    s_bind_int (stmt, 4, expires);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack ("{s:s,s:I}", "sim", ctx->a->sim, "expires_ms",
                      (json_int_t) expires);
}

//  access.create: a bearer token for a principal, kept as its hash; the
//  leader answers the token itself to the administrator (hs_api). Rows
//  a day past their end are pruned here, alike on every member.
static json_t *
s_access_create (s_apply_t *ctx)
{
    if (!ctx->a->hash || !ctx->a->token_id) {
        sf_fault_set (ctx->fault, SF_EINVAL,
                      "access.create carries the token's id and hash (the "
                      "leader adds them)");
        return NULL;
    }
    int64_t now = (int64_t) ctx->cmd->time_ms;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ACCESS_PRUNE);
    s_bind_int (stmt, 1, now);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    int64_t expires = now + ctx->a->ttl_ms;
    stmt = s_stmt (ctx->self, S_ACCESS_INSERT);
    s_bind_text (stmt, 1, ctx->a->token_id);
    s_bind_text (stmt, 2, ctx->a->principal_key);
    s_bind_text (stmt, 3, ctx->a->hash);
    s_bind_text (stmt, 4, ctx->a->note);
    s_bind_int (stmt, 5, now);
    s_bind_int (stmt, 6, expires);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack ("{s:s,s:s,s:s,s:I,s:I}", "token_id", ctx->a->token_id,
                      "principal", ctx->a->principal_key, "note", ctx->a->note,
                      "created_ms", (json_int_t) now, "expires_ms",
                      (json_int_t) expires);
}

//  access.revoke: the token stops working on each member as it applies
//  this; a revoked token stays revoked.
static json_t *
s_access_revoke (s_apply_t *ctx)
{
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ACCESS_GET);
    s_bind_text (stmt, 1, ctx->a->token_id);
    bool known = sqlite3_step (stmt) == SQLITE_ROW;
    bool revoked = known && sqlite3_column_type (stmt, 3) != SQLITE_NULL;
    s_done (stmt);
    if (!known) {
        sf_fault_set (ctx->fault, SF_ENOTFOUND, "no token '%s'",
                      ctx->a->token_id);
        return NULL;
    }
    if (!revoked) {
        stmt = s_stmt (ctx->self, S_ACCESS_REVOKE);
        s_bind_text (stmt, 1, ctx->a->token_id);
        s_bind_int (stmt, 2, (int64_t) ctx->cmd->time_ms);
        if (s_exec_stmt (ctx->self, stmt, ctx->fault))
            return NULL;
    }
    return json_pack ("{s:s,s:b,s:b}", "token_id", ctx->a->token_id, "revoked",
                      1, "changed", !revoked);
}

static json_t *
s_access_list (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault)
{
    (void) a;
    (void) fault;
    sqlite3_stmt *stmt = s_stmt (self, S_ACCESS_LIST);
    json_t *tokens = json_array ();
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (
            tokens,
            json_pack (
                "{s:s,s:s,s:s,s:I,s:I,s:o}", "token_id", s_column (stmt, 0),
                "principal", s_column (stmt, 1), "note", s_column (stmt, 2),
                "created_ms", (json_int_t) sqlite3_column_int64 (stmt, 3),
                "expires_ms", (json_int_t) sqlite3_column_int64 (stmt, 4),
                "revoked",
                sqlite3_column_type (stmt, 5) == SQLITE_NULL ? json_false ()
                                                             : json_true ()));
    s_done (stmt);
    return json_pack ("{s:o}", "tokens", tokens);
}

int
hs_fsm_access (hs_fsm_t *self, const char *token_id, const char *hash,
               uint64_t now_ms, char **principal, sf_fault_t *fault)
{
    sqlite3_stmt *stmt = s_stmt (self, S_ACCESS_GET);
    s_bind_text (stmt, 1, token_id);
    int rc = 0;
    if (sqlite3_step (stmt) != SQLITE_ROW)
        rc = sf_fault_set (fault, SF_EUNAUTHORIZED, "unknown token");
    else if (strlen (hash) != 40
             || sodium_memcmp (s_column (stmt, 1), hash, 40) != 0)
        rc = sf_fault_set (fault, SF_EUNAUTHORIZED, "unknown token");
    else if (sqlite3_column_type (stmt, 3) != SQLITE_NULL)
        rc = sf_fault_set (fault, SF_EUNAUTHORIZED, "the token was revoked");
    else if ((uint64_t) sqlite3_column_int64 (stmt, 2) <= now_ms)
        rc = sf_fault_set (fault, SF_EUNAUTHORIZED, "the token expired");
    else
        *principal = strdup (s_column (stmt, 0));
    s_done (stmt);
    return rc;
}

//  sim.expire: issued by the leader (never by clients) for a sim whose
//  last heartbeat is older than the lease: its entities are orphaned. The
//  lease and the time come with the command, so every member decides alike.
static json_t *
s_sim_expire (s_apply_t *ctx)
{
    sqlite3_stmt *row = s_stmt (ctx->self, S_SIM_HEARTBEAT);
    s_bind_text (row, 1, ctx->a->sim);
    bool known = sqlite3_step (row) == SQLITE_ROW;
    uint64_t last = known ? (uint64_t) sqlite3_column_int64 (row, 0) : 0;
    s_done (row);
    if (!known) {
        sf_fault_set (ctx->fault, SF_ENOTFOUND, "no sim '%s'", ctx->a->sim);
        return NULL;
    }
    if (last + (uint64_t) ctx->a->limit >= ctx->cmd->time_ms) {
        sf_fault_set (ctx->fault, SF_ECONFLICT,
                      "sim '%s' sent a heartbeat within its lease",
                      ctx->a->sim);
        return NULL;
    }
    if (s_taken (ctx, ctx->a->sim, NULL))
        return NULL;
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_ENTITY_ORPHAN);
    s_bind_text (stmt, 1, ctx->a->sim);
    s_bind_stamp (ctx, stmt, 2, 3);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    return json_pack ("{s:s,s:I,s:I}", "sim", ctx->a->sim, "orphaned",
                      (json_int_t) sqlite3_changes (ctx->self->db),
                      "heartbeat_ms", (json_int_t) last);
}

//  One path of a balance.move: granted to the move's target if FROM
//  holds it under allow (the brief grant of a batch request), asked for
//  if the move asks and its rule is ask, else NULL with *SKIPPED the
//  reason.
static json_t *
s_move_one (s_apply_t *ctx, const char *path, const char **skipped)
{
    sqlite3_stmt *row = s_stmt (ctx->self, S_ENTITY_DECIDE);
    s_bind_text (row, 1, path);
    char *rule = NULL, *authority = NULL;
    int64_t epoch = 0;
    if (sqlite3_step (row) == SQLITE_ROW) {
        rule = strdup (s_column (row, 1));
        authority = s_column (row, 2) ? strdup (s_column (row, 2)) : NULL;
        epoch = sqlite3_column_int64 (row, 3);
    }
    s_done (row);
    json_t *result = NULL;
    if (!rule)
        *skipped = "gone";
    else if (!authority || strcmp (authority, ctx->a->from))
        *skipped = "moved";
    else if (streq (rule, "deny"))
        *skipped = "deny";
    else if (streq (rule, "ask") && !ctx->a->ask)
        *skipped = "ask";
    else if (streq (rule, "ask"))
        result = s_ask (ctx, path, authority, epoch);
    else if (s_grant (ctx, path, ctx->a->sim, NULL, (int64_t) ctx->index)
             == 0) {
        result = json_pack (
            "{s:s,s:s,s:I,s:b,s:s,s:I}", "path", path, "authority", ctx->a->sim,
            "epoch", (json_int_t) (epoch + 1), "granted", true, "previous",
            authority, "transfer", (json_int_t) ctx->index);
        json_object_set_new (result, "grant", s_grant_due (path));
    }
    free (rule);
    free (authority);
    return result;
}

//  SIM is registered here. Returns 0, or -1 with FAULT (not_found).
static int
s_sim_known (s_apply_t *ctx, const char *sim)
{
    char *key = s_lookup (ctx->self, S_SIM_KEY, sim);
    bool known = key != NULL;
    free (key);
    return known ? 0
                 : sf_fault_set (ctx->fault, SF_ENOTFOUND, "no sim '%s'", sim);
}

//  balance.move (load.md section 6): a balancer's decision, recorded
//  with the grants it makes, in one command.
static json_t *
s_balance_move (s_apply_t *ctx)
{
    if (s_sim_known (ctx, ctx->a->sim))
        return NULL;
    if (s_not_draining (ctx, ctx->a->sim))
        return NULL;
    json_t *results = json_array (), *skipped = json_array ();
    json_t *asked = NULL;
    size_t index;
    const json_t *item;
    json_array_foreach (ctx->a->paths, index, item)
    {
        const char *path = json_string_value (item);
        const char *reason = NULL;
        json_t *result = s_move_one (ctx, path, &reason);
        if (!result && !reason) {  //  storage: no path's outcome
            json_decref (results);
            json_decref (skipped);
            return NULL;
        }
        if (result && json_is_true (json_object_get (result, "pending")))
            asked = result;
        else if (result)
            json_array_append_new (results, result);
        else
            json_array_append_new (skipped, json_pack ("{s:s,s:s}", "path",
                                                       path, "reason", reason));
    }
    size_t moved = json_array_size (results);
    //  The target did not ask: its heartbeat's taken_index tells it to
    //  look, should the event not reach it.
    if (moved && s_taken (ctx, ctx->a->sim, NULL)) {
        json_decref (results);
        json_decref (skipped);
        json_decref (asked);
        return NULL;
    }
    sqlite3_stmt *stmt = s_stmt (ctx->self, S_MOVE_PUT);
    s_bind_int (stmt, 1, (int64_t) ctx->index);
    s_bind_text (stmt, 2, ctx->a->move);
    s_bind_int (stmt, 3, (int64_t) ctx->cmd->time_ms);
    s_bind_text (stmt, 4, ctx->a->prefix);
    s_bind_text (stmt, 5, ctx->a->from);
    s_bind_text (stmt, 6, ctx->a->sim);
    s_bind_int (stmt, 7, (int64_t) moved);
    s_bind_int (stmt, 8, (int64_t) json_array_size (skipped));
    s_bind_text (stmt, 9, ctx->a->reason);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault)
        || s_exec_stmt (ctx->self, s_stmt (ctx->self, S_MOVES_PRUNE),
                        ctx->fault)) {
        json_decref (results);
        json_decref (skipped);
        json_decref (asked);
        return NULL;
    }
    //  An ask is an ask's result (its event on entity:PATH, for the
    //  authority's game), without "results": a sim reads those as a
    //  batch's grants; a move, a batch's (on ring:).
    json_t *result = asked ? asked : json_pack ("{s:o}", "results", results);
    if (asked)
        json_decref (results);
    json_object_update_new (result,
                            json_pack ("{s:s,s:s,s:s,s:s,s:s,s:I,s:o}", "move",
                                       ctx->a->move, "group", ctx->a->prefix,
                                       "from", ctx->a->from, "to", ctx->a->sim,
                                       "reason", ctx->a->reason, "moved",
                                       (json_int_t) moved, "skipped", skipped));
    return result;
}

//  sim.drain (load.md section 7).
static json_t *
s_sim_drain (s_apply_t *ctx)
{
    if (s_sim_known (ctx, ctx->a->sim))
        return NULL;
    sqlite3_stmt *stmt =
        s_stmt (ctx->self, ctx->a->drain ? S_DRAIN_PUT : S_DRAIN_DROP);
    s_bind_text (stmt, 1, ctx->a->sim);
    if (ctx->a->drain)
        s_bind_int (stmt, 2, (int64_t) ctx->cmd->time_ms);
    if (s_exec_stmt (ctx->self, stmt, ctx->fault))
        return NULL;
    json_t *since = json_null ();
    sqlite3_stmt *get = s_stmt (ctx->self, S_DRAIN_GET);
    s_bind_text (get, 1, ctx->a->sim);
    if (sqlite3_step (get) == SQLITE_ROW)
        since = json_integer ((json_int_t) sqlite3_column_int64 (get, 0));
    s_done (get);
    return json_pack ("{s:s,s:b,s:o}", "sim", ctx->a->sim, "draining",
                      ctx->a->drain, "since_ms", since);
}

static json_t *
s_balance_moves_read (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault)
{
    (void) fault;
    return json_pack ("{s:o}", "moves", hs_fsm_moves (self, 0, a->limit));
}

json_t *
hs_fsm_moves (hs_fsm_t *self, uint64_t after, int64_t limit)
{
    sqlite3_stmt *stmt = s_stmt (self, S_MOVES_LIST);
    s_bind_int (stmt, 1, limit);
    s_bind_int (stmt, 2, (int64_t) after);
    json_t *moves = json_array ();
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (
            moves,
            json_pack ("{s:s,s:I,s:I,s:s,s:s,s:s,s:I,s:I,s:s}", "move",
                       s_column (stmt, 0), "index",
                       (json_int_t) sqlite3_column_int64 (stmt, 1), "at_ms",
                       (json_int_t) sqlite3_column_int64 (stmt, 2), "group",
                       s_column (stmt, 3), "from", s_column (stmt, 4), "to",
                       s_column (stmt, 5), "moved",
                       (json_int_t) sqlite3_column_int64 (stmt, 6), "skipped",
                       (json_int_t) sqlite3_column_int64 (stmt, 7), "reason",
                       s_column (stmt, 8)));
    s_done (stmt);
    return moves;
}

zlist_t *
hs_fsm_draining (hs_fsm_t *self)
{
    zlist_t *names = zlist_new ();
    zlist_autofree (names);
    sqlite3_stmt *stmt = s_stmt (self, S_DRAINING);
    while (sqlite3_step (stmt) == SQLITE_ROW)
        zlist_append (names, (void *) s_column (stmt, 0));
    s_done (stmt);
    return names;
}

json_t *
hs_fsm_group_held (hs_fsm_t *self, const char *group, const char *sim,
                   const char *after, size_t limit)
{
    //  The group's direct children: paths under GROUP/ whose last '/'
    //  is the one after GROUP.
    size_t base = streq (group, "/") ? 1 : strlen (group) + 1;
    char *lower =
        streq (group, "/") ? strdup ("/") : zsys_sprintf ("%s/", group);
    char *upper = zsys_sprintf ("%s\xff", lower);
    sqlite3_stmt *stmt = s_stmt (self, S_GROUP_HELD);
    //  Every path of the group sorts after LOWER ("GROUP/" is no path).
    s_bind_text (stmt, 1, after && strcmp (after, lower) > 0 ? after : lower);
    s_bind_text (stmt, 2, upper);
    s_bind_text (stmt, 3, sim);
    s_bind_int (stmt, 4, -1);
    json_t *held = json_array ();
    while (json_array_size (held) < limit
           && sqlite3_step (stmt) == SQLITE_ROW) {
        const char *path = s_column (stmt, 0);
        if (strchr (path + base, '/'))
            continue;  //  a deeper group's
        json_array_append_new (held, json_pack ("{s:s,s:s}", "path", path,
                                                "rule", s_column (stmt, 1)));
    }
    s_done (stmt);
    free (lower);
    free (upper);
    return held;
}

json_t *
hs_fsm_owned_held (hs_fsm_t *self, const char *sim, size_t limit)
{
    sqlite3_stmt *stmt = s_stmt (self, S_OWNED_HELD);
    s_bind_text (stmt, 1, sim);
    s_bind_int (stmt, 2, (int64_t) limit);
    json_t *owned = json_array ();
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (owned, json_pack ("{s:s,s:s}", "path",
                                                 s_column (stmt, 0), "owner",
                                                 s_column (stmt, 1)));
    s_done (stmt);
    return owned;
}

zlist_t *
hs_fsm_expired_sims (hs_fsm_t *self, uint64_t now_ms, uint64_t lease_ms)
{
    zlist_t *names = zlist_new ();
    zlist_autofree (names);
    if (now_ms <= lease_ms)
        return names;
    sqlite3_stmt *stmt = s_stmt (self, S_SIMS_SILENT);
    s_bind_int (stmt, 1, (int64_t) (now_ms - lease_ms));
    while (sqlite3_step (stmt) == SQLITE_ROW)
        zlist_append (names, (void *) s_column (stmt, 0));
    s_done (stmt);
    return names;
}

//  Set counter KEY ("applied", "change") of the meta table to INDEX. The
//  counters live in memory and reach the table only for a snapshot, the
//  one reader of the table; writing them at every command cost two more
//  statements per command.
static void
s_set_meta (hs_fsm_t *self, const char *key, raft_index index)
{
    sqlite3_stmt *stmt = s_stmt (self, S_META_SET);
    s_bind_text (stmt, 1, key);
    s_bind_int (stmt, 2, (int64_t) index);
    sqlite3_step (stmt);
    s_done (stmt);
}

//  --------------------------------------------------------------------------
//  Reads

static json_t *
s_entity_list (hs_fsm_t *self, const s_args_t *a)
{
    //  Paths in [prefix, prefix + 0xff): byte order is SQLite's BINARY
    //  collation, and 0xff never occurs in UTF-8.
    char *upper = zsys_sprintf ("%s\xff", a->prefix);
    const char *lower =
        a->after && strcmp (a->after, a->prefix) > 0 ? a->after : a->prefix;
    //  With an authority: only that sim's entities (what a sim reads to
    //  learn what it lost, sim-api.md).
    sqlite3_stmt *stmt =
        s_stmt (self, a->authority ? S_ENTITY_LIST_OF : S_ENTITY_LIST);
    if (a->authority)
        s_bind_text (stmt, 5, a->authority);
    s_bind_text (stmt, 1, lower);
    s_bind_text (stmt, 2, upper);
    //  One more than asked: it tells whether there is a next page.
    s_bind_int (stmt, 3, a->limit + 1);
    s_bind_int (stmt, 4, a->after != NULL);
    free (upper);
    json_t *entities = json_array ();
    json_t *next = json_null ();
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        if ((int64_t) json_array_size (entities) == a->limit) {
            //  One more than asked: there is a next page.
            json_decref (next);
            json_t *last =
                json_array_get (entities, json_array_size (entities) - 1);
            next = json_incref (json_object_get (last, "path"));
            break;
        }
        json_array_append_new (entities, s_entity_json (stmt));
    }
    s_done (stmt);
    return json_pack ("{s:o,s:o}", "entities", entities, "next", next);
}

static json_t *
s_sim_list (hs_fsm_t *self)
{
    sqlite3_stmt *stmt = s_stmt (self, S_SIM_LIST);
    json_t *sims = json_array ();
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        const char *load = s_column (stmt, 4);
        json_t *parsed = load ? json_loads (load, 0, NULL) : NULL;
        json_array_append_new (
            sims, json_pack ("{s:s,s:s,s:o,s:o,s:o,s:o,s:I,s:I,s:b}", "sim",
                             s_column (stmt, 0), "key", s_column (stmt, 1),
                             "handoff", s_text_or_null (stmt, 2), "state",
                             s_text_or_null (stmt, 3), "api",
                             s_text_or_null (stmt, 7), "load",
                             parsed ? parsed : json_object (), "heartbeat_ms",
                             (json_int_t) sqlite3_column_int64 (stmt, 5),
                             "registered_ms",
                             (json_int_t) sqlite3_column_int64 (stmt, 6),
                             "draining", sqlite3_column_int (stmt, 8) != 0));
    }
    s_done (stmt);
    return json_pack ("{s:o,s:o}", "sims", sims, "ring_keys",
                      hs_fsm_ring_keys (self));
}

json_t *
hs_fsm_members (hs_fsm_t *self)
{
    sqlite3_stmt *stmt = s_stmt (self, S_MEMBER_LIST);
    json_t *members = json_array ();
    while (sqlite3_step (stmt) == SQLITE_ROW)
        json_array_append_new (
            members,
            json_pack ("{s:s,s:I,s:s,s:o,s:s}", "name", s_column (stmt, 0),
                       "raft_id", (json_int_t) sqlite3_column_int64 (stmt, 1),
                       "raft", s_column (stmt, 2), "api",
                       s_text_or_null (stmt, 3), "key", s_column (stmt, 4)));
    s_done (stmt);
    return members;
}

bool
hs_fsm_configured (const struct raft_configuration *configuration, raft_id id)
{
    for (unsigned at = 0; at < configuration->n; at++)
        if (configuration->servers [at].id == id)
            return true;
    return false;
}

int
hs_fsm_configuration_applied (hs_fsm_t *self, raft_index index,
                              const struct raft_configuration *previous,
                              const struct raft_configuration *next)
{
    sf_fault_t fault;
    int rc = 0;
    s_run (self, S_BEGIN);
    for (unsigned at = 0; at < previous->n && rc == 0; at++) {
        raft_id id = previous->servers [at].id;
        if (hs_fsm_configured (next, id))
            continue;
        sqlite3_stmt *stmt = s_stmt (self, S_MEMBER_DROP);
        s_bind_int (stmt, 1, (int64_t) id);
        rc = s_exec_stmt (self, stmt, &fault);
        if (rc == 0) {
            stmt = s_stmt (self, S_REMOVED_PUT);
            s_bind_int (stmt, 1, (int64_t) id);
            s_bind_int (stmt, 2, (int64_t) index);
            rc = s_exec_stmt (self, stmt, &fault);
        }
    }
    if (rc == 0)
        s_run (self, S_COMMIT);
    else {
        sf_log_error ("hs_fsm: configuration at %llu: %s",
                      (unsigned long long) index, fault.message);
        s_run (self, S_ROLLBACK);
    }
    return rc;
}

bool
hs_fsm_member_removed (hs_fsm_t *self, raft_id id)
{
    sqlite3_stmt *stmt = s_stmt (self, S_REMOVED_GET);
    s_bind_int (stmt, 1, (int64_t) id);
    bool removed = sqlite3_step (stmt) == SQLITE_ROW;
    s_done (stmt);
    return removed;
}

//  player.key
static json_t *
s_player_key (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault)
{
    char *key = s_lookup (self, S_PLAYER_KEY, a->player);
    if (!key) {
        sf_fault_set (fault, SF_ENOTFOUND, "no player '%s'", a->player);
        return NULL;
    }
    json_t *result = json_pack ("{s:s,s:s}", "player", a->player, "key", key);
    free (key);
    return result;
}

//  entity.get: the entity, with the grant of its current epoch (null
//  while it has no authority, or the ring no key).
static json_t *
s_entity_read (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault)
{
    json_t *entity = s_entity_get (self, a->path, fault);
    if (entity)
        json_object_set_new (entity, "grant", s_grant_signed (self, a->path));
    return entity;
}

//  entity.grant: the grant alone, for a sim that lacks it.
static json_t *
s_entity_grant (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault)
{
    json_t *grant = s_grant_signed (self, a->path);
    if (json_is_object (grant))
        return json_pack ("{s:s,s:o}", "path", a->path, "grant", grant);
    json_decref (grant);
    char *master = s_lookup (self, S_ENTITY_MASTER, a->path);
    if (!master)
        sf_fault_set (fault, SF_ENOTFOUND, "no entity at '%s'", a->path);
    else if (!hs_fsm_has_ring_key (self))
        sf_fault_set (fault, SF_EUNAVAILABLE,
                      "the ring has no signing key yet; retry shortly");
    else
        sf_fault_set (fault, SF_ENOTFOUND, "'%s' has no authority, so no grant",
                      a->path);
    free (master);
    return NULL;
}

//  --------------------------------------------------------------------------
//  The operations' schemas and handlers, by HS_OP_MAP's id

//  Room for an operation's fields and the NULL that ends them.
#define S_OP_FIELDS 12

typedef struct {
    //  Its arguments besides "op" and "id" (and a read's "consistency",
    //  which s_parse checks), NULL-terminated: any other is refused.
    const char *fields [S_OP_FIELDS];
    //  Checks them and takes them into an s_args_t; NULL if none.
    int (*parse) (const json_t *args, s_args_t *a, sf_fault_t *fault);
    //  A command's handler, once the access is checked (hs_fsm_apply).
    json_t *(*apply) (s_apply_t *ctx);
    //  A read's handler (hs_fsm_read).
    json_t *(*read) (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault);
} s_op_t;

static json_t *
s_player_register (s_apply_t *ctx)
{
    return s_register (ctx, false, ctx->a->player);
}

static json_t *
s_sim_register (s_apply_t *ctx)
{
    return s_register (ctx, true, ctx->a->sim);
}

static json_t *
s_sim_read_list (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault)
{
    (void) a;
    (void) fault;
    return s_sim_list (self);
}

static json_t *
s_entity_read_list (hs_fsm_t *self, const s_args_t *a, sf_fault_t *fault)
{
    (void) fault;
    return s_entity_list (self, a);
}

//  Every operation's schema; reads' and writes' handlers. A control
//  operation's handler is hs_api's (cluster.add's command is applied
//  here).
// clang-format off
static const s_op_t s_ops [HS_OP_COUNT] = {
    [HS_OP_STATUS] = {{NULL}, NULL, NULL, NULL},
    [HS_OP_COUNTERS] = {{NULL}, NULL, NULL, NULL},
    [HS_OP_TRACE] = {{"trace"}, s_parse_trace, NULL, NULL},
    [HS_OP_CLUSTER_ADD] = {
        {"name", "raft_id", "raft", "api", "key"},
        s_parse_cluster_add, s_member_add, NULL},
    [HS_OP_CLUSTER_REMOVE] = {{"raft_id"}, s_parse_raft_id, NULL, NULL},
    [HS_OP_CLUSTER_TRANSFER] = {{"to"}, s_parse_cluster_transfer, NULL, NULL},
    [HS_OP_RING_FORWARD] = {
        {"principal", "request"}, s_parse_ring_forward, NULL, NULL},
    [HS_OP_LOAD] = {{NULL}, NULL, NULL, NULL},
    [HS_OP_EVENTS_READ] = {{"from", "prefix", "limit"}, s_parse_events_read,
                           NULL, NULL},
    [HS_OP_BACKUP_BEGIN] = {{NULL}, NULL, NULL, NULL},
    [HS_OP_BACKUP_READ] = {{"backup", "offset", "length"}, s_parse_backup_read,
                           NULL, NULL},
    [HS_OP_BACKUP_END] = {{"backup"}, s_parse_backup_end, NULL, NULL},
    [HS_OP_LOAD_MEMBER] = {{"report"}, s_parse_report, NULL, NULL},
    [HS_OP_PLAYER_REGISTER] = {
        {"player", "key"}, s_parse_player_register, s_player_register, NULL},
    [HS_OP_PLAYER_KEY] = {{"player"}, s_parse_player, NULL, s_player_key},
    [HS_OP_SIM_REGISTER] = {
        {"sim", "key", "handoff", "state", "api", "token", "registration"},
        s_parse_sim_register, s_sim_register, NULL},
    [HS_OP_SIM_HEARTBEAT] = {
        {"sim", "load"}, s_parse_sim_heartbeat, s_heartbeat, NULL},
    [HS_OP_SIM_LIST] = {{NULL}, NULL, NULL, s_sim_read_list},
    [HS_OP_SIM_EXPIRE] = {
        {"sim", "lease_ms"}, s_parse_sim_expire, s_sim_expire, NULL},
    [HS_OP_ENTITY_CREATE] = {
        {"path", "rule", "owner", "authority", "checkpoint"},
        s_parse_entity_create, s_entity_create, NULL},
    [HS_OP_ENTITY_IMPORT] = {
        {"entities", "authority"}, s_parse_entity_import, s_entity_import,
        NULL},
    [HS_OP_ENTITY_CHECKPOINT] = {
        {"sim", "entities"}, s_parse_entity_checkpoint, s_entity_checkpoint,
        NULL},
    [HS_OP_ENTITY_GET] = {{"path"}, s_parse_path, NULL, s_entity_read},
    [HS_OP_ENTITY_LIST] = {
        {"prefix", "after", "limit", "authority"}, s_parse_entity_list, NULL,
        s_entity_read_list},
    [HS_OP_ENTITY_SET_RULE] = {
        {"path", "rule"}, s_parse_entity_set_rule, s_entity_set_rule, NULL},
    [HS_OP_ENTITY_DELETE] = {{"path"}, s_parse_path, s_entity_delete, NULL},
    [HS_OP_AUTHORITY_REQUEST] = {
        {"path", "sim", "player", "timeout_ms", "paths"},
        s_parse_authority_request, s_authority_request, NULL},
    [HS_OP_FED_CLAIM] = {
        {"request", "path", "sim", "key", "handoff", "state", "instance",
         "timeout_ms", "player", "player_key", "claims"},
        s_parse_fed_claim, s_fed_claim, NULL},
    [HS_OP_FED_RELEASE] = {
        {"path", "sim", "checkpoint", "instance"}, s_parse_fed_release,
        s_fed_release, NULL},
    [HS_OP_FED_CHECKPOINT] = {
        {"sim", "entities", "instance"}, s_parse_fed_checkpoint,
        s_fed_checkpoint, NULL},
    [HS_OP_FED_EXPIRED] = {
        {"sim", "instance"}, s_parse_fed_expired, s_fed_expired, NULL},
    [HS_OP_FED_WITHDRAW] = {
        {"request", "instance"}, s_parse_fed_withdraw, s_fed_withdraw, NULL},
    [HS_OP_FED_INTENT] = {
        {"request", "path", "sim"}, s_parse_fed_intent, s_fed_intent, NULL},
    [HS_OP_FED_OUTCOME] = {
        {"request", "path", "sim", "outcome", "outcomes"}, s_parse_fed_outcome,
        s_fed_outcome, NULL},
    [HS_OP_BALANCE_MOVE] = {
        {"move", "group", "from", "to", "paths", "reason", "ask",
         "timeout_ms"},
        s_parse_balance_move, s_balance_move, NULL},
    [HS_OP_BALANCE_MOVES] = {
        {"limit"}, s_parse_balance_moves, NULL, s_balance_moves_read},
    [HS_OP_SIM_DRAIN] = {{"sim", "drain"}, s_parse_sim_drain, s_sim_drain, NULL},
    [HS_OP_FED_FENCED] = {
        {"path", "epoch", "sim", "authority", "key", "handoff", "instance"},
        s_parse_fed_fenced, s_fed_fenced, NULL},
    [HS_OP_AUTHORITY_ANSWER] = {
        {"transfer", "sim", "approve"}, s_parse_authority_answer,
        s_authority_answer, NULL},
    [HS_OP_AUTHORITY_EXPIRE] = {
        {"transfer"}, s_parse_authority_expire, s_authority_expire, NULL},
    [HS_OP_AUTHORITY_RELEASE] = {
        {"path", "sim", "checkpoint"}, s_parse_authority_release,
        s_authority_release, NULL},
    [HS_OP_ENTITY_GRANT] = {{"path"}, s_parse_path, NULL, s_entity_grant},
    [HS_OP_RING_KEY] = {
        {"public", "secret"}, s_parse_ring_key, s_ring_key, NULL},
    [HS_OP_RING_ROTATE_KEY] = {
        {"grace_ms", "public", "secret"}, s_parse_ring_key,
        s_ring_rotate_key, NULL},
    [HS_OP_ACCESS_CREATE] = {{"principal", "ttl_ms", "note", "token_id", "hash"},
                              s_parse_access_create, s_access_create, NULL},
    [HS_OP_ACCESS_REVOKE] = {
        {"token_id"}, s_parse_access_revoke, s_access_revoke, NULL},
    [HS_OP_ACCESS_LIST] = {{NULL}, NULL, NULL, s_access_list},
    [HS_OP_TOKEN_CREATE] = {
        {"sim", "ttl_ms", "hash"}, s_parse_token_create, s_token_create,
        NULL},
};
// clang-format on

#define HS_OP_ROW(id, name, kind, access, route) \
    {id, name, kind, access, route},
static const hs_op_t s_op_rows [HS_OP_COUNT] = {HS_OP_MAP (HS_OP_ROW)};
#undef HS_OP_ROW

const hs_op_t *
hs_op_find (const char *name)
{
    for (int id = 0; id < HS_OP_COUNT; id++)
        if (strcmp (s_op_rows [id].name, name) == 0)
            return &s_op_rows [id];
    return NULL;
}

const hs_op_t *
hs_op_get (hs_op_id_t id)
{
    assert (id < HS_OP_COUNT);
    return &s_op_rows [id];
}

//  Parse ARGS of operation ROW into A: no field beyond its schema's, then
//  a read's consistency, then its own checks. Returns 0, or -1 with FAULT.
static int
s_parse (const hs_op_t *row, const json_t *args, s_args_t *a, sf_fault_t *fault)
{
    memset (a, 0, sizeof *a);
    const s_op_t *op = &s_ops [row->id];
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) args, key, value)
    {
        bool known = streq (key, "op") || streq (key, "id")
                     || (row->kind == HS_OP_READ && streq (key, "consistency"));
        for (const char *const *field = op->fields; *field && !known; field++)
            known = streq (*field, key);
        if (!known)
            return sf_fault_set (fault, SF_EINVAL, "unknown field '%s'", key);
    }
    if (row->kind == HS_OP_READ) {
        const char *consistency = "linearizable";
        sf_fault_t ignored;
        if (sf_json_string (args, "consistency", false, &consistency, &ignored)
            || (strcmp (consistency, "linearizable")
                && strcmp (consistency, "stale")))
            return sf_fault_set (fault, SF_EINVAL,
                                 "field 'consistency' must be linearizable "
                                 "or stale");
    }
    return op->parse ? op->parse (args, a, fault) : 0;
}

//  The principal may call operation ROW with the parsed arguments, as the
//  state stands (HS_OP_MAP's access). Returns 0, or -1 with FAULT.
static int
s_access (s_apply_t *ctx, const hs_op_t *row)
{
    switch (row->access) {
        case HS_OP_SIM:
            return s_acts_for_sim (ctx, ctx->a->sim);
        case HS_OP_MASTER:
            return s_is_master (ctx, row->name);
        case HS_OP_PEER:
            //  Only a leader puts it in the log, for a peer instance it
            //  admitted (hs_fed), with the instance's name in "instance".
            return 0;
        case HS_OP_ADMIN:
        case HS_OP_MEMBER:
            return ctx->cmd->admin ? 0
                                   : sf_fault_set (ctx->fault, SF_EUNAUTHORIZED,
                                                   "%s needs an administrator "
                                                   "key",
                                                   row->name);
        case HS_OP_ANYONE:
            break;
    }
    return 0;
}

int
hs_fsm_check (const char *op, const json_t *args, sf_fault_t *fault)
{
    const hs_op_t *row = hs_op_find (op);
    if (!row)
        return sf_fault_set (fault, SF_EUNKNOWNOP, "no such operation '%s'",
                             op);
    s_args_t parsed;
    return s_parse (row, args, &parsed, fault);
}

json_t *
hs_fsm_read (hs_fsm_t *self, const char *op, const json_t *args,
             sf_fault_t *fault)
{
    const hs_op_t *row = hs_op_find (op);
    if (!row || !s_ops [row->id].read) {
        sf_fault_set (fault, SF_EUNKNOWNOP, "no such read '%s'", op);
        return NULL;
    }
    s_args_t a;
    if (s_parse (row, args, &a, fault))
        return NULL;
    return s_ops [row->id].read (self, &a, fault);
}

json_t *
hs_fsm_apply (hs_fsm_t *self, raft_index index, const void *data, size_t size,
              sf_fault_t *fault)
{
    ring_cmd_t cmd;
    json_t *result = NULL;
    if (ring_cmd_decode (&cmd, (const uint8_t *) data, size)) {
        sf_log_error ("hs_fsm: undecodable command at %llu skipped",
                      (unsigned long long) index);
        sf_fault_set (fault, SF_EINTERNAL, "undecodable command");
        self->applied = index;
        return NULL;
    }
    char principal [41];
    ring_cmd_principal (&cmd, principal);
    s_args_t parsed;
    s_apply_t ctx = {self, index, &cmd, principal, &parsed, fault};
    //  One transaction per command: it applies whole or not at all.
    s_run (self, S_BEGIN);
    //  Whether it changed anything is whether it wrote a row: a request
    //  that finds what it asks for done already (the current authority
    //  asking again, a player registering the key it has) is answered but
    //  due no event. Same statements on the same state: the same on every
    //  member.
    sqlite3_int64 writes = sqlite3_total_changes64 (self->db);
    const hs_op_t *row = hs_op_find (cmd.op);
    if (!row || !s_ops [row->id].apply)
        sf_fault_set (fault, SF_EUNKNOWNOP, "no such write '%s'", cmd.op);
    else if (s_parse (row, cmd.args, &parsed, fault) == 0
             && s_access (&ctx, row) == 0)
        result = s_ops [row->id].apply (&ctx);
    if (result) {
        if (sqlite3_total_changes64 (self->db) != writes)
            self->change = index;
        s_run (self, S_COMMIT);
    }
    else
        s_run (self, S_ROLLBACK);
    self->applied = index;
    ring_cmd_release (&cmd);
    return result;
}

//  --------------------------------------------------------------------------
//  Lifecycle and snapshots

hs_fsm_t *
hs_fsm_new (sf_fault_t *fault)
{
    hs_fsm_t *self = (hs_fsm_t *) calloc (1, sizeof (hs_fsm_t));
    assert (self);
    if (s_open (&self->db, self->stmts, NULL, 0, fault)) {
        free (self);
        return NULL;
    }
    return self;
}

void
hs_fsm_destroy (hs_fsm_t **self_p)
{
    if (*self_p) {
        s_close ((*self_p)->db, (*self_p)->stmts);
        free (*self_p);
        *self_p = NULL;
    }
}

int
hs_fsm_reset_members (hs_fsm_t *self, const json_t *members, sf_fault_t *fault)
{
    if (sqlite3_exec (self->db, "DELETE FROM members; DELETE FROM removed;",
                      NULL, NULL, NULL)
        != SQLITE_OK)
        return sf_fault_set (fault, SF_ESTORE, "cannot reset the members: %s",
                             sqlite3_errmsg (self->db));
    size_t index;
    json_t *member;
    json_array_foreach (members, index, member)
    {
        sqlite3_stmt *stmt = s_stmt (self, S_MEMBER_PUT);
        s_bind_text (stmt, 1,
                     json_string_value (json_object_get (member, "name")));
        s_bind_int (stmt, 2,
                    json_integer_value (json_object_get (member, "raft_id")));
        s_bind_text (stmt, 3,
                     json_string_value (json_object_get (member, "raft")));
        s_bind_text (stmt, 4,
                     json_string_value (json_object_get (member, "api")));
        s_bind_text (stmt, 5,
                     json_string_value (json_object_get (member, "key")));
        int rc = sqlite3_step (stmt);
        s_done (stmt);
        if (rc != SQLITE_DONE)
            return sf_fault_set (
                fault, SF_ESTORE, "cannot record member %s: %s",
                json_string_value (json_object_get (member, "name")),
                sqlite3_errmsg (self->db));
    }
    return 0;
}

raft_index
hs_fsm_applied (hs_fsm_t *self)
{
    return self->applied;
}

raft_index
hs_fsm_last_change (hs_fsm_t *self)
{
    return self->change;
}

void
hs_fsm_set_applied (hs_fsm_t *self, raft_index index)
{
    self->applied = index;
}

int
hs_fsm_snapshot (hs_fsm_t *self, struct raft_buffer *data)
{
    s_set_meta (self, "applied", self->applied);
    s_set_meta (self, "change", self->change);
    //  The in-memory database is one buffer: copy it once, straight
    //  from there, rather than have SQLite copy it first (the loop waits
    //  for the copy: a snapshot's and a backup's pause).
    sqlite3_int64 size = 0;
    unsigned char *image =
        sqlite3_serialize (self->db, "main", &size, SQLITE_SERIALIZE_NOCOPY);
    bool lent = image != NULL;
    if (!image)
        image = sqlite3_serialize (self->db, "main", &size, 0);
    if (!image)
        return -1;
    data->base = raft_malloc ((size_t) size);
    data->len = (size_t) size;
    memcpy (data->base, image, (size_t) size);
    if (!lent)
        sqlite3_free (image);
    return 0;
}

int
hs_fsm_restore (hs_fsm_t *self, const struct raft_buffer *data)
{
    //  The image opens as a database of its own, with its statements, and
    //  replaces the current one only once all is well: a bad image leaves
    //  the state machine as it was. Both are in memory for that moment.
    sqlite3 *db = NULL;
    sqlite3_stmt *stmts [S_STMT_COUNT];
    sf_fault_t fault;
    if (s_open (&db, stmts, data->base, data->len, &fault)) {
        sf_log_error ("hs_fsm: snapshot image refused: %s", fault.message);
        return -1;
    }
    sqlite3_stmt *meta = stmts [S_META_GET];
    if (sqlite3_step (meta) != SQLITE_ROW
        || sqlite3_column_type (meta, 0) == SQLITE_NULL
        || sqlite3_column_type (meta, 1) == SQLITE_NULL) {
        sf_log_error ("hs_fsm: snapshot image without its counters");
        s_close (db, stmts);
        return -1;
    }
    self->applied = (raft_index) sqlite3_column_int64 (meta, 0);
    self->change = (raft_index) sqlite3_column_int64 (meta, 1);
    sqlite3_reset (meta);
    s_close (self->db, self->stmts);
    self->db = db;
    memcpy (self->stmts, stmts, sizeof stmts);
    return 0;
}

//  --------------------------------------------------------------------------
//  Self test

//  Apply OP with ARGS (JSON text) as PRINCIPAL; return result or NULL.
static json_t *
s_test_apply (hs_fsm_t *fsm, raft_index index, const char *op,
              const char *args_text, const char *principal, bool admin,
              sf_fault_t *fault)
{
    json_t *args = json_loads (args_text, 0, NULL);
    assert (args);
    uint8_t *data;
    size_t size;
    int rc = ring_cmd_encode (op, principal, admin, 1000 + index, args, &data,
                              &size);
    assert (rc == 0);
    json_decref (args);
    json_t *result = hs_fsm_apply (fsm, index, data, size, fault);
    free (data);
    return result;
}

//  balance.move and sim.drain (load.md sections 6 and 7): a decision
//  grants what FROM holds under allow, skips the rest with a reason,
//  asks with "ask", and is kept; a draining sim takes nothing.
static void
s_test_balance (void)
{
    sf_fault_t fault;
    hs_fsm_t *fsm = hs_fsm_new (&fault);
    assert (fsm);
    zcert_t *admin_cert = zcert_new ();
    const char *admin = zcert_public_txt (admin_cert);
    raft_index index = 1;
    char text [512];
    static const char *const sims [] = {"a", "b", "c"};
    for (size_t at = 0; at < 3; at++) {
        zcert_t *cert = zcert_new ();
        snprintf (text, sizeof text, "{\"sim\":\"%s\",\"key\":\"%s\"}",
                  sims [at], zcert_public_txt (cert));
        json_t *done = s_test_apply (fsm, ++index, "sim.register", text, admin,
                                     true, &fault);
        assert (done);
        json_decref (done);
        zcert_destroy (&cert);
    }
    //  /r/1 allow, /r/2 deny, /r/3 ask, /r/4 allow but held by c; all a's
    //  but the last.
    static const char *const made [][3] = {{"/r/1", "allow", "a"},
                                           {"/r/2", "deny", "a"},
                                           {"/r/3", "ask", "a"},
                                           {"/r/4", "allow", "c"},
                                           {"/r/5/deep", "allow", "a"}};
    for (size_t at = 0; at < 5; at++) {
        snprintf (text, sizeof text,
                  "{\"path\":\"%s\",\"rule\":\"%s\",\"authority\":\"%s\"}",
                  made [at][0], made [at][1], made [at][2]);
        json_t *done = s_test_apply (fsm, ++index, "entity.create", text, admin,
                                     true, &fault);
        assert (done);
        json_decref (done);
    }
    json_t *held = hs_fsm_group_held (fsm, "/r", "a", NULL, 10);
    assert (json_array_size (held) == 3);  //  not /r/4 (c's), nor /r/5/deep
    json_decref (held);
    //  What players own, by the sim holding it: a's /s/1 only.
    zcert_t *player_cert = zcert_new ();
    snprintf (text, sizeof text, "{\"player\":\"p\",\"key\":\"%s\"}",
              zcert_public_txt (player_cert));
    json_t *registered = s_test_apply (fsm, ++index, "player.register", text,
                                       admin, true, &fault);
    assert (registered);
    json_decref (registered);
    zcert_destroy (&player_cert);
    static const char *const owned [][2] = {{"/s/1", "a"}, {"/s/2", "c"}};
    for (size_t at = 0; at < 2; at++) {
        snprintf (text, sizeof text,
                  "{\"path\":\"%s\",\"owner\":\"p\",\"authority\":\"%s\"}",
                  owned [at][0], owned [at][1]);
        json_t *done = s_test_apply (fsm, ++index, "entity.create", text, admin,
                                     true, &fault);
        assert (done);
        json_decref (done);
    }
    held = hs_fsm_owned_held (fsm, "a", 10);
    assert (json_array_size (held) == 1);
    const json_t *mine = json_array_get (held, 0);
    assert (streq (json_string_value (json_object_get (mine, "path")), "/s/1"));
    assert (streq (json_string_value (json_object_get (mine, "owner")), "p"));
    json_decref (held);
    held = hs_fsm_group_held (fsm, "/r", "a", "/r/1", 1);
    assert (json_array_size (held) == 1
            && streq (json_string_value (
                          json_object_get (json_array_get (held, 0), "path")),
                      "/r/2"));
    json_decref (held);

    static const char *move =
        "{\"move\":\"1.1\",\"group\":\"/r\",\"from\":\"a\",\"to\":\"b\","
        "\"paths\":[\"/r/1\",\"/r/2\",\"/r/3\",\"/r/4\",\"/r/9\"],"
        "\"reason\":\"above band\"}";
    //  Only an administrator (the ring's own) decides.
    json_t *result =
        s_test_apply (fsm, ++index, "balance.move", move, admin, false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    result =
        s_test_apply (fsm, ++index, "balance.move", move, admin, true, &fault);
    assert (result);
    assert (json_integer_value (json_object_get (result, "moved")) == 1);
    const json_t *granted =
        json_array_get (json_object_get (result, "results"), 0);
    assert (
        streq (json_string_value (json_object_get (granted, "path")), "/r/1"));
    assert (json_integer_value (json_object_get (granted, "epoch")) == 2);
    assert (
        streq (json_string_value (json_object_get (granted, "previous")), "a"));
    static const char *const reasons [][2] = {
        {"/r/2", "deny"}, {"/r/3", "ask"}, {"/r/4", "moved"}, {"/r/9", "gone"}};
    const json_t *skipped = json_object_get (result, "skipped");
    assert (json_array_size (skipped) == 4);
    for (size_t at = 0; at < 4; at++) {
        const json_t *item = json_array_get (skipped, at);
        assert (streq (json_string_value (json_object_get (item, "path")),
                       reasons [at][0]));
        assert (streq (json_string_value (json_object_get (item, "reason")),
                       reasons [at][1]));
    }
    json_decref (result);
    //  The same decision again moves nothing: /r/1 is b's now.
    result =
        s_test_apply (fsm, ++index, "balance.move", move, admin, true, &fault);
    assert (result
            && json_integer_value (json_object_get (result, "moved")) == 0);
    json_decref (result);
    json_t *moves = hs_fsm_moves (fsm, 0, 50);
    assert (json_array_size (moves) == 2);
    assert (json_integer_value (
                json_object_get (json_array_get (moves, 1), "moved"))
            == 1);
    assert (json_integer_value (
                json_object_get (json_array_get (moves, 0), "index"))
            == (json_int_t) index);
    json_decref (moves);
    //  The ask form asks a for /r/3, for b.
    result = s_test_apply (fsm, ++index, "balance.move",
                           "{\"move\":\"1.2\",\"group\":\"/r\",\"from\":"
                           "\"a\",\"to\":\"b\",\"paths\":[\"/r/3\"],"
                           "\"reason\":\"above band\",\"ask\":true}",
                           admin, true, &fault);
    assert (result && json_is_true (json_object_get (result, "pending")));
    assert (streq (json_string_value (json_object_get (result, "to")), "b"));
    json_decref (result);
    //  Refused whole: an unknown target, the same sim twice, two paths
    //  with ask.
    result = s_test_apply (fsm, ++index, "balance.move",
                           "{\"move\":\"1.3\",\"group\":\"/r\",\"from\":"
                           "\"a\",\"to\":\"zz\",\"paths\":[\"/r/1\"],"
                           "\"reason\":\"x\"}",
                           admin, true, &fault);
    assert (!result && fault.error == SF_ENOTFOUND);
    result = s_test_apply (fsm, ++index, "balance.move",
                           "{\"move\":\"1.3\",\"group\":\"/r\",\"from\":"
                           "\"a\",\"to\":\"a\",\"paths\":[\"/r/1\"],"
                           "\"reason\":\"x\"}",
                           admin, true, &fault);
    assert (!result && fault.error == SF_EINVAL);
    result = s_test_apply (fsm, ++index, "balance.move",
                           "{\"move\":\"1.3\",\"group\":\"/r\",\"from\":"
                           "\"a\",\"to\":\"b\",\"paths\":[\"/r/1\",\"/r/2\"],"
                           "\"reason\":\"x\",\"ask\":true}",
                           admin, true, &fault);
    assert (!result && fault.error == SF_EINVAL);

    //  Draining c: listed, takes nothing, by a move or its own claim.
    result =
        s_test_apply (fsm, ++index, "sim.drain",
                      "{\"sim\":\"c\",\"drain\":true}", admin, false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    result =
        s_test_apply (fsm, ++index, "sim.drain",
                      "{\"sim\":\"c\",\"drain\":true}", admin, true, &fault);
    assert (result && json_is_true (json_object_get (result, "draining")));
    json_decref (result);
    zlist_t *draining = hs_fsm_draining (fsm);
    assert (zlist_size (draining) == 1
            && streq ((const char *) zlist_first (draining), "c"));
    zlist_destroy (&draining);
    result = s_test_apply (fsm, ++index, "balance.move",
                           "{\"move\":\"1.4\",\"group\":\"/r\",\"from\":"
                           "\"b\",\"to\":\"c\",\"paths\":[\"/r/1\"],"
                           "\"reason\":\"x\"}",
                           admin, true, &fault);
    assert (!result && fault.error == SF_EUNAVAILABLE);
    result =
        s_test_apply (fsm, ++index, "authority.request",
                      "{\"path\":\"/r/1\",\"sim\":\"c\"}", admin, true, &fault);
    assert (!result && fault.error == SF_EUNAVAILABLE);
    result = hs_fsm_read (fsm, "sim.list", NULL, &fault);
    const json_t *listed = json_object_get (result, "sims");
    for (size_t at = 0; at < json_array_size (listed); at++) {
        const json_t *sim = json_array_get (listed, at);
        bool is_c =
            streq (json_string_value (json_object_get (sim, "sim")), "c");
        assert (json_is_true (json_object_get (sim, "draining")) == is_c);
    }
    json_decref (result);
    result =
        s_test_apply (fsm, ++index, "sim.drain",
                      "{\"sim\":\"c\",\"drain\":false}", admin, true, &fault);
    assert (result && json_is_false (json_object_get (result, "draining")));
    json_decref (result);
    draining = hs_fsm_draining (fsm);
    assert (zlist_size (draining) == 0);
    zlist_destroy (&draining);
    hs_fsm_destroy (&fsm);
    zcert_destroy (&admin_cert);
}

int
hs_fsm_test (bool verbose)
{
    if (verbose)
        printf (" * hs_fsm: ");
    sf_log_open ("hs_fsm", SF_LOG_WARNING, NULL, NULL);

    sf_fault_t fault;
    hs_fsm_t *fsm = hs_fsm_new (&fault);
    assert (fsm);
    zcert_t *alice_cert = zcert_new (), *bob_cert = zcert_new ();
    const char *alice = zcert_public_txt (alice_cert);
    const char *bob = zcert_public_txt (bob_cert);
    raft_index index = 1;

    //  Players register their own keys; nobody else's.
    json_t *result =
        s_test_apply (fsm, ++index, "player.register", "{\"player\":\"alice\"}",
                      alice, false, &fault);
    assert (result);
    assert (strcmp (json_string_value (json_object_get (result, "key")), alice)
            == 0);
    json_decref (result);
    result = s_test_apply (fsm, ++index, "player.register",
                           "{\"player\":\"alice\"}", bob, false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    //  The key it has again: answered, but nothing changed, no event due.
    raft_index changed = hs_fsm_last_change (fsm);
    result = s_test_apply (fsm, ++index, "player.register",
                           "{\"player\":\"alice\"}", alice, false, &fault);
    assert (result);
    json_decref (result);
    assert (hs_fsm_last_change (fsm) == changed);

    //  A ring member recorded; the same again changes nothing; another
    //  endpoint, or no API endpoint, does. Answered alike each time.
    char member [256];
    const char *apis [] = {",\"api\":\"tcp://h4:7100\"", "", ""};
    const bool changes [] = {true, true, false};
    for (int at = 0; at < 3; at++) {
        snprintf (member, sizeof member,
                  "{\"name\":\"hs4\",\"raft_id\":4,\"raft\":"
                  "\"tcp://h4:7101\",\"key\":\"%s\"%s}",
                  alice, apis [at]);
        for (int again = 0; again < 2; again++) {
            changed = hs_fsm_last_change (fsm);
            result = s_test_apply (fsm, ++index, "cluster.add", member, bob,
                                   true, &fault);
            assert (result);
            assert (json_integer_value (json_object_get (result, "raft_id"))
                    == 4);
            json_decref (result);
            assert (hs_fsm_last_change (fsm)
                    == (changes [at] && !again ? index : changed));
        }
    }
    json_t *members = hs_fsm_members (fsm);
    assert (json_array_size (members) == 1);
    assert (
        json_is_null (json_object_get (json_array_get (members, 0), "api")));
    json_decref (members);

    //  A name or a key another raft id has, or a raft id at another raft
    //  address, is refused and leaves the table as it was.
    const char *clashes [] = {
        "{\"name\":\"hs4\",\"raft_id\":5,\"raft\":\"tcp://h5:7101\","
        "\"key\":\"%s\"}",
        "{\"name\":\"hs5\",\"raft_id\":4,\"raft\":\"tcp://h5:7101\","
        "\"key\":\"%s\"}",
        "{\"name\":\"hs5\",\"raft_id\":5,\"raft\":\"tcp://h5:7101\","
        "\"key\":\"%s\"}",
    };
    for (int at = 0; at < 3; at++) {
        snprintf (member, sizeof member, clashes [at], alice);
        changed = hs_fsm_last_change (fsm);
        result = s_test_apply (fsm, ++index, "cluster.add", member, bob, true,
                               &fault);
        assert (!result);
        assert (fault.error == SF_ECONFLICT);
        assert (hs_fsm_last_change (fsm) == changed);
        members = hs_fsm_members (fsm);
        json_t *only = json_array_get (members, 0);
        assert (json_array_size (members) == 1);
        assert (
            streq (json_string_value (json_object_get (only, "name")), "hs4"));
        assert (json_integer_value (json_object_get (only, "raft_id")) == 4);
        assert (streq (json_string_value (json_object_get (only, "raft")),
                       "tcp://h4:7101"));
        json_decref (members);
    }

    //  The table follows the configuration: a member that leaves it loses
    //  its row and is recorded as removed, through snapshots, until it is
    //  added again. The others stay as they are.
    struct raft_configuration before, after;
    raft_configuration_init (&before);
    raft_configuration_init (&after);
    int added = raft_configuration_add (&before, 1, "tcp://h1:7101", 1)
                | raft_configuration_add (&before, 4, "tcp://h4:7101", 1)
                | raft_configuration_add (&after, 1, "tcp://h1:7101", 1);
    assert (added == 0);
    assert (!hs_fsm_member_removed (fsm, 4));
    changed = hs_fsm_last_change (fsm);
    int applied = hs_fsm_configuration_applied (fsm, ++index, &before, &after);
    assert (applied == 0);
    assert (hs_fsm_last_change (fsm) == changed);
    assert (hs_fsm_member_removed (fsm, 4));
    assert (!hs_fsm_member_removed (fsm, 1));
    members = hs_fsm_members (fsm);
    assert (json_array_size (members) == 0);
    json_decref (members);
    struct raft_buffer members_image;
    int taken = hs_fsm_snapshot (fsm, &members_image);
    assert (taken == 0);
    int back = hs_fsm_restore (fsm, &members_image);
    assert (back == 0);
    raft_free (members_image.base);
    assert (hs_fsm_member_removed (fsm, 4));
    //  The same configuration again: nobody left.
    applied = hs_fsm_configuration_applied (fsm, ++index, &after, &after);
    assert (applied == 0);
    assert (!hs_fsm_member_removed (fsm, 1));
    snprintf (member, sizeof member,
              "{\"name\":\"hs4\",\"raft_id\":4,\"raft\":"
              "\"tcp://h4:7102\",\"key\":\"%s\"}",
              alice);
    result =
        s_test_apply (fsm, ++index, "cluster.add", member, bob, true, &fault);
    assert (result);
    json_decref (result);
    assert (!hs_fsm_member_removed (fsm, 4));
    members = hs_fsm_members (fsm);
    assert (json_array_size (members) == 1);
    json_decref (members);
    raft_configuration_close (&before);
    raft_configuration_close (&after);

    //  A new sim needs a join token (grants.md section 6): none, an unknown
    //  one, one for another name, an expired one are refused; a valid one
    //  admits it once.
    const char *sim1 = "{\"sim\":\"sim1\",\"handoff\":\"tcp://h:1\","
                       "\"state\":\"udp://h:2\"%s%s%s}";
    char register_args [512];
    snprintf (register_args, sizeof register_args, sim1, "", "", "");
    result = s_test_apply (fsm, ++index, "sim.register", register_args, bob,
                           false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    assert (strstr (fault.message, "needs a join token"));
    char tokens [4][41];
    for (int at = 0; at < 4; at++) {
        uint8_t token [32], hash [32];
        char hash_text [41];
        randombytes_buf (token, sizeof token);
        zmq_z85_encode (tokens [at], token, sizeof token);
        crypto_generichash (hash, sizeof hash, token, sizeof token, NULL, 0);
        zmq_z85_encode (hash_text, hash, sizeof hash);
        //  0: for sim1; 1: for another name; 2: expires at once; 3: unknown
        if (at == 3)
            break;
        snprintf (register_args, sizeof register_args,
                  "{\"sim\":\"%s\",\"ttl_ms\":%d,\"hash\":\"%s\"}",
                  at == 1 ? "other" : "sim1", at == 2 ? 1000 : 60000,
                  hash_text);
        result = s_test_apply (fsm, ++index, "token.create", register_args,
                               alice, false, &fault);
        assert (!result && fault.error == SF_EUNAUTHORIZED);
        result = s_test_apply (fsm, ++index, "token.create", register_args,
                               alice, true, &fault);
        assert (result);
        assert (!json_object_get (result, "hash"));
        json_decref (result);
    }
    index += 2000;  //  token 2 expires
    const char *problems [] = {"is for another sim name", "has expired",
                               "is unknown"};
    for (int at = 1; at < 4; at++) {
        snprintf (register_args, sizeof register_args, sim1, ",\"token\":\"",
                  tokens [at], "\"");
        changed = hs_fsm_last_change (fsm);
        result = s_test_apply (fsm, ++index, "sim.register", register_args, bob,
                               false, &fault);
        assert (!result && fault.error == SF_EUNAUTHORIZED);
        assert (strstr (fault.message, problems [at - 1]));
        assert (hs_fsm_last_change (fsm) == changed);
    }
    //  A sim registers with endpoints; only it sends its heartbeats.
    snprintf (register_args, sizeof register_args, sim1, ",\"token\":\"",
              tokens [0], "\"");
    result = s_test_apply (fsm, ++index, "sim.register", register_args, bob,
                           false, &fault);
    assert (result);
    json_decref (result);
    assert (hs_fsm_last_change (fsm) == index);
    //  Once registered it needs no token; the used one admits nobody else.
    result = s_test_apply (fsm, ++index, "sim.register", register_args, bob,
                           false, &fault);
    assert (result);
    json_decref (result);
    zcert_t *eve_cert = zcert_new ();
    result = s_test_apply (fsm, ++index, "sim.register", "{\"sim\":\"sim1\"}",
                           zcert_public_txt (eve_cert), false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    snprintf (register_args, sizeof register_args,
              "{\"sim\":\"eve\",\"token\":\"%s\"}", tokens [0]);
    result = s_test_apply (fsm, ++index, "sim.register", register_args,
                           zcert_public_txt (eve_cert), false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    assert (strstr (fault.message, "is for another sim name"));
    zcert_destroy (&eve_cert);
    //  Another key may not re-key a registered sim, whatever was registered
    //  before it (a player, here: issue 21's takeover).
    zcert_t *mallory_cert = zcert_new ();
    result = s_test_apply (fsm, ++index, "sim.register", "{\"sim\":\"sim1\"}",
                           zcert_public_txt (mallory_cert), false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    assert (strstr (fault.message, "sim 'sim1' is registered to another key"));
    zcert_destroy (&mallory_cert);
    json_t *no_args = json_object ();
    json_t *sims = hs_fsm_read (fsm, "sim.list", no_args, &fault);
    json_decref (no_args);
    assert (sims);
    json_t *listed = json_object_get (sims, "sims");
    assert (json_array_size (listed) == 1);
    assert (streq (
        json_string_value (json_object_get (json_array_get (listed, 0), "key")),
        bob));
    json_decref (sims);
    result = s_test_apply (fsm, ++index, "sim.heartbeat",
                           "{\"sim\":\"sim1\",\"load\":{\"entities\":3}}",
                           alice, false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    result = s_test_apply (fsm, ++index, "sim.heartbeat",
                           "{\"sim\":\"sim1\",\"load\":{\"entities\":3}}", bob,
                           false, &fault);
    assert (result);
    //  Nothing was taken from it yet.
    assert (json_integer_value (json_object_get (result, "taken_index")) == 0);
    json_decref (result);

    //  Entities: create, refuse duplicates and unknown references.
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"/world/a\",\"rule\":\"ask\","
                           "\"owner\":\"alice\",\"authority\":\"sim1\"}",
                           alice, false, &fault);
    assert (result);
    assert (json_integer_value (json_object_get (result, "epoch")) == 1);
    assert (
        strcmp (json_string_value (json_object_get (result, "master")), alice)
        == 0);
    json_decref (result);
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"/world/a\"}", alice, false, &fault);
    assert (!result && fault.error == SF_EEXISTS);
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"/world/b\",\"owner\":\"nobody\"}",
                           alice, false, &fault);
    assert (!result && fault.error == SF_ENOTFOUND);
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"bad path\"}", alice, false, &fault);
    assert (!result && fault.error == SF_EINVAL);

    //  Only the master (or an admin) changes the rule.
    result = s_test_apply (fsm, ++index, "entity.set_rule",
                           "{\"path\":\"/world/a\",\"rule\":\"deny\"}", bob,
                           false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    assert (strstr (fault.message, "only the master"));
    result = s_test_apply (fsm, ++index, "entity.set_rule",
                           "{\"path\":\"/world/a\",\"rule\":\"deny\"}", alice,
                           false, &fault);
    assert (result);
    assert (
        strcmp (json_string_value (json_object_get (result, "rule")), "deny")
        == 0);
    json_decref (result);

    //  Listing pages through a prefix.
    for (int at = 0; at < 5; at++) {
        char args [64];
        snprintf (args, sizeof args, "{\"path\":\"/world/z%d\"}", at);
        result = s_test_apply (fsm, ++index, "entity.create", args, bob, false,
                               &fault);
        assert (result);
        json_decref (result);
    }
    json_t *query = json_pack ("{s:s,s:i}", "prefix", "/world/z", "limit", 3);
    json_t *page = hs_fsm_read (fsm, "entity.list", query, &fault);
    assert (page);
    assert (json_array_size (json_object_get (page, "entities")) == 3);
    const char *next = json_string_value (json_object_get (page, "next"));
    assert (next && strcmp (next, "/world/z2") == 0);
    json_object_set_new (query, "after", json_string (next));
    json_t *second = hs_fsm_read (fsm, "entity.list", query, &fault);
    assert (json_array_size (json_object_get (second, "entities")) == 2);
    assert (json_is_null (json_object_get (second, "next")));
    json_decref (second);
    json_decref (page);
    json_decref (query);

    //  A snapshot restores into another state machine, identical.
    struct raft_buffer image;
    int rc = hs_fsm_snapshot (fsm, &image);
    assert (rc == 0);
    hs_fsm_t *copy = hs_fsm_new (&fault);
    assert (copy);
    rc = hs_fsm_restore (copy, &image);
    assert (rc == 0);
    assert (hs_fsm_applied (copy) == index);
    assert (hs_fsm_last_change (copy) == hs_fsm_last_change (fsm));
    //  A bad image is refused and leaves the state machine as it was.
    char garbage [4096];
    memset (garbage, 'x', sizeof garbage);
    struct raft_buffer bad = {garbage, sizeof garbage};
    rc = hs_fsm_restore (copy, &bad);
    assert (rc == -1);
    assert (hs_fsm_applied (copy) == index);
    raft_free (image.base);
    //  The restored database runs every statement, its own prepared: the
    //  same command applies alike on both.
    json_t *on_copy =
        s_test_apply (copy, index + 1, "entity.create",
                      "{\"path\":\"/world/copy\"}", alice, false, &fault);
    assert (on_copy);
    json_t *on_fsm =
        s_test_apply (fsm, index + 1, "entity.create",
                      "{\"path\":\"/world/copy\"}", alice, false, &fault);
    assert (on_fsm && json_equal (on_copy, on_fsm));
    json_decref (on_copy);
    json_decref (on_fsm);
    index++;
    query = json_pack ("{s:s}", "path", "/world/a");
    json_t *original = hs_fsm_read (fsm, "entity.get", query, &fault);
    json_t *restored = hs_fsm_read (copy, "entity.get", query, &fault);
    assert (original && restored && json_equal (original, restored));
    json_decref (original);
    json_decref (restored);
    json_decref (query);
    query = json_pack ("{s:s}", "player", "alice");
    json_t *key = hs_fsm_read (copy, "player.key", query, &fault);
    assert (key);
    json_decref (key);
    json_decref (query);

    //  Deleting needs the master; then the entity is gone.
    result = s_test_apply (fsm, ++index, "entity.delete",
                           "{\"path\":\"/world/a\"}", bob, false, &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    result = s_test_apply (fsm, ++index, "entity.delete",
                           "{\"path\":\"/world/a\"}", bob, true, &fault);
    assert (result);
    json_decref (result);
    query = json_pack ("{s:s}", "path", "/world/a");
    result = hs_fsm_read (fsm, "entity.get", query, &fault);
    assert (!result && fault.error == SF_ENOTFOUND);
    json_decref (query);

    //  The ring's first signing key (grants.md section 2); a second, or a
    //  pair that does not match, is refused. The secret is never answered.
    uint8_t ring_public [32], ring_secret [64];
    char ring_args [256], public_text [41], secret_text [81];
    crypto_sign_keypair (ring_public, ring_secret);
    zmq_z85_encode (public_text, ring_public, 32);
    zmq_z85_encode (secret_text, ring_secret, 64);
    assert (!hs_fsm_has_ring_key (fsm));
    snprintf (ring_args, sizeof ring_args,
              "{\"public\":\"%s\",\"secret\":\"%s\"}", alice, secret_text);
    result =
        s_test_apply (fsm, ++index, "ring.key", ring_args, bob, true, &fault);
    assert (!result && fault.error == SF_EINVAL);
    snprintf (ring_args, sizeof ring_args,
              "{\"public\":\"%s\",\"secret\":\"%s\"}", public_text,
              secret_text);
    result =
        s_test_apply (fsm, ++index, "ring.key", ring_args, bob, true, &fault);
    assert (result);
    assert (json_integer_value (json_object_get (result, "key_id")) == 1);
    assert (!json_object_get (result, "secret"));
    json_decref (result);
    assert (hs_fsm_has_ring_key (fsm));
    result =
        s_test_apply (fsm, ++index, "ring.key", ring_args, bob, true, &fault);
    assert (!result && fault.error == SF_ECONFLICT);

    //  The batch form of authority.request: each path decided on its own,
    //  none asked; one failed item changes nothing of the others.
    zcert_t *carol_cert = zcert_new ();
    const char *carol = zcert_public_txt (carol_cert);
    //  Registration the leader says is open needs no token.
    result = s_test_apply (fsm, ++index, "sim.register",
                           "{\"sim\":\"sim2\",\"registration\":\"open\"}",
                           carol, false, &fault);
    assert (result);
    json_decref (result);
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"/world/q\",\"rule\":\"ask\","
                           "\"authority\":\"sim1\"}",
                           bob, false, &fault);
    assert (result);
    json_decref (result);
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"/world/d\",\"rule\":\"deny\"}", bob,
                           false, &fault);
    assert (result);
    json_decref (result);
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"/world/h\",\"authority\":\"sim1\","
                           "\"checkpoint\":\"held\"}",
                           bob, false, &fault);
    assert (result);
    json_decref (result);
    result = s_test_apply (fsm, ++index, "entity.create",
                           "{\"path\":\"/world/o\",\"checkpoint\":\"kept\"}",
                           bob, false, &fault);
    assert (result);
    json_decref (result);
    static const char batch [] =
        "{\"sim\":\"sim2\",\"paths\":[\"/world/z0\",\"/world/z1\","
        "\"/world/q\",\"/world/d\",\"/world/none\",\"/world/z0\","
        "\"/world/h\",\"/world/o\"]}";
    result = s_test_apply (fsm, ++index, "authority.request", batch, bob, false,
                           &fault);
    assert (!result && fault.error == SF_EUNAUTHORIZED);
    result = s_test_apply (fsm, ++index, "authority.request", batch, carol,
                           false, &fault);
    assert (result);
    assert (json_integer_value (json_object_get (result, "transfer"))
            == (json_int_t) index);
    assert (json_integer_value (json_object_get (result, "grants")) == 5);
    json_t *items = json_object_get (result, "results");
    assert (json_array_size (items) == 8);
    static const char *outcomes [] = {NULL,        NULL, "denied", "denied",
                                      "not_found", NULL, NULL,     NULL};
    for (size_t at = 0; at < 8; at++) {
        json_t *item = json_array_get (items, at);
        const char *error = json_string_value (json_object_get (item, "error"));
        assert (json_is_true (json_object_get (item, "granted"))
                == !outcomes [at]);
        assert (outcomes [at] ? error && streq (error, outcomes [at]) : !error);
    }
    //  Granted once: the repeat is the current authority asking again.
    assert (json_integer_value (
                json_object_get (json_array_get (items, 0), "epoch"))
            == 1);
    assert (json_integer_value (
                json_object_get (json_array_get (items, 5), "epoch"))
            == 1);
    assert (strstr (json_string_value (
                        json_object_get (json_array_get (items, 2), "message")),
                    "is ask"));
    assert (json_is_true (json_object_get (json_array_get (items, 2), "ask")));
    assert (!json_object_get (json_array_get (items, 3), "ask"));
    //  A grant in brief: what the sim needs, and the checkpoint only when
    //  no sim hands the state over.
    json_t *held = json_array_get (items, 6),
           *orphan = json_array_get (items, 7);
    assert (json_object_size (held) == 7);
    assert (streq (json_string_value (json_object_get (held, "authority")),
                   "sim2"));
    assert (
        streq (json_string_value (json_object_get (held, "previous")), "sim1"));
    assert (json_integer_value (json_object_get (held, "epoch")) == 2);
    assert (json_integer_value (json_object_get (held, "transfer"))
            == (json_int_t) index);
    assert (json_is_null (json_object_get (orphan, "previous")));
    assert (streq (json_string_value (json_object_get (orphan, "checkpoint")),
                   "kept"));
    assert (!json_object_get (json_array_get (items, 0), "checkpoint"));
    assert (!json_object_get (json_array_get (items, 5), "transfer"));
    //  Each grant item names the path granted as applied (the outcome
    //  digest is taken so); its grant is made where the result leaves.
    assert (streq (json_string_value (json_object_get (held, "grant")),
                   json_string_value (json_object_get (held, "path"))));
    //  For an event: the statement, unsigned; for a reply then: signed.
    hs_fsm_make_grants (fsm, result, false);
    assert (json_is_object (json_object_get (held, "grant")));
    assert (!json_object_get (json_object_get (held, "grant"), "signature"));
    assert (hs_fsm_signed_grants (fsm) == 0);
    hs_fsm_make_grants (fsm, result, true);
    grant_msg_t grant;
    rc = grant_msg_from_json (&grant, json_object_get (held, "grant"), &fault);
    assert (rc == 0);
    assert (grant.epoch == 2 && grant.transfer == (uint64_t) index);
    assert (streq (grant.sim, "sim2") && grant.key_id == 1);
    uint8_t carol_key [32];
    zmq_z85_decode (carol_key, carol);
    assert (memcmp (grant.key, carol_key, 32) == 0);
    rc = grant_msg_verify (&grant, ring_public);
    assert (rc == 0);
    //  The batch's grants share one signature, each with its own proof.
    grant_msg_t sibling;
    rc = grant_msg_from_json (&sibling, json_object_get (orphan, "grant"),
                              &fault);
    assert (rc == 0 && sibling.leaves == grant.leaves && grant.leaves >= 2);
    assert (sibling.leaf != grant.leaf);
    assert (memcmp (sibling.signature, grant.signature, 64) == 0);
    assert (grant_msg_verify (&sibling, ring_public) == 0);
    //  entity.grant hands out the same grant, signed alone; after a
    //  rotation, the new key signs and the old one is listed with its
    //  retirement.
    query = json_pack ("{s:O}", "path", json_object_get (held, "path"));
    json_t *read = hs_fsm_read (fsm, "entity.grant", query, &fault);
    assert (read);
    grant_msg_t alone;
    rc = grant_msg_from_json (&alone, json_object_get (read, "grant"), &fault);
    assert (rc == 0 && alone.leaves == 1 && alone.key_id == 1);
    assert (grant_msg_verify (&alone, ring_public) == 0);
    assert (streq (alone.path, grant.path) && alone.epoch == grant.epoch
            && streq (alone.sim, grant.sim) && alone.transfer == grant.transfer
            && memcmp (alone.key, grant.key, 32) == 0);
    json_decref (read);
    crypto_sign_keypair (ring_public, ring_secret);
    zmq_z85_encode (public_text, ring_public, 32);
    zmq_z85_encode (secret_text, ring_secret, 64);
    snprintf (ring_args, sizeof ring_args,
              "{\"public\":\"%s\",\"secret\":\"%s\",\"grace_ms\":5000}",
              public_text, secret_text);
    json_t *rotation;
    rotation = s_test_apply (fsm, ++index, "ring.rotate_key", ring_args, bob,
                             false, &fault);
    assert (!rotation && fault.error == SF_EUNAUTHORIZED);
    rotation = s_test_apply (fsm, ++index, "ring.rotate_key", ring_args, bob,
                             true, &fault);
    assert (rotation);
    assert (json_integer_value (json_object_get (rotation, "key_id")) == 2);
    json_decref (rotation);
    json_t *keys = hs_fsm_ring_keys (fsm);
    assert (json_array_size (keys) == 2);
    assert (json_integer_value (
                json_object_get (json_array_get (keys, 0), "retires_ms"))
            == (json_int_t) (1000 + index + 5000));
    assert (json_is_null (
        json_object_get (json_array_get (keys, 1), "retires_ms")));
    json_decref (keys);
    read = hs_fsm_read (fsm, "entity.grant", query, &fault);
    assert (read);
    rc = grant_msg_from_json (&grant, json_object_get (read, "grant"), &fault);
    assert (rc == 0 && grant.key_id == 2 && grant.epoch == 2);
    rc = grant_msg_verify (&grant, ring_public);
    assert (rc == 0);
    //  fed.claim (federation.md section 5): a foreign sim's claim is
    //  decided by the rule like a local one, the sim gets a row as its
    //  instance vouched for it, and the same request again changes
    //  nothing; an instance speaks only for its own sims.
    {
        json_t *claimed;
        zcert_t *foreign_cert = zcert_new ();
        const char *foreign = zcert_public_txt (foreign_cert);
        char claim [512];
        claimed = s_test_apply (fsm, ++index, "entity.create",
                                "{\"path\":\"/fed/a\",\"authority\":\"sim2\"}",
                                carol, false, &fault);
        assert (claimed);
        json_decref (claimed);
        claimed = s_test_apply (fsm, ++index, "entity.create",
                                "{\"path\":\"/fed/d\",\"rule\":\"deny\"}",
                                carol, false, &fault);
        assert (claimed);
        json_decref (claimed);
        snprintf (claim, sizeof claim,
                  "{\"request\":\"b@east/1\",\"path\":\"/fed/a\","
                  "\"sim\":\"b@east\",\"key\":\"%s\","
                  "\"handoff\":\"tcp://10.0.2.9:7300\",\"instance\":\"east\"}",
                  foreign);
        claimed =
            s_test_apply (fsm, ++index, "fed.claim", claim, bob, false, &fault);
        assert (claimed && json_is_true (json_object_get (claimed, "granted")));
        assert (
            streq (json_string_value (json_object_get (claimed, "authority")),
                   "b@east"));
        assert (streq (
            json_string_value (json_object_get (claimed, "previous")), "sim2"));
        assert (json_integer_value (json_object_get (claimed, "epoch")) == 2);
        assert (hs_fsm_last_change (fsm) == index);
        raft_index granted_at = index;
        json_decref (claimed);
        json_t *vouched = hs_fsm_lookup (fsm, "sim", "b@east", &fault);
        assert (vouched
                && streq (json_string_value (json_object_get (vouched, "key")),
                          foreign));
        json_decref (vouched);
        //  Its instance keeps its lease: never found silent here.
        zlist_t *silent = hs_fsm_expired_sims (fsm, 1ull << 40, 1);
        for (char *name = (char *) zlist_first (silent); name;
             name = (char *) zlist_next (silent))
            assert (!streq (name, "b@east"));
        zlist_destroy (&silent);
        //  The same request again: its answer, no change, its grant.
        claimed =
            s_test_apply (fsm, ++index, "fed.claim", claim, bob, false, &fault);
        assert (claimed && json_is_true (json_object_get (claimed, "again")));
        assert (json_integer_value (json_object_get (claimed, "epoch")) == 2);
        assert (hs_fsm_last_change (fsm) == granted_at);
        assert (json_is_string (json_object_get (claimed, "grant")));
        json_decref (claimed);
        //  Once another grant moved the entity on, no grant with it.
        claimed = s_test_apply (fsm, ++index, "authority.request",
                                "{\"sim\":\"sim2\",\"path\":\"/fed/a\"}", carol,
                                false, &fault);
        assert (claimed);
        json_decref (claimed);
        claimed =
            s_test_apply (fsm, ++index, "fed.claim", claim, bob, false, &fault);
        assert (claimed && json_is_null (json_object_get (claimed, "grant")));
        json_decref (claimed);
        //  Refused: another instance's sim, a rule that denies (and the
        //  refusal writes no row of the sim), no key.
        raft_index unchanged = hs_fsm_last_change (fsm);
        snprintf (claim, sizeof claim,
                  "{\"request\":\"c@west/1\",\"path\":\"/fed/a\","
                  "\"sim\":\"c@west\",\"key\":\"%s\",\"instance\":\"east\"}",
                  foreign);
        claimed =
            s_test_apply (fsm, ++index, "fed.claim", claim, bob, false, &fault);
        assert (!claimed && fault.error == SF_EUNAUTHORIZED);
        snprintf (claim, sizeof claim,
                  "{\"request\":\"d@east/1\",\"path\":\"/fed/d\","
                  "\"sim\":\"d@east\",\"key\":\"%s\",\"instance\":\"east\"}",
                  foreign);
        claimed =
            s_test_apply (fsm, ++index, "fed.claim", claim, bob, false, &fault);
        assert (!claimed && fault.error == SF_EDENIED);
        assert (!hs_fsm_lookup (fsm, "sim", "d@east", &fault));
        assert (hs_fsm_last_change (fsm) == unchanged);
        claimed = s_test_apply (fsm, ++index, "fed.claim",
                                "{\"request\":\"e@east/1\",\"path\":\"/fed/a\","
                                "\"sim\":\"e@east\",\"instance\":\"east\"}",
                                bob, false, &fault);
        assert (!claimed && fault.error == SF_EINVAL);
        //  The batch form: each claim on its own, in order, one command;
        //  a claim that would ask is sent back to go alone, and neither it
        //  nor another refusal is recorded.
        claimed = s_test_apply (fsm, ++index, "entity.create",
                                "{\"path\":\"/fed/k\",\"rule\":\"ask\","
                                "\"authority\":\"sim2\"}",
                                carol, false, &fault);
        assert (claimed);
        json_decref (claimed);
        claimed = s_test_apply (fsm, ++index, "entity.create",
                                "{\"path\":\"/fed/b\",\"authority\":\"sim2\"}",
                                carol, false, &fault);
        assert (claimed);
        json_decref (claimed);
        char claims [1024];
        snprintf (claims, sizeof claims,
                  "{\"sim\":\"b@east\",\"key\":\"%s\",\"instance\":\"east\","
                  "\"claims\":[{\"request\":\"b@east/20\",\"path\":\"/fed/b\"},"
                  "{\"request\":\"b@east/21\",\"path\":\"/fed/k\"},"
                  "{\"request\":\"b@east/22\",\"path\":\"/fed/d\"},"
                  "{\"request\":\"b@east/23\",\"path\":\"/fed/none\"},"
                  "{\"request\":\"b@east/1\",\"path\":\"/fed/a\"}]}",
                  foreign);
        claimed = s_test_apply (fsm, ++index, "fed.claim", claims, bob, false,
                                &fault);
        assert (claimed);
        raft_index batched_at = index;
        assert (hs_fsm_last_change (fsm) == batched_at);
        assert (json_integer_value (json_object_get (claimed, "grants")) == 2);
        assert (json_integer_value (json_object_get (claimed, "transfer"))
                == (json_int_t) batched_at);
        assert (json_is_array (json_object_get (claimed, "ring_keys")));
        const json_t *claimed_items = json_object_get (claimed, "results");
        assert (json_array_size (claimed_items) == 5);
        const json_t *item = json_array_get (claimed_items, 0);
        assert (json_is_true (json_object_get (item, "granted")));
        assert (streq (json_string_value (json_object_get (item, "request")),
                       "b@east/20"));
        assert (streq (json_string_value (json_object_get (item, "authority")),
                       "b@east"));
        assert (json_is_string (json_object_get (item, "previous_key")));
        assert (!json_object_get (item, "ring_keys"));
        item = json_array_get (claimed_items, 1);
        assert (json_is_false (json_object_get (item, "granted"))
                && json_is_true (json_object_get (item, "ask")));
        item = json_array_get (claimed_items, 2);
        assert (json_is_false (json_object_get (item, "granted"))
                && !json_object_get (item, "ask")
                && streq (json_string_value (json_object_get (item, "error")),
                          "denied"));
        item = json_array_get (claimed_items, 3);
        assert (streq (json_string_value (json_object_get (item, "error")),
                       "not_found"));
        //  b@east/1 was decided before: answered as it was.
        item = json_array_get (claimed_items, 4);
        assert (json_is_true (json_object_get (item, "again")));
        json_decref (claimed);
        //  The same claims again: the same answers, nothing changes; the
        //  claim that would ask goes alone and waits on its authority,
        //  and a claims naming it then is told so again.
        claimed = s_test_apply (fsm, ++index, "fed.claim", claims, bob, false,
                                &fault);
        assert (claimed && hs_fsm_last_change (fsm) == batched_at);
        item = json_array_get (json_object_get (claimed, "results"), 0);
        assert (json_is_true (json_object_get (item, "again")));
        assert (json_is_string (json_object_get (item, "grant")));
        json_decref (claimed);
        snprintf (claim, sizeof claim,
                  "{\"request\":\"b@east/21\",\"path\":\"/fed/k\","
                  "\"sim\":\"b@east\",\"key\":\"%s\",\"instance\":\"east\"}",
                  foreign);
        claimed =
            s_test_apply (fsm, ++index, "fed.claim", claim, bob, false, &fault);
        assert (claimed && json_is_true (json_object_get (claimed, "pending")));
        json_int_t asked =
            json_integer_value (json_object_get (claimed, "transfer"));
        json_decref (claimed);
        claimed = s_test_apply (fsm, ++index, "fed.claim", claims, bob, false,
                                &fault);
        assert (claimed);
        item = json_array_get (json_object_get (claimed, "results"), 1);
        assert (json_is_true (json_object_get (item, "ask")));
        json_decref (claimed);
        //  Refused whole: a request of another instance's, a request
        //  twice, a claims with a player.
        static const char *const refused [] = {
            "{\"sim\":\"b@east\",\"key\":\"%s\",\"instance\":\"east\","
            "\"claims\":[{\"request\":\"b@west/1\",\"path\":\"/fed/b\"}]}",
            "{\"sim\":\"b@east\",\"key\":\"%s\",\"instance\":\"east\","
            "\"claims\":[{\"request\":\"b@east/30\",\"path\":\"/fed/b\"},"
            "{\"request\":\"b@east/30\",\"path\":\"/fed/a\"}]}",
            "{\"sim\":\"b@east\",\"key\":\"%s\",\"instance\":\"east\","
            "\"player\":\"p@east\",\"player_key\":\"%s\","
            "\"claims\":[{\"request\":\"b@east/31\",\"path\":\"/fed/b\"}]}",
            "{\"sim\":\"b@east\",\"key\":\"%s\",\"instance\":\"east\","
            "\"claims\":[]}",
            NULL};
        static const int refused_codes [] = {SF_EUNAUTHORIZED, SF_EINVAL,
                                             SF_EINVAL, SF_EINVAL};
        for (int at = 0; refused [at]; at++) {
            snprintf (claims, sizeof claims, refused [at], foreign, foreign);
            claimed = s_test_apply (fsm, ++index, "fed.claim", claims, bob,
                                    false, &fault);
            assert (!claimed && (int) fault.error == refused_codes [at]);
        }
        assert (hs_fsm_last_change (fsm) == batched_at + 2);
        //  fed.checkpoint (federation.md section 7): b@east's states, as
        //  east vouched for them, saved only where b@east holds that epoch.
        {
            json_t *saved = s_test_apply (
                fsm, ++index, "fed.checkpoint",
                "{\"sim\":\"b@east\",\"instance\":\"east\",\"entities\":["
                "{\"path\":\"/fed/b\",\"epoch\":2,\"checkpoint\":\"by b\"},"
                "{\"path\":\"/fed/b\",\"epoch\":1,\"checkpoint\":\"old\"},"
                "{\"path\":\"/fed/a\",\"epoch\":2,\"checkpoint\":\"not "
                "b's\"}]}",
                bob, false, &fault);
            assert (saved
                    && json_integer_value (json_object_get (saved, "saved"))
                           == 1);
            assert (json_array_size (json_object_get (saved, "stale")) == 2);
            json_decref (saved);
            json_t *where = json_pack ("{s:s}", "path", "/fed/b");
            saved = hs_fsm_read (fsm, "entity.get", where, &fault);
            assert (streq (
                json_string_value (json_object_get (saved, "checkpoint")),
                "by b"));
            json_decref (saved);
            json_decref (where);
            saved = s_test_apply (
                fsm, ++index, "fed.checkpoint",
                "{\"sim\":\"b@east\",\"instance\":\"west\",\"entities\":["
                "{\"path\":\"/fed/b\",\"epoch\":2,\"checkpoint\":\"x\"}]}",
                bob, false, &fault);
            assert (!saved && fault.error == SF_EUNAUTHORIZED);
        }
        //  fed.expired (federation.md section 6): b@east's instance expired
        //  it; what it holds here is orphaned, once; only east (or this
        //  ring itself) says so.
        json_t *holders = hs_fsm_foreign_holders (fsm);
        assert (json_array_size (holders) == 1
                && streq (json_string_value (json_array_get (holders, 0)),
                          "b@east"));
        json_decref (holders);
        claimed = s_test_apply (fsm, ++index, "fed.expired",
                                "{\"sim\":\"b@east\",\"instance\":\"west\"}",
                                bob, false, &fault);
        assert (!claimed && fault.error == SF_EUNAUTHORIZED);
        claimed = s_test_apply (fsm, ++index, "fed.expired",
                                "{\"sim\":\"b@east\",\"instance\":\"east\"}",
                                bob, false, &fault);
        assert (claimed
                && json_integer_value (json_object_get (claimed, "orphaned"))
                       == 1);
        json_decref (claimed);
        holders = hs_fsm_foreign_holders (fsm);
        assert (json_array_size (holders) == 0);
        json_decref (holders);
        claimed = s_test_apply (fsm, ++index, "fed.expired",
                                "{\"sim\":\"b@east\"}", bob, true, &fault);
        assert (claimed
                && json_integer_value (json_object_get (claimed, "orphaned"))
                       == 0);
        json_decref (claimed);
        claimed = s_test_apply (fsm, ++index, "fed.expired",
                                "{\"sim\":\"b\",\"instance\":\"east\"}", bob,
                                false, &fault);
        assert (!claimed && fault.error == SF_EINVAL);
        //  fed.release (federation.md section 7): b@east gives /fed/b up
        //  (claimed again first), as its instance vouched; only it may.
        {
            char again [512];
            snprintf (again, sizeof again,
                      "{\"request\":\"b@east/40\",\"path\":\"/fed/b\","
                      "\"sim\":\"b@east\",\"key\":\"%s\","
                      "\"instance\":\"east\"}",
                      foreign);
            json_t *released = s_test_apply (fsm, ++index, "fed.claim", again,
                                             bob, false, &fault);
            assert (released);
            json_decref (released);
            released = s_test_apply (
                fsm, ++index, "fed.release",
                "{\"path\":\"/fed/b\",\"sim\":\"b@east\",\"checkpoint\":"
                "\"left by b\",\"instance\":\"west\"}",
                bob, false, &fault);
            assert (!released && fault.error == SF_EUNAUTHORIZED);
            released = s_test_apply (
                fsm, ++index, "fed.release",
                "{\"path\":\"/fed/b\",\"sim\":\"b@east\",\"checkpoint\":"
                "\"left by b\",\"instance\":\"east\"}",
                bob, false, &fault);
            assert (released
                    && json_is_null (json_object_get (released, "authority")));
            json_decref (released);
            released = s_test_apply (
                fsm, ++index, "fed.release",
                "{\"path\":\"/fed/b\",\"sim\":\"b@east\",\"instance\":"
                "\"east\"}",
                bob, false, &fault);
            assert (!released && fault.error == SF_ECONFLICT);
        }
        //  Its authority says no: the claim is decided, and refused again.
        char answer [128];
        snprintf (answer, sizeof answer,
                  "{\"transfer\":%lld,\"sim\":\"sim2\",\"approve\":false}",
                  (long long) asked);
        claimed = s_test_apply (fsm, ++index, "authority.answer", answer, bob,
                                true, &fault);
        assert (claimed
                && json_is_false (json_object_get (claimed, "granted")));
        json_decref (claimed);
        claimed =
            s_test_apply (fsm, ++index, "fed.claim", claim, bob, false, &fault);
        assert (!claimed && fault.error == SF_EDENIED);
        zcert_destroy (&foreign_cert);
    }
    //  fed.fenced (federation.md section 6): a home tells that a sim of
    //  this instance lost its entity; recorded once per epoch, so the
    //  event goes out once, and only from the home, of a sim here.
    {
        static const char *fence =
            "{\"path\":\"/far/e\",\"epoch\":3,\"sim\":\"sim2\","
            "\"authority\":\"a@west\",\"instance\":\"west\"}";
        json_t *told = s_test_apply (fsm, ++index, "fed.fenced", fence, bob,
                                     false, &fault);
        assert (told && hs_fsm_last_change (fsm) == index);
        assert (streq (json_string_value (json_object_get (told, "path")),
                       "/far/e@west"));
        assert (streq (json_string_value (json_object_get (told, "authority")),
                       "a@west"));
        json_decref (told);
        raft_index fenced_at = index;
        told = s_test_apply (fsm, ++index, "fed.fenced", fence, bob, false,
                             &fault);
        assert (told && hs_fsm_last_change (fsm) == fenced_at);
        json_decref (told);
        told = s_test_apply (fsm, ++index, "fed.fenced",
                             "{\"path\":\"/far/e\",\"epoch\":4,"
                             "\"sim\":\"nobody\",\"instance\":\"west\"}",
                             bob, false, &fault);
        assert (!told && fault.error == SF_ENOTFOUND);
        told =
            s_test_apply (fsm, ++index, "fed.fenced",
                          "{\"path\":\"/far/e\",\"epoch\":4,\"sim\":\"sim2\"}",
                          bob, false, &fault);
        assert (!told && fault.error == SF_EUNAUTHORIZED);
        assert (hs_fsm_last_change (fsm) == fenced_at);
    }
    //  fed.intent and fed.outcome (federation.md section 6): an intent
    //  is open until its outcome is recorded, alone or with the sim's
    //  others (the batch form: one command, one event on sim:SIM); an
    //  outcome recorded stays as it was.
    {
        json_t *recorded = s_test_apply (
            fsm, ++index, "fed.intent",
            "{\"request\":\"sim2@here/1\",\"path\":\"/far/i@west\","
            "\"sim\":\"sim2\"}",
            bob, true, &fault);
        assert (recorded);
        json_decref (recorded);
        json_t *open = hs_fsm_open_intents (fsm, UINT64_MAX / 2);
        assert (json_array_size (open) == 1);
        json_decref (open);
        static const char *learnt =
            "{\"sim\":\"sim2\",\"outcomes\":["
            "{\"request\":\"sim2@here/1\",\"path\":\"/far/i@west\","
            "\"outcome\":{\"path\":\"/far/i@west\",\"granted\":true,"
            "\"epoch\":4,\"authority\":\"sim2\"}},"
            "{\"request\":\"sim2@here/2\",\"path\":\"/far/j@west\","
            "\"outcome\":{\"granted\":false,\"error\":\"denied\"}}]}";
        recorded = s_test_apply (fsm, ++index, "fed.outcome", learnt, bob, true,
                                 &fault);
        assert (recorded && hs_fsm_last_change (fsm) == index);
        assert (streq (json_string_value (json_object_get (recorded, "sim")),
                       "sim2"));
        const json_t *told = json_object_get (recorded, "results");
        assert (json_array_size (told) == 2);
        assert (json_integer_value (
                    json_object_get (json_array_get (told, 0), "epoch"))
                == 4);
        //  A refusal has no path of its own: the feed names the claim's.
        assert (streq (json_string_value (
                           json_object_get (json_array_get (told, 1), "path")),
                       "/far/j@west"));
        json_decref (recorded);
        open = hs_fsm_open_intents (fsm, UINT64_MAX / 2);
        assert (json_array_size (open) == 0);
        json_decref (open);
        raft_index recorded_at = index;
        recorded = s_test_apply (fsm, ++index, "fed.outcome", learnt, bob, true,
                                 &fault);
        assert (recorded && hs_fsm_last_change (fsm) == recorded_at);
        json_decref (recorded);
        recorded =
            s_test_apply (fsm, ++index, "fed.outcome",
                          "{\"sim\":\"sim2\",\"outcomes\":[{\"request\":\"x\","
                          "\"path\":\"/far/i\",\"outcome\":{}}]}",
                          bob, true, &fault);
        assert (!recorded && fault.error == SF_EINVAL);
    }
    //  An image from before grants and taken_index restores, with their
    //  tables and columns (every statement prepares on it).
    {
        hs_fsm_t *old = hs_fsm_new (&fault);
        rc = sqlite3_exec (old->db,
                           "DROP TABLE ring_keys; DROP TABLE tokens; "
                           "ALTER TABLE entities DROP COLUMN transfer; "
                           "ALTER TABLE sims DROP COLUMN taken_index",
                           NULL, NULL, NULL);
        assert (rc == SQLITE_OK);
        struct raft_buffer old_image;
        rc = hs_fsm_snapshot (old, &old_image);
        assert (rc == 0);
        hs_fsm_t *upgraded = hs_fsm_new (&fault);
        rc = hs_fsm_restore (upgraded, &old_image);
        assert (rc == 0);
        raft_free (old_image.base);
        assert (!hs_fsm_has_ring_key (upgraded));
        hs_fsm_destroy (&upgraded);
        hs_fsm_destroy (&old);
    }
    //  A member restored from a snapshot signs the same bytes.
    struct raft_buffer grant_image;
    rc = hs_fsm_snapshot (fsm, &grant_image);
    assert (rc == 0);
    hs_fsm_t *follower = hs_fsm_new (&fault);
    rc = hs_fsm_restore (follower, &grant_image);
    assert (rc == 0);
    raft_free (grant_image.base);
    json_t *again = hs_fsm_read (follower, "entity.grant", query, &fault);
    assert (again && json_equal (again, read));
    json_decref (again);
    hs_fsm_destroy (&follower);
    json_decref (read);
    json_decref (query);
    //  The orphan taken over is granted like any other path.
    assert (json_is_object (json_object_get (orphan, "grant")));
    for (size_t at = 6; at < 8; at++) {
        json_t *item = json_array_get (items, at);
        query = json_pack ("{s:O}", "path", json_object_get (item, "path"));
        json_t *entity = hs_fsm_read (fsm, "entity.get", query, &fault);
        assert (json_equal (json_object_get (entity, "epoch"),
                            json_object_get (item, "epoch")));
        assert (json_equal (json_object_get (entity, "authority"),
                            json_object_get (item, "authority")));
        json_decref (entity);
        json_decref (query);
    }
    json_decref (result);
    //  Nothing was asked: /world/q keeps its authority, no transfer waits.
    query = json_pack ("{s:s}", "path", "/world/q");
    result = hs_fsm_read (fsm, "entity.get", query, &fault);
    assert (streq (json_string_value (json_object_get (result, "authority")),
                   "sim1"));
    json_decref (result);
    json_decref (query);
    zlist_t *waiting = hs_fsm_expired_transfers (fsm, UINT64_MAX / 2);
    assert (zlist_size (waiting) == 0);
    zlist_destroy (&waiting);
    //  The current authority asking again, alone or in a batch, is granted
    //  and changes nothing: no new epoch, no event due.
    raft_index granted_at = hs_fsm_last_change (fsm);
    result = s_test_apply (fsm, ++index, "authority.request",
                           "{\"sim\":\"sim2\",\"path\":\"/world/z0\"}", carol,
                           false, &fault);
    assert (result && json_is_true (json_object_get (result, "granted")));
    assert (json_integer_value (json_object_get (result, "epoch")) == 1);
    assert (!json_object_get (result, "transfer"));
    json_decref (result);
    result = s_test_apply (fsm, ++index, "authority.request",
                           "{\"sim\":\"sim2\",\"paths\":[\"/world/z0\","
                           "\"/world/d\"]}",
                           carol, false, &fault);
    assert (result);
    assert (json_integer_value (json_object_get (result, "grants")) == 1);
    json_decref (result);
    assert (hs_fsm_last_change (fsm) == granted_at);
    //  A first grant is a change.
    result = s_test_apply (fsm, ++index, "authority.request",
                           "{\"sim\":\"sim2\",\"path\":\"/world/z2\"}", carol,
                           false, &fault);
    assert (result && json_object_get (result, "transfer"));
    json_decref (result);
    assert (hs_fsm_last_change (fsm) == index);
    static const char *malformed [] = {
        "{\"sim\":\"sim2\",\"paths\":[]}",
        "{\"sim\":\"sim2\",\"paths\":\"/world/z0\"}",
        "{\"sim\":\"sim2\",\"paths\":[\"/world/z0\",7]}",
        "{\"sim\":\"sim2\",\"paths\":[\"/world/z0\"],\"path\":\"/world/z1\"}",
        "{\"sim\":\"sim2\",\"paths\":[\"/world/z0\"],\"timeout_ms\":5}",
        NULL};
    for (const char **text = malformed; *text; text++) {
        result = s_test_apply (fsm, ++index, "authority.request", *text, carol,
                               false, &fault);
        assert (!result && fault.error == SF_EINVAL);
    }
    zcert_destroy (&carol_cert);

    //  The operations' table: each row's handlers fit its kind, and its
    //  name finds it.
    for (int id = 0; id < HS_OP_COUNT; id++) {
        const hs_op_t *row = hs_op_get ((hs_op_id_t) id);
        assert (row->id == (hs_op_id_t) id);
        assert (hs_op_find (row->name) == row);
        const s_op_t *op = &s_ops [id];
        assert ((row->kind == HS_OP_READ) == (op->read != NULL));
        assert (row->kind != HS_OP_WRITE || op->apply);
        assert (row->kind != HS_OP_CONTROL || id == HS_OP_CLUSTER_ADD
                || !op->apply);
        //  A schema with fields checks their values.
        assert (!op->fields [0] || op->parse);
        //  The list ends inside its array (s_parse reads to the NULL).
        assert (!op->fields [S_OP_FIELDS - 1]);
    }
    assert (!hs_op_find ("entity.remove"));
    //  Only reads take a consistency: a write's schema has none.
    json_t *delete_args =
        json_pack ("{s:s,s:s}", "path", "/world/z0", "consistency", "stale");
    rc = hs_fsm_check ("entity.delete", delete_args, &fault);
    assert (rc == -1 && fault.error == SF_EINVAL);
    assert (strstr (fault.message, "unknown field 'consistency'"));
    json_object_del (delete_args, "consistency");
    rc = hs_fsm_check ("entity.delete", delete_args, &fault);
    assert (rc == 0);
    json_decref (delete_args);
    //  Control operations have their schema here too: unknown fields
    //  first, then the values.
    const char *control_checks [][3] = {
        {"status", "{}", NULL},
        {"status", "{\"verbose\": true}", "unknown field 'verbose'"},
        {"counters", "{\"op\": \"counters\", \"id\": 1}", NULL},
        {"trace", "{\"trace\": 7}", NULL},
        {"trace", "{\"trace\": \"\"}", "field 'trace'"},
        {"cluster.remove", "{\"raft_id\": 2}", NULL},
        {"cluster.remove", "{\"raft_id\": 0}", "'raft_id'"},
        {"cluster.remove", "{\"raft_id\": 2, \"to\": 1}", "unknown field 'to'"},
        {"cluster.transfer", "{}", NULL},
        {"cluster.transfer", "{\"to\": \"hs2\"}", "'to'"},
        {"ring.forward", "{\"principal\": \"x\", \"request\": {}}",
         "field 'principal' is not a public key"},
        {"ring.forward", "{\"request\": {}}", "'principal'"},
        {"entity.get", "{\"path\": \"/a\", \"consistency\": \"now\"}",
         "field 'consistency' must be linearizable or stale"},
    };
    for (size_t at = 0; at < sizeof control_checks / sizeof control_checks [0];
         at++) {
        json_t *args = json_loads (control_checks [at][1], 0, NULL);
        assert (args);
        sf_fault_clear (&fault);
        rc = hs_fsm_check (control_checks [at][0], args, &fault);
        if (control_checks [at][2])
            assert (rc == -1 && fault.error == SF_EINVAL
                    && strstr (fault.message, control_checks [at][2]));
        else
            assert (rc == 0);
        json_decref (args);
    }
    rc = hs_fsm_check ("cluster.join", NULL, &fault);
    assert (rc == -1 && fault.error == SF_EUNKNOWNOP);

    //  A garbled command is skipped with an error, applied index moves on.
    result = hs_fsm_apply (fsm, ++index, "garbage", 7, &fault);
    assert (!result && fault.error == SF_EINTERNAL);
    assert (hs_fsm_applied (fsm) == index);

    hs_fsm_destroy (&copy);
    hs_fsm_destroy (&fsm);
    hs_fsm_destroy (&fsm);
    s_test_balance ();
    zcert_destroy (&alice_cert);
    zcert_destroy (&bob_cert);
    if (verbose)
        printf ("OK\n");
    return 0;
}
