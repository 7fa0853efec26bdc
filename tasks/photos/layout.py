"""Where a dataset's photos sit and what class each holds: class folders, a labels CSV, or Dogs vs. Cats' names.

reorganize lists the data's files (paths inside the data, whatever zip holds them) and these functions say which are
train photos of which class, which are test photos and under what id, and which are skipped. They open no file.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import NamedTuple

from tasks.competition.archive import check_photo_id, parse_train_name
from tasks.core.errors import StageError
from tasks.photos.manifest import natural_key

# What counts as a photo, by extension in any case: the formats Pillow decodes that image datasets ship in.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
TOP = PurePosixPath(".")  # reorganize.train `.`: the data's top folder
_EXAMPLES = 3  # how many names a refusal shows


@dataclass(frozen=True)
class Places:
    """reorganize's four params as paths inside the data; None where a param is '' (none)."""

    train: PurePosixPath
    test: PurePosixPath | None
    labels: PurePosixPath | None
    sample: PurePosixPath | None

    @classmethod
    def of(cls, train: str, test: str, labels: str, sample: str) -> Places:
        """Places from the params' strings ('' for none, `.` for the top)."""
        return cls(PurePosixPath(train), *(PurePosixPath(p) if p else None for p in (test, labels, sample)))

    def wanted(self) -> list[PurePosixPath]:
        """Every folder or file reorganize reads."""
        return [p for p in (self.train, self.test, self.labels, self.sample) if p is not None]


class TrainPhoto(NamedTuple):
    class_name: str
    # Unique across train. Class folders: `<class>/<file name without extension>` (bees/0001), as cameras and datasets
    # reuse names in every class; Dogs vs. Cats' names and a labels CSV: the file name without extension (cat.1).
    id: str
    path: PurePosixPath  # inside the data


class TestPhoto(NamedTuple):
    id: str  # what the submission writes: the file name, or its stem
    path: PurePosixPath


@dataclass
class Sorting:
    """The data's files, sorted by what reorganize does with them."""

    direct: list[PurePosixPath] = field(default_factory=list)  # photos directly in the train folder
    folders: dict[str, list[PurePosixPath]] = field(default_factory=dict)  # train subfolder -> photos at any depth
    test: list[PurePosixPath] = field(default_factory=list)
    not_photos: list[PurePosixPath] = field(default_factory=list)  # skipped: counted, never silently dropped
    outside: list[PurePosixPath] = field(default_factory=list)  # photos outside train and test: skipped, counted
    train_seen: bool = False  # the train folder exists (a file or a folder entry under it)
    test_seen: bool = False
    top: set[str] = field(default_factory=set)  # the names at the data's top, for a message naming a missing folder

    def top_names(self) -> str:
        """The data's top entries, for a message: `cats/, dogs/, test/` (folders end in /)."""
        return examples(sorted(self.top, key=natural_key)) or "nothing"


def is_photo(path: PurePosixPath) -> bool:
    """Whether a file is a photo, by its extension."""
    return path.suffix.lower() in PHOTO_SUFFIXES


def inside(path: PurePosixPath, folder: PurePosixPath) -> PurePosixPath | None:
    """path relative to folder when it lies strictly inside it; else None."""
    top = folder.parts
    return (
        PurePosixPath(*path.parts[len(top) :]) if path.parts[: len(top)] == top and len(path.parts) > len(top) else None
    )


def overlaps(folder: PurePosixPath, other: PurePosixPath) -> bool:
    """Whether one of the two paths is the other or lies inside it."""
    return inside(folder, other) is not None or inside(other, folder) is not None or folder == other


def examples(paths: Iterable[object]) -> str:
    """A few of paths, for a message."""
    shown = [str(p) for p in paths]
    return ", ".join(shown[:_EXAMPLES]) + (", ..." if len(shown) > _EXAMPLES else "")


def sort_files(files: Iterable[PurePosixPath], folders: Iterable[PurePosixPath], places: Places) -> Sorting:
    """Sort the data's files (file managers' files already left out) and folder entries by what becomes of them."""
    found = Sorting()
    csvs = {places.labels, places.sample}
    for path in files:
        found.top.add(path.parts[0] + ("/" if len(path.parts) > 1 else ""))
        in_test = places.test is not None and inside(path, places.test) is not None
        in_train = inside(path, places.train) if not in_test and path not in csvs else None
        found.test_seen |= in_test
        found.train_seen |= in_train is not None
        if path in csvs:
            continue
        in_a_subfolder = in_train is not None and len(in_train.parts) > 1
        folder = found.folders.setdefault(in_train.parts[0], []) if in_a_subfolder else None
        if not is_photo(path):
            found.not_photos.append(path)
        elif in_test:
            found.test.append(path)
        elif in_train is None:
            found.outside.append(path)
        elif folder is None:
            found.direct.append(path)
        else:
            folder.append(path)
    for folder in folders:
        found.top.add(folder.parts[0] + "/")
        if places.test is not None and (folder == places.test or inside(folder, places.test) is not None):
            found.test_seen = True
            continue
        relative = inside(folder, places.train)
        if folder == places.train or relative is not None:
            found.train_seen = True
        if relative is not None and not any(
            overlaps(folder, p) for p in (places.test, places.labels, places.sample) if p
        ):
            found.folders.setdefault(relative.parts[0], [])  # a class folder with no photo: refused by train_photos
    return found


