"""download's sources: the user's folder copied into the raw zip, and the synthetic dataset of N classes."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.competition.archive import ZIP_EPOCH
from tasks.competition.synthetic import build_class_folders_archive
from tasks.core.errors import StageError
from tasks.core.params import NO_LOCAL_ARCHIVE, SyntheticParams
from tasks.download import download
from tests.support.params import download_params

# ---------------------------------------------------------------- the folder source


def jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, rgb).save(out, format="JPEG")
    return out.getvalue()


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    """A user's folder holding files at their relative paths."""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


CLASS_FOLDERS = {
    "cats/cat 1.jpg": jpeg((200, 90, 40)),
    "cats/2.jpeg": jpeg((210, 80, 50)),
    "dogs/rex.jpg": jpeg((40, 90, 200)),
    "dogs/nested/fido.JPG": jpeg((50, 80, 210)),
    "labels.csv": b"id,label\n",
}
FILE_MANAGERS = {
    ".DS_Store": b"\0\0\0\1Bud1",
    "cats/Thumbs.db": b"\xd0\xcf\x11\xe0",
    "cats/._2.jpeg": b"\0\5\26\7",
    "__MACOSX/dogs/._rex.jpg": b"\0\5\26\7",
}


def folder_params(root: Path, test_root: Path | None = None):
    return download_params(source="folder", path=str(root), test_path=str(test_root or NO_LOCAL_ARCHIVE))


