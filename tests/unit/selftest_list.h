/*  selftest_list: every module selftest, in the order `selftest` runs them.

    The one list of selftests. selftest.c builds its table (and declares
    each `int NAME_test (bool verbose)`) from it, and tests/CMakeLists.txt
    reads its `X (NAME)` lines to register one ctest per module, so the two
    cannot drift. Adding a module's selftest is one line here: X (NAME). */

#ifndef SELFTEST_LIST_H_INCLUDED
#define SELFTEST_LIST_H_INCLUDED

// clang-format off
#define SELFTEST_LIST(X)    \
    X (sf_error)            \
    X (sf_name)             \
    X (sf_time)             \
    X (sf_loop)             \
    X (sf_http)             \
    X (sf_prom)             \
    X (sf_trace)            \
    X (sf_log)              \
    X (sf_config)           \
    X (sf_cert)             \
    X (sf_json)             \
    X (sf_curve)            \
    X (sf_zap)              \
    X (api_msg)             \
    X (api_router)          \
    X (event_head)          \
    X (grant_msg)           \
    X (handoff_msg)         \
    X (raft_msg)            \
    X (ring_cmd)            \
    X (state_msg)           \
    X (ring_sim)            \
    X (hs_store)            \
    X (hs_persist)          \
    X (hs_fsm)              \
    X (hs_fed)              \
    X (hs_load)             \
    X (hs_balance)          \
    X (hs_kept)             \
    X (hs_backup)           \
    X (hs_http)             \
    X (sim_window)          \
    X (sim_seal)            \
    X (sim_store)           \
    X (sim_grant)           \
    X (sim_handoff)         \
    X (sim_credit)          \
    X (sim_udp)             \
    X (sim_checkpoint)      \
    X (sim_load)            \
    X (sim_http)            \
    X (authority_sim)       \
    X (ctl_health)          \
    X (ctl_scene)           \
    X (ctl_trace)           \
    X (ctl_watch)
// clang-format on

#endif
