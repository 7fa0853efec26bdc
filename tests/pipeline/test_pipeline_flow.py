"""The Prefect flow: one task per DVC stage, edges from DVC's graph, failures fail the flow.

Some tests run the flow as `make run` does (`python -m flows.lesson2`, Prefect's temporary server), in a process of
its own, to see what a person sees and to interrupt or kill it for real.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.dvc_stages import StageFailed, execution_order, stage_graph
from flows.run_workspace import RUNS_DIR
from tests.support.processes import wait_for
from tests.support.workspace import PROJECT, dvc, make_workspace, run_tool, tool_env, write_params

INTERRUPTED_STATUS = 130  # 128 + SIGINT, as shells report a process that Ctrl-C ended
# Ctrl-C must end a run within this many seconds. What it waits for: the stage's current batch (under a second for a
# few 224x224 photos), the stage's and dvc's exits, the task's and flow's states sent to the live server, and
# Prefect's temporary server stopping (it gets 5 s to exit); 30 s leaves room for two heavy tests on 2 cores.
# Before, Ctrl-C killed the server and the flow retried against it for minutes.
CTRL_C_BOUND_S = 30
# More photos than TINY_PARAMS, so that features runs long enough to be caught in the middle.
SLOW_FEATURES = {"download": {"synthetic": {"train_per_class": 40, "test_count": 20}}, "features": {"batch_size": 2}}


def test_edges_come_from_dvc_and_order_respects_them():
    graph = stage_graph(PROJECT)
    assert set(graph) == {"download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"}
    assert graph["reorganize"] == ["download"]
    # split: the photos the views show; reorganize: the class list (data/classes.json) naming each output
    assert set(graph["predict"]) == {"reorganize", "split", "features@0", "train"}
    order = execution_order(graph)
    for stage, upstream in graph.items():
        assert all(order.index(u) < order.index(stage) for u in upstream)


def _task_runs(flow_run_id, field: str = "state") -> dict[str, Any]:
    """Task run name -> its state's name (or another field of the task run), read back from the Prefect API."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            pick = (lambda run: run.state.name) if field == "state" else (lambda run: getattr(run, field))
            return {run.name.rsplit("-", 1)[0]: pick(run) for run in runs}

    return asyncio.run(read())


