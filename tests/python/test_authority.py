"""Authority over an entity in the ring (homeserver-api.md, authority.*):
the rules, the master's override, epochs that only grow, release to an
orphan. Real ring, real keys; the sims here are principals registered with
the ring (the simulation servers' side of a transfer comes later)."""

import itertools
import time

import pytest

from simfabric_testing import ApiError, NoReply, admit, call_any, wait_leader, write_key_pair
from simfabric_testing.keys import read_key_pair


@pytest.fixture
def world(ring, tmp_path):
    """A leader client per principal: two sims, a player, the master."""
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    keys = {name: write_key_pair(tmp_path / "keys", name)
            for name in ("simA", "simB", "ada", "master")}
    clients = {name: leader.client(keys=pair) for name, pair in keys.items()}
    clients["admin"] = leader.client(keys=read_key_pair(ring[0].admin.secret_path))
    clients["simA"].call("sim.register", sim="simA", token=admit(ring, "simA"))
    clients["simB"].call("sim.register", sim="simB", token=admit(ring, "simB"))
    clients["ada"].call("player.register", player="ada")
    yield clients, keys
    for client in clients.values():
        client.close()


def test_allow_grants_at_once_with_the_next_epoch(world):
    clients, _ = world
    created = clients["master"].call("entity.create", path="/w/a", authority="simA")
    assert created["epoch"] == 1
    granted = clients["simB"].call("authority.request", path="/w/a", sim="simB")
    assert (granted["authority"], granted["epoch"], granted["granted"]) == ("simB", 2, True)
    assert granted["previous"] == "simA"
    back = clients["simA"].call("authority.request", path="/w/a", sim="simA", player="ada")
    assert (back["authority"], back["epoch"], back["owner"]) == ("simA", 3, "ada")
    # The authority asking again changes nothing: no new epoch.
    again = clients["simA"].call("authority.request", path="/w/a", sim="simA")
    assert again["epoch"] == 3
    read = clients["simB"].call("entity.get", path="/w/a")
    assert (read["authority"], read["epoch"]) == ("simA", 3)


def test_deny_refuses_everyone_but_the_master(world):
    clients, keys = world
    clients["master"].call("entity.create", path="/w/d", rule="deny", authority="simA")
    with pytest.raises(ApiError) as refused:
        clients["simB"].call("authority.request", path="/w/d", sim="simB")
    assert refused.value.code == "denied" and "only its master" in refused.value.message
    assert clients["simB"].call("entity.get", path="/w/d")["epoch"] == 1  # unchanged
    # The master's request wins: a sim acting for a player whose key is the
    # entity's master.
    master_player = clients["master"]
    master_player.call("player.register", player="boss")
    won = clients["simB"].call("authority.request", path="/w/d", sim="simB", player="boss")
    assert (won["authority"], won["epoch"]) == ("simB", 2)
    # An administrator is always the master.
    won = clients["admin"].call("authority.request", path="/w/d", sim="simA")
    assert (won["authority"], won["epoch"]) == ("simA", 3)


