#!/usr/bin/python3
"""The fabric's main job, step by step, against the instance run-local.sh
started (its folder's fabric.json): the example scene imported onto sim1
and copied to sim2, transforms edited and streamed, authority moved under
each rule, and (second part) a killed sim's entities recovered. Every
step prints its measured latency and, where the daemons traced it, its
hop count (fabricctl trace).

Usage: scripts/demo.py FOLDER moves|recover"""

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/python"))

from simfabric_testing.client import ApiClient, ApiError, NoReply  # noqa: E402
from simfabric_testing.keys import read_public_key  # noqa: E402
from simfabric_testing.paths import example_scene  # noqa: E402

SCENE = example_scene()


def say(text):
    print(f"demo: {text}", file=sys.stderr, flush=True)


class Fabric:
    """The instance described by FOLDER/fabric.json."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "fabric.json").read_text())
        self.fabricctl = self.manifest["fabricctl"]

    def endpoint(self, name):
        return self.manifest["daemons"][name]["api"]

    def cert(self, name):
        return str(self.folder / "keys" / f"{name}.cert")

    def client(self, name, timeout=10.0):
        return ApiClient(self.endpoint(name), read_public_key(self.cert(name)), timeout=timeout)

    def leader(self):
        with self.client("hs1") as client:
            return client.call("status")["leader"] or "hs1"

    def hops(self, trace, at_least, via=None):
        """Hops of TRACE's critical path, and their names, by fabricctl:
        read again for up to 5 s while the last acknowledgements may still
        be on their way (fewer than AT_LEAST hops seen). VIA: the member
        of the other instance to ask first (a trace N@west), this one's
        leader then read as its peer."""
        member = self.leader()
        ask = [self.fabricctl, "trace", str(trace), "--json", "--server",
               self.endpoint(member), "--server-key", self.cert(member)]
        if via:
            ask = [self.fabricctl, "trace", str(trace), "--json", "--server",
                   self.endpoint(via), "--server-key", self.cert(via), "--peer-server",
                   self.endpoint(member), "--peer-server-key", self.cert(member)]
        found = (0, "not traced")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done = subprocess.run(ask, capture_output=True, text=True, timeout=30)
            if done.returncode == 0:
                analysis = json.loads(done.stdout)
                path = [m["msg"] for m in analysis["messages"] if m["critical"]]
                if analysis["hops"]:
                    found = (analysis["hops"], ", ".join(path))
                if analysis["hops"] >= at_least:
                    break
            time.sleep(0.1)
        return found


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def timed(call):
    started = time.perf_counter()
    try:
        return call(), time.perf_counter() - started
    except ApiError as error:
        return error, time.perf_counter() - started


def step_import(fabric):
    sim1 = "sim1"
    started = time.perf_counter()
    done = subprocess.run(
        [fabric.fabricctl, "import", str(SCENE), "--json", "--copy-to", "sim2", "--server",
         fabric.endpoint(sim1), "--server-key", fabric.cert(sim1)],
        capture_output=True, text=True, timeout=120)
    if done.returncode:
        sys.exit(f"demo: import failed: {done.stderr}")
    result = json.loads(done.stdout)
    say(f"imported the example scene ({result['imported']} entities, {result['batches']} "
        f"ring commits) onto sim1 and copied it to sim2 in "
        f"{ms(time.perf_counter() - started)}")
    return [e for e in json.loads(SCENE.read_text())["entities"]]


def step_edits(fabric, scene, count=200):
    paths = [e["path"] for e in scene if e["rule"] == "allow"][:count]
    latencies = []
    with fabric.client("sim1") as game, fabric.client("sim2") as watcher:
        watcher.call("subscribe", prefix="/world/")
        for n, path in enumerate(paths):
            state = json.dumps({"p": [n, 1, 2], "r": [0, 0, 0, 1], "s": 1})
            started = time.perf_counter()
            game.call("entity.update", path=path, state=state)
            while True:
                event = watcher.next_event(timeout=5)
                if event.get("path") == path and event.get("state") == state:
                    break
            latencies.append(time.perf_counter() - started)
            time.sleep(0.001)
        traced = game.call("entity.update", path=paths[0], state='{"p":[0,0,0]}', trace=True)
    latencies.sort()
    hops, path = fabric.hops(traced["trace"], 2)
    say(f"{len(latencies)} transform edits on sim1 reached sim2's subscriber: p50 "
        f"{ms(statistics.median(latencies))}, p99 {ms(latencies[int(len(latencies) * 0.99)])}; "
        f"{hops} hops ({path})")


def claim(fabric, sim, path):
    with fabric.client(sim, timeout=15) as game:
        return timed(lambda: game.call("entity.claim", path=path))


def step_moves(fabric, scene):
    allow = next(e["path"] for e in scene if e["rule"] == "allow")
    doors = [e["path"] for e in scene if e["rule"] == "ask"]
    deny = next(e["path"] for e in scene if e["rule"] == "deny")

    reply, took = claim(fabric, "sim2", allow)
    hops, path = fabric.hops(reply["transfer"], 3)
    say(f"allow: sim2 took {allow} from sim1 in {ms(took)}, epoch {reply['epoch']}, state from "
        f"its {reply['from']}; {hops} hops ({path})")

    for approve, door in ((True, doors[0]), (False, doors[1])):
        with fabric.client("sim1") as game:
            game.call("subscribe", prefix=door)
            result = {}
            thread = threading.Thread(
                target=lambda d=door: result.update(zip(("reply", "took"),
                                                        claim(fabric, "sim2", d))))
            thread.start()
            while True:
                event = game.next_event(timeout=10)
                if event["event"] == "ask":
                    break
            game.call("authority.answer", transfer=event["transfer"], approve=approve)
            thread.join(20)
        reply, took = result["reply"], result["took"]
        if approve:
            hops, path = fabric.hops(reply["transfer"], 5)
            say(f"ask, approved: sim1's game said yes; sim2 took {door} in {ms(took)}, epoch "
                f"{reply['epoch']}; {hops} hops ({path})")
        else:
            say(f"ask, denied: sim1's game said no; sim2's claim of {door} refused in "
                f"{ms(took)}: {reply.code}: {reply.message}")

    reply, took = claim(fabric, "sim2", deny)
    say(f"deny: sim2's claim of {deny} refused in {ms(took)}: {reply.code}: {reply.message}")


def step_visit(fabric, scene):
    """Case 1 (federation.md section 5): the visitor, a sim of instance
    east, takes one of west's entities through its own ring, then sim1
    takes it back."""
    path = [e["path"] for e in scene if e["rule"] == "allow"][1]
    reply, took = claim(fabric, "visitor", f"{path}@west")
    if isinstance(reply, ApiError):
        sys.exit(f"demo: the visitor's claim of {path}@west failed: {reply}")
    hops, hop_names = fabric.hops(f"{reply['transfer']}@west", 4, via="ehs1")
    say(f"across instances: visitor (east) took {path}@west from sim1 (west) in {ms(took)}, "
        f"west's epoch {reply['epoch']}, state from its {reply['from']}; {hops} hops "
        f"({hop_names}), at most 3 + 2H = 5")
    reply, took = claim(fabric, "sim1", path)
    if isinstance(reply, ApiError):
        sys.exit(f"demo: sim1's claim back of {path} failed: {reply}")
    say(f"across instances: sim1 took {path} back from {reply['previous']} in {ms(took)}, epoch "
        f"{reply['epoch']}, state from its {reply['from']}")


def step_recover(fabric):
    """sim1 was killed: wait for the ring to orphan what it held, then
    take one of its entities from sim2."""
    started = time.perf_counter()
    with fabric.client(fabric.leader()) as ring:
        while True:
            page = ring.call("entity.list", prefix="/world/zone2/", limit=1000)
            held = [e for e in page["entities"] if e["authority"] == "sim1"]
            if not held:
                break
            if time.perf_counter() - started > 30:
                sys.exit("demo: the ring did not orphan sim1's entities in 30 s")
            time.sleep(0.05)
        orphan = next(e["path"] for e in page["entities"]
                      if e["authority"] is None and e["rule"] == "allow")
    say(f"the ring declared sim1 dead and orphaned its entities {ms(time.perf_counter() - started)} "
        f"after it was killed (lease {fabric.manifest['sim_lease_ms']} ms)")
    reply, took = claim(fabric, "sim2", orphan)
    hops, path = fabric.hops(reply["transfer"], 2)
    say(f"recovered: sim2 took orphan {orphan} in {ms(took)}, epoch {reply['epoch']}, from the "
        f"ring's {reply['from']}; {hops} hops ({path})")


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("moves", "recover"):
        sys.exit(__doc__)
    fabric = Fabric(sys.argv[1])
    try:
        if sys.argv[2] == "moves":
            scene = step_import(fabric)
            step_edits(fabric, scene)
            step_moves(fabric, scene)
            step_visit(fabric, scene)
        else:
            step_recover(fabric)
    except (ApiError, NoReply, KeyError, StopIteration) as error:
        sys.exit(f"demo: step failed: {error!r}")


if __name__ == "__main__":
    main()
