"""What unpacking may write and features may read is bounded: reorganize.max_photo_bytes and max_unpacked_bytes."""

import hashlib
import io
import tracemalloc
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tasks.competition.archive import TEST_ZIP, TRAIN_ZIP
from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.errors import StageError
from tasks.features import Photo, preprocessed_batches
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.reorganize import copy_hashed, reorganize
from tests.support.bad_inputs import competition_zip, patched_headers, zip_bytes
from tests.support.params import features_params, reorganize_params

SAMPLE = b"id,label\n1,0.5\n"  # the one test photo's id


def _nothing_but(root: Path, *names: str) -> None:
    assert sorted(p.name for p in root.iterdir()) == sorted(names)


def test_a_photo_declaring_2_gib_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch):
    # The bomb, at the default limits: a train.zip of a few kB whose one photo declares 2 GiB.
    bomb = patched_headers(zip_bytes({"train/cat.1.jpg": b"\0" * 1000}), file_size=2**31)
    archive = tmp_path / "comp.zip"
    archive.write_bytes(
        zip_bytes({"train.zip": bomb, "test.zip": zip_bytes({"test/1.jpg": b"1"}), "sample_submission.csv": SAMPLE})
    )
    written = []

    def spy(source, target: Path, *args) -> str:
        written.append(target.name)
        return copy_hashed(source, target, *args)

    monkeypatch.setattr("tasks.reorganize.copy_hashed", spy)
    with pytest.raises(
        StageError,
        match=r"^train.zip holds 'train/cat.1.jpg' of 2147483648 bytes unpacked, over reorganize.max_photo_bytes "
        r"\(50000000; a competition photo is under 1 MB\): if the archive is genuine, raise it in params.yaml$",
    ):
        reorganize(
            archive, tmp_path / "organized", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
        )
    assert sorted(written) == ["0.zip", "1.zip"]  # the inner zips (train.zip, test.zip), then no photo at all
    _nothing_but(tmp_path, "comp.zip")


def test_a_deflated_photo_over_the_limit_is_refused(tmp_path: Path):
    deflated = io.BytesIO()
    with zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as train:
        train.writestr("train/cat.1.jpg", b"\0" * 3_000_000)  # 3 MB of zeros: a 3 kB member
        train.writestr("train/dog.1.jpg", b"dog")
    archive = tmp_path / "comp.zip"
    archive.write_bytes(
        zip_bytes(
            {
                "train.zip": deflated.getvalue(),
                "test.zip": zip_bytes({"test/1.jpg": b"1"}),
                "sample_submission.csv": SAMPLE,
            }
        )
    )
    limits = reorganize_params(max_photo_bytes=1_000_000)
    with pytest.raises(StageError, match=r"'train/cat.1.jpg' of 3000000 bytes unpacked, over reorganize.max_photo"):
        reorganize(archive, tmp_path / "organized", tmp_path / "organized.csv", tmp_path / "classes.json", limits)
    _nothing_but(tmp_path, "comp.zip")
    done = reorganize(
        archive, tmp_path / "organized", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
    )
    assert done.counts["train/cats"] == 1 and (tmp_path / "organized/train/cats/cat.1.jpg").stat().st_size == 3_000_000


