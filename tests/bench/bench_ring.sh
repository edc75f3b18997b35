#!/usr/bin/env bash
#  Durable writes and linearizable reads against a local 3-member ring,
#  beside the fsync floor of the same disk. Usage: tests/bench/bench_ring.sh
#  [--seconds N]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_ring "" bench_ring homeserver
exec /usr/bin/python3 "$ROOT/tests/bench/bench_ring.py" "$@"
