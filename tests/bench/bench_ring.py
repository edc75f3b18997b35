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
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        ring = make_ring(folder, 3)
        try:
            for member in ring:
                member.start()
            leader_name, _ = wait_leader(ring)
            leader = next(m for m in ring if m.name == leader_name)
            cases = [("write", 1), ("write", 16), ("write", 64), ("read", 16), ("read", 64)]
            for kind, clients in cases:
                subprocess.run([str(binary("bench_ring")), leader.endpoint,
                                str(leader.keys.public_path), str(leader.folder / "data"),
                                str(clients), str(options.seconds), kind], check=True)
        finally:
            for member in ring:
                member.stop()


if __name__ == "__main__":
    main()
