"""--help, --version and exit codes of the three executables."""

import subprocess

import pytest

from simfabric_testing import binary

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
