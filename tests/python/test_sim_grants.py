"""An admitted outsider can change nothing it was not granted (issue 22,
protocol/grants.md sections 4 and 5): real homeserver, real simservers,
real keys, on loopback.

- `evil`, admitted with a join token and registered like any sim, sends
  sealed datagrams for sim1's entity at a far or a near newer epoch, with
  no grant, a forged one, one for another path, epoch or sim, or one
  signed by a key the ring never had: sim2's replica is unchanged, the
  reason is counted, and sim1's next updates are still applied.
- The same on the handoff channel: CHUNKs from `evil` for sim1's entity
  change nothing, are counted, and the CHUNK_ACK says refused.
- A grant signed by a rotated ring key is accepted during its grace and
  refused after (`grant_retired_key`).
- After a sim rotates its own key, its grants name the new key, so its
  peers keep applying its updates after the old key's grace.

Registration without admission is refused: test_grants.py.
"""

import signal
import socket
import struct
import time

import pytest
import zmq
from zmq.utils import z85

from simfabric_testing import admit, make_ring, make_sims, running, wait_for, write_key_pair
from simfabric_testing import state as sd
from simfabric_testing.grants import own
from simfabric_testing.keys import read_key_pair
from test_sim_handoff import chunk, chunk_entity
from test_sim_stream import _get, _peers, _state_port, counters, expect_delta

HEARTBEAT = {"heartbeat": 200, "key_grace": 1500}
TARGET = "/world/victim"


@pytest.fixture
def fabric(tmp_path):
    """A one-member ring, sim1 holding TARGET (its replica at sim2), and
    evil: an admitted sim with its own UDP socket and handoff endpoint."""
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra=HEARTBEAT)
    with running(ring, sims):
        sim1, sim2 = sims
        keys = write_key_pair(tmp_path / "evil", "evil")
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        with ring[0].client(keys=keys) as client:
            registered = client.call(
                "sim.register", sim="evil", token=admit(ring, "evil"),
                state=f"udp://127.0.0.1:{udp.getsockname()[1]}",
                handoff="tcp://127.0.0.1:1")["registered_ms"]
        wait_for(lambda: all("evil" in {p["sim"] for p in _peers(sim)} for sim in sims)
                 and all(counters(sim)["ring_keys"] >= 1 for sim in sims),
                 what="the sims to learn of evil and of the ring's key")
        with sim1.client() as game:
            game.call("entity.create", path=TARGET, state="true-0")
        wait_for(lambda: (_get(sim2, TARGET) or {}).get("state") == "true-0",
                 what="sim2's replica")
        peer = sd.Peer(keys.public, keys.secret, sim2.keys.public, registered << 16 | 9)
        yield ring, sim1, sim2, keys, peer, udp
        udp.close()


def _replica(sim, path) -> dict | None:
    """SIM's entity at PATH as entity.get shows it, the reply's envelope
    aside, or None."""
    entity = _get(sim, path)
    return entity and {k: v for k, v in entity.items() if k not in ("id", "ok")}


def _ring_grant(member, path) -> dict:
    with member.client() as client:
        return client.call("entity.grant", path=path)["grant"]


def _ring_key_id(member) -> int:
    with member.client() as client:
        keys = client.call("sim.list")["ring_keys"]
    return next(k["key_id"] for k in keys if k["retires_ms"] is None)


def _attack(fabric, epoch, grant_of, fates, grant_counters):
    """EVIL sends one sealed update of TARGET at EPOCH with the grant
    GRANT_OF returns (None: no grant record): the replica is unchanged,
    the fate counters (drops, update outcomes) change by FATES and the
    grant counters by GRANT_COUNTERS, and sim1's next update is applied."""
    ring, sim1, sim2, keys, peer, udp = fabric
    grant = grant_of(ring, sim1, keys, epoch)
    before = counters(sim2)
    replica = _replica(sim2, TARGET)
    udp.sendto(sd.udp_payload(peer.state([(TARGET, epoch, 1, b"mine now", grant)])),
               _state_port(sim2))
    expect_delta(sim2, before, **fates)
    now = counters(sim2)
    for name, value in grant_counters.items():
        assert now[name] - before[name] == value, (name, before[name], now[name])
    assert now["grants_proven"] == before["grants_proven"]
    assert _replica(sim2, TARGET) == replica
    with sim1.client() as game:
        game.call("entity.update", path=TARGET, state="true-1")
    wait_for(lambda: (_get(sim2, TARGET) or {}).get("state") == "true-1",
             what="sim1's next update at sim2")
    after = _get(sim2, TARGET)
    assert (after["epoch"], after["source"]) == (1, "sim1")


def _none(ring, sim1, keys, epoch):
    return None


