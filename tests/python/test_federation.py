"""Federation, the link between instances (protocol/federation.md sections
2 to 4): real homeservers of two instances on loopback, each a ring of
one.

- A member of a configured peer instance opens a session on the
  federation socket and reads fed.status and fed.lookup; an instance
  answers only for its own names.
- Any other key gets no session, and the two sockets do not share
  operations: fed.* is not served on the API, the API not on federation.
- A malformed federation section stops the start and names the key.
- player.key of NAME@INSTANCE is answered by that instance and cached; a
  re-key there reaches the other instance at once by push, and within
  the cache's expiry when the push is lost.
"""

import json
import subprocess
import time
import types

import pytest

from simfabric_testing import (ApiError, Daemon, NoReply, admit, binary, make_sims, running,
                               wait_for, wait_leader, write_key_pair)
from simfabric_testing.daemon import free_port
from simfabric_testing.keys import read_key_pair
from simfabric_testing.federation import (claim_in_background, fed_client, federate,
                                          next_event)


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


def _key_at(member, name):
    with member.client() as client:
        return client.call("player.key", player=name)["key"]


def test_a_foreign_players_key_comes_from_its_instance_and_a_rekey_follows(instances, tmp_path):
    """federation.md section 4: east answers player.key for alice@west from
    west; west's leader pushes alice's new key, so east answers it within
    a second, well inside the cache's expiry (10 s by default)."""
    west, east = instances
    first = write_key_pair(tmp_path / "keys", "alice")
    second = write_key_pair(tmp_path / "keys2", "alice")
    with west.client(keys=first) as alice:
        alice.call("player.register", player="alice")
    assert _key_at(east, "alice@west") == first.public.decode()
    # A name of this instance is the ring's own; other names and instances
    # are refused clearly.
    assert _key_at(west, "alice@west") == first.public.decode()
    refused = {"alice@east": "no player 'alice'", "bob@west": "no player 'bob'",
               "alice@north": "no instance 'north' in federation"}
    for name, words in refused.items():
        with east.client() as client:
            with pytest.raises(ApiError) as error:
                client.call("player.key", player=name)
        assert error.value.code == "not_found" and words in error.value.message, name
    with west.client(keys=first) as alice:
        alice.call("player.register", player="alice", key=second.public.decode())
    started = time.monotonic()
    wait_for(lambda: _key_at(east, "alice@west") == second.public.decode(),
             timeout=1.0, what="east to answer alice's new key")
    assert time.monotonic() - started < 1.0


def test_a_rekey_whose_push_is_lost_reaches_the_peer_within_the_expiry(tmp_path):
    """federation.md section 4: when the push cannot reach east (west dials
    a wrong endpoint for it), east keeps answering the key it cached until
    federation_key_ttl has passed, then the new one: the stated bound."""
    ttl = 1.0
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1",
                  extra={"federation_key_ttl": int(ttl * 1000)})
    federate({"west": [west], "east": [east]})
    unreachable = types.SimpleNamespace(name="hs1", keys=east.keys,
                                        federation_endpoint=f"tcp://127.0.0.1:{free_port()}")
    west.peers = {"east": [unreachable]}
    west.write_config()
    first = write_key_pair(tmp_path / "keys", "alice")
    second = write_key_pair(tmp_path / "keys2", "alice")
    with running([west, east]):
        wait_leader([west])
        wait_leader([east])
        with west.client(keys=first) as alice:
            alice.call("player.register", player="alice")
        cached_at = time.monotonic()
        assert _key_at(east, "alice@west") == first.public.decode()
        with west.client(keys=first) as alice:
            alice.call("player.register", player="alice", key=second.public.decode())
        # Still the cached key while it is fresh ...
        if time.monotonic() - cached_at < ttl * 0.8:
            assert _key_at(east, "alice@west") == first.public.decode()
        # ... and the new one once it has expired.
        wait_for(lambda: _key_at(east, "alice@west") == second.public.decode(),
                 timeout=ttl + 2.0, what="east's cache to expire")
        assert time.monotonic() - cached_at < ttl + 2.0
        # An instance that does not answer: unavailable, within a second
        # per member asked.
        west.stop()
        asked = time.monotonic()
        with east.client() as client:
            with pytest.raises(ApiError) as error:
                client.call("player.key", player="carol@west")
        assert error.value.code == "unavailable"
        assert "instance 'west' did not answer" in error.value.message
        assert time.monotonic() - asked < 2.5
        west.start()


