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
import zmq

from simfabric_testing.events import next_event, prove_live
from simfabric_testing import (ApiError, admit, call_any, binary, make_ring, make_sims, running, wait_for,
                               wait_leader, write_key_pair)

BALANCE = {"enabled": "true", "interval": "500", "moves_per_s": "20000",
           "settle_ms": "30000"}


def _fabric(tmp_path, sims=4, balance=None, sim_extra=None):
    ring = make_ring(tmp_path, 3)
    for member in ring:
        member.sections = {"balance": dict(BALANCE, **(balance or {}))}
        member.write_config()
    made = make_sims(tmp_path, ring, sims, extra=dict({"heartbeat": 250}, **(sim_extra or {})))
    return ring, made


def _import(sim, rooms, per_room, prefix="/scene", rule="allow", owners=None):
    """ROOMS rooms of PER_ROOM entities onto SIM, 1,000 per call; OWNERS
    maps a path to the player that owns it."""
    paths = [f"{prefix}/room{r:03d}/e{e:03d}" for r in range(rooms) for e in range(per_room)]
    owners = owners or {}
    with sim.client(timeout=30) as client:
        for at in range(0, len(paths), 1000):
            batch = [dict({"path": p, "state": "0", "rule": rule},
                          **({"owner": owners[p]} if p in owners else {}))
                     for p in paths[at:at + 1000]]
            # As sim-api.md says: on unavailable (no leader for a moment,
            # as on a slow machine) send it again; the ring takes the same
            # batch again as done.
            for attempt in range(10):
                try:
                    client.call("entity.import", entities=batch)
                    break
                except ApiError as error:
                    if error.code not in ("unavailable", "timeout") or attempt == 9:
                        raise
                    time.sleep(0.5)
    return paths


def _call(ring, op, **args):
    """OP answered by whichever member can: a leader change under a slow
    build (an ASan member stalled past the election timeout) answers
    unavailable for a moment, and a client of the ring retries."""
    return call_any(ring, op, time.monotonic() + 30, **args)


def _load(ring):
    return _call(ring, "load")


def _all_balanced(ring, names, held):
    """Whether the sims NAMES all report, hold HELD entities between
    them, and are each within the band."""
    sims = _load(ring)["sims"]
    return set(names) <= set(sims) \
        and sum(sims[n].get("authoritative", 0) for n in names) == held \
        and all(sims[n].get("balanced") for n in names)


def _authorities(ring, prefix="/"):
    """{path: authority} from the ring, every page."""
    held, after = {}, None
    while True:
        args = {"prefix": prefix, "limit": 1000}
        if after:
            args["after"] = after
        page = _call(ring, "entity.list", **args)
        held.update({e["path"]: e["authority"] for e in page["entities"]})
        after = page["next"]
        if not after:
            return held


def _moves(ring):
    return _call(ring, "balance.moves", limit=1000)["moves"]


class Editor(threading.Thread):
    """Edits PATHS round-robin at whichever sim is their authority (the
    ring says which after a refusal), and keeps each path's last
    acknowledged state."""

    def __init__(self, ring, sims, paths, rate=None):
        super().__init__(daemon=True)
        self.ring, self.sims, self.paths = ring, {s.name: s for s in sims}, paths
        self.pause = 1 / rate if rate else 0
        self.acked, self.where = {}, {}
        self.stop = threading.Event()
        self.count = 0
        self.hinted = 0  # refusals that named where the entity went

    def _authority(self, path):
        return _call(self.ring, "entity.get", path=path)["authority"]

    def run(self):
        clients = {name: sim.client() for name, sim in self.sims.items()}
        try:
            while not self.stop.is_set():
                for path in self.paths:
                    where = self.where.get(path) or self._authority(path)
                    state = f"{path}#{self.count}"
                    try:
                        clients[where].call("entity.update", path=path, state=state)
                    except ApiError as error:
                        # Moved: where the refusing sim says, else the ring.
                        hint = error.reply["error"].get("authority")
                        self.where[path] = hint if hint != where else None
                        self.hinted += hint is not None
                        continue
                    self.where[path] = where
                    self.acked[path] = state
                    self.count += 1
                    time.sleep(self.pause)
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
    # A room moved stays put for the whole test: on a slow build the
    # balancer spreads the scene while it is still being imported, and
    # once a room settled (30 s by default) it may rightly move again.
    ring, sims = _fabric(tmp_path, balance={"settle_ms": "600000"})
    with running(ring, sims):
        wait_leader(ring)
        paths = _import(sims[0], 200, 100)
        editor = Editor(ring, sims, paths[::499])
        editor.start()
        try:
            start = time.monotonic()
            wait_for(lambda: _all_balanced(ring, [s.name for s in sims], len(paths)),
                     timeout=60, what="every sim in the band")
            elapsed = time.monotonic() - start
            # Some edits after the moves too (a slow build may edit little
            # while they run).
            at = editor.count
            wait_for(lambda: editor.count > max(50, at + 20), timeout=60,
                     what="edits after the moves")
        finally:
            editor.stop.set()
            editor.join(timeout=30)
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
        # (A change of leader on a slow machine: the new one finishes a
        # room the old one moved part of.)
        assert all(m["from"] == "sim1" and m["reason"].split(":")[0]
                   in ("above band", "below band",
                       "the rest of a room another leader moved part of")
                   for m in moves)
        editor.check()
        print(f"balanced in {elapsed:.1f} s, {len(moves)} decisions, {counts}")


