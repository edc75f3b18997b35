"""Hop accounting (protocol/trace.md): the daemons record the messages of
each transfer, and `fabricctl trace` counts the hops of its critical path,
which must equal the hop table of DESIGN.md section 6."""

import json
import subprocess
import threading
import time

import pytest

from simfabric_testing import ApiError, binary, make_ring, make_sims, running


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trace")
    ring = make_ring(folder, 3)
    sims = make_sims(folder, ring, 2, extra={"heartbeat": 200})
    with running(ring, sims):
        yield ring, sims


def fabricctl_trace(member, trace):
    result = subprocess.run(
        [binary("fabricctl"), "trace", str(trace), "--server", member.endpoint,
         "--server-key", str(member.keys.public_path), "--json"],
        capture_output=True, text=True, timeout=30)
    return result


def traced(member, trace, hops_at_least, timeout=5.0):
    """The analysis of TRACE once the daemons' records add up to a path
    of at least HOPS_AT_LEAST (the last acknowledgements may lag)."""
    deadline = time.monotonic() + timeout
    while True:
        result = fabricctl_trace(member, trace)
        assert result.returncode == 0, result.stderr
        analysis = json.loads(result.stdout)
        if analysis["hops"] >= hops_at_least or time.monotonic() > deadline:
            return analysis
        time.sleep(0.1)


def critical_path(analysis):
    return [(m["msg"], m["from"], m["to"]) for m in analysis["messages"] if m["critical"]]


def reply_came_last(analysis, requester):
    """True if the ring's reply reached REQUESTER after the former
    authority's handoff did: then the reply ends the path (trace.md)."""
    received = {m["msg"]: m["received_us"] for m in analysis["messages"]
                if m["to"] == requester and m["msg"] in ("reply", "handoff")}
    return received.get("reply", 0) > received.get("handoff", 0)


def test_a_claim_from_another_sim_takes_three_hops(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as one, sim2.client() as two:
        one.call("entity.create", path="/t/moved", state="final", rule="allow")
        claimed = two.call("entity.claim", path="/t/moved")
    assert claimed["from"] == "handoff" and claimed["state"] == "final"
    transfer = claimed["transfer"]
    analysis = traced(ring[1], transfer, 3)
    path = critical_path(analysis)
    if reply_came_last(analysis, "sim2"):
        # A slow ring (a sanitizer build) can answer after the handoff
        # arrived: the request and its reply were then the path.
        assert [msg for msg, _, _ in path] == ["request", "reply"], analysis
        return
    assert [msg for msg, _, _ in path] == ["request", "event", "handoff"], analysis
    assert analysis["hops"] == 3
    # The request went straight to the leader, which published the event.
    leader = path[0][2]
    assert path[0][1] == "sim2" and leader in {m.name for m in ring}
    assert path[1][2] == "sim1" and path[2][1:] == ("sim1", "sim2")
    # Both ends recorded the critical hops: each has a measured latency.
    for message in analysis["messages"]:
        if message["critical"]:
            assert message["latency_us"] is not None and message["latency_us"] >= 0
    assert 0 < analysis["critical_us"] < 5_000_000
    kinds = {m["msg"] for m in analysis["messages"]}
    assert {"reply", "handoff_ack"} <= kinds


def test_an_ask_adds_the_question_and_its_answer(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as game:
        game.call("subscribe", prefix="/t/asked")
        game.call("entity.create", path="/t/asked", state="mine", rule="ask")
        landed = {}

        def claim():
            with sim2.client(timeout=10) as two:
                landed["reply"] = two.request("entity.claim", path="/t/asked")

        thread = threading.Thread(target=claim)
        thread.start()
        while True:
            event = game.next_event(timeout=5)
            if event["event"] == "ask":
                break
        game.call("authority.answer", transfer=event["transfer"], approve=True)
        thread.join(10)
    reply = landed["reply"]
    assert reply["ok"] and reply["transfer"] == event["transfer"]
    analysis = traced(ring[0], reply["transfer"], 5)
    path = [msg for msg, _, _ in critical_path(analysis)]
    assert path[:3] == ["request", "event", "answer"], analysis
    if reply_came_last(analysis, "sim2"):
        assert path[3:] == ["reply"], analysis
    else:
        assert path[3:] == ["event", "handoff"] and analysis["hops"] == 5, analysis


def test_an_orphan_comes_with_the_reply_in_two_hops(fabric):
    ring, (sim1, sim2) = fabric
    with sim1.client() as one, sim2.client() as two:
        one.call("entity.create", path="/t/orphan", state="x")
        one.call("entity.update", path="/t/orphan", state="saved")
        released = one.call("entity.release", path="/t/orphan")
        assert released["released"] and released["authority"] is False
        with pytest.raises(ApiError) as refused:
            one.call("entity.update", path="/t/orphan", state="too late")
        assert refused.value.code == "denied"
        claimed = two.call("entity.claim", path="/t/orphan")
    assert claimed["from"] == "checkpoint" and claimed["state"] == "saved"
    analysis = traced(ring[0], claimed["transfer"], 2)
    assert [msg for msg, _, _ in critical_path(analysis)] == ["request", "reply"]


def test_trace_refuses_bad_ids_and_knows_nothing_of_unknown_ones(fabric):
    ring, (sim1, _) = fabric
    for daemon in (ring[0], sim1):
        with daemon.client() as client:
            for bad in ([1], "", "x" * 64, -4):
                with pytest.raises(ApiError) as error:
                    client.call("trace", trace=bad)
                assert error.value.code == "invalid_argument"
            assert client.call("trace", trace="999999")["records"] == []
            assert client.call("status")["ok"]
    result = fabricctl_trace(ring[0], 999999)
    assert result.returncode == 1 and "no daemon has records" in result.stderr


def test_a_traced_update_takes_two_hops(fabric):
    ring, (sim1, _) = fabric
    with sim1.client() as game:
        game.call("entity.create", path="/t/direct", state="v1")
        updated = game.call("entity.update", path="/t/direct", state="v2", trace=True)
        plain = game.call("entity.update", path="/t/direct", state="v3")
    assert updated["trace"].startswith("sim1.u") and "trace" not in plain
    analysis = traced(ring[0], updated["trace"], 2)
    assert critical_path(analysis) == [("update", "sim1", "sim2"), ("ack", "sim2", "sim1")]
    assert analysis["hops"] == 2 and 0 < analysis["critical_us"] < 5_000_000
    with sim1.client() as game:
        with pytest.raises(ApiError) as bad:
            game.call("entity.update", path="/t/direct", state="v4", trace="yes")
        assert bad.value.code == "invalid_argument"
