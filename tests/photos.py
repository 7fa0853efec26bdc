"""Small photo sets for stage tests, made by the project's own synthetic archive writer."""
from __future__ import annotations

from pathlib import Path

from tasks.reorganize import reorganize
from tasks.synthetic_archive import build_synthetic_archive


def organized_photos(root: Path, per_class: int = 12, test_count: int = 6, seed: int = 0) -> Path:
    """A reorganized competition tree (train/cats, train/dogs, test/unknown) under root/organized."""
    archive = root / "archive.zip"
    build_synthetic_archive(archive, seed, per_class, test_count)
    reorganize(archive, root / "organized")
    return root / "organized"
