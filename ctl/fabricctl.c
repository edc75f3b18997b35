/*  fabricctl: the operator's and developer's command line for simfabric.

    Commands:
        keygen NAME          write NAME.cert and NAME.cert_secret (0600)
        status               ask a daemon who it is and how it is doing
        health               what is wrong with a ring or a sim, if anything
        counters             a daemon's counters (a sim's: and its peers)
        trace TRACE          the hops of a transfer or traced update
        import SCENE         load a scene file onto a simulation server
        request OP [ARGS]    send one raw API request (ARGS: a JSON object);
                             to a homeserver ring, straight to its leader
        top                  the ring's load reports, refreshed in place
        drain SIM            move everything away from a sim, wait until none

    Human output by default, --json for scripts; exit codes are those of
    sf_program.h. */

#include "common/sf_cert.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_program.h"
#include "common/sf_time.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_health.h"
#include "ctl/ctl_scene.h"
#include "ctl/ctl_trace.h"
#include "ctl/ctl_watch.h"

#include <errno.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include "protocol/api_msg.h"

#include <string.h>

static const sf_config_key_t s_schema [] = {
    {"fabricctl/server", "server", SF_CONFIG_ENDPOINT, false,
     "tcp://127.0.0.1:7100", "tcp|ipc", "API endpoint of the daemon to ask"},
    {"fabricctl/server_key", "server-key", SF_CONFIG_KEY, false, NULL, NULL,
     "the daemon's public key: its .cert file or Z85 text"},
    {"fabricctl/key", "key", SF_CONFIG_PATH, false, NULL, NULL,
     "our secret certificate (default: a new throwaway key)"},
    {"fabricctl/peer_server", "peer-server", SF_CONFIG_ENDPOINT, false, NULL,
     "tcp|ipc",
     "trace N@INSTANCE: a member of that instance, to read its records"},
    {"fabricctl/peer_server_key", "peer-server-key", SF_CONFIG_KEY, false, NULL,
     NULL, "that member's public key: its .cert file or Z85 text"},
    {"fabricctl/timeout", "timeout", SF_CONFIG_INT, false, "5000", "1..3600000",
     "milliseconds to wait for a reply"},
    {"fabricctl/json", "json", SF_CONFIG_BOOL, false, "false", NULL,
     "print replies as JSON"},
    {"fabricctl/dir", "dir", SF_CONFIG_PATH, false, "keys", NULL,
     "keygen: folder to write the key pair in (created, mode 0700, if "
     "missing), where the config examples read keys"},
    {"fabricctl/force", "force", SF_CONFIG_BOOL, false, "false", NULL,
     "keygen: replace an existing key pair"},
    {"fabricctl/batch", "batch", SF_CONFIG_INT, false, "400", "1..1000",
     "import: entities per request (each request also stays under 48 KiB)"},
    {"fabricctl/window", "window", SF_CONFIG_INT, false, "4", "1..64",
     "import: requests in flight"},
    {"fabricctl/copy_to", "copy-to", SF_CONFIG_STRING, false, NULL, NULL,
     "import: then copy the scene to this sim over the handoff channel"},
    {"fabricctl/sim", "sim", SF_CONFIG_STRING, false, NULL, NULL,
     "token create: the sim name the join token admits"},
    {"fabricctl/ttl", "ttl", SF_CONFIG_STRING, false, "10m", NULL,
     "token create: how long the token is valid (e.g. 90s, 10m, 24h, 7d)"},
    {"fabricctl/cert", "cert", SF_CONFIG_KEY, false, NULL, NULL,
     "cluster add: the new member's public key, its .cert file (or Z85)"},
    {"fabricctl/raft_id", "raft-id", SF_CONFIG_INT, false, NULL,
     "1..4611686018427387903", "cluster add: the new member's raft id"},
    {"fabricctl/raft", "raft", SF_CONFIG_STRING, false, NULL, NULL,
     "cluster add: the new member's raft endpoint"},
    {"fabricctl/api", "api", SF_CONFIG_STRING, false, NULL, NULL,
     "cluster add: the new member's API endpoint"},
    {"fabricctl/note", "note", SF_CONFIG_STRING, false, NULL, NULL,
     "token create PRINCIPAL: a note kept with the token (who it is for)"},
    {"fabricctl/once", "once", SF_CONFIG_BOOL, false, "false", NULL,
     "top: print the table once and exit"},
    {"fabricctl/cancel", "cancel", SF_CONFIG_BOOL, false, "false", NULL,
     "drain: end the sim's drain instead"},
    {"fabricctl/wait", "wait", SF_CONFIG_INT, false, "600", "1..86400",
     "drain: seconds to wait for the sim to be empty"},
    {"fabricctl/max_lag", "max-lag", SF_CONFIG_INT, false, "10000",
     "0..1000000000",
     "health: entries a member's applied index may trail the commit index"},
    {"fabricctl/sims", "sims", SF_CONFIG_BOOL, false, "false", NULL,
     "health: check every sim the ring lists too"},
    SF_PROGRAM_LOG_KEYS,
    {NULL},
};

static const sf_program_t s_program = {
    "fabricctl",
    "command line for simfabric homeservers and simulation servers",
    "fabricctl [FLAGS] COMMAND [ARGS]",
    "Commands:\n"
    "  keygen NAME          write NAME.cert and NAME.cert_secret (mode 0600) "
    "in\n"
    "                       --dir (default keys/, made if missing)\n"
    "  status               ask a daemon who it is and how it is doing (a "
    "ring\n"
    "                       member: exits 1 when it knows no leader)\n"
    "  health [--sims]      check every ring member (or the sim --server "
    "names):\n"
    "                       one line per problem, exit 1 if there is any\n"
    "  counters             a daemon's counters (a simulation server's: and "
    "its peers)\n"
    "  trace TRACE          the hops of a transfer (its id) or of a traced "
    "update,\n"
    "                       from the records of every ring member and sim\n"
    "  import SCENE         load a scene file (protocol/scene.md) onto the "
    "simulation\n"
    "                       server --server names: the ring records every "
    "entity\n"
    "                       with it as authority, in batched commits\n"
    "  request OP [ARGS]    send one API request; ARGS is a JSON object (to a "
    "ring:\n"
    "                       straight to its leader)\n"
    "  top [--once]         the ring's load reports, one line per sim, "
    "busiest first,\n"
    "                       refreshed every second until interrupted\n"
    "  drain SIM [--cancel] move everything SIM holds to other sims (needs "
    "an\n"
    "                       administrator's --key and balance/enabled on "
    "the ring);\n"
    "                       prints what is left each second, exits 0 when "
    "it is empty\n"
    "                       (1 after --wait seconds); --cancel ends a "
    "drain\n"
    "  raw TEXT             send TEXT unchanged as a request (debugging)\n"
    "  token create --sim NAME [--ttl 10m]\n"
    "                       a one-use join token admitting sim NAME (needs "
    "an\n"
    "                       administrator's --key); prints the token\n"
    "  token create PRINCIPAL [--ttl 10m] [--note TEXT]\n"
    "                       an HTTP bearer token standing for PRINCIPAL (a "
    ".cert\n"
    "                       file, a Z85 key, sim:NAME or player:NAME); "
    "prints it\n"
    "  token list           the HTTP bearer tokens (never their secrets)\n"
    "  backup FILE          a consistent copy of the ring's state from the "
    "member\n"
    "                       --server names (an administrator's --key); "
    "restore it\n"
    "                       with homeserver --restore FILE\n"
    "  watch [PREFIX]       the ring's changes (topics starting with PREFIX, "
    "e.g.\n"
    "                       entity:/world/) as lines, or JSON with --json, "
    "until\n"
    "                       interrupted; gaps filled, another member "
    "followed if\n"
    "                       this one goes\n"
    "  cluster add NAME --raft-id N --raft EP --api EP --cert NAME.cert\n"
    "                       add a started member (join = true) to the "
    "ring\n"
    "  cluster remove RAFT_ID\n"
    "                       remove a member from the ring\n"
    "  token revoke ID      refuse the bearer token ID from now on\n",
    s_schema,
};

