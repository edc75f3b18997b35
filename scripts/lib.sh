#  Shared helpers for the scripts in this folder. Source it; it defines
#  functions only.

#  One line of progress on stderr, so stdout stays for results.
sf_say ()
{
    printf '%s\n' "$*" >&2
}

#  Print the message and exit non-zero.
sf_die ()
{
    printf 'error: %s\n' "$*" >&2
    exit 1
}

#  Folder that holds deps prefixes and their build work.
sf_deps_root ()
{
    echo "${SIMFABRIC_DEPS:-$HOME/.cache/simfabric}"
}

#  The versioned deps prefix: libzmq, CZMQ and raft live here.
sf_deps_prefix ()
{
    echo "$(sf_deps_root)/zmq-4.3.4-czmq-4.2.1-raft-0.22.1"
}

#  True when setup.sh has completed for this checkout's build folder.
sf_is_ready ()
{
    local build=${SIMFABRIC_BUILD:-$1/build}
    [ -f "$(sf_deps_prefix)/.simfabric-deps" ] \
        && [ -x "$build/homeserver" ] && [ -x "$build/simserver" ] \
        && [ -x "$build/fabricctl" ]
}

#  The start of every benchmark script: ready the build of checkout ROOT
#  (setup.sh if needed), build TARGETS, and print the header line naming
#  benchmark NAME, the machine's cores, the time and DETAIL (may be "").
#  Usage: sf_bench_start ROOT NAME DETAIL TARGET...
sf_bench_start ()
{
    local root=$1 name=$2 detail=$3
    shift 3
    sf_is_ready "$root" || "$root/scripts/setup.sh"
    cmake --build "${SIMFABRIC_BUILD:-$root/build}" --target "$@" >/dev/null
    echo "$name: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)${detail:+, $detail}"
}
