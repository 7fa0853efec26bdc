"""Pure arithmetic of the shard bench: a features stage's time split from DVC's output, bytes named by what they
are, and the projection of the conv fan-out to the real 37,500 photos on N GPU workers (docs/shards.md)."""

from __future__ import annotations

import re
from typing import NamedTuple

# The features stage's last progress line of a subset (tasks/features.py: Progress.line), after the stage's name.
SUBSET_DONE = re.compile(r"^(\w+) ([\d,]+)/([\d,]+) photos in [^,]+, ([\d.]+) photos/s$")
# run_shard's own closing line, which also starts with the stage's name.
SHARD_SUMMARY = ("computed;", "restored from")
RUN_CACHE = "run-cache entry"


class ShardTimes(NamedTuple):
    """Where the seconds of one shard run (flows/shard_run.run_shard) went."""

    sync_pull: float  # a worktree at the coordinator's commit and params, and `dvc pull` of the shard's inputs
    dvc_start: float  # `dvc repro --pull` up to the stage's command: DVC's start, its look in the remote's run-cache
    stage_other: float  # the stage's own rest: Python and TensorFlow import, the model build, writing the outputs
    conv: float  # the conv pass: photos / photos/s of each subset's last progress line
    finish: float  # after the stage: DVC caches the outputs and writes dvc.lock; `dvc push --run-cache`
    computed: bool  # the stage ran (False: DVC restored it from the remote's run-cache)


def shard_times(lines: list[tuple[float, str]], total: float, stage: str, command: str) -> ShardTimes:
    """Split a shard run's total seconds by when its output lines arrived; command is the stage's cmd DVC echoes."""
    pulled = next((t for t, line in lines if line.startswith(f"{stage}: pulled ")), 0.0)
    started = next((t for t, line in lines if line.strip() == f"> {command}"), None)
    if started is None:
        return ShardTimes(pulled, 0.0, 0.0, 0.0, total - pulled, False)
    prefix = f"{stage}: "
    own = [
        (t, line.strip().removeprefix(prefix))
        for t, line in lines
        if t >= started and line.startswith(prefix) and not line.removeprefix(prefix).startswith(SHARD_SUMMARY)
    ]
    conv = 0.0
    for _, line in own:
        if (m := SUBSET_DONE.match(line)) and m[2] == m[3]:
            conv += int(m[2].replace(",", "")) / float(m[4])
    ended = own[-1][0] if own else started
    return ShardTimes(pulled, started - pulled, ended - started - conv, conv, total - ended, True)


def cache_md5(relative: str) -> str:
    """The md5 a DVC 3 cache file is named by, from its path under the cache: files/md5/ab/cdef... -> abcdef...
    (a directory listing keeps its .dir, as dvc.lock writes it)."""
    parts = relative.split("/")
    return parts[-2] + parts[-1]


def labelled_bytes(files: dict[str, int], names: dict[str, str], default: str) -> dict[str, int]:
    """Bytes of cache files (path under the cache -> size) summed by what they are: names maps md5 -> what, the
    run-cache's entries are RUN_CACHE, anything else default."""
    out: dict[str, int] = {}
    for relative, size in sorted(files.items()):
        label = RUN_CACHE if relative.startswith("runs/") else names.get(cache_md5(relative), default)
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
