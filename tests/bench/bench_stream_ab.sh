#!/usr/bin/env bash
#  Two builds of bench_stream's sealed case, alternated in one run so that
#  both see the same machine: medians and p99 of each, and after/before
#  ratios. Build the "before" binary from another commit first, e.g.
#    git archive main | tar -x -C /tmp/before && cmake -S /tmp/before \
#      -B /tmp/before/build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#      -DSIMFABRIC_DEPS_PREFIX=... && cmake --build /tmp/before/build \
#      --target bench_stream
#  Usage: tests/bench/bench_stream_ab.sh BEFORE AFTER [ROUNDS] [SIZE] [SECONDS]
set -euo pipefail
BEFORE=$1
AFTER=$2
ROUNDS=${3:-6}
SIZE=${4:-1200}
SECONDS_EACH=${5:-2}
for ((round = 1; round <= ROUNDS; round++)); do
    for which in before after; do
        binary=$BEFORE
        [ "$which" = after ] && binary=$AFTER
        echo "$which $("$binary" sealed --size "$SIZE" --seconds "$SECONDS_EACH" 2>/dev/null | tail -1)"
    done
done | /usr/bin/python3 -c '
import json, statistics, sys
runs = {"before": [], "after": []}
for line in sys.stdin:
    which, result = line.split(" ", 1)
    runs[which].append(json.loads(result))
for key in ("updates_per_s", "datagrams_per_s", "p50_us", "p99_us",
            "cpu_sender_s", "cpu_receiver_s"):
    before = statistics.median(run[key] for run in runs["before"])
    after = statistics.median(run[key] for run in runs["after"])
    print(f"{key:16} before {before:12.1f}  after {after:12.1f}  "
          f"ratio {after / before:.3f}")
print("runs", len(runs["before"]), "each; after grants_proven",
      sorted({run.get("grants_proven") for run in runs["after"]}))
'
