"""The JSON API over a real 3-member ring: writes through any member are
readable from every member; reads are linearizable by default; followers
forward to the leader; authorisation and bad input."""

import json

import pytest

from simfabric_testing import ApiError, admit, wait_leader, write_key_pair
from simfabric_testing.keys import read_key_pair


def by_name(ring, name):
    return next(member for member in ring if member.name == name)


def followers(ring, leader):
    return [member for member in ring if member.name != leader]


def test_writes_through_any_member_are_readable_everywhere(ring):
    leader, _ = wait_leader(ring)
    for number, member in enumerate(ring):
        with member.client() as client:
            reply = client.call("entity.create", path=f"/world/e{number}", rule="ask")
            assert reply["node"] == member.name
            assert reply["leader"] == leader
            assert reply["epoch"] == 0
            assert reply["index"] > 1
    for member in ring:
        with member.client() as client:
            for number in range(len(ring)):
                got = client.call("entity.get", path=f"/world/e{number}")
                assert got["rule"] == "ask"
                assert got["node"] == member.name
            listed = client.call("entity.list", prefix="/world/")
            assert [e["path"] for e in listed["entities"]] == ["/world/e0", "/world/e1", "/world/e2"]


def test_read_your_write_from_a_follower_is_linearizable(ring):
    leader, _ = wait_leader(ring)
    writer, reader = followers(ring, leader)
    with writer.client() as one, reader.client() as other:
        for number in range(20):
            one.call("entity.create", path=f"/lin/{number}")
            # Linearizable: a read that starts after the write was
            # acknowledged sees it, from any member.
            assert other.call("entity.get", path=f"/lin/{number}")["path"] == f"/lin/{number}"


def test_stale_reads_answer_locally(ring):
    leader, _ = wait_leader(ring)
    follower = followers(ring, leader)[0]
    with by_name(ring, leader).client() as client:
        client.call("entity.create", path="/stale/a")
    import time
    with follower.client() as client:
        # Stale reads may lag behind; they are answered by the member asked,
        # which catches up within a few heartbeats.
        deadline = time.monotonic() + 5
        while True:
            reply = client.request("entity.get", path="/stale/a", consistency="stale")
            if reply["ok"]:
                break
            assert reply["error"]["code"] == "not_found"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert reply["node"] == follower.name


def test_master_only_changes_rule(ring):
    wait_leader(ring)
    owner_keys = write_key_pair(ring[0].folder / "users", "owner")
    other_keys = write_key_pair(ring[0].folder / "users", "other")
    with ring[0].client(keys=owner_keys) as owner, ring[1].client(keys=other_keys) as other:
        owner.call("entity.create", path="/m/a", rule="allow")
        with pytest.raises(ApiError) as refused:
            other.call("entity.set_rule", path="/m/a", rule="deny")
        assert refused.value.code == "unauthorized"
        assert "only the master of '/m/a'" in refused.value.message
        assert other.call("entity.get", path="/m/a")["rule"] == "allow"
        assert owner.call("entity.set_rule", path="/m/a", rule="deny")["rule"] == "deny"
    # An administrator may too.
    admin = read_key_pair(ring[2].admin.secret_path)
    with ring[2].client(keys=admin) as client:
        assert client.call("entity.set_rule", path="/m/a", rule="ask")["rule"] == "ask"


def test_players_and_sims_register_their_own_keys(ring):
    wait_leader(ring)
    sim_keys = write_key_pair(ring[0].folder / "users", "sim1")
    with ring[1].client(keys=sim_keys) as sim:
        reply = sim.call("sim.register", sim="sim1", token=admit(ring, "sim1"), handoff="tcp://127.0.0.1:9001",
                         state="udp://127.0.0.1:9002")
        assert reply["key"] == sim_keys.public.decode()
        sim.call("sim.heartbeat", sim="sim1", load={"entities": 12, "cpu": 0.5})
        sim.call("player.register", player="p1")
    with ring[2].client() as stranger:
        with pytest.raises(ApiError) as refused:
            stranger.call("sim.heartbeat", sim="sim1")
        assert refused.value.code == "unauthorized"
        sims = stranger.call("sim.list")["sims"]
        assert [s["sim"] for s in sims] == ["sim1"]
        # The report is the leader's, kept in its memory (load.md).
        assert {k: v for k, v in sims[0]["load"].items() if k != "age_ms"} == \
            {"cpu": 0.5, "entities": 12}
        assert stranger.call("load")["sims"]["sim1"]["entities"] == 12
        assert stranger.call("player.key", player="p1")["key"] == sim_keys.public.decode()
        with pytest.raises(ApiError) as missing:
            stranger.call("player.key", player="nobody")
        assert missing.value.code == "not_found"


@pytest.mark.parametrize("args, code, message", [
    ({"path": "no-slash"}, "invalid_argument", "field 'path' must be a path"),
    ({"path": "/a", "rule": "maybe"}, "invalid_argument", "field 'rule' must be allow, ask or deny"),
    ({"path": "/a", "colour": "red"}, "invalid_argument", "unknown field 'colour'"),
    ({"path": 7}, "invalid_argument", "field 'path' must be a string"),
    ({}, "invalid_argument", "missing field 'path'"),
    ({"path": "/a", "owner": "nobody"}, "not_found", "no player 'nobody'"),
])
def test_bad_writes_change_nothing(ring, args, code, message):
    leader, before = wait_leader(ring)
    follower = followers(ring, leader)[0]
    with follower.client() as client:
        with pytest.raises(ApiError) as refused:
            client.call("entity.create", **args)
        assert refused.value.code == code
        assert message in refused.value.message
        assert client.call("entity.list", prefix="/")["entities"] == []
        assert client.call("status")["ok"]


def test_duplicate_create_is_refused(ring):
    wait_leader(ring)
    with ring[0].client() as client:
        client.call("entity.create", path="/dup")
        with pytest.raises(ApiError) as refused:
            client.call("entity.create", path="/dup")
        assert refused.value.code == "already_exists"


def test_list_pages(ring):
    wait_leader(ring)
    with ring[0].client() as client:
        for number in range(7):
            client.call("entity.create", path=f"/page/{number}")
        first = client.call("entity.list", prefix="/page/", limit=4)
        assert len(first["entities"]) == 4 and first["next"] == "/page/3"
        second = client.call("entity.list", prefix="/page/", limit=4, after=first["next"])
        assert [e["path"] for e in second["entities"]] == ["/page/4", "/page/5", "/page/6"]
        assert second["next"] is None


def test_forward_is_for_members_only(ring):
    wait_leader(ring)
    with ring[0].client() as client:
        with pytest.raises(ApiError) as refused:
            client.call("ring.forward", principal=client.public_key.decode(),
                        request={"op": "entity.create", "path": "/sneak"})
        assert refused.value.code == "not_member"


def test_transfer_leadership_to_a_named_member(ring):
    leader, _ = wait_leader(ring)
    target = followers(ring, leader)[0]
    admin = read_key_pair(ring[0].admin.secret_path)
    with ring[0].client(keys=admin) as client:
        client.call("cluster.transfer", to=target.raft_id)
    import time
    deadline = time.monotonic() + 10
    while True:
        new_leader, _ = wait_leader(ring)
        if new_leader == target.name:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with ring[1].client() as client:
        with pytest.raises(ApiError) as refused:
            client.call("cluster.transfer", to=1)
        assert refused.value.code == "unauthorized"
