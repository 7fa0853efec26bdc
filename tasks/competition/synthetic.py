"""A small dataset made from a seed, as the raw zip: classes a linear head can tell apart, even on random VGG16.

Two colour classes give Dogs vs. Cats' own archive (train.zip, test.zip, sample_submission.csv), byte for byte as
it always was; more classes, or grayscale photos, give a plain tree of class folders (train/<class>/, test/).
"""

from __future__ import annotations

import colorsys
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tasks.competition.archive import SAMPLE_SUBMISSION, TEST_ZIP, TRAIN_ZIP, write_member

# Shapes the classes take in turn, so neighbouring classes differ in shape as well as in colour or brightness.
SHAPES = ("ellipse", "bar", "column", "triangle", "diamond")
# Each photo draws from its own generator, seeded by (seed, part, class, number): a photo does not change when
# the counts of others do. Parts: train photos, test photos.
_TRAIN, _TEST = 0, 1


def draw_photo(rng: np.random.Generator, is_dog: bool, size: tuple[int, int]) -> Image.Image:
    """Draw one photo: cats are warm with round blobs, dogs cool with stripes, both noisy.

    The classes differ in colour and shape statistics, which survive even a randomly initialised
    VGG16, so the whole pipeline learns something without ImageNet weights.
    """
    width, height = size
    warm = np.array([200, 120, 60]) if not is_dog else np.array([60, 110, 190])
    base = np.clip(warm + rng.normal(0, 25, 3), 0, 255)
    pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(int(c) for c in np.clip(base + rng.normal(0, 60, 3), 0, 255))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(min(size) // 10, min(size) // 3))
        if is_dog:
            draw.rectangle([x - r, y - r // 4, x + r, y + r // 4], fill=colour)
        else:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return image


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _photo_size(rng: np.random.Generator, max_side: int) -> tuple[int, int]:
    """Mixed landscape and portrait sizes, as in the competition (its photos are mostly near 500x375)."""
    long, short = (
        int(rng.integers(max_side * 3 // 4, max_side + 1)),
        int(rng.integers(max_side // 2, max_side * 3 // 4)),
    )
    return (long, short) if rng.random() < 0.7 else (short, long)


def build_synthetic_archive(
    target: Path, seed: int, train_per_class: int, test_count: int, max_side: int = 256
) -> None:
    """Write the competition zip (train.zip, test.zip, sample_submission.csv) to target, deterministic from seed."""
    rng = np.random.default_rng(seed)
    train_buffer, test_buffer = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(train_buffer, "w") as train:
        for index in range(1, train_per_class + 1):
            for animal in ("cat", "dog"):
                photo = draw_photo(rng, animal == "dog", _photo_size(rng, max_side))
                write_member(train, f"train/{animal}.{index}.jpg", _jpeg(photo))
    with zipfile.ZipFile(test_buffer, "w") as test:
        for index in range(1, test_count + 1):
            photo = draw_photo(rng, bool(rng.integers(0, 2)), _photo_size(rng, max_side))
            write_member(test, f"test/{index}.jpg", _jpeg(photo))
    sample = "id,label\n" + "".join(f"{i},0.5\n" for i in range(1, test_count + 1))
    with zipfile.ZipFile(target, "w") as archive:
        write_member(archive, TRAIN_ZIP, train_buffer.getvalue())
        write_member(archive, TEST_ZIP, test_buffer.getvalue())
        write_member(archive, SAMPLE_SUBMISSION, sample.encode())


def class_names(count: int) -> list[str]:
    """The synthetic classes' names: class_0, class_1, ... (safe folder names, in natural order by index)."""
    return [f"class_{index}" for index in range(count)]


def _shape(draw: ImageDraw.ImageDraw, shape: str, centre: tuple[int, int], r: int, fill: int | tuple) -> None:
    """Draw one shape of radius r around centre."""
    x, y = centre
    if shape == "ellipse":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif shape == "bar":
        draw.rectangle([x - r, y - r // 4, x + r, y + r // 4], fill=fill)
    elif shape == "column":
        draw.rectangle([x - r // 4, y - r, x + r // 4, y + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    else:
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill)


def _hue_colour(index: int, count: int) -> np.ndarray:
    """Class index's colour: hues spread evenly round the colour wheel."""
    return np.array(colorsys.hsv_to_rgb(index / count, 0.7, 0.8)) * 255


def draw_class_photo(rng: np.random.Generator, index: int, count: int, size: tuple[int, int]) -> Image.Image:
    """A colour photo of class index of count: its own hue and shape, noisy, as draw_photo draws two."""
    width, height = size
    base = np.clip(_hue_colour(index, count) + rng.normal(0, 12, 3), 0, 255)
    pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(int(c) for c in np.clip(base + rng.normal(0, 60, 3), 0, 255))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        _shape(draw, SHAPES[index % len(SHAPES)], centre, int(rng.integers(min(size) // 10, min(size) // 3)), colour)
    return image


def draw_scan(rng: np.random.Generator, index: int, count: int, size: tuple[int, int]) -> Image.Image:
    """A single-channel (mode L) photo like a CT slice: a bright ring on black, filled with class index's grey.

    The classes differ in the grey inside the ring and in the shapes there, which a randomly initialised
    VGG16's early layers tell apart.
    """
    width, height = size
    level = 50 + 170 * index / (count - 1)  # the darkest and brightest classes: 50 and 220
    image = Image.new("L", size, int(rng.integers(0, 25)))
    draw = ImageDraw.Draw(image)
    margin_x, margin_y = int(width * rng.uniform(0.03, 0.1)), int(height * rng.uniform(0.03, 0.1))
    draw.ellipse([margin_x, margin_y, width - margin_x, height - margin_y], fill=235)  # the skull
    wall = max(2, min(size) // 20)
    inner = [margin_x + wall, margin_y + wall, width - margin_x - wall, height - margin_y - wall]
    draw.ellipse(inner, fill=int(np.clip(level + rng.normal(0, 8), 0, 255)))
    for _ in range(int(rng.integers(2, 5))):
        centre = (
            int(rng.integers(width // 3, 2 * width // 3 + 1)),
            int(rng.integers(height // 3, 2 * height // 3 + 1)),
        )
        fill = int(np.clip(level + rng.choice([-1, 1]) * rng.uniform(30, 60), 0, 255))
        _shape(draw, SHAPES[index % len(SHAPES)], centre, int(rng.integers(min(size) // 12, min(size) // 5)), fill)
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, 10, (height, width))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "L")


def _scan_size(rng: np.random.Generator, max_side: int) -> tuple[int, int]:
    """Any size from half of max_side up, any aspect ratio from 1:2 to 2:1, as scans come."""
    long = int(rng.integers(max_side // 2, max_side + 1))
    short = int(long * rng.uniform(0.5, 1.0))
    return (long, short) if rng.random() < 0.5 else (short, long)


def _photo(seed: int, part: int, index: int, number: int, count: int, grayscale: bool, max_side: int) -> bytes:
    """One photo of class index (a test photo's class is drawn from its generator), as JPEG bytes."""
    rng = np.random.default_rng([seed, part, index, number])
    if part == _TEST:
        index = int(rng.integers(0, count))
    if grayscale:
        return _jpeg(draw_scan(rng, index, count, _scan_size(rng, max_side)))
    return _jpeg(draw_class_photo(rng, index, count, _photo_size(rng, max_side)))


def build_class_folders_archive(
    target: Path, seed: int, classes: int, grayscale: bool, train_per_class: int, test_count: int, max_side: int = 256
) -> None:
    """Write the raw zip as class folders: train/<class>/<class>.<n>.jpg, test/<n>.jpg, sample_submission.csv.

    Train photos are named for their class as well as kept in its folder, so their names (the ids) are unique.
    Members are stored, in path order, with fixed timestamps: the same params always give the same bytes.
    """
    names = class_names(classes)
    photos = {f"test/{n}.jpg": (_TEST, 0, n) for n in range(1, test_count + 1)}
    photos |= {
        f"train/{name}/{name}.{n}.jpg": (_TRAIN, index, n)
        for index, name in enumerate(names)
        for n in range(1, train_per_class + 1)
    }
    row = ",".join([f"{1 / classes:.6g}"] * classes)
    sample = f"id,{','.join(names)}\n" + "".join(f"{n},{row}\n" for n in range(1, test_count + 1))
    with zipfile.ZipFile(target, "w") as archive:
        for member in sorted([*photos, SAMPLE_SUBMISSION]):
            if member == SAMPLE_SUBMISSION:
                write_member(archive, member, sample.encode())
            else:
                write_member(archive, member, _photo(seed, *photos[member], classes, grayscale, max_side))