static int
s_keygen (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args) != 1)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl keygen NAME [--dir DIR] [--force]");
    const char *name = (const char *) zlist_first (args);
    const char *dir = sf_config_str (config, "fabricctl/dir");
    sf_fault_t fault;
    //  A folder made here holds secrets: its owner's alone.
    if (!zsys_file_exists (dir)
        && (zsys_dir_create ("%s", dir) || chmod (dir, 0700)))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "cannot create %s: %s",
                         dir, strerror (errno));
    if (sf_cert_keygen (dir, name, sf_config_bool (config, "fabricctl/force"),
                        &fault))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
    if (sf_config_bool (config, "fabricctl/json"))
        printf (
            "{\"public\":\"%s/%s.cert\",\"secret\":\"%s/%s.cert_secret\"}\n",
            dir, name, dir, name);
    else
        printf ("wrote %s/%s.cert (public) and %s/%s.cert_secret (secret, "
                "mode 0600)\n",
                dir, name, dir, name);
    return SF_EXIT_OK;
}

//  Connect to the daemon at ENDPOINT whose public key is KEY (Z85), as
//  our configured key; exits on configuration errors.
static ctl_client_t *
s_connect_to (sf_config_t *config, const char *endpoint, const char *key)
{
    sf_fault_t fault;
    const char *secret = sf_config_str (config, "fabricctl/key");
    zcert_t *cert =
        secret ? sf_cert_load_secret (secret, &fault) : zcert_new ();
    if (!cert)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
    ctl_client_t *client = ctl_client_new (endpoint, key, &cert, &fault);
    if (!client)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
    return client;
}

//  Connect to the configured daemon; exits on configuration errors.
static ctl_client_t *
s_connect (sf_config_t *config)
{
    sf_fault_t fault;
    const char *server_key = sf_config_str (config, "fabricctl/server_key");
    if (!server_key)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "missing required key 'fabricctl/server_key' (give "
                         "the daemon's public key with --server-key)");
    char key [SF_CERT_KEY_TEXT + 1];
    if (sf_cert_load_public (server_key, key, &fault))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
    return s_connect_to (config, sf_config_str (config, "fabricctl/server"),
                         key);
}

//  One call on CLIENT; NULL (reported on stderr) when no reply came.
static json_t *
s_ask (sf_config_t *config, ctl_client_t *client, const char *op,
       const json_t *args, const char *whom)
{
    sf_fault_t fault;
    json_t *reply = ctl_client_call (
        client, op, args, (int) sf_config_int (config, "fabricctl/timeout"),
        &fault);
    if (!reply)
        fprintf (stderr, "fabricctl: %s: %s\n", whom, fault.message);
    return reply;
}

//  The client of the ring's leader when the configured daemon is a ring
//  member that knows one (so a transfer's request costs one hop, not a
//  forward), else of the configured daemon.
static ctl_client_t *
s_connect_leader (sf_config_t *config)
{
    ctl_client_t *client = s_connect (config);
    json_t *status = s_ask (config, client, "status", NULL, "status");
    const char *leader = json_string_value (json_object_get (status, "leader"));
    const char *node = json_string_value (json_object_get (status, "node"));
    size_t index;
    json_t *member;
    json_array_foreach (json_object_get (status, "members"), index, member)
    {
        const char *name = json_string_value (json_object_get (member, "name"));
        const char *api = json_string_value (json_object_get (member, "api"));
        const char *key = json_string_value (json_object_get (member, "key"));
        if (leader && node && !streq (leader, node) && name
            && streq (name, leader) && api && key) {
            ctl_client_destroy (&client);
            client = s_connect_to (config, api, key);
            break;
        }
    }
    json_decref (status);
    return client;
}

//  Print REPLY and return the exit code it deserves.
static int
s_finish (sf_config_t *config, json_t *reply, void (*print) (json_t *))
{
    sf_fault_t fault;
    int code = SF_EXIT_OK;
    if (sf_config_bool (config, "fabricctl/json") || !print) {
        char *text = sf_json_text (reply);
        printf ("%s\n", text);
        free (text);
    }
    else if (api_msg_reply_fault (reply, &fault) == 0)
        print (reply);
    if (api_msg_reply_fault (reply, &fault)) {
        fprintf (stderr, "fabricctl: error: %s: %s\n",
                 json_string_value (json_object_get (
                     json_object_get (reply, "error"), "code")),
                 fault.message);
        code = SF_EXIT_FAILURE;
    }
    json_decref (reply);
    return code;
}

static void
s_print_status (json_t *reply)
{
    const char *key;
    json_t *value;
    json_object_foreach (reply, key, value)
    {
        if (streq (key, "id") || streq (key, "ok"))
            continue;
        char *text = json_is_string (value) ? strdup (json_string_value (value))
                                            : sf_json_text (value);
        printf ("%-14s %s\n", key, text);
        free (text);
    }
}

//  The ring as a table: ask every member with an API endpoint for its
//  status and counters (a member that does not answer in 1 s shows as
//  unreachable). DIGEST and DIVERGED are its replica digest's head and
//  the mismatches it saw (raft-wire.md section 4).
static void
s_print_ring (json_t *reply)
{
    json_t *members = json_object_get (reply, "members");
    printf ("%-10s %4s %-10s %6s %8s %8s %8s %-8s %-12s %8s %s\n", "NAME", "ID",
            "ROLE", "TERM", "COMMIT", "APPLIED", "SNAPSHOT", "LEADER", "DIGEST",
            "DIVERGED", "API");
    size_t at;
    json_t *member;
    json_array_foreach (members, at, member)
    {
        //  A member of the configuration the daemon knows no name of
        //  shows as "-" (homeserver-api.md, status).
        const char *name = json_string_value (json_object_get (member, "name"));
        const char *api = json_string_value (json_object_get (member, "api"));
        const char *key = json_string_value (json_object_get (member, "key"));
        json_t *status = NULL, *counters = NULL;
        bool self = json_integer_value (json_object_get (member, "id"))
                    == json_integer_value (json_object_get (reply, "raft_id"));
        if (!name)
            name = "-";
        if (self)
            status = json_incref (reply);
        if (api && key && sf_cert_key_valid (key)) {
            sf_fault_t fault;
            zcert_t *cert = zcert_new ();
            ctl_client_t *client = ctl_client_new (api, key, &cert, &fault);
            if (client && !self)
                status = ctl_client_call (client, "status", NULL, 1000, &fault);
            if (client && status)
                counters =
                    ctl_client_call (client, "counters", NULL, 1000, &fault);
            ctl_client_destroy (&client);
            zcert_destroy (&cert);
        }
        json_t *digests = json_object_get (counters, "counters");
        char head [16] = "-", diverged [24] = "-";
        if (json_integer_value (
                json_object_get (digests, "ring_digest_index"))) {
            snprintf (head, sizeof head, "%012llx",
                      (unsigned long long) json_integer_value (
                          json_object_get (digests, "ring_digest_head")));
            snprintf (diverged, sizeof diverged, "%lld",
                      (long long) json_integer_value (
                          json_object_get (digests, "ring_digest_mismatches")));
        }
        if (status && json_is_true (json_object_get (status, "ok"))) {
            const char *leader =
                json_string_value (json_object_get (status, "leader"));
            printf (
                "%-10s %4lld %-10s %6lld %8lld %8lld %8lld %-8s %-12s %8s %s\n",
                name,
                (long long) json_integer_value (json_object_get (member, "id")),
                json_string_value (json_object_get (status, "role")),
                (long long) json_integer_value (
                    json_object_get (status, "term")),
                (long long) json_integer_value (
                    json_object_get (status, "commit_index")),
                (long long) json_integer_value (
                    json_object_get (status, "applied_index")),
                (long long) json_integer_value (
                    json_object_get (status, "snapshot_index")),
                leader ? leader : "-", head, diverged, api ? api : "-");
        }
        else
            printf (
                "%-10s %4lld %-10s %6s %8s %8s %8s %-8s %-12s %8s %s\n", name,
                (long long) json_integer_value (json_object_get (member, "id")),
                "unreachable", "-", "-", "-", "-", "-", "-", "-",
                api ? api : "-");
        json_decref (status);
        json_decref (counters);
    }
}

