"""The checkout's root, from any folder in it: the console scripts read params.yaml, dvc.yaml and .dvc/ there."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.core.errors import StageError


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above start that holds dvc.yaml and params.yaml."""
    for folder in (start, *start.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "params.yaml").is_file():
            return folder
    raise StageError(f"{start} is not in the project: run this from the checkout (a folder with dvc.yaml) or below it")


def as_seen_from_root(path: str, cwd: Path, root: Path) -> str:
    """A path the user typed, relative to root: taken from cwd when it exists there, else as written (root-relative).

    So `models/head.keras` works from any folder, and `head.keras` from models/.
    """
    here = cwd / path
    return os.path.relpath(here, root) if here.exists() else path


def enter_project_root(paths: list[str]) -> list[str]:
    """Change to the project's root; the given paths, rewritten to name the same files from there."""
    cwd = Path.cwd()
    root = find_project_root(cwd)
    os.chdir(root)
    return [as_seen_from_root(path, cwd, root) for path in paths]
