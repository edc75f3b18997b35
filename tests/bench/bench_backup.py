"""Start a durable 3-member ring, fill it with N entities (entity.import,
500 a command), then run bench_ring's writes (64 clients) against the
leader twice: alone (the baseline), and while fabricctl backs up a
follower. Reports the backup's seconds and size, and the writes' p50
and p99 with the backup against without, in the same run."""

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import binary, leader_client, make_ring, wait_leader  # noqa: E402
from simfabric_testing.keys import read_key_pair  # noqa: E402


def _writes(leader, seconds):
    done = subprocess.run([str(binary("bench_ring")), leader.endpoint,
                           str(leader.keys.public_path), str(leader.folder / "data"), "64",
                           str(seconds), "write"],
                          capture_output=True, text=True)
    if done.returncode:
        print(f"  bench_ring: {done.stdout.strip().splitlines()[-1]} "
              f"{done.stderr.strip()}", flush=True)
    line = [text for text in done.stdout.strip().splitlines() if "writes," in text][0]
    fields = line.split()
    rate = float(fields[fields.index("p50") - 1].rstrip("/s"))
    p50 = float(fields[fields.index("p50") + 1])
    p99 = float(fields[fields.index("p99") + 1])
    return rate, p50, p99


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        # No raft snapshot during the runs: a snapshot stalls the loop
        # (issue 26's subject) and would be measured as the backup's cost.
        ring = make_ring(folder, 3, extra={"snapshot_threshold": 10_000_000})
        try:
            for member in ring:
                member.start()
            leader_name, _ = wait_leader(ring)
            leader = next(m for m in ring if m.name == leader_name)
            follower = next(m for m in ring if m.name != leader_name)
            admin = read_key_pair(leader.admin.secret_path)
            started = time.monotonic()
            with leader_client(ring, keys=admin, timeout=60) as client:
                for at in range(0, options.entities, 500):
                    client.call("entity.import", entities=[
                        {"path": f"/fill/r{n // 100:05d}/e{n % 100:02d}",
                         "checkpoint": f"{n:020d}"}
                        for n in range(at, min(at + 500, options.entities))])
            print(f"filled {options.entities} entities in "
                  f"{time.monotonic() - started:.1f} s", flush=True)
            alone = _writes(leader, options.seconds)
            print(f"writes alone:       {alone[0]:.0f}/s  p50 {alone[1]:.2f} ms  "
                  f"p99 {alone[2]:.2f} ms", flush=True)
            result = {}

            def backup():
                time.sleep(options.seconds / 4)
                began = time.monotonic()
                print(f"  backup begins at "
                      f"{time.strftime('%H:%M:%S', time.gmtime())}Z", flush=True)
                done = subprocess.run(
                    [str(binary("fabricctl")), "backup", str(Path(folder) / "ring.backup"),
                     "--key", str(admin.secret_path), "--server", follower.endpoint,
                     "--server-key", str(follower.keys.public_path)],
                    capture_output=True, text=True, timeout=600)
                result["seconds"] = time.monotonic() - began
                result["out"] = done.stdout.strip() or done.stderr.strip()

            thread = threading.Thread(target=backup)
            thread.start()
            during = _writes(leader, options.seconds)
            thread.join()
            print(f"writes with backup: {during[0]:.0f}/s  p50 {during[1]:.2f} ms  "
                  f"p99 {during[2]:.2f} ms", flush=True)
            print(f"backup: {result['seconds']:.2f} s; {result['out']}", flush=True)
            print(f"ratio with/without: rate {during[0] / alone[0]:.2f}x, "
                  f"p50 {during[1] / alone[1]:.2f}x, p99 {during[2] / alone[2]:.2f}x",
                  flush=True)
            # Elections during the run, if any (each member's role changes).
            for member in ring:
                for line in member.log().splitlines():
                    if " is now " in line and "term 1 " not in line + " ":
                        print(f"  {line}", flush=True)
        finally:
            for member in ring:
                member.stop()


if __name__ == "__main__":
    main()
