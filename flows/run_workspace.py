"""Where a run's stages run: the workspace itself, or, for a run with overrides, a temporary git worktree of it.

A run with overrides never writes the workspace's params.yaml, so nothing that kills the run (kill -9 included) can
leave it changed. Its stages run in a git worktree of the workspace's HEAD under .dvc/tmp, holding the workspace's
uncommitted changes and the merged params.yaml, with DVC's cache shared with the workspace (so the run-cache restores
every stage either of them already ran, and the experiment's outputs stay in the workspace's cache). Git worktrees
share refs, so the experiment saved there is listed by `dvc exp show` in the workspace. `dvc exp run --temp` was the
other candidate; it reproduces the whole DAG in one call (one opaque Prefect task), and per stage it records one
experiment per call, each starting again from HEAD. The worktree is removed when the run ends; one left by a killed
run is removed by the next run, which holds the workspace's lock, so no live run can be using it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.core.atomic_output import remove_path
from tasks.core.errors import StageError
from tasks.core.params import PARAMS_FILE

# Under .dvc/tmp, which DVC's own .gitignore hides from git and DVC skips when it collects dvc.yaml files.
RUNS_DIR = Path(".dvc/tmp/lesson2-runs")
LOCAL_CONFIG = Path(".dvc/config.local")  # not in git: remotes' credentials and the like live here
LOCK_FILE = Path("dvc.lock")
# Shard runs' worktrees (flows/shard_run.py), apart from RUNS_DIR: a lesson2 run in the same checkout clears RUNS_DIR
# of what killed runs left, while a shard run may be live; each shard run holds a flock on <name>.lock instead.
SHARD_RUNS_DIR = Path(".dvc/tmp/lesson2-shard-runs")


def _git(workspace: Path, *args: str) -> str:
    """git's stdout; StageError with its message when it fails."""
    done = subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True)
    if done.returncode != 0:
        raise StageError(f"git {' '.join(args)} failed in {workspace.resolve()}: {done.stderr.strip()}")
    return done.stdout


def remove_stale_runs(workspace: Path) -> list[str]:
    """Remove the run worktrees that killed runs left (call it holding the workspace's lock); their names."""
    runs = workspace / RUNS_DIR
    names = sorted(path.name for path in runs.iterdir()) if runs.is_dir() else []
    for name in names:
        remove_path(runs / name)
    if names:
        _git(workspace, "worktree", "prune")  # forget them in git too
    return names


def local_changes(workspace: Path) -> list[str]:
    """Paths that differ from HEAD: tracked files changed (staged or not) or deleted, and files git doesn't ignore."""
    changed = _git(workspace, "diff", "--name-only", "--no-renames", "-z", "HEAD")
    untracked = _git(workspace, "ls-files", "--others", "--exclude-standard", "-z")
    return sorted(set(filter(None, changed.split("\0") + untracked.split("\0"))))


def copy_changes(workspace: Path, run_dir: Path) -> None:
    """Make run_dir's files what the workspace's are where they differ from HEAD (copied, deletions repeated)."""
    for relative in local_changes(workspace):
        source, target = workspace / relative, run_dir / relative
        remove_path(target)
        if source.exists() or source.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)


def dvc_cache_dir(workspace: Path) -> Path:
    """The workspace's DVC cache, where its own config puts it (`.dvc/cache` unless `dvc cache dir` moved it)."""
    from dvc.repo import Repo  # DVC is heavy to import; only needed when a run starts

    with Repo(str(workspace)) as repo:
        return Path(repo.cache.local_cache_dir)


def share_cache(workspace: Path, run_dir: Path) -> None:
    """Point run_dir's DVC at the workspace's cache (and its local config), so both see one cache and run-cache."""
    cache = dvc_cache_dir(workspace)
    if (workspace / LOCAL_CONFIG).is_file():
        shutil.copy2(workspace / LOCAL_CONFIG, run_dir / LOCAL_CONFIG)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "cache", "dir", "--local", str(cache)],
        cwd=run_dir,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StageError(f"could not share DVC's cache with {run_dir}: {done.stderr.strip() or done.stdout.strip()}")


