"""Two instances on two hosts (network namespaces on one bridge), each a
homeserver and a sim: the link between them is cut (nftables) while a
claim across them waits at the home, and healed only after the
requester's sim has given up asking (protocol/federation.md section 6).

The home decided the claim during the cut; neither the reply nor the
former authority's HANDOFF got through. Checked from outside once the
link is back: the requesting ring learned the outcome from the home
(fed.withdraw) and told its sim through its feed; the entity has exactly
one authority, the one the home recorded, holding the former
authority's final state; both instances' feeds show the transfer.
"""

import json
import subprocess
import time
import types

import pytest

from simfabric_testing import (binary, make_ring, netns, wait_for, wait_leader,
                               wait_registered)
from simfabric_testing.federation import claim_in_background, federate, next_event
from simfabric_testing.relay import TcpRelay

pytestmark = pytest.mark.skipif(not netns.available(), reason="needs root and iproute2")


@pytest.fixture
def hosts():
    hosts = netns.Hosts(2, prefix="sff")
    yield hosts
    hosts.close()


def _place(daemon, address):
    """Bind every endpoint of DAEMON on ADDRESS rather than loopback."""
    for attribute in ("endpoint", "raft_endpoint", "events_endpoint", "state_endpoint",
                      "handoff_endpoint", "federation_endpoint"):
        value = getattr(daemon, attribute, None)
        if value:
            setattr(daemon, attribute, value.replace("127.0.0.1", address))
    for key, value in daemon.section.items():
        if isinstance(value, str) and "127.0.0.1" in value:
            daemon.section[key] = value.replace("127.0.0.1", address)


def _cut_between(hosts, index, other):
    """Drop everything between host INDEX and host OTHER, at INDEX."""
    peer = hosts.address(other)
    rules = ("table inet sffcut {\n"
             "  chain input { type filter hook input priority 0;\n"
             f"    ip saddr {peer} drop\n  }}\n"
             "  chain output { type filter hook output priority 0;\n"
             f"    ip daddr {peer} drop\n  }}\n}}\n")
    subprocess.run(hosts.exec_prefix(index) + ["nft", "-f", "-"], input=rules, text=True,
                   check=True, capture_output=True)


def _heal_between(hosts, index):
    subprocess.run(hosts.exec_prefix(index) + ["nft", "delete", "table", "inet", "sffcut"],
                   check=True, capture_output=True)


def _feed_ops(socket, seconds=1.0):
    ops = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if socket.poll(100):
            topic, body = socket.recv_multipart()
            ops.append((topic.decode(), json.loads(body)["op"]))
    return ops


def test_a_claim_decided_while_the_instances_were_cut_off_is_finished(hosts, tmp_path):
    west = netns.NetnsDaemon(hosts, 0, "homeserver", "hs1", tmp_path / "west" / "hs1")
    east = netns.NetnsDaemon(hosts, 1, "homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    s1 = netns.NetnsDaemon(hosts, 0, "simserver", "s1", tmp_path / "west" / "s1",
                           extra={"ring_checkpoint": 200})
    b = netns.NetnsDaemon(hosts, 1, "simserver", "b", tmp_path / "east" / "b")
    s1.ring, b.ring = [west], [east]
    for index, daemon in ((0, west), (1, east), (0, s1), (1, b)):
        _place(daemon, hosts.address(index))
    daemons = [west, east, s1, b]
    try:
        for daemon in daemons:
            daemon.write_config()
            daemon.start()
        wait_registered([s1])
        wait_registered([b])
        west_feed, east_feed = west.subscribe(""), east.subscribe("")
        with s1.client(timeout=10) as game1:
            game1.call("subscribe", prefix="/fed/")
            game1.call("entity.create", path="/fed/k", state="v1", rule="ask")
            game1.call("entity.update", path="/fed/k", state="final from s1")
            thread, landed = claim_in_background(b, "/fed/k@west")
            ask = next_event(game1, "ask")
            _cut_between(hosts, 1, 0)
            assert game1.call("authority.answer", transfer=ask["transfer"],
                              approve=True)["granted"] is True
        # The requester cannot know: its sim is told so, and stops asking.
        thread.join(40)
        refused = landed["reply"]
        assert not refused["ok"] and refused["error"]["code"] == "timeout", refused
        assert "outcome unknown" in refused["error"]["message"]
        _heal_between(hosts, 1)

        def held():
            with b.client() as game_b:
                reply = game_b.request("entity.get", path="/fed/k@west")
            return reply.get("ok") and reply["authority"] is True and reply

        entity = wait_for(held, timeout=30, what="b to take the entity it was granted")
        assert (entity["epoch"], entity["state"]) == (2, "final from s1")
        with west.client() as client:
            home = client.call("entity.get", path="/fed/k")
        assert (home["authority"], home["epoch"]) == ("b@east", 2)
        with s1.client() as game1:
            fenced = game1.call("entity.get", path="/fed/k")
        assert (fenced["authority"], fenced["epoch"]) == (False, 2)
        # Both feeds show the transfer: the home's claim, the requester's
        # intent and outcome.
        west_ops = _feed_ops(west_feed, 0.5)
        east_ops = _feed_ops(east_feed, 0.5)
        assert ("entity:/fed/k", "fed.claim") in west_ops
        assert ("entity:/fed/k@west", "fed.intent") in east_ops
        assert ("entity:/fed/k@west", "fed.outcome") in east_ops
    finally:
        codes = {f"{d.name}@{d.folder.parent.name}": d.stop() for d in reversed(daemons)}
    assert set(codes.values()) == {0}, codes


