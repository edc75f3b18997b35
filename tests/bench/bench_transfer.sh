#!/usr/bin/env bash
#  Authority transfers between two simulation servers over a durable
#  3-member ring on loopback, beside the floor (one durable commit plus one
#  round trip) and the messaging floor of the critical path's seven hops
#  (bench_hops) measured in the same run, with the hops of sample
#  transfers counted by fabricctl trace.
#  Usage: tests/bench/bench_transfer.sh [--entities N] [--concurrency N]
#  [--seconds S] [--repeats N]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_is_ready "$ROOT" || "$ROOT/scripts/setup.sh"
cmake --build "${SIMFABRIC_BUILD:-$ROOT/build}" --target bench_transfer bench_hops homeserver \
    simserver fabricctl >/dev/null
echo "bench_transfer: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
exec /usr/bin/python3 "$ROOT/tests/bench/bench_transfer.py" "$@"