def _fabricctl(member, *args, key=None, timeout=120):
    key = key or member.admin
    return subprocess.run([str(binary("fabricctl")), *args, "--server", member.endpoint,
                           "--server-key", str(member.keys.public_path),
                           "--key", str(key.secret_path)],
                          capture_output=True, text=True, timeout=timeout)


def test_a_sim_that_joins_takes_its_share_and_a_drain_empties_one(tmp_path):
    # Rooms moved settle for 3 s here, not 30: the newcomer's share comes
    # from rooms that moved a moment before.
    ring, sims = _fabric(tmp_path, sims=4, balance={"settle_ms": "3000"})
    first, fifth = sims[:3], sims[3]
    with running(ring, first):
        wait_leader(ring)
        paths = _import(first[0], 60, 50)
        wait_for(lambda: _all_balanced(ring, [s.name for s in first], len(paths)),
                 timeout=60, what="three sims in the band")
        # A fifth sim (the fourth here) joins: no operator action.
        fifth.start()
        try:
            wait_for(lambda: _all_balanced(ring, [s.name for s in sims], len(paths)),
                     timeout=60, what="the newcomer's share")
            assert Counter(_authorities(ring).values())[fifth.name] > 0
            # Draining sim2 while edits run: it ends empty, no edit lost.
            editor = Editor(ring, sims, paths[::97])
            editor.start()
            try:
                done = _fabricctl(ring[1], "drain", "sim2", "--wait", "60")
            finally:
                editor.stop.set()
                editor.join(timeout=30)
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stdout.strip().endswith("sim2: empty")
            held = _authorities(ring)
            assert "sim2" not in held.values() and len(held) == len(paths)
            assert any(m["reason"] == "draining" for m in _moves(ring))
            editor.check()
            # Draining, it takes nothing: neither a claim nor a move.
            with sims[1].client() as game:
                with pytest.raises(ApiError) as error:
                    game.call("entity.claim", path=paths[0])
                assert error.value.code == "unavailable"
            sims_view = _load(ring)["sims"]
            assert sims_view["sim2"]["draining"] is True
            # Not an administrator: refused, nothing changes.
            outsider = _fabricctl(ring[0], "drain", "sim3", key=sims[2].keys)
            assert outsider.returncode != 0 and "unauthorized" in outsider.stderr
            cancelled = _fabricctl(ring[0], "drain", "sim2", "--cancel")
            assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
            assert _load(ring)["sims"]["sim2"]["draining"] is False
        finally:
            fifth.stop()