def test_a_peer_speaks_only_for_its_own_names(instances, tmp_path):
    """federation.md sections 4 and 9: a key pushed by east's member is
    taken for east's names only. East cannot change what west, or anyone
    asking west, believes of a name of another instance."""
    west, east = instances
    alice = write_key_pair(tmp_path / "keys", "alice")
    with west.client(keys=alice) as client:
        client.call("player.register", player="alice")
    forged = write_key_pair(tmp_path / "forged", "forged").public.decode()
    with fed_client(west, east.keys) as peer:
        for name in ("alice@west", "alice", "carol@north", "bad name@east"):
            with pytest.raises(ApiError) as error:
                peer.call("fed.rekeyed", name=name, kind="player", key=forged)
            assert error.value.code == "unauthorized", name
        # Its own name: taken as its word (and cached as such).
        peer.call("fed.rekeyed", name="bob@east", kind="player", key=forged)
    assert _key_at(west, "alice@west") == alice.public.decode()
    assert _key_at(west, "bob@east") == forged


def test_fed_claim_is_never_taken_from_an_api_client(instances):
    """federation.md section 9: the home ring takes a foreign sim's claim
    only from a peer instance over federation; on the API, whoever asks,
    administrators included, it is refused and changes nothing."""
    west, _ = instances
    with west.client() as client:
        client.call("entity.create", path="/fed/x")
    admin = read_key_pair(west.admin.secret_path)
    forged = {
        "fed.claim": dict(request="b@east/1", path="/fed/x", sim="b@east",
                          key=admin.public.decode(), instance="east"),
        "fed.expired": dict(sim="b@east", instance="east"),
        "fed.checkpoint": dict(sim="b@east", instance="east", entities=[
            {"path": "/fed/x", "epoch": 1, "checkpoint": "forged"}]),
        "fed.release": dict(path="/fed/x", sim="b@east", instance="east"),
    }
    for keys in (None, admin):
        with west.client(keys=keys) as client:
            for op, args in forged.items():
                with pytest.raises(ApiError) as error:
                    client.call(op, **args)
                assert error.value.code == "unauthorized", op
                assert "over federation only" in error.value.message
    with west.client() as client:
        assert client.call("entity.get", path="/fed/x")["authority"] is None


def test_the_home_ring_decides_a_foreign_claim_once(tmp_path):
    """federation.md sections 5 and 6, the home's side: east's member
    relays b@east's claim of west's /fed/e; west's ring grants it under
    the rule like a local claim (a new epoch, signed for b@east with the
    key east vouched for, west's sim fenced), and the same request again
    is answered the same and changes nothing. East may claim only for its
    own sims, and only the rule decides."""
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    (s1,) = make_sims(tmp_path / "west", [west], 1, names=["s1"])
    b = write_key_pair(tmp_path / "b", "b")
    with running([west, east], [s1]):
        with s1.client() as game:
            game.call("entity.create", path="/fed/e", state="start")
        with west.client() as client:
            client.call("entity.create", path="/fed/d", rule="deny")
            keys = client.call("sim.list")["ring_keys"]
        claim = {"request": "b@east/1", "path": "/fed/e", "sim": "b@east",
                 "key": b.public.decode(), "handoff": f"tcp://127.0.0.1:{free_port()}",
                 "instance": "west"}  # forged: the leader writes the sender's
        with fed_client(west, east.keys) as peer:
            granted = peer.call("fed.claim", **claim)
            assert (granted["authority"], granted["previous"], granted["epoch"]) == \
                ("b@east", "s1", 2)
            grant = granted["grant"]
            assert (grant["sim"], grant["key"], grant["epoch"]) == ("b@east", b.public.decode(), 2)
            _verify(grant, keys)
            again = peer.call("fed.claim", **claim)
            assert again["again"] is True and again["epoch"] == 2
            assert again["grant"]["sim"] == "b@east"
            for other, code in ((dict(claim, request="c@west/1", sim="c@west"), "unauthorized"),
                                (dict(claim, request="b@east/2", path="/fed/d"), "denied")):
                with pytest.raises(ApiError) as error:
                    peer.call("fed.claim", **other)
                assert error.value.code == code
        with west.client() as client:
            entity = client.call("entity.get", path="/fed/e")
        assert (entity["authority"], entity["epoch"]) == ("b@east", 2)
        # West's sim is fenced by the grant's event, as for a local claim.
        wait_for(lambda: not _sim_entity(s1, "/fed/e")["authority"],
                 what="s1 to be fenced")


