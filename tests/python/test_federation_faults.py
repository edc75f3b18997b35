"""Claims across instances through crashes (protocol/federation.md section
6): real homeservers and sims of two instances on loopback, one of them a
ring of three whose leader is killed while a claim is on its way.

The claim is held at the home by the ask rule, so the crash lands between
the request and its answer. Whatever dies, checked from outside by
reading both rings and every sim:
- the entity has exactly one authority, the one its home ring recorded;
- that sim holds it with the former authority's final state (nothing
  acknowledged is lost), and the former authority is fenced;
- the requester learns the outcome: its sim asks again under the same
  request id, and the home answers what it decided.
"""

import time

import pytest

from simfabric_testing import Daemon, make_ring, make_sims, running, wait_for, wait_leader
from simfabric_testing.federation import claim_in_background, federate, next_event


def _kill_leader(ring):
    name, _ = wait_leader(ring)
    leader = next(member for member in ring if member.name == name)
    leader.kill()
    return leader


def _answer(game, transfer, deadline_s=20):
    """authority.answer through the sim, again while its ring elects."""
    deadline = time.monotonic() + deadline_s
    while True:
        reply = game.request("authority.answer", transfer=transfer, approve=True)
        if reply.get("ok") or time.monotonic() > deadline:
            return reply
        time.sleep(0.2)


def _one_authority(home, holder, former, path, local_path, epoch):
    """The home records HOLDER (its sim name there) at EPOCH; HOLDER's sim
    holds LOCAL_PATH at EPOCH; FORMER's sim is fenced."""
    wait_for(lambda: _entity(home, path)["authority"] is not None, timeout=20,
             what="the home to record an authority")
    entity = _entity(home, path)
    assert (entity["authority"], entity["epoch"]) == (holder.name + "@east", epoch)
    with holder.client() as game:
        held = game.call("entity.get", path=local_path)
    assert (held["authority"], held["epoch"]) == (True, epoch)
    with former.client() as game:
        wait_for(lambda: game.call("entity.get", path=path)["authority"] is False,
                 what="the former authority to be fenced")
    return held


def _entity(ring, path):
    for member in ring:
        if member.alive():
            with member.client() as client:
                reply = client.request("entity.get", path=path, consistency="stale")
                if reply.get("ok"):
                    return reply
    raise AssertionError("no live member answered")


@pytest.mark.parametrize("dying", ["requester", "home"])
def test_a_leader_dies_while_the_home_decides(dying, tmp_path):
    """The requester's leader (east, a ring of three) dies after it sent
    b's claim on and before west answered; or the home's (west, a ring of
    three) dies while b's claim waits on the ask there. West decides
    either way (s1's game approves, through west's new leader if need
    be), and b's sim, which heard nothing, asks again under the same
    request id: east's new leader sends it on, or east sends it to west's
    next member, and west answers what it committed."""
    three = {"ask_timeout": 20000}
    if dying == "requester":
        west = [Daemon("homeserver", "hs1", tmp_path / "west" / "hs1", extra=three)]
        east = make_ring(tmp_path / "east", 3)
    else:
        west = make_ring(tmp_path / "west", 3, extra=three)
        east = [Daemon("homeserver", "hs1", tmp_path / "east" / "hs1")]
    federate({"west": west, "east": east})
    (s1,) = make_sims(tmp_path / "west", west, 1, names=["s1"])
    (b,) = make_sims(tmp_path / "east", east, 1, names=["b"])
    ring = east if dying == "requester" else west
    with running(west + east), running([], [s1]), running([], [b]):
        wait_leader(ring)
        with s1.client(timeout=10) as game1:
            game1.call("subscribe", prefix="/fed/")
            game1.call("entity.create", path="/fed/k", state="v1", rule="ask")
            game1.call("entity.update", path="/fed/k", state="final from s1")
            thread, landed = claim_in_background(b, "/fed/k@west")
            ask = next_event(game1, "ask")
            _kill_leader(ring)
            wait_leader(ring)
            assert _answer(game1, ask["transfer"])["ok"]
        thread.join(45)
        reply = landed["reply"]
        assert reply["ok"], reply
        assert (reply["epoch"], reply["from"], reply["state"]) == \
            (2, "handoff", "final from s1")
        _one_authority(west, b, s1, "/fed/k", "/fed/k@west", 2)