def test_a_batch_decides_each_path_alone_in_one_transfer(world, ring):
    import json
    import time

    clients, _ = world
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    master = clients["master"]
    master.call("entity.create", path="/b/allow1", authority="simA")
    master.call("entity.create", path="/b/allow2")
    master.call("entity.create", path="/b/ask", rule="ask", authority="simA")
    master.call("entity.create", path="/b/deny", rule="deny", authority="simA")
    events = _subscribe_live(leader, master, "sim:simB")
    paths = ["/b/allow1", "/b/ask", "/b/deny", "/b/none", "/b/allow2"]
    with pytest.raises(ApiError) as other:
        clients["simA"].call("authority.request", sim="simB", paths=paths)
    assert other.value.code == "unauthorized"
    batch = clients["simB"].call("authority.request", sim="simB", paths=paths)
    assert batch["grants"] == 2 and batch["transfer"] >= 1
    items = {item["path"]: item for item in batch["results"]}
    assert [item["path"] for item in batch["results"]] == paths
    assert (items["/b/allow1"]["granted"], items["/b/allow1"]["epoch"],
            items["/b/allow1"]["previous"]) == (True, 2, "simA")
    assert (items["/b/allow2"]["granted"], items["/b/allow2"]["epoch"]) == (True, 1)
    assert items["/b/allow1"]["transfer"] == batch["transfer"]
    # A grant in brief, true to the entity it changed.
    # A grant in brief carries the ring's signed grant (grants.md section 3).
    assert set(items["/b/allow1"]) == {"path", "granted", "authority", "epoch",
                                       "previous", "transfer", "grant"}
    assert (items["/b/allow1"]["grant"]["epoch"], items["/b/allow1"]["grant"]["sim"]) == (2, "simB")
    read = clients["simB"].call("entity.get", path="/b/allow1")
    assert (read["authority"], read["epoch"]) == ("simB", 2)
    # The ask path is refused, not asked: nothing waits, simA keeps it.
    assert (items["/b/ask"]["error"], items["/b/ask"].get("ask")) == ("denied", True)
    assert (items["/b/deny"]["error"], items["/b/deny"].get("ask")) == ("denied", None)
    assert items["/b/none"]["error"] == "not_found"
    asked = clients["simB"].call("entity.get", path="/b/ask")
    assert (asked["authority"], asked["epoch"]) == ("simA", 1)
    # One event for the whole batch, on the requester's topic.
    assert events.poll(5000)
    topic, body = events.recv_multipart()
    event = json.loads(body)
    assert topic == b"sim:simB" and event["op"] == "authority.request"
    # The same results, each grant's statement unsigned (grants.md 3).
    signing = ("key_id", "leaves", "leaf", "proof", "signature")
    assert event["result"]["results"] == [
        dict(item, grant={k: v for k, v in item["grant"].items() if k not in signing})
        if isinstance(item.get("grant"), dict) else item
        for item in batch["results"]]


@pytest.mark.parametrize("args,message", [
    ({"paths": []}, "'paths' must be an array of 1..256"),
    ({"paths": "/b/x"}, "'paths' must be an array"),
    ({"paths": ["/b/x", 7]}, "paths[1]"),
    ({"paths": ["/b/x"], "path": "/b/x"}, "without 'path'"),
    ({"paths": ["/b/x"], "timeout_ms": 100}, "without 'path' and 'timeout_ms'"),
    ({"paths": ["/b/x"] * 257}, "1..256"),
])
def test_a_malformed_batch_is_refused_and_changes_nothing(world, args, message):
    clients, _ = world
    clients["master"].call("entity.create", path="/b/x", authority="simA")
    with pytest.raises(ApiError) as refused:
        clients["simB"].call("authority.request", sim="simB", **args)
    assert refused.value.code == "invalid_argument" and message in refused.value.message
    read = clients["simB"].call("entity.get", path="/b/x")
    assert (read["authority"], read["epoch"]) == ("simA", 1)


def test_only_the_master_changes_the_rule(world):
    clients, _ = world
    clients["master"].call("entity.create", path="/w/q", rule="allow", authority="simA")
    with pytest.raises(ApiError) as refused:
        clients["simB"].call("entity.set_rule", path="/w/q", rule="deny")
    assert refused.value.code == "unauthorized"
    assert clients["master"].call("entity.set_rule", path="/w/q", rule="ask")["rule"] == "ask"


_markers = itertools.count()


