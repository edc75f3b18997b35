"""Membership changes on a live ring: a fourth member joins while writes
continue, then a member is removed; the ring keeps serving throughout."""

import contextlib
import threading
import time

import pytest

from simfabric_testing import ApiError, Daemon, call_any, leader_client, wait_leader
from simfabric_testing.keys import read_key_pair


def configuration(member):
    with member.client() as client:
        status = client.call("status")
    return {server["id"]: server["role"] for server in status["configuration"]}


def add_fourth_member(ring, tmp_path, admin):
    """Start hs4 with join=true, add it through ring[1], and wait until it
    follows the leader. The caller stops or kills it."""
    joiner = Daemon("homeserver", "hs4", tmp_path / "hs4", raft_id=4,
                    extra={"join": "true", "election_timeout": 300,
                           "heartbeat": 50})
    joiner.ring = ring + [joiner]
    joiner.section["admins"] = ring[0].section["admins"]
    joiner.write_config()
    joiner.start()
    try:
        with ring[1].client(keys=admin, timeout=40) as client:
            added = client.call("cluster.add", name="hs4", raft_id=4,
                                raft=joiner.raft_endpoint, api=joiner.endpoint,
                                key=joiner.keys.public.decode())
        assert added["raft_id"] == 4
        assert configuration(ring[1]) == {1: "voter", 2: "voter", 3: "voter", 4: "voter"}
        # The new member follows the leader and holds everything written.
        deadline = time.monotonic() + 15
        while True:
            with joiner.client() as client:
                status = client.call("status")
            if status["role"] == "follower" and status["leader"]:
                return joiner
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
    except BaseException:
        joiner.kill()
        raise


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
        joiner = add_fourth_member(ring, tmp_path, admin)
        members.append(joiner)

        # Remove a member that is not the leader.
        leader, _ = wait_leader(members)
        victim = next(m for m in ring if m.name != leader)
        with ring[0].client(keys=admin, timeout=20) as client:
            client.call("cluster.remove", raft_id=victim.raft_id)
        assert victim.raft_id not in configuration(joiner)
        members.remove(victim)
        # Writes go on with the smaller ring.
        written, until = len(acked), time.monotonic() + 10
        while len(acked) < written + 5:
            assert time.monotonic() < until and thread.is_alive(), len(acked)
            time.sleep(0.02)
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


def wait_follows_and_holds(member, leader, prefix, timeout=15):
    """Wait until MEMBER names LEADER as leader (if given) and holds an
    entity under PREFIX."""
    deadline = time.monotonic() + timeout
    while True:
        with member.client() as client:
            status = client.call("status")
            held = client.call("entity.list", prefix=prefix, consistency="stale")
        if (leader is None or status["leader"] == leader) and held["entities"]:
            return
        assert time.monotonic() < deadline, (status, member.log())
        time.sleep(0.1)


def test_a_restarted_member_follows_a_leader_added_at_run_time(ring, tmp_path):
    """hs4 joined at run time, so hs1's config file does not name it: after
    a restart hs1 learns hs4's key only from the log, which hs4, the leader,
    sends it. hs4's first handshake is refused; its link must try again
    rather than stay dead, or hs1 never hears a leader again."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    joiner = add_fourth_member(ring, tmp_path, admin)
    members = ring + [joiner]
    try:
        transfer_to(members, admin, joiner)
        victim = ring[0]
        victim.kill()
        call_any(members[1:], "entity.create", time.monotonic() + 10, path="/while/down")
        victim.start()
        wait_follows_and_holds(victim, "hs4", "/while/")
        # From its own log at start, not on another member's word.
        assert "member hs4 admitted from the log" in victim.log()
        assert "admitted on member" not in victim.log()
    finally:
        joiner.kill()


def transfer_to(members, admin, target, exclude=()):
    """Hand leadership to TARGET; wait until MEMBERS but EXCLUDE follow it."""
    with leader_client([m for m in members if m.name not in exclude], keys=admin) as client:
        client.call("cluster.transfer", to=target.raft_id)
    deadline = time.monotonic() + 15
    while wait_leader(members, exclude=exclude)[0] != target.name:
        assert time.monotonic() < deadline
        time.sleep(0.05)


@contextlib.contextmanager
def hs4_leading_while_hs1_is_down(ring, tmp_path):
    """Kill hs1, add hs4, hand it the leadership; yield (admin key pair,
    hs4, the four members). hs4 is killed afterwards."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    hs1, hs2, hs3 = ring
    hs1.kill()
    wait_leader([hs2, hs3])
    joiner = add_fourth_member(ring, tmp_path, admin)
    try:
        transfer_to([hs2, hs3, joiner], admin, joiner)
        yield admin, joiner, ring + [joiner]
    finally:
        joiner.kill()


def test_a_refused_raft_link_is_dialled_again(ring, tmp_path):
    """hs1 is down while hs4 joins, and restarts before it has heard of
    hs4: hs4, leading, is refused by hs1's ZAP handler. Once hs1 has
    learned hs4's key from another member, hs4's link must work again when
    it leads once more: libzmq never redials a refused session itself."""
    hs1, hs2, _ = ring
    with hs4_leading_while_hs1_is_down(ring, tmp_path) as (admin, joiner, members):
        hs1.start()
        deadline = time.monotonic() + 10
        while "peer 1 refused our handshake" not in joiner.log():
            assert time.monotonic() < deadline, joiner.log()
            time.sleep(0.1)
        # hs1 learns hs4 from hs2: from its log, or on its word (types 9, 10).
        transfer_to(members, admin, hs2, exclude=("hs1",))
        deadline = time.monotonic() + 10
        while 4 not in configuration(hs1):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        transfer_to(members, admin, joiner)  # hs1 follows hs4 now
        call_any([joiner], "entity.create", time.monotonic() + 10, path="/hs4/leads")
        wait_follows_and_holds(hs1, None, "/hs4/", timeout=10)


def test_a_restarted_member_learns_of_a_leader_added_while_it_was_down(ring, tmp_path):
    """hs1 is down while hs4 joins and comes to lead; hs1's own config and
    log do not name hs4, so it refuses hs4's sessions and cannot follow.
    With no leader for two election timeouts it asks hs2 and hs3 whom they
    know (raft-wire.md types 9, 10), admits hs4, and follows it: no change
    of leader and no operator step needed."""
    hs1 = ring[0]
    with hs4_leading_while_hs1_is_down(ring, tmp_path) as (_, joiner, members):
        call_any([joiner], "entity.create", time.monotonic() + 10, path="/hs4/before")
        hs1.start()
        wait_follows_and_holds(hs1, "hs4", "/hs4/")
        assert "member hs4 (raft id 4) admitted on member" in hs1.log()
        assert wait_leader(members)[0] == "hs4"
