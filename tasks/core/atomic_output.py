"""Outputs appear under their final name only when complete: a killed stage leaves nothing that looks finished."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def remove_path(path: Path) -> None:
    """Delete a file, link or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_stale_temps(target: Path) -> None:
    """Delete temporaries that a killed earlier run left beside target (`kill -9` skips every cleanup)."""
    # mkstemp/mkdtemp put 8 random characters between prefix and suffix; matching exactly that spares other targets.
    for stale in target.parent.glob(f".{glob.escape(target.name)}.{'?' * 8}.tmp*"):
        remove_path(stale)


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside target; rename it onto target when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    # The temp name keeps target's suffix: some writers (Keras) insist on it.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def json_text(data: Any) -> str:
    """data as the project writes JSON files: indented, keys in data's order, a final newline."""
    return json.dumps(data, indent=2) + "\n"


def write_json(target: Path, data: Any) -> None:
    """Write data as indented JSON to target, atomically (metrics, receipts, lineage records)."""
    with atomic_file(target) as tmp:
        tmp.write_text(json_text(data))


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside target; swap it in for target when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o755)
        remove_path(target)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            shutil.rmtree(tmp_path)