//  A daemon's counters, one per line, then a sim's peers as a table.
static void
s_print_counters (json_t *reply)
{
    const char *key;
    json_t *value;
    json_object_foreach (json_object_get (reply, "counters"), key, value)
    {
        printf ("%-24s %lld\n", key, (long long) json_integer_value (value));
    }
    //  A homeserver has no peer sims.
    if (!json_object_get (reply, "peers"))
        return;
    printf ("\n%-10s %-24s %6s %9s %5s %9s %8s %7s %10s\n", "PEER", "STATE",
            "WINDOW", "IN_FLIGHT", "DUE", "SRTT_US", "LOST", "STALLS", "SENT");
    size_t at;
    json_t *peer;
    json_array_foreach (json_object_get (reply, "peers"), at, peer)
    {
        const char *state = json_string_value (json_object_get (peer, "state"));
        printf (
            "%-10s %-24s %6lld %9lld %5lld %9lld %8lld %7lld %10lld\n",
            json_string_value (json_object_get (peer, "sim")),
            state ? state : "-",
            (long long) json_integer_value (json_object_get (peer, "window")),
            (long long) json_integer_value (
                json_object_get (peer, "in_flight")),
            (long long) json_integer_value (json_object_get (peer, "due")),
            (long long) json_integer_value (json_object_get (peer, "srtt_us")),
            (long long) json_integer_value (json_object_get (peer, "lost")),
            (long long) json_integer_value (
                json_object_get (peer, "credit_stalls")),
            (long long) json_integer_value (json_object_get (peer, "sent")));
    }
}

//  After the ring's table: each member the leader finds overloaded
//  (load.md section 3), with what to do. Returns SF_EXIT_FAILURE if one
//  is, else SF_EXIT_OK (also when the leader cannot say).
static int
s_print_overload (sf_config_t *config)
{
    ctl_client_t *client = s_connect (config);
    sf_fault_t fault;
    json_t *load = ctl_client_call (
        client, "load", NULL, (int) sf_config_int (config, "fabricctl/timeout"),
        &fault);
    ctl_client_destroy (&client);
    int code = SF_EXIT_OK;
    const char *name;
    json_t *report;
    json_object_foreach (json_object_get (load, "homeservers"), name, report)
    {
        json_t *over = json_object_get (report, "overloaded");
        if (!over)
            continue;
        printf ("%s: overloaded (%s for %.0f s): %s\n", name,
                json_string_value (json_object_get (over, "reason")),
                (double) json_integer_value (json_object_get (over, "since_ms"))
                    / 1e3,
                json_string_value (json_object_get (over, "action")));
        code = SF_EXIT_FAILURE;
    }
    json_decref (load);
    return code;
}

static int
s_call (sf_config_t *config, const char *op, const json_t *args,
        void (*print) (json_t *))
{
    ctl_client_t *client =
        print ? s_connect (config) : s_connect_leader (config);
    sf_fault_t fault;
    json_t *reply = ctl_client_call (
        client, op, args, (int) sf_config_int (config, "fabricctl/timeout"),
        &fault);
    ctl_client_destroy (&client);
    if (!reply && fault.error == SF_ETIMEOUT)
        sf_program_fail ("fabricctl", SF_EXIT_UNREACHABLE, "%s", fault.message);
    if (!reply)
        sf_program_fail (
            "fabricctl", SF_EXIT_FAILURE, "unreadable reply from %s (%s)",
            sf_config_str (config, "fabricctl/server"), fault.message);
    //  A ring member that knows no leader: the ring cannot serve writes
    //  (operations.md section 1).
    bool leaderless = print == s_print_status
                      && json_object_get (reply, "members")
                      && json_is_true (json_object_get (reply, "ok"))
                      && !json_is_string (json_object_get (reply, "leader"));
    char *node =
        leaderless ? strdup (json_string_value (json_object_get (reply, "node"))
                                 ?: "the member asked")
                   : NULL;
    int code;
    if (print == s_print_status && json_object_get (reply, "members")
        && !sf_config_bool (config, "fabricctl/json")
        && json_is_true (json_object_get (reply, "ok"))) {
        s_print_ring (reply);
        json_decref (reply);
        code = s_print_overload (config);
    }
    else
        code = s_finish (config, reply, print);
    if (leaderless) {
        fprintf (stderr, "fabricctl: %s knows no leader\n", node);
        code = SF_EXIT_FAILURE;
    }
    free (node);
    return code;
}

//  Ask each of DAEMONS ({NAME: {"api", "key"}}, lent) for OP at once, as
//  our configured key, each within TIMEOUT_MS (the replies of those that
//  answer are waiting by the time a silent one's wait ends): {NAME:
//  reply, or a string saying why none came}. A new object.
static json_t *
s_ask_all (sf_config_t *config, const json_t *daemons, const char *op,
           int timeout_ms)
{
    json_t *replies = json_object ();
    zhashx_t *clients = zhashx_new ();
    const char *name;
    const json_t *daemon;
    json_object_foreach ((json_t *) daemons, name, daemon)
    {
        const char *api = json_string_value (json_object_get (daemon, "api"));
        const char *key = json_string_value (json_object_get (daemon, "key"));
        if (!api || !key || !sf_cert_key_valid (key)) {
            json_object_set_new (replies, name,
                                 json_string ("its api or key is unknown"));
            continue;
        }
        ctl_client_t *client = s_connect_to (config, api, key);
        ctl_client_send (client, op, NULL);
        zhashx_insert (clients, name, client);
    }
    for (ctl_client_t *client = (ctl_client_t *) zhashx_first (clients); client;
         client = (ctl_client_t *) zhashx_next (clients)) {
        sf_fault_t fault;
        json_t *reply = ctl_client_recv (client, timeout_ms, &fault);
        json_object_set_new (replies, (const char *) zhashx_cursor (clients),
                             reply ? reply : json_string (fault.message));
        ctl_client_destroy (&client);
    }
    zhashx_destroy (&clients);
    return replies;
}

//  health (operations.md section 1): the problems of the ring the
//  configured member belongs to (and of its sims, with --sims), or of
//  the configured sim; one line each, exit 1 if there is any.
static int
s_health (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl health [--sims] [--max-lag N]");
    int timeout = (int) sf_config_int (config, "fabricctl/timeout");
    const char *server = sf_config_str (config, "fabricctl/server");
    ctl_client_t *client = s_connect (config);
    sf_fault_t fault;
    json_t *status = ctl_client_call (client, "status", NULL, timeout, &fault);
    json_t *problems = NULL, *statuses = json_object ();
    if (!status) {
        problems = json_array ();
        json_array_append_new (problems, json_sprintf ("%s: unreachable: %s",
                                                       server, fault.message));
    }
    else if (!json_object_get (status, "members")) {
        json_t *counters =
            ctl_client_call (client, "counters", NULL, timeout, &fault);
        problems = ctl_health_sim (status, counters, NULL);
        json_decref (counters);
        json_object_set (
            statuses,
            json_string_value (json_object_get (status, "node"))
                ? json_string_value (json_object_get (status, "node"))
                : server,
            status);
    }
    else {
        //  Every member the asked one lists, itself included.
        json_t *daemons = json_object ();
        const char *node = json_string_value (json_object_get (status, "node"));
        size_t at;
        json_t *member;
        json_array_foreach (json_object_get (status, "members"), at, member)
        {
            const char *name =
                json_string_value (json_object_get (member, "name"));
            if (name && !(node && streq (name, node)))
                json_object_set (daemons, name, member);
        }
        json_decref (statuses);
        statuses = s_ask_all (config, daemons, "status", timeout);
        json_decref (daemons);
        if (node)
            json_object_set (statuses, node, status);
        json_t *load =
            json_object_get (status, "leader")
                ? ctl_client_call (client, "load", NULL, timeout, &fault)
                : NULL;
        problems =
            ctl_health_ring (json_object_get (status, "members"), statuses,
                             json_object_get (load, "homeservers"),
                             sf_config_int (config, "fabricctl/max_lag"));
        //  Each sim the ring lists, at the api it registered.
        json_t *list =
            sf_config_bool (config, "fabricctl/sims")
                ? ctl_client_call (client, "sim.list", NULL, timeout, &fault)
                : NULL;
        json_t *sims = json_object_get (list, "sims");
        json_t *sim;
        json_t *targets = json_object ();
        json_array_foreach (sims, at, sim)
        {
            const char *name = json_string_value (json_object_get (sim, "sim"));
            if (name)
                json_object_set (targets, name, sim);
        }
        json_t *sim_statuses = s_ask_all (config, targets, "status", timeout);
        json_t *sim_counters = s_ask_all (config, targets, "counters", timeout);
        const char *name;
        json_t *reply;
        json_object_foreach (sim_statuses, name, reply)
        {
            json_t *found =
                json_is_object (reply)
                    ? ctl_health_sim (
                        reply, json_object_get (sim_counters, name), sims)
                    : json_pack ("[s++]", name,
                                 ": unreachable: ", json_string_value (reply));
            json_array_extend (problems, found);
            json_decref (found);
        }
        if (list && !sims)
            json_array_append_new (
                problems, json_string ("ring: sim.list did not answer"));
        json_decref (sim_statuses);
        json_decref (sim_counters);
        json_decref (targets);
        json_decref (list);
        json_decref (load);
    }
    ctl_client_destroy (&client);
    json_decref (status);
    size_t count = json_array_size (problems);
    if (sf_config_bool (config, "fabricctl/json")) {
        json_t *out = json_pack ("{s:b,s:O,s:O}", "healthy", count == 0,
                                 "problems", problems, "daemons", statuses);
        char *text = sf_json_text (out);
        printf ("%s\n", text);
        free (text);
        json_decref (out);
    }
    else {
        size_t at;
        json_t *problem;
        json_array_foreach (problems, at, problem)
            printf ("%s\n", json_string_value (problem));
        if (!count)
            printf ("healthy: no problem found (%zu daemon%s asked)\n",
                    json_object_size (statuses),
                    json_object_size (statuses) == 1 ? "" : "s");
    }
    json_decref (problems);
    json_decref (statuses);
    return count ? SF_EXIT_FAILURE : SF_EXIT_OK;
}

