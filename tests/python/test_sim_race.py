"""Many simulation servers claim the same entity at once (issue 5's race):
every grant has its own epoch, a claim overtaken by a later grant before
its sim held the entity fails with a clear answer and passes the state
on, and the entity ends with exactly one authority, holding the original
state."""

import threading
import time

import pytest

from simfabric_testing import leader_client, make_ring, make_sims, running

CLAIMERS = 4


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    folder = tmp_path_factory.mktemp("race")
    ring = make_ring(folder, 3)
    sims = make_sims(folder, ring, CLAIMERS + 1, extra={"heartbeat": 200})
    with running(ring, sims):
        yield ring, sims


def claim_all(sims, path):
    """Every sim in SIMS claims PATH at the same moment; their replies."""
    replies = {}
    start = threading.Barrier(len(sims))

    def claim(sim):
        with sim.client(timeout=15) as client:
            client.call("status")  # connected before the start
            start.wait()
            replies[sim.name] = client.request("entity.claim", path=path)

    threads = [threading.Thread(target=claim, args=(sim,)) for sim in sims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return replies


def holders(sims, path):
    held = {}
    for sim in sims:
        with sim.client() as client:
            reply = client.request("entity.get", path=path)
            if reply["ok"] and reply["authority"]:
                held[sim.name] = reply
    return held


@pytest.mark.parametrize("round_", range(3))
def test_one_authority_per_epoch_and_one_at_the_end(fabric, round_):
    ring, (owner, *claimers) = fabric
    path = f"/race/e{round_}"
    with owner.client() as game:
        game.call("entity.create", path=path, state="original", rule="allow")
    replies = claim_all(claimers, path)
    assert len(replies) == CLAIMERS
    won = {name: r for name, r in replies.items() if r["ok"]}
    lost = {name: r for name, r in replies.items() if not r["ok"]}
    epochs = [r["epoch"] for r in won.values()]
    assert len(epochs) == len(set(epochs)), replies  # one winner per epoch
    for reply in lost.values():
        assert reply["error"]["code"] == "conflict", reply
        assert "took it at epoch" in reply["error"]["message"]
    assert won, replies
    # Every claimer was granted in turn: epochs 2 .. CLAIMERS + 1.
    with leader_client(ring) as client:
        deadline = time.monotonic() + 10
        while True:
            entity = client.call("entity.get", path=path)
            held = holders([owner, *claimers], path)
            if list(held) == [entity["authority"]] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert entity["epoch"] == CLAIMERS + 1
    assert list(held) == [entity["authority"]], (held, entity)
    final = held[entity["authority"]]
    assert final["epoch"] == entity["epoch"] and final["state"] == "original"
    # The winner of the last epoch is the one that holds it.
    assert max(won.values(), key=lambda r: r["epoch"])["epoch"] <= entity["epoch"]


def test_under_deny_everyone_but_the_master_is_refused_clearly(fabric):
    _, (owner, *claimers) = fabric
    with owner.client() as game:
        game.call("entity.create", path="/race/denied", state="mine", rule="deny")
    replies = claim_all(claimers, "/race/denied")
    assert {r["error"]["code"] for r in replies.values()} == {"denied"}, replies
    assert list(holders([owner, *claimers], "/race/denied")) == [owner.name]
