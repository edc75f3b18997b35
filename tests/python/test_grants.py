"""Grants and admission, the ring's side (protocol/grants.md sections 2, 3
and 6): real homeservers, real sockets.

- A new sim name is admitted only by a join token issued by an
  administrator (one use, for that name, before it expires), unless the
  ring is configured open; a refused registration changes nothing.
- Every grant the ring hands out is signed with its current key,
  deterministically: two members, a restarted member, or a member caught
  up by snapshot answer the same bytes for the same (path, epoch), and
  they verify with the public key the ring lists.
- After ring.rotate_key the new key signs; the old one is listed with its
  retires_ms.
"""

import subprocess
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from zmq.utils import z85

from simfabric_testing import (Daemon, admit, binary, call_any, make_ring, running,
                               wait_for, wait_leader, write_key_pair)
from simfabric_testing import state as sd
from simfabric_testing.events import next_event, prove_live
from simfabric_testing.keys import read_key_pair

def verify(grant: dict, ring_keys: list) -> dict:
    """Check GRANT's proof and signature with the listed key it names
    (grants.md section 3); return that key's listing. Raises
    InvalidSignature if it does not verify."""
    (listed,) = [key for key in ring_keys if key["key_id"] == grant["key_id"]]
    public = Ed25519PublicKey.from_public_bytes(z85.decode(listed["public"]))
    body = sd.grant_body(grant["path"], grant["epoch"], grant["sim"], grant["key"],
                         grant["transfer"])
    root = sd.grant_root(body, grant["leaves"], grant["leaf"], z85.decode(grant["proof"]))
    public.verify(z85.decode(grant["signature"]),
                  sd.grant_signed_message(grant["key_id"], grant["leaves"], root))
    return listed


def admin_client(member, timeout=5.0):
    return member.client(keys=read_key_pair(member.admin.secret_path), timeout=timeout)


def sim_list(member):
    with member.client() as client:
        return client.call("sim.list")


