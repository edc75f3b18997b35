#!/usr/bin/env bash
#  Start a local simfabric instance on loopback and run the fabric's main
#  job on it: keys and data in a temporary folder, a ring of three
#  homeservers and two simulation servers (instance "west"), and a second
#  instance "east" federated with it (a ring of one and a sim, "visitor"),
#  each checked with fabricctl; then the demo (scripts/demo.py): the
#  example scene imported, transforms edited and streamed to the other
#  sim, authority moved under each rule and across the instances, a sim
#  killed and its entities recovered, each step with its measured latency
#  and hop count. Runs until Ctrl-C (or --duration), then stops every
#  daemon it started and reports how each exited.
#
#  Usage: scripts/run-local.sh [--duration SECONDS] [--keep] [--no-demo]
#    --duration SECONDS  stop by itself after SECONDS
#    --keep              keep the temporary folder (keys, configs, logs)
#    --no-demo           start the instance only
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

DURATION=""
KEEP=0
DEMO=1
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?--duration needs SECONDS}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-demo) DEMO=0; shift ;;
        -h|--help) sed -n '2,17s/^#  \{0,1\}//p' "$0"; exit 0 ;;
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

#  COUNT distinct TCP ports on loopback, free right now and outside the
#  kernel's ephemeral range so no outgoing connection takes one first.
free_ports ()
{
    (cd "$ROOT/tests/python" && /usr/bin/python3 -c \
        "from simfabric_testing.daemon import free_port; print(*[free_port() for _ in range($1)])")
}

#  Wait until daemon NAME answers status, or fail with its log. (A raw
#  request: `fabricctl status` exits 1 while a member knows no leader,
#  as the first member started does until the second one is up.)
wait_ready ()
{
    local name=$1 endpoint=$2 started=$SECONDS
    local begun
    begun=$(date +%s%N)
    while ! "$FABRICCTL" request status --server "$endpoint" \
        --server-key "$WORK/keys/$name.cert" --timeout 200 >/dev/null 2>&1; do
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            cat "$WORK/$name.log" >&2
            sf_die "run-local: $name exited during start"
        fi
        [ $((SECONDS - started)) -lt 15 ] || sf_die "run-local: $name not ready after 15 s"
    done
    sf_say "run-local: $name ready on $endpoint in $((($(date +%s%N) - begun) / 1000000)) ms"
}

#  Write the config of daemon NAME (SECTION) with its API on PORT; extra
#  lines for its section come on stdin.
write_config ()
{
    local name=$1 section=$2 port=$3
    {
        echo "$section"
        echo "    name = $name"
        echo "    api = tcp://127.0.0.1:$port"
        echo "    secret_key = keys/$name.cert_secret"
        cat
        echo "log"
        echo "    level = info"
    } >"$WORK/$name.cfg"
}

start_daemon ()
{
    local kind=$1 name=$2 port=$3
    "$BUILD/$kind" --config "$WORK/$name.cfg" >"$WORK/$name.log" 2>&1 &
    PIDS[$name]=$!
    sf_say "run-local: started $kind $name (pid ${PIDS[$name]}), config $WORK/$name.cfg"
    wait_ready "$name" "tcp://127.0.0.1:$port"
}

sf_say "run-local: working in $WORK"
mkdir -p "$WORK/keys"
for name in hs1 hs2 hs3 sim1 sim2 ehs1 visitor; do
    "$FABRICCTL" keygen "$name" --dir "$WORK/keys" >/dev/null
done
#  The administrator: its public certificate in the ring's admins folder.
#  It admits each sim with a join token (grants.md section 6).
mkdir -p "$WORK/keys/admins"
"$FABRICCTL" keygen admin --dir "$WORK/keys" >/dev/null
cp "$WORK/keys/admin.cert" "$WORK/keys/admins/"
sf_say "run-local: made key pairs for hs1, hs2, hs3, sim1, sim2, ehs1, visitor and admin in $WORK/keys"

