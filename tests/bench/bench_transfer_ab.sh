#!/usr/bin/env bash
#  Two builds' authority transfers (bench_transfer.py, one fresh fabric per
#  run), alternated in one run so that both see the same machine: medians
#  of each and after/before ratios. Build the "before" tree first, e.g.
#    git archive main | tar -x -C /tmp/before && cmake -S /tmp/before \
#      -B /tmp/before/build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#      -DSIMFABRIC_DEPS_PREFIX=... && cmake --build /tmp/before/build
#  Usage: tests/bench/bench_transfer_ab.sh BEFORE_BUILD AFTER_BUILD [ROUNDS]
#  [bench_transfer.py options...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BEFORE=$1
AFTER=$2
ROUNDS=${3:-4}
shift 3 || shift $#
for ((round = 1; round <= ROUNDS; round++)); do
    for which in before after; do
        build=$BEFORE
        [ "$which" = after ] && build=$AFTER
        #  Each build is driven by its own tree's harness: how a fabric
        #  is set up (keys, admission) changes with the build.
        tree=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' \
            "$build/CMakeCache.txt")
        out=$(SIMFABRIC_BUILD=$build /usr/bin/python3 \
            "${tree:-$ROOT}/tests/bench/bench_transfer.py" --repeats 1 "$@")
        echo "$which $(echo "$out" | tr '\n' ' ')"
    done
done | /usr/bin/python3 -c '
import re, statistics, sys
runs = {"before": [], "after": []}
patterns = {
    "p50_us": r"one at a time: p50 (\d+) us",
    "p99_us": r"one at a time: p50 \d+ us, p99 (\d+) us",
    "per_s": r"in flight: (\d+)/s",
    "flight_p50_us": r"\(target >= 5000/s\), p50 (\d+) us",
    "flight_p99_us": r"\(target >= 5000/s\), p50 \d+ us, p99 (\d+) us",
}
for line in sys.stdin:
    which, text = line.split(" ", 1)
    runs[which].append({k: float(re.search(p, text).group(1)) for k, p in patterns.items()})
for key in patterns:
    before = statistics.median(run[key] for run in runs["before"])
    after = statistics.median(run[key] for run in runs["after"])
    print(f"{key:14} before {before:10.0f}  after {after:10.0f}  ratio {after / before:.3f}")
print("runs", len(runs["before"]), "each")
'
