"""fabricctl keygen and the secret-key permission check."""

import os
import stat
import subprocess

from simfabric_testing import binary, read_public_key, write_key_pair
from simfabric_testing.keys import read_key_pair


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30)


def test_keygen_writes_a_pair_with_a_private_secret(tmp_path):
    result = run(binary("fabricctl"), "keygen", "alice", "--dir", tmp_path)
    assert result.returncode == 0, result.stderr
    secret = tmp_path / "alice.cert_secret"
    public = tmp_path / "alice.cert"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    pair = read_key_pair(secret)
    assert pair.public == read_public_key(public)
    assert "secret-key" not in public.read_text()
    assert len(pair.secret) == 40


def test_keygen_writes_where_the_config_examples_read(tmp_path):
    """README: secret_key = keys/hs1.cert_secret. keygen's default folder
    is keys/, made (its owner's alone) if missing."""
    result = subprocess.run([str(binary("fabricctl")), "keygen", "hs1"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "keys/hs1.cert" in result.stdout
    folder = tmp_path / "keys"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert read_key_pair(folder / "hs1.cert_secret").public == read_public_key(folder / "hs1.cert")
    # A second key goes beside it; the folder is not made again.
    result = subprocess.run([str(binary("fabricctl")), "keygen", "hs2"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and (folder / "hs2.cert").exists()


def test_keygen_refuses_to_overwrite_without_force(tmp_path):
    assert run(binary("fabricctl"), "keygen", "bob", "--dir", tmp_path).returncode == 0
    before = read_public_key(tmp_path / "bob.cert")
    result = run(binary("fabricctl"), "keygen", "bob", "--dir", tmp_path)
    assert result.returncode == 2
    assert "File exists (use --force to replace it)" in result.stderr
    assert read_public_key(tmp_path / "bob.cert") == before
    assert run(binary("fabricctl"), "keygen", "bob", "--dir", tmp_path, "--force").returncode == 0
    assert read_public_key(tmp_path / "bob.cert") != before


def test_daemon_refuses_a_secret_key_others_can_read(tmp_path):
    pair = write_key_pair(tmp_path, "hs1")
    os.chmod(pair.secret_path, 0o644)
    result = run(binary("homeserver"), "--name", "hs1", "--api", "tcp://127.0.0.1:1",
                 "--secret-key", pair.secret_path, "--id", "1",
                 "--raft", "tcp://127.0.0.1:2", "--data", tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr == (
        f"homeserver: error: secret key file {pair.secret_path} is accessible by group "
        f"or others (mode 0644); run: chmod 600 {pair.secret_path}\n")


def test_daemon_refuses_the_public_file_as_secret_key(tmp_path):
    pair = write_key_pair(tmp_path, "sim1")
    os.chmod(pair.public_path, 0o600)
    result = run(binary("simserver"), "--name", "sim1", "--api", "tcp://127.0.0.1:1",
                 "--secret-key", pair.public_path)
    assert result.returncode == 2
    assert "is a public certificate (it holds no secret key)" in result.stderr


def test_fabricctl_refuses_a_readable_client_key(tmp_path):
    server = write_key_pair(tmp_path, "server")
    client = write_key_pair(tmp_path, "client")
    os.chmod(client.secret_path, 0o640)
    result = run(binary("fabricctl"), "status", "--server-key", server.public_path,
                 "--key", client.secret_path)
    assert result.returncode == 2
    assert "(mode 0640); run: chmod 600" in result.stderr