static int
s_request (sf_config_t *config, zlist_t *args)
{
    size_t count = zlist_size (args);
    if (count < 1 || count > 2)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl request OP ['{\"arg\": ...}']");
    const char *op = (const char *) zlist_first (args);
    if (!api_msg_op_valid (op))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "'%s' is not a valid operation name", op);
    json_t *object = NULL;
    if (count == 2) {
        const char *text = (const char *) zlist_next (args);
        sf_fault_t fault;
        object = sf_json_parse (text, strlen (text), &fault);
        if (!object)
            sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                             "request arguments: %s", fault.message);
        if (!json_is_object (object))
            sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                             "request arguments must be a JSON object");
    }
    int code = s_call (config, op, object, NULL);
    json_decref (object);
    return code;
}

//  Milliseconds in TEXT, a duration: digits and a unit (ms, s, m, h, d).
//  Returns 0 if it is not one.
static int64_t
s_duration_ms (const char *text)
{
    char *unit = NULL;
    long long count = strtoll (text, &unit, 10);
    if (unit == text || count <= 0 || *text == '+' || *text == ' ')
        return 0;
    static const struct {
        const char *unit;
        int64_t ms;
    } units [] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t at = 0; at < sizeof units / sizeof units [0]; at++)
        if (streq (unit, units [at].unit))
            return count > INT64_MAX / units [at].ms ? 0
                                                     : count * units [at].ms;
    return 0;
}

static void
s_print_token (json_t *reply)
{
    printf ("%s\n", json_string_value (json_object_get (reply, "token")));
}

static void
s_print_tokens (json_t *reply)
{
    size_t index;
    json_t *token;
    json_array_foreach (json_object_get (reply, "tokens"), index, token)
    {
        printf ("%s %s expires_ms=%lld%s %s\n",
                json_string_value (json_object_get (token, "token_id")),
                json_string_value (json_object_get (token, "principal")),
                (long long) json_integer_value (
                    json_object_get (token, "expires_ms")),
                json_is_true (json_object_get (token, "revoked")) ? " revoked"
                                                                  : "",
                json_string_value (json_object_get (token, "note")));
    }
}

static void
s_print_revoked (json_t *reply)
{
    printf ("%s %s\n", json_string_value (json_object_get (reply, "token_id")),
            json_is_true (json_object_get (reply, "changed"))
                ? "revoked"
                : "was revoked already");
}

//  The Z85 key PRINCIPAL names: a .cert file or Z85 text, or sim:NAME or
//  player:NAME as the ring knows that name's key now. Exits on failure.
static void
s_principal_key (sf_config_t *config, const char *principal, char *key)
{
    sf_fault_t fault;
    bool sim = strncmp (principal, "sim:", 4) == 0;
    bool player = strncmp (principal, "player:", 7) == 0;
    if (!sim && !player) {
        if (sf_cert_load_public (principal, key, &fault))
            sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
        return;
    }
    const char *name = principal + (sim ? 4 : 7);
    ctl_client_t *client = s_connect_leader (config);
    json_t *args = json_pack ("{s:s}", sim ? "sim" : "player", name);
    json_t *reply = s_ask (config, client, sim ? "sim.list" : "player.key",
                           sim ? NULL : args, principal);
    json_decref (args);
    ctl_client_destroy (&client);
    const char *found = NULL;
    if (player)
        found = json_string_value (json_object_get (reply, "key"));
    else {
        json_t *entry = NULL;
        size_t index;
        json_t *item;
        json_array_foreach (json_object_get (reply, "sims"), index, item)
        {
            const char *named =
                json_string_value (json_object_get (item, "sim"));
            if (named && streq (named, name))
                entry = item;
        }
        found = json_string_value (json_object_get (entry, "key"));
    }
    if (!found || !sf_cert_key_valid (found)) {
        json_decref (reply);
        sf_program_fail ("fabricctl", SF_EXIT_FAILURE,
                         "the ring knows no key for %s", principal);
    }
    snprintf (key, SF_CERT_KEY_TEXT + 1, "%s", found);
    json_decref (reply);
}

//  token create --sim NAME --ttl DURATION: the ring's token.create; token
//  create PRINCIPAL, token list, token revoke ID: its bearer tokens
//  (access.*, http.md section 5).
static int
s_token (sf_config_t *config, zlist_t *args)
{
    const char *sub = (const char *) zlist_first (args);
    const char *sim = sf_config_str (config, "fabricctl/sim");
    const char *usage = "usage: fabricctl token create --sim NAME | token "
                        "create PRINCIPAL | token list | token revoke ID "
                        "(--key ADMIN.cert_secret)";
    if (sub && streq (sub, "list") && zlist_size (args) == 1)
        return s_call (config, "access.list", NULL, s_print_tokens);
    if (sub && streq (sub, "revoke") && zlist_size (args) == 2) {
        json_t *request =
            json_pack ("{s:s}", "token_id", (const char *) zlist_next (args));
        int code = s_call (config, "access.revoke", request, s_print_revoked);
        json_decref (request);
        return code;
    }
    const char *principal =
        zlist_size (args) == 2 ? (const char *) zlist_next (args) : NULL;
    if (!sub || !streq (sub, "create") || (!sim == !principal)
        || zlist_size (args) > 2)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", usage);
    const char *ttl = sf_config_str (config, "fabricctl/ttl");
    int64_t ttl_ms = s_duration_ms (ttl);
    if (ttl_ms == 0)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "--ttl '%s' is not a duration like 90s, 10m, 24h or "
                         "7d",
                         ttl);
    if (principal) {
        char key [SF_CERT_KEY_TEXT + 1];
        s_principal_key (config, principal, key);
        const char *note = sf_config_str (config, "fabricctl/note");
        json_t *request =
            json_pack ("{s:s,s:I,s:s}", "principal", key, "ttl_ms",
                       (json_int_t) ttl_ms, "note", note ? note : principal);
        int code = s_call (config, "access.create", request, s_print_token);
        json_decref (request);
        return code;
    }
    json_t *request =
        json_pack ("{s:s,s:I}", "sim", sim, "ttl_ms", (json_int_t) ttl_ms);
    int code = s_call (config, "token.create", request, s_print_token);
    json_decref (request);
    return code;
}

//  cluster add NAME --raft-id N --raft EP --api EP --cert FILE, cluster
//  remove RAFT_ID: the ring's cluster.add and cluster.remove, with the
//  new member's key read from its certificate.
static int
s_cluster (sf_config_t *config, zlist_t *args)
{
    const char *sub = (const char *) zlist_first (args);
    const char *usage =
        "usage: fabricctl cluster add NAME --raft-id N --raft ENDPOINT "
        "[--api ENDPOINT] --cert NAME.cert | cluster remove RAFT_ID "
        "(--key ADMIN.cert_secret)";
    const char *operand =
        zlist_size (args) == 2 ? (const char *) zlist_next (args) : NULL;
    if (!sub || !operand)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", usage);
    json_t *request = NULL;
    const char *op = NULL;
    if (streq (sub, "remove")) {
        char *end;
        long long id = strtoll (operand, &end, 10);
        if (*end || id < 1)
            sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                             "'%s' is not a raft id", operand);
        op = "cluster.remove";
        request = json_pack ("{s:I}", "raft_id", (json_int_t) id);
    }
    else if (streq (sub, "add")) {
        const char *cert = sf_config_str (config, "fabricctl/cert");
        const char *raft = sf_config_str (config, "fabricctl/raft");
        const char *api = sf_config_str (config, "fabricctl/api");
        if (!cert || !raft || !sf_config_str (config, "fabricctl/raft_id"))
            sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", usage);
        char key [SF_CERT_KEY_TEXT + 1];
        sf_fault_t fault;
        if (sf_cert_load_public (cert, key, &fault))
            sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
        op = "cluster.add";
        request =
            json_pack ("{s:s,s:I,s:s,s:s}", "name", operand, "raft_id",
                       (json_int_t) sf_config_int (config, "fabricctl/raft_id"),
                       "raft", raft, "key", key);
        if (api)
            json_object_set_new (request, "api", json_string (api));
    }
    else
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", usage);
    int code = s_call (config, op, request, NULL);
    json_decref (request);
    return code;
}

