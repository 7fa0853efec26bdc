"""The shard bench's arithmetic: a repro's seconds split from DVC's output, bytes by kind, the GPU projection."""

from __future__ import annotations

import pytest

from bench.shard_figures import (
    DIR_LISTING,
    OTHER,
    RUN_CACHE,
    Projection,
    fan_out_seconds,
    labelled_bytes,
    repro_times,
    shard_seconds,
)
from bench.shard_report import with_section

COMMAND = "python -m tasks.features 1"
# What `dvc repro --pull --single-item features@1` prints, stdout and stderr together, with each line's second.
REPRO = [
    (0.9, "Running stage 'features@1':"),
    (1.5, "> python -m tasks.features 1"),
    (9.0, "features: train 100/200 photos (50%), 10.0 photos/s, 10s left"),
    (21.0, "features: train 200/200 photos in 20s, 10.0 photos/s"),
    (25.0, "features: valid 40/40 photos in 4s, 10.0 photos/s"),
    (30.5, "features: test 50/50 photos in 5s, 10.0 photos/s"),
    (31.5, "features: train 200, valid 40, test 50, sample_train 10, sample_valid 5"),
    (33.0, "Updating lock file 'dvc.lock'"),
]


def test_a_repro_is_split_into_dvc_start_conv_the_stage_rest_and_dvc_end():
    times = repro_times(REPRO, 34.0, COMMAND)
    assert times.computed
    assert times.dvc_start == pytest.approx(1.5)
    assert times.conv == pytest.approx(20 + 4 + 5)  # photos / photos/s of each subset's last line
    assert times.stage_other == pytest.approx(31.5 - 1.5 - 29)
    assert times.dvc_end == pytest.approx(34.0 - 31.5)
    assert sum(times[:4]) == pytest.approx(34.0)


def test_a_repro_restored_from_the_run_cache_computed_nothing():
    lines = [(2.0, "Stage 'features@1' is cached - skipping run, checking out outputs")]
    times = repro_times(lines, 3.0, COMMAND)
    assert not times.computed
    assert (times.dvc_start, times.conv, times.stage_other, times.dvc_end) == (3.0, 0.0, 0.0, 0.0)


def test_another_shards_command_does_not_count():
    assert not repro_times(REPRO, 34.0, "python -m tasks.features 0").computed


def test_cache_files_are_summed_by_what_they_are():
    files = {
        "files/md5/ab/cdef": 100,  # the shard store
        "files/md5/12/3456": 7,  # split.csv
        "files/md5/99/8877.dir": 3,
        "runs/4f/4f00/aa": 2,
        "files/md5/00/0000": 5,
    }
    names = {"abcdef": "shard store", "123456": "split.csv"}
    assert labelled_bytes(files, names) == {
        "shard store": 100,
        "split.csv": 7,
        DIR_LISTING: 3,
        RUN_CACHE: 2,
        OTHER: 5,
    }


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
