#!/usr/bin/env bash
#  The state stream between two simulation servers' stream engines on
#  loopback, beside raw libzmq RADIO/DISH and ENet in the same run.
#  Installs Debian's libenet-dev for the ENet baseline if it is missing.
#  Usage: tests/bench/bench_stream.sh [--size BYTES] [--seconds S]
#  [--repeats N] [--json FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
sf_is_ready "$ROOT" || "$ROOT/scripts/setup.sh"
if ! dpkg -s libenet-dev >/dev/null 2>&1; then
    sf_say "bench_stream: installing libenet-dev for the ENet baseline"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libenet-dev >/dev/null
    #  Configure again so CMake finds it.
    cmake "${SIMFABRIC_BUILD:-$ROOT/build}" -U 'ENET*' >/dev/null
fi
sf_bench_start "$ROOT" bench_stream "" bench_stream
exec /usr/bin/python3 "$ROOT/tests/bench/bench_stream.py" "$@"