#  The ring: three homeservers that list each other as members. A sim
#  silent for 2 s is declared dead (the demo kills one).
SIM_LEASE=2000
read -r -a PORTS <<<"$(free_ports 25)"
declare -A API_PORT RAFT_PORT EVENTS_PORT STATE_PORT HANDOFF_PORT FED_PORT
RING=""
for n in 1 2 3; do
    API_PORT[hs$n]=${PORTS[$((3 * n - 3))]}
    RAFT_PORT[hs$n]=${PORTS[$((3 * n - 2))]}
    EVENTS_PORT[hs$n]=${PORTS[$((3 * n - 1))]}
    RING+="        hs$n
            id = $n
            raft = tcp://127.0.0.1:${RAFT_PORT[hs$n]}
            api = tcp://127.0.0.1:${API_PORT[hs$n]}
            events = tcp://127.0.0.1:${EVENTS_PORT[hs$n]}
            key = keys/hs$n.cert
"
done
#  Federation (protocol/federation.md): west's members and east's one
#  each listen on a federation endpoint and list the other instance's.
for n in 1 2 3; do
    FED_PORT[hs$n]=${PORTS[$((14 + n))]}
done
API_PORT[ehs1]=${PORTS[18]}
RAFT_PORT[ehs1]=${PORTS[19]}
EVENTS_PORT[ehs1]=${PORTS[20]}
FED_PORT[ehs1]=${PORTS[21]}
WEST_PEERS="federation
    east
        member
            ehs1
                federation = tcp://127.0.0.1:${FED_PORT[ehs1]}
                key = keys/ehs1.cert
"
EAST_PEERS="federation
    west
        member
"
for n in 1 2 3; do
    EAST_PEERS+="            hs$n
                federation = tcp://127.0.0.1:${FED_PORT[hs$n]}
                key = keys/hs$n.cert
"
done
for n in 1 2 3; do
    printf '    id = %s\n    raft = tcp://127.0.0.1:%s\n    events = tcp://127.0.0.1:%s\n    data = hs%s-data\n    sim_lease = %s\n    admins = keys/admins\n    instance = west\n    federation = tcp://127.0.0.1:%s\n' \
        "$n" "${RAFT_PORT[hs$n]}" "${EVENTS_PORT[hs$n]}" "$n" "$SIM_LEASE" "${FED_PORT[hs$n]}" \
        | write_config "hs$n" homeserver "${API_PORT[hs$n]}"
    printf 'ring\n    member\n%s%s' "$RING" "$WEST_PEERS" >>"$WORK/hs$n.cfg"
done
for n in 1 2 3; do
    start_daemon homeserver "hs$n" "${API_PORT[hs$n]}"
done

#  The leader member NAME knows of, or nothing.
leader_of ()
{
    "$FABRICCTL" status --json --server "tcp://127.0.0.1:${API_PORT[$1]}" \
        --server-key "$WORK/keys/$1.cert" --timeout 500 2>/dev/null \
        | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin).get("leader") or "")' \
        2>/dev/null || true
}

#  Wait until every member names the same leader, and say how long it took.
begun=$(date +%s%N)
while true; do
    leader=$(leader_of hs1)
    if [ -n "$leader" ] && [ "$(leader_of hs2)" = "$leader" ] \
        && [ "$(leader_of hs3)" = "$leader" ]; then
        break
    fi
    [ $((($(date +%s%N) - begun) / 1000000000)) -lt 15 ] \
        || sf_die "run-local: no leader elected in 15 s"
    sleep 0.05
done
sf_say "run-local: ring elected $leader as leader in $((($(date +%s%N) - begun) / 1000000)) ms"
"$FABRICCTL" status --server "tcp://127.0.0.1:${API_PORT[$leader]}" \
    --server-key "$WORK/keys/$leader.cert" | sed 's/^/    /' >&2

#  Two simulation servers of the ring, each streaming state over UDP and
#  handing authority over on its CURVE handoff channel, each admitted by
#  a join token the administrator issues.
for n in 1 2; do
    API_PORT[sim$n]=${PORTS[$((6 + 3 * n))]}
    STATE_PORT[sim$n]=${PORTS[$((7 + 3 * n))]}
    HANDOFF_PORT[sim$n]=${PORTS[$((8 + 3 * n))]}
    token=$("$FABRICCTL" token create --sim "sim$n" --ttl 10m \
        --server "tcp://127.0.0.1:${API_PORT[$leader]}" \
        --server-key "$WORK/keys/$leader.cert" --key "$WORK/keys/admin.cert_secret") \
        || sf_die "run-local: the ring issued no join token for sim$n"
    sf_say "run-local: the administrator issued a join token for sim$n"
    printf '    state = udp://127.0.0.1:%s\n    handoff = tcp://127.0.0.1:%s\n    heartbeat = 500\n    token = "%s"\n' \
        "${STATE_PORT[sim$n]}" "${HANDOFF_PORT[sim$n]}" "$token" \
        | write_config "sim$n" sim "${API_PORT[sim$n]}"
    printf 'ring\n    member\n%s' "$RING" >>"$WORK/sim$n.cfg"
    start_daemon simserver "sim$n" "${API_PORT[sim$n]}"
