"""Configuration errors: each names the key and the file, exits 2, and
starts nothing."""

import os
import subprocess

import pytest

from simfabric_testing import binary, write_key_pair


def start(program, *args):
    return subprocess.run([str(binary(program)), *map(str, args)],
                          capture_output=True, text=True, errors="replace",
                          timeout=30)


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


def test_tab_indentation_is_named(tmp_path, keys):
    path = config(tmp_path, "homeserver\n    name = hs1\n\tapi = tcp://127.0.0.1:1\n")
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr == (f"homeserver: error: config {path}: line 3: indented "
                             "with a tab: ZPL indents each level with 4 spaces, "
                             "and allows no tabs\n")


def test_ring_member_without_its_keys_is_named_with_the_file(tmp_path, keys):
    members = "ring\n    member\n"
    for name in ("hs1", "second", "third"):
        members += f"        {name}\n            id = 1\n"
    path = config(tmp_path, good(keys) + members)
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr == (f"homeserver: error: config {path}: ring member 'hs1' "
                             "needs id, raft and key (missing raft, key)\n")


def test_ring_member_with_a_bad_key_file_names_the_member(tmp_path, keys):
    members = ("ring\n    member\n        hs1\n            id = 1\n"
               "            raft = tcp://127.0.0.1:2\n            key = absent.cert\n")
    path = config(tmp_path, good(keys) + members)
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr == (f"homeserver: error: config {path}: ring member 'hs1': "
                             f"cannot read key file {tmp_path / 'absent.cert'}: "
                             "No such file or directory\n")


def test_public_certificate_as_secret_key_says_so(tmp_path, keys):
    """A public .cert is readable by anyone by design: the fault is that it
    holds no secret key, not its mode."""
    keys.public_path.chmod(0o644)
    path = config(tmp_path, good(keys).replace(keys.secret_path.name,
                                               keys.public_path.name))
    for program, args in (("homeserver", ["--config", path]),
                          ("fabricctl", ["status", "--server-key", keys.public_path,
                                         "--key", keys.public_path])):
        result = start(program, *args)
        assert result.returncode == 2
        assert result.stderr == (f"{program}: error: key file {keys.public_path} is a "
                                 "public certificate (it holds no secret key): give "
                                 "the .cert_secret file of the pair\n")


def test_missing_admins_folder_writes_no_state(tmp_path, keys):
    """Everything is checked before the data folder is touched: a refused
    start leaves no raft.db behind to bootstrap a ring that never ran."""
    from simfabric_testing.daemon import free_port

    api, raft = free_port(), free_port()
    text = (good(keys).replace("127.0.0.1:1\n", f"127.0.0.1:{api}\n")
            .replace("127.0.0.1:2\n", f"127.0.0.1:{raft}\n")
            + "    admins = nowhere\n")
    path = config(tmp_path, text)
    result = start("homeserver", "--config", path)
    assert result.returncode == 2
    assert result.stderr == (f"homeserver: error: cannot read admins folder "
                             f"{tmp_path / 'nowhere'}: No such file or directory\n")
    assert not (tmp_path / "data").exists()


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


def test_a_join_token_cut_short_by_a_comment_is_named(tmp_path, keys):
    """Z85 holds '#', which starts a ZPL comment: an unquoted token in a
    sim's config arrives cut short. The sim stops at start naming the key
    and the cure, instead of registering with it forever in vain."""
    path = config(tmp_path,
                  "sim\n    name = sim1\n    api = tcp://127.0.0.1:1\n"
                  f"    secret_key = {keys.secret_path.name}\n"
                  "    token = 0123456789abcdefghij#klmnopqrstuvwxyzABCDEFG\n")
    result = start("simserver", "--config", path)
    assert result.returncode == 2, result.stderr
    assert "sim/token is 20 characters" in result.stderr
    assert 'quote it (token = "...")' in result.stderr
