"""Two simulation servers and their ring on loopback: entity state made
through one sim's API reaches the other's replica over sealed UDP, in
order; bad datagrams are dropped and counted by reason; a stopped receiver
costs the sender bounded memory and converges after it resumes; a
restarted sim never repeats a nonce."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest
import zmq

from simfabric_testing import (ApiError, admit, make_ring, make_sims, running, wait_for,
                               wait_registered, write_key_pair)
from simfabric_testing import state as sd
from simfabric_testing.grants import own, regrant
from simfabric_testing.paths import sanitized

HEARTBEAT = {"heartbeat": 200, "key_grace": 1500}


@pytest.fixture
def fabric(tmp_path):
    """A one-member ring and two registered sims; all stopped afterwards."""
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra=HEARTBEAT)
    with running(ring, sims):
        yield ring, sims


def counters(sim) -> dict:
    with sim.client() as client:
        return client.call("counters")["counters"]


def test_updates_reach_the_other_sim_in_order(fabric):
    _, (sim1, sim2) = fabric
    with sim2.client() as watcher, sim1.client() as game:
        assert watcher.call("subscribe", prefix="/world/")["prefix"] == "/world/"
        created = game.call("entity.create", path="/world/a", state="v0")
        assert (created["epoch"], created["seq"], created["authority"]) == (1, 1, True)
        for n in range(1, 201):
            assert game.call("entity.update", path="/world/a", state=f"v{n}")["seq"] == n + 1
        seqs = []
        while not seqs or seqs[-1] < 201:
            event = watcher.next_event(timeout=5)
            assert event["path"] == "/world/a" and event["epoch"] == 1
            assert event["source"] == "sim1" and event["authority"] is False
            assert event["state"] == f"v{event['seq'] - 1}"
            seqs.append(event["seq"])
        # In order: a replica never goes back, though it may skip states.
        assert seqs == sorted(set(seqs))
        replica = watcher.call("entity.get", path="/world/a")
        assert (replica["epoch"], replica["seq"], replica["state"]) == (1, 201, "v200")
        # Only the authority changes an entity.
        with pytest.raises(ApiError) as refused:
            watcher.call("entity.update", path="/world/a", state="mine")
        assert refused.value.code == "denied"


def test_many_entities_converge_to_their_newest_state(fabric):
    ring, (sim1, sim2) = fabric
    paths = [f"/world/room{n % 4}/e{n:03d}" for n in range(200)]
    with sim1.client() as game:
        for path in paths:
            game.call("entity.create", path=path, state="0")
        for round_ in range(1, 6):
            for path in paths:
                game.call("entity.update", path=path, state=str(round_))

    def converged():
        with sim2.client() as reader:
            page = reader.call("entity.list", prefix="/world/", limit=1000)["entities"]
        return len(page) == 200 and all(e["state"] == "5" and e["seq"] == 6 for e in page)

    wait_for(converged, what="every replica at its newest state")
    with sim2.client() as reader:
        rooms = reader.call("entity.match", pattern="/world/room1/*", limit=1000)
    assert len(rooms["entities"]) == 50
    assert counters(sim1)["updates_sent"] >= 200

    # The heartbeats carry the load reports to the ring's leader
    # (protocol/load.md section 2).
    def load_of(name):
        with ring[0].client() as client:
            return client.call("load")["sims"].get(name) or {}

    wait_for(lambda: load_of("sim1").get("authoritative") == 200, what="sim1's load")
    load = load_of("sim1")
    assert load["entities"] == 200 and load["replicas"] == 0
    assert load["capacity"] == 1 and load["rss_bytes"] > 1 << 20
    assert load["cpu_per_s"] >= 0 and load["age_ms"] < 5000
    # The 4 rooms of 50 entities each that sim1 holds.
    assert sorted(g["group"] for g in load["groups"]) == \
        [f"/world/room{n}" for n in range(4)]
    assert {g["entities"] for g in load["groups"]} == {50} and load["rest"]["groups"] == 0
    wait_for(lambda: load_of("sim2").get("replicas") == 200, what="sim2's load")


def test_api_refuses_bad_input_and_keeps_serving(fabric):
    _, (sim1, _) = fabric
    with sim1.client() as game:
        cases = [
            ({"op": "entity.create", "path": "no-slash"}, "invalid_argument"),
            ({"op": "entity.update", "path": "/world/none", "state": "x"}, "not_found"),
            ({"op": "entity.update", "path": "/world/x"}, "invalid_argument"),
            ({"op": "entity.get", "path": "/world/x", "bogus": 1}, "invalid_argument"),
            ({"op": "entity.list", "limit": 0}, "invalid_argument"),
            ({"op": "subscribe", "prefix": "world"}, "invalid_argument"),
            ({"op": "entity.create", "path": "/world/big", "state": "x" * 2000}, "too_large"),
        ]
        for request, code in cases:
            op = request.pop("op")
            reply = game.request(op, **request)
            assert reply["ok"] is False and reply["error"]["code"] == code, (op, reply)
        game.call("entity.create", path="/world/ok", state="fine")
        with pytest.raises(ApiError) as again:
            game.call("entity.create", path="/world/ok")
        assert again.value.code == "already_exists"
        assert game.call("unsubscribe", prefix="/world/")["unsubscribed"] is False
        assert game.call("status")["registered"] is True


@pytest.fixture
def intruder(fabric, tmp_path):
    """A Python peer registered with the ring as sim 'py', with its own UDP
    socket as state endpoint; known to both sims."""
    ring, sims = fabric
    keys = write_key_pair(tmp_path / "py", "py")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    endpoint = f"udp://127.0.0.1:{udp.getsockname()[1]}"
    with ring[0].client(keys=keys) as client:
        registered = client.call("sim.register", sim="py", state=endpoint,
                                 token=admit(ring, "py"))["registered_ms"]

    def known():
        return all("py" in {p["sim"] for p in _peers(sim)} for sim in sims)

    wait_for(known, what="the sims to learn of py")
    yield keys, registered, udp
    udp.close()


def _peers(sim):
    with sim.client() as client:
        return client.call("counters")["peers"]


def _state_port(sim) -> tuple[str, int]:
    host, port = sim.state_endpoint.removeprefix("udp://").rsplit(":", 1)
    return host, int(port)


def test_bad_datagrams_are_dropped_and_counted_by_reason(fabric, intruder):
    ring, (sim1, sim2) = fabric
    keys, registered, udp = intruder
    # py is the authority of /py/e1 at epoch 2 by the ring's grant, and
    # was at epoch 1.
    own(ring[0], keys, "py", "/py/e1")
    epoch, grant = regrant(ring[0], keys, "py", "/py/e1")
    assert epoch == 2
    target = _state_port(sim2)
    session = registered << 16 | 7
    peer = sd.Peer(keys.public, keys.secret, sim2.keys.public, session)

    def send(datagram):
        udp.sendto(sd.udp_payload(datagram), target)

    def delta(before, **expected):
        return expect_delta(sim2, before, **expected)

    # A good datagram first: our sealing is the daemon's.
    before = counters(sim2)
    good = peer.state([("/py/e1", 2, 1, b"first", grant)])
    send(good)
    before = delta(before, updates_applied=1)
    with sim2.client() as reader:
        assert reader.call("entity.get", path="/py/e1")["state"] == "first"

    send(good)  # replayed
    before = delta(before, drop_replay=1)

    flipped = bytearray(peer.state([("/py/e1", 2, 2, b"second")]))
    flipped[-20] ^= 0x04  # a bit of the body
    send(bytes(flipped))
    before = delta(before, drop_forged=1)
    send(bytes(flipped[:30]))  # truncated inside the header
    before = delta(before, drop_malformed=1)
    send(peer.state([("/py/e1", 2, 3, b"third")])[:-5])  # truncated tag
    before = delta(before, drop_forged=1)

    stranger = sd.Peer(*zmq.curve_keypair(), sim2.keys.public, session)
    send(stranger.state([("/py/e1", 2, 4, b"nobody")]))
    before = delta(before, drop_unknown_sender=1)

    stale = peer.state([("/py/e1", 1, 9, b"old epoch")])
    send(stale)
    before = delta(before, update_stale_epoch=1)

    old_run = sd.Peer(keys.public, keys.secret, sim2.keys.public, (registered - 1000) << 16)
    send(old_run.state([("/py/e1", 2, 5, b"from before a restart")]))
    before = delta(before, drop_stale_session=1)

    elsewhere = sd.Peer(keys.public, keys.secret, sim1.keys.public, session)
    send(elsewhere.state([("/py/e1", 2, 6, b"for sim1")]))
    before = delta(before, drop_wrong_receiver=1)

    with sim2.client() as reader:
        assert reader.call("entity.get", path="/py/e1")["state"] == "first"
    # The daemon keeps serving and streaming.
    with sim1.client() as game:
        game.call("entity.create", path="/world/after", state="still here")
    wait_for(lambda: _get(sim2, "/world/after"), what="a normal update after the attack")


def fates(counters) -> dict:
    """The counters that say what became of a received datagram or update:
    every drop reason, every update outcome."""
    return {name: value for name, value in counters.items()
            if name.startswith(("drop_", "update_")) or name == "updates_applied"}


def expect_delta(sim, before, **expected) -> dict:
    """Wait until SIM's counters grew by EXPECTED from BEFORE, check that
    the fate counters (drops and update outcomes) changed by exactly that,
    and no other one at all, and return them: a datagram counted under two
    reasons fails."""
    assert set(expected) <= set(fates(before)), expected

    def reached():
        now = counters(sim)
        return all(now[name] - before[name] >= value for name, value in expected.items())
    wait_for(reached, what=str(expected))
    now = counters(sim)
    changed = {name: now[name] - value for name, value in fates(before).items()
               if now[name] != value}
    assert changed == expected, changed
    return now


def quiet(sender, receiver) -> bool:
    """Whether SENDER has nothing due or in flight to RECEIVER: no update
    of its own can reach RECEIVER's counters after this."""
    peer = next(p for p in _peers(sender) if p["sim"] == receiver.name)
    return peer["due"] == 0 and peer["in_flight"] == 0


