"""The Prefect flow: one task per DVC stage, edges from DVC's graph, failures fail the flow."""

import json
from pathlib import Path

import pytest

from flows.dvc_stages import StageFailed, execution_order, stage_graph
from tests.support.workspace import PROJECT, write_params


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory):
    """An isolated Prefect API (temporary PREFECT_HOME and database) for this module's flow runs."""
    home = tmp_path_factory.mktemp("prefect-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(home))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    patch.undo()


def test_edges_come_from_dvc_and_order_respects_them():
    graph = stage_graph(PROJECT)
    assert set(graph) == {"download", "reorganize", "split", "features", "train", "predict", "clip", "submit"}
    assert graph["reorganize"] == ["download"]
    assert set(graph["predict"]) == {"split", "features", "train"}  # split: the photos the views show
    order = execution_order(graph)
    for stage, upstream in graph.items():
        assert all(order.index(u) < order.index(stage) for u in upstream)


def _task_runs(flow_run_id) -> dict[str, str]:
    """Task run name -> state name, read back from the Prefect API."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs}

    return asyncio.run(read())


def test_flow_runs_every_stage_then_finds_them_up_to_date(workspace: Path, prefect_harness):
    from flows.lesson2 import lesson2

    state = lesson2(workspace=str(workspace), return_state=True)
    assert state.is_completed()
    outcomes = state.result()
    assert outcomes == {
        s: "ran" for s in ["download", "reorganize", "split", "features", "train", "predict", "clip", "submit"]
    }
    assert set(_task_runs(state.state_details.flow_run_id).values()) == {"Completed"}
    assert (workspace / "data/submission/submission.csv").is_file()
    run_facts = json.loads((workspace / "models/head.run.json").read_text())
    assert run_facts["prefect_flow_run_id"] == str(state.state_details.flow_run_id)  # the flow passes its run id on

    second = lesson2(workspace=str(workspace), return_state=True)
    assert set(second.result().values()) == {"up to date"}
    assert set(_task_runs(second.state_details.flow_run_id).values()) == {"Up to date"}

    write_params(workspace, {"train": {"phases": [{"lr": 0.1, "epochs": 1}]}})
    again = lesson2(workspace=str(workspace))
    assert [s for s, o in again.items() if o == "ran"][:2] == ["train", "predict"]
    assert all(again[s] == "up to date" for s in ["download", "reorganize", "split", "features"])


def test_a_failing_stage_fails_its_task_and_the_flow(workspace: Path, prefect_harness, tmp_path: Path):
    from flows.lesson2 import lesson2

    # Valid params, so the flow starts; the archive is download's dependency, so DVC finds it missing before the
    # stage runs and names it.
    missing = tmp_path / "nowhere" / "dogs-vs-cats-redux-kernels-edition.zip"
    write_params(workspace, {"download": {"source": "archive", "archive_path": str(missing)}})
    state = lesson2(workspace=str(workspace), return_state=True)
    assert state.is_failed()
    with pytest.raises(StageFailed, match=rf"failed to reproduce 'download': .*No such file or directory: '{missing}'"):
        state.result()
    tasks = _task_runs(state.state_details.flow_run_id)
    assert tasks["download"] == "Failed"
    assert "reorganize" not in tasks


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
    state = lesson2(workspace=str(workspace), overrides={"train.epoch": 5}, return_state=True)
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
