/*  sf_zap: the process's ZAP handler (ZeroMQ RFC 27) for CURVE sockets. */

#include "common/sf_zap.h"
#include "common/sf_cert.h"
#include "common/sf_curve.h"
#include "common/sf_log.h"

#include <assert.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

//  Refusals are logged once per client key and domain per S_QUIET_MS (a
//  refused peer that redials would otherwise write a line every time), and
//  at most S_LINES refusal lines per S_QUIET_MS in all (a flood of fresh
//  keys would otherwise do the same). Keys are remembered up to S_KEYS.
#define S_QUIET_MS 60000
#define S_LINES 60
#define S_KEYS 1024

//  One domain's policy.
typedef struct {
    bool any;        //  admit any CURVE client
    zhashx_t *keys;  //  admitted Z85 keys (values unused)
} s_policy_t;

static void
s_policy_destroy (void **item)
{
    s_policy_t *policy = (s_policy_t *) *item;
    if (policy) {
        zhashx_destroy (&policy->keys);
        free (policy);
        *item = NULL;
    }
}

static s_policy_t *
s_policy_get (zhashx_t *domains, const char *domain)
{
    s_policy_t *policy = (s_policy_t *) zhashx_lookup (domains, domain);
    if (!policy) {
        policy = (s_policy_t *) zmalloc (sizeof (s_policy_t));
        policy->keys = zhashx_new ();
        zhashx_insert (domains, domain, policy);
    }
    return policy;
}

//  What the handler keeps between requests.
typedef struct {
    zhashx_t *domains;   //  s_policy_t by domain
    zhashx_t *recent;    //  s_recent_t by "domain key": refusals logged
    uint64_t refused;    //  handshakes refused since start
    uint64_t window_ms;  //  start of the current window of S_LINES lines
    unsigned lines;      //  refusal lines written in that window
    uint64_t unlogged;   //  refusals over the line limit in that window
} s_state_t;

//  One client key's refusals on one domain.
typedef struct {
    uint64_t logged_ms;  //  when its last line was written
    uint64_t unlogged;   //  refusals since, not logged
} s_recent_t;

static void
s_recent_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

//  Log a refusal of KEY on DOMAIN from ADDRESS for REASON, unless this
//  key was logged on this domain within S_QUIET_MS or the window's lines
//  are spent; what is not logged is counted into a later line.
static void
s_log_refusal (s_state_t *self, const char *domain, const char *key,
               const char *address, const char *reason)
{
    uint64_t now = (uint64_t) zclock_mono ();
    if (now - self->window_ms >= S_QUIET_MS) {
        if (self->unlogged)
            sf_log_info ("sf_zap: %llu more refusals were not logged in the "
                         "last %d s",
                         (unsigned long long) self->unlogged,
                         S_QUIET_MS / 1000);
        self->window_ms = now;
        self->lines = 0;
        self->unlogged = 0;
    }
    char *name = zsys_sprintf ("%s %s", domain, key);
    s_recent_t *recent = (s_recent_t *) zhashx_lookup (self->recent, name);
    if (recent && now - recent->logged_ms < S_QUIET_MS) {
        recent->unlogged++;
        free (name);
        return;
    }
    if (self->lines >= S_LINES) {
        self->unlogged++;
        free (name);
        return;
    }
    self->lines++;
    uint64_t before = recent ? recent->unlogged : 0;
    if (before)
        sf_log_info ("sf_zap: refused %s on domain '%s' from %s: %s (and %llu "
                     "times before, not logged)",
                     key, domain, address, reason, (unsigned long long) before);
    else
        sf_log_info ("sf_zap: refused %s on domain '%s' from %s: %s", key,
                     domain, address, reason);
    if (!recent) {
        if (zhashx_size (self->recent) >= S_KEYS)
            zhashx_purge (self->recent);
        recent = (s_recent_t *) zmalloc (sizeof (s_recent_t));
        zhashx_insert (self->recent, name, recent);
    }
    recent->logged_ms = now;
    recent->unlogged = 0;
    free (name);
}

