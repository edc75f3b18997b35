"""A ring of real homeservers over CURVE on loopback: election, agreement
on the leader, failover, restart with the same data folder."""

import subprocess
import time

import pytest

from simfabric_testing import wait_for, wait_leader
from simfabric_testing.daemon import free_port


def test_three_members_elect_one_leader(ring):
    leader, seen = wait_leader(ring)
    assert leader in {"hs1", "hs2", "hs3"}
    terms = {s["term"] for s in seen.values()}
    assert len(terms) == 1
    assert seen[leader]["role"] == "leader"
    assert sorted(s["role"] for s in seen.values()) == ["follower", "follower", "leader"]
    for status in seen.values():
        assert [m["name"] for m in status["members"]] == ["hs1", "hs2", "hs3"]
        assert status["commit_index"] >= 1


def test_leader_killed_a_new_one_is_elected(ring):
    leader, seen = wait_leader(ring)
    old_term = seen[leader]["term"]
    victim = next(m for m in ring if m.name == leader)
    killed_at = time.monotonic()
    victim.kill()
    new_leader, seen = wait_leader(ring, exclude=(leader,))
    failover = time.monotonic() - killed_at
    assert new_leader != leader
    assert all(s["term"] > old_term for s in seen.values())
    assert failover < 5, failover
    # The old leader comes back with its data folder and follows.
    victim.start()
    back, seen = wait_leader(ring)
    assert back == new_leader
    assert seen[leader]["role"] == "follower"


def test_single_member_ring_leads_itself(homeserver):
    with homeserver.client() as client:
        deadline = time.monotonic() + 10
        while True:
            status = client.call("status")
            if status["role"] == "leader":
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
    # A leader names itself: a status that leads but names no leader, or
    # another, would send clients nowhere.
    assert (status["leader"], status["leader_id"]) == (homeserver.name, 1), status


def test_counters_show_the_raft_link_and_forwarded_requests(ring):
    leader, _ = wait_leader(ring)
    follower = next(m for m in ring if m.name != leader)
    with follower.client() as client:
        before = client.call("counters")["counters"]
        client.call("player.register", player="ada")
        after = client.call("counters")
    assert after["node"] == follower.name
    counters = after["counters"]
    assert counters["api_forwarded"] == before["api_forwarded"] + 1
    # The follower hears from the leader and answers it: both ways count.
    # Not necessarily before the write's reply: the leader commits with the
    # other follower's answer, and this one may still be reading its copy.
    def both_ways():
        with follower.client() as client:
            now = client.call("counters")["counters"]
        return (now["raft_received"] > before["raft_received"]
                and now["raft_sent"] > before["raft_sent"]) and now
    counters = wait_for(both_ways, timeout=10, what="the follower's raft traffic counted")
    assert counters["raft_malformed"] == 0 and counters["raft_impostor"] == 0
    with next(m for m in ring if m.name == leader).client() as client:
        counters = client.call("counters")["counters"]
    assert counters["api_forwarded"] == 0
    assert counters["raft_sent"] > 0 and counters["raft_received"] > 0


def test_a_second_homeserver_on_the_same_data_folder_is_refused(homeserver):
    """Two processes writing one raft log would corrupt it: the second
    stops at start, naming the store, and the first keeps its data and
    goes on serving."""
    with homeserver.client(keys=homeserver.admin) as admin:
        admin.call("entity.create", path="/held/before", checkpoint="x")
    command = homeserver.command() + [
        "--name", "intruder",
        "--api", f"tcp://127.0.0.1:{free_port()}",
        "--raft", f"tcp://127.0.0.1:{free_port()}",
        "--events", f"tcp://127.0.0.1:{free_port()}",
    ]
    second = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert f"store {homeserver.folder / 'data' / 'raft.db'} is in use by another process" \
        in second.stderr, second.stderr
    with homeserver.client(keys=homeserver.admin) as admin:
        admin.call("entity.create", path="/held/after", checkpoint="y")
        assert admin.call("entity.get", path="/held/before")["path"] == "/held/before"
    assert homeserver.process.poll() is None
