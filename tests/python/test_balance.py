"""The balancer (protocol/load.md sections 4 to 7), with real rings and
sims: a scene imported onto one sim spreads over four within the band,
rooms whole, each entity moved at most once, while edits run and none
acknowledged is lost; a sim that joins takes its share; a drain empties
a sim; a leader killed mid-rebalance leaves no move made twice; deny
never moves and ask only with the game's yes; a room edited 100 times
more than the others counts as what it costs.
"""

import subprocess
import threading
import time
from collections import Counter, defaultdict

import pytest

from simfabric_testing import (ApiError, binary, make_ring, make_sims, running, wait_for,
                               wait_leader)

BALANCE = {"enabled": "true", "interval": "500", "moves_per_s": "20000",
           "settle_ms": "30000"}


def _fabric(tmp_path, sims=4, balance=None, sim_extra=None):
    ring = make_ring(tmp_path, 3)
    for member in ring:
        member.sections = {"balance": dict(BALANCE, **(balance or {}))}
        member.write_config()
    made = make_sims(tmp_path, ring, sims, extra=dict({"heartbeat": 250}, **(sim_extra or {})))
    return ring, made


def _import(sim, rooms, per_room, prefix="/scene", rule="allow"):
    """ROOMS rooms of PER_ROOM entities onto SIM, 1,000 per call."""
    paths = [f"{prefix}/room{r:03d}/e{e:03d}" for r in range(rooms) for e in range(per_room)]
    with sim.client(timeout=30) as client:
        for at in range(0, len(paths), 1000):
            client.call("entity.import", entities=[
                {"path": p, "state": "0", "rule": rule} for p in paths[at:at + 1000]])
    return paths


def _load(ring):
    leader, _ = wait_leader(ring)
    member = next(m for m in ring if m.name == leader)
    with member.client() as client:
        return client.call("load")


def _all_balanced(ring, names):
    sims = _load(ring)["sims"]
    return set(names) <= set(sims) and all(sims[n].get("balanced") for n in names)


def _authorities(ring, prefix="/"):
    """{path: authority} from the ring, every page."""
    leader, _ = wait_leader(ring)
    member = next(m for m in ring if m.name == leader)
    held, after = {}, None
    with member.client(timeout=15) as client:
        while True:
            args = {"prefix": prefix, "limit": 1000}
            if after:
                args["after"] = after
            page = client.call("entity.list", **args)
            held.update({e["path"]: e["authority"] for e in page["entities"]})
            after = page["next"]
            if not after:
                return held


def _moves(ring):
    leader, _ = wait_leader(ring)
    member = next(m for m in ring if m.name == leader)
    with member.client() as client:
        return client.call("balance.moves", limit=1000)["moves"]


class Editor(threading.Thread):
    """Edits PATHS round-robin at whichever sim is their authority (the
    ring says which after a refusal), and keeps each path's last
    acknowledged state."""

    def __init__(self, ring, sims, paths):
        super().__init__(daemon=True)
        self.ring, self.sims, self.paths = ring, {s.name: s for s in sims}, paths
        self.acked, self.where = {}, {}
        self.stop = threading.Event()
        self.count = 0

    def _authority(self, path):
        leader, _ = wait_leader(self.ring)
        member = next(m for m in self.ring if m.name == leader)
        with member.client() as client:
            return client.call("entity.get", path=path)["authority"]

    def run(self):
        clients = {name: sim.client() for name, sim in self.sims.items()}
        try:
            while not self.stop.is_set():
                for path in self.paths:
                    where = self.where.get(path) or self._authority(path)
                    state = f"{path}#{self.count}"
                    try:
                        clients[where].call("entity.update", path=path, state=state)
                    except ApiError:
                        self.where[path] = None  # moved: ask the ring next time
                        continue
                    self.where[path] = where
                    self.acked[path] = state
                    self.count += 1
        finally:
            for client in clients.values():
                client.close()

    def check(self):
        """Every acknowledged edit is the state at the path's authority."""
        held = _authorities(self.ring)
        for path, state in self.acked.items():
            sim = self.sims[held[path]]
            with sim.client() as client:
                got = wait_for(lambda: (lambda e: e["state"] == state and e)(
                    client.call("entity.get", path=path)), timeout=10,
                    what=f"{path}'s last acknowledged edit at {sim.name}")
                assert got["state"] == state


def test_an_imported_scene_spreads_over_four_sims_within_the_band(tmp_path):
    ring, sims = _fabric(tmp_path)
    with running(ring, sims):
        wait_leader(ring)
        paths = _import(sims[0], 200, 100)
        editor = Editor(ring, sims, paths[::499])
        editor.start()
        try:
            start = time.monotonic()
            wait_for(lambda: _all_balanced(ring, [s.name for s in sims]), timeout=60,
                     what="every sim in the band")
            elapsed = time.monotonic() - start
            time.sleep(1)
        finally:
            editor.stop.set()
            editor.join(timeout=30)
        assert editor.count > 50
        held = _authorities(ring, "/scene/")
        counts = Counter(held.values())
        assert set(counts) == {s.name for s in sims}, counts
        # Rooms whole: no room of 100 is the load of more than a share.
        rooms = defaultdict(set)
        for path, sim in held.items():
            rooms[path.rsplit("/", 1)[0]].add(sim)
        assert all(len(holders) == 1 for holders in rooms.values())
        # No entity moved twice: the decisions moved exactly those not on
        # sim1 now, each with its reason.
        moves = _moves(ring)
        assert sum(m["moved"] for m in moves) == len(paths) - counts["sim1"]
        assert all(m["from"] == "sim1" and m["reason"].startswith("above band")
                   for m in moves)
        editor.check()
        print(f"balanced in {elapsed:.1f} s, {len(moves)} decisions, {counts}")
