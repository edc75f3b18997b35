"""scripts/run-local.sh: the main job starts the instance and stops it
cleanly."""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_local_starts_and_stops_cleanly(tmp_path):
    result = subprocess.run([str(ROOT / "scripts/run-local.sh"), "--duration", "1"],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert re.search(r"run-local: hs1 ready on tcp://127\.0\.0\.1:\d+ in \d+ ms", log)
    assert re.search(r"run-local: sim1 ready on tcp://127\.0\.0\.1:\d+ in \d+ ms", log)
    assert re.search(r"run-local: ring elected hs[123] as leader in \d+ ms", log)
    # The ring table: three members, one leader, all agreeing on it.
    rows = [line.split() for line in log.splitlines() if re.match(r"    hs[123] ", line)]
    assert len(rows) == 3
    assert sorted(row[2] for row in rows) == ["follower", "follower", "leader"]
    assert len({row[7] for row in rows}) == 1
    for name in ("hs1", "hs2", "hs3"):
        assert f"run-local: {name} stopped cleanly" in log
    for name in ("sim1", "sim2"):
        assert f"run-local: {name} stopped cleanly" in log
    # The temporary folder (keys, configs, logs) is removed.
    assert list(tmp_path.iterdir()) == []


def test_run_local_rejects_unknown_arguments():
    result = subprocess.run([str(ROOT / "scripts/run-local.sh"), "--bogus"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "unknown argument --bogus" in result.stderr
