"""Membership changes on a live ring: a fourth member joins while writes
continue, then a member is removed; the ring keeps serving throughout."""

import threading
import time

import pytest

from simfabric_testing import ApiError, Daemon, call_any, wait_leader
from simfabric_testing.keys import read_key_pair


def configuration(member):
    with member.client() as client:
        status = client.call("status")
    return {server["id"]: server["role"] for server in status["configuration"]}


def test_add_a_fourth_member_and_remove_one_under_writes(ring, tmp_path):
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    stop = threading.Event()
    acked = []

    def writer():
        number = 0
        while not stop.is_set():
            deadline = time.monotonic() + 20
            call_any(members, "entity.create", deadline, path=f"/m/{number}")
            acked.append(f"/m/{number}")
            number += 1

    members = list(ring)
    thread = threading.Thread(target=writer)
    thread.start()
    joiner = None
    try:
        joiner = Daemon("homeserver", "hs4", tmp_path / "hs4", raft_id=4,
                        extra={"join": "true", "election_timeout": 300,
                               "heartbeat": 50})
        joiner.ring = ring + [joiner]
        joiner.section["admins"] = ring[0].section["admins"]
        joiner.write_config()
        joiner.start()
        with ring[1].client(keys=admin, timeout=40) as client:
            added = client.call("cluster.add", name="hs4", raft_id=4,
                                raft=joiner.raft_endpoint, api=joiner.endpoint,
                                key=joiner.keys.public.decode())
        assert added["raft_id"] == 4
        members.append(joiner)
        assert configuration(ring[0]) == {1: "voter", 2: "voter", 3: "voter", 4: "voter"}
        # The new member follows the leader and holds everything written.
        deadline = time.monotonic() + 15
        while True:
            with joiner.client() as client:
                status = client.call("status")
            if status["role"] == "follower" and status["leader"]:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)

        # Remove a member that is not the leader.
        leader, _ = wait_leader(members)
        victim = next(m for m in ring if m.name != leader)
        with ring[0].client(keys=admin, timeout=20) as client:
            client.call("cluster.remove", raft_id=victim.raft_id)
        assert victim.raft_id not in configuration(joiner)
        members.remove(victim)
        time.sleep(0.5)  # writes go on with the smaller ring
    except BaseException:
        if joiner:
            joiner.kill()
        raise
    finally:
        stop.set()
        thread.join(30)
    present = set()
    with joiner.client() as client:
        after = None
        while True:
            args = {"prefix": "/m/", "limit": 1000}
            if after:
                args["after"] = after
            page = client.call("entity.list", **args)
            present |= {e["path"] for e in page["entities"]}
            after = page["next"]
            if not after:
                break
    assert set(acked) <= present
    assert len(acked) > 10
    assert joiner.stop() == 0, joiner.log()


def test_membership_changes_need_an_admin(ring):
    wait_leader(ring)
    with ring[0].client() as client:
        with pytest.raises(ApiError) as refused:
            client.call("cluster.remove", raft_id=2)
        assert refused.value.code == "unauthorized"
        with pytest.raises(ApiError) as refused:
            client.call("cluster.add", name="x", raft_id=9, raft="tcp://127.0.0.1:1",
                        key="not a key")
        assert refused.value.code == "invalid_argument"


def test_remove_the_leader_itself(ring):
    """The leader commits its own removal, steps down, and says so; the
    others elect a leader among themselves and keep committing."""
    leader, _ = wait_leader(ring)
    old = next(m for m in ring if m.name == leader)
    admin = read_key_pair(ring[0].admin.secret_path)
    with old.client(keys=admin, timeout=20) as client:
        removed = client.call("cluster.remove", raft_id=old.raft_id)
    assert removed["raft_id"] == old.raft_id
    rest = [m for m in ring if m is not old]
    new_leader, statuses = wait_leader(rest)
    assert new_leader != leader
    for status in statuses.values():
        assert old.raft_id not in {s["id"] for s in status["configuration"]}
    created = call_any(rest, "entity.create", time.monotonic() + 10, path="/after/removal")
    assert created["ok"]
    with old.client() as client:
        assert client.call("status")["role"] != "leader"
