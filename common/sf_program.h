/*  sf_program: what every simfabric executable's main () does alike.

    --help and --version, configuration from file and flags, logging from
    the "log" section, the daemons' wait for signals, and fatal errors as
    one line on stderr with an exit code scripts can trust: SF_EXIT_MAP is
    the one list of them (--help prints it; README.md explains it).

    Daemons take SIGINT and SIGTERM as "stop" (exit 0) and SIGHUP as
    "reopen the log file" (log rotation), plus whatever else the daemon
    does on SIGHUP. */

#ifndef SF_PROGRAM_H_INCLUDED
#define SF_PROGRAM_H_INCLUDED

#include "common/sf_config.h"

//  X (name, code, what --help says)
#define SF_EXIT_MAP(X)                                                      \
    /*  success  */                                                         \
    X (SF_EXIT_OK, 0, "ok")                                                 \
    /*  a request failed; a daemon could not start: port in use, storage */ \
    X (SF_EXIT_FAILURE, 1, "failure")                                       \
    /*  bad flag, bad config file or value, bad key file  */                \
    X (SF_EXIT_USAGE, 2, "usage or configuration error")                    \
    /*  no reply from a daemon in time (fabricctl)  */                      \
    X (SF_EXIT_UNREACHABLE, 3, "unreachable")

#define SF_EXIT_ENUM(name, code, help) name = code,
enum { SF_EXIT_MAP (SF_EXIT_ENUM) };
#undef SF_EXIT_ENUM

//  Schema entries for the "log" section, to put in every daemon's schema.
#define SF_PROGRAM_LOG_KEYS                                        \
    {"log/level", "log-level",   SF_CONFIG_CHOICE,     false,      \
     "info",      SF_LOG_LEVELS, "lowest level logged"},           \
    {                                                              \
        "log/file", "log-file", SF_CONFIG_PATH, false, NULL, NULL, \
            "append the log to this file instead of stderr"        \
    }

//  An executable's description.
typedef struct {
    const char *name;               //  "homeserver"
    const char *summary;            //  one line: what it is
    const char *usage;              //  "homeserver --config FILE [FLAGS]"
    const char *details;            //  more help text, or NULL
    const sf_config_key_t *schema;  //  its configuration keys
} sf_program_t;

//  Handle --help and --version (print, exit 0), then parse the arguments
//  into a configuration and check required keys. On any error prints one
//  line and exits 2. Returns the configuration; caller destroys it.
sf_config_t *sf_program_start (const sf_program_t *program, int argc,
                               char **argv);

//  Open the log as IDENT from the "log" keys of CONFIG; exits 2 on error.
void sf_program_open_log (const sf_program_t *program, sf_config_t *config,
                          const char *ident);

//  Exit code for a daemon that could not start with FAULT: a fault in
//  what the operator wrote (SF_EINVAL: config, flags, key files) is a
//  configuration error, anything else (a port in use, storage) a failure.
int sf_program_exit_code (const sf_fault_t *fault);

//  Keep SIGHUP from every thread but the one that waits for it. A daemon
//  calls this first thing in main (), before anything starts a thread
//  (threads inherit the mask), and later sf_program_wait.
void sf_program_block_hangup (void);

//  Wait until SIGINT or SIGTERM, or until ACTOR stops by itself. On each
//  SIGHUP, reopen the log file and then call ON_HANGUP (may be NULL) with
//  ACTOR.
void sf_program_wait (zactor_t *actor, void (*on_hangup) (zactor_t *actor));

//  Tell systemd STATE ("READY=1", "STOPPING=1") when it started this
//  process as a Type=notify service ($NOTIFY_SOCKET set); nothing
//  otherwise. Returns 0, or -1 if the message could not be sent.
int sf_program_notify (const char *state);

//  Print the version block: simfabric, libzmq (draft, curve, and whether
//  scripts/setup.sh patched it), CZMQ, raft.
void sf_program_print_version (const char *name, FILE *stream);

//  Print "NAME: error: MESSAGE" on stderr and exit with CODE.
void sf_program_fail (const char *name, int code, const char *format, ...)
    __attribute__ ((noreturn, format (printf, 3, 4)));

#endif
