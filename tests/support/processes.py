"""Waiting on a stage or flow process that a test started and will interrupt."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(
    condition: Callable[[], object], process: subprocess.Popen, log: Path, what: str, who: str, timeout: float = 300
) -> None:
    """Poll until condition() holds; fail, with who's log, if the process ends first or timeout passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"{who} ended before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s:\n{log.read_text()}")
        time.sleep(0.1)