//  One backup.* call; exits on no reply or an error reply.
static json_t *
s_backup_call (sf_config_t *config, ctl_client_t *client, const char *op,
               json_t *args, int timeout_ms)
{
    sf_fault_t fault;
    json_t *reply = ctl_client_call (client, op, args, timeout_ms, &fault);
    json_decref (args);
    if (!reply)
        sf_program_fail ("fabricctl", SF_EXIT_UNREACHABLE, "backup: %s: %s", op,
                         fault.message);
    if (api_msg_reply_fault (reply, &fault))
        sf_program_fail ("fabricctl", SF_EXIT_FAILURE, "backup: %s: %s: %s", op,
                         json_string_value (json_object_get (
                             json_object_get (reply, "error"), "code")),
                         fault.message);
    (void) config;
    return reply;
}

//  backup FILE (operations.md section 2): the member copies its state
//  at its applied index; we read the copy in pieces into FILE.part, check
//  its size and SHA-256, and rename it to FILE.
static int
s_backup (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args) != 1)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl backup FILE --key "
                         "ADMIN.cert_secret --server HS_API --server-key "
                         "HS.cert");
    const char *path = (const char *) zlist_first (args);
    int timeout = (int) sf_config_int (config, "fabricctl/timeout");
    ctl_client_t *client = s_connect (config);
    //  Copying a large state takes a while: wait for it.
    json_t *begun = s_backup_call (config, client, "backup.begin", NULL,
                                   timeout > 600000 ? timeout : 600000);
    const char *id = json_string_value (json_object_get (begun, "backup"));
    uint64_t bytes =
        (uint64_t) json_integer_value (json_object_get (begun, "bytes"));
    long long index = json_integer_value (json_object_get (begun, "index"));
    const char *sha256 = json_string_value (json_object_get (begun, "sha256"));
    char *part = zsys_sprintf ("%s.part", path);
    FILE *out = fopen (part, "wb");
    if (!out)
        sf_program_fail ("fabricctl", SF_EXIT_FAILURE, "cannot write %s: %s",
                         part, strerror (errno));
    crypto_hash_sha256_state hash;
    crypto_hash_sha256_init (&hash);
    uint64_t offset = 0, shown_ms = 0;
    uint8_t *data = (uint8_t *) zmalloc (65536);
    while (offset < bytes) {
        json_t *piece =
            s_backup_call (config, client, "backup.read",
                           json_pack ("{s:s,s:I}", "backup", id, "offset",
                                      (json_int_t) offset),
                           timeout);
        const char *text = json_string_value (json_object_get (piece, "data"));
        size_t size = 0;
        if (!text
            || sodium_base642bin (data, 65536, text, strlen (text), NULL, &size,
                                  NULL, sodium_base64_VARIANT_ORIGINAL)
            || size == 0 || fwrite (data, 1, size, out) != size)
            sf_program_fail ("fabricctl", SF_EXIT_FAILURE,
                             "backup: a piece at %llu is unreadable or could "
                             "not be written",
                             (unsigned long long) offset);
        crypto_hash_sha256_update (&hash, data, size);
        offset += size;
        json_decref (piece);
        uint64_t now = zclock_mono ();
        if (now - shown_ms >= 1000 || offset == bytes) {
            fprintf (stderr, "backup: %.0f%% (%.1f of %.1f MB) at index %lld\n",
                     bytes ? 100.0 * (double) offset / (double) bytes : 100.0,
                     (double) offset / 1e6, (double) bytes / 1e6, index);
            shown_ms = now;
        }
    }
    free (data);
    uint8_t digest [crypto_hash_sha256_BYTES];
    char hex [65];
    crypto_hash_sha256_final (&hash, digest);
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    if (fflush (out) || fsync (fileno (out)) || fclose (out))
        sf_program_fail ("fabricctl", SF_EXIT_FAILURE, "cannot write %s: %s",
                         part, strerror (errno));
    if (!sha256 || !streq (hex, sha256)) {
        unlink (part);
        sf_program_fail ("fabricctl", SF_EXIT_FAILURE,
                         "backup: the copy's SHA-256 is %s, the member's %s: "
                         "nothing written",
                         hex, sha256 ? sha256 : "(none)");
    }
    if (rename (part, path))
        sf_program_fail ("fabricctl", SF_EXIT_FAILURE, "cannot rename %s: %s",
                         part, strerror (errno));
    json_decref (s_backup_call (config, client, "backup.end",
                                json_pack ("{s:s}", "backup", id), timeout));
    printf ("wrote %s: the ring's state at index %lld, %llu bytes, sha256 "
            "%s\n",
            path, index, (unsigned long long) bytes, hex);
    free (part);
    json_decref (begun);
    ctl_client_destroy (&client);
    return SF_EXIT_OK;
}

//  watch [PREFIX]: the ring's changes as lines until interrupted.
static int
s_watch (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args) > 1)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl watch [PREFIX] [--json]");
    const char *server_key = sf_config_str (config, "fabricctl/server_key");
    if (!server_key)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "missing required key 'fabricctl/server_key' (give "
                         "the member's public key with --server-key)");
    char key [SF_CERT_KEY_TEXT + 1];
    sf_fault_t fault;
    if (sf_cert_load_public (server_key, key, &fault))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
    ctl_watch_config_t watch = {
        .server = sf_config_str (config, "fabricctl/server"),
        .server_key = key,
        .secret = sf_config_str (config, "fabricctl/key"),
        .prefix = (const char *) zlist_first (args),
        .json = sf_config_bool (config, "fabricctl/json"),
        .timeout_ms = (int) sf_config_int (config, "fabricctl/timeout"),
        .out = stdout,
    };
    if (ctl_watch_run (&watch, &fault))
        sf_program_fail ("fabricctl", SF_EXIT_UNREACHABLE, "%s", fault.message);
    return SF_EXIT_OK;
}

//  Ask the daemon the directory ENTRY describes (a ring member from
//  status, or a sim from sim.list, named by its NAME_KEY member) for its
//  records of the trace in ARGS, adding them to RECORDS. A daemon without
//  an API endpoint or key is skipped. Returns its name, lent, or NULL.
static const char *
s_trace_from (sf_config_t *config, const json_t *entry, const char *name_key,
              const json_t *args, json_t *records)
{
    const char *name = json_string_value (json_object_get (entry, name_key));
    const char *api = json_string_value (json_object_get (entry, "api"));
    const char *key = json_string_value (json_object_get (entry, "key"));
    if (!name || !api || !key)
        return name;
    ctl_client_t *client = s_connect_to (config, api, key);
    json_t *reply = s_ask (config, client, "trace", args, name);
    ctl_client_destroy (&client);
    if (reply && json_is_true (json_object_get (reply, "ok")))
        json_array_extend (records, json_object_get (reply, "records"));
    else if (reply)
        fprintf (stderr, "fabricctl: %s: %s\n", name,
                 json_string_value (json_object_get (
                     json_object_get (reply, "error"), "message")));
    json_decref (reply);
    return name;
}

