"""fabricctl health and status (protocol/operations.md section 1), with a
real ring and sims: a healthy fabric says so and exits 0; a member killed
is named unreachable; with two of three gone the ring has no quorum and
no leader, and status exits 1 too; a sim whose ring went away, or that
never registered, is not healthy; a member removed from the ring and
still running is named.
"""

import json
import subprocess

from simfabric_testing import binary, make_ring, make_sims, running, wait_for, wait_leader
from simfabric_testing.keys import read_key_pair
from test_membership import add_fourth_member


def _ctl(daemon, *args, timeout_ms=2000):
    return subprocess.run(
        [str(binary("fabricctl")), *args, "--server", daemon.endpoint,
         "--server-key", str(daemon.keys.public_path), "--timeout", str(timeout_ms)],
        capture_output=True, text=True, timeout=60)


def _problems(daemon, *args):
    result = _ctl(daemon, "health", *args)
    return result.returncode, [line for line in result.stdout.splitlines() if line]


def test_a_healthy_fabric_says_so_and_members_down_are_named(tmp_path):
    ring = make_ring(tmp_path, 3)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": 200})
    with running(ring, sims):
        wait_leader(ring)
        code, lines = wait_for(
            lambda: (lambda r: r[0] == 0 and r)(_problems(ring[0], "--sims")),
            timeout=15, what="a healthy ring and sims")
        assert lines == ["healthy: no problem found (3 daemons asked)"], lines
        report = json.loads(_ctl(ring[1], "health", "--json").stdout)
        assert report["healthy"] is True and report["problems"] == []
        assert set(report["daemons"]) == {"hs1", "hs2", "hs3"}
        for sim in sims:
            assert _problems(sim) == (0, ["healthy: no problem found (1 daemon asked)"])

        # One member down: named, with where it was asked; the ring still
        # has its quorum and its leader.
        leader, _ = wait_leader(ring)
        down = next(m for m in ring if m.name != leader and m is not ring[0])
        down.kill()
        code, lines = _problems(ring[0])
        assert code == 1
        assert len(lines) == 1 and lines[0].startswith(
            f"{down.name}: unreachable ({down.endpoint}): "), lines

        # Two down: no quorum; the one left stops knowing a leader, and
        # status says so by its exit code too.
        other = next(m for m in ring if m is not ring[0] and m is not down)
        other.kill()
        wait_for(lambda: "ring: no leader" in _problems(ring[0])[1], timeout=20,
                 what="the last member to stop knowing a leader")
        code, lines = _problems(ring[0])
        assert code == 1
        assert "ring: no quorum: 1 of 3 voters answer" in lines, lines
        assert {line.split(":")[0] for line in lines if "unreachable" in line} \
            == {down.name, other.name}
        status = _ctl(ring[0], "status")
        assert status.returncode == 1
        assert "knows no leader" in status.stderr
        assert "NAME" in status.stdout  # it still prints what it knows

        # A sim whose ring is gone: its heartbeats go unanswered.
        wait_for(lambda: any("last heartbeat answered" in line
                             for line in _problems(sims[0])[1]),
                 timeout=15, what="sim1's heartbeats to go unanswered")
        assert _problems(sims[0])[0] == 1


def test_a_sim_that_never_registered_is_not_healthy(tmp_path):
    ring = make_ring(tmp_path, 1)
    (sim,) = make_sims(tmp_path, ring, 1)
    # The sim starts alone: no ring answers its registration.
    sim.start()
    try:
        assert _problems(sim) == (1, ["sim1: not registered"])
    finally:
        assert sim.stop() == 0, sim.log()


def test_a_removed_member_still_running_is_named(ring, tmp_path):
    wait_leader(ring)
    admin = read_key_pair(ring[0].admin.secret_path)
    joiner = add_fourth_member(ring, tmp_path, admin)
    try:
        with ring[1].client(keys=admin, timeout=20) as client:
            client.call("cluster.remove", raft_id=4)
        # Asked of the removed member itself: it lists the configuration
        # it applied last; the leader's does not list it.
        wait_for(lambda: "hs4: removed from the ring, still running"
                 in _problems(joiner)[1], timeout=20,
                 what="health to name the removed member")
        wait_for(lambda: _problems(ring[0]) == (
            0, ["healthy: no problem found (3 daemons asked)"]), timeout=20,
            what="the ring of three healthy")
    finally:
        joiner.kill()
