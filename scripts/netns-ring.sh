#!/usr/bin/env bash
#  Start a ring whose homeservers live in separate network namespaces (one
#  per host, each with its own address on a bridge), as on separate hosts.
#  Needs root. Runs until Ctrl-C or --duration, then removes everything.
#
#  Usage: scripts/netns-ring.sh [--members N] [--duration SECONDS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
[ "$(id -u)" -eq 0 ] || sf_die "netns-ring: needs root (ip netns)"
sf_is_ready "$ROOT" || "$ROOT/scripts/setup.sh"
cd "$ROOT/tests/python"
exec /usr/bin/python3 -m simfabric_testing.netns "$@"
