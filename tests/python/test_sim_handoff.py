"""The handoff channel between simulation servers (protocol/handoff.md):
bulk copies in credit-limited chunks; only registered sims get a session;
a client never talks to a server that cannot prove the directory's key."""

import struct
import time

import pytest
import zmq

from simfabric_testing import ApiError, admit, make_ring, make_sims, running, write_key_pair

from simfabric_testing.wait import wait_for
from simfabric_testing.grants import own
from test_sim_stream import counters


@pytest.fixture
def fabric(tmp_path):
    """A one-member ring; sim1 streams nothing sim2 watches, so whatever
    sim2 holds came over the handoff channel."""
    ring = make_ring(tmp_path, 1)
    (sim1,) = make_sims(tmp_path, ring, extra={"heartbeat": 200}, names=["sim1"])
    (sim2,) = make_sims(tmp_path, ring, extra={"heartbeat": 200, "watch": "/elsewhere/"},
                        names=["sim2"])
    sims = [sim1, sim2]
    with running(ring, sims):
        yield ring, sims


def entity(path: str, epoch: int, seq: int, state: bytes) -> bytes:
    raw = path.encode()
    return struct.pack(">H", len(raw)) + raw + struct.pack(">QQI", epoch, seq, len(state)) + state


def chunk_entity(path: str, epoch: int, seq: int, state: bytes, grant: bytes = b"") -> bytes:
    """A CHUNK's entity: the entity, then its grant (none: length 0)."""
    return entity(path, epoch, seq, state) + struct.pack(">H", len(grant)) + grant


def chunk(transfer: int, number: int, entities: list[bytes], last=True) -> bytes:
    return (b"SH\x02\x03" + struct.pack(">QIBH", transfer, number, 1 if last else 0, len(entities))
            + b"".join(entities))


def test_copy_carries_many_entities_in_chunks(fabric):
    _, (sim1, sim2) = fabric
    state = "x" * 700  # room for the grant before it in a datagram
    with sim1.client() as game:
        for n in range(400):
            game.call("entity.create", path=f"/world/big/e{n:03d}", state=f"{n:03d}{state}")
        game.call("entity.create", path="/other/skipped", state="not under the prefix")
        result = game.call("entity.copy", to="sim2", prefix="/world/big/", timeout=30)
    assert result["entities"] == 400
    assert result["chunks"] >= 2  # 320 kB in chunks of at most 256 KiB
    with sim2.client() as reader:
        page = reader.call("entity.list", prefix="/", limit=1000)["entities"]
    assert [e["path"] for e in page] == [f"/world/big/e{n:03d}" for n in range(400)]
    assert all(e["source"] == "sim1" and e["state"].startswith(e["path"][-3:]) for e in page)
    assert counters(sim2)["update_unwatched"] >= 300  # the stream did not bring them
    assert counters(sim2)["chunks_received"] == result["chunks"]
    # Nothing to copy is a copy too; an unknown sim is not.
    with sim1.client() as game:
        assert game.call("entity.copy", to="sim2", prefix="/nothing/")["entities"] == 0
        with pytest.raises(ApiError) as unknown:
            game.call("entity.copy", to="nobody")
    assert unknown.value.code == "not_found"


def _register(ring, keys, name, handoff):
    with ring[0].client(keys=keys) as client:
        return client.call("sim.register", sim=name, handoff=handoff,
                           token=admit(ring, name))


def _listed(sim, name, registered_ms):
    """Wait until SIM's directory holds NAME's registration of
    REGISTERED_MS. The handoff channel and the stream take their peers
    from the same directory listing, the channel first, so the stream's
    peer list (counters) shows what the channel knows."""
    def seen():
        peers = counters_peers(sim)
        return any(p["sim"] == name and p["registered_ms"] == registered_ms for p in peers)
    wait_for(seen, what=f"{sim.name} to list {name}")


def counters_peers(sim):
    with sim.client() as client:
        return client.call("counters")["peers"]


