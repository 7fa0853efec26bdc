"""Stage reorganize: unpack the archive into the course's class folders train/cats, train/dogs, test/unknown.

Beside the folder it writes an index of every photo with its md5 (tasks/photos/manifest.py).
What it writes is bounded by reorganize's params, checked from each zip's directory before anything is written
and again while streaming: first the three outer members (to a scratch folder), then the photos.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tasks.competition.archive import (
    REQUIRED_MEMBERS,
    SAMPLE_SUBMISSION,
    TEST_ZIP,
    TRAIN_ZIP,
    check_archive,
    check_members,
    check_readable,
    parse_test_name,
    parse_train_name,
    photo_name,
)
from tasks.core.atomic_output import atomic_dir
from tasks.core.errors import StageError, run_stage
from tasks.core.params import ReorganizeParams, load_params
from tasks.core.paths import load_paths
from tasks.photos.class_list import ClassList, sorted_classes, submission_layout, write_class_list
from tasks.photos.manifest import TEST_SUBSET, PhotoEntry, natural_key, write_manifest

_CHUNK = 1 << 20
_RAISE = "if the archive is genuine, raise it in params.yaml"


def copy_hashed(source: BinaryIO, target: Path, max_bytes: int, what: str) -> str:
    """Stream source into the file target, refusing more than max_bytes (what a member declares); return the md5.

    zipfile itself stops at a member's declared size; counting here keeps the bound whatever reads the stream.
    """
    digest, written = hashlib.md5(), 0
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise StageError(
                    f"{what} unpacks to more than the {max_bytes} bytes declared for it; download it again"
                )
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _photo_members(
    archive: zipfile.ZipFile, zip_name: str, expected: str, limits: ReorganizeParams
) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, file name) of each photo in an inner zip: folders and file managers' files skipped, the rest checked.

    Unsafe paths, names held twice, members zipfile can't read and photos over reorganize.max_photo_bytes are
    refused from the zip directory, before anything is written.
    """
    members = archive.infolist()
    check_members(zip_name, members, expected)
    photos = [(m, name) for m in members if (name := photo_name(m)) is not None]
    for member, _ in photos:
        check_readable(zip_name, member)
        if member.file_size > limits.max_photo_bytes:
            raise StageError(
                f"{zip_name} holds {member.filename!r} of {member.file_size} bytes unpacked, over "
                f"reorganize.max_photo_bytes ({limits.max_photo_bytes}; a competition photo is under 1 MB): {_RAISE}"
            )
    return photos


def _check_total(where: str, declared: int, limits: ReorganizeParams) -> None:
    """Refuse an archive whose declared unpacked size is over reorganize.max_unpacked_bytes."""
    if declared > limits.max_unpacked_bytes:
        raise StageError(
            f"{where} declares {declared} bytes unpacked, over reorganize.max_unpacked_bytes "
            f"({limits.max_unpacked_bytes}; the whole competition is under 2 GB unpacked): {_RAISE}"
        )


def _train_entry(name: str) -> tuple[PhotoEntry, str]:
    """Where a train photo goes (train/<cats|dogs>/<name>), and the line refusing a second photo of that name."""
    folder, photo_id = parse_train_name(name)
    twice = f"{TRAIN_ZIP} holds {name} twice; each train photo needs a unique name"
    return PhotoEntry("train", folder, photo_id, f"train/{folder}/{name}", ""), twice


def _test_entry(name: str) -> tuple[PhotoEntry, str]:
    """Where a test photo goes (test/unknown/<N>.jpg), and the line refusing a second photo of that id."""
    test_id = parse_test_name(name)
    twice = f"{TEST_ZIP} holds test id {test_id} twice; the submission needs unique ids"
    return PhotoEntry(TEST_SUBSET, "unknown", str(test_id), f"test/unknown/{test_id}.jpg", ""), twice


def _unpack(
    archive: zipfile.ZipFile,
    zip_name: str,
    photos: list[tuple[zipfile.ZipInfo, str]],
    out: Path,
    place: Callable[[str], tuple[PhotoEntry, str]],
) -> list[PhotoEntry]:
    """Write each photo where place puts it under out (the folder inside the zip is ignored); return index entries."""
    entries: dict[str, PhotoEntry] = {}  # by id
    for member, name in photos:
        entry, twice = place(name)
        if entry.id in entries:  # two names for one id (1.jpg and 01.jpg, or the same name in two folders)
            raise StageError(twice)
        with archive.open(member) as src:
            md5 = copy_hashed(src, out / entry.path, member.file_size, f"{zip_name} member {member.filename!r}")
        entries[entry.id] = entry._replace(md5=md5)
    return list(entries.values())