def _unique_ids(photos: list[TrainPhoto]) -> list[TrainPhoto]:
    """photos, refused when two files get one id: `a.jpg` and `a.png`, or in a class folder `x/a.jpg` and `y/a.jpg`.

    Two files, not one photo in two classes (one_class_per_photo tells that by the bytes), so the remedy is a name.
    In class folders the id holds the class, so only two files of one class can share it, and they would also be
    copied to the same train/<class>/a.jpg.
    """
    seen: dict[str, TrainPhoto] = {}
    for photo in photos:
        other = seen.setdefault(photo.id, photo)
        if other is not photo:
            raise StageError(
                f"train holds photo id {photo.id} twice ({other.path} and {photo.path}); an id is the file name "
                "without extension (after the class folder, if any) and names one photo: rename one"
            )
    return photos


def _id_of(path: PurePosixPath) -> str:
    return check_photo_id(path.stem, path.name)


def _in_class_folder(class_name: str, path: PurePosixPath) -> TrainPhoto:
    """A photo of a class folder, its id `<class>/<stem>`: two classes may each hold a 0001.jpg."""
    return TrainPhoto(class_name, f"{class_name}/{_id_of(path)}", path)


def one_class_per_photo(hashed: Iterable[tuple[TrainPhoto, str]]) -> None:
    """Refuse the same bytes (md5) in two class folders: one photo given two classes, whatever the files' names."""
    seen: dict[str, TrainPhoto] = {}
    for photo, md5 in hashed:
        other = seen.setdefault(md5, photo)
        if other.class_name != photo.class_name:
            raise StageError(
                f"{other.path} and {photo.path} are the same photo (md5 {md5}) in two classes, {other.class_name} "
                f"and {photo.class_name}; a photo has one class: remove one of them"
            )


def read_labels(rows: Iterable[list[str]], where: str, photo_names: set[str]) -> dict[str, str]:
    """photo id or file name -> class, from a labels CSV's rows; the first row is a header unless it names a photo."""
    labels: dict[str, str] = {}
    for line, row in enumerate(rows, start=1):
        if line == 1 and (not row or row[0] not in photo_names):
            continue  # a header (id,class / id,label / id,breed ...)
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) < 2:
            raise StageError(f"{where} line {line} has {len(row)} cell; each row is a photo id, then its class")
        photo, class_name = row[0].strip(), row[1].strip()
        other = labels.setdefault(photo, class_name)
        if other != class_name:
            raise StageError(
                f"{where} gives photo {photo} two classes, {other} and {class_name}; a photo has one class: "
                "remove one row"
            )
    return labels


def _labelled(direct: list[PurePosixPath], labels: dict[str, str], where: str, train: str) -> list[TrainPhoto]:
    """Each photo directly in train with the class its labels row gives (by file name or by stem)."""
    photos, used = [], set()
    for path in direct:
        key = path.name if path.name in labels else path.stem
        if key in labels:
            used.add(key)
            photos.append(TrainPhoto(labels[key], _id_of(path), path))
    unlabelled = [p.name for p in direct if p.name not in labels and p.stem not in labels]
    if unlabelled:
        raise StageError(
            f"{len(unlabelled)} train photos in {train} have no row in {where} (e.g. {examples(unlabelled)}): "
            "add a row (photo id, class) for each, or remove them"
        )
    absent = sorted(set(labels) - used, key=natural_key)
    if absent:
        raise StageError(
            f"{where} names {len(absent)} photos that are not in the train folder {train} "
            f"(e.g. {examples(absent)}): remove those rows, or add the photos"
        )
    return photos


