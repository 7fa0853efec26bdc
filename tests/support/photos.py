"""Small photo sets for stage tests, made by the project's own synthetic archive writer."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

from tasks.competition.archive import TEST_ZIP, TRAIN_ZIP
from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.params import SplitParams
from tasks.photos.class_list import read_class_list
from tasks.reorganize import reorganize
from tasks.split import split
from tests.support.params import reorganize_params


def organized_photos(root: Path, per_class: int = 12, test_count: int = 6, seed: int = 0) -> Path:
    """A reorganized competition: its photo store root/photos.zip (members train/cats/..., test/unknown/...), indexed
    in root/organized.csv; returns the store's path."""
    archive = root / "archive.zip"
    build_synthetic_archive(archive, seed, per_class, test_count)
    reorganize(archive, root / "photos.zip", root / "organized.csv", root / "classes.json", reorganize_params())
    return root / "photos.zip"


def reorganize_with(root: Path, replacements: dict[str, bytes]) -> Path:
    """Rewrite root/archive.zip with some photos' bytes replaced (keys: manifest paths), then reorganize it into the
    photo store root/photos.zip; returns the store's path.

    Broken photos reach the pipeline inside the competition archive, so that is where tests put them.
    """
    archive = root / "archive.zip"
    by_name = {PurePosixPath(path).name: data for path, data in replacements.items()}
    with zipfile.ZipFile(archive) as outer:
        members = {info.filename: outer.read(info) for info in outer.infolist()}
    for inner in (TRAIN_ZIP, TEST_ZIP):
        rewritten = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(members[inner])) as source, zipfile.ZipFile(rewritten, "w") as target:
            for info in source.infolist():
                target.writestr(info, by_name.get(PurePosixPath(info.filename).name, source.read(info)))
        members[inner] = rewritten.getvalue()
    with zipfile.ZipFile(archive, "w") as outer:
        for name, data in members.items():
            outer.writestr(name, data)
    reorganize(archive, root / "photos.zip", root / "organized.csv", root / "classes.json", reorganize_params())
    return root / "photos.zip"


def store_bytes(store: Path) -> dict[str, bytes]:
    """Every member of a photo store with its bytes, in store order."""
    with zipfile.ZipFile(store) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def split_photos(root: Path, params: SplitParams) -> Path:
    """Split root/organized.csv into the manifest root/split.csv; return its path."""
    split(root / "organized.csv", root / "split.csv", params, read_class_list(root / "classes.json").classes)
    return root / "split.csv"
