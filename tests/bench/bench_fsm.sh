#!/usr/bin/env bash
#  What applying one committed write costs a ring member (the state machine
#  and the event it publishes), against a bare SQLite insert measured in the
#  same run (see bench_fsm.c). Usage: tests/bench/bench_fsm.sh [BATCHES]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_is_ready "$ROOT" || "$ROOT/scripts/setup.sh"
BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
cmake --build "$BUILD" --target bench_fsm >/dev/null
echo "bench_fsm: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), batches ${1:-100} of 200"
"$BUILD/bench_fsm" "${1:-100}"
