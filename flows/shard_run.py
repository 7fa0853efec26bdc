"""One shard's run on a worker host, without Prefect: the coordinator's commit and params in a worktree of this host's
checkout, only the shard's inputs pulled from the DVC remote, its one stage reproduced (or restored from the remote's
run-cache), its outputs and run-cache pushed. flows/features_shard.py wraps it as a Prefect flow; bench/ calls it bare.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flows.dvc_stages import (
    RAN,
    _dvc_stage,
    default_remote,
    error_lines,
    push_restorable,
    reproduce_stage,
    stage_environment,
    stream_dvc,
)
from flows.run_workspace import commit_workspace, dvc_cache_dir
from tasks.core.errors import StageError

# tasks/features.py's progress lines: "features@0: train 1,200/3,000 photos (40%), 5.2 photos/s, 3m 05s left" and the
# last one of a subset, "features@0: train 3,000/3,000 photos in 9m 36s, 5.2 photos/s".
PROGRESS_LINE = re.compile(
    r"^(?P<stage>[\w@-]+): (?P<subset>\w+) (?P<done>[\d,]+)/(?P<total>[\d,]+) photos\b.*?"
    r"(?P<rate>[\d.]+|inf) photos/s"
)


@dataclass(frozen=True)
class ShardReport:
    """What one shard run moved and did: bytes that came from the remote and went to it, whether the stage's command
    ran (False: restored from the remote's run-cache), and the run's wall time."""

    bytes_pulled: int
    bytes_pushed: int
    computed: bool
    seconds: float


@dataclass(frozen=True)
class PhotoProgress:
    """One progress line of the stage: photos done of a subset's total, and the rate so far."""

    subset: str
    done: int
    total: int
    rate: float


def parse_progress(line: str) -> PhotoProgress | None:
    """The progress a stage's output line reports, or None for any other line."""
    match = PROGRESS_LINE.match(line)
    if not match:
        return None
    number = lambda key: int(match[key].replace(",", ""))  # noqa: E731
    return PhotoProgress(match["subset"], number("done"), number("total"), float(match["rate"]))


@dataclass
class ShardProgress:
    """The shard's share done, over its subsets' lines: of total photos when known (its photo store's members), else
    of the subsets seen so far."""

    total: int | None = None
    done: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, progress: PhotoProgress) -> float:
        """Record a progress line; the fraction of the shard done now, 0.0 to 1.0."""
        self.done[progress.subset], self.totals[progress.subset] = progress.done, progress.total
        whole = self.total or sum(self.totals.values())
        return min(1.0, sum(self.done.values()) / whole) if whole else 0.0


def written_by_others(deps: list[str], outs: Mapping[str, list[str]], stage: str) -> dict[str, str]:
    """The stage's deps that another stage writes, each with that stage's out holding it (itself, or a folder above
    it): what a shard run pulls; the rest (code, params) comes with the commit."""
    found = {}
    for dep in deps:
        for other, paths in outs.items():
            if other == stage:
                continue
            for out in paths:
                if dep == out or dep.startswith(out.rstrip("/") + "/"):
                    found[dep] = out
    return found


def stage_inputs(workspace: Path, stage: str) -> dict[str, str]:
    """written_by_others for the stage, from DVC's own stage objects (dvc.yaml and dvc.lock as the workspace has
    them)."""
    from dvc.repo import Repo

    with Repo(str(workspace)) as repo:
        deps = [dep.def_path for dep in _dvc_stage(repo, stage).deps]
        outs = {other.name: [out.def_path for out in other.outs] for other in repo.index.stages}
    return written_by_others(deps, outs, stage)


def cache_files(cache: Path) -> dict[str, int]:
    """Every object file in a DVC cache, with its size."""
    objects = cache / "files"
    return {str(p.relative_to(cache)): p.stat().st_size for p in objects.rglob("*") if p.is_file()}


