#!/usr/bin/env bash
#  What applying one committed write costs a ring member (the state machine
#  and the event it publishes), against a bare SQLite insert measured in the
#  same run (see bench_fsm.c). Usage: tests/bench/bench_fsm.sh [BATCHES]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_fsm "batches ${1:-100} of 200" bench_fsm
BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
"$BUILD/bench_fsm" "${1:-100}"
