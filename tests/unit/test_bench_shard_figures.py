"""The shard bench's arithmetic: a repro's seconds split from DVC's output, bytes by kind, the GPU projection."""

from __future__ import annotations

import pytest

from bench.shard_figures import (
    RUN_CACHE,
    Projection,
    cache_md5,
    fan_out_seconds,
    labelled_bytes,
    shard_seconds,
    shard_times,
)
from bench.shard_report import duration, ran_phrase, with_section

STAGE, COMMAND = "features@1", "python -m tasks.features 1"
# What run_shard hands its on_line for features@1 (DVC's lines and the stage's, stdout and stderr together), each
# with the second it arrived.
RUN = [
    (0.2, "A       data/shards/1.zip"),
    (2.5, "features@1: pulled 1,234 bytes of its inputs (data/classes.json, data/shards/1.zip, data/split.csv)"),
    (3.1, "Running stage 'features@1':"),
    (3.5, "> python -m tasks.features 1"),
    (11.0, "features@1: train 100/200 photos (50%), 10.0 photos/s, 10s left"),
    (23.0, "features@1: train 200/200 photos in 20s, 10.0 photos/s"),
    (27.0, "features@1: valid 40/40 photos in 4s, 10.0 photos/s"),
    (32.5, "features@1: test 50/50 photos in 5s, 10.0 photos/s"),
    (33.5, "features@1: train 200, valid 40, test 50, sample_train 10, sample_valid 5"),
    (35.0, "Updating lock file 'dvc.lock'"),
    (38.0, "features@1: computed; pulled 1,234 bytes, pushed 5,678 bytes, 38.0 s"),
]


def test_a_shard_run_is_split_into_sync_and_pull_dvc_start_the_stage_rest_conv_and_finish():
    times = shard_times(RUN, 38.5, STAGE, COMMAND)
    assert times.computed
    assert times.sync_pull == pytest.approx(2.5)
    assert times.dvc_start == pytest.approx(1.0)
    assert times.conv == pytest.approx(20 + 4 + 5)  # photos / photos/s of each subset's last line
    assert times.stage_other == pytest.approx(33.5 - 3.5 - 29)  # ends at the stage's last line, not run_shard's
    assert times.finish == pytest.approx(38.5 - 33.5)
    assert sum(times[:5]) == pytest.approx(38.5)


def test_a_shard_restored_from_the_run_cache_computed_nothing():
    lines = [*RUN[:2], (4.0, "Stage 'features@1' is cached - skipping run, checking out outputs")]
    times = shard_times(lines, 6.0, STAGE, COMMAND)
    assert not times.computed
    assert (times.sync_pull, times.conv, times.finish) == (2.5, 0.0, 3.5)


def test_another_shards_command_does_not_count():
    assert not shard_times(RUN, 38.5, "features@0", "python -m tasks.features 0").computed


def test_cache_files_are_summed_by_what_they_are():
    files = {
        "files/md5/ab/cdef": 100,  # the shard store
        "files/md5/12/3456": 7,  # split.csv
        "files/md5/99/8877.dir": 3,  # the shard stores' listing
        "runs/4f/4f00/aa": 2,
        "files/md5/00/0000": 5,  # anything else: the stage's outputs
    }
    names = {"abcdef": "shard store", "123456": "split.csv", "998877.dir": "listing"}
    assert cache_md5("files/md5/99/8877.dir") == "998877.dir"
    assert labelled_bytes(files, names, "features") == {
        "shard store": 100,
        "split.csv": 7,
        "listing": 3,
        RUN_CACHE: 2,
        "features": 5,
    }


def test_the_report_names_the_shards_a_coordinator_ran_instead_of_restoring():
    assert ran_phrase([]).startswith("ran none")
    assert ran_phrase([0]).startswith("ran features@0 ")


PROJECTION = Projection(
    photos=1000,
    photo_bytes=10,
    split_bytes_per_photo=1,
    feature_bytes_per_photo=20,
    fixed_seconds=5,
    bandwidth=100,
    conv_rate=50,
)


def test_each_term_of_a_shard_scales_with_its_size_except_the_fixed_one():
    assert shard_seconds(PROJECTION, 1) == {"fixed": 5, "pull": 110, "conv": 20, "push": 200}
    # 4 shards: a quarter of the photos and features each; every worker still pulls the whole split.csv
    assert shard_seconds(PROJECTION, 4) == {"fixed": 5, "pull": 35, "conv": 5, "push": 50}
    assert fan_out_seconds(PROJECTION, 4) == 95


def test_a_section_is_replaced_in_place_and_what_follows_it_kept():
    text = "# R\n\n## A\nold a\n\n## S\nold s\n\n## B\nb\n"
    assert with_section(text, "## S", "## S\nnew s\n") == "# R\n\n## A\nold a\n\n## S\nnew s\n\n## B\nb\n"
    assert with_section("# R\n\n## A\na\n", "## S", "## S\nnew\n") == "# R\n\n## A\na\n\n## S\nnew\n"
    assert with_section("# R\n\n## S\nold\n", "## S", "## S\nnew\n") == "# R\n\n## S\nnew\n"


def test_projected_times_read_as_seconds_or_minutes():
    assert [duration(s) for s in (0.47, 42.4, 2343.0)] == ["0.5 s", "42 s", "39 min 03 s"]
