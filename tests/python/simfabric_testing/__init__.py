"""Test helpers for simfabric, pure Python on pyzmq.

Import them into your own pytest suite to drive real homeservers and
simulation servers the way your tooling would:

    pytest_plugins = ["simfabric_testing.fixtures"]

    def test_status(homeserver):
        reply = homeserver.client().call("status")
        assert reply["ok"]

See README.md ("Testing with Python") for the fixtures and classes.
"""

from simfabric_testing.client import ApiClient, ApiError, NoReply, call_any, ring_paths
from simfabric_testing.daemon import (Daemon, DaemonFailed, admit, leader_client, make_ring,
                                     make_sims, ring_statuses, running, wait_leader,
                                     wait_registered)
from simfabric_testing.keys import KeyPair, read_public_key, write_key_pair
from simfabric_testing.paths import build_dir, binary
from simfabric_testing.wait import wait_for

__all__ = [
    "ApiClient",
    "ApiError",
    "NoReply",
    "call_any",
    "ring_paths",
    "Daemon",
    "DaemonFailed",
    "admit",
    "leader_client",
    "make_ring",
    "make_sims",
    "running",
    "wait_registered",
    "ring_statuses",
    "wait_leader",
    "KeyPair",
    "read_public_key",
    "write_key_pair",
    "build_dir",
    "binary",
    "wait_for",
]
