"""A simulation server's local checkpoint: a restarted sim resumes the
entities it is the authority of, keeps only those the ring still says are
its own, and its next updates overtake what its peers already hold."""

import subprocess

import pytest

from simfabric_testing import make_ring, make_sims, wait_registered, running
from simfabric_testing.daemon import free_port, free_udp_port

from simfabric_testing.wait import wait_for
from test_sim_stream import _get

SEQ_JUMP = 1 << 20


@pytest.fixture
def fabric(tmp_path):
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": 200, "checkpoint": "checkpoint.db",
                                               "checkpoint_interval": 200})
    with running(ring, sims):
        yield ring, sims


def test_a_restarted_sim_resumes_what_the_ring_still_gives_it(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as game:
        for n in range(5):
            game.call("entity.create", path=f"/world/k{n}", state=f"k{n}")
        game.call("entity.update", path="/world/k1", state="v9")
        game.call("entity.create", path="/world/lost", state="soon not mine")
    wait_for(lambda: (_get(sim2, "/world/k1") or {}).get("state") == "v9", what="replicas")
    assert sim1.stop() == 0  # saves a last checkpoint
    # While sim1 is down, an administrator deletes one of its entities.
    with ring[0].client(keys=ring[0].admin) as admin:
        admin.call("entity.delete", path="/world/lost")
    sim1.start()
    wait_registered([sim1, sim2])
    with sim1.client() as game:
        status = game.call("status")
        assert status["authoritative"] == 5
        resumed = game.call("entity.get", path="/world/k1")
        assert (resumed["state"], resumed["epoch"], resumed["authority"]) == ("v9", 1, True)
        assert resumed["seq"] == 2 + SEQ_JUMP
        assert game.request("entity.get", path="/world/lost")["error"]["code"] == "not_found"
        assert game.call("entity.update", path="/world/k1", state="v10")["seq"] == 3 + SEQ_JUMP
    # The peer takes the new update: its seq is above anything sent before.
    wait_for(lambda: (_get(sim2, "/world/k1") or {}).get("state") == "v10",
             what="the update after the restart")


def test_a_second_sim_on_the_same_checkpoint_file_is_refused(fabric):
    """Two sims resuming from and saving over one checkpoint would each
    take the other's entities for their own: the second stops at start,
    naming the file, and the first goes on."""
    _ring, (sim1, _sim2) = fabric
    with sim1.client() as game:
        game.call("entity.create", path="/world/held", state="mine")
    command = sim1.command() + [
        "--api", f"tcp://127.0.0.1:{free_port()}",
        "--state", f"udp://127.0.0.1:{free_udp_port()}",
        "--handoff", f"tcp://127.0.0.1:{free_port()}",
    ]
    second = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert (f"checkpoint file '{sim1.folder / 'checkpoint.db'}' is in use by another process"
            in second.stderr), second.stderr
    with sim1.client() as game:
        assert game.call("entity.update", path="/world/held", state="still mine")["seq"] == 2
    assert sim1.process.poll() is None
