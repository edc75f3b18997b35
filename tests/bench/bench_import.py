"""Start a durable 3-member ring and two sims, import the example scene
onto sim1 with fabricctl (copied to sim2), check that sim2 holds every
entity, then edit transforms on sim1 and time each edit's arrival at a
subscriber of sim2. Baselines from the same run: the ring's rate for the
same entities written one by one (bench_ring, 64 writers), and a
loopback round trip to sim2's API. Each run starts a fresh fabric;
medians of the runs are reported."""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import binary, make_ring, make_sims, running, wait_leader  # noqa: E402
from simfabric_testing.paths import example_scene  # noqa: E402

SCENE = example_scene()


def percentile(values, share):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * share))]


def count_held(client, prefix):
    count, after = 0, None
    while True:
        page = client.call("entity.list", prefix=prefix, limit=1000,
                           **({"after": after} if after else {}))
        count += len(page["entities"])
        after = page.get("next")
        if not after:
            return count


def edits(sim1, sim2, paths, count):
    """Edit COUNT random entities on SIM1; the time until a subscriber of
    SIM2 sees each, in microseconds; and round trips to SIM2 alone."""
    latencies, trips = [], []
    with sim1.client() as game, sim2.client() as watcher:
        watcher.call("subscribe", prefix="/world/")
        for n in range(count):
            path = random.choice(paths)
            state = json.dumps({"p": [n, 0, 0], "r": [0, 0, 0, 1], "s": 1})
            started = time.perf_counter_ns()
            game.socket.send(json.dumps({"op": "entity.update", "id": n, "path": path,
                                         "state": state}).encode())
            while True:
                event = watcher.next_event(timeout=5)
                if event.get("path") == path and event.get("state") == state:
                    break
            latencies.append((time.perf_counter_ns() - started) / 1000)
            game.recv_raw()  # the update's own reply
            started = time.perf_counter_ns()
            watcher.call("status")
            trips.append((time.perf_counter_ns() - started) / 1000)
            time.sleep(0.002)  # a game's tick, not a flood
    return latencies, trips


def one_run(options):
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        ring = make_ring(folder, 3)
        sims = make_sims(folder, ring, 2)
        with running(ring, sims):
            leader_name, _ = wait_leader(ring)
            leader = next(m for m in ring if m.name == leader_name)
            sim1, sim2 = sims
            started = time.perf_counter()
            done = subprocess.run(
                [str(binary("fabricctl")), "import", str(SCENE), "--server", sim1.endpoint,
                 "--server-key", str(sim1.keys.public_path), "--copy-to", "sim2", "--json"],
                capture_output=True, text=True, timeout=120)
            with sim2.client(timeout=30) as client:
                held = count_held(client, "/world/")
            elapsed = time.perf_counter() - started
            if done.returncode or held != 10_000:
                sys.exit(f"import failed ({held} entities on sim2): {done.stderr}")
            result = json.loads(done.stdout)
            # Baseline: the ring's rate for single-entity writes.
            base = subprocess.run(
                [str(binary("bench_ring")), leader.endpoint, str(leader.keys.public_path),
                 str(leader.folder / "data"), "64", "2", "write"],
                capture_output=True, text=True, timeout=60, check=True)
            rate = float(base.stdout.split("writes, 64 clients")[1].split("/s")[0].split()[-1])
            paths = [e["path"] for e in json.loads(SCENE.read_text())["entities"]]
            latencies, trips = edits(sim1, sim2, paths, options.edits)
            return {
                "import_s": elapsed, "fabricctl_s": result["seconds"],
                "copy_s": result.get("copy_seconds", 0), "one_by_one_s": 10_000 / rate,
                "edit_p50_us": statistics.median(latencies),
                "edit_p99_us": percentile(latencies, 0.99),
                "trip_p50_us": statistics.median(trips), "trip_p99_us": percentile(trips, 0.99),
            }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--edits", type=int, default=1000)
    options = parser.parse_args()
    runs = [one_run(options) for _ in range(options.repeats)]

    def median(key):
        return statistics.median(run[key] for run in runs)

    print(f"{options.repeats} runs, medians:")
    print(f"import of 10,000 entities to all readable on sim2: {median('import_s'):.2f} s "
          f"(batches committed {median('fabricctl_s'):.2f} s, copy to sim2 "
          f"{median('copy_s'):.3f} s; target < 2 s)")
    print(f"the same entities as single writes, 64 in flight: {median('one_by_one_s'):.2f} s "
          f"-> import / one by one {median('import_s') / median('one_by_one_s'):.2f}x")
    print(f"transform edit reaching sim2: p50 {median('edit_p50_us'):.0f} us, "
          f"p99 {median('edit_p99_us'):.0f} us (target p99 < 5 ms)")
    print(f"loopback round trip to sim2's API: p50 {median('trip_p50_us'):.0f} us, "
          f"p99 {median('trip_p99_us'):.0f} us -> edit p99 / round trip p99 "
          f"{median('edit_p99_us') / median('trip_p99_us'):.2f}x")


if __name__ == "__main__":
    main()
