"""download and reorganize: the archive's format, the synthetic source, and unpacking into class folders."""

import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import pytest

from tasks.competition.archive import check_archive, check_photo_id, parse_train_name, write_member
from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.errors import StageError
from tasks.core.params import SyntheticParams
from tasks.download import download
from tasks.photos.manifest import read_manifest
from tasks.reorganize import reorganize
from tests.support.bad_inputs import competition_zip, patched_headers, zip_bytes
from tests.support.params import download_params, reorganize_params
from tests.support.photos import store_bytes


def test_ids_come_from_file_names():
    assert parse_train_name("cat.12.jpg") == ("cats", "cat.12")
    assert parse_train_name("dog.7.jpg") == ("dogs", "dog.7")
    assert parse_train_name("cow.1.PNG") == ("cows", "cow.1")  # any word, any photo extension: class <word>s
    for bad in ("cat12.jpg", "cat.one.jpg", "cat.1", "../cat.1.jpg"):
        with pytest.raises(StageError, match=r"is not named <word>.<n>.<ext> like cat.1.jpg"):
            parse_train_name(bad)
    assert check_photo_id("img_1.jpg", "img_1.jpg") == "img_1.jpg"
    for bad in ("a,b", 'a"b', "a\nb"):
        with pytest.raises(StageError, match=r"holds a comma, a double quote or a control character"):
            check_photo_id(bad, bad + ".jpg")


def test_synthetic_archive_has_the_competition_layout_and_is_deterministic(tmp_path: Path):
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_synthetic_archive(first, seed=3, train_per_class=4, test_count=3)
    build_synthetic_archive(second, seed=3, train_per_class=4, test_count=3)
    assert first.read_bytes() == second.read_bytes()
    check_archive(first)
    with zipfile.ZipFile(first) as outer:
        train = zipfile.ZipFile(io.BytesIO(outer.read("train.zip"))).namelist()
        test = zipfile.ZipFile(io.BytesIO(outer.read("test.zip"))).namelist()
        sample = outer.read("sample_submission.csv").decode().splitlines()
    assert sorted(train) == sorted(f"train/{a}.{i}.jpg" for a in ("cat", "dog") for i in range(1, 5))
    assert sorted(test) == sorted(f"test/{i}.jpg" for i in range(1, 4))
    assert sample == ["id,label", "1,0.5", "2,0.5", "3,0.5"]
    other = tmp_path / "c.zip"
    build_synthetic_archive(other, seed=4, train_per_class=4, test_count=3)
    assert other.read_bytes() != first.read_bytes()


def test_download_synthetic_and_local_archive(tmp_path: Path):
    params = download_params(
        source="synthetic",
        synthetic=SyntheticParams(seed=0, train_per_class=3, test_count=2, classes=2, grayscale=False),
    )
    made = tmp_path / "raw" / "comp.zip"
    download(params, made)
    check_archive(made)
    copied = tmp_path / "copy" / "comp.zip"
    download(download_params(source="archive", path=str(made)), copied)
    assert copied.read_bytes() == made.read_bytes()
    assert [p.name for p in copied.parent.iterdir()] == ["comp.zip"]


def test_a_bad_local_archive_is_refused_and_nothing_is_written(tmp_path: Path):
    bogus = tmp_path / "bogus.zip"
    bogus.write_text("this is not a zip")
    target = tmp_path / "raw" / "comp.zip"
    with pytest.raises(StageError, match="not a readable zip"):
        download(download_params(source="archive", path=str(bogus)), target)
    with pytest.raises(StageError, match="does not exist"):
        download(download_params(source="archive", path=str(tmp_path / "missing.zip")), target)
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_reorganize_makes_class_folders_and_keeps_test_ids(tmp_path: Path):
    archive = tmp_path / "comp.zip"
    build_synthetic_archive(archive, seed=0, train_per_class=5, test_count=4)
    done = reorganize(
        archive, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
    )
    assert done.counts == {"train/cats": 5, "train/dogs": 5, "test/unknown": 4}
    assert done.line() == "reorganize: train/cats 5, train/dogs 5, test/unknown 4"  # as before the layouts
    members = list(store_bytes(tmp_path / "photos.zip"))
    assert sorted(m.rpartition("/")[2] for m in members if m.startswith("train/dogs/")) == sorted(
        f"dog.{i}.jpg" for i in range(1, 6)
    )
    assert sorted(m.rpartition("/")[2] for m in members if m.startswith("test/unknown/")) == sorted(
        f"{i}.jpg" for i in range(1, 5)
    )
    assert "sample_submission.csv" in members
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.json", "comp.zip", "organized.csv", "photos.zip"]


