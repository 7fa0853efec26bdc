"""Stage reorganize: unpack the archive into the course's class folders train/cats, train/dogs, test/unknown.

Beside the folder it writes an index of every photo with its md5 (tasks/photos/manifest.py).
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from tasks.competition.archive import (
    SAMPLE_SUBMISSION,
    TEST_ZIP,
    TRAIN_ZIP,
    check_archive,
    check_member_path,
    parse_test_name,
    parse_train_name,
)
from tasks.core.atomic_output import atomic_dir
from tasks.core.errors import StageError, run_stage
from tasks.core.params import load_params
from tasks.photos.manifest import TEST_SUBSET, PhotoEntry, natural_key, write_manifest

_CHUNK = 1 << 20


def _photo_members(archive: zipfile.ZipFile, zip_name: str, expected: str) -> list[zipfile.ZipInfo]:
    """The file members of an inner zip, skipping folders and macOS resource forks; unsafe paths are refused."""
    for member in archive.infolist():
        check_member_path(zip_name, member.filename, expected)
    return [
        m
        for m in archive.infolist()
        if not m.is_dir() and not PurePosixPath(m.filename).name.startswith("._") and "__MACOSX" not in m.filename
    ]


def _copy_hashed(source, target: Path) -> str:
    """Stream source into the file target; return the md5 of what was written."""
    digest = hashlib.md5()
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _unpack_train(train_zip: Path, out: Path) -> list[PhotoEntry]:
    """Write each train photo to out/train/<cats|dogs>/<name>; return their index entries."""
    seen: set[str] = set()
    entries = []
    with zipfile.ZipFile(train_zip) as archive:
        for member in _photo_members(archive, TRAIN_ZIP, "train/cat.1.jpg or train/dog.1.jpg"):
            name = PurePosixPath(member.filename).name  # the folder inside is ignored; only the name counts
            folder, photo_id = parse_train_name(name)
            if photo_id in seen:
                raise StageError(f"{TRAIN_ZIP} holds {name} twice; each train photo needs a unique name")
            seen.add(photo_id)
            path = f"train/{folder}/{name}"
            with archive.open(member) as src:
                entries.append(PhotoEntry("train", folder, photo_id, path, _copy_hashed(src, out / path)))
    return entries


def _unpack_test(test_zip: Path, out: Path) -> list[PhotoEntry]:
    """Write each test photo to out/test/unknown/<N>.jpg; return their index entries."""
    seen: set[int] = set()
    entries = []
    with zipfile.ZipFile(test_zip) as archive:
        for member in _photo_members(archive, TEST_ZIP, "test/1.jpg"):
            name = PurePosixPath(member.filename).name
            test_id = parse_test_name(name)
            if test_id in seen:
                raise StageError(f"{TEST_ZIP} holds test id {test_id} twice; the submission needs unique ids")
            seen.add(test_id)
            path = f"test/unknown/{test_id}.jpg"
            with archive.open(member) as src:
                entries.append(PhotoEntry(TEST_SUBSET, "unknown", str(test_id), path, _copy_hashed(src, out / path)))
    return entries


def reorganize(archive_path: Path, target: Path, index: Path) -> dict[str, int]:
    """Unpack the competition archive into target's class folders and list them in index; return counts per folder."""
    check_archive(archive_path)
    with atomic_dir(target) as out:
        for folder in ("train/cats", "train/dogs", "test/unknown"):
            (out / folder).mkdir(parents=True)
        scratch = out / ".inner"
        with zipfile.ZipFile(archive_path) as archive:
            # Inner zips are extracted to disk first: seeking inside a deflated member re-reads it from the start.
            for inner in (TRAIN_ZIP, TEST_ZIP, SAMPLE_SUBMISSION):
                archive.extract(inner, scratch)
        try:
            train = _unpack_train(scratch / TRAIN_ZIP, out)
            test = _unpack_test(scratch / TEST_ZIP, out)
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
        write_manifest(
            index,
            [*sorted(train, key=lambda e: (e.class_name, natural_key(e.id))), *sorted(test, key=lambda e: int(e.id))],
        )
    return counts


def main() -> None:
    params = load_params()
    counts = reorganize(
        Path(params.paths.raw_archive), Path(params.paths.organized), Path(params.paths.organized_index)
    )
    print("reorganize: " + ", ".join(f"{folder} {n}" for folder, n in counts.items()))


if __name__ == "__main__":
    run_stage("reorganize", main)
