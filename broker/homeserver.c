/*  homeserver: metadata server of one simfabric instance.

    Parses flags and configuration, opens the log, builds the server and
    runs its actor until SIGINT or SIGTERM. SIGHUP reopens the log file.
    With --restore FILE it makes a new ring's data from a backup instead,
    and exits. */

#include "broker/hs_server.h"
#include "common/sf_log.h"
#include "common/sf_program.h"

static const sf_program_t s_program = {
    "homeserver",
    "metadata server of a simfabric instance (JSON API over CurveZMQ)",
    "homeserver --config FILE [FLAGS]",
    NULL,
    hs_server_schema,
};

int
main (int argc, char *argv [])
{
    sf_program_block_hangup ();
    sf_config_t *config = sf_program_start (&s_program, argc, argv);
    const char *name = sf_config_str (config, "homeserver/name");
    sf_program_open_log (&s_program, config, name);

    sf_fault_t fault;
    const char *restore = sf_config_str (config, "homeserver/restore");
    if (restore) {
        uint64_t index = hs_server_restore (config, restore, &fault);
        if (!index) {
            sf_config_destroy (&config);
            sf_program_fail (s_program.name, sf_program_exit_code (&fault),
                             "%s", fault.message);
        }
        printf ("restored %s at index %llu into %s: start the members as "
                "usual\n",
                restore, (unsigned long long) index,
                sf_config_str (config, "homeserver/data"));
        sf_config_destroy (&config);
        sf_log_close ();
        return SF_EXIT_OK;
    }
    hs_server_t *server = hs_server_new (config, &fault);
    if (!server) {
        sf_config_destroy (&config);
        sf_program_fail (s_program.name, sf_program_exit_code (&fault), "%s",
                         fault.message);
    }
    zactor_t *actor = zactor_new (hs_server_actor, server);
    sf_program_wait (actor, NULL);
    sf_log_notice ("homeserver: stopping");
    zactor_destroy (&actor);
    sf_config_destroy (&config);
    sf_log_close ();
    return SF_EXIT_OK;
}
