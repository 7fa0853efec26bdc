"""Ran, restored or up to date: DVC's API predicts what `dvc repro` does to a stage, on a two-stage repository of echos.

Each stage's command appends its name to ran.log (no output of either), so the test sees what really ran.
"""

from pathlib import Path

import pytest
import yaml

from flows.dvc_stages import PUSH_HINT, RAN, RESTORED, UP_TO_DATE, reproduce_stage
from tests.support.workspace import dvc, run_tool

TF_WARNING = "W0000 00:00:1733241600.123456  4242 cpu_feature_guard.cc:210] notice"


def _stages(letter: str) -> dict:
    first = {
        "cmd": f"echo {letter} > a.txt && echo first >> ran.log && echo '{TF_WARNING}' >&2",
        "deps": ["seed.txt"],  # DVC's run-cache keys a run by its deps: a stage without one is never restored from it
        "outs": ["a.txt"],
    }
    second = {"cmd": "cat a.txt > b.txt && echo second >> ran.log", "deps": ["a.txt"], "outs": ["b.txt"]}
    return {"stages": {"first": first, "second": second}}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    run_tool(["git", "init", "-q"], tmp_path)
    dvc(tmp_path, "init", "-q")
    (tmp_path / "seed.txt").write_text("seed\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(_stages("a")))
    return tmp_path


def _reproduce(repo: Path) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """Both stages through the flow's reproduce_stage: each outcome, what ran, the stdout and the stderr lines."""
    log = repo / "ran.log"
    before = log.read_text().split() if log.exists() else []
    out: list[str] = []
    err: list[str] = []
    outcomes = {
        s: reproduce_stage(repo, s, on_line=out.append, on_stderr=err.append).outcome for s in ("first", "second")
    }
    ran = log.read_text().split()[len(before) :] if log.exists() else []
    return outcomes, ran, out, err


def test_each_stage_is_named_for_what_dvc_did(repo: Path):
    outcomes, ran, out, err = _reproduce(repo)
    assert (outcomes, ran) == ({"first": RAN, "second": RAN}, ["first", "second"])
    assert TF_WARNING in err and TF_WARNING not in out  # the stage's stderr comes apart from its stdout
    assert PUSH_HINT not in out  # no remote here; the flow says it once at the end when there is one

    outcomes, ran, out, _ = _reproduce(repo)
    assert (outcomes, ran, out) == ({"first": UP_TO_DATE, "second": UP_TO_DATE}, [], [])  # dvc not even started

    (repo / "a.txt").unlink()  # outputs gone, inputs as dvc.lock has them: DVC checks them out of its cache
    (repo / "b.txt").unlink()
    outcomes, ran, _, _ = _reproduce(repo)
    assert (outcomes, ran) == ({"first": RESTORED, "second": RESTORED}, [])
    assert (repo / "b.txt").read_text() == "a\n"

    (repo / "dvc.yaml").write_text(yaml.safe_dump(_stages("b")))
    outcomes, ran, _, _ = _reproduce(repo)
    assert (outcomes, ran) == ({"first": RAN, "second": RAN}, ["first", "second"])

    (repo / "dvc.yaml").write_text(yaml.safe_dump(_stages("a")))  # back to a run the run-cache holds
    outcomes, ran, _, _ = _reproduce(repo)
    assert (outcomes, ran) == ({"first": RESTORED, "second": RESTORED}, [])
    assert (repo / "b.txt").read_text() == "a\n"


def test_the_push_hint_needs_a_remote(repo: Path):
    from flows.lesson2 import push_reminder

    assert push_reminder(repo, {"first": RAN}) is None  # no remote: nothing to push to


def test_a_stage_another_dvc_is_writing_fails_naming_it_before_anything_runs(repo: Path):
    import json
    import os

    from flows.dvc_stages import StageFailed

    # What a running `dvc repro` leaves in DVC's rwlock while its stage's command runs: it writes a.txt.
    holder = {"pid": os.getppid(), "cmd": "dvc repro first"}  # a live process that is not this one
    rwlock = {"write": {str(repo / "a.txt"): holder}, "read": {}}
    (repo / ".dvc" / "tmp").mkdir(exist_ok=True)
    (repo / ".dvc" / "tmp" / "rwlock").write_text(json.dumps(rwlock))
    with pytest.raises(StageFailed, match=r"stage first failed: ERROR: .*a.txt' is busy, it is being blocked by"):
        reproduce_stage(repo, "first", on_line=lambda _: None)
    assert not (repo / "ran.log").exists()


def test_a_stage_restored_from_the_remotes_run_cache_reads_restored(repo: Path, tmp_path_factory):
    """Another clone ran the stage and pushed it with its run-cache: `dvc repro --pull` here restores it, which DVC's
    API could not foresee without pulling the run-cache first (it predicts RAN): DVC's own line decides."""
    remote = tmp_path_factory.mktemp("remote")
    dvc(repo, "remote", "add", "-d", "shared", str(remote))
    run_tool(["git", "add", "-A"], repo)
    run_tool(["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "init"], repo)
    _reproduce(repo)
    dvc(repo, "push", "--run-cache")
    clone = tmp_path_factory.mktemp("clone") / "repo"
    run_tool(["git", "clone", "-q", str(repo), str(clone)], repo)
    (clone / "seed.txt").write_text("seed\n")  # the dep, as the first clone had it (not in git here)
    run = reproduce_stage(clone, "first", on_line=lambda line: None)
    assert run.outcome == RESTORED
    assert "Running stage" not in run.output and not (clone / "ran.log").exists()
    assert (clone / "a.txt").read_text() == "a\n"
