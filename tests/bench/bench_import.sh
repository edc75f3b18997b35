#!/usr/bin/env bash
#  Scene import and the first edits after it: fabricctl import of the
#  example scene (10,000 entities) onto one sim and copied to a second,
#  beside the same entities written one by one; then transform edits
#  reaching the second sim, beside a loopback round trip.
#  Usage: tests/bench/bench_import.sh [--repeats N] [--edits N]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_import "" bench_ring homeserver simserver \
    fabricctl
exec /usr/bin/python3 "$ROOT/tests/bench/bench_import.py" "$@"