def test_the_home_decides_a_batch_of_foreign_claims_each_on_its_own(tmp_path):
    """federation.md section 5, the batch form: one fed.claim of many
    claims is one command at the home, each claim decided as it would be
    alone and answered in order under its own request id. A claim whose
    rule would ask is sent back to go alone (and asks then); no refusal is
    recorded; the batch again changes nothing; a batch with another
    instance's request, a request twice or a player is refused whole."""
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    (s1,) = make_sims(tmp_path / "west", [west], 1, names=["s1"])
    b = write_key_pair(tmp_path / "b", "b")
    with running([west, east], [s1]):
        with s1.client() as game:
            for name in ("e0", "e1", "e2"):
                game.call("entity.create", path=f"/fed/{name}", state=name)
            game.call("entity.create", path="/fed/k", state="k", rule="ask")
        with west.client() as client:
            client.call("entity.create", path="/fed/d", rule="deny")
            keys = client.call("sim.list")["ring_keys"]
            s1_row = next(sim for sim in client.call("sim.list")["sims"] if sim["sim"] == "s1")
        paths = ["/fed/e0", "/fed/k", "/fed/e1", "/fed/d", "/fed/none", "/fed/e2"]
        claims = [{"request": f"b@east/{n}", "path": path} for n, path in enumerate(paths)]
        batch = {"sim": "b@east", "key": b.public.decode(),
                 "handoff": f"tcp://127.0.0.1:{free_port()}", "claims": claims}
        with fed_client(west, east.keys) as peer:
            answered = peer.call("fed.claim", **batch)
            items = answered["results"]
            assert [item["request"] for item in items] == [c["request"] for c in claims]
            assert answered["grants"] == 3
            granted = [item for item in items if item["granted"]]
            assert [item["path"] for item in granted] == ["/fed/e0", "/fed/e1", "/fed/e2"]
            for item in granted:
                # One command: one transfer id for all it grants.
                assert (item["authority"], item["previous"], item["epoch"],
                        item["transfer"]) == ("b@east", "s1", 2, answered["transfer"])
                assert (item["previous_key"], item["previous_handoff"]) == \
                    (s1_row["key"], s1_row["handoff"])
                assert item["grant"]["sim"] == "b@east"
                _verify(item["grant"], answered["ring_keys"])
            assert [k["public"] for k in answered["ring_keys"]] == [k["public"] for k in keys]
            refused = {item["path"]: item for item in items if not item["granted"]}
            assert refused["/fed/k"]["ask"] is True and "on its own" in refused["/fed/k"]["message"]
            assert (refused["/fed/d"]["error"], "ask" in refused["/fed/d"]) == ("denied", False)
            assert refused["/fed/none"]["error"] == "not_found"
            again = peer.call("fed.claim", **batch)
            assert [item.get("again", False) for item in again["results"]] == \
                [True, False, True, False, False, True]
            # Alone, the claim that would ask asks (unanswered: refused at
            # its deadline), and is refused again from then on.
            with pytest.raises(ApiError) as error:
                peer.call("fed.claim", request="b@east/1", path="/fed/k", sim="b@east",
                          key=b.public.decode(), timeout_ms=300)
            assert error.value.code == "denied"
            assert peer.call("fed.claim", **batch)["results"][1]["error"] == "denied"
            for forged, code in (
                    (dict(batch, claims=[{"request": "b@west/9", "path": "/fed/e0"}]),
                     "unauthorized"),
                    (dict(batch, claims=[claims[0], dict(claims[0], path="/fed/e1")]),
                     "invalid_argument"),
                    (dict(batch, player="alice@east", player_key=b.public.decode()),
                     "invalid_argument"),
                    (dict(batch, claims=[]), "invalid_argument"),
                    (dict(batch, claims=[{"request": "b@east/9"}]), "invalid_argument")):
                with pytest.raises(ApiError) as error:
                    peer.call("fed.claim", **forged)
                assert error.value.code == code, forged
        with west.client() as client:
            held = {path: client.call("entity.get", path=path)
                    for path in ("/fed/e0", "/fed/e1", "/fed/e2", "/fed/k", "/fed/d")}
        assert {path: (e["authority"], e["epoch"]) for path, e in held.items()} == {
            "/fed/e0": ("b@east", 2), "/fed/e1": ("b@east", 2), "/fed/e2": ("b@east", 2),
            "/fed/k": ("s1", 1), "/fed/d": (None, 0)}
        # The batch's one event fences s1 of each entity it granted.
        for name in ("e0", "e1", "e2"):
            wait_for(lambda: not _sim_entity(s1, f"/fed/{name}")["authority"],
                     what=f"s1 to be fenced of /fed/{name}")
        assert _sim_entity(s1, "/fed/k")["authority"] is True


