"""A member removed with cluster.remove is no longer trusted anywhere: its
key is refused for ring.forward and on the raft link of every remaining
member, also after they all restart; and cluster.add refuses a name or a
raft id that would clash with a member's (homeserver-api.md)."""

import struct
import time

import pytest
import zmq

from simfabric_testing import ApiError, call_any, leader_client, wait_leader
from simfabric_testing.keys import read_key_pair
from test_membership import add_fourth_member, configuration, status_members, wait_members

THREE = {1: "hs1", 2: "hs2", 3: "hs3"}
FORGED_TERM = 1_000_000


def add_and_remove_hs4(ring, tmp_path, admin):
    """hs4 joins, then is removed; every remaining member has applied the
    removal. Returns hs4, still running: the caller kills it."""
    joiner = add_fourth_member(ring, tmp_path, admin)
    try:
        for member in ring:
            wait_members(member, {**THREE, 4: "hs4"})
        with ring[1].client(keys=admin, timeout=20) as client:
            client.call("cluster.remove", raft_id=4)
        for member in ring:
            wait_members(member, THREE)
    except BaseException:
        joiner.kill()
        raise
    return joiner


def forward_as(member, keys, principal, request):
    """Send ring.forward to MEMBER as KEYS on behalf of PRINCIPAL."""
    with member.client(keys=keys, timeout=10) as client:
        return client.call("ring.forward", principal=principal, request=request)


def request_vote(sender_id, sender_address, term):
    """A RequestVote frame (raft-wire.md type 3) that would win any
    election: a far higher term, a log that looks longer than anyone's,
    and disrupt_leader set, so a receiver that takes it leaves its term."""
    address = sender_address.encode()
    header = b"SF" + struct.pack(">BBQH", 1, 3, sender_id, len(address)) + address
    body = struct.pack(">BQQQQB", 2, term, sender_id, 1 << 40, term - 1, 1)
    return header + body


def send_raft_as(member, keys, sender_id, sender_address, frame, count=20):
    """Connect to MEMBER's raft endpoint as KEYS (CURVE) and send FRAME
    COUNT times, best effort; return once it is sent or refused."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.curve_serverkey = member.keys.public
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret
    socket.connect(member.raft_endpoint)
    try:
        for _ in range(count):
            try:
                socket.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(0.01)
    finally:
        socket.close(0)


def counters(member):
    with member.client() as client:
        return client.call("counters")["counters"]


def wait_counter_above(member, name, floor, timeout=10):
    deadline = time.monotonic() + timeout
    while (value := counters(member)[name]) <= floor:
        assert time.monotonic() < deadline, (member.name, name, value, member.log())
        time.sleep(0.05)
    return value


def terms(members):
    result = {}
    for member in members:
        with member.client() as client:
            result[member.name] = client.call("status")["term"]
    return result


def entity_absent(members, path):
    with pytest.raises(ApiError) as missing:
        call_any(members, "entity.get", time.monotonic() + 10, path=path)
    return missing.value.code == "not_found"


def test_a_removed_members_key_may_not_forward(ring, tmp_path):
    """ring.forward is served only for current members: once hs4's removal
    is applied, every remaining member refuses hs4's forwards, and a
    request stamped with an administrator's key through it changes
    nothing."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    joiner = add_fourth_member(ring, tmp_path, admin)
    try:
        hs4 = read_key_pair(joiner.keys.secret_path)
        principal = admin.public.decode()
        # While hs4 is a member its forwards are served, as the relay of
        # any request.
        created = forward_as(ring[0], hs4, principal,
                             {"op": "entity.create", "path": "/forged/before"})
        assert created["path"] == "/forged/before"
        with ring[1].client(keys=admin, timeout=20) as client:
            client.call("cluster.remove", raft_id=4)
        for member in ring:
            wait_members(member, THREE)
            with pytest.raises(ApiError) as refused:
                forward_as(member, hs4, principal,
                           {"op": "entity.create", "path": f"/forged/{member.name}"})
            assert refused.value.code == "not_member", refused.value.message
        for member in ring:
            assert entity_absent(ring, f"/forged/{member.name}")
    finally:
        joiner.kill()