def _get(sim, path):
    with sim.client() as client:
        reply = client.request("entity.get", path=path)
    return reply if reply["ok"] else None


def _sessions_seen(udp, sender_key_id, count) -> list[tuple[int, int]]:
    seen = []
    while len(seen) < count:
        payload, _ = udp.recvfrom(9000)
        head = sd.parse_header(payload[1 + len(sd.GROUP):])
        if head["sender"] == sender_key_id:
            seen.append((head["session"], head["counter"]))
    return seen


def test_restart_starts_a_new_session_and_never_repeats_a_nonce(fabric, intruder):
    ring, (sim1, _) = fabric
    keys, _, udp = intruder
    sender = sd.key_bytes(sim1.keys.public)[:8]
    with sim1.client() as game:
        game.call("entity.create", path="/world/n1", state="a")
    first = _sessions_seen(udp, sender, 1)
    assert sim1.stop() == 0
    sim1.start()
    wait_registered([sim1], peers=False)
    with sim1.client() as game:
        status = game.call("status")
        game.call("entity.create", path="/world/n2", state="b")
    second = _sessions_seen(udp, sender, 1)
    (old_session, _), (new_session, _) = first[0], second[0]
    assert new_session != old_session
    assert new_session == status["session"]
    assert new_session >> 16 == status["registered_ms"]
    # The counters start again at 1, but under another session, hence
    # another key and another nonce.
    payload = None
    while payload is None or sd.parse_header(payload)["sender"] != sender:
        payload = udp.recvfrom(9000)[0][1 + len(sd.GROUP):]
    peer = sd.Peer(keys.public, keys.secret, sim1.keys.public, 1)
    head = sd.parse_header(payload)
    body = sd.open_sealed(peer.key_from(sim1.keys.public, head["session"]), payload)
    assert body is not None
    assert sd.open_sealed(peer.key_from(sim1.keys.public, old_session), payload) is None


