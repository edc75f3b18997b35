"""Claims on a simulation server: one claim in flight per entity (a second
claim of it joins the first and gets the same answer), fencing through the
paths a sim always has (its heartbeat's read of the ring, not the optional
event feed), the state of an entity an administrator granted to a sim that
had not claimed it, and a claim storm checked from outside."""

import json
import os
import random
import re
import signal
import threading
import time

import pytest

from simfabric_testing import ApiError, NoReply, make_ring, make_sims, running

from simfabric_testing.wait import wait_for

HEARTBEAT_MS = 200


@pytest.fixture
def fabric(tmp_path):
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": HEARTBEAT_MS})
    with running(ring, sims):
        yield ring, sims


def _without_events(sim):
    """Rewrite SIM's config with the ring section as the README shows it:
    no `events` per member."""
    sim.write_config()
    text = re.sub(r'\n\s*events = "[^"]*"', "", sim.config.read_text())
    assert "events =" not in text
    sim.config.write_text(text)


@pytest.fixture
def quiet_fabric(tmp_path):
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": HEARTBEAT_MS})
    for sim in sims:
        _without_events(sim)
    with running(ring, sims):
        yield ring, sims


def _replies(client, ids, timeout=10):
    """The replies to the requests IDS sent raw on CLIENT, by id."""
    replies = {}
    deadline = time.monotonic() + timeout
    while len(replies) < len(ids):
        reply = json.loads(client.recv_raw(max(0.1, deadline - time.monotonic()))[-1])
        if reply.get("id") in ids:
            replies[reply["id"]] = reply
    return replies


@pytest.mark.parametrize("one_turn", [True, False])
def test_two_claims_of_one_entity_on_one_connection_get_one_answer(fabric, one_turn):
    ring, (sim1, sim2) = fabric
    path = "/w/twice"
    with sim1.client() as game1, sim2.client(timeout=10) as game2:
        game1.call("entity.create", path=path, state="v1")
        game1.call("entity.update", path=path, state="final from sim1")
        wait_for(lambda: game2.request("entity.get", path=path).get("state")
                 == "final from sim1", what="the replica on sim2")
        if one_turn:
            # Stopped while both arrive, sim2 reads them in one turn.
            os.kill(sim2.process.pid, signal.SIGSTOP)
        try:
            for request_id in (1, 2):
                game2.send_raw(json.dumps({"op": "entity.claim", "id": request_id,
                                           "path": path}).encode())
        finally:
            if one_turn:
                os.kill(sim2.process.pid, signal.SIGCONT)
        first, second = _replies(game2, {1, 2}).values()
        assert first["ok"] and second["ok"], (first, second)
        keys = ("epoch", "seq", "state", "from", "previous")
        assert {k: first[k] for k in keys} == {k: second[k] for k in keys}
        assert (first["epoch"], first["seq"], first["state"], first["from"]) == \
            (2, 1, "final from sim1", "handoff")
        # An edit after the claim: sim1's replica follows it, and equals the
        # authority's state.
        edited = game2.call("entity.update", path=path, state="sim2 now")
        assert (edited["epoch"], edited["seq"]) == (2, 2)

        def same_on_sim1():
            entity = game1.call("entity.get", path=path)
            return (entity["authority"], entity["epoch"], entity["seq"],
                    entity["state"]) == (False, 2, 2, "sim2 now")

        wait_for(same_on_sim1, what="sim1's replica to equal the authority's state")
        assert game2.call("entity.get", path=path)["state"] == "sim2 now"


def test_a_sim_without_events_is_fenced_within_a_heartbeat(quiet_fabric):
    """The README's ring section has no `events`: a sim configured so still
    learns it lost an entity from its heartbeat's read of the ring, within
    one heartbeat and one round trip, and hands the final state over."""
    ring, (sim1, sim2) = quiet_fabric
    path = "/w/quiet"
    with sim1.client() as game1, sim2.client(timeout=10) as game2:
        game1.call("entity.create", path=path, state="v1")
        game1.call("entity.update", path=path, state="final from sim1")
        claimed = game2.call("entity.claim", path=path)
        granted_at = time.monotonic()
        assert (claimed["from"], claimed["previous"], claimed["state"], claimed["epoch"]) \
            == ("handoff", "sim1", "final from sim1", 2)
        # The bound (sim-api.md): a heartbeat and the read's round trip;
        # the claim's reply came after sim1 had learned it (it waited for
        # sim1's HANDOFF), so sim1 is fenced by now already.
        entity = game1.call("entity.get", path=path)
        assert (entity["authority"], entity["epoch"]) == (False, 2)
        with pytest.raises(ApiError) as refused:
            game1.call("entity.update", path=path, state="late")
        assert refused.value.code == "denied"
        assert claimed["elapsed_us"] < 2_000_000
        assert time.monotonic() - granted_at < 2.0