def test_a_burst_of_foreign_claims_goes_to_the_home_together(tmp_path):
    """federation.md section 5, the batch form on the requester's side: b's
    claims that reach east in one turn go to west as one fed.claim, and
    each is answered as it would be alone: the grants share west's
    transfer id, the claim whose rule asks is asked (and refused when its
    authority does not answer), the denied one is denied."""
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    (s1,) = make_sims(tmp_path / "west", [west], 1, names=["s1"])
    b = write_key_pair(tmp_path / "b", "b")
    with running([west, east], [s1]):
        with s1.client() as game:
            for n in range(12):
                game.call("entity.create", path=f"/fed/e{n}", state=f"e{n}")
            game.call("entity.create", path="/fed/k", state="k", rule="ask")
        with west.client() as client:
            client.call("entity.create", path="/fed/d", rule="deny")
        paths = [f"/fed/e{n}" for n in range(6)] + ["/fed/k", "/fed/d"] + \
            [f"/fed/e{n}" for n in range(6, 12)]
        with east.client(keys=b) as sim_b:
            sim_b.call("sim.register", sim="b", token=admit(east, "b"),
                       handoff=f"tcp://127.0.0.1:{free_port()}")
            # Sent at once, as a sim sends the claims of one turn.
            for n, path in enumerate(paths):
                sim_b.send_raw(json.dumps({"op": "authority.request", "id": 1000 + n,
                                           "path": f"{path}@west", "sim": "b",
                                           "request": f"burst{n}"}).encode())
            replies = {}
            deadline = time.monotonic() + 15
            while len(replies) < len(paths) and time.monotonic() < deadline:
                reply = json.loads(sim_b.recv_raw(15)[-1])
                replies[paths[reply["id"] - 1000]] = reply
        assert len(replies) == len(paths)
        grants = [replies[path] for path in paths if path.startswith("/fed/e")]
        assert all(reply["ok"] and (reply["authority"], reply["epoch"], reply["previous"])
                   == ("b", 2, "s1@west") for reply in grants), grants
        assert all(reply["ring_keys"] and reply["grant"]["sim"] == "b@east"
                   for reply in grants)
        transfers = [reply["transfer"] for reply in grants]
        assert max(transfers.count(t) for t in transfers) >= 2, transfers
        asked = replies["/fed/k"]
        assert asked["error"]["code"] == "denied" and "on its own" not in \
            asked["error"]["message"], asked
        assert replies["/fed/d"]["error"]["code"] == "denied"
        with west.client() as client:
            assert client.call("entity.get", path="/fed/k")["authority"] == "s1"
            assert {client.call("entity.get", path=path)["authority"]
                    for path in paths if path.startswith("/fed/e")} == {"b@east"}


def _sim_entity(sim, path):
    with sim.client() as game:
        return game.call("entity.get", path=path)


def _verify(grant, ring_keys):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from zmq.utils import z85

    from simfabric_testing import state as sd
    (listed,) = [key for key in ring_keys if key["key_id"] == grant["key_id"]]
    body = sd.grant_body(grant["path"], grant["epoch"], grant["sim"], grant["key"],
                         grant["transfer"])
    root = sd.grant_root(body, grant["leaves"], grant["leaf"], z85.decode(grant["proof"]))
    Ed25519PublicKey.from_public_bytes(z85.decode(listed["public"])).verify(
        z85.decode(grant["signature"]),
        sd.grant_signed_message(grant["key_id"], grant["leaves"], root))


