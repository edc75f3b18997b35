#!/usr/bin/env bash
#  Build and run every test of simfabric:
#    1. setup.sh (packages, deps prefix, the build in build/)
#    2. format check (clang-format, .clang-format)
#    3. C unit tests (ctest) in build/
#    4. the sanitizer build (clang, ASan + UBSan + LeakSanitizer) in
#       build-asan/, and its unit tests
#    5. the pytest suite against build/
#    6. the pytest suite against build-asan/ (daemons that leak or trip a
#       sanitizer exit non-zero, which fails the test that stopped them)
#    7. a short run of every fuzz target (SIMFABRIC_FUZZ_SECONDS, default 10)
#  Every stage runs even if an earlier one failed; the summary at the end
#  lists them, and the exit status is non-zero if any failed.
#
#  Usage: scripts/test.sh [-k PYTEST_EXPRESSION]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

PYTEST_ARGS=("$@")
BUILD=${SIMFABRIC_BUILD:-$ROOT/build}
ASAN_BUILD=$ROOT/build-asan
REPORTS=$BUILD/test-reports
PYTHON=/usr/bin/python3
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:exitcode=86:suppressions=$ROOT/tests/sanitizers/asan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

declare -a STAGES=()
failed_stages=0

#  Run one named stage, recording its result and duration.
stage ()
{
    local name=$1
    shift
    local started=$SECONDS
    sf_say ""
    sf_say "=== $name"
    if "$@"; then
        STAGES+=("PASS  $name ($((SECONDS - started)) s)")
    else
        STAGES+=("FAIL  $name ($((SECONDS - started)) s)")
        failed_stages=$((failed_stages + 1))
    fi
}

check_format ()
{
    local files
    mapfile -t files < <(git ls-files '*.c' '*.h')
    clang-format --dry-run --Werror "${files[@]}"
}

unit_tests ()
{
    local build=$1 report=$2
    (cd "$build" && ctest --output-on-failure --timeout 300 -j2 \
        --output-junit "$report")
}

asan_build ()
{
    CC=clang cmake -S "$ROOT" -B "$ASAN_BUILD" -G Ninja \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMFABRIC_SANITIZE=ON \
        -DSIMFABRIC_DEPS_PREFIX="$(sf_deps_prefix)" >/dev/null \
        && cmake --build "$ASAN_BUILD" -j"$(nproc)"
}

pytest_suite ()
{
    local build=$1 report=$2
    SIMFABRIC_BUILD=$build timeout 1200 "$PYTHON" -m pytest -q -p no:cacheprovider \
        --junitxml="$report" "${PYTEST_ARGS[@]}" tests/python
}

fuzz_smoke ()
{
    "$ROOT/scripts/fuzz.sh" "${SIMFABRIC_FUZZ_SECONDS:-10}"
}

#  "N passed, N failed" over every JUnit report written in this run.
count_tests ()
{
    "$PYTHON" - "$REPORTS"/*.xml <<'EOF'
import sys
import xml.etree.ElementTree as tree
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = tree.parse(path).getroot()
    except (OSError, tree.ParseError):
        continue
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
EOF
}

started=$SECONDS
if ! "$ROOT/scripts/setup.sh"; then
    sf_say "test: setup failed; nothing was tested"
    echo "summary: 0 passed, 1 failed"
    exit 1
fi
rm -rf "$REPORTS"
mkdir -p "$REPORTS"

stage "format (clang-format)" check_format
stage "unit tests (ctest)" unit_tests "$BUILD" "$REPORTS/ctest.xml"
stage "sanitizer build (clang ASan+UBSan)" asan_build
stage "sanitizer unit tests (ctest)" unit_tests "$ASAN_BUILD" "$REPORTS/ctest-asan.xml"
stage "integration tests (pytest)" pytest_suite "$BUILD" "$REPORTS/pytest.xml"
stage "integration tests on the sanitizer build (pytest)" \
    pytest_suite "$ASAN_BUILD" "$REPORTS/pytest-asan.xml"
stage "fuzz smoke (${SIMFABRIC_FUZZ_SECONDS:-10} s per target)" fuzz_smoke

sf_say ""
sf_say "=== summary ($((SECONDS - started)) s)"
for line in "${STAGES[@]}"; do
    sf_say "$line"
done
totals=$(count_tests)
if [ "$failed_stages" -eq 0 ]; then
    sf_say "test: all ${#STAGES[@]} stages passed"
else
    sf_say "test: $failed_stages of ${#STAGES[@]} stages FAILED"
fi
echo "summary: $totals"
[ "$failed_stages" -eq 0 ]
