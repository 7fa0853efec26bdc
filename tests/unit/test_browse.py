"""`make browse`: the class folders copied out of the photo store, atomically, never linked, never a DVC output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tasks.core.errors import StageError
from tasks.photos.browse import MARKER, browse
from tasks.photos.photo_store import PhotoStoreWriter
from tests.support.photos import organized_photos, store_bytes

PROJECT = Path(__file__).resolve().parents[2]


def run_browse(workspace: Path) -> subprocess.CompletedProcess:
    """`python -m tasks.photos.browse` in workspace, as `make browse` runs it."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    command = [sys.executable, "-m", "tasks.photos.browse"]
    return subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A project root with dvc.yaml and reorganize's photo store at data/photos.zip."""
    shutil.copy2(PROJECT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "made").mkdir()
    store = organized_photos(tmp_path / "made", per_class=3, test_count=2)
    (tmp_path / "data").mkdir()
    shutil.copy2(store, tmp_path / "data/photos.zip")
    return tmp_path


def copied_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_browse_copies_every_member_to_the_class_folders_and_says_how_many(workspace: Path):
    done = run_browse(workspace)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "browse: 8 photos copied out of data/photos.zip to data/organized/ (train/<class>, test/unknown)\n"
    )
    organized = workspace / "data/organized"
    members = store_bytes(workspace / "data/photos.zip")
    assert "train/cats/cat.1.jpg" in members and "test/unknown/2.jpg" in members
    assert "sample_submission.csv" in members
    copied = copied_files(organized)
    assert copied.pop(MARKER).startswith(b"a copy of data/photos.zip")
    assert copied == members  # every member, byte for byte, at its class-folder path
    for path in organized.rglob("*"):  # copies: never a link into the store or DVC's cache
        assert not path.is_symlink() and (path.is_dir() or path.stat().st_nlink == 1)
    assert sorted(p.name for p in (workspace / "data").iterdir()) == ["organized", "photos.zip"]  # no temporaries


def test_browse_again_replaces_its_own_older_copy(workspace: Path):
    assert run_browse(workspace).returncode == 0
    organized = workspace / "data/organized"
    (organized / "train/cats/cat.1.jpg").write_bytes(b"edited by hand")
    (organized / "train/cats/extra.jpg").write_bytes(b"not in the store")
    done = run_browse(workspace)
    assert done.returncode == 0, done.stderr
    copied = copied_files(organized)
    copied.pop(MARKER)
    assert copied == store_bytes(workspace / "data/photos.zip")
    assert sorted(p.name for p in (workspace / "data").iterdir()) == ["organized", "photos.zip"]


def test_a_missing_store_is_one_line_saying_how_to_get_it(workspace: Path):
    (workspace / "data/photos.zip").unlink()
    done = run_browse(workspace)
    assert done.returncode == 2
    assert done.stderr == (
        "error: browse: data/photos.zip is missing; run `dvc repro` (or `dvc pull data/photos.zip`) to restore it\n"
    )
    assert list((workspace / "data").iterdir()) == []


def test_a_store_that_is_not_a_zip_is_one_line_and_an_older_copy_stays(workspace: Path):
    assert run_browse(workspace).returncode == 0
    before = copied_files(workspace / "data/organized")
    (workspace / "data/photos.zip").write_bytes(b"half a download")
    done = run_browse(workspace)
    assert done.returncode == 2
    assert done.stderr == (
        "error: browse: data/photos.zip is not a photo store (a zip); run `dvc repro --force` on the stage that "
        "writes it\n"
    )
    assert copied_files(workspace / "data/organized") == before
    assert sorted(p.name for p in (workspace / "data").iterdir()) == ["organized", "photos.zip"]


def test_a_folder_browse_did_not_make_is_left_alone(workspace: Path):
    mine = workspace / "data/organized/train/cats/cat.1.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own photo")
    done = run_browse(workspace)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: browse: data/organized exists and was not copied there by `make browse` (no {MARKER} in it): move "
        "or delete it, then run `make browse` again\n"
    )
    assert copied_files(workspace / "data/organized") == {"train/cats/cat.1.jpg": b"my own photo"}


def test_a_member_named_outside_the_folders_is_refused_and_nothing_written(tmp_path: Path):
    store = tmp_path / "photos.zip"
    with PhotoStoreWriter(store) as writer:
        writer.add_bytes("train/cats/cat.1.jpg", b"cat")
        writer.add_bytes("../escaped.jpg", b"out")
    with pytest.raises(StageError, match=r"holds a member named '\.\./escaped\.jpg', outside its class folders"):
        browse(store, tmp_path / "organized")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos.zip"]


def test_the_copy_is_git_ignored_and_no_stage_reads_or_writes_it():
    """data/organized is only browse's: DVC neither tracks it nor feeds it to a stage, and git ignores it."""
    dvc_yaml = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    for name, stage in dvc_yaml["stages"].items():
        listed = [*(stage.get("deps") or []), *(stage.get("outs") or [])]
        named = [entry if isinstance(entry, str) else next(iter(entry)) for entry in listed]
        assert not [n for n in named if "paths.organized}" in n or n.startswith("data/organized/")], name
    checked = subprocess.run(
        ["git", "check-ignore", "-q", "data/organized/train/cats/cat.1.jpg"], cwd=PROJECT, capture_output=True
    )
    assert checked.returncode == 0


def test_the_store_read_by_browse_is_the_zip_reorganize_wrote(tmp_path: Path):
    """The members browse copies are what reorganize stored: uncompressed, one per photo, plus the sample CSV."""
    store = organized_photos(tmp_path, per_class=2, test_count=1)
    with zipfile.ZipFile(store) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    assert browse(store, tmp_path / "organized") == 5