//  Every record of trace ID held by the ring CLIENT is a member of: its
//  members' (status) and its registered sims' (sim.list), added to
//  RECORDS and the members' names to RING. The ring's instance name into
//  INSTANCE (NULL: none). FROM and KEY (Z85) are the member CLIENT asks,
//  reached there even if its ring does not list its API. Exits if CLIENT
//  is no ring member.
static void
s_trace_ring (sf_config_t *config, ctl_client_t *client, const char *from,
              const char *key, const char *id, json_t *records, json_t *ring,
              json_t **instance)
{
    json_t *status = s_ask (config, client, "status", NULL, "status");
    json_t *sims = s_ask (config, client, "sim.list", NULL, "sim.list");
    if (!status || !json_object_get (status, "members") || !sims
        || !json_is_true (json_object_get (sims, "ok")))
        sf_program_fail ("fabricctl", SF_EXIT_UNREACHABLE,
                         "%s is not a ring member that answers status and "
                         "sim.list",
                         from);
    json_t *request = json_pack ("{s:s}", "trace", id);
    size_t index;
    json_t *member;
    const char *asked = json_string_value (json_object_get (status, "node"));
    json_array_foreach (json_object_get (status, "members"), index, member)
    {
        json_t *entry = json_deep_copy (member);
        const char *name = json_string_value (json_object_get (entry, "name"));
        if (name && asked && streq (name, asked)
            && !json_is_string (json_object_get (entry, "api"))) {
            json_object_set_new (entry, "api", json_string (from));
            json_object_set_new (entry, "key", json_string (key));
        }
        name = s_trace_from (config, entry, "name", request, records);
        if (name)
            json_array_append_new (ring, json_string (name));
        json_decref (entry);
    }
    //  Another instance's sims are its to trace, not this ring's.
    json_array_foreach (
        json_object_get (sims, "sims"), index,
        member) if (!json_object_get (member, "instance")
                    && !strchr (
                        json_string_value (json_object_get (member, "sim"))
                            ?: "@",
                        '@'))
        s_trace_from (config, member, "sim", request, records);
    *instance = json_incref (json_object_get (status, "instance"));
    json_decref (request);
    json_decref (status);
    json_decref (sims);
}

//  Name every daemon in RECORDS from index FIRST on (and in RING) as one
//  of INSTANCE, NAME@INSTANCE, and their trace TRACE: records of two
//  instances then pair by name (trace.md section 3).
static void
s_trace_qualify (json_t *records, size_t first, json_t *ring,
                 const char *instance, const char *trace)
{
    char global [200];
    for (size_t at = first; at < json_array_size (records); at++) {
        json_t *record = json_array_get (records, at);
        static const char *const fields [] = {"node", "peer", NULL};
        for (const char *const *field = fields; *field; field++) {
            const char *name =
                json_string_value (json_object_get (record, *field));
            if (!name || !*name || strchr (name, '@')
                || streq (name, "subscribers"))
                continue;
            snprintf (global, sizeof global, "%s@%s", name, instance);
            json_object_set_new (record, *field, json_string (global));
        }
        json_object_set_new (record, "trace", json_string (trace));
    }
    for (size_t at = 0; at < json_array_size (ring); at++) {
        const char *name = json_string_value (json_array_get (ring, at));
        if (name && !strchr (name, '@')) {
            snprintf (global, sizeof global, "%s@%s", name, instance);
            json_array_set_new (ring, at, json_string (global));
        }
    }
}

//  trace TRACE: every ring member's and registered sim's records of it,
//  put together (trace.md section 3). TRACE@INSTANCE, another instance's
//  transfer (federation.md section 8), adds that instance's records, read
//  from --peer-server, every daemon named NAME@ITS_INSTANCE.
static int
s_trace (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args) != 1)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl trace TRACE");
    const char *id = (const char *) zlist_first (args);
    const char *home = strchr (id, '@');
    json_t *records = json_array ();
    json_t *ring = json_array ();
    json_t *here = NULL;
    char key [SF_CERT_KEY_TEXT + 1];
    sf_fault_t fault;
    const char *server_key = sf_config_str (config, "fabricctl/server_key");
    if (!server_key || sf_cert_load_public (server_key, key, &fault))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "trace needs the member's public key (--server-key)");
    ctl_client_t *client = s_connect (config);
    s_trace_ring (config, client, sf_config_str (config, "fabricctl/server"),
                  key, id, records, ring, &here);
    ctl_client_destroy (&client);
    const char *peer = sf_config_str (config, "fabricctl/peer_server");
    if (home && !json_is_string (here))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "trace %s is another instance's, but %s names no "
                         "instance of its own (homeserver/instance)",
                         id, sf_config_str (config, "fabricctl/server"));
    if (home) {
        s_trace_qualify (records, 0, ring, json_string_value (here), id);
        if (!peer)
            fprintf (stderr,
                     "fabricctl: instance %s's records not read (give a "
                     "member with --peer-server and --peer-server-key): "
                     "the path stops at its edge\n",
                     home + 1);
    }
    if (home && peer) {
        const char *peer_key =
            sf_config_str (config, "fabricctl/peer_server_key");
        if (!peer_key || sf_cert_load_public (peer_key, key, &fault))
            sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                             "--peer-server needs --peer-server-key, the "
                             "member's public key");
        char local [32];
        snprintf (local, sizeof local, "%.*s", (int) (home - id), id);
        size_t first = json_array_size (records);
        json_t *theirs = json_array ();
        json_t *there = NULL;
        client = s_connect_to (config, peer, key);
        s_trace_ring (config, client, peer, key, local, records, theirs,
                      &there);
        ctl_client_destroy (&client);
        s_trace_qualify (records, first, theirs, home + 1, id);
        json_array_extend (ring, theirs);
        json_decref (theirs);
        json_decref (there);
    }
    const char *names [129] = {NULL};
    for (size_t at = 0; at < json_array_size (ring) && at < 128; at++)
        names [at] = json_string_value (json_array_get (ring, at));
    json_t *analysis = ctl_trace_analyse (id, records, names);
    int code = json_array_size (records) ? SF_EXIT_OK : SF_EXIT_FAILURE;
    if (!json_array_size (records))
        fprintf (stderr, "fabricctl: no daemon has records of trace %s\n", id);
    else if (sf_config_bool (config, "fabricctl/json")) {
        char *text = sf_json_text (analysis);
        printf ("%s\n", text);
        free (text);
    }
    else
        ctl_trace_print (analysis);
    json_decref (analysis);
    json_decref (records);
    json_decref (ring);
    json_decref (here);
    return code;
}

//  The import's progress on stderr: a bar redrawn in place on a terminal,
//  a line per tenth otherwise.
static void
s_progress (size_t done, size_t total, uint64_t started_ms, bool final)
{
    static size_t shown = 0;
    double seconds = (double) (sf_time_mono_ms () - started_ms) / 1000.0;
    if (isatty (STDERR_FILENO)) {
        int width = 30,
            filled = (int) ((double) width * (double) done / (double) total);
        fprintf (stderr, "\rimport [%.*s%*s] %zu/%zu entities %3.0f%% %.2f s",
                 filled, "##############################", width - filled, "",
                 done, total, 100.0 * (double) done / (double) total, seconds);
        if (final)
            fprintf (stderr, "\n");
    }
    else if (final || done * 10 / total > shown) {
        shown = done * 10 / total;
        fprintf (stderr, "import: %zu/%zu entities %.0f%% %.2f s\n", done,
                 total, 100.0 * (double) done / (double) total, seconds);
    }
}

