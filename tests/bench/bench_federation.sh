#!/usr/bin/env bash
#  Case 1 (federation.md section 5): authority transfers between a sim of
#  one instance and a sim of another, with 0 and 10 ms one way between
#  the instances' homeservers, beside the floor measured in the same run
#  (one durable commit in the home ring plus the round trips over the same
#  links) and beside Case 2 between two sims of the home.
#  Usage: tests/bench/bench_federation.sh [--entities N] [--concurrency N]
#  [--seconds S] [--delays MS,MS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_federation "" bench_transfer homeserver simserver
exec /usr/bin/python3 "$ROOT/tests/bench/bench_federation.py" "$@"
