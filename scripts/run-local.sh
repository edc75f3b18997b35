#!/usr/bin/env bash
#  Start a local simfabric instance on loopback: keys and data in a
#  temporary folder, a homeserver and a simulation server, each checked
#  with fabricctl. Runs until Ctrl-C (or --duration), then stops every
#  daemon it started and reports how each exited.
#
#  Usage: scripts/run-local.sh [--duration SECONDS] [--keep]
#    --duration SECONDS  stop by itself after SECONDS
#    --keep              keep the temporary folder (keys, configs, logs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

DURATION=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs SECONDS}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,10s/^#  \{0,1\}//p' "$0"; exit 0 ;;
        *) sf_die "run-local: unknown argument $1 (see --help)" ;;
    esac
done

sf_is_ready "$ROOT" || "$ROOT/scripts/setup.sh"
BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
FABRICCTL=$BUILD/fabricctl

WORK=$(mktemp -d "${TMPDIR:-/tmp}/simfabric-local.XXXXXX")
declare -A PIDS=()

stop_all ()
{
    trap - INT TERM EXIT
    local failed=0
    sf_say "run-local: stopping"
    for name in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    done
    for name in "${!PIDS[@]}"; do
        local code=0
        wait "${PIDS[$name]}" || code=$?
        if [ "$code" -eq 0 ]; then
            sf_say "run-local: $name stopped cleanly"
        else
            sf_say "run-local: $name exited with $code (log: $WORK/$name.log)"
            failed=1
        fi
    done
    if [ "$KEEP" = 1 ] || [ "$failed" = 1 ]; then
        sf_say "run-local: kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $failed
}
trap stop_all INT TERM EXIT

#  A TCP port on loopback that is free right now.
free_port ()
{
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

#  Wait until daemon NAME answers status, or fail with its log.
wait_ready ()
{
    local name=$1 endpoint=$2 started=$SECONDS
    local begun
    begun=$(date +%s%N)
    while ! "$FABRICCTL" status --server "$endpoint" \
        --server-key "$WORK/keys/$name.cert" --timeout 200 >/dev/null 2>&1; do
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            cat "$WORK/$name.log" >&2
            sf_die "run-local: $name exited during start"
        fi
        [ $((SECONDS - started)) -lt 15 ] || sf_die "run-local: $name not ready after 15 s"
    done
    sf_say "run-local: $name ready on $endpoint in $((($(date +%s%N) - begun) / 1000000)) ms"
}

start_daemon ()
{
    local kind=$1 name=$2 section=$3 port
    port=$(free_port)
    cat >"$WORK/$name.cfg" <<EOF
$section
    name = $name
    api = tcp://127.0.0.1:$port
    secret_key = keys/$name.cert_secret
log
    level = info
EOF
    "$BUILD/$kind" --config "$WORK/$name.cfg" >"$WORK/$name.log" 2>&1 &
    PIDS[$name]=$!
    sf_say "run-local: started $kind $name (pid ${PIDS[$name]}), config $WORK/$name.cfg"
    wait_ready "$name" "tcp://127.0.0.1:$port"
    "$FABRICCTL" status --server "tcp://127.0.0.1:$port" \
        --server-key "$WORK/keys/$name.cert" | sed 's/^/    /' >&2
}

sf_say "run-local: working in $WORK"
mkdir -p "$WORK/keys"
for name in hs1 sim1; do
    "$FABRICCTL" keygen "$name" --dir "$WORK/keys" >/dev/null
done
sf_say "run-local: made key pairs for hs1 and sim1 in $WORK/keys"

start_daemon homeserver hs1 homeserver
start_daemon simserver sim1 sim

if [ -n "$DURATION" ]; then
    sf_say "run-local: running for $DURATION s"
    sleep "$DURATION" &
    wait $! || true
else
    sf_say "run-local: running; press Ctrl-C to stop"
    while true; do
        sleep 3600 &
        wait $! || true
    done
fi
stop_all
