/*  sf_program: what every simfabric executable's main () does alike.

    --help and --version, configuration from file and flags, logging from
    the "log" section, and fatal errors as one line on stderr with an exit
    code scripts can trust:

        0  success
        1  runtime failure (a request failed, a daemon could not start)
        2  usage or configuration error (bad flag, bad config, bad key file)
        3  unreachable (no reply from a daemon in time; fabricctl) */

#ifndef SF_PROGRAM_H_INCLUDED
#define SF_PROGRAM_H_INCLUDED

#include "common/sf_config.h"

#define SF_EXIT_OK 0
#define SF_EXIT_FAILURE 1
#define SF_EXIT_USAGE 2
#define SF_EXIT_UNREACHABLE 3

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

//  Print the version block: simfabric, libzmq, CZMQ, raft, draft, curve.
void sf_program_print_version (const char *name, FILE *stream);

//  Print "NAME: error: MESSAGE" on stderr and exit with CODE.
void sf_program_fail (const char *name, int code, const char *format, ...)
    __attribute__ ((noreturn, format (printf, 3, 4)));

#endif
