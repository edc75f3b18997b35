#!/usr/bin/env bash
#  The balancer (protocol/load.md): 100,000 entities in 1,000 rooms
#  imported onto one of four sims, with edits running; the time until
#  every sim is inside the band, moves per second, the moves against the
#  fewest the final assignment needs, and the edits' p50/p99 beside the
#  same edits on a fabric with the balancer off, in the same run.
#  Usage: tests/bench/bench_balance.sh [--entities N] [--rate R]
#  [--moves-per-s M] [--interval MS] [--timeout S]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_balance "" homeserver simserver
exec /usr/bin/python3 "$ROOT/tests/bench/bench_balance.py" "$@"
