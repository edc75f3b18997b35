"""Two fabrics in one run, each a durable ring of three and four sims on
loopback: the same 100,000 entities (1,000 rooms of 100) imported onto
sim1, and the same edits (a fixed set of entities across the scene, at a
fixed rate, each sent to its authority, again at the new one after a
refusal) timed from request to acknowledgement. The first fabric has the
balancer off: its edits, for as long as the other's rebalance took, are
the baseline. The other has it on: the time
from the import's end until every sim is inside the band, the moves per
second, the moves against the fewest the final assignment needs (the
entities not on sim1 at the end), and its edits' percentiles as ratios
to the baseline's."""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing import ApiError, make_ring, make_sims, running, wait_leader  # noqa: E402


def percentile(values, share):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * share))]


class Edits(threading.Thread):
    """PATHS edited round-robin at RATE per second, each at its authority
    (after a refusal, where the refusing sim says, else where the ring
    says); the latency of each acknowledged edit in microseconds,
    refusals and retries included."""

    def __init__(self, leader, sims, paths, rate):
        super().__init__(daemon=True)
        self.leader, self.sims, self.paths = leader, {s.name: s for s in sims}, paths
        self.pause = 1 / rate
        self.latencies, self.where, self.retries = [], {}, 0
        self.refused = []  # latencies of the edits refused at least once
        self.stop = threading.Event()

    def run(self):
        clients = {name: sim.client(timeout=10) for name, sim in self.sims.items()}
        ring = self.leader.client(timeout=10)
        try:
            n = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                path = self.paths[n % len(self.paths)]
                n += 1
                start = time.perf_counter()
                retries = self.retries
                tried = set()
                while True:
                    where = self.where.get(path) or ring.call("entity.get", path=path)["authority"]
                    try:
                        clients[where].call("entity.update", path=path, state=str(n))
                        break
                    except ApiError as error:
                        # A fenced sim names the authority it heard of: go
                        # there; one still taking the entity names the one
                        # before it: wait a moment and ask the ring.
                        self.retries += 1
                        tried.add(where)
                        hint = error.reply["error"].get("authority")
                        self.where[path] = hint if hint not in tried else None
                        if not self.where[path]:
                            tried.clear()
                            time.sleep(0.002)
                self.where[path] = where
                self.latencies.append((time.perf_counter() - start) * 1e6)
                if self.retries > retries:
                    self.refused.append(self.latencies[-1])
                next_at += self.pause
                time.sleep(max(0, next_at - time.monotonic()))
        finally:
            ring.close()
            for client in clients.values():
                client.close()


def load(leader):
    with leader.client() as client:
        return client.call("load")


def fabric(folder, balance, options):
    ring = make_ring(folder, 3)
    for member in ring:
        member.sections = {"balance": balance}
        member.write_config()
    sims = make_sims(folder, ring, 4, extra={"heartbeat": 1000})
    return ring, sims


def one_run(folder, enabled, options, window=None):
    balance = {"enabled": "true" if enabled else "false",
               "moves_per_s": str(options.moves_per_s),
               "interval": str(options.interval)}
    ring, sims = fabric(folder, balance, options)
    rooms = options.entities // 100
    paths = [f"/bench/room{r:04d}/e{e:02d}" for r in range(rooms) for e in range(100)]
    edited = paths[::max(1, len(paths) // 200)]
    result = {}
    with running(ring, sims):
        leader_name, _ = wait_leader(ring)
        leader = next(m for m in ring if m.name == leader_name)
        import_start = time.monotonic()
        with sims[0].client(timeout=60) as client:
            for at in range(0, len(paths), 1000):
                client.call("entity.import", entities=[
                    {"path": p, "state": "0"} for p in paths[at:at + 1000]])
        imported = time.monotonic()
        editor = Edits(leader, sims, edited, options.rate)
        editor.start()
        names = [s.name for s in sims]
        balanced_at = None
        deadline = imported + (window if window else options.timeout)
        while time.monotonic() < deadline:
            sims_view = load(leader)["sims"]
            held = sum(sims_view.get(n, {}).get("authoritative", 0) for n in names)
            if enabled and held == len(paths) and all(
                    sims_view.get(n, {}).get("balanced") for n in names):
                balanced_at = time.monotonic()
                break
            time.sleep(0.1)
        editor.stop.set()
        editor.join(timeout=30)
        result["import_s"] = imported - import_start
        result["edits"] = len(editor.latencies)
        result["retries"] = editor.retries
        result["p50_us"] = statistics.median(editor.latencies)
        result["p99_us"] = percentile(editor.latencies, 0.99)
        clean = [v for v in editor.latencies if v not in set(editor.refused)]
        result["clean_p99_us"] = percentile(clean, 0.99)
        result["refused_p50_us"] = statistics.median(editor.refused) if editor.refused else 0
        if enabled:
            if balanced_at is None:
                sys.exit(f"not balanced within {options.timeout} s")
            # Every grant is a new epoch and nothing else grants here: an
            # entity moved N times is at epoch N + 1 (the ring keeps only
            # the last 1,000 decisions).
            moved = 0
            with leader.client(timeout=30) as client:
                held, after = Counter(), None
                while True:
                    args = {"limit": 1000, **({"after": after} if after else {})}
                    page = client.call("entity.list", **args)
                    held.update(e["authority"] for e in page["entities"])
                    moved += sum(e["epoch"] - 1 for e in page["entities"])
                    after = page["next"]
                    if not after:
                        break
            result["balanced_s"] = balanced_at - imported
            result["moved"] = moved
            result["needed"] = len(paths) - held["sim1"]
            result["moves_per_s"] = moved / max(0.001, result["balanced_s"])
            result["held"] = dict(held)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200, help="edits per second")
    parser.add_argument("--moves-per-s", type=int, default=5000)
    parser.add_argument("--interval", type=int, default=2000,
                        help="balance/interval, ms")
    parser.add_argument("--timeout", type=float, default=120)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        on = one_run(Path(folder) / "on", True, options)
        # The baseline edits for as long as the rebalance took.
        base = one_run(Path(folder) / "off", False, options,
                       window=max(5.0, on["balanced_s"]))
    print(f"entities {options.entities}, edits at {options.rate:.0f}/s, "
          f"balance/moves_per_s {options.moves_per_s}, balance/interval "
          f"{options.interval} ms")
    print(f"balanced {on['balanced_s']:.1f} s after the import "
          f"(import {on['import_s']:.1f} s), {on['moves_per_s']:.0f} moves/s; "
          f"held at the end {on['held']}")
    print(f"moves {on['moved']} / fewest for the final assignment {on['needed']} = "
          f"{on['moved'] / max(1, on['needed']):.2f}x")
    print(f"edits, balancer off: {base['edits']} edits, p50 {base['p50_us']:.0f} us, "
          f"p99 {base['p99_us']:.0f} us")
    print(f"edits, rebalancing:  {on['edits']} edits ({on['retries']} refused and sent "
          f"again), p50 {on['p50_us']:.0f} us ({on['p50_us'] / base['p50_us']:.2f}x), "
          f"p99 {on['p99_us']:.0f} us ({on['p99_us'] / base['p99_us']:.2f}x)")
    print(f"  of which not refused: p99 {on['clean_p99_us']:.0f} us "
          f"({on['clean_p99_us'] / base['p99_us']:.2f}x); refused: p50 "
          f"{on['refused_p50_us']:.0f} us")


if __name__ == "__main__":
    main()