def test_a_sims_claim_of_a_foreign_entity_goes_through_its_own_ring(tmp_path):
    """federation.md section 5, the requester's side: sim b of east asks
    its own ring for /fed/e@west; east's leader vouches for b (its
    registered key and endpoints) and sends the claim on; b gets west's
    grant, with what it needs to take the entity from s1 (s1's key and
    handoff endpoint, west's signing keys) and names made global. The same
    request id again is the same claim; a key not b's, an instance not in
    the federation and a malformed path are refused and change nothing."""
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    (s1,) = make_sims(tmp_path / "west", [west], 1, names=["s1"])
    b = write_key_pair(tmp_path / "b", "b")
    other = write_key_pair(tmp_path / "other", "other")
    handoff = f"tcp://127.0.0.1:{free_port()}"
    with running([west, east], [s1]):
        with s1.client() as game:
            game.call("entity.create", path="/fed/e", state="start")
        with west.client() as client:
            client.call("entity.create", path="/fed/x")
            keys = client.call("sim.list")["ring_keys"]
            s1_row = next(sim for sim in client.call("sim.list")["sims"] if sim["sim"] == "s1")
        with east.client(keys=b) as sim_b:
            sim_b.call("sim.register", sim="b", token=admit(east, "b"), handoff=handoff)
            for path, code, words in (("/fed/e@north", "not_found", "no instance 'north'"),
                                      ("/fed/nothing@west", "not_found", "/fed/nothing"),
                                      ("fed@west", "invalid_argument", "PATH@INSTANCE"),
                                      ("/fed/e@West", "invalid_argument", "PATH@INSTANCE")):
                with pytest.raises(ApiError) as error:
                    sim_b.call("authority.request", path=path, sim="b")
                assert error.value.code == code and words in error.value.message, path
            granted = sim_b.call("authority.request", path="/fed/e@west", sim="b",
                                 request="r1")
            assert (granted["path"], granted["home"], granted["home_path"]) == \
                ("/fed/e@west", "west", "/fed/e")
            assert (granted["authority"], granted["previous"], granted["epoch"]) == \
                ("b", "s1@west", 2)
            assert granted["granted"] is True
            assert (granted["previous_key"], granted["previous_handoff"]) == \
                (s1_row["key"], s1_row["handoff"])
            grant = granted["grant"]
            assert (grant["sim"], grant["key"], grant["path"], grant["epoch"]) == \
                ("b@east", b.public.decode(), "/fed/e", 2)
            assert [k["public"] for k in granted["ring_keys"]] == [k["public"] for k in keys]
            _verify(grant, granted["ring_keys"])
            again = sim_b.call("authority.request", path="/fed/e@west", sim="b", request="r1")
            assert (again["epoch"], again["again"]) == (2, True)
        # Only b's own key claims for b.
        with east.client(keys=other) as outsider:
            with pytest.raises(ApiError) as error:
                outsider.call("authority.request", path="/fed/x@west", sim="b")
            assert error.value.code == "unauthorized"
        # A path of east itself is east's own entity, claimed as usual.
        with east.client(keys=b) as sim_b:
            with pytest.raises(ApiError) as error:
                sim_b.call("authority.request", path="/fed/e@east", sim="b")
            assert error.value.code == "not_found" and "'/fed/e'" in error.value.message
        with west.client() as client:
            assert client.call("entity.get", path="/fed/x")["authority"] is None
            entity = client.call("entity.get", path="/fed/e")
            assert (entity["authority"], entity["epoch"]) == ("b@east", 2)
            foreign = next(sim for sim in client.call("sim.list")["sims"]
                           if sim["sim"] == "b@east")
            assert (foreign["key"], foreign["handoff"]) == (b.public.decode(), handoff)


def _counters(daemon):
    with daemon.client() as client:
        return client.call("counters")["counters"]


@pytest.fixture
def two_worlds(tmp_path):
    """West (a ring of one, sim s1) and east (a ring of one, sim b),
    federated, every sim real."""
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1")
    federate({"west": [west], "east": [east]})
    (s1,) = make_sims(tmp_path / "west", [west], 1, names=["s1"])
    (b,) = make_sims(tmp_path / "east", [east], 1, names=["b"])
    # Each instance's sims know their own instance's only.
    with running([west, east]), running([], [s1]), running([], [b]):
        yield west, east, s1, b


def test_case_1_a_sim_takes_another_instances_entity_with_its_final_state(two_worlds):
    """federation.md section 5 end to end: b (east) claims /fed/e@west
    from its own sim API; west's ring grants it, s1 is fenced and hands
    its final state to b over the handoff channel, whose session b admits
    for that transfer only. b then holds the entity as /fed/e@west with
    s1's last state and edits it; s1 may no longer."""
    west, east, s1, b = two_worlds
    with s1.client() as game1:
        game1.call("entity.create", path="/fed/e", state="v1")
        game1.call("entity.update", path="/fed/e", state="final from s1")
    with b.client() as game_b:
        claimed = game_b.call("entity.claim", path="/fed/e@west", timeout=10)
        assert (claimed["authority"], claimed["epoch"], claimed["previous"]) == \
            (True, 2, "s1@west")
        assert claimed["from"] == "handoff" and claimed["state"] == "final from s1"
        game_b.call("entity.update", path="/fed/e@west", state="b now")
        entity = game_b.call("entity.get", path="/fed/e@west")
        assert (entity["authority"], entity["epoch"], entity["state"]) == (True, 2, "b now")
        # Nothing of east's own is touched: /fed/e here is another entity.
        with pytest.raises(ApiError) as error:
            game_b.call("entity.get", path="/fed/e")
        assert error.value.code == "not_found"
    with west.client() as client:
        entity = client.call("entity.get", path="/fed/e")
    assert (entity["authority"], entity["epoch"]) == ("b@east", 2)
    with s1.client() as game1:
        wait_for(lambda: game1.call("entity.get", path="/fed/e")["authority"] is False,
                 what="s1 to be fenced")
        with pytest.raises(ApiError) as denied:
            game1.call("entity.update", path="/fed/e", state="late")
        assert denied.value.code == "denied"
    assert _counters(b)["handoffs_accepted"] == 1
    assert _counters(s1)["handoffs_acked"] == 1


