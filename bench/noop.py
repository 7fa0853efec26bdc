"""A `dvc repro` with nothing to do at the competition's 37,500 photos: the photo store against the class folders.

Both layouts run the whole DAG in their own scratch workspace, on one synthetic archive of tiny photos: this
checkout (reorganize writes data/photos.zip, one file) and the commit before issue 16 (reorganize writes
data/organized/, 37,500 files DVC checks one by one), exported with `git archive`. Then no-op runs alternate between
them, so the shared machine's load falls on both alike. `python -m bench.noop` writes bench/noop.json, which
bench/report.py renders into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from bench.machine import machine_details
from bench.workspace import PROJECT, WORKSPACE_FILES, dvc, make_workspace, merged, run_tool, stages_ran
from tasks.competition.synthetic import build_synthetic_archive

OLD_LAYOUT = "7f75980"  # the last commit before issue 16: reorganize's output is the 37,500-file folder
TRAIN_PER_CLASS, TEST_PHOTOS = 12_500, 12_500  # the competition's counts
PHOTO_SIDE = 32  # tiny photos build in seconds; DVC's bookkeeping, which this measures, does not depend on their size
IMAGE_SIZE = 32  # features at 32x32: 1/49 of the conv pass at 224, which would take 40 minutes here
ROUNDS = 5
# The files a workspace needs, plus .gitignore: `make browse`'s copy is git-ignored, which is what keeps DVC's search
# for dvc.yaml files out of it.
FILES = (*WORKSPACE_FILES, ".gitignore")


def _override(archive: Path, photos: int) -> dict:
    """params.yaml over each layout's own: the archive, the split at the course's proportions, features at 32x32."""
    per_class = photos // 3
    return {
        "download": {"source": "archive", "path": str(archive)},
        "split": {
            "seed": 1,
            "valid_size": 2000 * per_class // 12_500 or 2,
            "sample_train_size": 200 * per_class // 12_500 or 2,
            "sample_valid_size": 50 * per_class // 12_500 or 2,
        },
        "features": {"image_size": IMAGE_SIZE, "batch_size": 64},
        "train": {"batch_size": 64},
    }


def _export(commit: str, target: Path) -> Path:
    """The project's files at commit, written under target (git archive: no clone, no checkout of this worktree)."""
    target.mkdir(parents=True)
    tar = subprocess.run(["git", "archive", commit], cwd=PROJECT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(target, filter="data")
    return target


def _workspace(root: Path, project: Path, archive: Path, photos: int) -> Path:
    import yaml

    params = merged(yaml.safe_load((project / "params.yaml").read_text()), _override(archive, photos))
    return make_workspace(root, params, FILES, project)


def _timed(workspace: Path, *args: str) -> dict[str, float]:
    """Wall and CPU seconds of one dvc command (CPU: what it costs on an idle machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    result = dvc(workspace, *args)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if stages_ran(result.stdout):
        raise RuntimeError(f"`dvc {' '.join(args)}` in {workspace} ran {stages_ran(result.stdout)}: not a no-op")
    return {"wall": wall, "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def _summary(times: list[dict[str, float]]) -> dict[str, float]:
    walls = [t["wall"] for t in times]
    return {
        "best wall": min(walls),
        "median wall": statistics.median(walls),
        "median cpu": statistics.median(t["cpu"] for t in times),
        "runs": len(times),
    }


def _tracked_files(workspace: Path) -> int:
    """Files the stages write, as dvc.lock counts them (a folder output by its nfiles): DVC checks each on a no-op."""
    import yaml

    stages = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"].values()
    return sum(out.get("nfiles", 1) for stage in stages for out in stage.get("outs", []))


def measure(scratch: Path, photos: int, rounds: int) -> dict:
    """Build both layouts' workspaces at photos, run their whole DAGs, then time no-op `dvc repro`s in turns."""
    archive = scratch / "archive.zip"
    began = time.perf_counter()
    per_class = photos // 3
    build_synthetic_archive(archive, 0, per_class, photos - 2 * per_class, PHOTO_SIDE)
    built = {"archive": time.perf_counter() - began}
    new = _workspace(scratch / "store", PROJECT, archive, photos)
    old = _workspace(scratch / "folders", _export(OLD_LAYOUT, scratch / "old-project"), archive, photos)
    for name, workspace in (("store", new), ("folders", old)):
        began = time.perf_counter()
        dvc(workspace, "repro", "reorganize")
        if workspace is new:
            # The features stage of this branch reads the photos from the class folders: `make browse`'s copy gives
            # them (after issue 16's shards it reads data/shards/, and this copy is only what a user may have made).
            run_tool([sys.executable, "-m", "tasks.photos.browse"], workspace)
        done = dvc(workspace, "repro")
        built[name] = time.perf_counter() - began
        if stages_ran(done.stdout)[-1:] != ["submit"]:
            raise RuntimeError(f"the DAG in {workspace} did not reach submit:\n{done.stdout}")
    noop: dict[str, list[dict[str, float]]] = {"store": [], "folders": [], "store, browse copy deleted": []}
    for _ in range(rounds):  # in turns, so both see the same load
        noop["store"].append(_timed(new, "repro"))
        noop["folders"].append(_timed(old, "repro"))
    shutil.rmtree(new / "data" / "organized")
    for _ in range(rounds):
        noop["store, browse copy deleted"].append(_timed(new, "repro"))
    summary = {name: _summary(times) for name, times in noop.items()}
    return {
        "command": " ".join(["python -m bench.noop", *sys.argv[1:]]),
        "machine": machine_details(),
        "photos": photos,
        "photo side": PHOTO_SIDE,
        "image size": IMAGE_SIZE,
        "old layout commit": OLD_LAYOUT,
        "build seconds": built,
        "tracked files": {"store": _tracked_files(new), "folders": _tracked_files(old)},
        "noop": summary,
        "ratio (folders / store, median wall)": summary["folders"]["median wall"] / summary["store"]["median wall"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=TRAIN_PER_CLASS * 2 + TEST_PHOTOS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "noop.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as scratch:
        results = measure(Path(scratch), args.photos, args.rounds)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["noop"], indent=2))
    print(f"ratio folders / store: {results['ratio (folders / store, median wall)']:.1f}x")


if __name__ == "__main__":
    main()
