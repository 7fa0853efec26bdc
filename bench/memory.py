"""Figure 4: peak RSS of the features stage, run as DVC runs it, at two photo counts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.photos import stage_limits
from bench.workspace import PROJECT, bench_params, tool_env, write_paths
from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.params import SplitParams
from tasks.photos.class_list import read_class_list
from tasks.reorganize import reorganize
from tasks.split import split

POLL_SECONDS = 0.05  # VmHWM only grows, so polling misses at most the last 50 ms of a run
FEATURES_BATCH = 8  # the batch every figure so far was measured at (the test suite's tiny settings, once borrowed)


def features_peak_rss(scratch: Path, per_class: int, test_count: int) -> dict:
    """Run `python -m tasks.features` on a fresh synthetic set; return photos, seconds and its peak RSS in bytes."""
    scratch.mkdir(parents=True)
    build_synthetic_archive(scratch / "archive.zip", 0, per_class, test_count)
    organized, manifest = scratch / "organized", scratch / "split.csv"
    reorganize(scratch / "archive.zip", organized, scratch / "organized.csv", scratch / "classes.json", stage_limits())
    valid = max(2, per_class // 5)
    split(
        scratch / "organized.csv",
        manifest,
        SplitParams(seed=0, valid_size=valid, sample_train_size=2, sample_valid_size=2),
        read_class_list(scratch / "classes.json").classes,
    )
    (scratch / "shards").mkdir()
    shutil.copy(organized, scratch / "shards" / "0.zip")  # reorganize's store holds every photo: shard 0 of one
    paths = {"shards": str(scratch / "shards"), "split": str(manifest), "features": str(scratch / "features")}
    paths["classes"] = str(scratch / "classes.json")  # reorganize wrote it there
    write_paths(scratch, {"organized": str(organized), **paths})
    params = bench_params({"features": {"batch_size": FEATURES_BATCH}})
    (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env() | {"PYTHONPATH": str(PROJECT)}
    began = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "tasks.features", "0"], cwd=scratch, env=env, stdout=subprocess.DEVNULL
    )
    peak = 0
    while child.poll() is None:
        peak = max(peak, high_water_rss(child.pid))
        time.sleep(POLL_SECONDS)
    if child.returncode != 0:
        raise RuntimeError(f"features stage failed with status {child.returncode} in {scratch}")
    return {"photos": 2 * per_class + test_count, "seconds": time.perf_counter() - began, "peak_rss": peak}


def high_water_rss(pid: int) -> int:
    """The process's peak RSS so far (Linux's VmHWM), in bytes; 0 once it has gone.

    Not getrusage's ru_maxrss: a child forked from this large bench process inherits its high-water mark.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0