def test_the_home_takes_its_entity_back_and_the_foreign_sim_is_fenced(two_worlds):
    """federation.md section 6: when west grants /fed/e to s1 again, west
    tells east (fed.fenced), east's feed tells b, and b stops and hands
    s1 its final state: one authority, and the state b wrote survives."""
    west, east, s1, b = two_worlds
    with s1.client() as game1:
        game1.call("entity.create", path="/fed/e", state="v1")
    with b.client() as game_b:
        game_b.call("entity.claim", path="/fed/e@west", timeout=10)
        game_b.call("entity.update", path="/fed/e@west", state="written by b")
    with s1.client() as game1:
        back = game1.call("entity.claim", path="/fed/e", timeout=10)
    assert (back["authority"], back["epoch"], back["previous"]) == (True, 3, "b@east")
    assert back["from"] == "handoff" and back["state"] == "written by b"
    with b.client() as game_b:
        wait_for(lambda: game_b.call("entity.get", path="/fed/e@west")["authority"] is False,
                 what="b to be fenced")
        with pytest.raises(ApiError) as denied:
            game_b.call("entity.update", path="/fed/e@west", state="late")
        assert denied.value.code == "denied"
    with west.client() as client:
        entity = client.call("entity.get", path="/fed/e")
    assert (entity["authority"], entity["epoch"]) == ("s1", 3)


def test_the_home_applies_every_rule_to_a_foreign_claim(two_worlds, tmp_path):
    """federation.md section 5: ask (the authority's game approves, denies,
    or does not answer in time), deny, and a master's claim: the player
    b acts for has, in b's instance, the key of the entity's master in
    the home, so its claim passes the deny rule; another player's does
    not. Each refusal changes nothing at the home."""
    west, east, s1, b = two_worlds
    alice = write_key_pair(tmp_path / "alice", "alice")
    mallory = write_key_pair(tmp_path / "mallory", "mallory")
    with west.client(keys=alice) as player:
        player.call("player.register", player="alice")
    for keys in (alice, mallory):
        with east.client(keys=keys) as player:
            player.call("player.register", player=keys.public_path.stem)
    with s1.client() as game1:
        for name in ("approved", "refused", "unanswered"):
            game1.call("entity.create", path=f"/fed/{name}", state=name, rule="ask")
        game1.call("entity.create", path="/fed/denied", state="no", rule="deny")
    with west.client(keys=alice) as player:
        # Created by alice's key: she is its master (homeserver-api.md).
        player.call("entity.create", path="/fed/mastered", rule="deny", authority="s1",
                    checkpoint="m")
    with s1.client() as game1:
        game1.call("subscribe", prefix="/fed/")
        for name, approve in (("approved", True), ("refused", False)):
            thread, landed = claim_in_background(b, f"/fed/{name}@west")
            ask = next_event(game1, "ask")
            assert (ask["path"], ask["to"]) == (f"/fed/{name}", "b@east")
            game1.call("authority.answer", transfer=ask["transfer"], approve=approve)
            thread.join(15)
            reply = landed["reply"]
            if approve:
                assert reply["ok"] and (reply["epoch"], reply["state"], reply["from"]) == \
                    (2, name, "handoff"), reply
            else:
                assert reply["error"]["code"] == "denied", reply
        thread, landed = claim_in_background(b, "/fed/unanswered@west")
        assert next_event(game1, "ask")["path"] == "/fed/unanswered"
        thread.join(15)
        assert landed["reply"]["error"]["code"] == "denied", landed["reply"]
    with b.client() as game_b:
        for path, player in (("/fed/denied@west", None), ("/fed/mastered@west", "mallory")):
            with pytest.raises(ApiError) as error:
                game_b.call("entity.claim", path=path, timeout=10,
                            **({"player": player} if player else {}))
            assert error.value.code == "denied", path
        mastered = game_b.call("entity.claim", path="/fed/mastered@west", player="alice",
                               timeout=10)
        assert (mastered["authority"], mastered["epoch"]) == (True, 2)
    with west.client() as client:
        held = {name: client.call("entity.get", path=f"/fed/{name}")
                for name in ("approved", "refused", "unanswered", "denied", "mastered")}
    assert {name: (e["authority"], e["epoch"]) for name, e in held.items()} == {
        "approved": ("b@east", 2), "refused": ("s1", 1), "unanswered": ("s1", 1),
        "denied": ("s1", 1), "mastered": ("b@east", 2)}


