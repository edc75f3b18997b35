#!/usr/bin/env bash
#  Prepare this machine to build and test simfabric. Idempotent: run it as
#  often as you like; finished steps are skipped.
#
#  1. Debian packages (compiler, cmake, libraries, test tools).
#  2. libzmq 4.3.4 and CZMQ 4.2.1 with the draft API and CURVE, built from
#     Debian's source packages into a versioned prefix outside the checkout.
#     libzmq gets our patches from scripts/patches/ (each says what it fixes);
#     the prefix's name holds a hash of them, so changing a patch rebuilds.
#  3. raft 0.22.1 (libraft0 + libraft-dev from bookworm-backports) unpacked
#     into the same prefix.
#  4. The project itself, configured and built with CMake in build/.
#
#  apt is used with a private sources folder and lists folder, so the
#  machine's apt configuration is never changed. apt verifies every download
#  against the signed indexes with Debian's archive keyring.
#
#  Environment:
#    SIMFABRIC_DEPS      parent folder of the deps prefix
#                        (default ~/.cache/simfabric)
#    SIMFABRIC_MIRROR    Debian mirror URI (default: the one this machine's
#                        apt already uses for bookworm)
#    SIMFABRIC_BUILD     build folder (default build/ in the checkout)
#    SIMFABRIC_NO_APT=1  skip step 1 (packages already installed)
#    SIMFABRIC_NO_BUILD=1  skip step 4
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ZMQ_VERSION=4.3.4
ZMQ_DEBIAN=4.3.4-6
CZMQ_VERSION=4.2.1
CZMQ_DEBIAN=4.2.1-1
RAFT_DEBIAN=0.22.1-1~bpo12+1

PACKAGES=(
    build-essential cmake pkg-config ninja-build
    autoconf automake libtool dpkg-dev gpgv debian-archive-keyring
    libsodium-dev libsqlite3-dev libjansson-dev libuv1-dev liblz4-dev
    libmicrohttpd-dev
    python3 python3-zmq python3-pytest python3-cryptography
    python3-prometheus-client
    clang libclang-rt-14-dev clang-format
    iproute2 nftables sqlite3
)

#  Every step prints its name and how long it took.
step ()
{
    local name=$1
    shift
    local started=$SECONDS
    sf_say "setup: $name ..."
    "$@"
    sf_say "setup: $name done in $((SECONDS - started)) s"
}

install_packages ()
{
    local missing=()
    for package in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
            | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        sf_say "setup: all ${#PACKAGES[@]} packages present"
        return
    fi
    sf_say "setup: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
        --no-install-recommends "${missing[@]}"
}

#  The Debian mirror this machine already trusts, so no host is hard-wired.
debian_mirror ()
{
    if [ -n "${SIMFABRIC_MIRROR:-}" ]; then
        echo "$SIMFABRIC_MIRROR"
        return
    fi
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }')
    fi
    if [ -z "$uri" ]; then
        sf_die "setup: no Debian mirror found in /etc/apt; set SIMFABRIC_MIRROR"
    fi
    echo "$uri"
}

#  Run a command with its output in $WORK/LOG, shown only if it fails.
quietly ()
{
    local log="$WORK/$1"
    shift
    if ! "$@" >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        sf_die "setup: '$*' failed (full log: $log)"
    fi
}

#  apt with a private configuration rooted at $APT_DIR.
private_apt ()
{
    local tool=$1
    shift
    "$tool" -o Dir::Etc::SourceList=/dev/null \
        -o Dir::Etc::SourceParts="$APT_DIR/sources" \
        -o Dir::State::Lists="$APT_DIR/lists" \
        -o Dir::Cache::Archives="$APT_DIR/archives" \
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
        -o APT::Sandbox::User=root \
        "$@"
}

fetch_sources ()
{
    rm -rf "$APT_DIR"
    mkdir -p "$APT_DIR/sources" "$APT_DIR/lists/partial" \
        "$APT_DIR/archives/partial" "$APT_DIR/download"
    local mirror
    mirror=$(debian_mirror)
    cat >"$APT_DIR/sources/simfabric.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    private_apt apt-get -q update
    (cd "$APT_DIR/download" \
        && private_apt apt-get -q source --download-only \
            "zeromq3=$ZMQ_DEBIAN" "czmq=$CZMQ_DEBIAN" \
        && private_apt apt-get -q download \
            "libraft0=$RAFT_DEBIAN" "libraft-dev=$RAFT_DEBIAN")
}

