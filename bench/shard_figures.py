"""Pure arithmetic of the shard bench: a features stage's time split from DVC's output, bytes named by what they
are, and the projection of the conv fan-out to the real 37,500 photos on N GPU workers (docs/shards.md)."""

from __future__ import annotations

import re
from typing import NamedTuple

# The features stage's last progress line of a subset (tasks/features.py: Progress.line).
SUBSET_DONE = re.compile(r"^features: (\w+) ([\d,]+)/([\d,]+) photos in [^,]+, ([\d.]+) photos/s$")
RUN_CACHE = "run-cache entry"
DIR_LISTING = "directory listings (.dir)"
OTHER = "other"


class ReproTimes(NamedTuple):
    """Where the seconds of one `dvc repro --pull --single-item features@i` went."""

    dvc_start: float  # DVC's start, its look for the stage in the remote's run-cache, up to the stage's command
    conv: float  # the conv pass: photos / photos/s of each subset's last progress line
    stage_other: float  # the stage's own rest: Python and TensorFlow import, the model build, writing the outputs
    dvc_end: float  # after the stage: DVC hashes the outputs, caches them, writes dvc.lock
    computed: bool  # the stage ran (False: DVC restored it from a run-cache)


def repro_times(lines: list[tuple[float, str]], total: float, command: str) -> ReproTimes:
    """Split total (seconds) by the arrival times of DVC's output lines; command is the stage's cmd DVC echoes."""
    started = next((t for t, line in lines if line.strip() == f"> {command}"), None)
    if started is None:
        return ReproTimes(total, 0.0, 0.0, 0.0, False)
    stage_lines = [(t, line.strip()) for t, line in lines if t >= started and line.strip().startswith("features:")]
    conv = 0.0
    for _, line in stage_lines:
        if (m := SUBSET_DONE.match(line)) and m[2] == m[3]:
            conv += int(m[2].replace(",", "")) / float(m[4])
    ended = stage_lines[-1][0] if stage_lines else started
    return ReproTimes(started, conv, ended - started - conv, total - ended, True)


def cache_md5(relative: str) -> str:
    """The md5 a DVC 3 cache file holds, from its path under the cache (files/md5/ab/cdef...[.dir])."""
    parts = relative.split("/")
    return (parts[-2] + parts[-1]).removesuffix(".dir")


def labelled_bytes(files: dict[str, int], names: dict[str, str]) -> dict[str, int]:
    """Bytes of cache files (path under the cache -> size) summed by what they are; names maps md5 -> what."""
    out: dict[str, int] = {}
    for relative, size in sorted(files.items()):
        if relative.startswith("runs/"):
            label = RUN_CACHE
        elif relative.endswith(".dir"):
            label = DIR_LISTING
        else:
            label = names.get(cache_md5(relative), OTHER)
        out[label] = out.get(label, 0) + size
    return out


class Projection(NamedTuple):
    """The inputs of the fan-out time on N workers, one shard each (docs/shards.md shows each)."""

    photos: int  # photos the conv pass runs on
    photo_bytes: float  # bytes of one photo in a shard store
    split_bytes_per_photo: float  # split.csv's bytes per photo: every worker pulls the whole manifest
    feature_bytes_per_photo: float  # a shard's pushed features (float16 pool5, index rows) per photo
    fixed_seconds: float  # per shard, independent of its size: sync, DVC start and end, imports, model build
    bandwidth: float  # bytes/s between a worker and the bucket
    conv_rate: float  # photos/s of one worker's conv pass


def shard_seconds(p: Projection, workers: int) -> dict[str, float]:
    """Each term of one shard's time when the photos are cut into `workers` shards run at once."""
    per_shard = p.photos / workers
    return {
        "fixed": p.fixed_seconds,
        "pull": (per_shard * p.photo_bytes + p.photos * p.split_bytes_per_photo) / p.bandwidth,
        "conv": per_shard / p.conv_rate,
        "push": per_shard * p.feature_bytes_per_photo / p.bandwidth,
    }


def fan_out_seconds(p: Projection, workers: int) -> float:
    """Wall seconds of the fan-out on `workers` workers: every shard at once, so one shard's time."""
    return sum(shard_seconds(p, workers).values())
