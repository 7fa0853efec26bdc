"""Stage reorganize: unpack the raw archive into the course's class folders train/<class>, and test/unknown.

The archive holds the dataset's files at their paths inside it; a member that is itself a zip (train.zip) stands for
the folder of that name. reorganize's params say where the labelled photos, the test photos, a labels CSV and the
sample submission sit; tasks/photos/layout.py reads the classes from the layout found there. Beside the folder it
writes an index of every photo with its md5 (tasks/photos/manifest.py) and the class list (tasks/photos/class_list.py).
What it writes is bounded by reorganize's params, checked from each zip's directory before anything is written and
again while streaming: first the inner zips (to a scratch folder), then the CSVs, then the photos.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

from tasks.competition.archive import (
    check_archive,
    check_members,
    check_readable,
    data_path,
    is_file_manager_file,
    is_folder,
)
from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError, run_stage
from tasks.core.params import ReorganizeParams, load_params
from tasks.core.paths import load_paths
from tasks.photos.class_list import (
    ClassList,
    check_probabilities,
    sorted_classes,
    submission_layout,
    write_class_list,
)
from tasks.photos.layout import (
    Places,
    Sorting,
    TestPhoto,
    TrainPhoto,
    examples,
    one_class_per_photo,
    overlaps,
    read_labels,
    sort_files,
    test_photos,
    train_photos,
)
from tasks.photos.manifest import TEST_SUBSET, PhotoEntry, natural_key, write_manifest
from tasks.photos.photo_store import PhotoStoreWriter

_CHUNK = 1 << 20
_RAISE = "if the archive is genuine, raise it in params.yaml"
SAMPLE_OUT = "sample_submission.csv"  # where the photo store keeps the sample submission, whatever its name
_LISTED_CLASSES = 10  # more classes than this are summed up in reorganize's output line, not listed


@dataclass(frozen=True)
class DataFile:
    """A file of the data: its path inside the data, and the zip member holding it."""

    path: PurePosixPath
    zip_name: str  # the archive's name, or the inner zip's member name (train.zip), for messages
    member: zipfile.ZipInfo
    archive: zipfile.ZipFile


@dataclass(frozen=True)
class Reorganized:
    """What reorganize wrote: photos per folder, the files it skipped, and the sample submission it kept (if any)."""

    counts: dict[str, int]
    not_photos: list[PurePosixPath]
    outside: list[PurePosixPath]
    sample: str | None

    def line(self) -> str:
        """reorganize's output line: every folder's photos (or a summary), then what was skipped or absent."""
        train = {folder: n for folder, n in self.counts.items() if folder != "test/unknown"}
        if len(train) > _LISTED_CLASSES:
            fewest, most = min(train, key=lambda f: train[f]), max(train, key=lambda f: train[f])
            parts = [
                f"train {sum(train.values())} photos in {len(train)} classes "
                f"(fewest {fewest} {train[fewest]}, most {most} {train[most]})",
                *(f"{folder} {n}" for folder, n in self.counts.items() if folder not in train),
            ]
        else:
            parts = [f"{folder} {n}" for folder, n in self.counts.items()]
        if self.not_photos:
            parts.append(f"skipped {len(self.not_photos)} files that are not photos ({examples(self.not_photos)})")
        if self.outside:
            parts.append(
                f"skipped {len(self.outside)} photos outside reorganize.train and reorganize.test "
                f"({examples(self.outside)})"
            )
        if self.sample is None:
            parts.append("no sample submission: the submission takes the default layout (id, then the probabilities)")
        return "reorganize: " + ", ".join(parts)


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


def _check_total(where: str, declared: int, limits: ReorganizeParams) -> None:
    """Refuse an archive whose declared unpacked size is over reorganize.max_unpacked_bytes."""
    if declared > limits.max_unpacked_bytes:
        raise StageError(
            f"{where} declares {declared} bytes unpacked, over reorganize.max_unpacked_bytes "
            f"({limits.max_unpacked_bytes}; the whole competition is under 2 GB unpacked): {_RAISE}"
        )


def _check_photo(file: DataFile, limits: ReorganizeParams) -> None:
    """Refuse, from the zip directory, a photo zipfile can't read or over reorganize.max_photo_bytes."""
    check_readable(file.zip_name, file.member)
    if file.member.file_size > limits.max_photo_bytes:
        raise StageError(
            f"{file.zip_name} holds {file.member.filename!r} of {file.member.file_size} bytes unpacked, over "
            f"reorganize.max_photo_bytes ({limits.max_photo_bytes}; a competition photo is under 1 MB): {_RAISE}"
        )


