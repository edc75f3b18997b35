/*  hs_balance: the balancer (protocol/load.md sections 4 to 7). On the
    leader, every interval, it models each sim's load from its latest
    report, and decides which groups move where so that every sim ends
    within the band around its capacity's share: few moves, whole rooms,
    under a budget of moves per second, never a group twice within the
    settle time. Its decisions are balance.move commands; what it keeps
    between rounds (the budget, the groups settling, the sims with a move
    their report does not show yet) is only pacing, so a new leader
    starts from the ring and the next reports. */

#ifndef HS_BALANCE_H_INCLUDED
#define HS_BALANCE_H_INCLUDED

#include "broker/hs_fsm.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _hs_balance_t hs_balance_t;

//  The balancer's settings (load.md section 5), from balance/* keys.
typedef struct {
    bool enabled;
    double band;           //  0.15: ±15% of the share
    uint64_t interval_ms;  //  between rounds
    double moves_per_s;    //  entities moved per second at most
    uint64_t settle_ms;    //  a group moved stays put this long
    uint64_t ask_timeout_ms;
    double entity_cost;  //  CPU seconds per second per entity held
    double update_cost;  //  CPU seconds per update
} hs_balance_config_t;

//  The configuration file's keys for it (hs_server_schema).
// clang-format off
#define HS_BALANCE_KEYS                                                        \
    {"balance/enabled", "balance", SF_CONFIG_BOOL, false, "false", NULL,       \
     "move entities between sims to balance their load (load.md)"},            \
    {"balance/band", "balance-band", SF_CONFIG_INT, false, "15", "1..100",     \
     "percent a sim's load may stray from its share"},                         \
    {"balance/interval", "balance-interval", SF_CONFIG_INT, false, "2000",     \
     "100..600000", "ms between the balancer's rounds"},                       \
    {"balance/moves_per_s", "balance-moves", SF_CONFIG_INT, false, "500",      \
     "1..1000000", "entities the balancer moves per second at most"},          \
    {"balance/settle_ms", "balance-settle", SF_CONFIG_INT, false, "30000",     \
     "0..86400000", "ms a group moved is not moved again"},                    \
    {"balance/ask_timeout_ms", "balance-ask-timeout", SF_CONFIG_INT, false,    \
     "5000", "1..60000",                                                       \
     "ms the game of an ask entity's sim has to answer a move"},               \
    {"balance/entity_cost_us", "balance-entity-cost", SF_CONFIG_INT, false,    \
     "20", "0..1000000", "modelled CPU us per second of an entity held"},      \
    {"balance/update_cost_us", "balance-update-cost", SF_CONFIG_INT, false,    \
     "40", "0..1000000", "modelled CPU us of one update streamed"}
// clang-format on

//  A balancer with CONFIG (copied). Its first round waits one interval.
hs_balance_t *hs_balance_new (const hs_balance_config_t *config,
                              uint64_t now_ms);

//  Destroy and null the caller's pointer.
void hs_balance_destroy (hs_balance_t **self_p);

//  Whether rounds are enabled.
bool hs_balance_enabled (hs_balance_t *self);

//  The band, a fraction of the share.
double hs_balance_band (hs_balance_t *self);

//  This member starts or stops leading at NOW_MS: forget the pacing and
//  wait a whole interval for every sim's report.
void hs_balance_reset (hs_balance_t *self, uint64_t now_ms);

//  Each sim's modelled figures for SIMS (hs_load_all's "sims", lent)
//  with DRAINING (names, lent): {NAME: {"load", "share", "balanced",
//  "draining"}}, the first three null for a sim silent for three
//  intervals. A new object.
json_t *hs_balance_view (hs_balance_t *self, const json_t *sims,
                         zlist_t *draining);

//  A round at NOW_MS if one is due: the decisions, as balance.move
//  arguments ([{"move", "group", "from", "to", "paths", "reason",
//  "ask"?}]), their paths read from FSM (lent). IDs are "TERM.N". A new
//  array (empty when nothing is due or to do).
json_t *hs_balance_round (hs_balance_t *self, const json_t *sims, hs_fsm_t *fsm,
                          uint64_t term, uint64_t now_ms);

//  A decision of this member's (RESULT, balance.move's, lent) was applied
//  at INDEX: its sims' reports show it once they acted on that change.
void hs_balance_applied (hs_balance_t *self, const json_t *result,
                         uint64_t index);

//  Self test.
int hs_balance_test (bool verbose);

#endif
