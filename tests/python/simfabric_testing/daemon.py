"""Start and stop simfabric daemons as real processes."""

import os
import signal
import subprocess
import time
from pathlib import Path

from simfabric_testing.client import ApiClient, NoReply
from simfabric_testing.keys import KeyPair, write_key_pair
from simfabric_testing.paths import binary


class DaemonFailed(Exception):
    """A daemon exited when it should be running, or did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(path: Path, sections: dict) -> Path:
    """Write SECTIONS ({section: {key: value}}) as a ZPL file."""
    lines = []
    for section, keys in sections.items():
        lines.append(section)
        for key, value in keys.items():
            lines.append(f'    {key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """One homeserver or simserver process with its keys and config.

    KIND is "homeserver" or "simserver". The daemon gets a key pair and a
    config file in FOLDER; EXTRA adds keys to its section.
    """

    SECTION = {"homeserver": "homeserver", "simserver": "sim"}

    def __init__(self, kind: str, name: str, folder, extra: dict | None = None):
        self.kind = kind
        self.name = name
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keys: KeyPair = write_key_pair(self.folder, name)
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        section = {
            "name": name,
            "api": self.endpoint,
            "secret_key": self.keys.secret_path.name,
        }
        section.update(extra or {})
        self.config = write_config(
            self.folder / f"{name}.cfg",
            {self.SECTION[kind]: section, "log": {"level": "info"}},
        )
        self.log_path = self.folder / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0, keys: KeyPair | None = None):
        """Start the process and wait until it answers status (asked as
        KEYS, or as a fresh principal)."""
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(binary(self.kind)), "--config", str(self.config)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        with self.client(keys=keys, timeout=0.2) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise DaemonFailed(f"{self.name} exited with {self.process.returncode}: {self.log()}")
                try:
                    if probe.request("status")["ok"]:
                        return self
                except NoReply:
                    pass
        raise DaemonFailed(f"{self.name} did not answer status in {timeout} s: {self.log()}")

    def client(self, keys: KeyPair | None = None, timeout: float = 5.0) -> ApiClient:
        """A new API client of this daemon (a fresh principal unless KEYS)."""
        return ApiClient(self.endpoint, self.keys.public, keys=keys, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the process and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)
