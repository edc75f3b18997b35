"""Membership changes on a live ring: a fourth member joins while writes
continue, then a member is removed; the ring keeps serving throughout."""

import contextlib
import json
import subprocess
import threading
import time

import pytest

from simfabric_testing import ApiError, Daemon, call_any, leader_client, wait_for, wait_leader
from simfabric_testing.events import next_event, prove_live
from simfabric_testing.keys import read_key_pair
from simfabric_testing.paths import binary


def configuration(member):
    with member.client() as client:
        status = client.call("status")
    return {server["id"]: server["role"] for server in status["configuration"]}


def add_fourth_member(ring, tmp_path, admin, by_fabricctl=False):
    """Start hs4 with join=true, add it through ring[1] (with `fabricctl
    cluster add --cert hs4.cert` if BY_FABRICCTL, as the README says), and
    wait until it follows the leader. The caller stops or kills it."""
    joiner = Daemon("homeserver", "hs4", tmp_path / "hs4", raft_id=4,
                    extra={"join": "true", "election_timeout": 300,
                           "heartbeat": 50})
    joiner.ring = ring + [joiner]
    joiner.section["admins"] = ring[0].section["admins"]
    joiner.write_config()
    joiner.start()
    try:
        if by_fabricctl:
            done = subprocess.run(
                [str(binary("fabricctl")), "cluster", "add", "hs4", "--raft-id", "4",
                 "--raft", joiner.raft_endpoint, "--api", joiner.endpoint,
                 "--cert", str(joiner.keys.public_path), "--key", str(admin.secret_path),
                 "--server", ring[1].endpoint, "--server-key", str(ring[1].keys.public_path),
                 "--timeout", "40000"],
                capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            added = json.loads(done.stdout)
        else:
            with ring[1].client(keys=admin, timeout=40) as client:
                added = client.call("cluster.add", name="hs4", raft_id=4,
                                    raft=joiner.raft_endpoint, api=joiner.endpoint,
                                    key=joiner.keys.public.decode())
        assert added["raft_id"] == 4
        # ring[1] relayed the add; the leader answered once the change was
        # committed, which ring[1] may apply a moment later.
        every_voter = {1: "voter", 2: "voter", 3: "voter", 4: "voter"}
        wait_for(lambda: configuration(ring[1]) == every_voter, timeout=10,
                 what="ring[1] applying hs4 as a voter")
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


def status_members(member):
    """The ids and names MEMBER's status lists as the ring's members."""
    with member.client() as client:
        status = client.call("status")
    return {m["id"]: m["name"] for m in status["members"]}


def fabricctl_status_names(member):
    """The NAME column of `fabricctl status` asked of MEMBER."""
    result = subprocess.run(
        [str(binary("fabricctl")), "status", "--server", member.endpoint,
         "--server-key", str(member.keys.public_path)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def wait_members(member, expected, timeout=15):
    """Wait until MEMBER's status lists exactly EXPECTED ({id: name})."""
    deadline = time.monotonic() + timeout
    while (seen := status_members(member)) != expected:
        assert time.monotonic() < deadline, (member.name, seen, member.log())
        time.sleep(0.05)


def test_a_removed_member_leaves_status_on_every_member(ring, tmp_path):
    """Issue 21: status lists the ring's applied configuration, so a member
    removed with cluster.remove leaves it on the leader and every follower,
    also after a restart; fabricctl status no longer shows it."""
    leader, _ = wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    three = {1: "hs1", 2: "hs2", 3: "hs3"}
    joiner = add_fourth_member(ring, tmp_path, admin)
    try:
        for member in ring + [joiner]:
            wait_members(member, {**three, 4: "hs4"})
        assert "hs4" in fabricctl_status_names(ring[0])
        with ring[1].client(keys=admin, timeout=20) as client:
            client.call("cluster.remove", raft_id=4)
        for member in ring:
            wait_members(member, three)
            assert fabricctl_status_names(member) == ["hs1", "hs2", "hs3"]
        # The removed member never applies its own removal: it lists the
        # configuration it last applied and knows no leader
        # (homeserver-api.md, status).
        deadline = time.monotonic() + 15
        while True:
            with joiner.client() as client:
                status = client.call("status")
            if status["leader"] is None:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert {m["id"] for m in status["members"]} == {1, 2, 3, 4}
        assert status["role"] != "leader"
        with joiner.client() as client:
            with pytest.raises(ApiError) as refused:
                client.call("entity.create", path="/after/removal")
        assert refused.value.code == "unavailable", refused.value.message
        # A restarted follower rebuilds the list from its log.
        follower = next(m for m in ring if m.name != leader)
        assert follower.stop() == 0, follower.log()
        follower.start()
        wait_members(follower, three)
    finally:
        joiner.kill()


def test_only_membership_records_that_change_something_are_published(ring, tmp_path):
    """homeserver-events.md: cluster.add is published on ring: when it
    records a member; adding the same member again exactly as it is
    changes nothing (no event, no configuration change), and neither
    does cluster.remove publish anything: configuration changes are
    Raft's, seen in status."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    socket = ring[0].subscribe("")
    try:
        with ring[0].client() as client:
            prove_live(client, socket)
        joiner = add_fourth_member(ring, tmp_path, admin)
        try:
            topic, added = next_event(socket)
            assert (topic, added["op"]) == ("ring:", "cluster.add"), added
            assert added["result"]["name"] == "hs4"
            members = ring + [joiner]
            leader_name, _ = wait_leader(members)
            leader = next(m for m in members if m.name == leader_name)
            with leader.client(keys=admin, timeout=20) as client:
                before = client.call("status")["last_index"]
                again = client.call("cluster.add", name="hs4", raft_id=4,
                                    raft=joiner.raft_endpoint, api=joiner.endpoint,
                                    key=joiner.keys.public.decode())
                assert again["raft_id"] == 4 and again["name"] == "hs4"
                client.call("entity.create", path="/after/again")
                # The add's command and the marker: no configuration change.
                assert client.call("status")["last_index"] == before + 2
            assert configuration(leader) == {1: "voter", 2: "voter", 3: "voter", 4: "voter"}
            topic, marker = next_event(socket)
            assert topic == "entity:/after/again", marker
            assert marker["prev"] == added["index"]
            with leader.client(keys=admin, timeout=20) as client:
                client.call("cluster.remove", raft_id=4)
            call_any(ring, "entity.create", time.monotonic() + 10, path="/after/remove")
            topic, last = next_event(socket)
            assert topic == "entity:/after/remove", last
            assert last["prev"] == marker["index"]
        finally:
            joiner.kill()
    finally:
        socket.close()


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


def test_fabricctl_adds_a_member_by_its_cert_file_and_removes_it(ring, tmp_path):
    """The README's way: the new member's .cert file, not a pasted key."""
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    joiner = add_fourth_member(ring, tmp_path, admin, by_fabricctl=True)
    try:
        done = subprocess.run(
            [str(binary("fabricctl")), "cluster", "remove", "4", "--key",
             str(admin.secret_path), "--server", ring[0].endpoint, "--server-key",
             str(ring[0].keys.public_path), "--timeout", "40000"],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: 4 not in configuration(ring[0]), timeout=10,
                 what="hs4 gone from the configuration")
        # A cert that is not one is refused before anything is sent.
        bad = tmp_path / "bad.cert"
        bad.write_text("not a certificate\n")
        done = subprocess.run(
            [str(binary("fabricctl")), "cluster", "add", "hs5", "--raft-id", "5",
             "--raft", "tcp://127.0.0.1:1", "--cert", str(bad), "--key", str(admin.secret_path),
             "--server", ring[0].endpoint, "--server-key", str(ring[0].keys.public_path)],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "bad.cert" in done.stderr, done.stderr
    finally:
        joiner.kill()
