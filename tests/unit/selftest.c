/*  selftest: runs module selftests by name, so ctest lists one test per
    module. Usage: selftest [-v] [MODULE...]; no module runs them all. */

#include "broker/hs_fsm.h"
#include "broker/hs_persist.h"
#include "broker/hs_store.h"
#include "common/sf_cert.h"
#include "common/sf_config.h"
#include "common/sf_curve.h"
#include "common/sf_error.h"
#include "common/sf_json.h"
#include "common/sf_name.h"
#include "common/sf_log.h"
#include "common/sf_loop.h"
#include "common/sf_time.h"
#include "common/sf_trace.h"
#include "common/sf_zap.h"
#include "ctl/ctl_scene.h"
#include "ctl/ctl_trace.h"
#include "protocol/api_msg.h"
#include "protocol/api_router.h"
#include "protocol/event_head.h"
#include "protocol/handoff_msg.h"
#include "protocol/raft_msg.h"
#include "protocol/ring_cmd.h"
#include "protocol/state_msg.h"
#include "peer/sim_checkpoint.h"
#include "peer/sim_credit.h"
#include "peer/sim_udp.h"
#include "peer/sim_seal.h"
#include "peer/sim_handoff.h"
#include "peer/sim_store.h"
#include "peer/sim_window.h"

#include <stdio.h>
#include <string.h>

int ring_sim_test (bool verbose);
int authority_sim_test (bool verbose);

typedef struct {
    const char *name;
    int (*test) (bool verbose);
} s_selftest_t;

// clang-format off
static const s_selftest_t s_selftests [] = {
    {"sf_error", sf_error_test},
    {"sf_name", sf_name_test},
    {"sf_time", sf_time_test},
    {"sf_loop", sf_loop_test},
    {"sf_trace", sf_trace_test},
    {"sf_log", sf_log_test},
    {"sf_config", sf_config_test},
    {"sf_cert", sf_cert_test},
    {"sf_json", sf_json_test},
    {"sf_curve", sf_curve_test},
    {"sf_zap", sf_zap_test},
    {"api_msg", api_msg_test},
    {"api_router", api_router_test},
    {"event_head", event_head_test},
    {"handoff_msg", handoff_msg_test},
    {"raft_msg", raft_msg_test},
    {"ring_cmd", ring_cmd_test},
    {"state_msg", state_msg_test},
    {"ring_sim", ring_sim_test},
    {"hs_store", hs_store_test},
    {"hs_persist", hs_persist_test},
    {"hs_fsm", hs_fsm_test},
    {"sim_window", sim_window_test},
    {"sim_seal", sim_seal_test},
    {"sim_store", sim_store_test},
    {"sim_handoff", sim_handoff_test},
    {"sim_credit", sim_credit_test},
    {"sim_udp", sim_udp_test},
    {"sim_checkpoint", sim_checkpoint_test},
    {"authority_sim", authority_sim_test},
    {"ctl_scene", ctl_scene_test},
    {"ctl_trace", ctl_trace_test},
    {NULL, NULL},
};
// clang-format on

int
main (int argc, char *argv [])
{
    bool verbose = true;
    int first = 1;
    if (argc > 1 && strcmp (argv [1], "-q") == 0) {
        verbose = false;
        first = 2;
    }
    int ran = 0;
    for (const s_selftest_t *entry = s_selftests; entry->name; entry++) {
        bool wanted = first >= argc;
        for (int index = first; index < argc; index++)
            wanted |= strcmp (argv [index], entry->name) == 0;
        if (!wanted)
            continue;
        if (entry->test (verbose))
            return 1;
        ran++;
    }
    if (ran == 0) {
        fprintf (stderr, "selftest: no such module\n");
        return 2;
    }
    return 0;
}
