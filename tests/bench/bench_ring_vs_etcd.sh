#!/usr/bin/env bash
#  The homeserver ring beside etcd 3.4, both 3 members on loopback, driven
#  by the same Python load generator: durable writes with 1, 16 and 64
#  clients, linearizable reads with 16 and 64, and leader failover.
#  Usage: tests/bench/bench_ring_vs_etcd.sh [--seconds N] [--repeats N] [--quick]
#  [--json FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

#  Debian's etcd 3.4 and the Python etcd3 client, installed only if missing.
missing=()
for package in etcd-server python3-etcd3 python3-grpcio; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench_ring_vs_etcd: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    #  A machine whose package lists are missing or old needs an update first.
    apt-get install -y "${missing[@]}" \
        || { apt-get update && apt-get install -y "${missing[@]}"; }
fi

BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
[ -x "$BUILD/homeserver" ] || "$ROOT/scripts/setup.sh"

echo "bench_ring_vs_etcd: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
exec /usr/bin/python3 "$ROOT/tests/bench/bench_ring_vs_etcd.py" "$@"