def new_bytes(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    """Bytes of the files in after that were not in before: what arrived in the cache in between."""
    return sum(size for name, size in after.items() if name not in before)


def unpushed_bytes(workspace: Path, status: Mapping[str, str]) -> int:
    """Bytes of the files `dvc status --cloud --json` says the remote lacks ("new": only in the local cache)."""
    return sum(
        (workspace / path).stat().st_size
        for path, state in status.items()
        if state == "new" and (workspace / path).is_file()
    )


def photos_in(workspace: Path, inputs: list[str]) -> int | None:
    """How many photos the stage's photo stores (zip inputs) hold: the total its progress lines add up to."""
    from tasks.photos.photo_store import PhotoStore

    stores = [workspace / path for path in inputs if path.endswith(".zip")]
    if not stores:
        return None
    total = 0
    for path in stores:
        try:
            with PhotoStore(path) as store:
                total += len(store.members())
        except StageError:  # not a photo store: the progress is then measured over the subsets seen
            return None
    return total


def cloud_status(workspace: Path, stage: str) -> dict[str, str]:
    """`dvc status --cloud --json stage`: each of the stage's output files against the default remote."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--cloud", "--json", stage],
        cwd=workspace,
        env=stage_environment(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StageError(f"dvc status --cloud {stage} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout or "{}")


def _dvc(workspace: Path, args: list[str], what: str, on_line: Callable[[str], None]) -> list[str]:
    """Run a dvc command; its lines, or StageError naming what failed with DVC's error."""
    returncode, lines, interrupted = stream_dvc(workspace, args, on_line)
    if returncode != 0:
        said = " ".join(error_lines("", lines)) if lines else f"exit status {returncode}"
        raise StageError(f"{what} failed{' (interrupted)' if interrupted else ''}: {said}")
    return lines


def run_shard(
    checkout: Path,
    commit: str,
    params: str | bytes,
    stage: str,
    lock: str | bytes | None = None,
    *,
    name: str | None = None,
    on_line: Callable[[str], None] = print,
    on_progress: Callable[[PhotoProgress, float], None] | None = None,
) -> ShardReport:
    """Reproduce one stage at commit with params in a worktree of checkout, exchanging data with its DVC remote.

    lock: the coordinator's dvc.lock (the hashes of the upstream outputs it pushed); None takes the commit's own.
    name: the worktree's name under .dvc/tmp (default: the stage and this process's id). on_line gets DVC's and the
    stage's output lines; on_progress each progress line with the shard's fraction done. Raises StageError (one line)
    when the commit, the remote or a dvc command fails, StageFailed when the stage does.
    """
    began = time.monotonic()
    encode = lambda text: text.encode() if isinstance(text, str) else text  # noqa: E731
    if default_remote(checkout) is None:
        raise StageError(
            f"{checkout.resolve()} has no default DVC remote: a shard run pulls its inputs from it and pushes its "
            "outputs to it; add the coordinator's (`dvc remote add -d`, docs/remote.md)"
        )
    cache = dvc_cache_dir(checkout)
    worktree_name = name or f"{stage}-{time.time_ns()}"
    with commit_workspace(checkout, worktree_name, commit, encode(params), encode(lock) if lock else None) as run_dir:
        inputs = sorted(stage_inputs(run_dir, stage))
        before = cache_files(cache)
        if inputs:
            _dvc(run_dir, ["pull", *inputs], f"dvc pull {' '.join(inputs)}", on_line)
        pulled = new_bytes(before, after := cache_files(cache))
        on_line(f"{stage}: pulled {pulled:,} bytes of its inputs ({', '.join(inputs) or 'none'})")
        progress = ShardProgress(total=photos_in(run_dir, inputs))

        def line(text: str) -> None:
            on_line(text)
            if on_progress and (seen := parse_progress(text)):
                on_progress(seen, progress.add(seen))

        run = reproduce_stage(run_dir, stage, on_line=line)
        computed = run.outcome == RAN
        if not computed:  # restored: what came into the cache came from the remote
            pulled += new_bytes(after, cache_files(cache))
        pushed = unpushed_bytes(run_dir, cloud_status(run_dir, stage))
        _dvc(run_dir, ["push", "--run-cache", stage], f"dvc push --run-cache {stage}", on_line)
        push_restorable(run_dir, stage)  # its metrics files too, which `dvc push` leaves out (cache: false)
    report = ShardReport(pulled, pushed, computed, time.monotonic() - began)
    on_line(
        f"{stage}: {'computed' if computed else 'restored from the remote run-cache'}; pulled {pulled:,} bytes, "
        f"pushed {pushed:,} bytes, {report.seconds:.1f} s"
    )
    return report