def test_reorganize_indexes_every_photo_with_its_md5_in_a_fixed_order(tmp_path: Path):
    archive = tmp_path / "comp.zip"
    build_synthetic_archive(archive, seed=0, train_per_class=11, test_count=12)
    reorganize(
        archive, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
    )
    index = read_manifest(tmp_path / "organized.csv")
    stored = store_bytes(tmp_path / "photos.zip")
    assert sorted(e.path for e in index) == sorted(m for m in stored if m.endswith(".jpg"))
    assert all(e.md5 == hashlib.md5(stored[e.path]).hexdigest() for e in index)
    assert [e.id for e in index][:3] == ["cat.1", "cat.2", "cat.3"] and index[10].id == "cat.11"  # natural order
    assert [e.id for e in index if e.subset == "test"] == [str(i) for i in range(1, 13)]
    assert {(e.subset, e.class_name) for e in index} == {("train", "cats"), ("train", "dogs"), ("test", "unknown")}
    first = (tmp_path / "organized.csv").read_bytes()
    reorganize(
        archive, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
    )
    assert (tmp_path / "organized.csv").read_bytes() == first


def _archive_with_train_members(path: Path, train_names: list[str], test_names: list[str]) -> None:
    inner_train, inner_test = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(inner_train, "w") as train:
        for name in train_names:
            write_member(train, name, b"jpeg")
    with zipfile.ZipFile(inner_test, "w") as test:
        for name in test_names:
            write_member(test, name, b"jpeg")
    with zipfile.ZipFile(path, "w") as archive:
        write_member(archive, "train.zip", inner_train.getvalue())
        write_member(archive, "test.zip", inner_test.getvalue())
        write_member(archive, "sample_submission.csv", b"id,label\n")