def test_the_new_leader_finishes_a_rebalance_and_loses_no_move(tmp_path):
    ring, sims = _fabric(tmp_path, balance={"moves_per_s": "1500", "settle_ms": "600000"})
    with running(ring, sims):
        leader_name, _ = wait_leader(ring)
        paths = _import(sims[0], 150, 100)
        # Kill the leader once it has decided some moves, not all.
        wait_for(lambda: len(_moves(ring)) >= 5, timeout=30, what="the first moves")
        leader = next(m for m in ring if m.name == leader_name)
        leader.kill()
        others = [m for m in ring if m is not leader]
        wait_leader(others)
        wait_for(lambda: _all_balanced(others, [s.name for s in sims], len(paths)),
                 timeout=90, what="every sim in the band under the new leader")
        held = _authorities(others)
        counts = Counter(held.values())
        moves = _moves(others)
        terms = {m["move"].split(".")[0] for m in moves}
        assert len(terms) >= 2, terms  # both leaders decided
        assert len({m["move"] for m in moves}) == len(moves)  # none twice
        # No move lost: every entity is held, at the ring's epoch, by the
        # sim the ring names. A sim that missed a move's event in the
        # change of leader takes it late (its check), so the model may
        # misjudge it for a moment: a room may move once more, within the
        # issue's bound of 1.2 times the fewest moves.
        assert sum(m["moved"] for m in moves) <= 1.2 * (len(paths) - counts["sim1"])
        # Rooms whole: a room the old leader had sent part of when it died
        # was finished by the new one, to the same sim.
        rooms = defaultdict(set)
        for path, sim in held.items():
            rooms[path.rsplit("/", 1)[0]].add(sim)
        torn = {room: holders for room, holders in rooms.items() if len(holders) > 1}
        assert not torn, (torn, [m for m in moves if m["group"] in torn])
        by_sim = {s.name: s for s in sims}
        serving = next(m for m in others if m.name == wait_leader(others)[0])
        with serving.client() as client:

            def taken(path):
                # The ring's authority now (the balancer may still be
                # finishing, inside the band), holding at the ring's epoch.
                ring_view = client.call("entity.get", path=path)
                with by_sim[ring_view["authority"]].client() as game:
                    sim_view = game.call("entity.get", path=path)
                return sim_view["authority"] is True and sim_view["epoch"] == ring_view["epoch"]

            for path in paths[::97]:
                # A sim that missed the move's event takes it at its next check.
                wait_for(lambda: taken(path), timeout=30, what=f"{path} held by its authority")


def test_deny_never_moves_and_ask_moves_only_with_the_games_yes(tmp_path):
    ring, sims = _fabric(tmp_path, sims=2, balance={"ask_timeout_ms": "3000"})
    with running(ring, sims):
        wait_leader(ring)
        allow = _import(sims[0], 4, 25, prefix="/a")
        deny = _import(sims[0], 4, 25, prefix="/d", rule="deny")
        ask = _import(sims[0], 4, 25, prefix="/q", rule="ask")
        answered = Counter()

        def game():
            # sim1's game: yes for even entities, no for odd ones.
            with sims[0].client() as client:
                client.call("subscribe", prefix="/q/")
                deadline = time.monotonic() + 25
                while time.monotonic() < deadline:
                    try:
                        event = client.next_event(timeout=0.5)
                    except Exception:
                        continue
                    if event.get("event") != "ask":
                        continue
                    yes = int(event["path"][-1]) % 2 == 0
                    answered[yes] += 1
                    client.call("authority.answer", transfer=event["transfer"], approve=yes)
        player = threading.Thread(target=game, daemon=True)
        player.start()
        player.join(timeout=40)
        held = _authorities(ring)
        assert all(held[p] == "sim1" for p in deny)
        moved_ask = [p for p in ask if held[p] == "sim2"]
        assert answered[True] > 0 and answered[False] > 0, answered
        assert moved_ask and all(int(p[-1]) % 2 == 0 for p in moved_ask), moved_ask
        assert len(moved_ask) == answered[True]
        assert any(held[p] == "sim2" for p in allow)


def test_a_room_stays_whole_unless_it_alone_exceeds_a_share(tmp_path):
    ring, sims = _fabric(tmp_path, sims=2)
    with running(ring, sims):
        wait_leader(ring)
        big = _import(sims[0], 1, 500, prefix="/big")
        small = _import(sims[0], 5, 20, prefix="/small")
        wait_for(lambda: _all_balanced(ring, ["sim1", "sim2"], len(big) + len(small)),
                 timeout=60, what="both sims in the band")
        held = _authorities(ring)
        for room in range(5):
            assert len({held[p] for p in small if f"/room{room:03d}/" in p}) == 1
        # 500 of 600 is more than a share (300): the only room split.
        assert {held[p] for p in big} == {"sim1", "sim2"}


