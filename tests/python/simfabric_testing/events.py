"""A homeserver's events (protocol/homeserver-events.md) as a test reads
them, from a SUB socket (Daemon.subscribe)."""

import json
import time


def next_event(socket, timeout: float = 10) -> tuple[str, dict]:
    """The next event SOCKET receives: (topic, body)."""
    assert socket.poll(int(timeout * 1000)), "no event came"
    topic, body = socket.recv_multipart()
    return topic.decode(), json.loads(body)


def prove_live(client, socket) -> dict:
    """Write through CLIENT until an event reaches SOCKET (a SUB's
    subscription reaches the publisher asynchronously), then a fence, and
    read up to it. Returns the fence's reply (its "index")."""
    deadline = time.monotonic() + 10
    number = 0
    while not socket.poll(20):
        assert time.monotonic() < deadline, "subscription not live"
        client.call("entity.create", path=f"/live/{number}")
        number += 1
    fence = client.call("entity.create", path="/live/fence")
    while next_event(socket)[0] != "entity:/live/fence":
        pass
    return fence