def members(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def snapshot(root: Path) -> dict[str, tuple]:
    """What a user would notice changed in their folder: every entry's mtime, mode, inode, link count and bytes."""
    seen = {}
    for path in sorted([root, *root.rglob("*")]):
        stat = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        seen[str(path.relative_to(root))] = (stat.st_mtime_ns, stat.st_mode, stat.st_ino, stat.st_nlink, data)
    return seen


def test_a_folder_is_copied_file_for_file_into_a_stored_zip_in_path_order(tmp_path: Path):
    root = make_folder(tmp_path / "mine", CLASS_FOLDERS | FILE_MANAGERS)
    raw = tmp_path / "raw" / "comp.zip"
    download(folder_params(root), raw)
    assert members(raw) == CLASS_FOLDERS  # file managers' own files left out
    with zipfile.ZipFile(raw) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(CLASS_FOLDERS)
    assert {(i.compress_type, i.date_time, i.external_attr >> 16) for i in infos} == {
        (zipfile.ZIP_STORED, ZIP_EPOCH, 0o644)
    }
    assert sorted(p.name for p in raw.parent.iterdir()) == ["comp.zip"]


def test_the_same_files_give_the_same_zip_whatever_their_times_and_order(tmp_path: Path):
    first = make_folder(tmp_path / "a", CLASS_FOLDERS)
    second = make_folder(tmp_path / "b", dict(reversed(CLASS_FOLDERS.items())))
    os.utime(second / "cats/2.jpeg", (1, 1))
    download(folder_params(first), tmp_path / "a.zip")
    download(folder_params(second), tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    (second / "dogs/rex.jpg").write_bytes(jpeg((0, 0, 0)))
    download(folder_params(second), tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() != (tmp_path / "b.zip").read_bytes()


def test_the_users_folder_is_only_read(tmp_path: Path):
    root = make_folder(tmp_path / "mine", CLASS_FOLDERS | FILE_MANAGERS)
    (root / "cats/2.jpeg").chmod(0o600)
    (root / "dogs").chmod(0o750)
    tests = make_folder(tmp_path / "unlabelled", {"1.jpg": jpeg((9, 9, 9))})
    before = snapshot(root), snapshot(tests)
    raw = tmp_path / "raw" / "comp.zip"
    download(folder_params(root, tests), raw)
    raw.chmod(0o444)  # what DVC does to an output it links to its cache: the user's files must not follow
    assert (snapshot(root), snapshot(tests)) == before


def test_a_separate_test_folder_is_packed_as_test(tmp_path: Path):
    root = make_folder(tmp_path / "mine", {"train/cats/1.jpg": b"c", "train/dogs/2.jpg": b"d"})
    tests = make_folder(tmp_path / "unlabelled", {"a.jpg": b"a", "more/b.jpg": b"b", "Thumbs.db": b""})
    download(folder_params(root, tests), tmp_path / "raw.zip")
    assert list(members(tmp_path / "raw.zip")) == [
        "test/a.jpg",
        "test/more/b.jpg",
        "train/cats/1.jpg",
        "train/dogs/2.jpg",
    ]


def test_a_link_inside_the_folder_is_followed_and_copied(tmp_path: Path):
    root = make_folder(tmp_path / "mine", {"cats/1.jpg": b"cat", "shared/2.jpg": b"dog"})
    (root / "dogs").symlink_to(root / "shared")
    (root / "cats/again.jpg").symlink_to("1.jpg")
    download(folder_params(root), tmp_path / "raw.zip")
    assert members(tmp_path / "raw.zip") == {
        "cats/1.jpg": b"cat",
        "cats/again.jpg": b"cat",
        "dogs/2.jpg": b"dog",
        "shared/2.jpg": b"dog",
    }
    assert (root / "dogs").is_symlink() and (root / "cats/again.jpg").is_symlink()


def _refused(tmp_path: Path, params, message: str) -> None:
    """download refuses params with exactly one line matching message, and writes nothing."""
    raw = tmp_path / "raw" / "comp.zip"
    with pytest.raises(StageError) as caught:
        download(params, raw)
    assert len(str(caught.value).splitlines()) == 1
    assert re.search(message, str(caught.value)), str(caught.value)
    assert not (tmp_path / "raw").exists()


def test_a_missing_path_a_file_or_an_empty_folder_is_refused(tmp_path: Path):
    missing = tmp_path / "nowhere"
    _refused(tmp_path, folder_params(missing), rf"^download.path {missing} does not exist: set it to the folder")
    a_zip = tmp_path / "photos.zip"
    a_zip.write_bytes(b"PK")
    _refused(
        tmp_path, folder_params(a_zip), r"is a file, not a folder: .*\(for a zip, set download.source to archive\)"
    )
    empty = make_folder(tmp_path / "empty", {".DS_Store": b"", "cats/Thumbs.db": b""})  # only file managers' files
    _refused(tmp_path, folder_params(empty), rf"^download.path {empty} holds no files: put your photos there")
    tests = make_folder(tmp_path / "ok", {"cats/1.jpg": b"c"})
    _refused(tmp_path, folder_params(tests, tmp_path / "no-tests"), r"^download.test_path .*no-tests does not exist")
    (tmp_path / "empty-tests").mkdir()
    _refused(tmp_path, folder_params(tests, tmp_path / "empty-tests"), r"^download.test_path .* holds no files")


def test_links_out_of_the_folder_to_nothing_or_above_are_refused(tmp_path: Path):
    elsewhere = make_folder(tmp_path / "elsewhere", {"dog.jpg": b"d"})
    root = make_folder(tmp_path / "mine", {"cats/1.jpg": b"c"})
    (root / "dogs").symlink_to(elsewhere)
    _refused(
        tmp_path,
        folder_params(root),
        rf"^{root}/dogs under download.path is a link to {elsewhere}, outside the folder: copy what it points to "
        r"into the folder in its place, or set download.path to a folder that holds it$",
    )
    (root / "dogs").unlink()
    (root / "cats/2.jpg").symlink_to(elsewhere / "dog.jpg")
    _refused(tmp_path, folder_params(root), r"cats/2.jpg under download.path is a link to .*, outside the folder")
    (root / "cats/2.jpg").unlink()
    (root / "cats/3.jpg").symlink_to(root / "gone.jpg")
    _refused(tmp_path, folder_params(root), r"cats/3.jpg under download.path is a link to .*gone.jpg, which does not")
    (root / "cats/3.jpg").unlink()
    (root / "cats/loop").symlink_to(root)
    _refused(tmp_path, folder_params(root), r"cats/loop under download.path is a link to .*, a folder above it")


def test_a_test_folder_that_clashes_or_overlaps_is_refused(tmp_path: Path):
    root = make_folder(tmp_path / "mine", {"cats/1.jpg": b"c", "test/1.jpg": b"t"})
    tests = make_folder(tmp_path / "unlabelled", {"2.jpg": b"t"})
    _refused(
        tmp_path,
        folder_params(root, tests),
        rf"^download.path {root} holds a test of its own and download.test_path names another: use one",
    )
    _refused(tmp_path, folder_params(root, root / "test"), r"^download.test_path .* and download.path .* overlap")
    _refused(tmp_path, folder_params(root / "cats", root), r"overlap: keep the test photos in a folder of their own")


def test_a_folder_holding_downloads_own_output_is_refused(tmp_path: Path):
    root = make_folder(tmp_path / "project", {"photos/cats/1.jpg": b"c"})
    with pytest.raises(StageError, match=r"^download.path .* holds download's own output .*comp.zip: set it to"):
        download(folder_params(root), root / "data/raw/comp.zip")
    assert not (root / "data").exists()


def test_names_that_are_not_utf8_are_refused(tmp_path: Path):
    root = make_folder(tmp_path / "mine", {"cats/1.jpg": b"c"})
    try:
        (root / os.fsdecode(b"cats/caf\xe9.jpg")).write_bytes(b"c")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this filesystem refuses names that are not UTF-8")
    _refused(tmp_path, folder_params(root), r"caf.*\.jpg under download.path has a name that is not UTF-8 text: rename")


UNREADABLE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tasks.core.errors import StageError
    from tasks.download import copy_folder
    try:
        copy_folder(Path(sys.argv[1]), None, Path(sys.argv[2]))
    except StageError as err:
        print(err)
""")


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_file_or_folder_download_may_not_read_is_refused(what: str):
    # Root reads everything: as root, download runs as nobody, who can't read what a mode hides. pytest's own
    # tmp_path sits under a folder only its user may enter, so this test makes a folder of its own others can.
    as_nobody = os.geteuid() == 0
    if as_nobody and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to run download as another user")
    with tempfile.TemporaryDirectory(prefix="unreadable-") as scratch:
        work = Path(scratch)
        work.chmod(0o777)
        root = make_folder(work / "mine", {"cats/1.jpg": b"c", "dogs/2.jpg": b"d"})
        for path in root.rglob("*"):
            path.chmod(0o777 if path.is_dir() else 0o644)
        hidden = root / "dogs/2.jpg" if what == "file" else root / "dogs"
        hidden.chmod(0o000)
        command = [sys.executable, "-c", UNREADABLE, str(root), str(work / "raw" / "comp.zip")]
        if as_nobody:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        repo = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        run = subprocess.run(command, capture_output=True, text=True, cwd=repo, env=env, timeout=120)
        hidden.chmod(0o755)
        assert (run.stdout, run.stderr) == (
            f"{hidden} can't be read (Permission denied): let yourself read it (chmod u+r), "
            "or move it out of the folder\n",
            "",
        )
        assert not (work / "raw").exists()


# ---------------------------------------------------------------- the synthetic source

# md5s of build_synthetic_archive's zips before synthetic.classes existed (commit 270eadd): two colour classes
# must keep giving these exact bytes, so the Dogs vs. Cats defaults' every later output stays the same.
BASE_MD5 = {
    (0, 100, 50): "fef4230ebe78dd77763ab8a00a203e27",  # params.yaml's defaults: dvc.lock's raw archive
    (3, 4, 3): "0c6911b341d83148434f209b7df9e97d",
    (7, 1, 0): "08e6b88a8c61ac4a950ec054dbd2b79f",
    (12345, 6, 5): "2d0fbf185189dc38346f6d0fb1762a6e",
}


def synthetic(seed: int, train_per_class: int, test_count: int, classes: int = 2, grayscale: bool = False):
    return download_params(
        source="synthetic",
        synthetic=SyntheticParams(
            seed=seed, train_per_class=train_per_class, test_count=test_count, classes=classes, grayscale=grayscale
        ),
    )


@pytest.mark.parametrize(("seed", "train_per_class", "test_count"), sorted(BASE_MD5))
def test_two_colour_classes_give_the_same_bytes_as_before(tmp_path: Path, seed, train_per_class, test_count):
    raw = tmp_path / "raw.zip"
    download(synthetic(seed, train_per_class, test_count), raw)
    assert hashlib.md5(raw.read_bytes()).hexdigest() == BASE_MD5[seed, train_per_class, test_count]


def photo_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_three_classes_are_class_folders_with_a_sample_per_class(tmp_path: Path):
    raw = tmp_path / "raw.zip"
    download(synthetic(5, 4, 3, classes=3), raw)
    files = members(raw)
    train = [f"train/class_{k}/class_{k}.{n}.jpg" for k in range(3) for n in range(1, 5)]
    assert list(files) == sorted(["sample_submission.csv", "test/1.jpg", "test/2.jpg", "test/3.jpg", *train])
    assert files["sample_submission.csv"].decode().splitlines() == [
        "id,class_0,class_1,class_2",
        *(f"{n},0.333333,0.333333,0.333333" for n in range(1, 4)),
    ]
    assert {photo_of(data).mode for name, data in files.items() if name.endswith(".jpg")} == {"RGB"}
    with zipfile.ZipFile(raw) as archive:
        assert {(i.compress_type, i.date_time) for i in archive.infolist()} == {(zipfile.ZIP_STORED, ZIP_EPOCH)}
    again = tmp_path / "again.zip"
    download(synthetic(5, 4, 3, classes=3), again)
    assert again.read_bytes() == raw.read_bytes()
    download(synthetic(6, 4, 3, classes=3), again)
    assert members(again)["train/class_0/class_0.1.jpg"] != files["train/class_0/class_0.1.jpg"]
    download(synthetic(5, 4, 7, classes=3), again)  # more test photos: each photo has its own generator
    assert {name: data for name, data in members(again).items() if name.startswith("train/")} == {
        name: data for name, data in files.items() if name.startswith("train/")
    }


def nearest_mean_accuracy(files: dict[str, bytes]) -> float:
    """How often a train photo's mean colour is nearest its own class's mean: classes apart on simple statistics."""
    stats = {}
    for name, data in files.items():
        if name.startswith("train/"):
            pixels = np.asarray(photo_of(data).convert("RGB").resize((32, 32)), dtype=float)
            stats[name] = (name.split("/")[1], np.concatenate([pixels.mean((0, 1)), pixels.std((0, 1))]))
    classes = sorted({c for c, _ in stats.values()})
    means = {c: np.mean([v for k, v in stats.values() if k == c], axis=0) for c in classes}
    right = [min(classes, key=lambda c: np.linalg.norm(v - means[c])) == k for k, v in stats.values()]
    return sum(right) / len(right)


@pytest.mark.parametrize("grayscale", [False, True])
def test_each_class_looks_its_own(tmp_path: Path, grayscale: bool):
    raw = tmp_path / "raw.zip"
    build_class_folders_archive(raw, seed=0, classes=5, grayscale=grayscale, train_per_class=8, test_count=0)
    assert nearest_mean_accuracy(members(raw)) == 1.0


def test_grayscale_photos_are_single_channel_of_many_sizes_and_shapes(tmp_path: Path):
    raw = tmp_path / "raw.zip"
    download(synthetic(0, 10, 4, classes=2, grayscale=True), raw)
    files = members(raw)
    assert files["sample_submission.csv"].decode().splitlines()[:2] == ["id,class_0,class_1", "1,0.5,0.5"]
    photos = [photo_of(data) for name, data in files.items() if name.endswith(".jpg")]
    assert len(photos) == 24 and {p.mode for p in photos} == {"L"}
    ratios = [p.width / p.height for p in photos]
    assert min(ratios) < 0.8 and max(ratios) > 1.25  # portrait and landscape
    assert len({p.size for p in photos}) > 20 and min(min(p.size) for p in photos) < 128 <= max(p.width for p in photos)
