"""Start a durable 3-member ring on loopback, each member serving HTTP,
and run each case twice in a row against the leader: over ZeroMQ
(bench_ring, the baseline) and over REST (bench_http), with the CPU per
operation of the members and of the load generator. Then scrape
/metrics for a while and report the leader's CPU per scrape."""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))
sys.path.insert(0, str(ROOT / "tests/bench"))

from bench_ring import _print_cpu, _threads_cpu  # noqa: E402
from simfabric_testing import binary, leader_client, make_ring, wait_leader  # noqa: E402
from simfabric_testing.daemon import free_port  # noqa: E402
from simfabric_testing.keys import read_key_pair  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cases", default="write1,write64,read1,read64")
    parser.add_argument("--scrape-seconds", type=float, default=5.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        ring = make_ring(folder, 3)
        for member in ring:
            member.section["http"] = f"tcp://127.0.0.1:{free_port()}"
            member.write_config()
        try:
            for member in ring:
                member.start()
            leader_name, _ = wait_leader(ring)
            leader = next(m for m in ring if m.name == leader_name)
            port = leader.section["http"].rsplit(":", 1)[1]
            admin = read_key_pair(leader.admin.secret_path)
            with leader_client(ring, keys=admin) as client:
                token = client.call("access.create", principal=admin.public.decode(),
                                    ttl_ms=3_600_000)["token"]
            for case in options.cases.split(","):
                kind = case.rstrip("0123456789")
                clients = case[len(kind):]
                runs = [("zmq", [str(binary("bench_ring")), leader.endpoint,
                                 str(leader.keys.public_path), str(leader.folder / "data"),
                                 clients, str(options.seconds), kind]),
                        ("http", [str(binary("bench_http")), port, token, clients,
                                  str(options.seconds), kind])]
                for name, command in runs:
                    before = {m.name: _threads_cpu(m.process.pid) for m in ring}
                    generator = resource.getrusage(resource.RUSAGE_CHILDREN)
                    done = subprocess.run(command, check=True, capture_output=True, text=True)
                    # bench_ring prints its fsync floor first; keep its last line.
                    line = done.stdout.strip().splitlines()[-1]
                    print(f"{name:4} {line}", flush=True)
                    _print_cpu(ring, leader, before, generator, line)
            # A scrape's cost: one client scraping as fast as it can.
            before = _threads_cpu(leader.process.pid)
            done = subprocess.run([str(binary("bench_http")), port, token, "1",
                                   str(options.scrape_seconds), "metrics"],
                                  check=True, capture_output=True, text=True)
            after = _threads_cpu(leader.process.pid)
            line = done.stdout.strip().splitlines()[-1]
            scrapes = int(line.split("n=")[1].split()[0])
            spent = sum(after.values()) - sum(before.values())
            print(f"     {line}", flush=True)
            print(f"  /metrics: leader CPU {spent / scrapes * 1e6:.0f} us per scrape "
                  f"(target under 1000 us)", flush=True)
        finally:
            for member in ring:
                member.stop()


if __name__ == "__main__":
    main()