def test_a_sim_without_events_loses_what_an_administrator_moved(quiet_fabric):
    ring, (sim1, sim2) = quiet_fabric
    path = "/w/moved"
    with sim1.client() as game1:
        game1.call("entity.create", path=path, state="v1")
        with ring[0].client(keys=ring[0].admin) as operator:
            operator.call("authority.release", path=path, sim="sim1", checkpoint="v1")
        started = time.monotonic()

        def lost():
            return game1.call("entity.get", path=path)["authority"] is False

        wait_for(lost, timeout=HEARTBEAT_MS / 1000 * 2 + 1, what="sim1 to lose it")
        assert time.monotonic() - started < HEARTBEAT_MS / 1000 * 2 + 1
        with pytest.raises(ApiError) as refused:
            game1.call("entity.update", path=path, state="v2")
        assert refused.value.code == "denied"


def _heartbeats(ring, sim, count):
    """Wait until the ring has COUNT more heartbeats of SIM than now."""
    with ring[0].client() as client:
        def last():
            sims = client.call("sim.list")["sims"]
            return next(s["heartbeat_ms"] for s in sims if s["sim"] == sim.name)
        start = last()
        wait_for(lambda: last() >= start + count * HEARTBEAT_MS,
                 timeout=count * HEARTBEAT_MS / 1000 * 4 + 5,
                 what=f"{count} heartbeats of {sim.name}")


def test_a_sim_reads_what_it_holds_only_when_the_ring_took_something(quiet_fabric):
    """The steady state of fencing without events is O(1): the heartbeat's
    reply carries the raft index of the last change that took an entity
    from the sim (`taken_index`), and the sim pages through what the ring
    says it holds only when that index moved. Fencing still happens
    within the bound (a heartbeat and three round trips)."""
    ring, (sim1, sim2) = quiet_fabric
    held = 1500  # two pages of entity.list
    with sim1.client(timeout=10) as game1, sim2.client(timeout=10) as game2:
        for first in range(0, held, 1000):
            game1.call("entity.import", entities=[
                {"path": f"/many/e{n:05d}", "state": f"s{n}"}
                for n in range(first, min(held, first + 1000))])
        game1.call("entity.update", path="/many/e00007", state="final from sim1")
        _heartbeats(ring, sim1, 3)
        before = game1.call("counters")["counters"]
        _heartbeats(ring, sim1, 5)
        after = game1.call("counters")["counters"]
        assert after["authority_checks"] == before["authority_checks"], (before, after)
        assert after["authority_check_pages"] == before["authority_check_pages"]
        # The ring takes one entity from sim1 (sim2 claims it): sim1 learns
        # from its next heartbeat's reply, reads its two pages once, and
        # hands the final state over.
        claimed = game2.call("entity.claim", path="/many/e00007")
        assert (claimed["from"], claimed["previous"], claimed["state"]) == \
            ("handoff", "sim1", "final from sim1")
        assert claimed["elapsed_us"] < 2_000_000
        with ring[0].client(keys=ring[0].admin) as operator:
            beat = operator.call("sim.heartbeat", sim="sim1")
        assert beat["taken_index"] == claimed["transfer"]
        entity = game1.call("entity.get", path="/many/e00007")
        assert (entity["authority"], entity["epoch"]) == (False, 2)
        checked = game1.call("counters")["counters"]
        assert checked["authority_checks"] == after["authority_checks"] + 1
        assert checked["authority_check_pages"] == after["authority_check_pages"] + 2
        _heartbeats(ring, sim1, 5)
        idle = game1.call("counters")["counters"]
        assert idle["authority_checks"] == checked["authority_checks"]


def test_a_sim_that_saw_every_change_as_an_event_reads_nothing(fabric):
    """With the event feed followed without a gap, the change that took
    an entity from the sim fenced it as it came: the heartbeat's
    taken_index then costs no read of what the sim holds."""
    ring, (sim1, sim2) = fabric
    with sim1.client(timeout=10) as game1, sim2.client(timeout=10) as game2:
        game1.call("entity.import", entities=[
            {"path": f"/seen/e{n:04d}", "state": "0"} for n in range(1000)])
        _heartbeats(ring, sim1, 3)
        before = game1.call("counters")["counters"]
        claimed = game2.call("entity.claim", path="/seen/e0007")
        assert claimed["previous"] == "sim1"
        _heartbeats(ring, sim1, 3)
        after = game1.call("counters")["counters"]
        assert (game1.call("entity.get", path="/seen/e0007")["authority"]) is False
        # An update sent to the former authority is denied, naming the
        # new one, so a client goes there next.
        with pytest.raises(ApiError) as denied:
            game1.call("entity.update", path="/seen/e0007", state="late")
        assert denied.value.code == "denied"
        assert denied.value.reply["error"]["authority"] == "sim2"
    assert after["authority_checks"] == before["authority_checks"], (before, after)
    assert after["authority_check_pages"] == before["authority_check_pages"]
    assert after["authority_checks_seen"] > before["authority_checks_seen"]


