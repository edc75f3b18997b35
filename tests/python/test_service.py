"""Running as a service (protocol/operations.md section 5): the systemd
units pass systemd-analyze verify; cmake --install gives programs that
run from where they are installed, with their private libraries; a
daemon started as a Type=notify service says READY=1 when it serves and
STOPPING=1 when it stops; under the journal it logs with priorities.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from simfabric_testing import Daemon, build_dir, running, wait_leader
from simfabric_testing.client import NoReply

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("homeserver", "simserver")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    # verify wants the programs the units run: the build's stand in for
    # the installed ones.
    for unit in UNITS:
        text = (ROOT / "scripts" / "systemd" / f"{unit}@.service").read_text()
        assert "ProtectSystem=strict" in text and "NoNewPrivileges=true" in text
        assert "StateDirectory=simfabric/%i" in text and "Type=notify" in text
        (tmp_path / f"{unit}@.service").write_text(
            text.replace("/usr/local/bin", str(build_dir().resolve())))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           "homeserver@hs1.service", "simserver@sim1.service"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_an_installed_tree_runs_on_its_own_libraries(tmp_path):
    done = subprocess.run(["cmake", "--install", str(build_dir())],
                          env=dict(os.environ, DESTDIR=str(tmp_path)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    bins = list(tmp_path.glob("**/bin/homeserver"))
    assert len(bins) == 1
    prefix = bins[0].parent.parent
    for program in ("homeserver", "simserver", "fabricctl"):
        version = subprocess.run([str(prefix / "bin" / program), "--version"],
                                 capture_output=True, text=True, timeout=30,
                                 env=dict(os.environ, LD_DEBUG="libs"))
        assert version.returncode == 0, version.stderr
        assert "libzmq 4.3.4" in version.stdout
        # The patched libzmq is the installed copy, not the build's.
        loaded = [line for line in version.stderr.splitlines()
                  if "calling init" in line and "libzmq" in line]
        assert loaded and str(prefix / "bin" / ".." / "lib") in loaded[0], loaded
    for unit in UNITS:
        installed = next(tmp_path.glob(f"**/lib/systemd/system/{unit}@.service")).read_text()
        assert f"ExecStart={str(prefix)[len(str(tmp_path)):]}/bin/{unit} " in installed
    assert list(tmp_path.glob("**/share/doc/simfabric/protocol/http.md"))


def test_a_notify_service_says_ready_and_stopping(tmp_path):
    member = Daemon("homeserver", "hs1", tmp_path / "hs1")
    member.ring = [member]
    member.write_config()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    listener.bind(path)
    listener.settimeout(30)
    log = open(tmp_path / "stderr.log", "wb")
    process = subprocess.Popen(member.command(), stdout=log, stderr=subprocess.STDOUT,
                               env=dict(os.environ, NOTIFY_SOCKET=path))
    try:
        message, _ = listener.recvfrom(4096)
        assert message == b"READY=1"
        # Ready means serving.
        with member.client(timeout=5) as client:
            assert client.call("status")["node"] == "hs1"
        process.send_signal(signal.SIGTERM)
        message, _ = listener.recvfrom(4096)
        assert message == b"STOPPING=1"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        listener.close()
        log.close()


def test_under_the_journal_lines_carry_priorities(tmp_path):
    member = Daemon("homeserver", "hs1", tmp_path / "hs1")
    member.ring = [member]
    member.write_config()
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "wb") as log:
        info = os.fstat(log.fileno())
        process = subprocess.Popen(member.command(), stdout=subprocess.DEVNULL, stderr=log,
                                   env=dict(os.environ,
                                            JOURNAL_STREAM=f"{info.st_dev}:{info.st_ino}"))
        try:
            member.process = process
            deadline = time.monotonic() + 20
            while "ready" not in stderr_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    lines = [line for line in stderr_path.read_text().splitlines() if "hs_server" in line]
    assert lines and all(line.startswith("<") for line in lines), lines[:5]
    assert any(line.startswith("<5>notice hs1: hs_server: ready") for line in lines), lines
    # No stamp of our own: the journal stamps each line.
    assert not any(line[3:4].isdigit() for line in lines)
