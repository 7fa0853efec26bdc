"""The 3-class datasets the end-to-end tests bring (tests/support/datasets.py) are what those tests claim they are."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support import datasets

CHANNEL = {"circle": 0, "square": 1, "triangle": 2}  # red, green, blue: the colour each shape is filled with


def folder_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def answers(path: Path) -> list[list[str]]:
    with path.open() as handle:
        return list(csv.reader(handle))


def check_photos(photos: dict[str, bytes], shape_of: dict[str, str]) -> None:
    """Photos of every class, in varied sizes, one grayscale and one PNG; each colour photo's class its colour."""
    images = {name: Image.open(io.BytesIO(data)) for name, data in photos.items()}
    assert {image.mode for image in images.values()} == {"RGB", "L"}
    assert sum(image.mode == "L" for image in images.values()) == 1
    assert sum(image.format == "PNG" for image in images.values()) == 1
    assert len({image.size for image in images.values()}) > len(images) // 2
    assert {shape_of[name] for name in images} == set(datasets.SHAPES)
    for name, image in images.items():
        if image.mode == "RGB":
            means = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
            assert int(np.argmax(means)) == CHANNEL[shape_of[name]], (name, means)


def test_class_folders_hold_a_folder_per_class_and_unlabelled_test_photos(tmp_path: Path):
    dataset = datasets.class_folders(tmp_path)
    files = folder_files(dataset.path)
    train = {name: data for name, data in files.items() if not name.startswith("test/")}
    check_photos(train, {name: name.split("/")[0] for name in train})
    assert len(train) == datasets.PER_CLASS * 3 and dataset.classes == ("circle", "square", "triangle")
    stems = {c: sorted(Path(n).stem for n in train if n.startswith(f"{c}/")) for c in dataset.classes}
    assert all(names == ["0001", "0002", "0003", "0004"] for names in stems.values())  # the same names in each class
    tests = sorted(name for name in files if name.startswith("test/"))
    assert tuple(Path(name).stem for name in tests) == dataset.test_ids
    assert [row[0] for row in answers(dataset.answers)] == ["id", *dataset.test_ids]
    assert datasets.class_folders(tmp_path / "again").path != dataset.path
    assert folder_files(tmp_path / "again" / "photos") == files  # the same photos from the same seed


def test_a_labels_file_names_the_class_of_every_train_photo(tmp_path: Path):
    dataset = datasets.labels_file(tmp_path)
    files = zip_files(dataset.path)
    labels = dict(list(csv.reader(io.StringIO(files.pop("labels.csv").decode())))[1:])
    train = {name: data for name, data in files.items() if name.startswith("train/")}
    assert sorted(labels) == sorted(Path(name).stem for name in train)  # the only place the class is
    check_photos(train, {name: labels[Path(name).stem] for name in train})
    assert sorted(Path(n).stem for n in files if n.startswith("test/")) == list(dataset.test_ids)


def test_a_kaggle_competition_has_an_unsorted_sample_header_and_ids_with_extensions(tmp_path: Path):
    dataset, data = datasets.kaggle_competition(tmp_path)
    assert data == dataset.path.read_bytes()
    files = zip_files(dataset.path)
    sample = list(csv.reader(io.StringIO(files.pop("sample_submission.csv").decode())))
    assert tuple(sample[0]) == dataset.header == ("img", "c2", "c0", "c1")
    assert list(dataset.header[1:]) != sorted(dataset.header[1:])
    assert tuple(row[0] for row in sample[1:]) == dataset.test_ids
    assert all(Path(i).suffix in (".jpg", ".png") for i in dataset.test_ids)
    assert sorted(Path(n).name for n in files if n.startswith("test/")) == sorted(dataset.test_ids)
    names = {v: k for k, v in datasets.KAGGLE_NAMES.items()}
    train = {name: data for name, data in files.items() if name.startswith("train/")}
    check_photos(train, {name: names[name.split("/")[1]] for name in train})
    truth = answers(dataset.answers)
    assert truth[0] == ["id", "class"] and {row[1] for row in truth[1:]} <= set(dataset.classes)
