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
sf_bench_start "$ROOT" bench_transfer "" bench_transfer bench_hops \
    homeserver simserver fabricctl
exec /usr/bin/python3 "$ROOT/tests/bench/bench_transfer.py" "$@"