//  Answer one ZAP request on HANDLER according to SELF's policies.
static void
s_handle_request (zsock_t *handler, s_state_t *self)
{
    zhashx_t *domains = self->domains;
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    char *sequence = zmsg_popstr (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    zframe_t *identity = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credential = zmsg_pop (request);

    char key [SF_CERT_KEY_TEXT + 1] = "";
    const char *status = "400";
    const char *reason = "not admitted";
    if (!version || strcmp (version, "1.0") != 0)
        reason = "unsupported ZAP version";
    else if (!mechanism || strcmp (mechanism, "CURVE") != 0 || !credential
             || zframe_size (credential) != 32)
        reason = "CURVE required";
    else {
        zmq_z85_encode (key, zframe_data (credential), 32);
        s_policy_t *policy =
            (s_policy_t *) zhashx_lookup (domains, domain ? domain : "");
        if (policy && (policy->any || zhashx_lookup (policy->keys, key))) {
            status = "200";
            reason = "OK";
        }
    }
    if (*status != '2') {
        self->refused++;
        s_log_refusal (self, domain ? domain : "", key [0] ? key : "?",
                       address ? address : "?", reason);
    }
    zstr_sendm (handler, "1.0");
    zstr_sendm (handler, sequence ? sequence : "");
    zstr_sendm (handler, status);
    zstr_sendm (handler, reason);
    zstr_sendm (handler, *status == '2' ? key : "");
    zstr_send (handler, "");

    free (version);
    free (sequence);
    free (domain);
    free (address);
    zframe_destroy (&identity);
    free (mechanism);
    zframe_destroy (&credential);
    zmsg_destroy (&request);
}

//  Apply one pipe command. Returns false on $TERM.
static bool
s_handle_command (zsock_t *pipe, s_state_t *self)
{
    zhashx_t *domains = self->domains;
    char *command = NULL, *domain = NULL, *key = NULL;
    if (zstr_recvx (pipe, &command, &domain, &key, NULL) < 1)
        return false;
    bool running = !streq (command, "$TERM");
    if (streq (command, "REFUSED"))
        zsock_send (pipe, "8", self->refused);  //  its own answer
    else if (running) {
        if (streq (command, "ANY") && domain)
            s_policy_get (domains, domain)->any = true;
        else if (streq (command, "ALLOW") && domain && key)
            zhashx_insert (s_policy_get (domains, domain)->keys, key, "");
        else if (streq (command, "REVOKE") && domain && key)
            zhashx_delete (s_policy_get (domains, domain)->keys, key);
        zsock_signal (pipe, 0);
    }
    zstr_free (&command);
    zstr_free (&domain);
    zstr_free (&key);
    return running;
}

//  The actor takes over ARGS, the bound handler socket.
static void
s_zap_actor (zsock_t *pipe, void *args)
{
    zsock_t *handler = (zsock_t *) args;
    s_state_t state = {.domains = zhashx_new (), .recent = zhashx_new ()};
    zhashx_set_destructor (state.domains, s_policy_destroy);
    zhashx_set_destructor (state.recent, s_recent_destroy);
    state.window_ms = (uint64_t) zclock_mono ();
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, handler, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == handler)
            s_handle_request (handler, &state);
        else if (which != pipe || !s_handle_command (pipe, &state))
            break;
    }
    zpoller_destroy (&poller);
    zhashx_destroy (&state.domains);
    zhashx_destroy (&state.recent);
    zsock_destroy (&handler);
}

zactor_t *
sf_zap_new (void)
{
    //  Bind here so a second handler fails now, visibly; the actor's
    //  thread start is a full barrier, so the socket may move to it. A
    //  handler just destroyed still holds the endpoint until libzmq's
    //  reaper thread has closed its socket: wait that long (a few ms),
    //  no longer.
    zsock_t *handler = zsock_new (ZMQ_REP);
    int rc = zsock_bind (handler, ZAP_ENDPOINT);
    for (int tries = 0; rc != 0 && zmq_errno () == EADDRINUSE && tries < 50;
         tries++) {
        zclock_sleep (5);
        rc = zsock_bind (handler, ZAP_ENDPOINT);
    }
    if (rc != 0) {
        zsock_destroy (&handler);
        return NULL;
    }
    return zactor_new (s_zap_actor, handler);
}

static void
s_command (zactor_t *self, const char *command, const char *domain,
           const char *key)
{
    zstr_sendx (self, command, domain, key, NULL);
    zsock_wait (self);
}

void
sf_zap_allow_any (zactor_t *self, const char *domain)
{
    s_command (self, "ANY", domain, NULL);
}

void
sf_zap_allow (zactor_t *self, const char *domain, const char *key)
{
    s_command (self, "ALLOW", domain, key);
}

