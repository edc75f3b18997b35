#!/usr/bin/env bash
#  Cost of the JSON API envelope against baselines measured in the same
#  run (see bench_api.c). Usage: tests/bench/bench_api.sh [ROUNDS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_api "rounds ${1:-5000}" bench_api
BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
"$BUILD/bench_api" "${1:-5000}"