def wait_ring_key(members, timeout=10.0):
    """The ring's keys once a leader has committed its first one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        keys = call_any(members, "sim.list", deadline)["ring_keys"]
        if keys:
            return keys
        time.sleep(0.05)
    raise AssertionError("the ring made no signing key")


# --------------------------------------------------------------------------
# Admission


def test_a_new_sim_without_a_token_is_refused_and_nothing_changes(homeserver):
    before = sim_list(homeserver)["sims"]
    with homeserver.client() as sim:
        reply = sim.request("sim.register", sim="stranger")
    assert reply["error"]["code"] == "unauthorized"
    assert "needs a join token" in reply["error"]["message"]
    assert sim_list(homeserver)["sims"] == before == []


def test_a_token_admits_its_sim_once(homeserver):
    token = admit(homeserver, "sim1")
    with homeserver.client() as sim, homeserver.client() as other:
        registered = sim.call("sim.register", sim="sim1", token=token)
        assert registered["sim"] == "sim1" and registered["key"] == sim.public_key.decode()
        # The same sim again needs no token; one given is ignored.
        sim.call("sim.register", sim="sim1", token=token)
        # The used token admits nobody else, under any name.
        again = other.request("sim.register", sim="sim2", token=token)
        assert again["error"]["code"] == "unauthorized"
        assert "is for another sim name" in again["error"]["message"]
        token2 = admit(homeserver, "sim2")
        other.call("sim.register", sim="sim2", token=token2)
        with homeserver.client() as third:
            used = third.request("sim.register", sim="sim2", token=token2)
        assert used["error"]["code"] == "unauthorized"
    names = [s["sim"] for s in sim_list(homeserver)["sims"]]
    assert names == ["sim1", "sim2"]


def test_an_expired_token_and_one_for_another_name_are_refused(homeserver):
    with admin_client(homeserver) as admin:
        short = admin.call("token.create", sim="late", ttl_ms=1000)
        other = admin.call("token.create", sim="someone", ttl_ms=60000)
    assert set(short) >= {"sim", "expires_ms", "token"}
    with homeserver.client() as sim:
        wrong = sim.request("sim.register", sim="late", token=other["token"])
        assert "is for another sim name" in wrong["error"]["message"]
        # The ring's clock decides: wait until its expiry has passed.
        time.sleep(max(0.0, short["expires_ms"] / 1000 - time.time()) + 0.2)
        late = sim.request("sim.register", sim="late", token=short["token"])
        assert late["error"]["code"] == "unauthorized"
        assert "has expired" in late["error"]["message"]
        unknown = sim.request("sim.register", sim="late",
                              token=z85.encode(bytes(32)).decode())
        assert "is unknown" in unknown["error"]["message"]
    assert sim_list(homeserver)["sims"] == []


def test_only_an_administrator_creates_tokens(homeserver):
    with homeserver.client() as anyone:
        reply = anyone.request("token.create", sim="x", ttl_ms=60000)
    assert reply["error"]["code"] == "unauthorized"


def test_the_token_is_not_published(homeserver):
    socket = homeserver.subscribe("sim:")
    with admin_client(homeserver) as admin:
        deadline = time.monotonic() + 5
        while not socket.poll(20):
            token = admin.call("token.create", sim="quiet", ttl_ms=60000)["token"]
            assert time.monotonic() < deadline
    _, body = socket.recv_multipart()
    assert b'"op":"token.create"' in body
    assert b"token\":" not in body.replace(b'"op":"token.create"', b"")
    assert token.encode() not in body


def test_a_client_cannot_open_registration_itself(homeserver):
    with homeserver.client() as sim:
        reply = sim.request("sim.register", sim="sneaky", registration="open")
    assert reply["error"]["code"] == "unauthorized"


def test_open_registration_admits_any_key_when_configured(tmp_path):
    daemon = Daemon("homeserver", "hs1", tmp_path / "hs1", extra={"registration": "open"})
    daemon.start()
    try:
        with daemon.client() as client:
            assert client.call("status")["registration"] == "open"
            assert client.call("sim.register", sim="dev")["sim"] == "dev"
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_fabricctl_token_create_prints_a_token_that_admits(homeserver):
    result = subprocess.run(
        [str(binary("fabricctl")), "--server", homeserver.endpoint,
         "--server-key", str(homeserver.keys.public_path),
         "--key", str(homeserver.admin.secret_path),
         "token", "create", "--sim", "cli", "--ttl", "10m"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert len(token) == 40
    with homeserver.client() as sim:
        assert sim.call("sim.register", sim="cli", token=token)["sim"] == "cli"
    bad = subprocess.run(
        [str(binary("fabricctl")), "--server", homeserver.endpoint,
         "--server-key", str(homeserver.keys.public_path),
         "--key", str(homeserver.admin.secret_path),
         "token", "create", "--sim", "cli", "--ttl", "forever"],
        capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "not a duration" in bad.stderr


# --------------------------------------------------------------------------
# Grants


def test_grants_are_identical_on_every_member_and_verify(ring, tmp_path):
    keys = wait_ring_key(ring)
    assert len(keys) == 1 and keys[0]["retires_ms"] is None and keys[0]["key_id"] == 1
    # Every member lists the key once it has applied the leader's ring.key
    # (a follower may still be an entry behind when the leader answers).
    def every_member_lists_it():
        _, statuses = wait_leader(ring)
        return all(s["ring_keys"] == keys for s in statuses.values())

    deadline = time.monotonic() + 10
    while not every_member_lists_it():
        assert time.monotonic() < deadline, "a member never listed the ring's key"
        time.sleep(0.05)
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    sim_keys = write_key_pair(tmp_path / "keys", "simA")
    with leader.client(keys=sim_keys) as sim:
        sim.call("sim.register", sim="simA", token=admit(ring, "simA"))
        created = sim.call("entity.create", path="/w/a", authority="simA")
        sim.call("entity.create", path="/w/b")
        granted = sim.call("authority.request", path="/w/b", sim="simA")
        batch = sim.call("authority.request", sim="simA", paths=["/w/a", "/w/b"])
    # entity.create: epoch 1, transfer 0; authority.request: its index.
    assert created["grant"]["epoch"] == 1 and created["grant"]["transfer"] == 0
    assert created["grant"]["key"] == sim_keys.public.decode()
    assert granted["grant"]["epoch"] == granted["epoch"]
    assert granted["grant"]["transfer"] == granted["transfer"]
    # The current authority asking again gets the same grants back, signed
    # together: one signature, each grant its own leaf of the tree.
    again = [r["grant"] for r in batch["results"]]
    assert [content(g) for g in again] == [content(created["grant"]), content(granted["grant"])]
    assert [(g["leaves"], g["leaf"]) for g in again] == [(2, 0), (2, 1)]
    assert again[0]["signature"] == again[1]["signature"]
    assert created["grant"]["leaves"] == 1 and created["grant"]["proof"] == ""
    for grant in again:
        verify(grant, keys)
    for grant in (created["grant"], granted["grant"]):
        assert verify(grant, keys)["retires_ms"] is None
        # Any member, asked for the same (path, epoch), answers the same.
        # (A follower may not have applied the write yet: read until it has.)
        for member in ring:
            with member.client() as client:
                wait_for(lambda c=client: c.request("entity.get", path=grant["path"],
                                                    consistency="stale").get("epoch")
                         == grant["epoch"], what=f"{member.name} to apply {grant['path']}")
                read = client.call("entity.grant", path=grant["path"], consistency="stale")
                got = client.call("entity.get", path=grant["path"], consistency="stale")
            assert read["grant"] == grant == got["grant"], member.name
    # A forged grant does not verify: another epoch, another sim, another
    # path, or a batch's grant moved to its sibling's leaf.
    for field, value in (("epoch", 7), ("sim", "simB"), ("path", "/w/c")):
        forged = dict(created["grant"], **{field: value})
        with pytest.raises(InvalidSignature):
            verify(forged, keys)
    with pytest.raises(InvalidSignature):
        verify(dict(again[0], leaf=1, proof=again[1]["proof"]), keys)


def content(grant: dict) -> dict:
    """What a grant says, without how it was signed."""
    return {k: v for k, v in grant.items()
            if k not in ("key_id", "leaves", "leaf", "proof", "signature")}


def counters(member):
    with member.client() as client:
        return client.call("counters")["counters"]


def wait_applied(members, index, timeout=10.0):
    """Until every member of MEMBERS has applied INDEX."""
    deadline = time.monotonic() + timeout
    for member in members:
        while True:
            with member.client() as client:
                if client.call("status")["applied_index"] >= index:
                    break
            assert time.monotonic() < deadline, f"{member.name} never applied {index}"
            time.sleep(0.02)


def test_a_member_signs_grants_only_where_they_leave_it(ring, tmp_path):
    """grants.md section 3: the leader signs the grants it answers a
    client with; a follower nobody subscribes to signs none and
    publishes nothing. Once someone subscribes to a follower's events it
    publishes each grant's statement there, unsigned, and still signs
    nothing."""
    keys = wait_ring_key(ring)
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    listened, quiet = [m for m in ring if m is not leader]
    sim_keys = write_key_pair(tmp_path / "keys", "simA")
    with leader.client(keys=sim_keys) as sim:
        sim.call("sim.register", sim="simA", token=admit(ring, "simA"))
        first = sim.call("entity.create", path="/quiet/first")
        wait_applied(ring, first["index"])
        before = {m.name: counters(m) for m in ring}
        for number in range(5):
            created = sim.call("entity.create", path=f"/quiet/{number}", authority="simA")
            verify(created["grant"], keys)
        wait_applied(ring, created["index"])
    after = {m.name: counters(m) for m in ring}
    def grew(member, counter):
        return after[member.name][counter] - before[member.name][counter]
    assert grew(leader, "grants_signed") == 5
    for follower in (listened, quiet):
        assert grew(follower, "grants_signed") == 0, follower.name
        assert grew(follower, "events_published") == 0, follower.name
    socket = listened.subscribe("")
    try:
        with leader.client(keys=sim_keys) as sim:
            wait_applied(ring, prove_live(sim, socket)["index"])
            before = {m.name: counters(m) for m in ring}
            created = sim.call("entity.create", path="/heard/a", authority="simA")
            wait_applied(ring, created["index"])
        topic, event = next_event(socket)
        while topic != "entity:/heard/a":
            topic, event = next_event(socket)
        assert event["node"] == listened.name
        # An event carries the grant's statement, unsigned: the ring's
        # word over a pinned session is what a signature stands for.
        assert event["result"]["grant"] == content(created["grant"])
        after = {m.name: counters(m) for m in ring}
        assert grew(listened, "grants_signed") == 0
        assert grew(listened, "events_published") == 1
        assert grew(quiet, "grants_signed") == 0
        # Once its only subscriber has gone, it publishes nothing again.
        socket.close()
        with leader.client(keys=sim_keys) as sim:
            def unheard():
                published = counters(listened)["events_published"]
                made = sim.call("entity.create", path=f"/gone/{time.monotonic_ns()}")
                wait_applied(ring, made["index"])
                return counters(listened)["events_published"] == published
            wait_for(unheard, what="the follower to stop publishing")
    finally:
        socket.close()


def test_a_rotated_key_signs_and_the_old_one_is_listed_until_it_retires(ring, tmp_path):
    old_keys = wait_ring_key(ring)
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    sim_keys = write_key_pair(tmp_path / "keys", "simA")
    with leader.client(keys=sim_keys) as sim:
        sim.call("sim.register", sim="simA", token=admit(ring, "simA"))
        before = sim.call("entity.create", path="/w/a", authority="simA")["grant"]
    with leader.client() as anyone:
        refused = anyone.request("ring.rotate_key", grace_ms=30000)
    assert refused["error"]["code"] == "unauthorized"
    with admin_client(leader) as admin:
        rotated = admin.call("ring.rotate_key", grace_ms=30000)
    assert rotated["key_id"] == 2 and "secret" not in rotated
    listed = {key["key_id"]: key for key in rotated["ring_keys"]}
    assert listed[1]["public"] == old_keys[0]["public"]
    assert listed[1]["retires_ms"] is not None and listed[2]["retires_ms"] is None
    # The old key retires grace_ms after the command's time (the leader's
    # clock, this machine's).
    assert abs(listed[1]["retires_ms"] - (time.time() * 1000 + 30000)) < 10000
    with leader.client() as client:
        after = client.call("entity.grant", path="/w/a")["grant"]
        keys = client.call("sim.list")["ring_keys"]
    assert keys == rotated["ring_keys"]
    assert after["key_id"] == 2 and before["key_id"] == 1
    assert {k: v for k, v in after.items() if k not in ("key_id", "signature")} == \
        {k: v for k, v in before.items() if k not in ("key_id", "signature")}
    assert verify(after, keys)["retires_ms"] is None
    assert verify(before, keys)["retires_ms"] == listed[1]["retires_ms"]
    with pytest.raises(InvalidSignature):
        verify(dict(after, key_id=1), keys)


def test_a_restarted_member_signs_the_same_grant(tmp_path):
    """A member that restarts rebuilds its state from its snapshot and log
    (here: a snapshot every few entries) and hands out the same bytes."""
    ring = make_ring(tmp_path, 3, extra={"election_timeout": 300, "heartbeat": 50,
                                         "snapshot_threshold": 4, "snapshot_trailing": 2})
    with running(ring):
        keys = wait_ring_key(ring)
        sim_keys = write_key_pair(tmp_path / "keys", "simA")
        leader_name, _ = wait_leader(ring)
        leader = next(m for m in ring if m.name == leader_name)
        with leader.client(keys=sim_keys) as sim:
            sim.call("sim.register", sim="simA", token=admit(ring, "simA"))
            grant = sim.call("entity.create", path="/w/a", authority="simA")["grant"]
            for n in range(12):  # past a few snapshots
                sim.call("entity.create", path=f"/w/filler{n}")
        follower = next(m for m in ring if m.name != leader_name)
        assert follower.stop() == 0, follower.log()
        follower.start()
        deadline = time.monotonic() + 15
        while True:
            with follower.client(timeout=1) as client:
                reply = client.request("entity.grant", path="/w/a", consistency="stale")
            if reply.get("ok"):
                break
            assert time.monotonic() < deadline, reply
            time.sleep(0.05)
        assert reply["grant"] == grant
        verify(reply["grant"], keys)