def train_photos(found: Sorting, places: Places, labels: dict[str, str] | None, where: str) -> list[TrainPhoto]:
    """The train photos with their classes, by the train folder's layout; every refusal names what to change.

    Photos in subfolders: each first-level subfolder is a class (bees/0001.jpg: class bees, id bees/0001). Photos
    directly in it: the labels CSV's classes when reorganize.labels names one, else Dogs vs. Cats' names (cat.1.jpg is
    in class cats, id cat.1).
    """
    train = f"{places.train} (reorganize.train)"
    if not found.train_seen:
        raise StageError(
            f"reorganize.train is {str(places.train)!r} but the data has no such folder (its top holds "
            f"{found.top_names()}): set it to the folder of labelled photos inside the data (. for the top)"
        )
    with_photos = {name: paths for name, paths in found.folders.items() if paths}
    if found.direct and with_photos:
        in_folders = [p for paths in with_photos.values() for p in paths]
        raise StageError(
            f"the train folder {train} holds photos both directly ({len(found.direct)}, e.g. "
            f"{examples(found.direct)}) and in subfolders ({len(in_folders)}, e.g. {examples(in_folders)}): put "
            "every photo in a class folder, or all of them directly in it with a labels CSV (reorganize.labels)"
        )
    if with_photos:
        empty = sorted((name for name, paths in found.folders.items() if not paths), key=natural_key)
        if empty:
            raise StageError(
                f"class folder {places.train / empty[0]} holds no photos: add photos of {empty[0]}, or remove "
                f"the folder ({len(found.not_photos)} files that are not photos were skipped)"
            )
        if labels is not None:
            raise StageError(
                f"reorganize.labels names {where}, but the train photos sit in class folders "
                f"({examples(with_photos)}), which give their classes: set reorganize.labels to '', or move the "
                "photos directly into the train folder"
            )
        photos = [_in_class_folder(name, p) for name, paths in with_photos.items() for p in paths]
    elif not found.direct:
        raise StageError(
            f"the train folder {train} holds no photos ({len(found.not_photos)} other files skipped); photos are "
            f"{', '.join(sorted(PHOTO_SUFFIXES))} files: check reorganize.train"
        )
    elif labels is not None:
        photos = _labelled(found.direct, labels, where, train)
    else:
        photos = []
        for path in found.direct:
            try:
                class_name, photo_id = parse_train_name(path.name)
            except StageError:
                raise StageError(
                    f"train photo {path.name!r} sits directly in the train folder {train}, not named "
                    "<word>.<n>.<ext> like cat.1.jpg (class cats): put the photos in one folder per class, or name "
                    "a labels CSV (photo id, class) in reorganize.labels"
                ) from None
            photos.append(TrainPhoto(class_name, check_photo_id(photo_id, path.name), path))
    return _unique_ids(photos)


def test_photos(found: Sorting, places: Places, sample_ids: list[str] | None) -> list[TestPhoto]:
    """The test photos under the ids the submission writes (file names if the sample's ids carry one, else stems)."""
    if places.test is None:
        photos: list[PurePosixPath] = []
    elif not found.test_seen or not found.test:
        state = (
            f"has no such folder (its top holds {found.top_names()})"
            if not found.test_seen
            else ("has no photos in that folder")
        )
        raise StageError(
            f"reorganize.test is {str(places.test)!r} but the data {state}: set it to the folder of unlabelled "
            "photos inside the data, or set reorganize.test to '' if there are none"
        )
    else:
        photos = found.test
    # State Farm's sample writes img_1.jpg, Dogs vs. Cats' 1 and Dog Breed Identification's the bare hash.
    by_name = sample_ids is not None and any(is_photo(PurePosixPath(i)) for i in sample_ids)
    seen: dict[str, PurePosixPath] = {}
    for path in photos:
        photo_id = check_photo_id(path.name if by_name else path.stem, path.name)
        other = seen.setdefault(photo_id, path)
        if other != path:
            raise StageError(
                f"the test folder holds test id {photo_id} twice ({other} and {path}); the submission needs "
                "unique ids: rename one"
            )
    if sample_ids is not None:
        _sample_lists_the_test_ids(sample_ids, set(seen), places)
    return [TestPhoto(i, p) for i, p in seen.items()]


def _sample_lists_the_test_ids(sample_ids: list[str], test_ids: set[str], places: Places) -> None:
    """Refuse a sample submission whose ids are not exactly the test photos' ids."""
    listed = set(sample_ids)
    twice = sorted((i for i, n in Counter(sample_ids).items() if n > 1), key=natural_key)
    no_photo = sorted(listed - test_ids, key=natural_key)
    no_row = sorted(test_ids - listed, key=natural_key)
    if no_photo or no_row or twice:
        parts = [
            f"{len(no_photo)} of its ids have no photo (e.g. {examples(no_photo)})" if no_photo else "",
            f"{len(no_row)} photos have no row (e.g. {examples(no_row)})" if no_row else "",
            f"it lists {examples(twice)} twice" if twice else "",
        ]
        raise StageError(
            f"{places.sample} (reorganize.sample_submission) lists {len(sample_ids)} ids and the test folder "
            f"{places.test or '(none: reorganize.test is empty)'} holds {len(test_ids)} photos: "
            f"{'; '.join(p for p in parts if p)}; the sample must list exactly the test photos"
        )


def by_class(photos: Iterable[TrainPhoto]) -> dict[str, list[TrainPhoto]]:
    """The photos of each class."""
    grouped: dict[str, list[TrainPhoto]] = defaultdict(list)
    for photo in photos:
        grouped[photo.class_name].append(photo)
    return grouped
