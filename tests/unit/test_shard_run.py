"""A shard run's pure parts: which inputs it pulls, its progress from the stage's lines, the bytes it moved; its
worktree at the coordinator's commit, fetched from the checkout's git remote; the coordinator's keys and refusals."""

import logging
from pathlib import Path

import pytest

from flows.dvc_stages import RESTORED, on_remote, reproduce_stage
from flows.fan_out import (
    FanOut,
    ShardFailed,
    check_reachable,
    failure_message,
    idempotency_key,
    params_digest,
    shard_stages,
    unpushed_code,
)
from flows.run_workspace import SHARD_RUNS_DIR, commit_workspace, fetch_commit, remove_dead_shard_runs
from flows.shard_run import (
    PhotoProgress,
    ShardProgress,
    new_bytes,
    parse_progress,
    run_shard,
    unpushed_bytes,
    written_by_others,
)
from tasks.core.errors import StageError
from tests.support.workspace import dvc, run_tool


def test_progress_lines_of_the_features_stage_parse_and_other_lines_do_not():
    running = "features: train 1,200/3,000 photos (40%), 5.2 photos/s, 3m 05s left"
    assert parse_progress(running) == PhotoProgress("train", 1200, 3000, 5.2)
    assert parse_progress("features: test 6/6 photos in 2s, 3.0 photos/s") == PhotoProgress("test", 6, 6, 3.0)
    shard = "features@1: valid 2,000/2,000 photos in 6m 25s, 5.2 photos/s"
    assert parse_progress(shard) == PhotoProgress("valid", 2000, 2000, 5.2)
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


def test_the_idempotency_key_is_the_same_for_one_commit_params_and_attempt_and_new_otherwise():
    digest = params_digest(b"features:\n  shards: [0, 1]\n", b"lock")
    key = idempotency_key("c0ffee", digest, "features@1", 1)
    assert key == idempotency_key("c0ffee", params_digest(b"features:\n  shards: [0, 1]\n", b"lock"), "features@1", 1)
    others = {
        idempotency_key("c0ffee", digest, "features@1", 2),
        idempotency_key("c0ffee", digest, "features@0", 1),
        idempotency_key("beef", digest, "features@1", 1),
        idempotency_key("c0ffee", params_digest(b"features:\n  shards: [0, 1, 2]\n", b"lock"), "features@1", 1),
        idempotency_key("c0ffee", params_digest(b"features:\n  shards: [0, 1]\n", b"other lock"), "features@1", 1),
    }
    assert key not in others and len(others) == 5


def test_only_uncommitted_changes_to_a_shards_code_or_dvc_yaml_stop_the_fan_out():
    deps = ["tasks/features.py", "tasks/vgg", "data/shards/0.zip", "params.yaml"]
    changed = ["dvc.lock", "params.yaml", "tasks/features.py", "tasks/vgg/vgg16.py", "tasks/train.py", "dvc.yaml"]
    assert unpushed_code(changed, deps, ["data/shards/0.zip"]) == [
        "dvc.yaml",
        "tasks/features.py",
        "tasks/vgg/vgg16.py",
    ]
    assert unpushed_code(["dvc.lock", "params.yaml", "data/.gitignore"], deps, ["data/shards/0.zip"]) == []


def test_a_shard_that_keeps_failing_is_named_with_its_worker_host_and_last_word():
    message = failure_message("features@0", 3, "features@0-attempt-3", "gpu0", "host-a:4242", "exited with -9")
    assert message == (
        "shard features@0 failed 3 times; its last flow run features@0-attempt-3 ran on worker gpu0 "
        "(process host-a:4242): exited with -9"
    )
    unknown = failure_message("features@1", 1, "r", None, None, "Crashed")
    assert (
        unknown
        == "shard features@1 failed 1 time; its last flow run r ran on an unknown worker (no process recorded): "
        "Crashed"
    )


def test_shard_stages_are_the_features_foreach_stages_in_order():
    order = ["download", "split", "features@0", "features@1", "train"]
    assert shard_stages(order) == ["features@0", "features@1"]


def test_the_coordinator_refuses_a_commit_its_git_remote_lacks(origin_and_clone):
    origin, clone = origin_and_clone
    pushed = run_tool(["git", "rev-parse", "HEAD"], clone).stdout.strip()
    assert check_reachable(clone, pushed).startswith("on origin/")
    local = commit_file(clone, "only-here.py", "x\n")
    with pytest.raises(ShardFailed) as refused:
        check_reachable(clone, local)
    assert str(refused.value) == (
        f"commit {local[:12]} is on none of the git remotes origin the shard workers fetch from: "
        "push it (git push), then run again"
    )
    assert check_reachable(origin, local).startswith("no git remote")