def test_fabricctl_traces_a_transfer_across_instances_and_counts_its_hops(two_worlds):
    """federation.md section 8: the Case 1 transfer's id is the home's,
    written TRANSFER@west on the requester's side; fabricctl trace reads
    east's daemons and, with --peer-server, west's, and walks the critical
    path across both: 3 + 2H hops at most (H = 1 here), the same 4 either
    way (request, request, event, handoff, or request, request, reply,
    reply)."""
    west, east, s1, b = two_worlds
    with s1.client() as game1:
        game1.call("entity.create", path="/fed/t", state="v1")
    with b.client() as game_b:
        claimed = game_b.call("entity.claim", path="/fed/t@west", timeout=10)
    trace = f"{claimed['transfer']}@west"
    command = [str(binary("fabricctl")), "trace", trace, "--json", "--server", east.endpoint,
               "--server-key", str(east.keys.public_path), "--peer-server", west.endpoint,
               "--peer-server-key", str(west.keys.public_path)]

    def walked():
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        analysis = json.loads(done.stdout)
        return analysis["hops"] >= 4 and analysis

    analysis = wait_for(walked, timeout=5, what="the whole path in the records")
    path = [(m["msg"], m["from"], m["to"]) for m in analysis["messages"] if m["critical"]]
    assert analysis["hops"] == 4 <= 3 + 2 * 1, path
    assert path[:2] == [("request", "b@east", "hs1@east"), ("request", "hs1@east", "hs1@west")]
    assert path[2:] in ([("event", "hs1@west", "s1@west"), ("handoff", "s1@west", "b@east")],
                        [("reply", "hs1@west", "hs1@east"), ("reply", "hs1@east", "b@east")])
    # Without the other instance's records the walk stops at its edge,
    # and says so.
    done = subprocess.run(command[:-4], capture_output=True, text=True, timeout=30)
    assert "instance west's records not read" in done.stderr


def test_a_homeserver_stops_cleanly_with_a_claim_on_its_way(two_worlds):
    """A requesting member stopped while a claim it sent on waits at the
    home (on an ask): it answers the sim unavailable and exits cleanly,
    having nothing left to do for a claim it gave up on."""
    west, east, s1, b = two_worlds
    with s1.client() as game1:
        game1.call("subscribe", prefix="/fed/")
        game1.call("entity.create", path="/fed/s", state="v1", rule="ask")
        thread, landed = claim_in_background(b, "/fed/s@west", timeout=20)
        next_event(game1, "ask")
        assert east.stop() == 0
    thread.join(30)
    assert not landed["reply"]["ok"]


