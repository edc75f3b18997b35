"""Authority moves under faults (issue 5): the old authority killed in
the middle of a handoff, the ring's leader killed in the middle of a
transfer, and the old authority cut off from the ring (a network
namespace) while its game keeps editing. In every case a third sim that
watches the entity never applies updates from two authorities at the same
epoch, and the entity ends with exactly one authority."""

import signal
import subprocess
import threading
import time

import pytest

from simfabric_testing import (ApiError, NoReply, leader_client, make_ring, make_sims, netns,
                               running, wait_leader, wait_registered)
from simfabric_testing.daemon import free_port

from simfabric_testing.wait import wait_for

RETRYABLE = {"unavailable", "timeout", "not_leader"}


class Watcher:
    """Every update of PREFIX a sim applies, as its subscription reports
    them: (epoch, source, seq, state)."""

    def __init__(self, sim, prefix):
        self.updates = []
        self.client = sim.client()
        self.client.call("subscribe", prefix=prefix)
        self.stopping = False
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                event = self.client.next_event(timeout=0.2)
            except NoReply:
                continue
            if event["event"] == "entity" and not event.get("deleted"):
                self.updates.append((event["epoch"], event["source"], event["seq"],
                                     event["state"]))

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.client.close()

    def authorities_per_epoch(self):
        seen = {}
        for epoch, source, _, _ in self.updates:
            seen.setdefault(epoch, set()).add(source)
        return seen


class Editor:
    """A game editing PATH through SIM's API every few ms until stopped;
    an edit refused (fenced, or the sim gone) is counted, not fatal."""

    def __init__(self, sim, path, tag):
        self.sim, self.path, self.tag = sim, path, tag
        self.done = self.refused = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        with self.sim.client(timeout=1) as game:
            n = 0
            while not self.stopping:
                n += 1
                try:
                    game.call("entity.update", path=self.path, state=f"{self.tag}-{n}")
                    self.done += 1
                except (ApiError, NoReply):
                    self.refused += 1
                time.sleep(0.005)  # a game's pace, not a wait

    def stop(self):
        self.stopping = True
        self.thread.join(5)


def one_authority(ring, sims, path, expected, timeout=15):
    """Wait until the ring and the sims agree that EXPECTED alone holds
    PATH; return the ring's entity."""
    def agreed():
        with leader_client(ring, wait=10) as client:
            entity = client.call("entity.get", path=path)
        held = []
        for sim in sims:
            if sim.alive():
                with sim.client(timeout=2) as client:
                    reply = client.request("entity.get", path=path)
                    if reply.get("ok") and reply["authority"]:
                        held.append((sim.name, reply["epoch"]))
        return entity if entity["authority"] == expected and held == [
            (expected, entity["epoch"])] else None
    return wait_for(agreed, timeout=timeout, what=f"{expected} alone holding {path}")


def claim(sim, path, deadline=20):
    """entity.claim as a game would: retried while the ring is electing."""
    end = time.monotonic() + deadline
    while True:
        with sim.client(timeout=5) as game:
            try:
                return game.call("entity.claim", path=path)
            except (ApiError, NoReply) as error:
                code = getattr(error, "code", "timeout")
                if code not in RETRYABLE or time.monotonic() > end:
                    raise
        time.sleep(0.1)


def _wait_streaming(editor, watcher):
    """Wait until EDITOR's updates reach WATCHER: the stream and the
    watcher's subscription are live before a fault is injected."""
    wait_for(lambda: editor.done >= 3 and any(u[3].startswith(editor.tag) for u in watcher.updates),
             timeout=10, what="the editor's updates to reach the watcher")


@pytest.fixture
def fabric(tmp_path):
    ring = make_ring(tmp_path, 3)
    sims = make_sims(tmp_path, ring, 3, extra={"heartbeat": 200})
    with running(ring, sims):
        yield ring, sims


def test_the_old_authority_killed_mid_handoff(fabric):
    ring, (sim1, sim2, sim3) = fabric
    path = "/faults/killed"
    with sim1.client() as game:
        game.call("entity.create", path=path, state="start", rule="allow")
    watcher = Watcher(sim3, path)
    editor = Editor(sim1, path, "a")
    try:
        _wait_streaming(editor, watcher)
        result = {}
        thread = threading.Thread(target=lambda: result.update(claimed=claim(sim2, path)))
        thread.start()
        time.sleep(0.002)  # the request is on its way; the event is not
        sim1.kill()
        thread.join(30)
        editor.stop()
        claimed = result["claimed"]
        assert claimed["epoch"] == 2 and claimed["from"] in ("handoff", "checkpoint")
        with sim2.client() as game:
            for n in range(5):
                game.call("entity.update", path=path, state=f"b-{n}")
        one_authority(ring, [sim1, sim2, sim3], path, "sim2")
        wait_for(lambda: watcher.updates and watcher.updates[-1][3] == "b-4", timeout=10,
                 what="sim2's last edit at the watcher")
    finally:
        editor.stop()
        watcher.close()
        if not sim1.alive():
            sim1.start()  # so the fixture's stop sees every sim exit cleanly
    per_epoch = watcher.authorities_per_epoch()
    assert all(len(sources) == 1 for sources in per_epoch.values()), per_epoch
    assert per_epoch[1] == {"sim1"} and per_epoch[2] == {"sim2"}