done

#  The second instance, east: a ring of one and a sim that visits west's
#  entities (PATH@west) through its own ring.
EAST_RING="        ehs1
            id = 1
            raft = tcp://127.0.0.1:${RAFT_PORT[ehs1]}
            api = tcp://127.0.0.1:${API_PORT[ehs1]}
            events = tcp://127.0.0.1:${EVENTS_PORT[ehs1]}
            key = keys/ehs1.cert
"
printf '    id = 1\n    raft = tcp://127.0.0.1:%s\n    events = tcp://127.0.0.1:%s\n    data = ehs1-data\n    admins = keys/admins\n    instance = east\n    federation = tcp://127.0.0.1:%s\n' \
    "${RAFT_PORT[ehs1]}" "${EVENTS_PORT[ehs1]}" "${FED_PORT[ehs1]}" \
    | write_config ehs1 homeserver "${API_PORT[ehs1]}"
printf 'ring\n    member\n%s%s' "$EAST_RING" "$EAST_PEERS" >>"$WORK/ehs1.cfg"
start_daemon homeserver ehs1 "${API_PORT[ehs1]}"
API_PORT[visitor]=${PORTS[22]}
STATE_PORT[visitor]=${PORTS[23]}
HANDOFF_PORT[visitor]=${PORTS[24]}
begun=$(date +%s%N)
until token=$("$FABRICCTL" token create --sim visitor --ttl 10m \
    --server "tcp://127.0.0.1:${API_PORT[ehs1]}" \
    --server-key "$WORK/keys/ehs1.cert" --key "$WORK/keys/admin.cert_secret" 2>/dev/null); do
    [ $((($(date +%s%N) - begun) / 1000000000)) -lt 15 ] \
        || sf_die "run-local: east issued no join token for visitor"
    sleep 0.05
done
printf '    state = udp://127.0.0.1:%s\n    handoff = tcp://127.0.0.1:%s\n    heartbeat = 500\n    token = "%s"\n' \
    "${STATE_PORT[visitor]}" "${HANDOFF_PORT[visitor]}" "$token" \
    | write_config visitor sim "${API_PORT[visitor]}"
printf 'ring\n    member\n%s' "$EAST_RING" >>"$WORK/visitor.cfg"
start_daemon simserver visitor "${API_PORT[visitor]}"
sf_say "run-local: instance east (ehs1, visitor) federated with west (hs1, hs2, hs3)"

#  What the demo (and any tool) needs to find the daemons.
{
    printf '{"fabricctl": "%s", "sim_lease_ms": %s, "daemons": {' "$FABRICCTL" "$SIM_LEASE"
    sep=""
    for name in hs1 hs2 hs3 sim1 sim2 ehs1 visitor; do
        printf '%s"%s": {"api": "tcp://127.0.0.1:%s"}' "$sep" "$name" "${API_PORT[$name]}"
        sep=", "
    done
    printf '}}\n'
} >"$WORK/fabric.json"

if [ "$DEMO" = 1 ]; then
    sf_say "run-local: the demo: scene import, edits, authority moves, a sim killed"
    /usr/bin/python3 "$ROOT/scripts/demo.py" "$WORK" moves \
        || sf_die "run-local: the demo failed (logs in $WORK)"
    kill -KILL "${PIDS[sim1]}"
    wait "${PIDS[sim1]}" 2>/dev/null || true
    sf_say "demo: killed sim1 (SIGKILL)"
    /usr/bin/python3 "$ROOT/scripts/demo.py" "$WORK" recover \
        || sf_die "run-local: the demo failed (logs in $WORK)"
    start_daemon simserver sim1 "${API_PORT[sim1]}"
    sf_say "demo: sim1 restarted; it holds nothing until it claims or imports again"
fi

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
