#!/usr/bin/env bash
#  fabricctl backup of a filled ring under a write load, against the same
#  writes without it. Usage: tests/bench/bench_backup.sh [--entities N]
#  [--seconds S]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_bench_start "$ROOT" bench_backup "" bench_ring homeserver fabricctl
exec /usr/bin/python3 "$ROOT/tests/bench/bench_backup.py" "$@"
