"""pytest fixtures that start real simfabric daemons in a temporary folder.

Use them from your own suite with
    pytest_plugins = ["simfabric_testing.fixtures"]
"""

import pytest

from simfabric_testing.daemon import Daemon, make_ring, make_sims, running


@pytest.fixture
def homeserver(tmp_path):
    """One running homeserver; stopped (and checked to exit 0) afterwards."""
    daemon = Daemon("homeserver", "hs1", tmp_path / "hs1").start()
    yield daemon
    assert daemon.stop() == 0, daemon.log()


@pytest.fixture
def simserver(tmp_path):
    """One running simulation server with a one-member ring of its own;
    both stopped (and checked to exit 0) afterwards."""
    ring = make_ring(tmp_path, 1)
    (daemon,) = make_sims(tmp_path, ring, 1)
    # Both stop, whatever failed: no test leaves a daemon behind.
    with running(ring, [daemon]):
        yield daemon


@pytest.fixture
def ring(tmp_path):
    """Three homeservers forming one ring (fast timers), started; each is
    stopped afterwards and must exit 0."""
    members = make_ring(tmp_path, 3, extra={"election_timeout": 300, "heartbeat": 50})
    for member in members:
        member.start()
    yield members
    # Stop every member before judging any: none may outlive the test.
    codes = {member.name: member.stop() for member in members}
    assert all(code == 0 for code in codes.values()), \
        {member.name: member.log() for member in members if codes[member.name]}