#  Unpack a source package with Debian's patches applied. apt has already
#  checked the files' hashes against the signed Sources index.
unpack_source ()
{
    local dsc=$1 into=$2
    rm -rf "$into"
    dpkg-source --no-check -x "$dsc" "$into" >/dev/null
}

#  Apply scripts/patches/ to the libzmq source in the current folder, in
#  order, exactly (no fuzz), and check that each one's marker is there.
#  Fails setup if any patch does not apply.
patch_libzmq ()
{
    local patch marker
    while read -r patch; do
        if ! patch -p1 --forward --fuzz=0 --batch --no-backup-if-mismatch             <"$patch" >>"$WORK/libzmq.log" 2>&1; then
            tail -n 20 "$WORK/libzmq.log" >&2
            sf_die "setup: patch $(basename "$patch") does not apply to zeromq3 $ZMQ_DEBIAN"
        fi
        marker=$(sed -n 's/^Marker: //p' "$patch")
        if [ -z "$marker" ] || ! grep -rqF "$marker" src; then
            sf_die "setup: patch $(basename "$patch") applied but its marker '${marker:-(none)}' is not in the source"
        fi
        sf_say "setup: applied $(basename "$patch")"
    done < <(sf_zmq_patches)
}

#  Record what was patched in the prefix; CMake reads it for --version.
record_patches ()
{
    mkdir -p "$PREFIX/share/simfabric"
    sf_zmq_patches | while read -r patch; do
        sed -n 's/^Summary: //p' "$patch"
    done >"$PREFIX/share/simfabric/libzmq-patches"
}

build_libzmq ()
(
    unpack_source "$APT_DIR/download/zeromq3_${ZMQ_DEBIAN}.dsc" "$WORK/libzmq"
    cd "$WORK/libzmq"
    patch_libzmq
    quietly libzmq.log ./autogen.sh
    quietly libzmq.log ./configure --prefix="$PREFIX" --enable-drafts \
        --with-libsodium --disable-libbsd --disable-libunwind --disable-perf \
        --disable-curve-keygen --disable-static --disable-Werror
    quietly libzmq.log make -j"$(nproc)"
    quietly libzmq.log make install
    record_patches
)

build_czmq ()
(
    unpack_source "$APT_DIR/download/czmq_${CZMQ_DEBIAN}.dsc" "$WORK/czmq"
    cd "$WORK/czmq"
    [ -x configure ] || quietly czmq.log ./autogen.sh
    quietly czmq.log env PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" ./configure \
        --prefix="$PREFIX" --enable-drafts=yes --disable-static \
        --with-docs=no --with-uuid=no --with-libsystemd=no \
        --with-liblz4=no --with-libcurl=no --with-nss=no \
        --with-libmicrohttpd=no --enable-zmakecert=no --enable-zsp=no \
        --enable-test_randof=no --enable-czmq_selftest=no \
        LDFLAGS="-Wl,-rpath,$PREFIX/lib"
    quietly czmq.log make -j"$(nproc)"
    quietly czmq.log make install
)

