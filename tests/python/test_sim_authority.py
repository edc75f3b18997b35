"""A simulation server's part in authority moves, so far: the game side
answers asks addressed to its sim through the sim API, and a sim that the
ring granted an entity away from is fenced (it stops being its authority
and streaming it) as soon as the ring's events say so."""

import threading
import time

import pytest

from simfabric_testing import ApiError, admit, make_ring, make_sims, running, write_key_pair

from simfabric_testing.wait import wait_for


@pytest.fixture
def fabric(tmp_path):
    ring = make_ring(tmp_path, 1)
    sims = make_sims(tmp_path, ring, 2, extra={"heartbeat": 200})
    with running(ring, sims):
        yield ring, sims


def _next(client, kind, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        event = client.next_event(timeout=max(0.1, deadline - time.monotonic()))
        if event["event"] == kind:
            return event


def test_the_game_answers_an_ask_and_its_sim_is_fenced(fabric, tmp_path):
    ring, (sim1, _) = fabric
    keys = write_key_pair(tmp_path / "py", "py")
    with ring[0].client(keys=keys) as py:
        py.call("sim.register", sim="py", token=admit(ring, "py"))
    with sim1.client() as game:
        game.call("subscribe", prefix="/w/")
        game.call("entity.create", path="/w/asked", state="mine", rule="ask")
        landed = {}

        def request():
            with ring[0].client(keys=keys, timeout=10) as py:
                landed["reply"] = py.request("authority.request", path="/w/asked", sim="py")

        thread = threading.Thread(target=request)
        thread.start()
        ask = _next(game, "ask")
        assert ask["path"] == "/w/asked" and ask["to"] == "py"
        with pytest.raises(ApiError) as bad:
            game.call("authority.answer", transfer=ask["transfer"])
        assert bad.value.code == "invalid_argument"
        answered = game.call("authority.answer", transfer=ask["transfer"], approve=True)
        assert answered["granted"] is True and answered["authority"] == "py"
        thread.join(10)
        assert landed["reply"]["ok"] and landed["reply"]["epoch"] == 2
        fenced = _next(game, "fenced")
        assert (fenced["path"], fenced["epoch"], fenced["authority"]) == ("/w/asked", 2, "py")
        held = game.call("entity.get", path="/w/asked")
        assert (held["authority"], held["epoch"], held["source"]) == (False, 2, "py")
        with pytest.raises(ApiError) as no_longer:
            game.call("entity.update", path="/w/asked", state="still mine?")
        assert no_longer.value.code == "denied"


def test_a_grant_to_another_sim_fences_the_former_authority(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as game:
        game.call("entity.create", path="/w/taken", state="v1")
        game.call("entity.update", path="/w/taken", state="v2")
    # sim2's key asks the ring directly (its own side of a takeover is not
    # built yet): the rule is allow, so it is granted at once.
    with ring[0].client(keys=sim2.keys) as as_sim2:
        granted = as_sim2.call("authority.request", path="/w/taken", sim="sim2")
    assert granted["epoch"] == 2

    def fenced():
        with sim1.client() as game:
            entity = game.call("entity.get", path="/w/taken")
        return entity["authority"] is False and entity["epoch"] == 2

    wait_for(fenced, what="sim1 to learn it is no longer the authority")
    with sim1.client() as game:
        assert game.call("status")["authoritative"] == 0


def test_a_claim_takes_the_final_state_from_the_former_authority(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as game1, sim2.client() as game2:
        game1.call("entity.create", path="/w/moved", state="v1")
        game1.call("entity.update", path="/w/moved", state="final from sim1")
        wait_for(lambda: game2.request("entity.get", path="/w/moved").get("state")
                 == "final from sim1", what="the replica on sim2")
        claimed = game2.call("entity.claim", path="/w/moved", timeout=10)
        # Case 2: sim2 -> leader, leader -> sim1 (the ring's event), sim1 ->
        # sim2 (the final state over the handoff channel).
        assert claimed["from"] == "handoff" and claimed["previous"] == "sim1"
        assert (claimed["authority"], claimed["epoch"], claimed["seq"]) == (True, 2, 1)
        assert claimed["state"] == "final from sim1"
        # sim2 streams it at the new epoch; sim1, fenced, takes it as a replica.
        game2.call("entity.update", path="/w/moved", state="sim2 now")

        def on_sim1():
            entity = game1.call("entity.get", path="/w/moved")
            return (entity["authority"], entity["epoch"], entity["state"]) == \
                (False, 2, "sim2 now")

        wait_for(on_sim1, what="sim1 to follow the new authority")
        with pytest.raises(ApiError) as denied:
            game1.call("entity.update", path="/w/moved", state="late")
        assert denied.value.code == "denied"
    assert counters_of(sim2)["handoffs_accepted"] == 1
    assert counters_of(sim1)["handoffs_acked"] == 1


def counters_of(sim):
    with sim.client() as client:
        return client.call("counters")["counters"]


def test_an_orphan_is_claimed_from_the_ring_checkpoint(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as game1:
        game1.call("entity.create", path="/w/orphan", state="v1")
    # sim1 releases it with a checkpoint (as a sim would on shutdown).
    with ring[0].client(keys=sim1.keys) as as_sim1:
        as_sim1.call("authority.release", path="/w/orphan", sim="sim1",
                     checkpoint="checkpointed")
    with sim2.client() as game2:
        claimed = game2.call("entity.claim", path="/w/orphan", timeout=10)
        assert claimed["from"] == "checkpoint" and claimed["previous"] is None
        assert (claimed["state"], claimed["epoch"], claimed["authority"]) == \
            ("checkpointed", 2, True)
        again = game2.call("entity.claim", path="/w/orphan")
        assert again["from"] == "self" and again["epoch"] == 2


def test_a_claim_takes_a_handoff_only_from_the_former_authority(fabric, tmp_path):
    import struct

    import zmq

    ring, (_, sim2) = fabric
    pairs = {name: write_key_pair(tmp_path / name, name) for name in ("py", "px")}
    registered = {}
    for name, pair in pairs.items():
        with ring[0].client(keys=pair) as client:
            registered[name] = client.call("sim.register", sim=name,
                                           token=admit(ring, name))["registered_ms"]
    with ring[0].client(keys=pairs["py"]) as as_py:
        as_py.call("entity.create", path="/w/held", authority="py")

    def listed():
        # The handoff channel takes its peers from the same listing as
        # the stream, before it: the stream's peers show what it knows.
        with sim2.client() as client:
            peers = client.call("counters")["peers"]
        return {(p["sim"], p["registered_ms"]) for p in peers} >= set(registered.items())
    wait_for(listed, what="sim2's directory to list py and px")

    def handoff(name, epoch, state):
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.linger = 0
        socket.curve_serverkey = sim2.keys.public
        socket.curve_publickey = pairs[name].public
        socket.curve_secretkey = pairs[name].secret
        socket.connect(sim2.handoff_endpoint)
        path = b"/w/held"
        socket.send(b"SH\x02\x01" + struct.pack(">Q", 1) + struct.pack(">H", len(path)) + path
                    + struct.pack(">QQI", epoch, 7, len(state)) + state)
        assert socket.poll(5000), f"no answer to {name}"
        answer = socket.recv()
        socket.close()
        return answer[20]  # the status byte

    landed = {}

    def claim():
        with sim2.client(timeout=10) as game:
            landed["reply"] = game.call("entity.claim", path="/w/held")

    thread = threading.Thread(target=claim)
    thread.start()
    # Wait until the ring has granted it: epoch 2, sim2 the authority.
    wait_for(lambda: _ring_entity(ring, "/w/held")["epoch"] == 2, what="the grant")
    time.sleep(0.2)
    assert handoff("px", 2, b"forged") == 1          # not the former authority: refused
    assert handoff("py", 1, b"old epoch") == 1       # not the granted epoch: refused
    assert handoff("py", 2, b"the real final state") == 0
    thread.join(10)
    reply = landed["reply"]
    assert (reply["from"], reply["state"], reply["epoch"]) == \
        ("handoff", "the real final state", 2)


def _ring_entity(ring, path):
    with ring[0].client() as client:
        return client.call("entity.get", path=path)


def test_a_sim_stops_holding_what_the_ring_orphaned_without_it(fabric):
    ring, (sim1, _) = fabric
    with sim1.client() as game:
        game.call("subscribe", prefix="/w/taken")
        game.call("entity.create", path="/w/taken", state="v1")
        admin = ring[0].admin
        with ring[0].client(keys=admin) as operator:
            operator.call("authority.release", path="/w/taken", sim="sim1", checkpoint="v1")
        fenced = _next(game, "fenced")
        assert (fenced["path"], fenced["authority"]) == ("/w/taken", None)
        with pytest.raises(ApiError) as refused:
            game.call("entity.update", path="/w/taken", state="v2")
        assert refused.value.code == "denied"
        with pytest.raises(ApiError) as replica:
            game.call("entity.release", path="/w/taken")
        assert replica.value.code == "denied"


def test_claims_that_arrive_together_go_to_the_ring_as_one_batch(fabric):
    """Claims read in one turn are one ring command (the batch form of
    authority.request); each still ends as it would alone, and an entity
    whose rule asks is still asked."""
    import json
    import os
    import signal

    ring, (sim1, sim2) = fabric
    events = ring[0].subscribe("")
    allowed = [f"/c/e{at}" for at in range(20)]
    with sim1.client() as game1, sim2.client(timeout=15) as game2:
        game1.call("subscribe", prefix="/c/")
        for path in allowed:
            game1.call("entity.create", path=path, state="final " + path)
        game1.call("entity.create", path="/c/asked", state="asked", rule="ask")
        game1.call("entity.create", path="/c/denied", state="no", rule="deny")
        # Stopped while the claims arrive, sim2 reads them in one turn.
        os.kill(sim2.process.pid, signal.SIGSTOP)
        try:
            claims = {}
            for at, path in enumerate(allowed + ["/c/asked", "/c/denied"]):
                claims[1000 + at] = path
                game2.send_raw(json.dumps({"op": "entity.claim", "id": 1000 + at,
                                           "path": path}).encode())
        finally:
            os.kill(sim2.process.pid, signal.SIGCONT)
        ask = _next(game1, "ask", timeout=10)
        assert ask["path"] == "/c/asked" and ask["to"] == "sim2"
        game1.call("authority.answer", transfer=ask["transfer"], approve=True)
        replies = {}
        while len(replies) < len(claims):
            reply = json.loads(game2.recv_raw(10)[-1])
            if reply.get("id") in claims:
                replies[claims[reply["id"]]] = reply
    for path in allowed + ["/c/asked"]:
        reply = replies[path]
        assert reply["ok"], reply
        assert (reply["epoch"], reply["from"], reply["state"]) == \
            (2, "handoff", "final " + path if path != "/c/asked" else "asked")
    assert replies["/c/denied"]["error"]["code"] == "denied"
    # The twenty allowed claims were decided by fewer ring commands: at
    # least one batch event named several of them.
    batches = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and events.poll(200):
        topic, body = events.recv_multipart()
        event = json.loads(body)
        if event["op"] == "authority.request" and topic == b"sim:sim2":
            batches.append([item["path"] for item in event["result"]["results"]])
    assert batches and max(len(paths) for paths in batches) > 1
    # sim2 followed every change but parsed only those it acts on: not the
    # creations, nor its own batches (their reply told it all).
    with sim2.client() as game2:
        counters = game2.call("counters")["counters"]
    assert 0 < counters["ring_events_read"] < counters["ring_events"]


def test_a_burst_of_claims_takes_every_final_state_by_handoff(fabric):
    """Many grants in one turn make the former authority send a burst of
    HANDOFFs, more than libzmq queues for a peer at once: none may be lost
    (a lost one leaves its claim to fall back to the ring's checkpoint
    after 2 s, with older state)."""
    import json
    import os
    import signal

    ring, (sim1, sim2) = fabric
    paths = [f"/burst/e{at}" for at in range(1500)]
    with sim1.client(timeout=30) as game1:
        for at, path in enumerate(paths):
            game1.send_raw(json.dumps({"op": "entity.create", "id": at, "path": path,
                                       "state": "final " + path}).encode())
        created = 0
        while created < len(paths):
            reply = json.loads(game1.recv_raw(30)[-1])
            assert reply["ok"], reply
            created += 1
    with sim2.client(timeout=30) as game2:
        game2.call("status")  # the session is up before sim2 stops
        # Stopped while the claims arrive, sim2 sends them as a few batches,
        # and their events reach sim1 together.
        os.kill(sim2.process.pid, signal.SIGSTOP)
        try:
            for at, path in enumerate(paths):
                game2.send_raw(json.dumps({"op": "entity.claim", "id": at,
                                           "path": path}).encode())
        finally:
            os.kill(sim2.process.pid, signal.SIGCONT)
        replies = {}
        while len(replies) < len(paths):
            reply = json.loads(game2.recv_raw(30)[-1])
            replies[paths[reply["id"]]] = reply
    late = [path for path, reply in replies.items()
            if not reply["ok"] or reply["from"] != "handoff"
            or reply["state"] != "final " + path]
    assert not late, (len(late), replies[late[0]])
    # sim2 answers a claim once it holds the state, and its HANDOFF_ACK
    # travels to sim1 beside that reply: sim1 counts the last acks a moment
    # after the last reply, so wait for them, then check none was counted
    # twice and none failed.
    wait_for(lambda: counters_of(sim1)["handoffs_acked"] >= len(paths),
             what=f"{len(paths)} handoffs acknowledged to sim1")
    sent = counters_of(sim1)
    assert sent["handoffs_acked"] == len(paths)
    assert sent["handoffs_failed"] == 0



def test_an_unacknowledged_handoff_goes_again_and_is_taken_once(fabric):
    """A HANDOFF stays with the former authority until acknowledged: sent
    again after 1 s unheard; the new authority answers the repeat as stale,
    and the ack is counted once."""
    import os
    import signal

    ring, (sim1, sim2) = fabric
    with sim1.client() as game:
        game.call("entity.create", path="/w/again", state="v1")
        game.call("entity.update", path="/w/again", state="final")
    os.kill(sim2.process.pid, signal.SIGSTOP)
    try:
        with ring[0].client(keys=sim2.keys) as as_sim2:
            granted = as_sim2.call("authority.request", path="/w/again", sim="sim2")
        assert granted["epoch"] == 2
        wait_for(lambda: counters_of(sim1)["handoffs_resent"] >= 1, timeout=5,
                 what="sim1 to send the handoff again")
    finally:
        os.kill(sim2.process.pid, signal.SIGCONT)
    wait_for(lambda: counters_of(sim1)["handoffs_acked"] == 1,
             what="sim2 to acknowledge the handoff")

    def judged():
        # Every copy sim1 sent, the first and the resent, reached sim2
        # and was accepted or refused there.
        sent, taken = counters_of(sim1), counters_of(sim2)
        return (taken["handoffs_accepted"] + taken["handoffs_refused"]
                == sent["handoffs_sent"] + sent["handoffs_resent"])
    wait_for(judged, what="sim2 to judge every copy of the handoff")
    sent, taken = counters_of(sim1), counters_of(sim2)
    assert (sent["handoffs_sent"], sent["handoffs_acked"], sent["handoffs_failed"]) \
        == (1, 1, 0)
    assert taken["handoffs_accepted"] == 1
    assert taken["handoffs_refused"] == sent["handoffs_resent"]
