"""What identifies a run's code and settings: the git commit (and whether the tree was dirty) and a params digest."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any


def git_commit(cwd: Path = Path(".")) -> tuple[str | None, bool]:
    """(HEAD's commit, whether tracked files differ from it); (None, False) outside a git repository."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None, False
    return head.stdout.strip(), bool(status.stdout.strip())


def params_digest(params: dict[str, Any]) -> str:
    """SHA-256 of the params in canonical JSON: equal settings give equal digests whatever the YAML layout."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