def _subscribe_live(member, client, topic):
    """A SUB socket on MEMBER's events for TOPIC, with the subscription in
    place. A subscription reaches the PUB asynchronously, and a topic that
    has no event yet cannot show it; so the socket also subscribes to a
    marker prefix, CLIENT creates marker entities until one arrives (the
    PUB applies a socket's subscriptions in order), then one more as a
    fence, read up to; the marker subscription is then dropped."""
    marker = f"/live{next(_markers)}/"
    socket = member.subscribe(topic)
    socket.subscribe(f"entity:{marker}")
    deadline = time.monotonic() + 10
    number = 0
    while not socket.poll(20):
        assert time.monotonic() < deadline, f"no event on a subscription to {topic}"
        client.call("entity.create", path=f"{marker}{number}")
        number += 1
    client.call("entity.create", path=f"{marker}fence")
    while True:
        left = deadline - time.monotonic()
        assert left > 0 and socket.poll(int(left * 1000)), "the fence event never came"
        if socket.recv_multipart()[0] == f"entity:{marker}fence".encode():
            break
    socket.unsubscribe(f"entity:{marker}")
    return socket


def _ask(leader, keys, sim, path, **extra):
    """Start authority.request for SIM on a thread of its own; returns the
    thread and the dict its reply lands in."""
    import threading

    landed = {}

    def run():
        with leader.client(keys=keys[sim], timeout=15) as own:
            landed["reply"] = own.request("authority.request", path=path, sim=sim, **extra)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, landed


def _pending_transfer(events) -> int:
    import json

    while True:
        assert events.poll(5000), "no pending transfer announced"
        _, body = events.recv_multipart()
        event = json.loads(body)
        if event["op"] == "authority.request" and event["result"].get("pending"):
            return event["result"]["transfer"]


def test_ask_waits_for_the_authority_to_approve_or_deny(world, ring):
    import time

    clients, keys = world
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    clients["master"].call("entity.create", path="/w/ask", rule="ask", authority="simA")
    events = _subscribe_live(leader, clients["master"], "entity:/w/ask")

    # simB asks; simA, the authority, learns of it from the ring and approves.
    thread, landed = _ask(leader, keys, "simB", "/w/ask")
    transfer = _pending_transfer(events)
    assert "reply" not in landed  # still waiting for the answer
    with pytest.raises(ApiError) as wrong:
        clients["simB"].call("authority.answer", transfer=transfer, sim="simB", approve=True)
    assert wrong.value.code == "unauthorized"
    answered = clients["simA"].call("authority.answer", transfer=transfer, sim="simA",
                                    approve=True)
    assert answered["granted"] is True and answered["authority"] == "simB"
    thread.join(10)
    reply = landed["reply"]
    assert reply["ok"] is True
    assert (reply["authority"], reply["epoch"], reply["previous"]) == ("simB", 2, "simA")

    # simA asks back; simB, the authority now, denies.
    thread, landed = _ask(leader, keys, "simA", "/w/ask")
    transfer = _pending_transfer(events)
    clients["simB"].call("authority.answer", transfer=transfer, sim="simB", approve=False)
    thread.join(10)
    assert landed["reply"]["error"]["code"] == "denied"
    assert "denied" in landed["reply"]["error"]["message"]
    # Nobody answers: denied when the deadline passes.
    begun = time.monotonic()
    thread, landed = _ask(leader, keys, "simA", "/w/ask", timeout_ms=500)
    thread.join(10)
    assert landed["reply"]["error"]["code"] == "denied"
    assert "in time" in landed["reply"]["error"]["message"]
    assert 0.4 < time.monotonic() - begun < 5
    after = clients["simA"].call("entity.get", path="/w/ask")
    assert (after["authority"], after["epoch"]) == ("simB", 2)
    # An answer to a transfer that is gone is refused.
    with pytest.raises(ApiError) as gone:
        clients["simB"].call("authority.answer", transfer=transfer, sim="simB", approve=True)
    assert gone.value.code == "not_found"
    events.close()