def test_the_total_written_is_bounded_by_the_zips_then_the_photos(tmp_path: Path):
    archive = tmp_path / "comp.zip"
    build_synthetic_archive(archive, seed=0, train_per_class=3, test_count=2)
    with zipfile.ZipFile(archive) as outer:
        zips = sum(outer.getinfo(name).file_size for name in (TRAIN_ZIP, TEST_ZIP))
        csv = outer.getinfo("sample_submission.csv").file_size
        photos = sum(
            m.file_size
            for name in (TRAIN_ZIP, TEST_ZIP)
            for m in zipfile.ZipFile(io.BytesIO(outer.read(name))).infolist()
        )
    organized, index, classes = tmp_path / "organized", tmp_path / "organized.csv", tmp_path / "classes.json"
    with pytest.raises(
        StageError, match=rf"comp.zip declares {zips} bytes unpacked, over reorganize.max_unpacked_bytes"
    ):
        reorganize(archive, organized, index, classes, reorganize_params(max_unpacked_bytes=zips - 1))
    with pytest.raises(
        StageError, match=rf"comp.zip \(its zips, then their photos\) declares {zips + csv + photos} bytes"
    ):
        reorganize(archive, organized, index, classes, reorganize_params(max_unpacked_bytes=zips + csv + photos - 1))
    _nothing_but(tmp_path, "comp.zip")
    reorganize(archive, organized, index, classes, reorganize_params(max_unpacked_bytes=zips + csv + photos))
    _nothing_but(tmp_path, "classes.json", "comp.zip", "organized", "organized.csv")


def test_a_stream_longer_than_its_declared_size_is_refused_while_copying(tmp_path: Path):
    # zipfile itself stops at the declared size (and then fails the CRC): the copy counts too, whatever the reader.
    with pytest.raises(StageError, match=r"^train.zip member 'x' unpacks to more than the 10 bytes declared for it"):
        copy_hashed(io.BytesIO(b"x" * 11), tmp_path / "over", 10, "train.zip member 'x'")
    assert copy_hashed(io.BytesIO(b"x" * 10), tmp_path / "fits", 10, "x") == hashlib.md5(b"x" * 10).hexdigest()
    liar = patched_headers(zip_bytes({"test/1.jpg": b"x" * 100}), file_size=10)
    archive = competition_zip(
        tmp_path / "comp.zip", {"train/cat.1.jpg": b"cat", "train/dog.1.jpg": b"dog"}, {"test/1.jpg": b"1"}
    )
    with zipfile.ZipFile(archive) as outer:
        members = {name: outer.read(name) for name in outer.namelist()}
    archive.write_bytes(zip_bytes({**members, "test.zip": liar}))
    with pytest.raises(StageError, match=r"an inner zip of .* is corrupt"):
        reorganize(
            archive, tmp_path / "organized", tmp_path / "organized.csv", tmp_path / "classes.json", reorganize_params()
        )


def test_features_reads_no_more_of_a_photo_than_the_limit(tmp_path: Path):
    huge = tmp_path / "cat.1.jpg"
    with open(huge, "wb") as out:
        out.truncate(64 << 20)  # 64 MiB of zeros, sparse: no disk used
    member = "train/cats/cat.1.jpg"
    with PhotoStoreWriter(tmp_path / "0.zip") as writer, open(huge, "rb") as source:
        md5 = writer.add(member, source, 64 << 20, "cat.1.jpg")  # the shard's store holds it whole
    photos = [Photo("cat.1", 0, Path("organized") / member, md5, member)]
    limit, undecodable = 1 << 20, {}
    params = features_params(batch_size=1, image_size=32)
    tracemalloc.start()
    with ThreadPoolExecutor(max_workers=2) as pool, PhotoStore(tmp_path / "0.zip") as store:
        batches = list(preprocessed_batches(store, photos, params, limit, pool, undecodable))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * limit  # the bounded read and one hashing chunk; reading it whole would take 64 MiB
    assert len(batches) == 1 and batches[0].shape == (1, 32, 32, 3)
    assert undecodable == {0: f"larger than reorganize.max_photo_bytes ({limit} bytes); not read whole"}
    photos = [photos[0]._replace(md5="0" * 32)]  # over the limit and not the listed bytes: refused as changed
    with (
        pytest.raises(StageError, match=f"{member} in .*0.zip is not the photo the manifest lists"),
        ThreadPoolExecutor(1) as pool,
        PhotoStore(tmp_path / "0.zip") as store,
    ):
        list(preprocessed_batches(store, photos, params, limit, pool, {}))