class _Tree:
    """The data's files and folder entries, by their paths inside the data, across the archive and its inner zips."""

    def __init__(self) -> None:
        self.files: dict[PurePosixPath, DataFile] = {}
        self.folders: set[PurePosixPath] = set()

    def add(self, file: DataFile) -> None:
        """Add a file; the same path from two places (a folder and an inner zip, `a/b` and `a\\b`) is refused."""
        other = self.files.setdefault(file.path, file)
        if other is not file:
            raise StageError(
                f"the data holds {file.path} twice ({other.zip_name}: {other.member.filename!r}, {file.zip_name}: "
                f"{file.member.filename!r}); which copy is meant is unclear: re-zip it with one of each"
            )

    def add_zip(self, archive: zipfile.ZipFile, zip_name: str, folder: PurePosixPath) -> None:
        """Add an inner zip's entries under folder, the zip's own top folder (train.zip's train/) dropped."""
        members = archive.infolist()
        check_members(zip_name, members, f"{folder.name}/<file>")
        entries = [(m, data_path(m.filename)) for m in members]
        entries = [(m, p) for m, p in entries if p.parts and not is_file_manager_file(p)]
        # Entries all in one folder named as the zip (Dogs vs. Cats' train.zip holds train/cat.1.jpg): that is the zip.
        own = bool(entries) and all(
            p.parts[0] == folder.name and (len(p.parts) > 1 or is_folder(m)) for m, p in entries
        )
        self.folders.add(folder)
        for member, path in entries:
            inside = folder.joinpath(*path.parts[1 if own else 0 :])
            if is_folder(member):
                self.folders.add(inside)
            else:
                self.add(DataFile(inside, zip_name, member, archive))


def _unpack_tree(
    outer: zipfile.ZipFile, name: str, scratch: Path, places: Places, limits: ReorganizeParams, stack: ExitStack
) -> tuple[_Tree, list[PurePosixPath], int]:
    """The data's tree, the inner zips left unopened (counted as skipped) and the bytes written to scratch.

    The inner zips that may hold what reorganize reads go to disk first: seeking inside a deflated member re-reads
    it from the start.
    """
    tree, inner, skipped = _Tree(), [], []
    for member in outer.infolist():
        path = data_path(member.filename)
        if not path.parts or is_file_manager_file(path):
            continue
        if is_folder(member):
            tree.folders.add(path)
        elif path.suffix.lower() != ".zip":
            tree.add(DataFile(path, Path(name).name, member, outer))
        elif any(overlaps(path.with_suffix(""), wanted) for wanted in places.wanted()):
            inner.append(member)
        else:
            skipped.append(path)
    written = sum(m.file_size for m in inner)
    _check_total(name, written, limits)
    scratch.mkdir()
    for number, member in enumerate(inner):
        local = scratch / f"{number}.zip"
        with outer.open(member) as src:
            copy_hashed(src, local, member.file_size, f"{name} member {member.filename}")
        zip_name = data_path(member.filename).name
        tree.add_zip(stack.enter_context(zipfile.ZipFile(local)), zip_name, data_path(member.filename).with_suffix(""))
    return tree, skipped, written


