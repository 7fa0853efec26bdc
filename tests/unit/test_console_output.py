"""What the stages print: a few progress lines with time left, not one per batch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.features import Photo, Progress, duration, extract
from tasks.vgg.conv_backends import ConvRunner
from tests.support.params import features_params


def stepping_clock(step: float) -> Iterator[float]:
    """A clock that moves on by step seconds each time it is read: time passes without sleeping."""
    now = 0.0
    while True:
        yield now
        now += step


def test_progress_shows_a_line_at_most_every_interval_and_always_the_last():
    clock = stepping_clock(1.0)
    progress = Progress("train", 1000, every=5.0, clock=lambda: next(clock))  # read once here: t = 0
    lines = {done: progress.line(done) for done in range(100, 1001, 100)}  # one batch a second
    assert {done for done, line in lines.items() if line} == {500, 1000}
    assert lines[500] == "features: train 500/1,000 photos (50%), 100.0 photos/s, 5s left"
    assert lines[1000] == "features: train 1,000/1,000 photos in 10s, 100.0 photos/s"


def test_time_left_reads_as_a_person_says_it():
    assert [duration(s) for s in (0.4, 42, 545, 3599.6, 3720, 90000)] == [
        "0s",
        "42s",
        "9m 05s",
        "1h 00m",
        "1h 02m",
        "25h 00m",
    ]
    clock = stepping_clock(60.0)
    progress = Progress("test", 37_500, every=5.0, clock=lambda: next(clock))
    assert progress.line(960) == "features: test 960/37,500 photos (3%), 16.0 photos/s, 38m 04s left"


def test_the_conv_pass_prints_a_few_lines_not_one_per_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    photos = []
    for i in range(12):
        path = tmp_path / f"cat.{i}.png"
        Image.new("RGB", (8, 8), (i, 0, 0)).save(path)
        photos.append(Photo(f"cat.{i}", 0, path, hashlib.md5(path.read_bytes()).hexdigest()))
    conv = ConvRunner(lambda batch: np.zeros((len(batch), 1, 1, 1), np.float32), "float32")
    clock = stepping_clock(2.0)  # a batch every 2 s: a line at most every 5 s is one batch in three
    out = np.empty((12, 1, 1, 1), np.float16)
    extract(conv, photos, features_params(batch_size=1, image_size=32), 1 << 20, out, "valid", lambda: next(clock))
    assert capsys.readouterr().out.splitlines() == [
        "features: valid 3/12 photos (25%), 0.5 photos/s, 18s left",
        "features: valid 6/12 photos (50%), 0.5 photos/s, 12s left",
        "features: valid 9/12 photos (75%), 0.5 photos/s, 6s left",
        "features: valid 12/12 photos in 24s, 0.5 photos/s",
    ]
