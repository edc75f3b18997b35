"""Waiting on a condition instead of sleeping for a guess (STYLE.md)."""

import time


def wait_for(predicate, timeout=10.0, what="condition"):
    """PREDICATE's first true value, polled every 20 ms; AssertionError
    naming WHAT if none comes within TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout} s")
