"""A shard run's pure parts: which inputs it pulls, its progress from the stage's lines, the bytes it moved; and its
worktree at the coordinator's commit, fetched from the checkout's git remote."""

from pathlib import Path

import pytest

from flows.run_workspace import SHARD_RUNS_DIR, commit_workspace, fetch_commit, remove_dead_shard_runs
from flows.shard_run import (
    PhotoProgress,
    ShardProgress,
    new_bytes,
    parse_progress,
    unpushed_bytes,
    written_by_others,
)
from tasks.core.errors import StageError
from tests.support.workspace import dvc, run_tool


def test_progress_lines_of_the_features_stage_parse_and_other_lines_do_not():
    running = "features: train 1,200/3,000 photos (40%), 5.2 photos/s, 3m 05s left"
    assert parse_progress(running) == PhotoProgress("train", 1200, 3000, 5.2)
    assert parse_progress("features: test 6/6 photos in 2s, 3.0 photos/s") == PhotoProgress("test", 6, 6, 3.0)
    assert parse_progress("Running stage 'features@0':") is None
    assert parse_progress("features: cached block5_pool of 18 photos") is None


def test_shard_progress_adds_the_subsets_up_over_the_shards_photos():
    progress = ShardProgress(total=30)
    assert progress.add(PhotoProgress("train", 10, 20, 1.0)) == pytest.approx(10 / 30)
    assert progress.add(PhotoProgress("train", 20, 20, 1.0)) == pytest.approx(20 / 30)
    assert progress.add(PhotoProgress("valid", 5, 10, 1.0)) == pytest.approx(25 / 30)
    unknown = ShardProgress()  # not a photo store: over the subsets seen so far
    assert unknown.add(PhotoProgress("train", 5, 20, 1.0)) == 0.25


def test_a_shard_pulls_only_the_deps_other_stages_write():
    outs = {
        "split": ["data/split.csv", "data/shards"],
        "reorganize": ["data/photos.zip", "data/classes.json"],
        "features@0": ["data/features/0"],
        "features@1": ["data/features/1"],
    }
    deps = ["tasks/features.py", "data/shards/1.zip", "data/split.csv", "data/classes.json", "data/shards-old.zip"]
    assert written_by_others(deps, outs, "features@1") == {
        "data/shards/1.zip": "data/shards",
        "data/split.csv": "data/split.csv",
        "data/classes.json": "data/classes.json",
    }
    # A stage's own outputs are never its inputs to pull.
    assert written_by_others(["data/features/1"], outs, "features@1") == {}


def test_bytes_moved_are_the_new_cache_files_and_the_files_the_remote_lacks(tmp_path: Path):
    assert new_bytes({"files/md5/aa/1": 5}, {"files/md5/aa/1": 5, "files/md5/bb/2": 7, "files/md5/cc/3": 1}) == 8
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.npy").write_bytes(b"x" * 10)
    (tmp_path / "out" / "b.csv").write_bytes(b"y" * 3)
    status = {"out": "new", "out/a.npy": "new", "out/b.csv": "ok"}
    assert unpushed_bytes(tmp_path, status) == 10


@pytest.fixture
def origin_and_clone(tmp_path: Path) -> tuple[Path, Path]:
    """A git + DVC repository with one commit, and a clone of it (a worker's checkout)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    run_tool(["git", "init", "-q"], origin)
    run_tool(["git", "config", "user.email", "tests@example.invalid"], origin)
    run_tool(["git", "config", "user.name", "tests"], origin)
    dvc(origin, "init", "-q")
    (origin / "params.yaml").write_text("shards: [0]\n")
    run_tool(["git", "add", "-A"], origin)
    run_tool(["git", "commit", "-qm", "init"], origin)
    clone = tmp_path / "clone"
    run_tool(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    return origin, clone


def commit_file(repo: Path, name: str, text: str) -> str:
    """Commit a file; the new commit's id."""
    (repo / name).write_text(text)
    run_tool(["git", "add", name], repo)
    run_tool(["git", "commit", "-qm", name], repo)
    return run_tool(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def test_a_worker_fetches_the_coordinators_commit_and_runs_it_with_its_params(origin_and_clone):
    origin, clone = origin_and_clone
    commit = commit_file(origin, "code.py", "new code\n")
    params = b"shards: [0, 1]\n"
    with commit_workspace(clone, "features@1-x", commit, params, b"schema: '2.0'\n") as run_dir:
        assert run_dir == clone / SHARD_RUNS_DIR / "features@1-x"
        assert (run_dir / "code.py").read_text() == "new code\n"
        assert (run_dir / "params.yaml").read_bytes() == params
        assert (run_dir / "dvc.lock").read_text() == "schema: '2.0'\n"
        assert not (clone / "code.py").exists()  # the checkout itself stays as it is
        assert remove_dead_shard_runs(clone) == []  # this run is alive: its worktree stays
    assert not (clone / SHARD_RUNS_DIR / "features@1-x").exists()
    assert list((clone / SHARD_RUNS_DIR).iterdir()) == []


def test_a_commit_that_was_never_pushed_is_refused_in_one_line(origin_and_clone):
    origin, clone = origin_and_clone
    local = commit_file(clone, "only-here.py", "x\n")  # in the clone: the origin never had it
    with pytest.raises(StageError) as refused:
        fetch_commit(origin, local)
    message = str(refused.value)
    assert f"commit {local[:12]} is neither in {origin.resolve()} nor in any git remote" in message
    assert message.endswith("push it (git push) so that the shard workers can fetch it")
    assert "\n" not in message


def test_the_worktree_a_killed_shard_run_left_is_removed_by_the_next(origin_and_clone):
    _, clone = origin_and_clone
    runs = clone / SHARD_RUNS_DIR
    runs.mkdir(parents=True)
    (runs / "features@0-dead").mkdir()
    (runs / "features@0-dead" / "half.npy").write_bytes(b"x")
    (runs / "features@0-dead.lock").write_text("")  # nobody holds it: its run is gone
    assert remove_dead_shard_runs(clone) == ["features@0-dead"]
    assert list(runs.iterdir()) == []
