"""The console scripts find the project's root from any folder of the checkout, and take paths from where they start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.errors import StageError
from tasks.core.project_root import as_seen_from_root, find_project_root


def project(root: Path) -> Path:
    """A folder that looks like the checkout's root, with a models/ folder holding one file."""
    for name in ("dvc.yaml", "params.yaml", "models/head.keras"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


def test_the_root_is_found_from_a_folder_below_it_and_nowhere_else(tmp_path: Path):
    root = project(tmp_path / "checkout")
    (root / "data/features").mkdir(parents=True)
    assert find_project_root(root / "data/features") == root == find_project_root(root)
    with pytest.raises(StageError, match="is not in the project: run this from the checkout"):
        find_project_root(tmp_path)


def test_a_path_is_taken_from_the_folder_it_was_typed_in_when_it_is_there(tmp_path: Path):
    root = project(tmp_path)
    assert as_seen_from_root("head.keras", root / "models", root) == "models/head.keras"
    assert as_seen_from_root("../models/head.keras", root / "models", root) == "models/head.keras"
    assert as_seen_from_root("models/head.keras", root / "models", root) == "models/head.keras"  # root-relative


def test_lesson2_grade_runs_from_any_folder_on_files_named_from_there(tmp_path: Path):
    folder = tmp_path / "anywhere"
    folder.mkdir()
    (folder / "submission.csv").write_text("id,label\n1,0.9\n2,0.2\n")
    (folder / "labels.csv").write_text("id,label\n1,1\n2,0\n")
    script = Path(sys.executable).parent / "lesson2-grade"
    done = subprocess.run([str(script), "submission.csv", "labels.csv"], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "0.16" in done.stdout  # (ln(1/0.9) + ln(1/0.8)) / 2 = 0.164