def test_the_ring_leader_killed_mid_transfer(fabric):
    ring, (sim1, sim2, sim3) = fabric
    path = "/faults/leaderless"
    with sim1.client() as game:
        game.call("entity.create", path=path, state="start", rule="allow")
    watcher = Watcher(sim3, path)
    editor = Editor(sim1, path, "a")
    leader_name, _ = wait_leader(ring)
    leader = next(m for m in ring if m.name == leader_name)
    try:
        _wait_streaming(editor, watcher)
        result = {}
        thread = threading.Thread(target=lambda: result.update(claimed=claim(sim2, path)))
        thread.start()
        time.sleep(0.001)  # the point: the claim is on its way, not yet granted
        leader.kill()
        thread.join(40)
        editor.stop()
        assert result["claimed"]["authority"] is True
        entity = one_authority(ring, [sim1, sim2, sim3], path, "sim2", timeout=20)
        assert result["claimed"]["epoch"] == entity["epoch"] == 2
        with sim2.client() as game:
            game.call("entity.update", path=path, state="b-last")
        wait_for(lambda: watcher.updates and watcher.updates[-1][3] == "b-last", timeout=10,
                 what="sim2's edit at the watcher")
    finally:
        editor.stop()
        watcher.close()
        if not leader.alive():
            leader.start()
    per_epoch = watcher.authorities_per_epoch()
    assert all(len(sources) == 1 for sources in per_epoch.values()), per_epoch


def test_a_sim_follows_the_ring_events_to_the_new_leader(fabric):
    """A sim takes the ring's events from the member it sends requests to,
    the leader: when the leader dies it moves with its requests, and a
    grant committed under the new leader still fences it."""
    ring, (sim1, sim2, _) = fabric
    path = "/faults/follow"
    with sim1.client() as game:
        game.call("entity.create", path=path, state="v1", rule="allow")
        followed = game.call("status")["ring"]
    leader_name, _ = wait_leader(ring)
    assert followed == leader_name
    leader = next(m for m in ring if m.name == leader_name)
    try:
        leader.kill()
        survivors = [m for m in ring if m is not leader]
        with leader_client(survivors, keys=sim2.keys, wait=20) as as_sim2:
            granted = as_sim2.call("authority.request", path=path, sim="sim2")
        assert granted["epoch"] == 2

        def fenced():
            with sim1.client() as game:
                entity = game.call("entity.get", path=path)
                status = game.call("status")
            return (entity["authority"] is False and entity["epoch"] == 2
                    and status["ring"] != leader_name)

        wait_for(fenced, timeout=10, what="sim1 fenced through the new leader's events")
    finally:
        if not leader.alive():
            leader.start()


