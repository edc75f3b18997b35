"""Events: every applied change is published with its index and the index
of the change before it, the same chain on every member."""

import json
import re
import time

import zmq

from simfabric_testing import admit, wait_leader


def collect(socket, count, timeout=2.0):
    events = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        if socket.poll(100):
            topic, body = socket.recv_multipart()
            events.append((topic.decode(), json.loads(body)))
    return events


def wait_live(client, sockets, prefix):
    """Make every SUB socket of SOCKETS provably live, and empty.

    A SUB's subscription reaches the PUB asynchronously and events
    published before it did are lost, so silence on a socket proves
    nothing until an event has come through it. Creates entities under
    PREFIX until one reached every socket, then one more as a fence, and
    reads every socket up to the fence: nothing older is left in it."""
    deadline = time.monotonic() + 10
    live = [False] * len(sockets)
    number = 0
    while not all(live):
        assert time.monotonic() < deadline, f"subscriptions not live: {live}"
        client.call("entity.create", path=f"{prefix}warm{number}")
        number += 1
        for at, socket in enumerate(sockets):
            while socket.poll(20):
                socket.recv_multipart()
                live[at] = True
    fence = f"{prefix}fence"
    client.call("entity.create", path=fence)
    for socket in sockets:
        while True:
            left = deadline - time.monotonic()
            assert left > 0 and socket.poll(int(left * 1000)), "the fence event never came"
            topic, _ = socket.recv_multipart()
            if topic.decode() == f"entity:{fence}":
                break


def test_changes_are_published_in_a_chain_by_every_member(ring):
    leader, _ = wait_leader(ring)
    subscribers = [member.subscribe("entity:/ev/") for member in ring]
    with ring[0].client() as client:
        wait_live(client, subscribers, "/ev/")
        client.call("entity.create", path="/ev/a", rule="ask")
        client.call("entity.set_rule", path="/ev/a", rule="deny")
        client.call("entity.create", path="/other/b")  # another topic
        client.call("entity.delete", path="/ev/a")
    chains = []
    for socket in subscribers:
        events = collect(socket, 3)
        assert [topic for topic, _ in events] == ["entity:/ev/a"] * 3
        assert [body["op"] for _, body in events] == [
            "entity.create", "entity.set_rule", "entity.delete"]
        assert events[1][1]["result"]["rule"] == "deny"
        # Consecutive on this topic except where another topic came between.
        assert events[1][1]["prev"] == events[0][1]["index"]
        assert events[2][1]["prev"] > events[1][1]["index"]
        chains.append([(body["index"], body["prev"]) for _, body in events])
        socket.close()
    assert chains[0] == chains[1] == chains[2]


def test_refused_commands_are_not_published(ring):
    wait_leader(ring)
    socket = ring[1].subscribe("")
    with ring[1].client() as client:
        wait_live(client, [socket], "/r/")
        client.call("entity.create", path="/r/x")
        assert socket.poll(5000), "the create was not published"
        topic, _ = socket.recv_multipart()
        assert topic == b"entity:/r/x"
        reply = client.request("entity.create", path="/r/x")
        assert reply["error"]["code"] == "already_exists"
        # The point: nothing is published within a while (the refusal's
        # reply came after the ring decided, so a publication would be
        # on its way already).
        assert socket.poll(300) == 0
    socket.close()


def test_every_body_starts_with_its_head(ring):
    # Subscribers skip copies and kinds of change from the head alone,
    # so its order and spelling are part of the protocol.
    leader, _ = wait_leader(ring)
    socket = ring[2].subscribe("")
    with ring[0].client() as client:
        wait_live(client, [socket], "/head/")
        client.call("entity.create", path="/head/a", rule="ask")
        client.call("entity.set_rule", path="/head/a", rule="deny")
        client.call("player.register", player="head")
        client.call("entity.delete", path="/head/a")
    seen = []
    deadline = time.monotonic() + 3
    while len(seen) < 4 and time.monotonic() < deadline:
        if socket.poll(100):
            _, body = socket.recv_multipart()
            head = re.match(rb'\{"index":(\d+),"prev":(\d+),"op":"([a-z._]+)"', body)
            assert head, body[:80]
            event = json.loads(body)
            assert (int(head[1]), int(head[2]), head[3].decode()) == (
                event["index"], event["prev"], event["op"])
            seen.append(event["op"])
    assert [op for op in seen if op != "sim.heartbeat"] == [
        "entity.create", "entity.set_rule", "player.register", "entity.delete"]
    socket.close()


def test_requests_that_change_nothing_are_not_published(homeserver):
    # The current authority asking again, in either form, and a player
    # registering the key it has: answered, but nothing changed.
    # Issued before the subscription: its event is not one of this test's.
    token = admit(homeserver, "same")
    socket = homeserver.subscribe("")
    with homeserver.client() as client:
        # The subscription reaches the PUB asynchronously: change something
        # until an event arrives.
        deadline = time.monotonic() + 5
        number = 0
        while not socket.poll(20):
            client.call("entity.create", path=f"/warm/{number}")
            number += 1
            assert time.monotonic() < deadline
        client.call("sim.register", sim="same", token=token)
        client.call("player.register", player="same")
        client.call("entity.create", path="/same/a")
        first = client.call("authority.request", path="/same/a", sim="same")
        again = client.call("authority.request", path="/same/a", sim="same")
        assert again["epoch"] == first["epoch"] and "transfer" not in again
        batch = client.call("authority.request", sim="same", paths=["/same/a"])
        assert batch["grants"] == 1 and "transfer" not in batch["results"][0]
        client.call("player.register", player="same")
        marker = client.call("entity.create", path="/same/marker")
    events = []
    while not events or events[-1]["result"].get("path") != "/same/marker":
        assert socket.poll(2000), events
        _, body = socket.recv_multipart()
        event = json.loads(body)
        if not event["result"].get("path", "").startswith("/warm/"):
            events.append(event)
    assert [event["op"] for event in events] == [
        "sim.register", "player.register", "entity.create", "authority.request",
        "entity.create"]
    assert events[3]["index"] == first["index"]
    assert events[-1]["index"] == marker["index"]
    assert events[-1]["prev"] == first["index"]
    socket.close()
