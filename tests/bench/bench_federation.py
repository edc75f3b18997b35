"""Start two instances on loopback, the home (a durable ring of three,
sims s1 and s2) and the requester (a ring of one, sim b), joined through
TCP relays that delay the homeservers' link as two sites apart would;
run bench_transfer for Case 2 (s2 claims from s1) and for Case 1 (b
claims PATH@west from s1) at each delay, and print the figures beside
the floor of the same run."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import (Daemon, binary, make_ring, make_sims, running,  # noqa: E402
                               wait_leader)
from simfabric_testing.federation import federate  # noqa: E402
from simfabric_testing.relay import TcpRelay  # noqa: E402


def _through(member, relay):
    """MEMBER as a peer sees it: its federation endpoint is RELAY's."""
    return types.SimpleNamespace(name=member.name, keys=member.keys,
                                 federation_endpoint=f"tcp://127.0.0.1:{relay.address[1]}")


def _throughput(options, sim1, sim2, leader, daemons, home=None):
    """bench_transfer at options.concurrency, with every daemon's CPU time
    per transfer finished over the throughput phase (microseconds; the
    setup's creations are not in it)."""
    pids = ",".join(f"{d.name}@{d.folder.parent.name}:{d.process.pid}" for d in daemons)
    result = _bench(options, sim1, sim2, leader, options.concurrency, home, pids)
    result["cpu_us"] = result["throughput"]["cpu_us"]
    return result


def _relayed(member):
    """(claims sent on to their homes, fed.claim messages carrying them)."""
    with member.client() as client:
        counters = client.call("counters")["counters"]
    return counters["federation_claims_sent"], counters["federation_claim_messages"]


def _bench(options, sim1, sim2, leader, concurrency, home=None, pids=""):
    command = [str(binary("bench_transfer")), sim1.endpoint, str(sim1.keys.public_path),
               sim2.endpoint, str(sim2.keys.public_path), leader.endpoint,
               str(leader.keys.public_path), str(options.entities), str(concurrency),
               str(options.seconds)]
    if home:
        command += home
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, SIMFABRIC_BENCH_PIDS=pids))
    if done.returncode:
        sys.exit(f"bench_transfer failed: {done.stderr}{done.stdout}")
    return json.loads(done.stdout)


def one_fabric(options, delay):
    """Case 2 and Case 1 figures of a fresh fabric whose instances are
    DELAY ms apart one way (0: connected directly, no relay)."""
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        folder = Path(folder)
        west = make_ring(folder / "west", 3)
        east = [Daemon("homeserver", "hs1", folder / "east" / "hs1")]
        federate({"west": west, "east": east})
        # Each instance reaches the other's members through a relay.
        relays = {}
        if delay:
            for member in west + east:
                host, port = member.federation_endpoint.rsplit("/", 1)[1].rsplit(":", 1)
                relays[member] = TcpRelay(("127.0.0.1", 0), (host, int(port)), delay)
            east[0].peers = {"west": [_through(m, relays[m]) for m in west]}
            for member in west:
                member.peers = {"east": [_through(east[0], relays[east[0]])]}
            for member in west + east:
                member.write_config()
        s1, s2 = make_sims(folder / "west", west, 2, names=["s1", "s2"])
        (b,) = make_sims(folder / "east", east, 1, names=["b"])
        try:
            with running(west + east), running([], [s1, s2]), running([], [b]):
                leader_name, _ = wait_leader(west)
                leader = next(m for m in west if m.name == leader_name)
                reach = relays.get(leader)
                home = ["@west", f"tcp://127.0.0.1:{reach.address[1]}" if reach
                        else leader.federation_endpoint,
                        str(leader.keys.public_path), str(east[0].keys.secret_path)]
                daemons = west + east + [s1, s2, b]
                case2 = {"latency": _bench(options, s1, s2, leader, 0),
                         "throughput": _throughput(options, s1, s2, leader, daemons)}
                case1 = {"latency": _bench(options, s1, b, leader, 0, home)}
                claims, messages = _relayed(east[0])
                case1["throughput"] = _throughput(options, s1, b, leader, daemons, home)
                after = _relayed(east[0])
                case1["per_message"] = (after[0] - claims) / max(1, after[1] - messages)
                return {"case2": case2, "case1": case1}
        finally:
            for relay in relays.values():
                relay.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=12000,
                        help="more than the transfers of a run: each is Case 1, none goes back")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--delays", default="0,10", help="one-way ms between the instances")
    options = parser.parse_args()
    for delay in [float(d) for d in options.delays.split(",")]:
        run = one_fabric(options, delay)
        c2 = run["case2"]["latency"]["latency"]
        c2_rate = run["case2"]["throughput"]["throughput"]["per_s"]
        floor = run["case1"]["latency"]["floor"]
        lat = run["case1"]["latency"]["latency"]
        rate = run["case1"]["throughput"]["throughput"]
        link = f"{delay:g} ms one way (relay)" if delay else "directly (loopback)"
        print(f"instances joined {link}:")
        print(f"  Case 2 (s2 claims from s1, the home's ring of three): p50 "
              f"{c2['p50_us']:.0f} us, p99 {c2['p99_us']:.0f} us; {options.concurrency} "
              f"in flight: {c2_rate:.0f}/s")
        print(f"  Case 1 (b claims from s1): floor {floor['p50_us']:.0f} us (commit "
              f"{floor['commit']['p50_us']:.0f} + sim round trip "
              f"{floor['round_trip']['p50_us']:.0f} + instances' round trip "
              f"{floor['fed_round_trip']['p50_us']:.0f}); p50 {lat['p50_us']:.0f} us, "
              f"p99 {lat['p99_us']:.0f} us, p50 / floor {lat['p50_us'] / floor['p50_us']:.2f}x "
              f"(target <= 1.5x); from the handoff {lat['from_handoff']} of {lat['n']}")
        print(f"  Case 1, {options.concurrency} in flight: "
              f"{rate['per_s']:.0f}/s, p50 {rate['p50_us']:.0f} us, p99 {rate['p99_us']:.0f} us; "
              f"{rate['per_s'] / c2_rate:.2f}x Case 2 (target >= 0.5x); "
              f"{run['case1']['per_message']:.1f} claims per fed.claim")
        for case in ("case2", "case1"):
            cpu = run[case]["throughput"]["cpu_us"]
            print(f"  CPU per transfer, {case[:4].title()} {case[4]}, {options.concurrency} in "
                  f"flight: total {sum(cpu.values()):.0f} us; " + ", ".join(
                      f"{name} {us:.0f}" for name, us in sorted(cpu.items()) if us >= 1))


if __name__ == "__main__":
    main()