void
sf_zap_revoke (zactor_t *self, const char *domain, const char *key)
{
    s_command (self, "REVOKE", domain, key);
}

uint64_t
sf_zap_refused (zactor_t *self)
{
    zstr_send (self, "REFUSED");
    uint64_t refused = 0;
    zsock_recv (self, "8", &refused);
    return refused;
}

int
sf_zap_allow_dir (zactor_t *self, const char *domain, const char *dir,
                  sf_fault_t *fault)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return sf_fault_set (fault, SF_EINVAL, "cannot read key folder %s: %s",
                             dir, strerror (errno));
    int admitted = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        size_t size = strlen (entry->d_name);
        //  Public certificates only; secret files stay untouched.
        if (size < 6 || strcmp (entry->d_name + size - 5, ".cert") != 0)
            continue;
        char *path = zsys_sprintf ("%s/%s", dir, entry->d_name);
        char key [SF_CERT_KEY_TEXT + 1];
        sf_fault_t ignored;
        if (sf_cert_load_public (path, key, &ignored) == 0) {
            sf_zap_allow (self, domain, key);
            admitted++;
        }
        else
            sf_log_warning ("sf_zap: skipped %s: %s", path, ignored.message);
        free (path);
    }
    closedir (handle);
    return admitted;
}

//  --------------------------------------------------------------------------
//  Self test

//  Connect a CURVE client as CERT to ENDPOINT with SERVER_KEY, send one
//  message, and return what SERVER received from it, or NULL.
static char *
s_test_exchange (zsock_t *server, const char *endpoint, zcert_t *cert,
                 const char *server_key, char **principal)
{
    zsock_t *client = zsock_new (ZMQ_DEALER);
    sf_curve_client (client, cert, server_key);
    zsock_connect (client, "%s", endpoint);
    zstr_send (client, "ping");
    char *got = NULL;
    zpoller_t *poller = zpoller_new (server, NULL);
    if (zpoller_wait (poller, 500) == server) {
        zmsg_t *msg = zmsg_recv (server);
        zframe_t *body = zmsg_last (msg);
        got = zframe_strdup (body);
        const char *user = zframe_meta (body, "User-Id");
        *principal = user ? strdup (user) : NULL;
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&client);
    return got;
}

//  Lines of the log file at PATH that contain TEXT.
static int
s_test_count_lines (const char *path, const char *text)
{
    FILE *file = fopen (path, "r");
    assert (file);
    char line [512];
    int count = 0;
    while (fgets (line, sizeof line, file))
        if (strstr (line, text))
            count++;
    fclose (file);
    return count;
}

//  The refusal log's limits, through s_log_refusal itself.
static void
s_test_log_refusals (void)
{
    int rc;
    char path [] = "/tmp/sf_zap_log_XXXXXX";
    int fd = mkstemp (path);
    assert (fd >= 0);
    close (fd);
    sf_fault_t fault;
    rc = sf_log_open ("zap", SF_LOG_INFO, path, &fault);
    assert (rc == 0);
    s_state_t state = {.recent = zhashx_new (),
                       .window_ms = (uint64_t) zclock_mono ()};
    zhashx_set_destructor (state.recent, s_recent_destroy);

    //  A key refused three times is logged once; on another domain, again.
    for (int times = 0; times < 3; times++)
        s_log_refusal (&state, "raft", "KEY-A", "10.0.0.9", "not admitted");
    s_log_refusal (&state, "api", "KEY-A", "10.0.0.9", "not admitted");
    rc = s_test_count_lines (path, "refused KEY-A");
    assert (rc == 2);
    //  Once its quiet time is over, its next line counts what was skipped.
    char *name = zsys_sprintf ("%s %s", "raft", "KEY-A");
    s_recent_t *recent = (s_recent_t *) zhashx_lookup (state.recent, name);
    free (name);
    assert (recent && recent->unlogged == 2);
    recent->logged_ms -= S_QUIET_MS;
    s_log_refusal (&state, "raft", "KEY-A", "10.0.0.9", "not admitted");
    rc = s_test_count_lines (path, "(and 2 times before, not logged)");
    assert (rc == 1);

    //  Fresh keys: no more than S_LINES lines in a window, then a summary.
    for (int at = 0; at < S_LINES + 10; at++) {
        char key [16];
        snprintf (key, sizeof key, "FRESH-%d", at);
        s_log_refusal (&state, "api", key, "10.0.0.9", "not admitted");
    }
    rc = s_test_count_lines (path, "sf_zap: refused");
    assert (rc == S_LINES);
    state.window_ms -= S_QUIET_MS;
    s_log_refusal (&state, "api", "KEY-B", "10.0.0.9", "not admitted");
    //  3 lines were written before the fresh keys: 3 + 10 unlogged.
    rc = s_test_count_lines (path, "13 more refusals were not logged");
    assert (rc == 1);
    rc = s_test_count_lines (path, "refused KEY-B");
    assert (rc == 1);
    zhashx_destroy (&state.recent);
    sf_log_close ();
    unlink (path);
}

