"""CurveZMQ key pairs in the zcert format the daemons read."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq

_KEY = re.compile(r'^\s*(public|secret)-key\s*=\s*"([^"]{40})"', re.M)


@dataclass
class KeyPair:
    """A key pair and where it is on disk."""

    public: bytes  # Z85, 40 bytes
    secret: bytes  # Z85, 40 bytes
    public_path: Path
    secret_path: Path


def _zcert(public: bytes, secret: bytes | None) -> str:
    lines = ["#   ZeroMQ CURVE certificate (simfabric test helpers)", "metadata", "curve"]
    lines.append(f'    public-key = "{public.decode()}"')
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return "\n".join(lines) + "\n"


def write_key_pair(folder, name: str) -> KeyPair:
    """Write NAME.cert and NAME.cert_secret (mode 0600) into FOLDER."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    public_path = folder / f"{name}.cert"
    secret_path = folder / f"{name}.cert_secret"
    public_path.write_text(_zcert(public, None))
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(_zcert(public, secret))
    return KeyPair(public, secret, public_path, secret_path)


def read_public_key(path) -> bytes:
    """The Z85 public key in certificate file PATH."""
    keys = dict(_KEY.findall(Path(path).read_text()))
    return keys["public"].encode()


def read_key_pair(secret_path) -> KeyPair:
    """Load a key pair from its secret certificate file."""
    secret_path = Path(secret_path)
    keys = dict(_KEY.findall(secret_path.read_text()))
    public_path = secret_path.with_name(secret_path.name.removesuffix("_secret"))
    return KeyPair(keys["public"].encode(), keys["secret"].encode(), public_path, secret_path)
