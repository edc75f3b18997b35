/*  sf_program: what every simfabric executable's main () does alike. */

#include "common/sf_program.h"
#include "common/sf_log.h"

#include <pthread.h>
#include <raft.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <string.h>

//  The exit codes as --help lists them.
#define SF_EXIT_ROW(name, code, help) {code, help},
static const struct {
    int code;          //  what the process returns
    const char *help;  //  what it means, in a few words
} s_exits [] = {SF_EXIT_MAP (SF_EXIT_ROW)};
#undef SF_EXIT_ROW

//  Set by SIGHUP, taken by sf_program_wait.
static volatile sig_atomic_t s_hangup_requested;

void
sf_program_fail (const char *name, int code, const char *format, ...)
{
    char message [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    fprintf (stderr, "%s: error: %s\n", name, message);
    exit (code);
}

//  What scripts/setup.sh patched in the libzmq we were built against (the
//  build reads it from the deps prefix): the UDP engine fixes that keep a
//  stray datagram from aborting a sim. See scripts/patches/.
#ifdef SIMFABRIC_LIBZMQ_PATCHES
static const char *s_libzmq_patches = "patched (" SIMFABRIC_LIBZMQ_PATCHES ")";
#else
static const char *s_libzmq_patches = "unpatched";
#endif

void
sf_program_print_version (const char *name, FILE *stream)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    fprintf (stream, "%s (simfabric) %s\n", name, SIMFABRIC_VERSION);
    fprintf (stream, "libzmq %d.%d.%d (draft API: %s, curve: %s)\n", major,
             minor, patch, zmq_has ("draft") ? "yes" : "no",
             zmq_has ("curve") ? "yes" : "no");
    fprintf (stream, "libzmq %s\n", s_libzmq_patches);
    fprintf (stream, "czmq %d.%d.%d\n", CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR,
             CZMQ_VERSION_PATCH);
    fprintf (stream, "raft %d.%d.%d\n", RAFT_VERSION_MAJOR, RAFT_VERSION_MINOR,
             RAFT_VERSION_RELEASE);
}

static void
s_print_help (const sf_program_t *program)
{
    printf ("%s - %s\n\nUsage: %s\n\n", program->name, program->summary,
            program->usage);
    if (program->details)
        printf ("%s\n", program->details);
    printf ("Options:\n");
    printf ("  %-30s %s\n", "-c, --config FILE",
            "read configuration from FILE (ZPL); flags override it");
    sf_config_print_flags (program->schema, stdout);
    printf ("  %-30s %s\n", "-h, --help", "print this help and exit");
    printf ("  %-30s %s\n", "--version",
            "print versions of simfabric and its libraries and exit");
    printf ("\nExit codes:");
    for (size_t at = 0; at < sizeof s_exits / sizeof *s_exits; at++)
        printf ("%s %d %s", at ? "," : "", s_exits [at].code,
                s_exits [at].help);
    printf (".\n");
}

sf_config_t *
sf_program_start (const sf_program_t *program, int argc, char **argv)
{
    for (int index = 1; index < argc; index++) {
        if (strcmp (argv [index], "--") == 0)
            break;
        if (strcmp (argv [index], "--help") == 0
            || strcmp (argv [index], "-h") == 0) {
            s_print_help (program);
            exit (SF_EXIT_OK);
        }
        if (strcmp (argv [index], "--version") == 0) {
            sf_program_print_version (program->name, stdout);
            exit (SF_EXIT_OK);
        }
    }
    sf_config_t *config = sf_config_new (program->schema);
    sf_fault_t fault;
    if (sf_config_parse_args (config, argc, argv, &fault)
        || sf_config_check (config, &fault)) {
        sf_config_destroy (&config);
        sf_program_fail (program->name, SF_EXIT_USAGE, "%s", fault.message);
    }
    return config;
}

void
sf_program_open_log (const sf_program_t *program, sf_config_t *config,
                     const char *ident)
{
    sf_fault_t fault;
    int level = sf_log_level_parse (sf_config_str (config, "log/level"));
    if (level < 0)
        level = SF_LOG_INFO;
    if (sf_log_open (ident, (sf_log_level_t) level,
                     sf_config_str (config, "log/file"), &fault))
        sf_program_fail (program->name, SF_EXIT_USAGE, "%s", fault.message);
}

int
sf_program_exit_code (const sf_fault_t *fault)
{
    return fault->error == SF_EINVAL ? SF_EXIT_USAGE : SF_EXIT_FAILURE;
}

void
sf_program_block_hangup (void)
{
    sigset_t hangup;
    sigemptyset (&hangup);
    sigaddset (&hangup, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &hangup, NULL);
}

static void
s_on_hangup (int signal_number)
{
    (void) signal_number;
    s_hangup_requested = 1;
}

void
sf_program_wait (zactor_t *actor, void (*on_hangup) (zactor_t *actor))
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_hangup;
    sigemptyset (&action.sa_mask);
    sigaction (SIGHUP, &action, NULL);
    sigset_t hangup;
    sigemptyset (&hangup);
    sigaddset (&hangup, SIGHUP);
    pthread_sigmask (SIG_UNBLOCK, &hangup, NULL);
    //  The actor serves (zactor_new returned once it did): tell systemd.
    sf_program_notify ("READY=1");
    zpoller_t *poller = zpoller_new (actor, NULL);
    while (true) {
        //  A SIGHUP interrupts the wait too: only SIGINT and SIGTERM
        //  (zsys_interrupted) end it. The timeout bounds how long a
        //  SIGHUP that arrives just before the wait starts goes unseen.
        void *which = zpoller_wait (poller, 200);
        if (which == actor || zsys_interrupted)
            break;
        if (s_hangup_requested) {
            s_hangup_requested = 0;
            sf_fault_t fault;
            if (sf_log_reopen (&fault))
                sf_log_error ("%s (still logging to the old file)",
                              fault.message);
            else
                sf_log_notice ("reopened the log file (SIGHUP)");
            if (on_hangup)
                on_hangup (actor);
        }
    }
    zpoller_destroy (&poller);
    sf_program_notify ("STOPPING=1");
}

int
sf_program_notify (const char *state)
{
    const char *path = getenv ("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t size = strlen (path);
    if (size >= sizeof address.sun_path)
        return -1;
    memcpy (address.sun_path, path, size);
    //  "@name": an abstract socket, whose name starts with a NUL.
    if (path [0] == '@')
        address.sun_path [0] = '\0';
    int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t sent = sendto (
        fd, state, strlen (state), MSG_NOSIGNAL, (struct sockaddr *) &address,
        (socklen_t) (offsetof (struct sockaddr_un, sun_path) + size));
    close (fd);
    return sent == (ssize_t) strlen (state) ? 0 : -1;
}
