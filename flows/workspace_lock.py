"""One flow run per workspace at a time: a second run fails at once, naming the run that holds the workspace."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.core.errors import StageError

# Under .dvc/tmp, which DVC's own .gitignore already hides from git (and so from experiments).
LOCK_FILE = Path(".dvc/tmp/lesson2-flow.lock")


class WorkspaceBusy(RuntimeError):
    """Another flow run holds this workspace."""


@contextmanager
def hold_workspace(workspace: Path, holder: str) -> Iterator[None]:
    """Hold the workspace's lock for the block; raise WorkspaceBusy if another process holds it.

    flock is released by the kernel when its holder dies, so a killed run never leaves a stale lock.
    """
    path = workspace / LOCK_FILE
    if not path.parent.parent.is_dir():
        raise StageError(f"{workspace.resolve()} has no .dvc directory: is it a DVC checkout of this project?")
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            current = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise WorkspaceBusy(
                f"workspace {workspace.resolve()} is in use by {current}; two runs in one workspace would "
                "fight over DVC's lock and outputs. Wait for it to finish, or give this run its own checkout."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder} (pid {os.getpid()})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
