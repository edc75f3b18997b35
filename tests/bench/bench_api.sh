#!/usr/bin/env bash
#  Cost of the JSON API envelope against baselines measured in the same
#  run (see bench_api.c). Usage: tests/bench/bench_api.sh [ROUNDS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_is_ready "$ROOT" || "$ROOT/scripts/setup.sh"
BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
cmake --build "$BUILD" --target bench_api >/dev/null
echo "bench_api: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), rounds ${1:-5000}"
"$BUILD/bench_api" "${1:-5000}"
