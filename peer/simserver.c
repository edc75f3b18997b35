/*  simserver: simulation server of one simfabric instance.

    Parses flags and configuration, opens the log, builds the server and
    runs its actor until SIGINT or SIGTERM. SIGHUP reopens the log file and
    rotates the sim's key to the one now at sim/secret_key. */

#include "peer/sim_server.h"
#include "common/sf_log.h"
#include "common/sf_program.h"

static const sf_program_t s_program = {
    "simserver",
    "simulation server of a simfabric instance (client API over CurveZMQ)",
    "simserver --config FILE [FLAGS]",
    NULL,
    sim_server_schema,
};

//  SIGHUP: the operator may have put a new key pair at sim/secret_key.
static void
s_rotate (zactor_t *actor)
{
    zstr_send (actor, "ROTATE");
}

int
main (int argc, char *argv [])
{
    sf_program_block_hangup ();
    sf_config_t *config = sf_program_start (&s_program, argc, argv);
    const char *name = sf_config_str (config, "sim/name");
    sf_program_open_log (&s_program, config, name);

    sf_fault_t fault;
    sim_server_t *server = sim_server_new (config, &fault);
    if (!server) {
        sf_config_destroy (&config);
        sf_program_fail (s_program.name, sf_program_exit_code (&fault), "%s",
                         fault.message);
    }
    zactor_t *actor = zactor_new (sim_server_actor, server);
    sf_program_wait (actor, s_rotate);
    sf_log_notice ("simserver: stopping");
    zactor_destroy (&actor);
    sf_config_destroy (&config);
    sf_log_close ();
    return SF_EXIT_OK;
}
