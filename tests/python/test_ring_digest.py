"""Replica digests on a real ring (raft-wire.md section 4): members that
applied the same commands the same way show the same digest and compare
clean, through snapshots and restarts; a member whose log was altered on
disk applies a command differently, and the others say so."""

import sqlite3
import subprocess
import time

from simfabric_testing import ApiError, leader_client, make_ring, wait_leader
from simfabric_testing.paths import binary


def counters(member) -> dict:
    with member.client(timeout=2) as client:
        return client.call("counters")["counters"]


def wait_digests_settled(members, before=None, timeout=15.0) -> dict:
    """Wait until every member's digest covers the same applied index and
    each compared more digests than in BEFORE (counters by name, from
    before the last writes; none: zero); return the counters by name."""
    deadline = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < deadline:
        seen = {member.name: counters(member) for member in members}
        indexes = {c["ring_digest_index"] for c in seen.values()}
        if len(indexes) == 1 and 0 not in indexes and all(
                c["ring_digest_compared"]
                > ((before or {}).get(name) or {}).get("ring_digest_compared", 0)
                for name, c in seen.items()):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"digests did not settle in {timeout} s: {seen}")


def write_some(members, prefix, count):
    """COUNT writes through the leader, one of them refused (its error is
    part of the digest too)."""
    with leader_client(members, keys=members[0].admin) as client:
        for number in range(count):
            client.call("entity.create", path=f"{prefix}/{number}", checkpoint="x")
        try:
            client.call("entity.create", path=f"{prefix}/0")
            raise AssertionError("a second create of one path succeeded")
        except ApiError as error:
            assert error.code == "already_exists"


def test_members_agree_on_their_digest_through_snapshots_and_restarts(tmp_path):
    ring = make_ring(tmp_path, 3, extra={"election_timeout": 300, "heartbeat": 50,
                                          "snapshot_threshold": 16,
                                          "snapshot_trailing": 4})
    try:
        for member in ring:
            member.start()
        wait_leader(ring)
        write_some(ring, "/digest/a", 40)
        seen = wait_digests_settled(ring)
        assert len({c["ring_digest_head"] for c in seen.values()}) == 1, seen
        assert all(c["ring_digest_mismatches"] == 0 for c in seen.values()), seen

        # A follower restarts: its digest comes back from its snapshot and
        # the log it re-applies, and still matches after more writes.
        leader, statuses = wait_leader(ring)
        assert statuses[leader]["snapshot_index"] > 0
        follower = next(member for member in ring if member.name != leader)
        follower.stop()
        before = {name: c for name, c in seen.items() if name != follower.name}
        write_some(ring, "/digest/b", 30)
        follower.start()
        seen = wait_digests_settled(ring, before)
        assert len({c["ring_digest_head"] for c in seen.values()}) == 1, seen
        assert all(c["ring_digest_mismatches"] == 0 for c in seen.values()), seen
        assert seen[follower.name]["ring_digest_compared"] > 0

        # fabricctl status shows the same digest head on every member, and
        # no divergence.
        result = subprocess.run(
            [str(binary("fabricctl")), "status", "--server", ring[0].endpoint,
             "--server-key", str(ring[0].keys.public_path)],
            capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        header = lines[0].split()
        rows = [dict(zip(header, line.split())) for line in lines[1:]]
        assert [row["NAME"] for row in rows] == ["hs1", "hs2", "hs3"]
        head = f"{seen['hs1']['ring_digest_head']:012x}"
        assert {row["DIGEST"] for row in rows} == {head}, result.stdout
        assert {row["DIVERGED"] for row in rows} == {"0"}, result.stdout
    finally:
        codes = {member.name: member.stop() for member in ring}
    assert set(codes.values()) == {0}, {m.name: m.log() for m in ring if codes[m.name]}


def test_a_member_whose_log_was_altered_is_seen_to_diverge(tmp_path):
    """A follower's stored command is altered while it is down (as a bad
    disk or a bug in the store might): Raft still takes its log (the terms
    match), it re-applies the altered command on restart, and the leader
    compares digests, logs the divergence and counts it, and goes on."""
    ring = make_ring(tmp_path, 3, extra={"election_timeout": 300, "heartbeat": 50})
    try:
        for member in ring:
            member.start()
        leader, _ = wait_leader(ring)
        write_some(ring, "/altered", 5)
        seen = wait_digests_settled(ring)
        assert all(c["ring_digest_mismatches"] == 0 for c in seen.values()), seen

        follower = next(member for member in ring if member.name != leader)
        follower.stop()
        database = sqlite3.connect(follower.folder / "data" / "raft.db")
        with database:
            rows = database.execute("SELECT idx, data FROM log").fetchall()
            altered = [(idx, data) for idx, data in rows
                       if data and b'"/altered/3"' in bytes(data)]
            assert len(altered) == 1, rows
            idx, data = altered[0]
            database.execute("UPDATE log SET data = ? WHERE idx = ?",
                             (bytes(data).replace(b'"/altered/3"', b'"/altered/X"'), idx))
        database.close()
        follower.start()

        # Whoever leads compares with the altered member. On a loaded machine
        # the leadership may move while the follower restarts, so the
        # detector is asked of every other member, not of the first leader.
        others = [member for member in ring if member is not follower]
        deadline = time.monotonic() + 15
        while True:
            seen = {member.name: counters(member) for member in others}
            noticed = [member for member in others
                       if seen[member.name]["ring_digest_mismatches"] > 0]
            if noticed:
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        noticing = seen[noticed[0].name]
        assert noticing["ring_diverged_from"] == follower.raft_id
        assert noticing["ring_diverged_at"] >= idx
        assert (f"hs_ring: replica diverged from member {follower.raft_id} at index"
                in noticed[0].log())
        # The ring goes on: writes still commit everywhere.
        write_some(ring, "/after", 3)
        assert all(member.alive() for member in ring)
    finally:
        codes = {member.name: member.stop() for member in ring}
    assert set(codes.values()) == {0}, {m.name: m.log() for m in ring if codes[m.name]}