@pytest.mark.parametrize("told", ["push", "pull"])
def test_a_dead_foreign_sims_entities_are_orphaned_at_their_home(tmp_path, told):
    """federation.md section 6: b (east) holds two of west's entities and
    dies. West orphans what b held there, told by east when east's ring
    expires b (the push: b held one of east's entities too), or by asking
    east, whose leader says b's lease there expired (the pull: b held
    nothing of east's, so east had nothing to expire). b saved what it
    wrote to west through east (fed.checkpoint, section 7), so the next
    claim at west starts from b's last state; west's other entities stay
    as they were. Only b's key saves for b."""
    west = Daemon("homeserver", "hs1", tmp_path / "west" / "hs1")
    east = Daemon("homeserver", "hs1", tmp_path / "east" / "hs1", extra={"sim_lease": 1500})
    federate({"west": [west], "east": [east]})
    (s1,) = make_sims(tmp_path / "west", [west], 1, names=["s1"])
    (b,) = make_sims(tmp_path / "east", [east], 1, names=["b"],
                     extra={"heartbeat": 200, "ring_checkpoint": 200})
    with running([west, east]), running([], [s1]):
        b.start()
        try:
            with s1.client() as game1:
                for name in ("e", "f", "g"):
                    game1.call("entity.create", path=f"/fed/{name}", state=name)
            with b.client() as game_b:
                if told == "push":
                    game_b.call("entity.create", path="/east/own", state="b's")
                for name in ("e", "f"):
                    game_b.call("entity.claim", path=f"/fed/{name}@west", timeout=10)
                game_b.call("entity.update", path="/fed/e@west", state="written by b")
            with west.client() as client:
                assert client.call("entity.get", path="/fed/e")["authority"] == "b@east"
                wait_for(lambda: client.call("entity.get", path="/fed/e").get("checkpoint")
                         == "written by b", what="b's state to be saved at west")
            # A key not b's saves nothing for b.
            with east.client() as outsider:
                with pytest.raises(ApiError) as error:
                    outsider.call("entity.checkpoint", sim="b", entities=[
                        {"path": "/fed/e@west", "epoch": 2, "checkpoint": "forged"}])
                assert error.value.code == "unauthorized"
            feed = west.subscribe("sim:b@east")
            try:
                b.kill()
                expired = _next_op(feed, "fed.expired", timeout=20)["result"]
                # Who said so: east (its push), or none (west's own command,
                # which may come first: west asks every 5 s, and then the
                # push still comes, orphaning nothing more).
                if told == "push" and "instance" not in expired:
                    expired = _next_op(feed, "fed.expired", timeout=20)["result"]
            finally:
                feed.close(0)
            assert expired["sim"] == "b@east"
            assert expired.get("instance") == ("east" if told == "push" else None)
            if told == "pull":
                assert "b@east's instance says its lease expired" in west.log()
            with west.client() as client:
                wait_for(lambda: {client.call("entity.get", path=f"/fed/{name}")["authority"]
                                  for name in ("e", "f")} == {None},
                         what="west to orphan what b held")
                entity = client.call("entity.get", path="/fed/e")
                assert entity["epoch"] == 2  # the epoch stays; the next grant is 3
                assert client.call("entity.get", path="/fed/g")["authority"] == "s1"
            with s1.client() as game1:
                back = game1.call("entity.claim", path="/fed/e", timeout=10)
            assert (back["epoch"], back["from"], back["state"]) == \
                (3, "checkpoint", "written by b")
        finally:
            b.stop()


def _next_op(feed, op, timeout):
    """The next event of OP on FEED (a SUB socket of a homeserver)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if feed.poll(int(max(0.01, deadline - time.monotonic()) * 1000)):
            event = json.loads(feed.recv_multipart()[-1])
            if event["op"] == op:
                return event
    raise AssertionError(f"no {op} event in {timeout} s")


def test_a_foreign_authority_releases_the_entity_to_its_home(two_worlds, tmp_path):
    """federation.md section 7: b (east) gives up west's /fed/e with its
    last state; east vouches for b and west orphans the entity with that
    state as its checkpoint, so s1's next claim starts from it. b keeps no
    replica of it; a key not b's releases nothing; releasing what b does
    not hold is a conflict."""
    west, east, s1, b = two_worlds
    with s1.client() as game1:
        game1.call("entity.create", path="/fed/e", state="v1")
        game1.call("entity.create", path="/fed/k", state="k")
    with b.client() as game_b:
        game_b.call("entity.claim", path="/fed/e@west", timeout=10)
        game_b.call("entity.update", path="/fed/e@west", state="released by b")
    outsider_keys = write_key_pair(tmp_path / "outsider", "outsider")
    with east.client(keys=outsider_keys) as outsider:
        with pytest.raises(ApiError) as error:
            outsider.call("authority.release", path="/fed/e@west", sim="b", checkpoint="x")
        assert error.value.code == "unauthorized"
    with b.client() as game_b:
        released = game_b.call("entity.release", path="/fed/e@west")
        assert released["released"] is True
        with pytest.raises(ApiError) as error:
            game_b.call("entity.get", path="/fed/e@west")
        assert error.value.code == "not_found"
        with pytest.raises(ApiError) as error:
            game_b.call("entity.release", path="/fed/k@west")
        assert error.value.code in ("not_found", "denied")
    with west.client() as client:
        entity = client.call("entity.get", path="/fed/e")
    assert (entity["authority"], entity["epoch"], entity["checkpoint"]) == \
        (None, 2, "released by b")
    with east.client(keys=b.keys) as as_b:
        # b's own key, but b no longer holds it: west says so.
        with pytest.raises(ApiError) as error:
            as_b.call("authority.release", path="/fed/e@west", sim="b")
        assert error.value.code == "conflict"
    with s1.client() as game1:
        back = game1.call("entity.claim", path="/fed/e", timeout=10)
    assert (back["epoch"], back["from"], back["state"]) == (3, "checkpoint", "released by b")