def _artifacts(flow_run_id) -> dict[str, str]:
    """Artifact key -> its data (markdown, or a table as JSON) for one flow run, read back from the Prefect API."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return {artifact.key: artifact.data for artifact in found}

    return asyncio.run(read())


def test_flow_runs_every_stage_then_finds_them_up_to_date(workspace: Path, prefect_harness):
    from flows.lesson2 import lesson2

    state = lesson2(workspace=str(workspace), return_state=True)
    assert state.is_completed()
    outcomes = state.result()
    assert outcomes == {
        s: "ran" for s in ["download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"]
    }
    assert set(_task_runs(state.state_details.flow_run_id).values()) == {"Ran"}
    assert (workspace / "data/submission/submission.csv").is_file()
    run_facts = json.loads((workspace / "models/head.run.json").read_text())
    assert run_facts["prefect_flow_run_id"] == str(state.state_details.flow_run_id)  # the flow passes its run id on
    artifacts = _artifacts(state.state_details.flow_run_id)
    pictures = artifacts["lesson2-pictures"]  # each picture embedded, so the UI draws it with no file server
    views = ["random_correct", "random_incorrect", "confident_correct", "confident_incorrect", "uncertain"]
    for name in [*views, "first_layer_filters"]:
        assert f"## {name.replace('_', ' ')} (`metrics/" in pictures
    assert pictures.count("](data:image/") == len(views) + 1 and "| epoch | accuracy |" in pictures
    assert len(pictures) < 600_000  # scaled and re-encoded: the server keeps every run's version in its database
    submission = artifacts["lesson2-submission"]  # no remote here: where it is and its first rows, no file:// link
    assert "file://" not in submission and "rows | 6 |" in submission and "id,label" in submission

    second = lesson2(workspace=str(workspace), return_state=True)
    assert set(second.result().values()) == {"up to date"}
    assert set(_task_runs(second.state_details.flow_run_id).values()) == {"Up to date"}

    write_params(workspace, {"train": {"phases": [{"lr": 0.1, "epochs": 1}]}})
    again = lesson2(workspace=str(workspace))
    assert [s for s, o in again.items() if o == "ran"][:2] == ["train", "predict"]
    assert all(again[s] == "up to date" for s in ["download", "reorganize", "split", "features@0"])

    # Back to the first run's params: DVC's run-cache holds the first run of train and of every stage after it.
    write_params(workspace)
    back = lesson2(workspace=str(workspace), return_state=True)
    assert back.result() == {
        **dict.fromkeys(["download", "reorganize", "split", "features@0"], "up to date"),
        **dict.fromkeys(["train", "predict", "clip", "submit"], "restored"),
    }
    names = _task_runs(back.state_details.flow_run_id)
    assert (names["features@0"], names["train"]) == ("Up to date", "Restored")


def test_a_failing_stage_fails_its_task_and_the_flow(workspace: Path, prefect_harness, tmp_path: Path):
    from flows.lesson2 import lesson2

    # Valid params, so the flow starts; the archive is download's dependency, so DVC finds it missing before the
    # stage runs and names it.
    missing = tmp_path / "nowhere" / "dogs-vs-cats-redux-kernels-edition.zip"
    write_params(workspace, {"download": {"source": "archive", "path": str(missing)}})
    state = lesson2(workspace=str(workspace), return_state=True)
    assert state.is_failed()
    # DVC's API, asked before the stage runs (ran, restored or up to date?), finds the local archive missing: its line
    # is the one shown.
    assert state.message == f"stage download failed: ERROR: dependency '{missing}' does not exist"
    with pytest.raises(StageFailed, match=rf"dependency '{missing}' does not exist"):
        state.result()
    tasks = _task_runs(state.state_details.flow_run_id)
    assert tasks["download"] == "Failed"
    assert "reorganize" not in tasks
    # DVC diagnosed it, so the network stage's retries are not spent repeating the same line
    assert _task_runs(state.state_details.flow_run_id, "run_count")["download"] == 1


def test_params_that_cannot_work_fail_the_flow_before_any_stage(workspace: Path, prefect_harness):
    from flows.lesson2 import lesson2
    from tasks.core.errors import StageError

    write_params(workspace, {"split": {"valid_size": 1000}})
    state = lesson2(workspace=str(workspace), return_state=True)
    assert state.is_failed()
    with pytest.raises(StageError, match=r"split.valid_size is 1000"):
        state.result()
    assert _task_runs(state.state_details.flow_run_id) == {}


def test_a_bad_override_fails_the_flow_before_any_stage_runs(workspace: Path, prefect_harness):
    from flows.lesson2 import lesson2
    from tasks.core.errors import StageError

    before = (workspace / "params.yaml").read_bytes()
    state = lesson2(workspace=str(workspace), set_params=["train.epoch=5"], return_state=True)
    assert state.is_failed()
    with pytest.raises(StageError, match=r"override rejected: unknown key train.epoch"):
        state.result()
    assert _task_runs(state.state_details.flow_run_id) == {}
    assert (workspace / "params.yaml").read_bytes() == before
    assert not (workspace / "dvc.lock").exists()


def test_a_second_run_in_a_busy_workspace_fails_naming_the_holder(workspace: Path, prefect_harness):
    from flows.lesson2 import lesson2
    from flows.workspace_lock import WorkspaceBusy, hold_workspace

    with hold_workspace(workspace, "flow run nightly-owl"):
        state = lesson2(workspace=str(workspace), return_state=True)
    assert state.is_failed()
    with pytest.raises(WorkspaceBusy, match="in use by flow run nightly-owl"):
        state.result()
    assert _task_runs(state.state_details.flow_run_id) == {}


def flow_env(home: Path) -> dict[str, str]:
    """The environment `make run` gives the flow: no Prefect server configured, so Prefect starts a temporary one."""
    env = {k: v for k, v in tool_env().items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        PYTHONUNBUFFERED="1",  # analytics: off by the workspace's prefect.toml, as in the checkout
    )
    return env


@contextmanager
def flow_process(workspace: Path, args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """`python <args>` in workspace as a terminal runs a command: a process group of its own, output to log.
    Whatever is left of it is killed when the block ends, even when the test fails."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=workspace,
            env=flow_env(log.parent / "prefect-home"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def make_run(workspace: Path, log: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """What `make run` runs, to its end: its exit status and output."""
    with flow_process(workspace, ["-m", "flows.lesson2"], log) as process:
        process.wait(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, log.read_text(), "")


def locked_outputs(workspace: Path) -> dict[str, str]:
    """Each output's md5 in dvc.lock but the run facts (run.json, receipt): their time and git commit differ."""
    stages = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    outs = [out for stage in stages.values() for out in stage.get("outs", [])]
    records = ("run.json", "receipt.json")
    return {out["path"]: out["md5"] for out in outs if not out["path"].endswith(records)}


def test_a_failing_stage_shows_its_line_once_and_make_run_ends_with_it(tmp_path: Path):
    workspace = make_workspace(tmp_path / "ws", {"features": {"weights": "/nowhere/vgg16.h5"}})
    run = make_run(workspace, tmp_path / "run.log")
    line = "error: features: features.weights is '/nowhere/vgg16.h5', which is neither imagenet, none, nor an "
    line += "existing file"
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stdout
    assert lines[-1] == f"stage features@0 failed: {line}"
    assert "Traceback" not in run.stdout
    # Prefect's telemetry is off (prefect.toml): before, its heartbeat raced the flow for the temporary server's new
    # SQLite database and printed a 130-line "database is locked" traceback, or, offline, a DNS failure.
    assert "telemetry" not in run.stdout.lower() and "database is locked" not in run.stdout
    assert "dvc push" not in run.stdout  # no remote: DVC's push hint is not passed on
    # Once as the stage printed it, once in the flow's final state, once last (before: eight times, three tracebacks).
    assert sum(line in text for text in lines) == 3, run.stdout
    assert f'Finished in state Failed("stage features@0 failed: {line}")' in run.stdout


def test_ctrl_c_during_features_stops_within_seconds_and_the_next_run_completes(tmp_path: Path):
    workspace = make_workspace(tmp_path / "ws", SLOW_FEATURES)
    log = tmp_path / "interrupted.log"
    with flow_process(workspace, ["-m", "flows.lesson2"], log) as process:
        temps = lambda: list(workspace.glob("data/features/.0.*.tmp/*"))  # noqa: E731
        wait_for(temps, process, log, "a features temp folder", "the flow", timeout=400)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: SIGINT to its foreground process group
        interrupted_at = time.monotonic()
        seen_before = len(log.read_text().splitlines())
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=CTRL_C_BOUND_S)
        took = time.monotonic() - interrupted_at
    output = log.read_text()
    after = output.splitlines()[seen_before:]
    assert took < CTRL_C_BOUND_S, f"{took:.0f}s:\n{output}"
    assert process.returncode == INTERRUPTED_STATUS, output
    assert "Traceback" not in output and "connection" not in output.lower(), output
    assert len(after) <= 12, "\n".join(after)  # before: minutes of connection tracebacks
    assert output.splitlines()[-1].startswith("stage features@0 interrupted (Ctrl-C): DVC stopped its command")
    assert "Finished in state Cancelled" in output

    # DVC's own handling: the stage's command stopped, nothing half-written, DVC's lock released.
    assert not list(workspace.glob("data/features/.0.*.tmp")) and not (workspace / "data/features/0").exists()
    rwlock = json.loads((workspace / ".dvc/tmp/rwlock").read_text())
    assert not any(rwlock.values())  # no reader or writer left behind
    assert "features" in dvc(workspace, "status", "features").stdout

    rerun = make_run(workspace, tmp_path / "rerun.log")
    assert rerun.returncode == 0, rerun.stdout
    assert ["features@0", "ran"] in [line.split() for line in rerun.stdout.splitlines()]
    # TensorFlow's CPU build (the cpu extra make run and make test install) probes no GPU: before, every TensorFlow
    # stage logged `Could not find cuda drivers` and `failed call to cuInit`.
    assert "cuInit" not in rerun.stdout and "cuda drivers" not in rerun.stdout, rerun.stdout
    reference = make_workspace(tmp_path / "reference", SLOW_FEATURES)
    dvc(reference, "repro")
    assert locked_outputs(workspace) == locked_outputs(reference)


def test_kill_9_of_an_overridden_run_leaves_params_yaml_as_committed(tmp_path: Path, prefect_harness):
    from flows.lesson2 import lesson2

    workspace = make_workspace(tmp_path / "ws", SLOW_FEATURES)
    params = (workspace / "params.yaml").read_bytes()
    overrides = ["train.batch_size=4", "clip.bounds=[0.02,0.98]"]  # as `dvc exp run -S` takes them
    log = tmp_path / "killed.log"
    code = f"from flows.lesson2 import lesson2; lesson2(set_params={overrides!r})"
    with flow_process(workspace, ["-c", code], log) as process:
        in_worktree = lambda: list(workspace.glob(f"{RUNS_DIR}/*/data/features/.0.*.tmp/*"))  # noqa: E731
        wait_for(in_worktree, process, log, "a features temp folder in the run's worktree", "the flow", timeout=400)
        os.killpg(process.pid, signal.SIGKILL)  # no finally runs
        process.wait()

    assert (workspace / "params.yaml").read_bytes() == params
    assert run_tool(["git", "status", "--porcelain"], workspace).stdout == ""  # nothing in the workspace changed
    assert len(list((workspace / RUNS_DIR).iterdir())) == 1  # the dead run's worktree, left behind

    state = lesson2(workspace=str(workspace), set_params=overrides, return_state=True)
    assert state.is_completed(), state.message
    assert (workspace / "params.yaml").read_bytes() == params
    assert run_tool(["git", "status", "--porcelain"], workspace).stdout == ""
    assert list((workspace / RUNS_DIR).iterdir()) == []  # its worktree and the dead one's are gone, from git too
    assert len(run_tool(["git", "worktree", "list"], workspace).stdout.splitlines()) == 1
    shown = json.loads(dvc(workspace, "exp", "show", "--json").stdout)
    revisions = [rev for base in shown for exp in base.get("experiments") or [] for rev in exp["revs"]]
    recorded = [rev["data"]["params"]["params.yaml"]["data"] for rev in revisions]  # the killed run saved none
    assert [(p["train"]["batch_size"], p["clip"]["bounds"]) for p in recorded] == [(4, [0.02, 0.98])]

    plain = lesson2(workspace=str(workspace), return_state=True)  # the workspace's own params, in the workspace
    assert plain.is_completed(), plain.message
    assert yaml.safe_load((workspace / "params.yaml").read_text())["train"]["batch_size"] == 8
    assert json.loads((workspace / "metrics/clip.json").read_text())["lo"] == 0.05