def _dealer(server, keys=None):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.curve_serverkey = server.keys.public
    if keys is None:
        socket.curve_publickey, socket.curve_secretkey = zmq.curve_keypair()
    else:
        socket.curve_publickey, socket.curve_secretkey = keys.public, keys.secret
    socket.connect(server.handoff_endpoint)
    return socket


def test_only_registered_sims_get_a_session(fabric, tmp_path):
    ring, (_, sim2) = fabric
    frame = chunk(5, 1, [chunk_entity("/py/copied", 1, 1, b"from py")])
    stranger = _dealer(sim2)
    stranger.send(frame)
    assert not stranger.poll(1500), "an unregistered key got an answer"
    stranger.close()
    assert counters(sim2)["chunks_received"] == 0

    keys = write_key_pair(tmp_path / "py", "py")
    registered = _register(ring, keys, "py", "tcp://127.0.0.1:1")
    _listed(sim2, "py", registered["registered_ms"])
    # py's entity by the ring's grant, which a receiver needs to apply it.
    grant = own(ring[0], keys, "py", "/py/copied")
    frame = chunk(5, 1, [chunk_entity("/py/copied", 1, 1, b"from py", grant)])
    member = _dealer(sim2, keys)
    member.send(frame)
    assert member.poll(5000), "a registered sim got no answer"
    ack = member.recv()
    assert ack[:4] == b"SH\x02\x04"
    transfer, number, credit, status = struct.unpack(">QIIB", ack[4:])
    assert (transfer, number, status) == (5, 1, 0) and credit >= 1
    # An authority handoff moves nothing by itself: sim2 holds it for a
    # grant of its own that never comes, and stays a replica.
    member.send(b"SH\x02\x01" + struct.pack(">Q", 6) + entity("/py/copied", 9, 1, b"mine now"))
    assert member.poll(5000)
    answer = member.recv()
    assert answer[:4] == b"SH\x02\x02"
    member.close()
    with sim2.client() as reader:
        copied = reader.call("entity.get", path="/py/copied")
    assert (copied["state"], copied["source"], copied["epoch"]) == ("from py", "py", 1)
    assert copied["authority"] is False


def test_a_server_without_the_directory_key_is_refused(fabric, tmp_path):
    ring, (sim1, _) = fabric
    keys = write_key_pair(tmp_path / "py", "py")
    context = zmq.Context.instance()

    def server(secret_public, secret):
        socket = context.socket(zmq.ROUTER)
        socket.linger = 0
        socket.curve_server = True
        socket.curve_publickey, socket.curve_secretkey = secret_public, secret
        port = socket.bind_to_random_port("tcp://127.0.0.1", 20000, 31999)
        return socket, f"tcp://127.0.0.1:{port}"

    with sim1.client() as game:
        game.call("entity.create", path="/world/secret", state="for py only")
    impostor, endpoint = server(*zmq.curve_keypair())
    registered = _register(ring, keys, "py", endpoint)
    _listed(sim1, "py", registered["registered_ms"])
    with sim1.client() as game:
        failed = game.request("entity.copy", to="py", prefix="/world/", timeout=20)
    assert failed["ok"] is False and failed["error"]["code"] == "timeout"
    assert not impostor.poll(100), "the client spoke to a server with another key"
    impostor.close()

    genuine, endpoint = server(keys.public, keys.secret)
    registered = _register(ring, keys, "py", endpoint)
    _listed(sim1, "py", registered["registered_ms"])
    with sim1.client() as game:
        game.send_raw(b'{"op": "entity.copy", "id": "c", "to": "py", "prefix": "/world/"}')
        assert genuine.poll(5000), "the genuine server heard nothing"
        routing, frame = genuine.recv_multipart()
        assert frame[:4] == b"SH\x02\x03" and b"for py only" in frame
        transfer, number = struct.unpack(">QI", frame[4:16])
        genuine.send_multipart([routing, b"SH\x02\x04" + struct.pack(">QIIB", transfer, number, 4, 0)])
        reply = game.recv_raw(5)
    assert b'"ok":true' in reply[-1].replace(b" ", b"") and b'"entities":1' in reply[-1].replace(b" ", b"")
    genuine.close()