def test_a_sim_acts_only_for_itself_and_bad_requests_change_nothing(world):
    clients, _ = world
    clients["master"].call("entity.create", path="/w/s", authority="simA")
    cases = [
        ("simB", {"path": "/w/s", "sim": "simA"}, "unauthorized"),
        ("simB", {"path": "/w/none", "sim": "simB"}, "not_found"),
        ("simB", {"path": "/w/s", "sim": "nosuchsim"}, "not_found"),
        ("simB", {"path": "/w/s", "sim": "simB", "player": "nobody"}, "not_found"),
        ("simB", {"path": "w/s", "sim": "simB"}, "invalid_argument"),
        ("simB", {"path": "/w/s", "sim": "simB", "extra": 1}, "invalid_argument"),
    ]
    for who, args, code in cases:
        reply = clients[who].request("authority.request", **args)
        assert reply["ok"] is False and reply["error"]["code"] == code, (args, reply)
    after = clients["simA"].call("entity.get", path="/w/s")
    assert (after["authority"], after["epoch"]) == ("simA", 1)


def test_release_orphans_with_the_final_checkpoint_and_the_next_grant_fences(world):
    clients, _ = world
    clients["master"].call("entity.create", path="/w/r", authority="simA")
    with pytest.raises(ApiError) as not_holder:
        clients["simB"].call("authority.release", path="/w/r", sim="simB")
    assert not_holder.value.code == "conflict"
    released = clients["simA"].call("authority.release", path="/w/r", sim="simA",
                                    checkpoint='{"x": 7}')
    assert (released["authority"], released["epoch"]) == (None, 1)
    assert released["checkpoint"] == '{"x": 7}'
    taken = clients["simB"].call("authority.request", path="/w/r", sim="simB")
    assert (taken["authority"], taken["epoch"], taken["previous"]) == ("simB", 2, None)
    assert taken["checkpoint"] == '{"x": 7}'  # the new authority starts from it


