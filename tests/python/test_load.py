"""Load reports (protocol/load.md section 2): each sim's heartbeat
carries its report to the ring's leader, which keeps the latest of each
in memory, never in the log, and serves them (`load`, and `sim.list`).

- A real ring of three and two sims: the reports' figures follow what the
  sims hold and do (a room edited often shows its updates per second);
  any member answers `load` (followers forward it).
- Every ring member reports to the leader each second (load.member):
  its role, commits per second, the leader's commit p99, apply lag; a
  key not a member's reports nothing.
- `fabricctl top --once` prints one line per sim, busiest first.
- A report under a key not the sim's is dropped; the log never carries
  a report (a follower's stale sim.list has none); a new leader starts
  from fresh reports and has every sim's again within a few heartbeats.
"""

import subprocess
import time

import pytest

from simfabric_testing import (ApiError, binary, make_ring, make_sims, running, wait_for,
                               wait_leader, write_key_pair)


@pytest.fixture
def loaded(tmp_path):
    ring = make_ring(tmp_path, 3)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": 200})
    sims[1].section["capacity"] = "3"
    sims[1].write_config()
    with running(ring, sims):
        wait_leader(ring)
        yield ring, sims


def _reports(member):
    with member.client() as client:
        return client.call("load")["sims"]


def test_reports_follow_what_each_sim_holds_and_does(loaded):
    ring, (sim1, sim2) = loaded
    with sim1.client() as game:
        for room in ("quiet", "busy"):
            for n in range(5):
                game.call("entity.create", path=f"/world/{room}/e{n}", state="0")
    wait_for(lambda: _reports(ring[0]).get("sim1", {}).get("authoritative") == 10
             and "sim2" in _reports(ring[0]), what="both sims' reports")
    for member in ring:  # any member answers; followers forward
        reports = _reports(member)
        assert set(reports) == {"sim1", "sim2"}
    report = _reports(ring[1])["sim1"]
    assert (report["entities"], report["authoritative"], report["capacity"]) == (10, 10, 1)
    assert _reports(ring[2])["sim2"]["capacity"] == 3
    assert set(report["dropped"]) == {"malformed", "wrong_receiver", "unknown_sender",
                                      "stale_session", "replay", "forged"}
    assert report["groups"][0]["group"] in ("/world/busy", "/world/quiet")
    assert {g["group"] for g in report["groups"]} == {"/world/busy", "/world/quiet"}


def test_busy_room_shows_its_updates(loaded):
    ring, (sim1, _) = loaded
    with sim1.client() as game:
        for room in ("quiet", "busy"):
            for n in range(5):
                game.call("entity.create", path=f"/world/{room}/e{n}", state="0")

        def busy_report():
            for _ in range(10):
                game.call("entity.update", path="/world/busy/e0", state=str(time.monotonic()))
            groups = _reports(ring[0])["sim1"].get("groups", [])
            rates = {g["group"]: g["updates_per_s"] for g in groups}
            # A report after the creations (each counts as an update).
            return rates.get("/world/busy", 0) > 5 and rates.get("/world/quiet") == 0 \
                and groups
        groups = wait_for(busy_report, timeout=15,
                          what="the busy room's updates in sim1's report")
    # The dearest group first.
    assert [g["group"] for g in groups] == ["/world/busy", "/world/quiet"]


def test_a_forged_report_is_dropped_and_reports_stay_out_of_the_log(loaded, tmp_path):
    ring, (sim1, sim2) = loaded
    wait_for(lambda: "sim1" in _reports(ring[0]), what="sim1's report")
    outsider = write_key_pair(tmp_path / "outsider", "outsider")
    with ring[0].client(keys=outsider) as client:
        with pytest.raises(ApiError) as error:
            client.call("sim.heartbeat", sim="sim1", load={"entities": 999999})
        assert error.value.code == "unauthorized"
    assert _reports(ring[0])["sim1"]["entities"] != 999999
    # A follower's stale read comes from its applied state: no report.
    leader, _ = wait_leader(ring)
    follower = next(m for m in ring if m.name != leader)
    with follower.client() as client:
        sims = client.call("sim.list", consistency="stale")["sims"]
    assert {s["sim"]: s["load"] for s in sims} == {"sim1": None, "sim2": None}


def test_a_new_leader_has_every_report_again_within_a_few_heartbeats(loaded):
    ring, (sim1, sim2) = loaded
    wait_for(lambda: set(_reports(ring[0])) == {"sim1", "sim2"}, what="both reports")
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    leader.kill()
    others = [m for m in ring if m is not leader]
    wait_leader(others)
    wait_for(lambda: set(_reports(others[0])) == {"sim1", "sim2"}, timeout=15,
             what="the new leader's reports")
    assert all(r["age_ms"] < 3000 for r in _reports(others[1]).values())


