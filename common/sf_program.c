/*  sf_program: what every simfabric executable's main () does alike. */

#include "common/sf_program.h"
#include "common/sf_log.h"

#include <raft.h>
#include <string.h>

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

void
sf_program_print_version (const char *name, FILE *stream)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    fprintf (stream, "%s (simfabric) %s\n", name, SIMFABRIC_VERSION);
    fprintf (stream, "libzmq %d.%d.%d (draft API: %s, curve: %s)\n", major,
             minor, patch, zmq_has ("draft") ? "yes" : "no",
             zmq_has ("curve") ? "yes" : "no");
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
    printf ("\nExit codes: 0 ok, 1 failure, 2 usage or configuration "
            "error, 3 unreachable.\n");
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
