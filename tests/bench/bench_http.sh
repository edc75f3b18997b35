#!/usr/bin/env bash
#  The REST API against the ZeroMQ API of the same 3-member ring, case by
#  case in one run, and the CPU a /metrics scrape costs the leader.
#  Usage: tests/bench/bench_http.sh [--seconds N] [--cases write1,read64]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_http "" bench_ring bench_http homeserver
exec /usr/bin/python3 "$ROOT/tests/bench/bench_http.py" "$@"