@pytest.mark.skipif(not netns.available(), reason="needs root and iproute2")
def test_the_old_authority_cut_off_from_the_ring_keeps_editing(tmp_path):
    hosts = netns.Hosts(3, prefix="sfa")
    root = f"10.77.{hosts.net}.254"
    ring = make_ring(tmp_path, 1, extra={"sim_lease": 1500})
    hs = ring[0]
    for attribute in ("endpoint", "raft_endpoint", "events_endpoint"):
        setattr(hs, attribute, getattr(hs, attribute).replace("127.0.0.1", root))
    hs.section.update(api=hs.endpoint, raft=hs.raft_endpoint, events=hs.events_endpoint)
    hs.write_config()
    sims = []
    for index, name in enumerate(["sim1", "sim2", "sim3"]):
        address = hosts.address(index)
        sim = netns.NetnsDaemon(hosts, index, "simserver", name, tmp_path / name,
                                extra={"heartbeat": 200})
        sim.endpoint = f"tcp://{address}:{free_port()}"
        sim.state_endpoint = f"udp://{address}:{free_port()}"
        sim.handoff_endpoint = f"tcp://{address}:{free_port()}"
        sim.section.update(api=sim.endpoint, state=sim.state_endpoint,
                           handoff=sim.handoff_endpoint)
        sim.ring = ring
        sim.write_config()
        sims.append(sim)
    sim1, sim2, sim3 = sims
    watcher = editor = None
    ports = ", ".join(hs_port.rsplit(":", 1)[1] for hs_port in (hs.endpoint, hs.events_endpoint))
    # sim1's host drops what goes to or comes from the ring's ports; the
    # sims and the test still reach it. Its connections to the ring are
    # then destroyed (ss -K), so that the events published meanwhile are
    # lost to it, as across a long partition.
    cut = ("table inet sfcut {\n"
           "  chain output {\n    type filter hook output priority 0;\n"
           f"    ip daddr {root} tcp dport {{ {ports} }} drop\n  }}\n"
           "  chain input {\n    type filter hook input priority 0;\n"
           f"    ip saddr {root} tcp sport {{ {ports} }} drop\n  }}\n}}\n")
    try:
        hs.start()
        for sim in sims:
            sim.start()
        wait_registered(sims)
        path = "/faults/cut"
        with sim1.client() as game:
            game.call("entity.create", path=path, state="start", rule="allow")
        watcher = Watcher(sim3, path)
        editor = Editor(sim1, path, "a")
        _wait_streaming(editor, watcher)
        subprocess.run(hosts.exec_prefix(0) + ["nft", "-f", "-"], input=cut, text=True,
                       check=True, capture_output=True)
        subprocess.run(hosts.exec_prefix(0) + ["ss", "-K", "dst", root], check=True,
                       capture_output=True)
        with hs.client() as client:
            wait_for(lambda: client.call("entity.get", path=path)["authority"] is None,
                     timeout=15, what="the ring orphaning sim1's entity")
        claimed = claim(sim2, path)
        assert (claimed["epoch"], claimed["from"]) == (2, "checkpoint")
        with sim2.client() as game:
            for n in range(20):
                game.call("entity.update", path=path, state=f"b-{n}")
                time.sleep(0.01)  # a game's pace, not a wait
        # sim1 is still editing at epoch 1, unaware: the watcher keeps
        # sim2's state.
        edits_while_cut = editor.done
        wait_for(lambda: editor.done >= edits_while_cut + 10, timeout=10,
                 what="sim1 to go on editing while cut off")
        with sim3.client() as client:
            seen = client.call("entity.get", path=path)
            assert (seen["epoch"], seen["source"], seen["state"]) == (2, "sim2", "b-19")
            assert client.call("counters")["counters"]["update_stale_epoch"] > 0
        subprocess.run(hosts.exec_prefix(0) + ["nft", "delete", "table", "inet", "sfcut"],
                       check=True, capture_output=True)
        # Back in touch, sim1 learns it lost the entity: from its heartbeat's
        # check (the ring took something from it) or from the gap in the
        # events it missed, whichever comes first; the gap shows at the
        # next event it gets (heartbeats are published), so both happen.
        with sim1.client() as client:
            wait_for(lambda: client.call("entity.get", path=path)["authority"] is False,
                     timeout=30, what="sim1 learning that it lost the entity")
        with hs.client() as client:
            assert client.call("entity.get", path=path)["authority"] == "sim2"
        wait_for(lambda: "events were lost" in sim1.log(), timeout=10,
                 what="sim1 noticing the events it missed")
    finally:
        if editor:
            editor.stop()
        if watcher:
            watcher.close()
        codes = {sim.name: sim.stop() for sim in sims}
        codes["hs1"] = hs.stop()
        hosts.close()
    assert set(codes.values()) == {0}, codes
    per_epoch = watcher.authorities_per_epoch()
    assert all(len(sources) == 1 for sources in per_epoch.values()), per_epoch
    assert per_epoch[2] == {"sim2"}


def test_a_dead_sims_entities_resume_from_its_last_saved_state(tmp_path):
    ring = make_ring(tmp_path, 1, extra={"sim_lease": 1000})
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": 200, "ring_checkpoint": 200})
    with running(ring, sims):
        sim1, sim2 = sims
        with sim1.client() as game:
            game.call("entity.create", path="/faults/saved", state="v0")
            game.call("entity.update", path="/faults/saved", state="v1")
            game.call("entity.update", path="/faults/saved", state="v2 saved")
        with ring[0].client() as client:
            wait_for(lambda: client.call("entity.get", path="/faults/saved").get("checkpoint")
                     == "v2 saved", timeout=10, what="sim1's state saved in the ring")
        with sim1.client() as game:
            counters = game.call("counters")["counters"]
            assert counters["checkpoints_saved"] >= 1 and counters["checkpoints_failed"] == 0
        sim1.kill()
        try:
            with ring[0].client() as client:
                wait_for(lambda: client.call("entity.get", path="/faults/saved")["authority"]
                         is None, timeout=15, what="the ring orphaning sim1's entity")
            claimed = claim(sim2, "/faults/saved")
            assert (claimed["from"], claimed["state"], claimed["epoch"]) == (
                "checkpoint", "v2 saved", 2)
            # A checkpoint from the former authority, at its old epoch, is
            # skipped: the fencing holds for saved states too.
            with ring[0].client(keys=sim1.keys) as as_sim1:
                late = as_sim1.call("entity.checkpoint", sim="sim1", entities=[
                    {"path": "/faults/saved", "epoch": 1, "checkpoint": "stale"}])
                assert (late["saved"], late["stale"]) == (0, ["/faults/saved"])
                with pytest.raises(ApiError) as bad:
                    as_sim1.call("entity.checkpoint", sim="sim1",
                                 entities=[{"path": "/faults/saved", "checkpoint": "x"}])
                assert bad.value.code == "invalid_argument"
                with pytest.raises(ApiError) as other:
                    as_sim1.call("entity.checkpoint", sim="sim2", entities=[
                        {"path": "/faults/saved", "epoch": 2, "checkpoint": "x"}])
                assert other.value.code == "unauthorized"
            with ring[0].client() as client:
                assert client.call("entity.get", path="/faults/saved")["checkpoint"] == "v2 saved"
        finally:
            if not sim1.alive():
                sim1.start()
