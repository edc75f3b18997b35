"""Start a durable 3-member ring on loopback and run bench_ring against its
leader: writes with 1, 16 and 64 clients, linearizable reads with 16 and
64, each beside the fsync floor measured in the same run."""

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import binary, make_ring, wait_leader  # noqa: E402


def _threads_cpu(pid) -> dict:
    """CPU seconds (user + system) of PID: its libzmq I/O threads ("io")
    and all its other threads ("other")."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        key = "io" if "ZMQbg/IO" in name else "other"
        cpu[key] = cpu.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return cpu


def _print_cpu(ring, leader, before, generator, output):
    """CPU per operation of the case just run: the leader (and its libzmq
    I/O thread), the followers, and the load generator."""
    match = re.search(r"n=(\d+)", output.strip().splitlines()[-1])
    ops = int(match.group(1)) if match else 0
    if not ops:
        return
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = {}
    for member in ring:
        now = _threads_cpu(member.process.pid)
        spent[member.name] = {k: now.get(k, 0.0) - before[member.name].get(k, 0.0)
                              for k in now}
    lead = spent[leader.name]
    followers = sum(sum(v.values()) for n, v in spent.items() if n != leader.name)
    load = (after.ru_utime - generator.ru_utime) + (after.ru_stime - generator.ru_stime)
    per = 1e6 / ops
    print(f"  cpu per op: leader {sum(lead.values()) * per:.0f} us "
          f"(its I/O thread {lead.get('io', 0.0) * per:.0f}), "
          f"followers {followers * per:.0f} us, load generator {load * per:.0f} us",
          flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--snapshot-threshold", type=int, default=None,
                        help="homeserver/snapshot_threshold (default: the daemon's)")
    parser.add_argument("--cases", default="write1,write16,write64,read16,read64")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        extra = {}
        if options.snapshot_threshold:
            extra["snapshot_threshold"] = options.snapshot_threshold
        ring = make_ring(folder, 3, extra=extra)
        try:
            for member in ring:
                member.start()
            leader_name, _ = wait_leader(ring)
            leader = next(m for m in ring if m.name == leader_name)
            cases = []
            for case in options.cases.split(","):
                kind = case.rstrip("0123456789")
                cases.append((kind, int(case[len(kind):])))
            for kind, clients in cases:
                before = {m.name: _threads_cpu(m.process.pid) for m in ring}
                generator = resource.getrusage(resource.RUSAGE_CHILDREN)
                done = subprocess.run([str(binary("bench_ring")), leader.endpoint,
                                       str(leader.keys.public_path),
                                       str(leader.folder / "data"), str(clients),
                                       str(options.seconds), kind],
                                      check=True, capture_output=True, text=True)
                print(done.stdout, end="", flush=True)
                _print_cpu(ring, leader, before, generator, done.stdout)
        finally:
            for member in ring:
                member.stop()


if __name__ == "__main__":
    main()
