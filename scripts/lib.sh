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
