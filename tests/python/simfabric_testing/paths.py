"""Where the simfabric binaries are."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def build_dir() -> Path:
    """The build folder: $SIMFABRIC_BUILD, else build/ in the checkout."""
    return Path(os.environ.get("SIMFABRIC_BUILD", ROOT / "build"))


def binary(name: str) -> Path:
    """Path of executable NAME (homeserver, simserver, fabricctl)."""
    path = build_dir() / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run scripts/setup.sh (or set SIMFABRIC_BUILD)"
        )
    return path


def sanitized() -> bool:
    """True if the build folder is the sanitizer build (ASan keeps freed
    memory in quarantine, so a process's RSS says little about leaks)."""
    cache = build_dir() / "CMakeCache.txt"
    return cache.exists() and "SIMFABRIC_SANITIZE:BOOL=ON" in cache.read_text()
