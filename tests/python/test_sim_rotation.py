"""Key rotation without a restart: the operator puts a new key pair at a
sim's secret_key and sends SIGHUP; the sim registers the new key with the
ring (signing with the old one), streams and serves its handoff channel
under the new key, and its peers follow."""

import signal

import pytest

from simfabric_testing import make_ring, make_sims, running, write_key_pair

from simfabric_testing.wait import wait_for
from test_sim_stream import _get, _peers


@pytest.fixture
def fabric(tmp_path):
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": 200})
    with running(ring, sims):
        yield ring, sims


def _ring_key(ring, name):
    with ring[0].client() as client:
        return next(s["key"] for s in client.call("sim.list")["sims"] if s["sim"] == name)


def test_sighup_rotates_the_key_and_everything_follows(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as game:
        game.call("entity.create", path="/world/r", state="before")
        before = game.call("status")
    wait_for(lambda: (_get(sim2, "/world/r") or {}).get("state") == "before", what="replica")
    # The API keeps serving with the key its clients pinned; the new pair
    # replaces the files the sim loads its key from.
    old_keys = sim1.keys
    new_keys = write_key_pair(sim1.folder, "sim1")
    assert new_keys.public != old_keys.public
    sim1.keys = old_keys
    # A SIGHUP with the key unchanged on disk would change nothing; this
    # one finds a new key.
    sim1.process.send_signal(signal.SIGHUP)
    wait_for(lambda: _ring_key(ring, "sim1") == new_keys.public.decode(),
             what="the ring to list the new key")
    wait_for(lambda: any(p["sim"] == "sim1" and p["key"] == new_keys.public.decode()
                         for p in _peers(sim2)), what="sim2 to learn it")
    with sim1.client() as game:
        after = game.call("status")
        assert after["session"] != before["session"]
        assert after["session"] >> 16 == after["registered_ms"]
        game.call("entity.update", path="/world/r", state="after")
    # The stream runs under the new key...
    wait_for(lambda: (_get(sim2, "/world/r") or {}).get("state") == "after",
             what="an update under the new key")
    # ...and the handoff channel both ways: sim2 pins sim1's new key, sim1
    # presents it.
    with sim2.client() as other:
        other.call("entity.create", path="/world/from2", state="copied")
        assert other.call("entity.copy", to="sim1", prefix="/world/from2",
                          timeout=15)["entities"] == 1
    with sim1.client() as game:
        assert game.call("entity.copy", to="sim2", prefix="/world/r",
                         timeout=15)["entities"] == 1
        assert game.call("entity.get", path="/world/from2")["state"] == "copied"
    assert "key rotated to" in sim1.log()
    # SIGHUP again with the same key on disk: nothing changes.
    sim1.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "holds the current key" in sim1.log(), what="the no-op rotation")
    assert _ring_key(ring, "sim1") == new_keys.public.decode()