//  import SCENE: the scene's entities onto the sim --server names, a
//  window of batches in flight; each batch is one ring command.
static int
s_import (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args) != 1)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl import SCENE --server SIM_API "
                         "--server-key SIM_KEY [--copy-to SIM]");
    sf_fault_t fault;
    json_t *entities =
        ctl_scene_load ((const char *) zlist_first (args), &fault);
    if (!entities)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE, "%s", fault.message);
    json_t *batches = ctl_scene_batches (
        entities, (size_t) sf_config_int (config, "fabricctl/batch"),
        48 * 1024);
    size_t total = json_array_size (entities);
    int window = (int) sf_config_int (config, "fabricctl/window");
    int timeout = (int) sf_config_int (config, "fabricctl/timeout");
    ctl_client_t *client = s_connect (config);
    uint64_t started = sf_time_mono_ms ();
    size_t next = 0, done = 0, in_flight = 0, retries = 0;
    int code = SF_EXIT_OK;
    //  Request id -> the batch it carries (its index, as text).
    zhashx_t *sent = zhashx_new ();
    zhashx_set_destructor (sent, (zhashx_destructor_fn *) zstr_free);
    zlist_t *again = zlist_new ();  //  batches to send again (index + 1)
    while (next < json_array_size (batches) || in_flight
           || zlist_size (again)) {
        while (code == SF_EXIT_OK && in_flight < (size_t) window
               && (zlist_size (again) || next < json_array_size (batches))) {
            size_t at = zlist_size (again)
                            ? (size_t) (uintptr_t) zlist_pop (again) - 1
                            : next++;
            json_t *request =
                json_pack ("{s:O}", "entities", json_array_get (batches, at));
            int64_t id = ctl_client_send (client, "entity.import", request);
            json_decref (request);
            char key [24], value [24];
            snprintf (key, sizeof key, "%lld", (long long) id);
            snprintf (value, sizeof value, "%zu", at);
            zhashx_insert (sent, key, strdup (value));
            in_flight++;
        }
        if (!in_flight)
            break;
        json_t *reply = ctl_client_recv (client, timeout, &fault);
        if (!reply) {
            fprintf (stderr,
                     "\nfabricctl: import: %s after %zu of %zu "
                     "entities\n",
                     fault.message, done, total);
            code = SF_EXIT_UNREACHABLE;
            break;
        }
        char key [24];
        snprintf (
            key, sizeof key, "%lld",
            (long long) json_integer_value (json_object_get (reply, "id")));
        const char *value = (const char *) zhashx_lookup (sent, key);
        if (value) {
            in_flight--;
            size_t at = (size_t) strtoull (value, NULL, 10);
            zhashx_delete (sent, key);
            if (api_msg_reply_fault (reply, &fault) == 0)
                done += json_array_size (json_array_get (batches, at));
            else if ((fault.error == SF_EUNAVAILABLE
                      || fault.error == SF_ETIMEOUT)
                     && retries < 20 && code == SF_EXIT_OK) {
                //  The ring was changing leader or slow to answer: the batch
                //  may or may not be in. Sent again after a pause; the ring
                //  takes the same batch again as done (entity.import).
                retries++;
                zclock_sleep (50 * (int) (retries < 10 ? retries : 10));
                zlist_append (again, (void *) (uintptr_t) (at + 1));
            }
            else if (code == SF_EXIT_OK) {
                fprintf (stderr, "\nfabricctl: import: %s: %s\n",
                         json_string_value (json_object_get (
                             json_object_get (reply, "error"), "code")),
                         fault.message);
                code = SF_EXIT_FAILURE;
            }
            s_progress (done, total, started, false);
        }
        json_decref (reply);
    }
    zlist_destroy (&again);
    double seconds = (double) (sf_time_mono_ms () - started) / 1000.0;
    s_progress (done, total, started, true);
    json_t *result = json_pack (
        "{s:I,s:I,s:I,s:f,s:I}", "imported", (json_int_t) done, "entities",
        (json_int_t) total, "batches", (json_int_t) json_array_size (batches),
        "seconds", seconds, "retries", (json_int_t) retries);
    const char *copy_to = sf_config_str (config, "fabricctl/copy_to");
    if (code == SF_EXIT_OK && copy_to) {
        char *prefix = ctl_scene_prefix (entities);
        json_t *copy = json_pack ("{s:s,s:s}", "to", copy_to, "prefix", prefix);
        uint64_t copy_started = sf_time_mono_ms ();
        json_t *reply =
            ctl_client_call (client, "entity.copy", copy, timeout * 10, &fault);
        if (reply && api_msg_reply_fault (reply, &fault) == 0) {
            json_object_del (reply, "id");
            json_object_del (reply, "ok");
            json_object_set (result, "copied", reply);
            json_object_set_new (
                result, "copy_seconds",
                json_real ((double) (sf_time_mono_ms () - copy_started) / 1e3));
        }
        else {
            fprintf (stderr, "fabricctl: import: copy to %s: %s\n", copy_to,
                     fault.message);
            code = reply ? SF_EXIT_FAILURE : SF_EXIT_UNREACHABLE;
        }
        json_decref (reply);
        json_decref (copy);
        free (prefix);
    }
    if (sf_config_bool (config, "fabricctl/json")) {
        char *text = sf_json_text (result);
        printf ("%s\n", text);
        free (text);
    }
    else
        printf ("imported %zu of %zu entities in %zu batches in %.2f s\n", done,
                total, json_array_size (batches), seconds);
    json_decref (result);
    zhashx_destroy (&sent);
    ctl_client_destroy (&client);
    json_decref (batches);
    json_decref (entities);
    return code;
}

//  A number of REPORT's FIELD, or 0.
static double
s_figure (const json_t *report, const char *field)
{
    return json_number_value (json_object_get (report, field));
}

//  REPORT's CPU per second per unit of its capacity.
static double
s_per_capacity (const json_t *report)
{
    double capacity = s_figure (report, "capacity");
    return s_figure (report, "cpu_per_s") / (capacity >= 1 ? capacity : 1);
}

//  Reports by the CPU they spend per unit of capacity, the busiest first.
static int
s_by_load (const void *a, const void *b)
{
    const json_t *left = *(const json_t *const *) a;
    const json_t *right = *(const json_t *const *) b;
    double l = s_per_capacity (json_object_get (left, "report"));
    double r = s_per_capacity (json_object_get (right, "report"));
    if (l != r)
        return l > r ? -1 : 1;
    return strcmp (json_string_value (json_object_get (left, "name")),
                   json_string_value (json_object_get (right, "name")));
}

//  The table of the ring's load reports (protocol/load.md section 8).
//  The balancer's state and its last decisions, newest first.
static void
s_print_moves (const json_t *balancer)
{
    if (!balancer)
        return;
    const json_t *moves = json_object_get (balancer, "moves");
    printf ("\nbalancer %s, band %.0f%%; last moves:%s\n",
            json_is_true (json_object_get (balancer, "enabled")) ? "on" : "off",
            100 * s_figure (balancer, "band"),
            json_array_size (moves) ? "" : " none");
    for (size_t at = 0; at < json_array_size (moves) && at < 10; at++) {
        const json_t *move = json_array_get (moves, at);
        printf ("  %-10s %s -> %s  %s: %.0f moved, %.0f skipped (%s)\n",
                json_string_value (json_object_get (move, "move")),
                json_string_value (json_object_get (move, "from")),
                json_string_value (json_object_get (move, "to")),
                json_string_value (json_object_get (move, "group")),
                s_figure (move, "moved"), s_figure (move, "skipped"),
                json_string_value (json_object_get (move, "reason")));
    }
}

static void
s_print_top (json_t *reply)
{
    json_t *sims = json_object_get (reply, "sims");
    size_t count = json_object_size (sims), at = 0;
    json_t **rows = (json_t **) malloc ((count + 1) * sizeof *rows);
    const char *name;
    json_t *report;
    json_object_foreach (sims, name, report)
    {
        rows [at++] = json_pack ("{s:s,s:O}", "name", name, "report", report);
    }
    qsort (rows, count, sizeof *rows, s_by_load);
    printf ("%-16s %4s %7s %8s %7s %7s %9s %9s %7s %7s %6s  %s\n", "SIM", "CAP",
            "HELD", "REPLICAS", "CPU/S", "SHARE%", "UPD_OUT/S", "UPD_IN/S",
            "API/S", "RSS_MB", "AGE", "BUSIEST ROOM");
    for (at = 0; at < count; at++) {
        report = json_object_get (rows [at], "report");
        const json_t *busiest =
            json_array_get (json_object_get (report, "groups"), 0);
        //  The modelled load against its share (load.md section 4); a
        //  draining sim's share is none.
        char share [16] = "-";
        if (json_is_true (json_object_get (report, "draining")))
            snprintf (share, sizeof share, "drain");
        else if (s_figure (report, "share") > 0)
            snprintf (share, sizeof share, "%.0f",
                      100 * s_figure (report, "load")
                          / s_figure (report, "share"));
        printf ("%-16s %4.0f %7.0f %8.0f %7.3f %7s %9.0f %9.0f %7.0f %7.1f "
                "%5.1fs  %s\n",
                json_string_value (json_object_get (rows [at], "name")),
                s_figure (report, "capacity"),
                s_figure (report, "authoritative"),
                s_figure (report, "replicas"), s_figure (report, "cpu_per_s"),
                share, s_figure (report, "updates_sent_per_s"),
                s_figure (report, "updates_received_per_s"),
                s_figure (report, "api_per_s"),
                s_figure (report, "rss_bytes") / (1024.0 * 1024.0),
                s_figure (report, "age_ms") / 1000.0,
                busiest ? json_string_value (json_object_get (busiest, "group"))
                        : "-");
        json_decref (rows [at]);
    }
    free (rows);
    if (!count)
        printf ("(no sim has reported to the leader yet)\n");
    s_print_moves (json_object_get (reply, "balancer"));
    json_t *members = json_object_get (reply, "homeservers");
    if (!json_object_size (members))
        return;
    printf ("\n%-16s %-9s %7s %9s %8s %6s %6s %7s %7s %6s\n", "HOMESERVER",
            "ROLE", "CPU/S", "COMMITS/S", "P99_MS", "LAG", "READS", "RSS_MB",
            "LOG_MB", "AGE");
    json_object_foreach (members, name, report)
    {
        const json_t *p99 = json_object_get (report, "commit_p99_us");
        char p99_text [16] = "-";
        if (json_is_integer (p99))
            snprintf (p99_text, sizeof p99_text, "%.1f",
                      (double) json_integer_value (p99) / 1e3);
        const char *role = json_string_value (json_object_get (report, "role"));
        printf ("%-16s %-9s %7.3f %9.0f %8s %6.0f %6.0f %7.1f %7.1f %5.1fs\n",
                name, role ? role : "-", s_figure (report, "cpu_per_s"),
                s_figure (report, "commits_per_s"), p99_text,
                s_figure (report, "apply_lag"),
                s_figure (report, "pending_reads"),
                s_figure (report, "rss_bytes") / (1024.0 * 1024.0),
                s_figure (report, "log_bytes") / (1024.0 * 1024.0),
                s_figure (report, "age_ms") / 1000.0);
    }
}