def _rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_stopped_receiver_costs_bounded_memory_and_converges(fabric):
    _, (sim1, sim2) = fabric
    paths = [f"/world/s{n:03d}" for n in range(100)]
    with sim1.client() as game:
        for path in paths:
            game.call("entity.create", path=path, state="0")
        wait_for(lambda: counters(sim2)["updates_applied"] >= 100, what="first states")
        os.kill(sim2.process.pid, signal.SIGSTOP)
        try:
            rss = []
            for round_ in range(1, 31):
                for path in paths:
                    game.call("entity.update", path=path, state=f"{round_:04d}" * 8)
                if round_ in (10, 30):
                    rss.append(_rss_kib(sim1.process.pid))
            stalled = counters(sim1)
            assert stalled["entities_due"] <= len(paths)
            assert stalled["datagrams_in_flight"] <= 64
            assert stalled["updates_coalesced"] > 0
            assert stalled["credit_stalls"] > 0
            # Twenty more rounds of changes did not grow the sender (under
            # ASan, freed memory sits in quarantine: the counters above
            # are the bound there).
            if not sanitized():
                assert rss[1] - rss[0] < 2048, rss
        finally:
            os.kill(sim2.process.pid, signal.SIGCONT)

    def converged():
        with sim2.client() as reader:
            page = reader.call("entity.list", prefix="/world/s", limit=1000)["entities"]
        return len(page) == 100 and all(e["state"] == "0030" * 8 for e in page)

    wait_for(converged, timeout=20, what="every replica at its newest state")