def _csv_rows(file: DataFile) -> list[list[str]]:
    """A CSV file's rows (a UTF-8 byte-order mark, as Excel writes, dropped)."""
    check_readable(file.zip_name, file.member)
    with file.archive.open(file.member) as raw:
        try:
            return list(csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")))
        except (UnicodeDecodeError, csv.Error) as err:
            raise StageError(f"{file.path} is not a UTF-8 CSV file ({err}): save it as CSV (UTF-8)") from None


def _labels(tree: _Tree, found: Sorting, places: Places) -> dict[str, str] | None:
    """The labels CSV's photo -> class, or None when reorganize.labels is ''."""
    if places.labels is None:
        return None
    file = tree.files.get(places.labels)
    if file is None:
        raise StageError(
            f"reorganize.labels is {str(places.labels)!r} but the data has no such file: set it to the labels CSV "
            "inside the data (photo id, class), or to '' when class folders or names give the classes"
        )
    names = {n for p in found.direct for n in (p.name, p.stem)}
    return read_labels(_csv_rows(file), str(places.labels), names)


class Sample(NamedTuple):
    """The competition's sample submission as reorganize reads it."""

    file: DataFile
    header: list[str]
    ids: list[str]
    first_row: list[str] | None  # None for a sample of no rows


def _sample(tree: _Tree, places: Places) -> Sample | None:
    """The sample submission: its file, header, ids and first row; None when there is none."""
    file = tree.files.get(places.sample) if places.sample is not None else None
    if file is None:
        return None
    rows = [row for row in _csv_rows(file) if any(cell.strip() for cell in row)]
    if not rows:
        raise StageError(f"{places.sample} (reorganize.sample_submission) is empty; it needs a header")
    return Sample(file, rows[0], [row[0] for row in rows[1:]], rows[1] if len(rows) > 1 else None)


def _write(file: DataFile, store: PhotoStoreWriter, member: str) -> str:
    """Copy a file of the data into the photo store as member; return its md5."""
    with file.archive.open(file.member) as src:
        what = f"{file.zip_name} member {file.member.filename!r}"
        return store.add(member, src, file.member.file_size, what)


def _entries(
    tree: _Tree,
    train: list[TrainPhoto],
    test: list[TestPhoto],
    classes: tuple[str, ...],
    store: PhotoStoreWriter,
    class_folders: bool,
) -> list[PhotoEntry]:
    """Write each photo into store under its class folder; return the index entries, train by class then id, test by id.

    class_folders: the classes come from the folders the photos sit in, so one photo in two of them (the same bytes)
    is refused once every train photo is hashed.
    """
    entries, hashed = [], []
    for photo in sorted(train, key=lambda p: (classes.index(p.class_name), natural_key(p.id), p.id)):
        path = f"train/{photo.class_name}/{photo.path.name}"
        md5 = _write(tree.files[photo.path], store, path)
        entries.append(PhotoEntry("train", photo.class_name, photo.id, path, md5))
        hashed.append((photo, md5))
    if class_folders:
        one_class_per_photo(hashed)
    for photo in sorted(test, key=lambda p: (natural_key(p.id), p.id)):
        path = f"test/unknown/{photo.path.name}"
        entries.append(PhotoEntry(TEST_SUBSET, "unknown", photo.id, path, _write(tree.files[photo.path], store, path)))
    return entries


def reorganize(
    archive_path: Path, target: Path, index: Path, classes_file: Path, params: ReorganizeParams
) -> Reorganized:
    """Pack the archive's photos by class folder into the store target; list them in index, classes in classes_file.

    The store is one file, not a folder of 37,500: DVC checks it once per `dvc repro` (tasks/photos/photo_store.py).
    """
    check_archive(archive_path)
    places = Places.of(params.train, params.test, params.labels, params.sample_submission)
    name = str(archive_path)
    with atomic_file(target) as tmp, ExitStack() as stack:
        # The inner zips go beside the store's temporary, under a name a killed run's leftovers are found by.
        scratch = tmp.with_name(f"{tmp.name}.inner")
        outer = stack.enter_context(zipfile.ZipFile(archive_path))
        try:
            tree, skipped, written = _unpack_tree(outer, name, scratch, places, params, stack)
            found = sort_files(tree.files, tree.folders, places)
            # Every photo train and test hold is checked before any CSV is read or photo written: a zip bomb is
            # refused first, whatever else is wrong with the data.
            photos = [tree.files[p] for p in [*found.direct, *(p for ps in found.folders.values() for p in ps)]]
            photos += [tree.files[p] for p in found.test]
            for photo in photos:
                _check_photo(photo, params)
            csvs = [tree.files[p] for p in (places.labels, places.sample) if p in tree.files]
            declared = written + sum(f.member.file_size for f in [*csvs, *photos])
            _check_total(f"{name} (its zips, then their photos)", declared, params)
            labels = _labels(tree, found, places)
            train = train_photos(found, places, labels, str(places.labels))
            sample = _sample(tree, places)
            test = test_photos(found, places, sample.ids if sample else None)
            classes = sorted_classes((p.class_name for p in train), f"the train folder {places.train}")
            header = sample.header if sample else None
            if sample:
                check_probabilities(header, sample.first_row, str(places.sample), len(classes))
            class_list = ClassList(classes, submission_layout(classes, header, str(places.sample)))
            store = stack.enter_context(PhotoStoreWriter(tmp))
            entries = _entries(tree, train, test, classes, store, class_folders=not found.direct)
            if sample:
                _write(sample.file, store, SAMPLE_OUT)
        except zipfile.BadZipFile as err:
            raise StageError(f"an inner zip of {archive_path} is corrupt ({err}); download it again") from None
        finally:
            stack.close()
            shutil.rmtree(scratch, ignore_errors=True)
        # Written before the store is renamed into place: a failure leaves neither new. In the index, rows are sorted,
        # so the same archive gives the same bytes whatever order its members come in.
        write_class_list(classes_file, class_list)
        write_manifest(index, entries)
    counts = {f"train/{c}": sum(p.class_name == c for p in train) for c in classes}
    if test:
        counts["test/unknown"] = len(test)
    return Reorganized(counts, found.not_photos + skipped, found.outside, str(places.sample) if sample else None)


def main() -> None:
    params = load_params()
    paths = load_paths()
    done = reorganize(
        Path(paths.raw_archive),
        Path(paths.photos),
        Path(paths.organized_index),
        Path(paths.classes),
        params.reorganize,
    )
    print(done.line())


if __name__ == "__main__":
    run_stage("reorganize", main)
