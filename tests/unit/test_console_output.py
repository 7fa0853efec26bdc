"""What the stages and tools print: a few progress lines with time left, and no traceback when a reader stops early."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.core.tool_run import READER_LEFT
from tasks.features import Photo, Progress, duration, extract
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.vgg.conv_backends import ConvRunner
from tests.support.params import features_params
from tests.support.workspace import PROJECT, tool_env


def stepping_clock(step: float) -> Iterator[float]:
    """A clock that moves on by step seconds each time it is read: time passes without sleeping."""
    now = 0.0
    while True:
        yield now
        now += step


def test_progress_shows_a_line_at_most_every_interval_and_always_the_last():
    clock = stepping_clock(1.0)
    progress = Progress("features@0", "train", 1000, every=5.0, clock=lambda: next(clock))  # read once here: t = 0
    lines = {done: progress.line(done) for done in range(100, 1001, 100)}  # one batch a second
    assert {done for done, line in lines.items() if line} == {500, 1000}
    assert lines[500] == "features@0: train 500/1,000 photos (50%), 100.0 photos/s, 5s left"
    assert lines[1000] == "features@0: train 1,000/1,000 photos in 10s, 100.0 photos/s"


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
    progress = Progress("features@3", "test", 37_500, every=5.0, clock=lambda: next(clock))
    assert progress.line(960) == "features@3: test 960/37,500 photos (3%), 16.0 photos/s, 38m 04s left"


def test_the_conv_pass_prints_a_few_lines_not_one_per_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    photos = []
    with PhotoStoreWriter(tmp_path / "1.zip") as writer:
        for i in range(12):
            member, png = f"train/cats/cat.{i}.png", io.BytesIO()
            Image.new("RGB", (8, 8), (i, 0, 0)).save(png, format="PNG")
            md5 = writer.add_bytes(member, png.getvalue())
            photos.append(Photo(f"cat.{i}", 0, Path("data/organized") / member, md5, member))
    conv = ConvRunner(lambda batch: np.zeros((len(batch), 1, 1, 1), np.float32), "float32")
    clock = stepping_clock(2.0)  # a batch every 2 s: a line at most every 5 s is one batch in three
    out = np.empty((12, 1, 1, 1), np.float16)
    params = features_params(batch_size=1, image_size=32)
    with PhotoStore(tmp_path / "1.zip") as store:
        extract(conv, store, photos, params, 1 << 20, out, "features@1", "valid", lambda: next(clock))
    assert capsys.readouterr().out.splitlines() == [  # each line names its shard's stage: the flow shows it per shard
        "features@1: valid 3/12 photos (25%), 0.5 photos/s, 18s left",
        "features@1: valid 6/12 photos (50%), 0.5 photos/s, 12s left",
        "features@1: valid 9/12 photos (75%), 0.5 photos/s, 6s left",
        "features@1: valid 12/12 photos in 24s, 0.5 photos/s",
    ]


# A tool whose output is far larger than a pipe holds (64 KiB): the reader leaving is seen on every run.
CHATTY = textwrap.dedent("""
    from tasks.core.tool_run import run_tool

    def main():
        for i in range(100_000):
            print(f"line {i} of the record")

    run_tool("chatty", main)
""")


def test_a_reader_that_stops_early_ends_a_tool_quietly_with_sigpipes_status():
    tool = subprocess.Popen(
        [sys.executable, "-c", CHATTY], cwd=PROJECT, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    head = subprocess.run(["head", "-c", "10"], stdin=tool.stdout, capture_output=True, timeout=60)
    tool.stdout.close()  # head holds the only reading end now; it closes it on exit
    stderr = tool.communicate(timeout=60)[1].decode()
    assert head.stdout == b"line 0 of "
    assert (tool.returncode, stderr) == (READER_LEFT, "")


def grade_files(folder: Path) -> tuple[list[str], Path]:
    """A submission and its labels, for grade; run from the checkout."""
    pd.DataFrame({"id": [1, 2], "label": [0.8, 0.3]}).to_csv(folder / "sub.csv", index=False)
    pd.DataFrame({"id": [1, 2], "label": [1, 0]}).to_csv(folder / "labels.csv", index=False)
    return [str(folder / "sub.csv"), str(folder / "labels.csv")], PROJECT


def dvc_project_with_a_local_remote(folder: Path) -> tuple[list[str], Path]:
    """A DVC project (no git) whose default remote is a folder, so remote check has a line to print; run in it."""
    (folder / ".dvc").mkdir()
    (folder / ".dvc" / "config").write_text(
        f"[core]\n    no_scm = true\n    remote = shelf\n['remote \"shelf\"']\n    url = {folder / 'shelf'}\n"
    )
    return [], folder


RECORD = "data/submission/lineage.json"  # the committed lineage record
# Each tool that prints, in the project's own checkout or in a folder made for it; the statuses it may end with.
TOOLS = {
    "grade": (["tasks.competition.grade"], grade_files, {READER_LEFT}),
    "grade --json": (["tasks.competition.grade", "--json"], grade_files, {READER_LEFT}),
    "lineage show": (["tasks.lineage", "show", RECORD], None, {READER_LEFT}),
    "lineage show --json": (["tasks.lineage", "show", RECORD, "--json"], None, {READER_LEFT}),
    # verify's verdict stands when it was reached before the closed pipe showed (1: a recorded hash differs here).
    "lineage verify --json": (["tasks.lineage", "verify", RECORD, "--json"], None, {READER_LEFT, 1}),
    "remote check": (["tasks.remote.check"], dvc_project_with_a_local_remote, {READER_LEFT}),
}


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_that_prints_stays_quiet_when_its_reader_has_gone(tool: str, tmp_path: Path):
    module, make_inputs, statuses = TOOLS[tool]
    args, cwd = make_inputs(tmp_path) if make_inputs else ([], PROJECT)
    reading, writing = os.pipe()
    os.close(reading)  # the reader left before the first byte: every write fails, on every run
    try:
        result = subprocess.run(
            [sys.executable, "-m", module[0], *module[1:], *args],
            cwd=cwd,
            env={**tool_env(), "PYTHONPATH": str(PROJECT)},
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(writing)
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert "error:" not in result.stderr, result.stderr
    assert result.returncode in statuses
