"""Tiny 3-class datasets on disk, one per layout a user brings (docs/own-dataset.md), drawn here from a seed.

Each class is a shape in its own colour (a red circle, a green square, a blue triangle) on noise, so even a randomly
initialised VGG16 at 32 px tells them apart; photos come in varied sizes, one is grayscale and one a PNG. The
photos are drawn here with PIL and NumPy, not by tasks/competition/synthetic.py, so these tests do not move when the
pipeline's own synthetic source does. Each builder returns a Dataset: where it is, the params that read it, the
classes and submission header the pipeline should find, and the answer key (`id,class`) of its test photos.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Drawn in this order, which is not their sorted order: the pipeline must sort them itself (circle, square, triangle).
SHAPES = {"triangle": (40, 60, 220), "circle": (220, 50, 40), "square": (40, 200, 60)}
CLASSES = tuple(sorted(SHAPES))
PER_CLASS = 4  # the fewest that leave train a photo of each class after valid (1 each) and sample_train (1 each)
TEST_COUNT = 4
# The split that PER_CLASS photos of 3 classes allow: one of each class in valid, sample_train and sample_valid.
SPLIT = {"seed": 0, "valid_size": 3, "sample_train_size": 3, "sample_valid_size": 3}
# A Kaggle competition names its classes its own way and lists them in an order of its own (e.g. State Farm's
# `img,c0,...,c9`): these stand for the shapes in the competition zip, and the sample's header is not sorted.
KAGGLE_NAMES = {"circle": "c0", "square": "c1", "triangle": "c2"}
KAGGLE_HEADER = ("img", "c2", "c0", "c1")
KAGGLE_SLUG = "shapes-classification"


@dataclass(frozen=True)
class Dataset:
    """A dataset on disk and what the pipeline should make of it."""

    path: Path  # what download.path names: a folder, or a zip
    params: dict  # the download and reorganize params that read it, over params.yaml
    classes: tuple[str, ...]  # the classes, in the order data/classes.json should list them
    header: tuple[str, ...]  # the submission's header: the sample's, or the default `id,<classes>`
    test_ids: tuple[str, ...]  # the ids the submission writes, in natural order
    answers: Path  # `id,class` of every test photo, for grade


def draw_photo(rng: np.random.Generator, shape: str, size: tuple[int, int]) -> Image.Image:
    """One photo of a class: its shape, filled with its colour, on noise, at a random place and scale."""
    width, height = size
    pixels = np.clip(rng.normal(90, 30, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    side = min(size)
    r = int(rng.integers(side * 3 // 10, side * 9 // 20))
    x, y = int(rng.integers(r, width - r + 1)), int(rng.integers(r, height - r + 1))
    colour = tuple(int(c) for c in np.clip(np.array(SHAPES[shape]) + rng.normal(0, 15, 3), 0, 255))
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif shape == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    return image


def encode(image: Image.Image, extension: str) -> bytes:
    """The photo as a .jpg or .png file's bytes."""
    out = io.BytesIO()
    image.save(out, format="PNG" if extension == ".png" else "JPEG", quality=90)
    return out.getvalue()


@dataclass(frozen=True)
class Photo:
    shape: str
    stem: str
    extension: str
    data: bytes


def draw_photos(seed: int, stems: list[tuple[str, str, str]], grayscale_at: int, png_at: int) -> list[Photo]:
    """Photos (shape, stem, extension) drawn from seed at varied sizes; the grayscale_at-th in grayscale (mode L),
    the png_at-th a PNG."""
    rng = np.random.default_rng(seed)
    photos = []
    for index, (shape, stem, extension) in enumerate(stems):
        image = draw_photo(rng, shape, (int(rng.integers(28, 72)), int(rng.integers(28, 72))))
        if index == grayscale_at:
            image = image.convert("L")
        if index == png_at:
            extension = ".png"
        photos.append(Photo(shape, stem, extension, encode(image, extension)))
    return photos


def train_photos(seed: int, stem: str) -> list[Photo]:
    """PER_CLASS photos of each class, interleaved; stem formats (shape, index) into a photo stem."""
    stems = [(s, stem.format(shape=s, index=i), ".jpg") for i in range(1, PER_CLASS + 1) for s in SHAPES]
    return draw_photos(seed, stems, grayscale_at=1, png_at=2)


def unlabelled_photos(seed: int, stem: str) -> list[Photo]:
    """TEST_COUNT photos cycling through the classes (each class at least once); one is a PNG."""
    shapes = list(SHAPES)
    stems = [(shapes[i % len(shapes)], stem.format(index=i + 1), ".jpg") for i in range(TEST_COUNT)]
    return draw_photos(seed + 1, stems, grayscale_at=-1, png_at=TEST_COUNT - 1)


