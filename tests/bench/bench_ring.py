"""Start a durable 3-member ring on loopback and run bench_ring against its
leader: writes with 1, 16 and 64 clients, linearizable reads with 16 and
64, each beside the fsync floor measured in the same run."""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import binary, make_ring, wait_leader  # noqa: E402


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
                subprocess.run([str(binary("bench_ring")), leader.endpoint,
                                str(leader.keys.public_path), str(leader.folder / "data"),
                                str(clients), str(options.seconds), kind], check=True)
        finally:
            for member in ring:
                member.stop()


if __name__ == "__main__":
    main()
