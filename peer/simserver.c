/*  simserver: simulation server of one simfabric instance.

    Parses flags and configuration, opens the log, builds the server and
    runs its actor until SIGINT or SIGTERM. SIGHUP rotates the sim's key to
    the one now at sim/secret_key. */

#include "peer/sim_server.h"
#include "common/sf_log.h"
#include "common/sf_program.h"

#include <pthread.h>
#include <signal.h>

static const sf_program_t s_program = {
    "simserver",
    "simulation server of a simfabric instance (client API over CurveZMQ)",
    "simserver --config FILE [FLAGS]",
    NULL,
    sim_server_schema,
};

static volatile sig_atomic_t s_rotate_requested;

//  SIGHUP: the operator put a new key pair at sim/secret_key.
static void
s_on_hup (int signal_number)
{
    (void) signal_number;
    s_rotate_requested = 1;
}

int
main (int argc, char *argv [])
{
    //  Only this thread takes SIGHUP: a signal interrupting the actor's
    //  poll would end its loop. Threads made from here on inherit the mask.
    sigset_t hangup;
    sigemptyset (&hangup);
    sigaddset (&hangup, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &hangup, NULL);
    sf_config_t *config = sf_program_start (&s_program, argc, argv);
    const char *name = sf_config_str (config, "sim/name");
    sf_program_open_log (&s_program, config, name);

    sf_fault_t fault;
    sim_server_t *server = sim_server_new (config, &fault);
    if (!server) {
        sf_config_destroy (&config);
        //  A bad key file or key folder is configuration; the rest is not.
        sf_program_fail (s_program.name,
                         fault.error == SF_EINVAL ? SF_EXIT_USAGE
                                                  : SF_EXIT_FAILURE,
                         "%s", fault.message);
    }
    zactor_t *actor = zactor_new (sim_server_actor, server);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_hup;
    sigemptyset (&action.sa_mask);
    sigaction (SIGHUP, &action, NULL);
    pthread_sigmask (SIG_UNBLOCK, &hangup, NULL);
    //  Wait for SIGINT or SIGTERM, or for the actor to stop by itself;
    //  pass SIGHUP on as a key rotation.
    zpoller_t *poller = zpoller_new (actor, NULL);
    while (true) {
        void *which = zpoller_wait (poller, 200);
        //  A SIGHUP interrupts the wait too: only SIGINT and SIGTERM
        //  (zsys_interrupted) end it.
        if (which == actor || zsys_interrupted)
            break;
        if (s_rotate_requested) {
            s_rotate_requested = 0;
            zstr_send (actor, "ROTATE");
        }
    }
    zpoller_destroy (&poller);
    sf_log_notice ("simserver: stopping");
    zactor_destroy (&actor);
    sf_config_destroy (&config);
    sf_log_close ();
    return SF_EXIT_OK;
}