def test_fabricctl_top_prints_each_sim_busiest_first(loaded):
    ring, (sim1, sim2) = loaded
    with sim1.client() as game:
        for n in range(20):
            game.call("entity.create", path=f"/world/hall/e{n}", state="0")
    wait_for(lambda: _reports(ring[0]).get("sim1", {}).get("authoritative") == 20
             and "sim2" in _reports(ring[0]), what="both reports")
    with ring[0].client() as client:
        wait_for(lambda: len(client.call("load")["homeservers"]) == 3,
                 what="every member's report")
    follower = ring[1]
    result = subprocess.run([str(binary("fabricctl")), "top", "--once",
                             "--server", follower.endpoint,
                             "--server-key", str(follower.keys.public_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["SIM", "CAP", "HELD", "REPLICAS"]
    sim_lines = lines[1:lines.index("")] if "" in lines else lines[1:]
    rows = {line.split()[0]: line.split() for line in sim_lines}
    assert set(rows) == {"sim1", "sim2"}
    assert (rows["sim1"][1], rows["sim1"][2]) == ("1", "20")
    assert rows["sim1"][-1] == "/world/hall" and rows["sim2"][1] == "3"
    # Then the ring's members: one leader, two followers.
    header = next(at for at, line in enumerate(lines) if line.startswith("HOMESERVER"))
    roles = sorted(line.split()[1] for line in lines[header + 1:])
    assert roles == ["follower", "follower", "leader"]


def test_every_member_reports_to_the_leader(loaded, tmp_path):
    ring, (sim1, _) = loaded
    with sim1.client() as game:
        for n in range(50):
            game.call("entity.create", path=f"/world/writes/e{n}", state="0")

    def members():
        with ring[2].client() as client:
            return client.call("load")["homeservers"]
    reports = wait_for(lambda: len(members()) == 3 and members(), timeout=10,
                       what="every member's report")
    leader_name, _ = wait_leader(ring)
    assert {name: r["role"] for name, r in reports.items()} == {
        m.name: ("leader" if m.name == leader_name else "follower") for m in ring}
    for report in reports.values():
        assert report["age_ms"] < 3000 and report["apply_lag"] >= 0
        assert report["rss_bytes"] > 1 << 20 and report["log_bytes"] > 0
        assert report["cpu_per_s"] >= 0 and report["commits_per_s"] >= 0
    # The leader times its writes from receipt to commit.
    def leader_p99():
        with sim1.client() as game:
            game.call("entity.create", path=f"/world/writes/x{time.monotonic_ns()}")
        return members()[leader_name].get("commit_p99_us")
    assert wait_for(leader_p99, what="the leader's commit p99") > 0
    outsider = write_key_pair(tmp_path / "outsider", "outsider")
    with ring[0].client(keys=outsider) as client:
        with pytest.raises(ApiError) as error:
            client.call("load.member", report={"cpu_per_s": 99})
        assert error.value.code == "not_member"
    assert all(r["cpu_per_s"] != 99 for r in members().values())


def test_status_names_a_member_overloaded_for_ten_seconds(loaded):
    """load.md section 3: a member whose reports stay over a bound for
    10 s is overloaded; fabricctl status says so, with the action, and
    exits 1. The member is frozen (SIGSTOP) and its key made to report a
    commit p99 of 84 ms, as a slow member would."""
    import os
    import signal
    ring, _ = loaded
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    slow = next(m for m in ring if m is not leader)
    common = ["--server", leader.endpoint, "--server-key", str(leader.keys.public_path)]
    calm = subprocess.run([str(binary("fabricctl")), "status", *common],
                          capture_output=True, text=True, timeout=30)
    assert calm.returncode == 0 and "overloaded" not in calm.stdout, calm.stdout
    os.kill(slow.process.pid, signal.SIGSTOP)
    try:
        with leader.client(keys=slow.keys) as as_member:
            deadline = time.monotonic() + 11
            while time.monotonic() < deadline:
                as_member.call("load.member", report={
                    "role": "follower", "commit_p99_us": 84000, "apply_lag": 0,
                    "cpu_per_s": 0.1})
                time.sleep(0.5)
        result = subprocess.run([str(binary("fabricctl")), "status", *common],
                                capture_output=True, text=True, timeout=30)
    finally:
        os.kill(slow.process.pid, signal.SIGCONT)
    assert result.returncode == 1, result.stdout + result.stderr
    # On a slow build the leader, left with one follower, may be over a
    # bound too (its own commit p99): only the slow member's line is ours.
    lines = [line for line in result.stdout.splitlines()
             if line.startswith(f"{slow.name}: overloaded")]
    assert len(lines) == 1 and lines[0].startswith(f"{slow.name}: overloaded (commit p99 84 ms"), \
        result.stdout
    assert "cluster.add" in lines[0] and "another instance" in lines[0]