def test_without_a_dvc_remote_neither_the_coordinator_nor_a_worker_starts(origin_and_clone):
    origin, clone = origin_and_clone
    with pytest.raises(ShardFailed) as refused:
        FanOut(origin, origin, "features-shard/gpu-pool", logging.getLogger("test")).prepare(["features@0"])
    assert str(refused.value) == (
        f"fan-out to features-shard/gpu-pool needs a DVC remote every worker can reach, and {origin.resolve()} has "
        "none: `dvc remote add -d` one (docs/remote.md), or run without shard_deployment"
    )
    with pytest.raises(StageError, match=r"has no default DVC remote: a shard run pulls its inputs from it"):
        run_shard(clone, "HEAD", "", "features@0")
    assert not (clone / SHARD_RUNS_DIR).exists()  # refused before any worktree


STAND_IN = """
stages:
  split:
    cmd: >-
      mkdir -p data/shards && printf zero > data/shards/0.zip && printf one! > data/shards/1.zip
      && printf s > data/split.csv
    outs: [data/shards, data/split.csv]
  features:
    foreach: ${shards}
    do:
      cmd: >-
        mkdir -p data/features/${item} metrics/${item} && echo "features@${item}: train 1/2 photos (50%), 2.0 photos/s"
        && cat data/shards/${item}.zip data/split.csv > data/features/${item}/x && echo 1 > metrics/${item}/m.json
      deps:
        - data/shards/${item}.zip
        - data/split.csv
      outs:
        - data/features/${item}
      metrics:
        - metrics/${item}/m.json:
            cache: false
"""


def test_a_shard_computed_on_a_worker_is_restored_by_the_coordinator_and_never_computed_twice(tmp_path: Path):
    """A stand-in for the project: shell stages with DVC's foreach, a metrics file kept out of the cache as the
    features stage's are, and a local folder as the remote."""
    coordinator = tmp_path / "coordinator"
    coordinator.mkdir()
    run_tool(["git", "init", "-q"], coordinator)
    dvc(coordinator, "init", "-q")
    dvc(coordinator, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    (coordinator / "params.yaml").write_text("shards: [0, 1]\n")
    (coordinator / "dvc.yaml").write_text(STAND_IN)
    run_tool(["git", "add", "-A"], coordinator)
    run_tool(["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "init"], coordinator)
    commit = run_tool(["git", "rev-parse", "HEAD"], coordinator).stdout.strip()
    dvc(coordinator, "repro", "split")
    dvc(coordinator, "push", "data/shards", "data/split.csv")
    lock = (coordinator / "dvc.lock").read_text()
    workers = [tmp_path / f"worker-{i}" for i in range(2)]
    for worker in workers:
        run_tool(["git", "clone", "-q", str(coordinator), str(worker)], tmp_path)
    seen: list[float] = []

    report = run_shard(
        workers[0],
        commit,
        "shards: [0, 1]\n",
        "features@1",
        lock,
        on_line=lambda _: None,
        on_progress=lambda _, f: seen.append(f),
    )
    assert report.computed and report.bytes_pushed == len("one!s")  # data/features/1/x, the one output file
    assert report.bytes_pulled >= len("one!s") and seen == [0.5]
    cache = {p.name for p in (workers[0] / ".dvc/cache/files/md5").rglob("*")}
    assert md5_name("one!") in cache and md5_name("zero") not in cache  # its own shard only
    assert on_remote(coordinator, ["features@0", "features@1"]) == ["features@1"]

    again = run_shard(workers[1], commit, "shards: [0, 1]\n", "features@1", lock, on_line=lambda _: None)
    assert not again.computed and again.bytes_pushed == 0  # restored from the remote's run-cache

    run = reproduce_stage(coordinator, "features@1", on_line=lambda _: None)
    assert run.outcome == RESTORED and "Running stage" not in run.output
    assert (coordinator / "data/features/1/x").read_text() == "one!s"
    assert (coordinator / "metrics/1/m.json").read_text() == "1\n"  # cache: false, yet restored: the shard pushed it


def md5_name(text: str) -> str:
    """The file name DVC's cache gives the bytes of text (the md5 after its two-character folder)."""
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()[2:]