def write_answers(target: Path, rows: list[tuple[str, str]]) -> Path:
    """The answer key: `id,class` per test photo."""
    with target.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "class"])
        writer.writerows(rows)
    return target


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """Write each relative path's bytes under root."""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def zip_files(target: Path, files: dict[str, bytes]) -> Path:
    """A zip of files at target, as a person or Kaggle would pack them (plain folders, deflated)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def class_folders(root: Path, seed: int = 0) -> Dataset:
    """(a) A folder of class folders, `<root>/<class>/*.jpg`, and unlabelled photos in `<root>/test/`.

    Every class numbers its photos from 0001, as cameras and datasets do: the same names in each class folder (ids
    `<class>/0001`). No sample submission: test ids are the photos' stems and the header is the default `id,<classes>`.
    """
    train, test = train_photos(seed, "{index:04d}"), unlabelled_photos(seed, "p{index}")
    files = {f"{p.shape}/{p.stem}{p.extension}": p.data for p in train}
    files |= {f"test/{p.stem}{p.extension}": p.data for p in test}
    write_files(root / "photos", files)
    return Dataset(
        path=root / "photos",
        params={
            "download": {"source": "folder", "path": str(root / "photos")},
            "reorganize": {"train": ".", "test": "test", "labels": "", "sample_submission": ""},
        },
        classes=CLASSES,
        header=("id", *CLASSES),
        test_ids=tuple(p.stem for p in test),
        answers=write_answers(root / "answers.csv", [(p.stem, p.shape) for p in test]),
    )


def labels_file(root: Path, seed: int = 1) -> Dataset:
    """(b) A zip holding a folder of photos, `labels.csv` (`id,class`, ids the photos' stems) and a test folder,
    read by `source: archive` (dog-breed-identification's layout)."""
    train, test = train_photos(seed, "{shape}{index}x"), unlabelled_photos(seed, "q{index}")
    # Ids that say nothing of the class, as a competition's hashes do: the labels file is the only place it is.
    hidden = {p.stem: f"{i:02d}" + hashlib.md5(f"{seed}{p.stem}".encode()).hexdigest()[:6] for i, p in enumerate(train)}
    files = {f"train/{hidden[p.stem]}{p.extension}": p.data for p in train}
    files |= {f"test/{p.stem}{p.extension}": p.data for p in test}
    labels = "id,class\n" + "".join(f"{hidden[p.stem]},{p.shape}\n" for p in train)
    files["labels.csv"] = labels.encode()
    archive = zip_files(root / "labelled.zip", files)
    return Dataset(
        path=archive,
        params={
            "download": {"source": "archive", "path": str(archive)},
            "reorganize": {"train": "train", "test": "test", "labels": "labels.csv", "sample_submission": ""},
        },
        classes=CLASSES,
        header=("id", *CLASSES),
        test_ids=tuple(p.stem for p in test),
        answers=write_answers(root / "answers.csv", [(p.stem, p.shape) for p in test]),
    )


def kaggle_competition(root: Path, seed: int = 2) -> tuple[Dataset, bytes]:
    """(c) An N-class Kaggle competition's zip, `train/<class>/`, `test/`, and `sample_submission.csv` whose header
    is `img,c2,c0,c1` with ids that keep their extension (State Farm's layout); returned with the zip's bytes for
    the fake Kaggle server to serve as competition KAGGLE_SLUG."""
    train, test = train_photos(seed, "img_{index}{shape}"), unlabelled_photos(seed, "img_{index}")
    names = {p.stem: f"img_{i}" for i, p in enumerate(train, start=100)}
    files = {f"train/{KAGGLE_NAMES[p.shape]}/{names[p.stem]}{p.extension}": p.data for p in train}
    files |= {f"test/{p.stem}{p.extension}": p.data for p in test}
    ids = [f"{p.stem}{p.extension}" for p in test]
    uniform = ",".join(["0.333333"] * (len(KAGGLE_HEADER) - 1))
    files["sample_submission.csv"] = (
        ",".join(KAGGLE_HEADER) + "\n" + "".join(f"{i},{uniform}\n" for i in ids)
    ).encode()
    archive = zip_files(root / f"{KAGGLE_SLUG}.zip", files)
    dataset = Dataset(
        path=archive,
        params={
            "download": {"source": "kaggle", "competition": KAGGLE_SLUG},
            "reorganize": {
                "train": "train",
                "test": "test",
                "labels": "",
                "sample_submission": "sample_submission.csv",
            },
        },
        classes=tuple(sorted(KAGGLE_NAMES.values())),
        header=KAGGLE_HEADER,
        test_ids=tuple(ids),
        answers=write_answers(
            root / "answers.csv", [(i, KAGGLE_NAMES[p.shape]) for i, p in zip(ids, test, strict=True)]
        ),
    )
    return dataset, archive.read_bytes()


def unpack_into_class_folders(archive: Path, root: Path) -> Path:
    """A Dogs vs. Cats competition zip unpacked as a person sorts it: `train/cats`, `train/dogs`, `test`.

    The archive is only read (a copy of the shared real sample is never needed for that). Photos keep their names.
    """
    with zipfile.ZipFile(archive) as outer:
        for inner_name in ("train.zip", "test.zip"):
            with zipfile.ZipFile(io.BytesIO(outer.read(inner_name))) as inner:
                for member in inner.infolist():
                    name = Path(member.filename).name
                    if member.is_dir() or not name.endswith(".jpg"):
                        continue
                    folder = "test" if inner_name == "test.zip" else f"train/{name.split('.')[0]}s"
                    (root / folder).mkdir(parents=True, exist_ok=True)
                    with inner.open(member) as source, (root / folder / name).open("wb") as target:
                        shutil.copyfileobj(source, target)
    return root