@contextmanager
def run_workspace(workspace: Path, name: str, params: bytes | None) -> Iterator[Path]:
    """The workspace itself when params is None; else a temporary worktree of it with params as its params.yaml."""
    if params is None:
        yield workspace
        return
    head = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd=workspace, capture_output=True
    )
    if head.returncode != 0:
        raise StageError(
            f"a run with overrides runs in a git worktree of {workspace.resolve()}, which needs a git checkout with a "
            "commit; commit the project, or set the params in params.yaml and run without overrides"
        )
    with _worktree(workspace, workspace / RUNS_DIR / name, "HEAD") as run_dir:
        copy_changes(workspace, run_dir)
        share_cache(workspace, run_dir)
        (run_dir / PARAMS_FILE).write_bytes(params)
        yield run_dir


@contextmanager
def _worktree(workspace: Path, run_dir: Path, commit: str) -> Iterator[Path]:
    """A detached git worktree of the workspace at commit, removed (and forgotten by git) when the block ends."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    _git(workspace, "worktree", "add", "--quiet", "--detach", str(run_dir.resolve()), commit)
    try:
        yield run_dir
    finally:
        remove_path(run_dir)
        _git(workspace, "worktree", "prune")


@contextmanager
def _held(lock: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive flock on lock for the block (the kernel drops it when the holder dies); False when not waiting and
    another process holds it."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def remove_dead_shard_runs(checkout: Path) -> list[str]:
    """Remove the shard worktrees whose run died (their lock is free); the names removed."""
    runs = checkout / SHARD_RUNS_DIR
    removed = []
    for lock in sorted(runs.glob("*.lock")):
        with _held(lock, wait=False) as dead:
            if dead:
                remove_path(runs / lock.stem)
                lock.unlink()
                removed.append(lock.stem)
    if removed:
        _git(checkout, "worktree", "prune")
    return removed


def has_commit(checkout: Path, commit: str) -> bool:
    """Whether the checkout's git repository holds commit."""
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=checkout, capture_output=True, text=True
    )
    return found.returncode == 0


def fetch_commit(checkout: Path, commit: str) -> None:
    """Make sure the checkout holds commit, fetching its git remotes' branches if it lacks it; StageError if none has
    it (a commit made on the coordinator and never pushed)."""
    if has_commit(checkout, commit):
        return
    remotes = _git(checkout, "remote").split()
    for remote in remotes:
        subprocess.run(["git", "fetch", "--quiet", remote], cwd=checkout, capture_output=True, text=True)
        if has_commit(checkout, commit):
            return
    where = f"its git remote{'s' if len(remotes) > 1 else ''} {', '.join(remotes)}" if remotes else "any git remote"
    raise StageError(
        f"commit {commit[:12]} is neither in {checkout.resolve()} nor in {where}: push it (git push) so that the "
        "shard workers can fetch it"
    )


@contextmanager
def commit_workspace(checkout: Path, name: str, commit: str, params: bytes, lock: bytes | None) -> Iterator[Path]:
    """A temporary worktree of the checkout at commit (fetched if missing), with params as its params.yaml and, when
    given, lock as its dvc.lock (the coordinator's, naming the upstream outputs this run pulls); DVC's cache shared
    with the checkout's. For a shard run on a worker: nothing of the checkout's own changes is copied in."""
    fetch_commit(checkout, commit)
    runs = checkout / SHARD_RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    remove_dead_shard_runs(checkout)
    held = runs / f"{name}.lock"
    with _held(held), _worktree(checkout, runs / name, commit) as run_dir:
        try:
            share_cache(checkout, run_dir)
            (run_dir / PARAMS_FILE).write_bytes(params)
            if lock is not None:
                (run_dir / LOCK_FILE).write_bytes(lock)
            yield run_dir
        finally:
            held.unlink(missing_ok=True)
