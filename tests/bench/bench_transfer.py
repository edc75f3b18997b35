"""Start a durable 3-member ring and two simulation servers on loopback,
run bench_transfer against them, count the hops of sample transfers with
fabricctl trace, and print the figures beside the floor of the same run.
Each run starts a fresh fabric; medians over the runs are reported."""

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import binary, make_ring, make_sims, running, wait_leader  # noqa: E402


def messaging_floor(options):
    """The critical path's seven hops between five processes over CURVE,
    with none of the fabric's work, at the same concurrency: what the
    hops alone allow on this machine (bench_hops)."""
    done = subprocess.run([str(binary("bench_hops")), str(options.concurrency),
                           str(min(options.seconds, 3.0))],
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        sys.exit(f"bench_hops failed: {done.stderr}{done.stdout}")
    return json.loads(done.stdout)


def one_run(options):
    hops_floor = messaging_floor(options)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        ring = make_ring(folder, 3)
        extra = {}
        if options.ring_checkpoint is not None:
            extra["ring_checkpoint"] = options.ring_checkpoint
        sims = make_sims(folder, ring, 2, extra=extra)
        with running(ring, sims):
            leader_name, _ = wait_leader(ring)
            leader = next(m for m in ring if m.name == leader_name)
            sim1, sim2 = sims

            def bench(concurrency):
                done = subprocess.run(
                    [str(binary("bench_transfer")), sim1.endpoint, str(sim1.keys.public_path),
                     sim2.endpoint, str(sim2.keys.public_path), leader.endpoint,
                     str(leader.keys.public_path), str(options.entities),
                     str(concurrency), str(options.seconds)],
                    capture_output=True, text=True, timeout=300)
                if done.returncode:
                    sys.exit(f"bench_transfer failed: {done.stderr}{done.stdout}")
                return json.loads(done.stdout)

            # Latency first, and its sample transfers traced while the
            # daemons' bounded trace rings still hold them; then throughput.
            result = bench(0)
            hops = collections.Counter()
            for transfer in result["traced"]:
                traced = subprocess.run(
                    [str(binary("fabricctl")), "trace", str(transfer), "--server",
                     leader.endpoint, "--server-key", str(leader.keys.public_path), "--json"],
                    capture_output=True, text=True, timeout=30)
                hops[json.loads(traced.stdout)["hops"] if traced.returncode == 0 else None] += 1
            result["hops"] = dict(hops)
            result["throughput"] = bench(options.concurrency)["throughput"]
            result["messaging"] = hops_floor
            return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ring-checkpoint", type=int, default=None,
                        help="sim/ring_checkpoint for the sims (default: theirs)")
    options = parser.parse_args()
    runs = [one_run(options) for _ in range(options.repeats)]

    def median(path):
        values = []
        for run in runs:
            value = run
            for key in path.split("."):
                value = value[key]
            values.append(value)
        return statistics.median(values)

    floor = median("floor.p50_us")
    p50, p99 = median("latency.p50_us"), median("latency.p99_us")
    print(f"{options.repeats} runs, {options.entities} entities, medians:")
    print(f"floor: commit p50 {median('floor.commit.p50_us'):.0f} us + round trip p50 "
          f"{median('floor.round_trip.p50_us'):.0f} us = {floor:.0f} us")
    print(f"transfer, one at a time: p50 {p50:.0f} us, p99 {p99:.0f} us "
          f"(inside the requesting sim: p50 {median('latency.in_sim.p50_us'):.0f} us); "
          f"p50 / floor {p50 / floor:.2f}x (target < 2x)")
    print(f"transfers, {options.concurrency} in flight: {median('throughput.per_s'):.0f}/s "
          f"(target >= 5000/s), p50 {median('throughput.p50_us'):.0f} us, "
          f"p99 {median('throughput.p99_us'):.0f} us, max {median('throughput.max_us'):.0f} us; "
          f"from the checkpoint (no handoff in 2 s): "
          f"{max(run['throughput']['from_checkpoint'] for run in runs)} at most")
    laps = median("messaging.laps_per_s")
    print(f"messaging floor, the same 7 hops over CURVE with no work, {options.concurrency} "
          f"in flight: {laps:.0f} laps/s, p50 {median('messaging.p50_us'):.0f} us, "
          f"{median('messaging.cpu_us_per_lap'):.0f} us CPU per lap; transfers / floor "
          f"{median('throughput.per_s') / laps:.2f}x")
    handoffs = [run["latency"]["from_handoff"] / run["latency"]["n"] for run in runs]
    print(f"final state from the former authority's HANDOFF: {min(handoffs):.1%} of transfers")
    hops = collections.Counter()
    for run in runs:
        hops.update(run["hops"])
    print(f"hops per traced transfer (fabricctl trace): {dict(hops)} (table: 3)")


if __name__ == "__main__":
    main()
