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

#  The patches setup.sh applies to libzmq's source, in the order applied.
sf_zmq_patches ()
{
    local dir patch
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/patches"
    for patch in "$dir"/*.patch; do
        [ -f "$patch" ] && echo "$patch"
    done
    return 0
}

#  First 8 hex digits of the SHA-256 of every patch's name and content, in
#  order: part of the prefix name, so changing a patch rebuilds libzmq.
sf_zmq_patches_hash ()
{
    local patch
    sf_zmq_patches | while read -r patch; do
        basename "$patch"
        cat "$patch"
    done | sha256sum | cut -c1-8
}

#  The versioned deps prefix: libzmq (with our patches), CZMQ and raft live
#  here. The name is the cache key: versions and the patches' hash.
sf_deps_prefix ()
{
    echo "$(sf_deps_root)/zmq-4.3.4-p$(sf_zmq_patches_hash)-czmq-4.2.1-raft-0.22.1"
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