def test_an_entity_granted_by_an_administrator_keeps_its_state(fabric):
    """An administrator grants sim1's entity to sim2, which did not claim
    it: sim2 takes it with sim1's final state, and when sim1 (its master)
    claims it back, that state comes back by handoff."""
    ring, (sim1, sim2) = fabric
    path = "/w/granted"
    with sim1.client(timeout=10) as game1, sim2.client() as game2:
        game1.call("entity.create", path=path, state="v1")
        game1.call("entity.update", path=path, state="kept")
        with ring[0].client(keys=ring[0].admin) as operator:
            granted = operator.call("authority.request", path=path, sim="sim2")
        assert granted["epoch"] == 2

        def held_by_sim2():
            entity = game2.call("entity.get", path=path)
            return (entity["authority"], entity["epoch"], entity["state"]) == \
                (True, 2, "kept")

        wait_for(held_by_sim2, what="sim2 to take the granted entity")
        game2.call("entity.update", path=path, state="edited on sim2")
        back = game1.call("entity.claim", path=path)
        assert (back["from"], back["previous"], back["epoch"], back["state"]) == \
            ("handoff", "sim2", 3, "edited on sim2")


def test_a_claim_storm_keeps_one_authority_and_every_acknowledged_edit(tmp_path):
    """Claimers on several sims claim and edit a set of entities for a few
    seconds. Checked from outside: never two sims believing they hold one
    entity at one epoch, every claim answered, and every claim that takes
    an entity over starts from the last edit acknowledged before it."""
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 3, extra={"heartbeat": HEARTBEAT_MS})
    paths = [f"/storm/e{at}" for at in range(12)]
    claimers, seconds = 6, 8.0
    with running(ring, sims):
        with sims[0].client() as game:
            for path in paths:
                game.call("entity.create", path=path, state=f"{path}@1.1")
        #  Per path, what clients were told: (epoch, seq) -> state.
        told = {path: {(1, 1): f"{path}@1.1"} for path in paths}
        claims = {path: [] for path in paths}  # (epoch, state, from)
        problems, lock = [], threading.Lock()
        stop = threading.Event()

        def claimer(number):
            rng = random.Random(number)
            clients = [sim.client(timeout=10) for sim in sims]
            try:
                while not stop.is_set():
                    path = rng.choice(paths)
                    client = rng.choice(clients)
                    try:
                        reply = client.request("entity.claim", path=path)
                    except NoReply:
                        with lock:
                            problems.append(f"claim of {path} unanswered")
                        continue
                    if not reply.get("ok"):
                        continue
                    with lock:
                        told[path][(reply["epoch"], reply["seq"])] = reply["state"]
                        claims[path].append((reply["epoch"], reply["state"], reply["from"]))
                    for _ in range(rng.randint(0, 3)):
                        epoch = reply["epoch"]
                        state = f"{path}@{epoch}.{number}.{rng.random():.6f}"
                        edited = client.request("entity.update", path=path, state=state)
                        if not edited.get("ok"):
                            break
                        with lock:
                            key = (edited["epoch"], edited["seq"])
                            if key in told[path] and told[path][key] != state:
                                problems.append(f"{path} {key} acknowledged twice")
                            told[path][key] = state
            finally:
                for client in clients:
                    client.close()

        def sampler():
            clients = [sim.client(timeout=5) for sim in sims]
            try:
                while not stop.is_set():
                    holders = {}
                    for sim, client in zip(sims, clients):
                        page = client.call("entity.list", prefix="/storm/", limit=100)
                        for entity in page["entities"]:
                            if entity["authority"]:
                                key = (entity["path"], entity["epoch"])
                                holders.setdefault(key, []).append(sim.name)
                    for key, names in holders.items():
                        if len(names) > 1:
                            with lock:
                                problems.append(f"{key} held by {names}")
            finally:
                for client in clients:
                    client.close()

        threads = [threading.Thread(target=claimer, args=(n,)) for n in range(claimers)]
        threads.append(threading.Thread(target=sampler))
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not problems, problems[:10]
        # Every take-over starts from the last state told at an older epoch.
        lost = []
        for path in paths:
            for epoch, state, source in claims[path]:
                if source == "self":
                    continue
                older = [key for key in told[path] if key[0] < epoch]
                last = told[path][max(older)]
                if state != last:
                    lost.append((path, epoch, source, state, last))
        assert not lost, lost[:5]
        taken = sum(1 for path in paths for c in claims[path] if c[2] != "self")
        assert taken >= len(paths)


def test_the_ring_lists_the_entities_of_one_authority(fabric):
    """The read a sim makes every heartbeat: entity.list with `authority`."""
    ring, (sim1, sim2) = fabric
    with sim1.client() as game1, sim2.client() as game2:
        game1.call("entity.create", path="/l/a", state="1")
        game2.call("entity.create", path="/l/b", state="2")
        game1.call("entity.create", path="/l/c", state="3")
    with ring[0].client() as client:
        listed = client.call("entity.list", prefix="/l/", authority="sim1")
        assert [e["path"] for e in listed["entities"]] == ["/l/a", "/l/c"]
        page = client.call("entity.list", prefix="/l/", authority="sim1", limit=1)
        assert [e["path"] for e in page["entities"]] == ["/l/a"] and page["next"] == "/l/a"
        with pytest.raises(ApiError) as bad:
            client.call("entity.list", authority="not a name!")
        assert bad.value.code == "invalid_argument"