def test_concurrent_requests_never_share_an_epoch(world, ring):
    import threading

    clients, keys = world
    clients["master"].call("entity.create", path="/w/race", authority="simA")
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    results, errors = [], []

    def requester(sim):
        # One connection per thread: sockets are not shared across threads.
        with leader.client(keys=keys[sim]) as own:
            for _ in range(15):
                try:
                    reply = own.call("authority.request", path="/w/race", sim=sim)
                    results.append((reply["epoch"], reply["authority"]))
                except Exception as error:  # noqa: BLE001 - reported below
                    errors.append(error)

    threads = [threading.Thread(target=requester, args=(sim,)) for sim in ("simA", "simB")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(results) == 30
    # Exactly one authority per epoch, whatever the interleaving.
    holders = {}
    for epoch, authority in results:
        holders.setdefault(epoch, set()).add(authority)
    assert all(len(names) == 1 for names in holders.values()), holders
    final = clients["simB"].call("entity.get", path="/w/race")
    assert final["epoch"] == max(holders)
    assert holders[final["epoch"]] == {final["authority"]}


# The raft heartbeat sets how often an idle leader's loop wakes, which the
# leader's pause detection must not mistake for pauses (a slow one here).
@pytest.mark.parametrize("election_timeout,heartbeat", [(300, 50), (2000, 400)])
def test_a_silent_sim_is_declared_dead_and_its_entities_orphaned(tmp_path, election_timeout,
                                                                   heartbeat):
    import time

    from simfabric_testing import make_ring

    ring = make_ring(tmp_path, 3, extra={"election_timeout": election_timeout,
                                         "heartbeat": heartbeat, "sim_lease": 1000})
    try:
        for member in ring:
            member.start()
        leader_name, _ = wait_leader(ring)
        leader = next(m for m in ring if m.name == leader_name)
        keys = {name: write_key_pair(tmp_path / "keys", name)
                for name in ("silent", "alive", "heir", "master")}
        clients = {name: leader.client(keys=pair) for name, pair in keys.items()}
        for name in ("silent", "alive", "heir"):
            clients[name].call("sim.register", sim=name, token=admit(ring, name))
        clients["master"].call("entity.create", path="/o/silent", authority="silent",
                               checkpoint="last words")
        clients["master"].call("entity.create", path="/o/alive", authority="alive")
        events = _subscribe_live(leader, clients["master"], "sim:silent")
        deadline = time.monotonic() + 10
        while True:
            clients["alive"].call("sim.heartbeat", sim="alive")
            clients["heir"].call("sim.heartbeat", sim="heir")
            silent = clients["heir"].call("entity.get", path="/o/silent")
            if silent["authority"] is None:
                break
            assert time.monotonic() < deadline, silent
            time.sleep(0.5)  # paces the rounds: leaves the leader idle between them
        # The one that kept beating keeps its entity.
        assert clients["heir"].call("entity.get", path="/o/alive")["authority"] == "alive"
        # The change was announced, with how many entities it orphaned.
        assert events.poll(5000)
        topic, body = events.recv_multipart()
        import json
        announced = json.loads(body)
        assert topic == b"sim:silent" and announced["op"] == "sim.expire"
        assert announced["result"]["orphaned"] == 1
        events.close()
        # An orphan is claimable under its rule, from its last checkpoint.
        taken = clients["heir"].call("authority.request", path="/o/silent", sim="heir")
        assert (taken["authority"], taken["epoch"]) == ("heir", 2)
        assert taken["checkpoint"] == "last words"
        # A client cannot expire a sim itself.
        refused = clients["heir"].request("sim.expire", sim="alive", lease_ms=1)
        assert refused["error"]["code"] == "unauthorized"
        for client in clients.values():
            client.close()
    finally:
        codes = {member.name: member.stop() for member in ring}
    assert set(codes.values()) == {0}, codes


@pytest.mark.parametrize("paused", ["followers", "all"])
def test_silence_while_the_ring_could_not_hear_is_not_a_missed_lease(tmp_path, paused):
    """A sim that beats whenever the ring can take it keeps its entities
    when the ring had no leader (followers stopped) or stood still itself
    (every member stopped) for longer than the lease."""
    import os
    import signal
    import threading
    import time

    from simfabric_testing import make_ring

    ring = make_ring(tmp_path, 3, extra={"election_timeout": 300, "heartbeat": 50,
                                         "sim_lease": 1000})
    stop = threading.Event()
    try:
        for member in ring:
            member.start()
        leader_name, _ = wait_leader(ring)
        leader = next(m for m in ring if m.name == leader_name)
        keys = write_key_pair(tmp_path / "keys", "patient")
        with leader.client(keys=keys) as client:
            client.call("sim.register", sim="patient", token=admit(ring, "patient"))
        with leader.client() as admin:
            admin.call("entity.create", path="/o/patient", authority="patient")

        beats = []

        def beat():
            # Every 200 ms, through whichever member takes it.
            while not stop.is_set():
                for member in ring:
                    with member.client(keys=keys, timeout=0.3) as client:
                        try:
                            if client.request("sim.heartbeat", sim="patient").get("ok"):
                                beats.append(time.monotonic())
                                break
                        except NoReply:
                            pass
                stop.wait(0.2)

        beater = threading.Thread(target=beat)
        beater.start()
        # The sim is beating steadily before the pause.
        until = time.monotonic() + 10
        while len(beats) < 3:
            assert time.monotonic() < until, beats
            stop.wait(0.05)
        stopped = [m for m in ring if paused == "all" or m.name != leader_name]
        for member in stopped:
            os.kill(member.process.pid, signal.SIGSTOP)
        time.sleep(2.5)  # the point: a pause of more than twice the lease
        for member in stopped:
            os.kill(member.process.pid, signal.SIGCONT)
        wait_leader(ring)
        # The point: nothing may happen within two lease checks of
        # whichever member leads.
        time.sleep(2.0)
        held = call_any(ring, "entity.get", time.monotonic() + 10, path="/o/patient")
        assert held["authority"] == "patient", held
        assert not any("sim patient missed its heartbeats" in m.log() for m in ring)
    finally:
        stop.set()
        codes = {member.name: member.stop() for member in ring}
    assert set(codes.values()) == {0}, codes
