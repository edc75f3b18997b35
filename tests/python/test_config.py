"""Configuration errors: each names the key and the file, exits 2, and
starts nothing."""

import subprocess

import pytest

from simfabric_testing import binary, write_key_pair


def start(program, *args):
    return subprocess.run([str(binary(program)), *map(str, args)],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def keys(tmp_path):
    return write_key_pair(tmp_path, "node")


def config(tmp_path, text):
    path = tmp_path / "node.cfg"
    path.write_text(text)
    return path


def good(keys):
    return ("homeserver\n    name = hs1\n    api = tcp://127.0.0.1:1\n"
            f"    secret_key = {keys.secret_path.name}\n"
            "    id = 1\n    raft = tcp://127.0.0.1:2\n    data = data\n")


def test_unknown_key_names_key_and_file(tmp_path, keys):
    path = config(tmp_path, good(keys) + "    apii = tcp://127.0.0.1:2\n")
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr == f"homeserver: error: config {path}: unknown key 'homeserver/apii'\n"


def test_unknown_section_is_an_unknown_key(tmp_path, keys):
    path = config(tmp_path, good(keys) + "raftt\n    peer = x\n")
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert f"config {path}: unknown key 'raftt/peer'" in result.stderr


def test_missing_required_key_names_key_file_and_flag(tmp_path, keys):
    path = config(tmp_path, "homeserver\n    name = hs1\n"
                  f"    secret_key = {keys.secret_path.name}\n")
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr == (f"homeserver: error: config {path}: missing required key "
                             "'homeserver/api' (set it in the file or with --api)\n")


def test_missing_required_key_without_file(tmp_path):
    result = start("simserver", "--name", "sim1")
    assert result.returncode == 2
    assert "missing required key 'sim/api'" in result.stderr


@pytest.mark.parametrize("endpoint, reason", [
    ("tcp://127.0.0.1", "expected tcp://HOST:PORT"),
    ("tcp://127.0.0.1:70000", "port must be 1..65535 or *, not '70000'"),
    ("127.0.0.1:7100", "expected SCHEME://ADDRESS"),
    ("udp://127.0.0.1:7100", "scheme must be one of tcp|ipc|inproc"),
])
def test_malformed_endpoint(tmp_path, keys, endpoint, reason):
    text = good(keys).replace("tcp://127.0.0.1:1", endpoint)
    path = config(tmp_path, text)
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr == (f"homeserver: error: config {path}: key 'homeserver/api': "
                             f"malformed endpoint '{endpoint}': {reason}\n")


def test_malformed_endpoint_from_flag_names_the_flag(tmp_path, keys):
    path = config(tmp_path, good(keys))
    result = start("homeserver", "--config", path, "--api", "tcp://nowhere")
    assert result.returncode == 2
    assert "flag --api: key 'homeserver/api': malformed endpoint 'tcp://nowhere'" in result.stderr


def test_bad_log_level(tmp_path, keys):
    path = config(tmp_path, good(keys) + "log\n    level = loud\n")
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert "key 'log/level': 'loud' is not one of error|warning|notice|info|debug" in result.stderr


def test_syntax_error_names_the_line(tmp_path, keys):
    path = config(tmp_path, "homeserver\n        name = hs1\n")
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"homeserver: error: config {path}: line 2: ")
    assert result.stdout == ""


def test_missing_config_file(tmp_path):
    result = start("homeserver", "--config", tmp_path / "absent.cfg")
    assert result.returncode == 2
    assert f"config {tmp_path / 'absent.cfg'}: cannot read: No such file or directory" in result.stderr


def test_flags_override_the_file(tmp_path, keys):
    """A valid file plus a flag: the flag's endpoint is the one bound."""
    from simfabric_testing.daemon import free_port
    from simfabric_testing import ApiClient

    path = config(tmp_path, good(keys))
    port = free_port()
    process = subprocess.Popen([str(binary("homeserver")), "--config", str(path),
                                "--api", f"tcp://127.0.0.1:{port}", "--name", "flagged",
                                "--raft", f"tcp://127.0.0.1:{free_port()}"],
                               stderr=subprocess.PIPE)
    try:
        with ApiClient(f"tcp://127.0.0.1:{port}", keys.public) as client:
            reply = client.call("status")
        assert reply["node"] == "flagged"
    finally:
        process.terminate()
        assert process.wait(10) == 0