int
sf_zap_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sf_zap: ");
    zactor_t *zap = sf_zap_new ();
    assert (zap);
    zcert_t *server_cert = zcert_new ();
    zcert_t *alice = zcert_new ();
    zcert_t *mallory = zcert_new ();

    zsock_t *open_server = zsock_new (ZMQ_ROUTER);
    sf_curve_server (open_server, server_cert, "api");
    int port = zsock_bind (open_server, "tcp://127.0.0.1:*");
    assert (port > 0);
    char *open_endpoint = zsock_last_endpoint (open_server);
    zsock_t *closed_server = zsock_new (ZMQ_ROUTER);
    sf_curve_server (closed_server, server_cert, "raft");
    port = zsock_bind (closed_server, "tcp://127.0.0.1:*");
    assert (port > 0);
    char *closed_endpoint = zsock_last_endpoint (closed_server);

    sf_zap_allow_any (zap, "api");
    sf_zap_allow (zap, "raft", zcert_public_txt (alice));

    //  Any client is admitted on "api", with its key as principal.
    char *principal = NULL;
    char *got = s_test_exchange (open_server, open_endpoint, mallory,
                                 zcert_public_txt (server_cert), &principal);
    assert (got && streq (got, "ping"));
    assert (principal && streq (principal, zcert_public_txt (mallory)));
    zstr_free (&got);
    zstr_free (&principal);

    //  Only listed keys on "raft".
    got = s_test_exchange (closed_server, closed_endpoint, alice,
                           zcert_public_txt (server_cert), &principal);
    assert (got && streq (principal, zcert_public_txt (alice)));
    zstr_free (&got);
    zstr_free (&principal);
    got = s_test_exchange (closed_server, closed_endpoint, mallory,
                           zcert_public_txt (server_cert), &principal);
    assert (!got);

    //  Revocation applies to new sessions.
    sf_zap_revoke (zap, "raft", zcert_public_txt (alice));
    got = s_test_exchange (closed_server, closed_endpoint, alice,
                           zcert_public_txt (server_cert), &principal);
    assert (!got);
    //  Each refusal is counted (mallory's and alice's).
    uint64_t refused = sf_zap_refused (zap);
    assert (refused == 2);
    s_test_log_refusals ();

    //  Only one handler per process.
    zactor_t *second = sf_zap_new ();
    assert (second == NULL);

    //  Keys from a folder: .cert files only.
    char dir [] = "/tmp/sf_zap_test_XXXXXX";
    char *made = mkdtemp (dir);
    assert (made);
    sf_fault_t fault;
    rc = sf_cert_keygen (dir, "bob", false, &fault);
    assert (rc == 0);
    rc = sf_zap_allow_dir (zap, "raft", dir, &fault);
    assert (rc == 1);
    rc = sf_zap_allow_dir (zap, "raft", "/nonexistent", &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "/nonexistent"));
    char *path = zsys_sprintf ("%s/bob.cert_secret", dir);
    zcert_t *bob = sf_cert_load_secret (path, &fault);
    assert (bob);
    got = s_test_exchange (closed_server, closed_endpoint, bob,
                           zcert_public_txt (server_cert), &principal);
    assert (got);
    zstr_free (&got);
    zstr_free (&principal);
    unlink (path);
    free (path);
    path = zsys_sprintf ("%s/bob.cert", dir);
    unlink (path);
    free (path);
    rmdir (dir);

    zcert_destroy (&bob);
    zsock_destroy (&open_server);
    zsock_destroy (&closed_server);
    zstr_free (&open_endpoint);
    zstr_free (&closed_endpoint);
    zcert_destroy (&server_cert);
    zcert_destroy (&alice);
    zcert_destroy (&mallory);
    zactor_destroy (&zap);
    if (verbose)
        printf ("OK\n");
    return 0;
}