def test_rooms_where_the_same_players_own_entities_move_together(tmp_path):
    """8 equal rooms on sim1: balanced alone, rooms 0-3 would go and 4-7
    stay. ada owns an entity in rooms 1 and 6, bob in rooms 2 and 5:
    the ring sees that (claims for a player make it the owner), and
    each pair ends on one sim."""
    ring, sims = _fabric(tmp_path, sims=2)
    with running(ring, sims):
        leader, _ = wait_leader(ring)
        member = next(m for m in ring if m.name == leader)
        for player in ("ada", "bob"):
            with member.client() as client:
                client.call("player.register", player=player)
        owners = {"/p/room001/e003": "ada", "/p/room006/e010": "ada",
                  "/p/room002/e000": "bob", "/p/room005/e024": "bob"}
        paths = _import(sims[0], 8, 25, prefix="/p", owners=owners)
        wait_for(lambda: _all_balanced(ring, ["sim1", "sim2"], len(paths)),
                 timeout=60, what="both sims in the band")
        held = _authorities(ring, "/p/")
        rooms = defaultdict(set)
        for path, sim in held.items():
            rooms[path.split("/")[2]].add(sim)
        assert all(len(at) == 1 for at in rooms.values()), rooms  # rooms whole
        assert rooms["room001"] == rooms["room006"], rooms
        assert rooms["room002"] == rooms["room005"], rooms
        assert Counter(held.values()) == {"sim1": 100, "sim2": 100}
        assert any("players share" in m["reason"] for m in _moves(ring))


def test_a_skewed_room_moves_load_not_entity_counts(tmp_path):
    """20 rooms of 20 entities; one room's edited 100 times a second, the
    others not: 4.4 ms/s of modelled load for it against 0.4 ms/s for
    each other room (load.md section 4), so in the band its sim holds
    that room and 2 to 6 others, 60 to 140 entities, and the other sim
    260 to 340. Rooms settle for 2 s here, so the balancer corrects what
    it did before the edits began."""
    ring, sims = _fabric(tmp_path, sims=2, balance={"settle_ms": "2000"})
    with running(ring, sims):
        wait_leader(ring)
        paths = _import(sims[0], 20, 20, prefix="/s")
        hot = [p for p in paths if "/room000/" in p]
        editor = Editor(ring, sims, hot, rate=100)
        editor.start()
        try:
            def settled():
                if editor.count < 300 or not _all_balanced(ring, ["sim1", "sim2"], len(paths)):
                    return None
                held = _authorities(ring, "/s/")
                hot_sims = {held[p] for p in hot}
                return len(hot_sims) == 1 and held
            held = wait_for(settled, timeout=60, what="both sims in the band under the edits")
        finally:
            editor.stop.set()
            editor.join(timeout=30)
        counts = Counter(held.values())
        hot_sim = held[hot[0]]
        other = "sim2" if hot_sim == "sim1" else "sim1"
        assert 60 <= counts[hot_sim] <= 140 and 260 <= counts[other] <= 340, counts
        editor.check()


def test_a_sim_that_lies_in_its_report_moves_nothing_it_does_not_hold(tmp_path):
    """A registered sim may say anything of itself: here that it carries
    a billion entities of sim1's rooms at 1e300 updates a second, amid
    figures that are not numbers. The leader keeps serving, its sums stay
    finite, and the balancer moves nothing: the rooms it names are not
    the liar's to give. Nor may it decide a move itself."""
    ring, sims = _fabric(tmp_path, sims=1)
    with running(ring, sims):
        wait_leader(ring)
        paths = _import(sims[0], 10, 10, prefix="/l")
        keys = write_key_pair(tmp_path / "py", "py")
        lie = {"capacity": -5, "rest": [1], "groups": [
            {"group": "/l/room000", "entities": 1e12, "updates_per_s": 1e300},
            {"group": 7}, 5, {"group": "/l/room001", "entities": "many"}]}
        with ring[0].client(keys=keys) as py:
            py.call("sim.register", sim="py", token=admit(ring, "py"))
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                py.call("sim.heartbeat", sim="py", load=lie)
                time.sleep(0.25)
            with pytest.raises(ApiError) as error:
                py.call("balance.move", move="9.9", group="/l/room000", **{"from": "sim1"},
                        to="py", paths=[paths[0]], reason="mine")
            assert error.value.code == "unauthorized"
        view = _load(ring)["sims"]["py"]
        # Each figure counts as at most 1e9: 60 ms of modelled load per unit.
        assert view["balanced"] is False and 0 < view["load"] <= 2 * 60e3
        assert set(_authorities(ring).values()) == {"sim1"}
        assert not any(m["from"] == "py" or m["to"] == "py" for m in _moves(ring))


