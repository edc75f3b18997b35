"""Federation, the link between instances (protocol/federation.md sections
2 to 4): real homeservers of two instances on loopback, each a ring of
one.

- A member of a configured peer instance opens a session on the
  federation socket and reads fed.status and fed.lookup; an instance
  answers only for its own names.
- Any other key gets no session, and the two sockets do not share
  operations: fed.* is not served on the API, the API not on federation.
- A malformed federation section stops the start and names the key.
"""

import subprocess

import pytest

from simfabric_testing import (ApiError, Daemon, NoReply, admit, binary, running,
                               wait_leader, write_key_pair)
from simfabric_testing.federation import fed_client, federate


@pytest.fixture
def instances(tmp_path):
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    with running([west, east]):
        wait_leader([west])
        wait_leader([east])
        yield west, east


def test_a_peer_member_reads_status_and_looks_up_names(instances, tmp_path):
    west, east = instances
    sim_keys = write_key_pair(tmp_path / "keys", "s1")
    player_keys = write_key_pair(tmp_path / "keys", "alice")
    with west.client(keys=sim_keys) as sim:
        sim.call("sim.register", sim="s1", token=admit(west, "s1"),
                 handoff="tcp://127.0.0.1:9001", state="udp://127.0.0.1:9002")
    with west.client(keys=player_keys) as player:
        player.call("player.register", player="alice")
    with fed_client(west, east.keys) as peer:
        status = peer.call("fed.status")
        assert (status["instance"], status["node"]) == ("west", "hs1")
        assert (status["role"], status["leader"]) == ("leader", "hs1")
        assert status["applied_index"] >= 1
        for name in ("s1@west", "s1"):
            found = peer.call("fed.lookup", name=name, kind="sim")
            assert found == {**found, "name": "s1@west", "kind": "sim",
                             "key": sim_keys.public.decode(),
                             "handoff": "tcp://127.0.0.1:9001",
                             "state": "udp://127.0.0.1:9002"}
        alice = peer.call("fed.lookup", name="alice@west", kind="player")
        assert (alice["name"], alice["key"]) == ("alice@west", player_keys.public.decode())
        # Only its own names: another instance's, an unknown one, a bad kind.
        refused = {
            ("s1@east", "sim"): ("invalid_argument", "not a name of instance 'west'"),
            ("nobody@west", "sim"): ("not_found", "no sim 'nobody'"),
            ("s1", "player"): ("not_found", "no player 's1'"),
            ("s1", "admin"): ("invalid_argument", "kind"),
            ("@west", "sim"): ("invalid_argument", "not a name"),
        }
        for (name, kind), (code, words) in refused.items():
            with pytest.raises(ApiError) as error:
                peer.call("fed.lookup", name=name, kind=kind)
            assert error.value.code == code and words in error.value.message, (name, kind)
        with pytest.raises(ApiError) as error:
            peer.call("fed.lookup", name="s1", kind="sim", extra=1)
        assert error.value.code == "invalid_argument" and "extra" in error.value.message
        # The API is not served here.
        with pytest.raises(ApiError) as error:
            peer.call("status")
        assert error.value.code == "unknown_op"
    # ... nor fed.* on the API.
    with west.client() as client:
        with pytest.raises(ApiError) as error:
            client.call("fed.status")
        assert error.value.code == "unknown_op"
    with west.client() as client:
        counters = client.call("counters")["counters"]
    assert counters["federation_requests"] >= 9
    assert counters["federation_refused"] >= 7


def test_only_members_of_peer_instances_get_a_session(instances, tmp_path):
    west, east = instances
    with west.client() as client:
        before = client.call("counters")["counters"]["zap_refused"]
    stranger = write_key_pair(tmp_path / "keys", "stranger")
    # A key that is not a member's, and west's own API key used the wrong
    # way round: no session at all.
    for keys in (stranger, west.keys):
        with fed_client(west, keys, timeout=1.0) as outsider:
            with pytest.raises(NoReply):
                outsider.call("fed.status")
    with west.client() as client:
        assert client.call("counters")["counters"]["zap_refused"] > before
    # East's member is admitted by east's own socket? No: a member talks to
    # peers, not to itself.
    with fed_client(east, east.keys, timeout=1.0) as itself:
        with pytest.raises(NoReply):
            itself.call("fed.status")


def _start_fails(daemon) -> str:
    result = subprocess.run([str(binary("homeserver")), "--config", str(daemon.config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_a_malformed_federation_section_stops_the_start(tmp_path):
    def pair(case):
        west = Daemon("homeserver", "hs1", tmp_path / case / "west")
        east = Daemon("homeserver", "hs1", tmp_path / case / "east")
        federate({"west": [west], "east": [east]})
        return west, east

    west, _ = pair("name")
    west.section["instance"] = "West"
    west.write_config()
    assert "homeserver/instance 'West'" in _start_fails(west)

    west, _ = pair("self")
    west.peers = {"west": west.peers["east"]}
    west.write_config()
    assert "federation/west is this instance" in _start_fails(west)

    west, _ = pair("missing")
    del west.section["instance"]
    west.write_config()
    assert "missing homeserver/instance" in _start_fails(west)

    west, east = pair("twice")
    west.peers["north"] = west.peers["east"]
    west.write_config()
    assert "speaks for one instance" in _start_fails(west)

    west, _ = pair("own")
    west.peers["east"] = [west]
    west.write_config()
    assert "this member's own key" in _start_fails(west)