//  top: the load table, refreshed in place every second until
//  interrupted; --once prints it once.
static int
s_top (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args))
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl top [--once]");
    if (sf_config_bool (config, "fabricctl/once"))
        return s_call (config, "load", NULL, s_print_top);
    ctl_client_t *client = s_connect (config);
    int code = SF_EXIT_OK;
    while (!zsys_interrupted) {
        sf_fault_t fault;
        json_t *reply = ctl_client_call (
            client, "load", NULL,
            (int) sf_config_int (config, "fabricctl/timeout"), &fault);
        //  Home the cursor and clear: the table is redrawn in place.
        printf ("\033[H\033[2J");
        if (!reply)
            printf ("fabricctl: %s\n", fault.message);
        else if (api_msg_reply_fault (reply, &fault))
            printf ("fabricctl: error: %s\n", fault.message);
        else
            s_print_top (reply);
        fflush (stdout);
        json_decref (reply);
        zclock_sleep (1000);
    }
    ctl_client_destroy (&client);
    return code;
}

//  How many entities SIM holds, as the ring says: 0, 1, or -1 if it
//  could not be read (FAULT); "at least one" is all a drain waits on.
static int
s_holds_any (sf_config_t *config, ctl_client_t *client, const char *sim,
             sf_fault_t *fault)
{
    json_t *args = json_pack ("{s:s,s:i}", "authority", sim, "limit", 1);
    json_t *reply = ctl_client_call (
        client, "entity.list", args,
        (int) sf_config_int (config, "fabricctl/timeout"), fault);
    json_decref (args);
    int held = -1;
    if (reply && api_msg_reply_fault (reply, fault) == 0)
        held = json_array_size (json_object_get (reply, "entities")) ? 1 : 0;
    json_decref (reply);
    return held;
}

//  drain SIM (load.md section 7): start the drain, then print what the
//  sim still holds (its last report's count) every second until the
//  ring shows nothing held by it.
static int
s_drain (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args) != 1)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl drain SIM [--cancel] [--wait S]");
    const char *sim = (const char *) zlist_first (args);
    bool cancel = sf_config_bool (config, "fabricctl/cancel");
    json_t *drain = json_pack ("{s:s,s:b}", "sim", sim, "drain", !cancel);
    ctl_client_t *client = s_connect (config);
    json_t *reply = s_ask (config, client, "sim.drain", drain, "sim.drain");
    json_decref (drain);
    sf_fault_t fault;
    if (!reply || api_msg_reply_fault (reply, &fault)) {
        if (reply)
            fprintf (stderr, "fabricctl: error: %s: %s\n",
                     sf_error_code (fault.error), fault.message);
        json_decref (reply);
        ctl_client_destroy (&client);
        return reply ? SF_EXIT_FAILURE : SF_EXIT_UNREACHABLE;
    }
    json_decref (reply);
    if (cancel) {
        printf ("%s: drain cancelled\n", sim);
        ctl_client_destroy (&client);
        return SF_EXIT_OK;
    }
    uint64_t deadline =
        sf_time_mono_ms ()
        + (uint64_t) sf_config_int (config, "fabricctl/wait") * 1000;
    int code = SF_EXIT_FAILURE;
    while (!zsys_interrupted) {
        int held = s_holds_any (config, client, sim, &fault);
        if (held == 0) {
            printf ("%s: empty\n", sim);
            code = SF_EXIT_OK;
            break;
        }
        json_t *load = ctl_client_call (
            client, "load", NULL,
            (int) sf_config_int (config, "fabricctl/timeout"), &fault);
        const json_t *report =
            json_object_get (json_object_get (load, "sims"), sim);
        if (held < 0)
            printf ("%s: %s\n", sim, fault.message);
        else if (report)
            printf ("%s: %.0f entities left\n", sim,
                    s_figure (report, "authoritative"));
        else
            printf ("%s: entities left (no report from it yet)\n", sim);
        fflush (stdout);
        json_decref (load);
        if (sf_time_mono_ms () >= deadline) {
            fprintf (stderr, "fabricctl: %s is not empty after %lld s\n", sim,
                     (long long) sf_config_int (config, "fabricctl/wait"));
            break;
        }
        zclock_sleep (1000);
    }
    ctl_client_destroy (&client);
    return code;
}

static int
s_raw (sf_config_t *config, zlist_t *args)
{
    if (zlist_size (args) != 1)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "usage: fabricctl raw 'TEXT'");
    ctl_client_t *client = s_connect (config);
    sf_fault_t fault;
    char *reply = ctl_client_call_raw (
        client, (const char *) zlist_first (args),
        (int) sf_config_int (config, "fabricctl/timeout"), &fault);
    ctl_client_destroy (&client);
    if (!reply)
        sf_program_fail ("fabricctl", SF_EXIT_UNREACHABLE, "%s", fault.message);
    json_t *parsed = api_msg_decode_reply (reply, strlen (reply), &fault);
    printf ("%s\n", reply);
    free (reply);
    if (!parsed)
        return SF_EXIT_FAILURE;
    int code = json_is_true (json_object_get (parsed, "ok")) ? SF_EXIT_OK
                                                             : SF_EXIT_FAILURE;
    json_decref (parsed);
    return code;
}

int
main (int argc, char *argv [])
{
    sf_config_t *config = sf_program_start (&s_program, argc, argv);
    sf_program_open_log (&s_program, config, "fabricctl");
    zlist_t *args = sf_config_positional (config);
    const char *command = (const char *) zlist_pop (args);
    int code;
    if (!command)
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "no command given (see fabricctl --help)");
    if (streq (command, "keygen"))
        code = s_keygen (config, args);
    else if (streq (command, "status")) {
        if (zlist_size (args))
            sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                             "usage: fabricctl status");
        code = s_call (config, "status", NULL, s_print_status);
    }
    else if (streq (command, "counters")) {
        if (zlist_size (args))
            sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                             "usage: fabricctl counters");
        code = s_call (config, "counters", NULL, s_print_counters);
    }
    else if (streq (command, "health"))
        code = s_health (config, args);
    else if (streq (command, "request"))
        code = s_request (config, args);
    else if (streq (command, "trace"))
        code = s_trace (config, args);
    else if (streq (command, "import"))
        code = s_import (config, args);
    else if (streq (command, "raw"))
        code = s_raw (config, args);
    else if (streq (command, "top"))
        code = s_top (config, args);
    else if (streq (command, "drain"))
        code = s_drain (config, args);
    else if (streq (command, "token"))
        code = s_token (config, args);
    else if (streq (command, "cluster"))
        code = s_cluster (config, args);
    else if (streq (command, "watch"))
        code = s_watch (config, args);
    else if (streq (command, "backup"))
        code = s_backup (config, args);
    else
        sf_program_fail ("fabricctl", SF_EXIT_USAGE,
                         "unknown command '%s' (see fabricctl --help)",
                         command);
    free ((char *) command);
    sf_config_destroy (&config);
    return code;
}