def _extract_inner(archive_path: Path, scratch: Path, limits: ReorganizeParams) -> int:
    """Write the archive's three members under scratch, within the size limit; return the bytes written.

    Inner zips go to disk first: seeking inside a deflated member re-reads it from the start.
    """
    scratch.mkdir()
    with zipfile.ZipFile(archive_path) as archive:
        members = [archive.getinfo(name) for name in REQUIRED_MEMBERS]
        written = sum(m.file_size for m in members)
        _check_total(str(archive_path), written, limits)
        for member in members:
            with archive.open(member) as src:
                copy_hashed(
                    src, scratch / member.filename, member.file_size, f"{archive_path} member {member.filename}"
                )
    return written


def sample_header(path: Path) -> list[str] | None:
    """The header of the competition's sample submission, or None when there is none."""
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        return next(csv.reader(handle), None)


def class_list_of(train: list[PhotoEntry], sample: Path) -> ClassList:
    """The classes the train photos hold, and the submission layout the sample submission's header gives them."""
    classes = sorted_classes((e.class_name for e in train), "the train photos")
    return ClassList(classes, submission_layout(classes, sample_header(sample), sample.name))


def reorganize(
    archive_path: Path, target: Path, index: Path, classes_file: Path, limits: ReorganizeParams
) -> dict[str, int]:
    """Unpack the archive into target's class folders, list them in index, their classes in classes_file; count them."""
    check_archive(archive_path)
    with atomic_dir(target) as out:
        for folder in ("train/cats", "train/dogs", "test/unknown"):
            (out / folder).mkdir(parents=True)
        scratch = out / ".inner"
        written = _extract_inner(archive_path, scratch, limits)
        try:
            with zipfile.ZipFile(scratch / TRAIN_ZIP) as train_zip, zipfile.ZipFile(scratch / TEST_ZIP) as test_zip:
                train_photos = _photo_members(train_zip, TRAIN_ZIP, "train/cat.1.jpg or train/dog.1.jpg", limits)
                test_photos = _photo_members(test_zip, TEST_ZIP, "test/1.jpg", limits)
                photo_bytes = sum(m.file_size for m, _ in [*train_photos, *test_photos])
                _check_total(f"{archive_path} (its zips, then their photos)", written + photo_bytes, limits)
                train = _unpack(train_zip, TRAIN_ZIP, train_photos, out, _train_entry)
                test = _unpack(test_zip, TEST_ZIP, test_photos, out, _test_entry)
        except zipfile.BadZipFile as err:
            raise StageError(f"an inner zip of {archive_path} is corrupt ({err}); download it again") from None
        shutil.move(scratch / SAMPLE_SUBMISSION, out / SAMPLE_SUBMISSION)
        shutil.rmtree(scratch)
        if not train or not test:
            raise StageError(
                f"{archive_path} holds {len(train)} train and {len(test)} test photos; both must be non-empty"
            )
        counts = {
            folder: len(list((out / folder).iterdir())) for folder in ("train/cats", "train/dogs", "test/unknown")
        }
        # Written before the folder is renamed into place: a failure leaves neither new. In the index, rows are sorted,
        # so the same archive gives the same bytes whatever order its members come in.
        write_class_list(classes_file, class_list_of(train, out / SAMPLE_SUBMISSION))
        write_manifest(
            index,
            [*sorted(train, key=lambda e: (e.class_name, natural_key(e.id))), *sorted(test, key=lambda e: int(e.id))],
        )
    return counts


def main() -> None:
    params = load_params()
    paths = load_paths()
    counts = reorganize(
        Path(paths.raw_archive),
        Path(paths.organized),
        Path(paths.organized_index),
        Path(paths.classes),
        params.reorganize,
    )
    print("reorganize: " + ", ".join(f"{folder} {n}" for folder, n in counts.items()))


if __name__ == "__main__":
    run_stage("reorganize", main)
