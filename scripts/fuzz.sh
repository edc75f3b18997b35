#!/usr/bin/env bash
#  Build the libFuzzer targets (clang, ASan + UBSan) and run each for
#  SECONDS (default 60). Seeds come from tests/fuzz/corpus/TARGET; new
#  inputs collect in build-fuzz/corpus/TARGET. Exits non-zero on any crash,
#  leaving the reproducer in build-fuzz/crashes/.
#
#  Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

#  CZMQ's own harmless overlap (tests/sanitizers/asan.supp), for the
#  targets that reach its zsys_init.
export ASAN_OPTIONS=${ASAN_OPTIONS:-suppressions=$ROOT/tests/sanitizers/asan.supp}

SECONDS_EACH=${1:-60}
shift || true
BUILD=${SIMFABRIC_FUZZ_BUILD:-$ROOT/build-fuzz}

sf_is_ready "$ROOT" || "$ROOT/scripts/setup.sh"
CC=clang cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSIMFABRIC_FUZZ=ON -DSIMFABRIC_DEPS_PREFIX="$(sf_deps_prefix)" >/dev/null
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(sed -n 's/^set (SIMFABRIC_FUZZ_TARGETS \(.*\))$/\1/p' \
        "$ROOT/tests/fuzz/CMakeLists.txt" | tr ' ' '\n')
fi
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" >"$BUILD/build.log" 2>&1 \
    || { tail -n 40 "$BUILD/build.log" >&2; sf_die "fuzz: build failed"; }

failed=0
mkdir -p "$BUILD/crashes"
for target in "${TARGETS[@]}"; do
    corpus="$BUILD/corpus/$target"
    mkdir -p "$corpus"
    sf_say "fuzz: $target for ${SECONDS_EACH} s"
    if "$BUILD/$target" -max_total_time="$SECONDS_EACH" \
        -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$target-" \
        "$corpus" "$ROOT/tests/fuzz/corpus/$target" >"$BUILD/$target.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/$target.log")
        sf_say "fuzz: $target ok, ${runs:-?} runs, no crash"
    else
        failed=1
        sf_say "fuzz: $target FAILED; see $BUILD/$target.log and $BUILD/crashes/"
        tail -n 30 "$BUILD/$target.log" >&2
    fi
done
exit $failed