def test_case_1_across_a_slow_link_under_each_rule(hosts, tmp_path):
    """The instances' homeservers 10 ms apart each way (a TCP relay on the
    bridge), the sims on their own hosts: a claim across them pays the
    link twice on its critical path (2 + 2H hops, H = 1 but 10 ms long),
    fabricctl trace counts 4 hops (3 + 2H at most), and the home applies
    each rule: allow and an approved ask arrive with their final state,
    deny is refused and changes nothing."""
    west = netns.NetnsDaemon(hosts, 0, "homeserver", "hs1", tmp_path / "west" / "hs1")
    east = netns.NetnsDaemon(hosts, 1, "homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    s1 = netns.NetnsDaemon(hosts, 0, "simserver", "s1", tmp_path / "west" / "s1")
    b = netns.NetnsDaemon(hosts, 1, "simserver", "b", tmp_path / "east" / "b")
    s1.ring, b.ring = [west], [east]
    for index, daemon in ((0, west), (1, east), (0, s1), (1, b)):
        _place(daemon, hosts.address(index))
    root = f"10.77.{hosts.net}.254"
    relays = {}
    for daemon in (west, east):
        host, port = daemon.federation_endpoint.rsplit("/", 1)[1].rsplit(":", 1)
        relays[daemon] = TcpRelay((root, 0), (host, int(port)), delay_ms=10)
    for daemon, other, name in ((west, east, "east"), (east, west, "west")):
        daemon.peers = {name: [types.SimpleNamespace(
            name=other.name, keys=other.keys,
            federation_endpoint=f"tcp://{root}:{relays[other].address[1]}")]}
    daemons = [west, east, s1, b]
    try:
        for daemon in daemons:
            daemon.write_config()
            daemon.start()
        wait_registered([s1])
        wait_registered([b])
        with s1.client(timeout=10) as game1:
            game1.call("subscribe", prefix="/slow/")
            for name, rule in (("allowed", "allow"), ("asked", "ask"), ("denied", "deny")):
                game1.call("entity.create", path=f"/slow/{name}", state=f"{name} v1", rule=rule)
                game1.call("entity.update", path=f"/slow/{name}", state=f"{name} final")
        with b.client(timeout=15) as game_b:
            started = time.monotonic()
            allowed = game_b.call("entity.claim", path="/slow/allowed@west")
            took = time.monotonic() - started
        assert (allowed["epoch"], allowed["state"], allowed["from"]) == \
            (2, "allowed final", "handoff")
        assert took >= 0.020, took  # the link, there and back
        trace = [str(binary("fabricctl")), "trace", f"{allowed['transfer']}@west", "--json",
                 "--server", east.endpoint, "--server-key", str(east.keys.public_path),
                 "--peer-server", west.endpoint, "--peer-server-key",
                 str(west.keys.public_path)]

        def hops():
            done = subprocess.run(trace, capture_output=True, text=True, timeout=30)
            return done.returncode == 0 and json.loads(done.stdout)["hops"] >= 4 and \
                json.loads(done.stdout)

        analysis = wait_for(hops, timeout=5, what="the transfer's records")
        assert analysis["hops"] == 4 <= 3 + 2 * 1
        with s1.client(timeout=10) as game1:
            game1.call("subscribe", prefix="/slow/")
            thread, landed = claim_in_background(b, "/slow/asked@west", timeout=15)
            ask = next_event(game1, "ask")
            assert ask["to"] == "b@east"
            game1.call("authority.answer", transfer=ask["transfer"], approve=True)
            thread.join(20)
        asked = landed["reply"]
        assert asked["ok"] and (asked["epoch"], asked["state"]) == (2, "asked final"), asked
        with b.client(timeout=15) as game_b:
            denied = game_b.request("entity.claim", path="/slow/denied@west")
        assert denied["error"]["code"] == "denied", denied
        with west.client() as client:
            held = {name: client.call("entity.get", path=f"/slow/{name}")["authority"]
                    for name in ("allowed", "asked", "denied")}
        assert held == {"allowed": "b@east", "asked": "b@east", "denied": "s1"}
    finally:
        codes = {f"{d.name}@{d.folder.parent.name}": d.stop() for d in reversed(daemons)}
        for relay in relays.values():
            relay.close()
    assert set(codes.values()) == {0}, codes


def test_a_fence_lost_with_the_homes_leader_is_found_by_the_foreign_sim(hosts, tmp_path):
    """b (east) holds west's /fed/f; west gives it back to s1 while the
    instances are cut off, and west's leader, which would have told east
    (fed.fenced), dies before the link heals, its message with it. No
    one tells b any more: b's own check of its foreign entities, through
    east and west's new leader (fed.read), finds the newer epoch and b
    stops: one authority, the one west recorded."""
    # The home is a ring of three, all on host 0.
    west = make_ring(tmp_path / "west3", 3, daemon=lambda n, *a, **k: netns.NetnsDaemon(
        hosts, 0, *a, **k))
    east = netns.NetnsDaemon(hosts, 1, "homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": west, "east": [east]})
    s1 = netns.NetnsDaemon(hosts, 0, "simserver", "s1", tmp_path / "west" / "s1")
    b = netns.NetnsDaemon(hosts, 1, "simserver", "b", tmp_path / "east" / "b")
    s1.ring, b.ring = west, [east]
    for daemon in west + [s1]:
        _place(daemon, hosts.address(0))
    for daemon in (east, b):
        _place(daemon, hosts.address(1))
    daemons = west + [east, s1, b]
    try:
        for daemon in daemons:
            daemon.write_config()
            daemon.start()
        wait_leader(west)
        wait_registered([s1])
        wait_registered([b])
        with s1.client(timeout=10) as game1:
            game1.call("entity.create", path="/fed/f", state="v1")
        with b.client(timeout=15) as game_b:
            game_b.call("entity.claim", path="/fed/f@west")
            game_b.call("entity.update", path="/fed/f@west", state="b's")
        _cut_between(hosts, 1, 0)
        with s1.client(timeout=15) as game1:
            back = game1.call("entity.claim", path="/fed/f")
        assert (back["epoch"], back["authority"]) == (3, True)
        name, _ = wait_leader(west)
        next(m for m in west if m.name == name).kill()
        wait_leader(west, exclude=(name,))
        _heal_between(hosts, 1)

        def let_go():
            with b.client() as game_b:
                return game_b.call("entity.get", path="/fed/f@west")["authority"] is False

        wait_for(let_go, timeout=20, what="b to find it no longer holds /fed/f")
        with east.client() as client:
            seen = client.call("entity.get", path="/fed/f@west")
        assert (seen["path"], seen["authority"], seen["epoch"]) == ("/fed/f@west", "s1@west", 3)
    finally:
        codes = {f"{d.name}@{d.folder.parent.name}": d.stop() for d in reversed(daemons)}
    assert set(codes.values()) == {0}, codes