def kernel_receive_buffer(port: int) -> int:
    """SO_RCVBUF as the kernel holds it for the UDP socket bound to PORT
    (ss's `rb`), read from outside the sim."""
    shown = subprocess.run(["ss", "-u", "-a", "-n", "-m", f"sport = :{port}"],
                           capture_output=True, text=True, check=True).stdout
    sizes = re.findall(r"\brb(\d+)", shown)
    assert len(sizes) == 1, shown
    return int(sizes[0])


def test_the_state_socket_gets_the_receive_buffer_asked_for(tmp_path):
    """libzmq does not apply ZMQ_RCVBUF to UDP: the sim sizes its DISH's
    socket itself, and grants credit from what the kernel gave."""
    asked = 1 << 20
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra={**HEARTBEAT, "datagram_size": 8189,
                                               "receive_buffer": asked})
    cap = int(open("/proc/sys/net/core/rmem_max").read())
    given = min(asked, cap)
    with running(ring, sims):
        sim1, sim2 = sims
        assert counters(sim2)["receive_buffer"] == given
        port = int(sim2.state_endpoint.rsplit(":", 1)[1])
        # The kernel doubles a request for its bookkeeping.
        assert kernel_receive_buffer(port) == 2 * given
        # Full datagrams (one 7,700-byte state each, with room for the grant
        # that goes before it, state-datagram.md section 3): the credit sim2 grants
        # sim1 is its configured credit, 64, where the kernel's default
        # buffer would hold 13 of them. The grant is what the buffer decides;
        # the window sim1 uses grows toward it with acknowledgements and
        # shrinks on losses, which a busy machine's scheduling can cause.
        with sim1.client() as game:
            for n in range(100):
                game.call("entity.create", path=f"/world/big{n:03d}", state="x" * 7700)
        expected = min(64, given // 8189)

        def peer(sim, name):
            with sim.client() as client:
                peers = client.call("counters")["peers"]
            return next(p for p in peers if p["sim"] == name)

        wait_for(lambda: peer(sim2, "sim1")["grants"] == expected
                 and peer(sim1, "sim2")["granted"] == expected,
                 what=f"a grant of {expected} from sim2 to sim1")
    # Out of range: refused at start, naming the key.
    result = subprocess.run([*sim1.command(), "--receive-buffer", "1000"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "sim/receive_buffer" in result.stderr and "65536..268435456" in result.stderr


def test_a_second_sim_on_the_same_state_endpoint_is_refused(fabric, tmp_path):
    """libzmq binds a DISH with SO_REUSEADDR, so Linux would let a second
    sim bind the same UDP port and take a share of the first one's
    datagrams: it stops at start instead, naming the endpoint."""
    ring, (sim1, sim2) = fabric
    (third,) = make_sims(tmp_path, ring, 1, names=["sim3"])
    second = subprocess.run([*third.command(), "--state", sim1.state_endpoint],
                            capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert (f"state endpoint '{sim1.state_endpoint}' is in use by another socket"
            in second.stderr), second.stderr
    # sim1 still receives every datagram sim2 sends it.
    with sim2.client() as game:
        game.call("entity.create", path="/world/after", state="v0")
        for n in range(1, 51):
            game.call("entity.update", path="/world/after", state=f"v{n}")

    def replicated():
        with sim1.client() as reader:
            try:
                return reader.call("entity.get", path="/world/after")["state"] == "v50"
            except ApiError:
                return False

    wait_for(replicated, what="sim1's replica at v50")


def test_fabricctl_prints_counters_and_peers(fabric):
    import subprocess

    from simfabric_testing import binary

    _, (sim1, sim2) = fabric
    with sim1.client() as game:
        game.call("entity.create", path="/world/c", state="x")
    wait_for(lambda: _get(sim2, "/world/c"), what="the replica")
    result = subprocess.run(
        [str(binary("fabricctl")), "counters", "--server", sim1.endpoint,
         "--server-key", str(sim1.keys.public_path)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    sent = [line.split() for line in lines if line.startswith("updates_sent ")]
    assert sent and int(sent[0][1]) >= 1
    header = next(n for n, line in enumerate(lines) if line.startswith("PEER "))
    peers = [line.split()[0] for line in lines[header + 1:] if line.strip()]
    assert peers == ["sim2"]
    assert lines[header + 1].split()[1] == sim2.state_endpoint


def test_a_rekeyed_peer_is_accepted_under_both_keys_for_the_grace_period(fabric, intruder,
                                                                          tmp_path):
    ring, (sim1, sim2) = fabric
    keys, registered, udp = intruder
    target = _state_port(sim2)
    endpoint = f"udp://127.0.0.1:{udp.getsockname()[1]}"

    def send(datagram):
        udp.sendto(sd.udp_payload(datagram), target)

    old = sd.Peer(keys.public, keys.secret, sim2.keys.public, registered << 16 | 1)
    grant = own(ring[0], keys, "py", "/py/r")  # names the old key
    before = counters(sim2)
    send(old.state([("/py/r", 1, 1, b"old key", grant)]))
    before = expect_delta(sim2, before, updates_applied=1)

    # py re-registers with a new key, signing with the current one.
    new_keys = write_key_pair(tmp_path / "py-new", "py")
    rekeyed_at = time.monotonic()
    with ring[0].client(keys=keys) as client:
        reregistered = client.call("sim.register", sim="py", key=new_keys.public.decode(),
                                   state=endpoint)["registered_ms"]

    def rekeyed(sim):
        return any(p["sim"] == "py" and p["key"] == new_keys.public.decode()
                   for p in _peers(sim))

    wait_for(lambda: rekeyed(sim1) and rekeyed(sim2), what="the sims to learn py's new key")
    learned_at = time.monotonic()
    # Both keys are accepted now.
    send(old.state([("/py/r", 1, 2, b"old key, late")]))
    before = expect_delta(sim2, before, updates_applied=1)
    new = sd.Peer(new_keys.public, new_keys.secret, sim2.keys.public, reregistered << 16 | 2)
    send(new.state([("/py/r", 1, 3, b"new key")]))
    before = expect_delta(sim2, before, updates_applied=1)
    with sim2.client() as reader:
        assert reader.call("entity.get", path="/py/r")["state"] == "new key"

    # sim1 seals to the new key at once.
    with sim1.client() as game:
        game.call("entity.create", path="/world/for-new-key", state="hello")
    sender = sd.key_bytes(sim1.keys.public)[:8]
    new_id = sd.key_bytes(new_keys.public)[:8]
    deadline = time.monotonic() + 5
    while True:
        payload = udp.recvfrom(9000)[0][1 + len(sd.GROUP):]
        head = sd.parse_header(payload)
        if head["sender"] == sender and head["receiver"] == new_id:
            break
        assert time.monotonic() < deadline, "nothing from sim1 sealed to the new key"
    receiver = sd.Peer(new_keys.public, new_keys.secret, sim1.keys.public, 1)
    assert sd.open_sealed(receiver.key_from(sim1.keys.public, head["session"]), payload)

    # The old key is accepted for the whole grace period (it began when
    # sim2 learned of the re-key, after `rekeyed_at`), then refused as a
    # stranger. Probes under the old key carry an update older than the
    # replica's, so an accepted one changes nothing but update_superseded.
    wait_for(lambda: _get(sim2, "/world/for-new-key") and quiet(sim1, sim2),
             what="sim1's stream to sim2 to be quiet")
    grace = HEARTBEAT["key_grace"] / 1000

    def probe_counted(before):
        now = counters(sim2)
        moved = any(now[name] > before[name]
                    for name in ("drop_unknown_sender", "update_superseded"))
        return now if moved else None

    while True:
        before = counters(sim2)
        send(old.state([("/py/r", 1, 1, b"probe")]))
        now = wait_for(lambda: probe_counted(before), what="the probe to be counted")
        counted_at = time.monotonic()
        if now["drop_unknown_sender"] > before["drop_unknown_sender"]:
            expect_delta(sim2, before, drop_unknown_sender=1)
            break
        expect_delta(sim2, before, update_superseded=1)
        assert counted_at - learned_at < grace + 5, "the old key outlived its grace period"
    assert counted_at - rekeyed_at >= grace, \
        f"the old key was refused {counted_at - rekeyed_at:.2f} s after the re-key"
    before = counters(sim2)
    send(old.state([("/py/r", 1, 4, b"old key, too late")]))
    expect_delta(sim2, before, drop_unknown_sender=1)
    with sim2.client() as reader:
        assert reader.call("entity.get", path="/py/r")["state"] == "new key"


def test_sims_learn_a_new_peer_from_the_ring_events(tmp_path):
    """With a heartbeat of 10 s, only the ring's events can tell the sims
    of a new registration within a second."""
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": 10000})
    with running(ring, sims):
        keys = write_key_pair(tmp_path / "py", "py")
        with ring[0].client(keys=keys) as client:
            client.call("sim.register", sim="py", state="udp://127.0.0.1:9",
                        token=admit(ring, "py"))
        begun = time.monotonic()
        # Wait past the next heartbeat, so a sim that learned of py only
        # from it is measured, not cut off by the wait's own bound.
        wait_for(lambda: all("py" in {p["sim"] for p in _peers(sim)} for sim in sims),
                 timeout=15, what="the sims to learn of py")
        took = time.monotonic() - begun
        assert took < 3, f"the sims learned of py after {took:.1f} s"


def test_deleting_an_entity_removes_it_from_the_ring_and_the_replicas(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as game, sim2.client() as watcher:
        watcher.call("subscribe", prefix="/world/gone")
        game.call("entity.create", path="/world/gone", state="here")
        wait_for(lambda: _get(sim2, "/world/gone"), what="the replica")
        refused = watcher.request("entity.delete", path="/world/gone")
        assert refused["ok"] is False and refused["error"]["code"] == "denied"
        deleted = game.call("entity.delete", path="/world/gone")
        assert deleted["deleted"] is True and deleted["index"] > 0
        assert game.request("entity.get", path="/world/gone")["error"]["code"] == "not_found"
        with ring[0].client() as client:
            assert client.request("entity.get", path="/world/gone")["error"]["code"] == "not_found"
        wait_for(lambda: _get(sim2, "/world/gone") is None, what="the replica to go")
        while True:
            event = watcher.next_event(timeout=5)
            if event.get("deleted"):
                break
        assert event["path"] == "/world/gone"
        missing = game.request("entity.delete", path="/world/gone")
        assert missing["error"]["code"] == "not_found"
