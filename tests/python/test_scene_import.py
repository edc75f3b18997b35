"""Scene import (issue 5, protocol/scene.md): `fabricctl import` loads the
project's example scene of 10,000 entities onto a simulation server, the
ring records every entity with it as authority in batched commits, and
`--copy-to` hands the whole scene to a second sim in credit-limited
chunks. Bad scenes and bad batches change nothing."""

import json
import subprocess
import time

import pytest

from simfabric_testing import (ApiError, binary, call_any, leader_client, make_ring, make_sims,
                               ring_paths, running)
from simfabric_testing.paths import example_scene

EXAMPLE = example_scene()


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    ring = make_ring(folder, 3)
    sims = make_sims(folder, ring, 2)
    with running(ring, sims):
        yield ring, sims


def fabricctl_import(sim, scene, *flags):
    return subprocess.run(
        [binary("fabricctl"), "import", str(scene), "--server", sim.endpoint,
         "--server-key", str(sim.keys.public_path), "--json", *flags],
        capture_output=True, text=True, timeout=120)


def all_paths(client, prefix, **args):
    paths, after = [], None
    while True:
        page = client.call("entity.list", prefix=prefix, limit=1000,
                           **({"after": after} if after else {}), **args)
        paths += [e["path"] for e in page["entities"]]
        after = page.get("next")
        if not after:
            return paths


def test_the_example_scene_lands_on_the_ring_and_both_sims(fabric):
    ring, (sim1, sim2) = fabric
    scene = json.loads(EXAMPLE.read_text())["entities"]
    assert len(scene) == 10_000
    done = fabricctl_import(sim1, EXAMPLE, "--copy-to", "sim2")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["imported"] == 10_000 and result["batches"] < 100
    assert result["copied"]["entities"] == 10_000
    assert "10000/10000 entities 100%" in done.stderr  # the progress bar
    in_ring = ring_paths(ring, "/world/", time.monotonic() + 30)
    assert sorted(in_ring) == sorted(e["path"] for e in scene)
    door = next(e for e in scene if "/door" in e["path"])
    entity = call_any(ring, "entity.get", time.monotonic() + 30, path=door["path"])
    assert (entity["authority"], entity["epoch"], entity["rule"]) == ("sim1", 1, "ask")
    assert entity["checkpoint"] == door["state"]
    with sim1.client() as one, sim2.client() as two:
        assert len(all_paths(one, "/world/")) == 10_000
        assert len(all_paths(two, "/world/")) == 10_000
        sample = scene[4321]
        held = one.call("entity.get", path=sample["path"])
        copy = two.call("entity.get", path=sample["path"])
        assert held["authority"] is True and copy["authority"] is False
        assert held["state"] == copy["state"] == sample["state"]
        # Editing starts at once: the edit reaches the other sim's replica.
        two.call("subscribe", prefix=sample["path"])
        one.call("entity.update", path=sample["path"], state='{"p":[1,2,3]}')
        event = two.next_event(timeout=5)
        assert (event["path"], event["state"], event["seq"]) == (sample["path"], '{"p":[1,2,3]}', 2)
    # The same scene again: every batch exists already; nothing changes.
    again = fabricctl_import(sim1, EXAMPLE)
    assert again.returncode == 1 and "already holds" in again.stderr


def test_a_bad_entity_refuses_its_whole_batch_and_names_it(fabric, tmp_path):
    ring, (sim1, _) = fabric
    entities = [{"path": f"/bad/e{n}", "state": "s"} for n in range(10)]
    entities[6]["path"] = "/bad/no spaces"
    scene = tmp_path / "bad.json"
    scene.write_text(json.dumps({"entities": entities}))
    done = fabricctl_import(sim1, scene)
    assert done.returncode == 1 and "entities[6]" in done.stderr, done.stderr
    assert ring_paths(ring, "/bad/", time.monotonic() + 30) == []
    for text, message in (("{", "line 1"), ('{"entities": []}', "no \"entities\""),
                          ('{"entities": [{"state": "x"}]}', "entities[0] has no")):
        scene.write_text(text)
        done = fabricctl_import(sim1, scene)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    done = fabricctl_import(sim1, tmp_path / "missing.json")
    assert done.returncode == 2 and "missing.json" in done.stderr


def test_the_ring_takes_an_import_whole_or_not_at_all(fabric):
    ring, (sim1, _) = fabric
    with leader_client(ring, keys=sim1.keys) as client:
        made = client.call("entity.import", authority="sim1",
                           entities=[{"path": "/imp/a"}, {"path": "/imp/b", "rule": "deny",
                                                           "checkpoint": "cp"}])
        assert (made["imported"], made["first"], made["last"]) == (2, "/imp/a", "/imp/b")
        assert client.call("entity.get", path="/imp/b")["checkpoint"] == "cp"
        # The same batch again (its answer lost): done, nothing changes.
        again = client.call("entity.import", authority="sim1",
                            entities=[{"path": "/imp/a"}, {"path": "/imp/b", "rule": "deny",
                                                            "checkpoint": "cp"}])
        assert again["again"] is True and made["again"] is False
        assert client.call("entity.get", path="/imp/b")["revision"] == made["index"]
        for entities, code in (([], "invalid_argument"),
                               ([{"path": "/imp/c"}] * 1001, "invalid_argument"),
                               (["/imp/c"], "invalid_argument"),
                               ([{"path": "/imp/c", "colour": "red"}], "invalid_argument"),
                               ([{"path": "/imp/c"}, {"path": "/imp/a"}], "already_exists"),
                               ([{"path": "/imp/c", "owner": "nobody"}], "not_found")):
            with pytest.raises(ApiError) as refused:
                client.call("entity.import", authority="sim1", entities=entities)
            assert refused.value.code == code, refused.value
        with pytest.raises(ApiError) as refused:
            client.call("entity.import", authority="ghost", entities=[{"path": "/imp/d"}])
        assert refused.value.code == "not_found"
        assert all_paths(client, "/imp/") == ["/imp/a", "/imp/b"]