def test_raft_traffic_from_a_removed_member_does_not_disturb_the_ring(ring, tmp_path):
    """After its removal hs4's raft sessions are refused: neither hs4
    restarted with its old data (campaigning for a ring it no longer
    belongs to) nor a vote request in its name with a far higher term
    moves the ring's term, and writes keep succeeding."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    joiner = add_and_remove_hs4(ring, tmp_path, admin)
    try:
        hs4 = read_key_pair(joiner.keys.secret_path)
        joiner.kill()
        refused = {m.name: counters(m)["zap_refused"] for m in ring}
        earlier = len(joiner.log())
        joiner.start()
        # hs4 dials every member it knows and is refused by each.
        for member in ring:
            wait_counter_above(member, "zap_refused", refused[member.name])
        deadline = time.monotonic() + 15
        while "4 is now candidate" not in joiner.log()[earlier:]:
            assert time.monotonic() < deadline, joiner.log()[earlier:]
            time.sleep(0.05)
        frame = request_vote(4, joiner.raft_endpoint, FORGED_TERM)
        for member in ring:
            send_raft_as(member, hs4, 4, joiner.raft_endpoint, frame)
        for number in range(5):
            call_any(ring, "entity.create", time.monotonic() + 10, path=f"/after/{number}")
        seen = terms(ring)
        assert all(term < FORGED_TERM for term in seen.values()), seen
        assert wait_leader(ring)[0] in THREE.values()
    finally:
        joiner.kill()


def test_a_removed_member_stays_removed_after_every_member_restarts(ring, tmp_path):
    """The removal is in the members table too: restarting every remaining
    member admits hs4 again neither for ring.forward nor on the raft link."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    joiner = add_and_remove_hs4(ring, tmp_path, admin)
    hs4 = read_key_pair(joiner.keys.secret_path)
    joiner.kill()
    for member in ring:
        assert member.stop() == 0, member.log()
    for member in ring:
        member.start()
    wait_leader(ring)
    for member in ring:
        wait_members(member, THREE)
        with pytest.raises(ApiError) as refused:
            forward_as(member, hs4, admin.public.decode(),
                       {"op": "entity.create", "path": f"/forged/{member.name}"})
        assert refused.value.code == "not_member", refused.value.message
    frame = request_vote(4, joiner.raft_endpoint, FORGED_TERM)
    for member in ring:
        before = counters(member)["zap_refused"]
        send_raft_as(member, hs4, 4, joiner.raft_endpoint, frame)
        wait_counter_above(member, "zap_refused", before)
    call_any(ring, "entity.create", time.monotonic() + 10, path="/after/restarts")
    seen = terms(ring)
    assert all(term < FORGED_TERM for term in seen.values()), seen
    for member in ring:
        assert entity_absent(ring, f"/forged/{member.name}")


def test_cluster_add_refuses_a_clash_with_a_member(ring, tmp_path):
    """cluster.add refuses, with conflict and a message naming the clash,
    a name that another raft id has and a raft id that is a member at
    another address; nothing changes."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    joiner = add_fourth_member(ring, tmp_path, admin)
    try:
        four = {**THREE, 4: "hs4"}
        for member in ring:
            wait_members(member, four)
        key = joiner.keys.public.decode()
        fresh = zmq.curve_keypair()[0].decode()
        elsewhere = "tcp://127.0.0.1:1"
        clashes = [
            # A configured member's name, and a member added at run time's.
            (dict(name="hs2", raft_id=5, raft=elsewhere, key=fresh), ["'hs2'", "raft id 2"]),
            (dict(name="hs4", raft_id=5, raft=elsewhere, key=fresh), ["'hs4'", "raft id 4"]),
            # A member at another raft address: remove, then add.
            (dict(name="hs4", raft_id=4, raft=elsewhere, api=joiner.endpoint, key=key),
             ["raft id 4", joiner.raft_endpoint, "cluster.remove"]),
            (dict(name="hs2", raft_id=2, raft=elsewhere, key=ring[1].keys.public.decode()),
             ["raft id 2", ring[1].raft_endpoint, "cluster.remove"]),
            # A configured member's key, and a member added at run time's:
            # members know each other by key.
            (dict(name="hs5", raft_id=5, raft=elsewhere, key=ring[1].keys.public.decode()),
             ["raft id 2", "key of its own"]),
            (dict(name="hs5", raft_id=5, raft=elsewhere, key=key), ["raft id 4", "key of its own"]),
        ]
        with leader_client(ring, keys=admin, timeout=40) as client:
            before = client.call("status")["last_index"]
            for args, words in clashes:
                with pytest.raises(ApiError) as refused:
                    client.call("cluster.add", **args)
                assert refused.value.code == "conflict", (args, refused.value.message)
                for word in words:
                    assert word in refused.value.message, (args, refused.value.message)
            # Refused before anything was written.
            client.call("entity.create", path="/after/clashes")
            assert client.call("status")["last_index"] <= before + 1
        for member in ring + [joiner]:
            assert configuration(member) == {1: "voter", 2: "voter", 3: "voter", 4: "voter"}
            assert status_members(member) == four
    finally:
        joiner.kill()
