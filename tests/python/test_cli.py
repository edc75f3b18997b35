"""--help, --version and exit codes of the three executables."""

import json
import signal
import socket
import subprocess
import time

import pytest

from simfabric_testing import Daemon, binary, make_ring, make_sims, read_public_key

PROGRAMS = ["homeserver", "simserver", "fabricctl"]


def run(*args, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=30, **kwargs)


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_lists_flags_and_exit_codes(program):
    result = run(binary(program), "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"{program} - ")
    assert "--config FILE" in result.stdout
    assert "--log-level" in result.stdout
    assert "Exit codes: 0 ok, 1 failure, 2 usage" in result.stdout


@pytest.mark.parametrize("program", PROGRAMS)
def test_version_reports_libraries_with_draft_and_curve(program):
    result = run(binary(program), "--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{program} (simfabric) ")
    assert "libzmq 4.3.4 (draft API: yes, curve: yes)" in lines
    assert "czmq 4.2.1" in lines
    assert "raft 0.22.1" in lines


@pytest.mark.parametrize("program", PROGRAMS)
def test_unknown_flag_is_a_usage_error(program):
    result = run(binary(program), "--no-such-flag", "1")
    assert result.returncode == 2
    assert result.stderr == f"{program}: error: unknown flag --no-such-flag (see --help)\n"


def test_fabricctl_without_command_is_a_usage_error():
    result = run(binary("fabricctl"))
    assert result.returncode == 2
    assert "no command given" in result.stderr


def test_fabricctl_unknown_command():
    result = run(binary("fabricctl"), "frobnicate")
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr


def test_fabricctl_unreachable_daemon_exits_3(tmp_path):
    run(binary("fabricctl"), "keygen", "ghost", "--dir", tmp_path)
    result = run(binary("fabricctl"), "status", "--server", "tcp://127.0.0.1:9",
                 "--server-key", tmp_path / "ghost.cert", "--timeout", "300")
    assert result.returncode == 3
    assert "no reply from tcp://127.0.0.1:9" in result.stderr


def test_fabricctl_unreachable_says_nothing_listens(tmp_path):
    run(binary("fabricctl"), "keygen", "ghost", "--dir", tmp_path)
    result = run(binary("fabricctl"), "status", "--server", "tcp://127.0.0.1:9",
                 "--server-key", tmp_path / "ghost.cert", "--timeout", "300")
    assert result.returncode == 3
    assert result.stderr == ("fabricctl: error: no reply from tcp://127.0.0.1:9 in "
                             "0.3 s: nothing is listening there\n")


def test_fabricctl_wrong_server_key_says_the_key_may_be_wrong(homeserver, tmp_path):
    """A daemon that takes the connection but not our handshake is not one
    that is down: the message names the key we tried."""
    run(binary("fabricctl"), "keygen", "other", "--dir", tmp_path)
    other = read_public_key(tmp_path / "other.cert").decode()
    result = run(binary("fabricctl"), "status", "--server", homeserver.endpoint,
                 "--server-key", tmp_path / "other.cert", "--timeout", "1000")
    assert result.returncode == 3
    assert result.stderr == (f"fabricctl: error: no reply from {homeserver.endpoint} "
                             "in 1 s: it took the connection but not the CURVE "
                             f"handshake: its key is not {other} (check --server-key)\n")


@pytest.mark.parametrize("program", ["homeserver", "fabricctl"])
def test_help_shows_bool_flags_as_the_parser_takes_them(program):
    result = run(binary(program), "--help")
    flags = [line.split()[0] for line in result.stdout.splitlines()
             if "=BOOL]" in line or " BOOL " in line]
    assert flags, result.stdout
    assert all(flag.endswith("[=BOOL]") for flag in flags), flags


@pytest.mark.parametrize("value, expect_json", [
    ("", True), ("=true", True), ("=yes", True), ("=1", True),
    ("=false", False), ("=no", False), ("=0", False), ("=off", False),
])
def test_fabricctl_bool_flag_values(tmp_path, value, expect_json):
    result = run(binary("fabricctl"), "keygen", "k", "--dir", tmp_path, f"--json{value}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("{") == expect_json


@pytest.mark.parametrize("word", ["true", "false", "yes", "no"])
def test_bool_flag_with_a_separate_value_says_how_to_write_it(tmp_path, word):
    result = run(binary("fabricctl"), "status", "--json", word)
    assert result.returncode == 2
    assert result.stderr == (f"fabricctl: error: flag --json takes its value after "
                             f"'=': write --json={word}, or --json alone for true\n")


def _sim_of_a_ring(tmp_path):
    ring = make_ring(tmp_path, 1)
    (sim,) = make_sims(tmp_path, ring, 1)
    return sim


@pytest.mark.parametrize("kind, which", [
    ("homeserver", "api"), ("homeserver", "raft"), ("homeserver", "events"),
    ("simserver", "api"), ("simserver", "state"), ("simserver", "handoff"),
])
def test_endpoint_in_use_exits_1(tmp_path, kind, which):
    """A port another process holds is a runtime failure (1), whichever
    socket it is; the configuration itself is fine."""
    daemon = (Daemon("homeserver", "hs1", tmp_path / "hs1") if kind == "homeserver"
              else _sim_of_a_ring(tmp_path))
    endpoint = daemon.section[which]
    host, port = endpoint.split("://")[1].rsplit(":", 1)
    kind_of_socket = socket.SOCK_DGRAM if endpoint.startswith("udp") else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind_of_socket) as holder:
        holder.bind((host, int(port)))
        if kind_of_socket == socket.SOCK_STREAM:
            holder.listen()
        result = run(*daemon.command())
    assert result.returncode == 1, result.stderr
    assert endpoint in result.stderr


@pytest.mark.parametrize("kind", ["homeserver", "simserver"])
def test_sighup_reopens_the_log_file(tmp_path, kind):
    """Log rotation: the file is renamed away, SIGHUP makes the daemon
    create it again and write there; the daemon keeps serving."""
    daemon = (Daemon("homeserver", "hs1", tmp_path / "hs1") if kind == "homeserver"
              else _sim_of_a_ring(tmp_path))
    log = tmp_path / "daemon.log"
    command = daemon.command() + ["--log-file", str(log)]
    daemon.command = lambda: command
    daemon.start()
    try:
        assert "ready" in log.read_text()
        rotated = tmp_path / "daemon.log.1"
        log.rename(rotated)
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.exists(), daemon.log()
        with daemon.client() as client:
            assert client.call("status")["ok"]
        before = rotated.read_text()
    finally:
        assert daemon.stop() == 0, daemon.log()
    text = log.read_text()
    assert "reopened the log file" in text
    assert "stopping" in text
    assert rotated.read_text() == before
    assert "stopping" not in before


def test_fabricctl_reads_its_flags_from_a_config_file(homeserver, tmp_path):
    """README: a fabricctl section in a file given with -c, paths relative
    to the file, so an operator does not repeat --server flags."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "hs1.cert").write_bytes(homeserver.keys.public_path.read_bytes())
    (tmp_path / "ops.cfg").write_text(
        "fabricctl\n"
        f'    server = "{homeserver.endpoint}"\n'
        '    server_key = "keys/hs1.cert"\n'
        '    json = "true"\n')
    result = run(binary("fabricctl"), "-c", tmp_path / "ops.cfg", "status", cwd="/")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["node"] == "hs1"
