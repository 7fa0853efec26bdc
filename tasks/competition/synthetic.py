"""A small competition archive made from a seed: same format as Kaggle's, classes a linear head can tell apart."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tasks.competition.archive import SAMPLE_SUBMISSION, TEST_ZIP, TRAIN_ZIP, write_member


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