unpack_raft ()
{
    local staging="$WORK/raft"
    rm -rf "$staging"
    mkdir -p "$staging"
    for deb in "$APT_DIR"/download/libraft*.deb; do
        dpkg-deb -x "$deb" "$staging"
    done
    mkdir -p "$PREFIX/lib" "$PREFIX/include" "$PREFIX/share/doc"
    cp -a "$staging"/usr/include/. "$PREFIX/include/"
    cp -a "$staging"/usr/lib/*/. "$PREFIX/lib/"
    cp -a "$staging"/usr/share/doc/. "$PREFIX/share/doc/"
    #  The .pc file names /usr; point it at the prefix.
    sed -i "s|^prefix=.*|prefix=$PREFIX|; s|^libdir=.*|libdir=\${prefix}/lib|; s|^includedir=.*|includedir=\${prefix}/include|" \
        "$PREFIX/lib/pkgconfig/raft.pc"
}

#  Fail loudly unless the built libzmq has the draft API and CURVE.
verify_deps ()
{
    local probe="$WORK/probe"
    mkdir -p "$probe"
    cat >"$probe/probe.c" <<'EOF'
#define ZMQ_BUILD_DRAFT_API
#define CZMQ_BUILD_DRAFT_API
#include <czmq.h>
#include <raft.h>
#include <stdio.h>
int
main (void)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    printf ("libzmq %d.%d.%d draft=%d curve=%d czmq %d.%d.%d raft %d\n",
            major, minor, patch, zmq_has ("draft"), zmq_has ("curve"),
            CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH,
            RAFT_VERSION_NUMBER);
    /* The event-driven core must be there: taking its address links it. */
    int (*volatile step) (struct raft *, struct raft_event *,
                          struct raft_update *) = raft_step;
    zsock_t *radio = zsock_new_radio (NULL);
    int ok = zmq_has ("draft") && zmq_has ("curve") && radio != NULL
             && step != NULL;
    zsock_destroy (&radio);
    return ok ? 0 : 1;
}
EOF
    cc -o "$probe/probe" "$probe/probe.c" -I"$PREFIX/include" \
        -L"$PREFIX/lib" -Wl,-rpath,"$PREFIX/lib" -lczmq -lzmq -lraft
    if ! "$probe/probe"; then
        sf_die "setup: libzmq in $PREFIX lacks the draft API or CURVE"
    fi
}

build_deps ()
{
    #  Work folders belong to this prefix: a setup building another prefix
    #  (other patches) at the same time must not share them.
    WORK="$PREFIX.work"
    APT_DIR="$WORK/apt"
    rm -rf "$PREFIX" "$WORK"
    mkdir -p "$WORK"
    step "fetch sources (zeromq3 $ZMQ_DEBIAN, czmq $CZMQ_DEBIAN, raft $RAFT_DEBIAN)" fetch_sources
    step "build libzmq $ZMQ_VERSION (drafts, curve, patches p$ZMQ_PATCHES)" build_libzmq
    step "build czmq $CZMQ_VERSION (drafts)" build_czmq
    step "unpack raft $RAFT_DEBIAN" unpack_raft
    step "verify draft and curve" verify_deps
    echo "$DEPS_STAMP" >"$PREFIX/.simfabric-deps"
    rm -rf "$WORK"
}

build_project ()
{
    cd "$ROOT"
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSIMFABRIC_DEPS_PREFIX="$PREFIX" >/dev/null
    cmake --build "$BUILD" -j"$(nproc)"
    #  The example scene (protocol/scene.md): generated, the same bytes
    #  every time, so not kept in git.
    mkdir -p "$ROOT/scripts/scenes"
    [ -f "$ROOT/scripts/scenes/example.json" ] \
        || /usr/bin/python3 "$ROOT/scripts/make-scene.py" --entities 10000 \
            >"$ROOT/scripts/scenes/example.json"
}

main ()
{
    local started=$SECONDS
    [ "${SIMFABRIC_NO_APT:-0}" = 1 ] || step "debian packages" install_packages

    PREFIX=$(sf_deps_prefix)
    ZMQ_PATCHES=$(sf_zmq_patches_hash)
    DEPS_STAMP="zeromq3=$ZMQ_DEBIAN+p$ZMQ_PATCHES czmq=$CZMQ_DEBIAN raft=$RAFT_DEBIAN"
    if [ -f "$PREFIX/.simfabric-deps" ] \
        && [ "$(cat "$PREFIX/.simfabric-deps")" = "$DEPS_STAMP" ]; then
        sf_say "setup: deps present in $PREFIX ($DEPS_STAMP)"
    else
        step "deps into $PREFIX" build_deps
    fi

    BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
    [ "${SIMFABRIC_NO_BUILD:-0}" = 1 ] || step "build simfabric in $BUILD" build_project
    sf_say "setup: ready in $((SECONDS - started)) s"
}

main "$@"