def test_a_sim_without_the_event_feed_takes_what_the_balancer_gives_it(tmp_path):
    """Sims configured as the README shows (no `events` per member): no
    grant reaches them as an event. The target learns of a move from its
    heartbeat's taken_index, takes the entities with the former
    authority's final state, and the former authority is fenced."""
    import re
    ring, sims = _fabric(tmp_path, sims=2)
    for sim in sims:
        text = re.sub(r'\n\s*events = "[^"]*"', "", sim.config.read_text())
        assert "events =" not in text
        sim.config.write_text(text)
    with running(ring, sims):
        wait_leader(ring)
        paths = _import(sims[0], 4, 10, prefix="/quiet")
        with sims[0].client() as game:
            for path in paths:
                game.call("entity.update", path=path, state=f"final {path}")
        wait_for(lambda: _all_balanced(ring, ["sim1", "sim2"], len(paths)), timeout=60,
                 what="both sims in the band, each holding what the ring says")
        held = _authorities(ring)
        moved = [p for p in paths if held[p] == "sim2"]
        assert moved
        with sims[1].client() as game2, sims[0].client() as game1:
            # Each learns of a move at its own next heartbeat.
            def taken():
                return all(game2.call("entity.get", path=path)["authority"]
                           and not game1.call("entity.get", path=path)["authority"]
                           for path in moved)
            wait_for(taken, timeout=10, what="sim2 holding what it was given, sim1 fenced")
            for path in moved:
                assert game2.call("entity.get", path=path)["state"] == f"final {path}"
            assert game2.call("counters")["counters"]["authority_adopted"] >= len(moved)


def test_a_move_is_read_by_its_sims_and_the_sims_watching_its_room(tmp_path):
    """A balancer's move is published on ring:move/FROM/TO/GROUP
    (homeserver-events.md): its two sims act on it, a sim holding replicas
    of the room reads it (they learn the new authority's grant from it),
    and any other sim tells it from its topic and head alone, unparsed.
    sim3 and sim4 drain, so every move goes from sim1 to sim2; sim3
    watches everything, sim4 another part of the world."""
    ring, sims = _fabric(tmp_path, sims=4)
    sims[3].section["watch"] = "/elsewhere/"  # "/", everything, by default
    sims[3].write_config()
    socket = None
    with running(ring, sims):
        wait_leader(ring)
        for name in ("sim3", "sim4"):
            drained = _fabricctl(ring[0], "drain", name)
            assert drained.returncode == 0, drained.stdout + drained.stderr
        socket = ring[0].subscribe("ring:move/")
        socket.setsockopt_string(zmq.SUBSCRIBE, "entity:/live/")
        with ring[0].client() as client:
            prove_live(client, socket)

        def read():
            counters = {}
            for sim in sims:
                with sim.client() as client:
                    counters[sim.name] = client.call("counters")["counters"]["ring_events_read"]
            return counters

        before = read()
        paths = _import(sims[0], 20, 10)
        wait_for(lambda: _all_balanced(ring, ["sim1", "sim2"], len(paths)), timeout=60,
                 what="sim1 and sim2 in the band")
        moves = []
        while socket.poll(500):
            topic, body = next_event(socket)
            if body["op"] == "balance.move":
                result = body["result"]
                assert topic == f"ring:move/{result['from']}/{result['to']}{result['group']}"
                assert (result["from"], result["to"]) == ("sim1", "sim2")
                moves.append(result)
        assert len(moves) >= 5, moves
        after = read()
        read_by = {name: after[name] - before[name] for name in after}
        # The parties, and the watcher, read every move; the other sim
        # none (what else it parses is a registration now and then).
        for name in ("sim1", "sim2", "sim3"):
            assert read_by[name] >= len(moves), (name, read_by, len(moves))
        assert read_by["sim4"] < len(moves) // 2, (read_by, len(moves))
    socket.close()
