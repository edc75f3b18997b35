"""Online backup and restore (protocol/operations.md sections 2 and 3),
with real rings: fabricctl backup under a write load holds every write
acknowledged at or before its index and none after; every member
killed, its data deleted, homeserver --restore makes a new ring that
reads back every entity, rule, checkpoint, authority, player and sim,
and takes writes again."""

import shutil
import subprocess
import threading
import time

from simfabric_testing import (call_any, leader_client, make_ring, make_sims, running,
                               wait_leader, wait_registered)
from simfabric_testing.keys import read_key_pair
from simfabric_testing.paths import binary


def _entities(ring, prefix):
    held, after = {}, None
    while True:
        args = {"prefix": prefix, "limit": 1000}
        if after:
            args["after"] = after
        page = call_any(ring, "entity.list", time.monotonic() + 30, **args)
        for entity in page["entities"]:
            held[entity["path"]] = {k: entity.get(k) for k in
                                    ("rule", "checkpoint", "authority", "epoch", "owner",
                                     "master", "revision")}
        after = page["next"]
        if not after:
            return held


def test_backup_under_writes_then_restore_a_new_ring(tmp_path):
    ring = make_ring(tmp_path, 3)
    sims = make_sims(tmp_path, ring, 1)
    admin = read_key_pair(ring[0].admin.secret_path)
    backup = tmp_path / "ring.backup"
    with running(ring, sims):
        wait_leader(ring)
        wait_registered(sims, peers=False)
        with leader_client(ring, keys=admin, timeout=15) as client:
            for n in range(60):
                client.call("entity.create", path=f"/b/e{n:02d}",
                            rule=("allow", "ask", "deny")[n % 3], checkpoint=f"state {n}")
            client.call("player.register", player="ada")
        with sims[0].client() as client:
            client.call("entity.claim", path="/b/e00")
        acked = []  # (path, index) of each write acknowledged
        stop = threading.Event()

        def writer():
            number = 0
            while not stop.is_set():
                reply = call_any(ring, "entity.create", time.monotonic() + 20,
                                 path=f"/w/{number:05d}")
                acked.append((f"/w/{number:05d}", reply["index"]))
                number += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(acked) < 30:
                time.sleep(0.01)
            # From a follower: it spares the leader.
            leader, _ = wait_leader(ring)
            follower = next(m for m in ring if m.name != leader)
            done = subprocess.run(
                [str(binary("fabricctl")), "backup", str(backup), "--key",
                 str(admin.secret_path), "--server", follower.endpoint,
                 "--server-key", str(follower.keys.public_path)],
                capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "backup: 100%" in done.stderr
            index = int(done.stdout.split(" at index ")[1].split(",")[0])
            written = len(acked)
            while len(acked) < written + 30:
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join(timeout=30)
        before = _entities(ring, "/b/")
        assert before["/b/e00"]["authority"] == "sim1"
        with leader_client(ring) as client:
            ada = client.call("player.key", player="ada")["key"]
            sims_before = {s["sim"]: s["key"] for s in client.call("sim.list")["sims"]}
    assert backup.stat().st_size > 0 and not (tmp_path / "ring.backup.part").exists()

    # Every member gone, data and all.
    for member in ring:
        shutil.rmtree(member.folder / "data")
    for member in ring:
        done = subprocess.run([str(binary("homeserver")), "--config", str(member.config),
                               "--restore", str(backup)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"at index {index}" in done.stdout
    # Never over a ring's data.
    done = subprocess.run([str(binary("homeserver")), "--config", str(ring[0].config),
                           "--restore", str(backup)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "holds a ring already" in done.stderr, done.stderr
    not_a_backup = tmp_path / "junk"
    not_a_backup.write_bytes(b"not a database" * 100)
    done = subprocess.run([str(binary("homeserver")), "--config", str(ring[0].config),
                           "--restore", str(not_a_backup)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "is not a backup" in done.stderr, done.stderr

    with running(ring):
        wait_leader(ring)
        assert _entities(ring, "/b/") == before
        restored = _entities(ring, "/w/")
        kept = {path for path, at in acked if at <= index}
        assert kept <= set(restored), sorted(kept - set(restored))[:5]
        assert not {path for path, at in acked if at > index} & set(restored)
        with leader_client(ring) as client:
            assert client.call("player.key", player="ada")["key"] == ada
            assert {s["sim"]: s["key"] for s in client.call("sim.list")["sims"]} \
                == sims_before
            created = client.call("entity.create", path="/after/restore")
            assert created["index"] > index
            status = client.call("status")
            assert {m["name"] for m in status["members"]} == {m.name for m in ring}