def _forged(ring, sim1, keys, epoch):
    """The grant evil would need, signed by evil itself under the ring's
    current key id."""
    _, secret = sd.ring_keypair()
    return sd.grant(TARGET, epoch, "evil", keys.public, secret,
                    key_id=_ring_key_id(ring[0]))


def _other_path(ring, sim1, keys, epoch):
    """A true grant, of evil's own entity."""
    return own(ring[0], keys, "evil", "/world/evils-own")


def _other_sim(ring, sim1, keys, epoch):
    """The true grant of TARGET, which names sim1 (anyone may read it)."""
    return sd.grant_from_json(_ring_grant(ring[0], TARGET))


def _unknown_key(ring, sim1, keys, epoch):
    """The grant evil would need, signed by a key the ring never had."""
    _, secret = sd.ring_keypair()
    return sd.grant(TARGET, epoch, "evil", keys.public, secret, key_id=77)


UNPROVEN = {"update_unproven": 1}
#  A grant record is for the update after it: one of another path or
#  epoch makes the datagram malformed (state-datagram.md section 3).
MALFORMED = {"drop_malformed": 1}

#  name: (the grant, the epoch evil claims (None: the test's), fates,
#  grant counters)
ATTACKS = {
    "no grant": (_none, None, UNPROVEN, {}),
    "forged": (_forged, None, UNPROVEN, {"grant_bad_signature": 1}),
    "an unknown ring key": (_unknown_key, None, UNPROVEN, {"grant_bad_signature": 1}),
    "another path": (_other_path, None, MALFORMED, {}),
    "another epoch": (_other_sim, None, MALFORMED, {}),
    # sim1's true grant at its own epoch: it names sim1, not the sender.
    "another sim": (_other_sim, 1, UNPROVEN, {"grant_wrong_sender": 1}),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_outsider_at_a_far_epoch_changes_nothing(fabric, attack):
    grant_of, epoch, fates, grants = ATTACKS[attack]
    _attack(fabric, epoch or 1_000_000, grant_of, fates, grants)


@pytest.mark.parametrize("attack", ["no grant", "forged", "another epoch"])
def test_an_outsider_at_the_next_epoch_changes_nothing(fabric, attack):
    grant_of, epoch, fates, grants = ATTACKS[attack]
    _attack(fabric, epoch or 2, grant_of, fates, grants)


def _dealer(server, keys):
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.linger = 0
    dealer.curve_serverkey = server.keys.public
    dealer.curve_publickey, dealer.curve_secretkey = keys.public, keys.secret
    dealer.connect(server.handoff_endpoint)
    return dealer


def test_chunks_from_an_outsider_change_nothing_and_are_refused(fabric):
    ring, sim1, sim2, keys, _, _ = fabric
    true_grant = sd.grant_from_json(_ring_grant(ring[0], TARGET))
    replica = _replica(sim2, TARGET)
    dealer = _dealer(sim2, keys)
    try:
        for transfer, (epoch, grant) in enumerate(
                [(1, b""), (2, b""), (1_000_000, b""), (1, true_grant)],
                start=40):
            before = counters(sim2)
            dealer.send(chunk(transfer, 1, [chunk_entity(TARGET, epoch, 99, b"mine", grant)]))
            assert dealer.poll(5000), f"no CHUNK_ACK for {transfer}"
            ack = dealer.recv()
            assert ack[:4] == b"SH\x02\x04"
            acked, number, _, status = struct.unpack(">QIIB", ack[4:])
            assert (acked, number, status) == (transfer, 1, 1), (epoch, status)
            now = counters(sim2)
            assert now["copy_update_unproven"] == before["copy_update_unproven"] + 1
            assert now["copy_entities_received"] == before["copy_entities_received"]
            assert now["copy_grants_proven"] == before["copy_grants_proven"]
            assert _replica(sim2, TARGET) == replica
    finally:
        dealer.close()
    with sim1.client() as game:
        game.call("entity.update", path=TARGET, state="true-1")
    wait_for(lambda: (_get(sim2, TARGET) or {}).get("state") == "true-1",
             what="sim1's next update at sim2")


def test_a_former_authority_takes_the_new_grant_from_the_ring_unverified(fabric):
    """grants.md section 4: sim1, fenced by the ring's grant of TARGET to
    sim2, keeps that grant as the ring told it: sim2's first update at
    the new epoch is applied at sim1 with no signature check. What it
    keeps proves sim2 alone: evil sending at that epoch with sim2's real
    grant is still refused."""
    ring, sim1, sim2, keys, peer, udp = fabric
    before = counters(sim1)
    with sim2.client() as game:
        claimed = game.call("entity.claim", path=TARGET)
        epoch = claimed["epoch"]
        game.call("entity.update", path=TARGET, state="moved-1")
    wait_for(lambda: (_get(sim1, TARGET) or {}).get("state") == "moved-1",
             what="sim2's first update at sim1")
    now = counters(sim1)
    assert now["grants_proven"] == before["grants_proven"]
    assert now["update_unproven"] == before["update_unproven"]
    assert (_get(sim1, TARGET)["epoch"], _get(sim1, TARGET)["source"]) == (epoch, "sim2")
    to_sim1 = sd.Peer(keys.public, keys.secret, sim1.keys.public, peer.session)
    grant = _ring_grant(ring[0], TARGET)
    assert (grant["sim"], grant["epoch"]) == ("sim2", epoch)
    before = counters(sim1)
    sealed = to_sim1.state([(TARGET, epoch, 9, b"evil", sd.grant_from_json(grant))])
    udp.sendto(sd.udp_payload(sealed), _state_port(sim1))
    expect_delta(sim1, before, update_unproven=1)
    assert counters(sim1)["grant_wrong_sender"] == before["grant_wrong_sender"] + 1
    assert _get(sim1, TARGET)["state"] == "moved-1"


def test_a_grant_of_a_rotated_ring_key_is_refused_after_its_grace(fabric):
    ring, sim1, sim2, keys, peer, udp = fabric
    # Grants signed by the first key, of evil's own entities.
    early = own(ring[0], keys, "evil", "/world/evil-a")
    late = own(ring[0], keys, "evil", "/world/evil-b")
    grace_ms = 3000
    admin = read_key_pair(ring[0].admin.secret_path)
    with ring[0].client(keys=admin) as client:
        rotated = client.call("ring.rotate_key", grace_ms=grace_ms)
    (old,) = [k for k in rotated["ring_keys"] if k["retires_ms"] is not None]
    wait_for(lambda: counters(sim2)["ring_keys"] == 2, what="sim2 to learn the rotation")

    # Within its grace: accepted.
    assert time.time() * 1000 < old["retires_ms"], "the grace passed before the test could use it"
    before = counters(sim2)
    udp.sendto(sd.udp_payload(peer.state([("/world/evil-a", 1, 1, b"ok", early)])),
               _state_port(sim2))
    expect_delta(sim2, before, updates_applied=1)
    assert counters(sim2)["grants_proven"] == before["grants_proven"] + 1

    # After it: refused as retired, the update unproven.
    wait_for(lambda: time.time() * 1000 > old["retires_ms"] + 100, timeout=grace_ms / 1000 + 5,
             what="the old key's grace to pass")
    before = counters(sim2)
    udp.sendto(sd.udp_payload(peer.state([("/world/evil-b", 1, 1, b"late", late)])),
               _state_port(sim2))
    expect_delta(sim2, before, update_unproven=1)
    now = counters(sim2)
    assert now["grant_retired_key"] == before["grant_retired_key"] + 1
    assert _get(sim2, "/world/evil-b") is None
    # The honest sims' grants are signed by the new key: still applied.
    with sim1.client() as game:
        game.call("entity.create", path="/world/after-rotation", state="fresh")
    wait_for(lambda: (_get(sim2, "/world/after-rotation") or {}).get("state") == "fresh",
             what="a new entity's replica after the rotation")


def test_after_a_sim_rotates_its_key_its_updates_are_applied_past_the_grace(fabric):
    ring, sim1, sim2, _, _, _ = fabric
    fetched = counters(sim1)["grants_fetched"]
    old_keys = sim1.keys
    new_keys = write_key_pair(sim1.folder, "sim1")
    sim1.keys = old_keys  # the API keeps the key its clients pinned
    sim1.process.send_signal(signal.SIGHUP)
    wait_for(lambda: any(p["sim"] == "sim1" and p["key"] == new_keys.public.decode()
                         for p in _peers(sim2)), what="sim2 to learn sim1's new key")
    learned = time.monotonic()
    # sim1 asks the ring for grants naming its new key.
    wait_for(lambda: z85.decode(_ring_grant(ring[0], TARGET)["key"])
             == sd.key_bytes(new_keys.public), what="the ring to grant the new key")
    wait_for(lambda: counters(sim1)["grants_fetched"] > fetched
             and counters(sim1)["grants_missing"] == 0,
             what="sim1 to hold grants naming its new key")
    # Past the old key's grace at sim2, sim1's edits are still applied.
    wait_for(lambda: time.monotonic() - learned > HEARTBEAT["key_grace"] / 1000 + 0.5,
             timeout=5, what="the old key's grace to pass")
    with sim1.client() as game:
        game.call("entity.update", path=TARGET, state="after-rotation")
    wait_for(lambda: (_get(sim2, TARGET) or {}).get("state") == "after-rotation",
             what="an edit after the grace at sim2")
