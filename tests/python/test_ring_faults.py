"""Faults on a real ring: the leader killed under a steady write load; a
follower restarted after missing entries, and after missing several
snapshots."""

import time

from simfabric_testing import ApiError, call_any, make_ring, wait_leader


def create_many(members, prefix, count, deadline, acked=None):
    """Create COUNT entities one by one through any live member, retrying
    through failovers; return the paths acknowledged (appended to ACKED,
    if given, as each is)."""
    acked = [] if acked is None else acked
    for number in range(count):
        path = f"{prefix}/{number}"
        try:
            call_any(members, "entity.create", deadline, path=path)
        except ApiError as error:
            # A retry of a write that did commit the first time.
            assert error.code == "already_exists", error
        acked.append(path)
    return acked


def all_paths(members, prefix, deadline):
    paths, after = [], None
    while True:
        args = {"prefix": prefix, "limit": 1000}
        if after:
            args["after"] = after
        page = call_any(members, "entity.list", deadline, **args)
        paths += [entity["path"] for entity in page["entities"]]
        after = page["next"]
        if not after:
            return paths


def test_leader_killed_under_write_load_loses_no_acknowledged_write(ring):
    import threading

    leader, _ = wait_leader(ring)
    deadline = time.monotonic() + 60
    acked = []
    done = threading.Event()

    def writer():
        create_many(ring, "/load", 300, deadline, acked)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    # Some writes land before the fault.
    wait_until = time.monotonic() + 10
    while len(acked) < 20:
        assert time.monotonic() < wait_until and thread.is_alive(), len(acked)
        time.sleep(0.02)
    victim = next(member for member in ring if member.name == leader)
    victim.kill()
    thread.join(70)
    assert done.is_set(), "the writer did not finish"
    new_leader, _ = wait_leader(ring, exclude=(leader,))
    assert new_leader != leader
    # Every acknowledged write is there, read linearizably.
    present = set(all_paths(ring, "/load/", deadline))
    assert set(acked) <= present
    assert len(acked) == 300
    # The old leader rejoins, catches up, and serves the same data.
    victim.start()
    wait_leader(ring)
    with victim.client() as client:
        deadline = time.monotonic() + 10
        while True:
            listed = client.call("entity.list", prefix="/load/", limit=1000,
                                 consistency="stale")["entities"]
            if len(listed) >= len(present):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_follower_down_past_several_snapshots_catches_up(tmp_path):
    ring = make_ring(tmp_path, 3, extra={"election_timeout": 300, "heartbeat": 50,
                                         "snapshot_threshold": 20,
                                         "snapshot_trailing": 5})
    for member in ring:
        member.start()
    try:
        leader, _ = wait_leader(ring)
        sleeper = next(member for member in ring if member.name != leader)
        sleeper.stop()
        deadline = time.monotonic() + 60
        create_many(ring, "/snap", 100, deadline)
        # Followers learn the commit index with the next heartbeat and
        # snapshot as they apply: give them a moment.
        limit = time.monotonic() + 10
        while True:
            statuses = {}
            for member in ring:
                if member.alive():
                    with member.client() as client:
                        statuses[member.name] = client.call("status")
            if all(s["snapshot_index"] >= 60 for s in statuses.values()):
                break
            assert time.monotonic() < limit, statuses
            time.sleep(0.05)
        sleeper.start()
        with sleeper.client() as client:
            limit = time.monotonic() + 15
            while True:
                status = client.call("status")
                listed = client.call("entity.list", prefix="/snap/", limit=1000,
                                     consistency="stale")["entities"]
                # It caught up by installing a snapshot, not by replaying
                # 1..100 (a replay would leave it without one for a while).
                if len(listed) == 100 and status["snapshot_index"] >= 60:
                    break
                assert time.monotonic() < limit, status
                time.sleep(0.05)
    finally:
        # Stop every member before judging any: none may outlive the test.
        codes = {member.name: member.stop() for member in ring}
        assert all(code == 0 for code in codes.values()), \
            {member.name: member.log() for member in ring if codes[member.name]}