@pytest.mark.parametrize(
    ("train_names", "test_names", "message"),
    [
        (["train/cat.1.jpg", "train/horse2.jpg"], ["test/1.jpg"], "'horse2.jpg' sits directly in the train folder"),
        (["train/cat.1.jpg", "train/dog.1.jpg"], ["test/1.jpg", "other/1.jpg"], "test id 1 twice"),
        (["train/cat.1.jpg", "train/dog.1.jpg"], [], "reorganize.test is 'test' but the data has no photos in that"),
    ],
)
def test_reorganize_refuses_bad_archives_and_leaves_nothing(tmp_path: Path, train_names, test_names, message):
    archive = tmp_path / "comp.zip"
    _archive_with_train_members(archive, train_names, test_names)
    with pytest.raises(StageError, match=message):
        reorganize(
            archive, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp.zip"]


def _identity(path: Path) -> tuple:
    """What a user would notice changed about their file: inode, mode, link count, bytes."""
    stat = path.stat()
    return stat.st_ino, stat.st_mode, stat.st_nlink, path.read_bytes()


def test_a_local_archive_is_copied_and_the_users_file_left_as_it_was(tmp_path: Path):
    mine = tmp_path / "mine" / "comp.zip"
    mine.parent.mkdir()
    build_synthetic_archive(mine, seed=0, train_per_class=2, test_count=1)
    mine.chmod(0o640)
    before = _identity(mine)
    copied = tmp_path / "raw" / "comp.zip"
    download(download_params(source="archive", path=str(mine)), copied)
    assert _identity(mine) == before
    assert copied.read_bytes() == before[-1] and copied.stat().st_ino != before[0]
    copied.chmod(0o444)  # what DVC does to an output it links to its cache: the user's file must not follow
    assert _identity(mine) == before


def test_an_archive_path_that_is_a_folder_is_called_a_folder(tmp_path: Path):
    message = (
        r"competition archive .* is a folder, not a zip file: give the path of the zip itself, "
        r"or set download.source to folder to copy the folder$"
    )
    with pytest.raises(StageError, match=message):
        download(download_params(source="archive", path=str(tmp_path)), tmp_path / "raw" / "comp.zip")
    assert not (tmp_path / "raw").exists()


def test_an_outer_member_held_twice_is_refused(tmp_path: Path):
    archive = tmp_path / "comp.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate name, and writes it
        with zipfile.ZipFile(archive, "w") as outer:
            write_member(outer, "train.zip", zip_bytes({"train/cat.1.jpg": b"jpeg"}))
            write_member(outer, "test.zip", zip_bytes({"test/1.jpg": b"jpeg"}))
            write_member(outer, "sample_submission.csv", b"id,label\n")
            write_member(outer, "train.zip", zip_bytes({"train/dog.1.jpg": b"jpeg"}))
    message = r"comp.zip holds train.zip more than once; which copy is meant is unclear: re-zip it with one of each"
    with pytest.raises(StageError, match=message):
        download(download_params(source="archive", path=str(archive)), tmp_path / "raw" / "comp.zip")
    with pytest.raises(StageError, match=message):
        reorganize(
            archive, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp.zip"]


UNREADABLE = {
    "deflate64": (
        {"compress_type": 9},
        r"holds '{member}' compressed with Deflate64 \(zip method 9\), which Python's zipfile can't read: "
        r"re-zip it with plain deflate \(`zip -r`, or 7-Zip's Deflate\)$",
    ),
    "encrypted": (
        {"flag_bits": 0x1},
        r"holds '{member}' encrypted with a password, which the pipeline can't read: re-zip it without a password$",
    ),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_members_zipfile_cannot_read_are_named_in_one_line(tmp_path: Path, kind: str):
    fields, message = UNREADABLE[kind]
    photos = {"train/cat.1.jpg": b"jpeg", "train/dog.1.jpg": b"jpeg"}
    inner = competition_zip(tmp_path / "inner.zip", photos, {"test/1.jpg": b"jpeg"})
    with zipfile.ZipFile(inner) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["train.zip"] = patched_headers(members["train.zip"], **fields)
    inner.write_bytes(zip_bytes(members))
    outer = tmp_path / "outer.zip"
    outer.write_bytes(patched_headers(competition_zip(outer, photos, {"test/1.jpg": b"jpeg"}).read_bytes(), **fields))
    raw = tmp_path / "raw" / "comp.zip"

    download(download_params(source="archive", path=str(inner)), raw)  # download doesn't open inner zips
    with pytest.raises(StageError, match="^train.zip " + message.format(member="train/cat.1.jpg")):
        reorganize(
            raw, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
        )
    raw.unlink()
    with pytest.raises(StageError, match="^outer.zip " + message.format(member="train.zip")):
        download(download_params(source="archive", path=str(outer)), raw)
    with pytest.raises(StageError, match="^outer.zip " + message.format(member="train.zip")):
        reorganize(
            outer, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner.zip", "outer.zip", "raw"]
    assert list((tmp_path / "raw").iterdir()) == []


def test_file_manager_files_are_skipped_and_backslashes_read_as_folders(tmp_path: Path):
    archive = competition_zip(
        tmp_path / "comp.zip",
        {
            "train/cat.1.jpg": b"cat",
            "train\\dog.1.jpg": b"dog",  # PowerShell 5's Compress-Archive writes Windows separators
            "train\\": b"",  # a folder entry, the same way
            "train/.DS_Store": b"\0\0\0\1Bud1",
            ".DS_Store": b"\0\0\0\1Bud1",
            "train/Thumbs.db": b"\xd0\xcf\x11\xe0",
            "__MACOSX/train/._cat.1.jpg": b"\0\5\26\7",
        },
        {"test\\1.jpg": b"one", "test/Thumbs.db": b"\xd0\xcf\x11\xe0", "test/._1.jpg": b""},
    )
    done = reorganize(
        archive, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
    )
    assert done.counts == {"train/cats": 1, "train/dogs": 1, "test/unknown": 1}
    assert not done.not_photos  # file managers' files are not counted as skipped: they never were the user's
    stored = store_bytes(tmp_path / "photos.zip")
    assert stored["train/dogs/dog.1.jpg"] == b"dog"
    assert stored["test/unknown/1.jpg"] == b"one"
    assert [e.path for e in read_manifest(tmp_path / "organized.csv")] == [
        "train/cats/cat.1.jpg",
        "train/dogs/dog.1.jpg",
        "test/unknown/1.jpg",
    ]


def test_numeric_test_ids_must_fit_in_a_signed_64_bit_integer(tmp_path: Path):
    assert check_photo_id(str(2**63 - 1), f"{2**63 - 1}.jpg") == str(2**63 - 1)
    with pytest.raises(StageError, match=r"has an id over 9223372036854775807: numeric ids must fit in a signed 64"):
        check_photo_id(str(2**63), f"{2**63}.jpg")
    assert check_photo_id("0a1b2c", "0a1b2c.jpg") == "0a1b2c"  # other ids are strings: no integer to overflow
    archive = competition_zip(
        tmp_path / "comp.zip",
        {"train/cat.1.jpg": b"cat", "train/dog.1.jpg": b"dog"},
        {"test/1.jpg": b"1", "test/123456789012345678901234.jpg": b"2"},
    )
    with pytest.raises(StageError, match=r"photo '123456789012345678901234.jpg' has an id over"):
        reorganize(
            archive, tmp_path / "photos.zip", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp.zip"]


def test_check_archive_takes_any_layout_and_refuses_only_an_unsafe_or_unreadable_zip(tmp_path: Path):
    """Which members the data holds is reorganize's to judge (reorganize.train, .test); download only checks the zip."""
    folders = tmp_path / "folders.zip"
    folders.write_bytes(zip_bytes({"cats/a.jpg": b"a", "dogs/b.png": b"b", "test/c.jpg": b"c"}))
    check_archive(folders)
    only_train = tmp_path / "only-train.zip"
    only_train.write_bytes(zip_bytes({"train.zip": zip_bytes({"train/cat.1.jpg": b"c"})}))
    check_archive(only_train)
    climbing = tmp_path / "climbing.zip"
    climbing.write_bytes(zip_bytes({"cats/a.jpg": b"a", "../b.jpg": b"b"}))
    with pytest.raises(StageError, match=r"^climbing.zip holds '../b.jpg', an absolute or '..' path"):
        check_archive(climbing)
