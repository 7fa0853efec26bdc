"""The Prefect flow: one task per DVC stage, same names, in the order DVC's graph gives."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows.dvc_stages import StageRun, execution_order, reproduce_stage, stage_graph
from flows.experiment import Experiment, code_changes, experiment_name, free_name, head_commit, save_experiment
from flows.run_params import params_in_place, read_params_file, validated_params
from flows.run_report import lineage_markdown, metric_rows
from flows.workspace_lock import hold_workspace
from tasks.core.errors import StageError
from tasks.core.params import Params

# Only these touch the network, so only these are worth retrying.
NETWORK_STAGES = frozenset({"download", "submit"})
NETWORK_RETRIES = 2
UP_TO_DATE = "Up to date"  # the task run's state name when DVC skipped the stage
# Artifact keys: every run adds a version under the same key, so Prefect shows each as a history across runs.
METRICS_KEY = "lesson2-metrics"
LINEAGE_KEY = "lesson2-lineage"
SUBMISSION_KEY = "lesson2-submission"


def _reproduce(workspace: str, stage: str) -> State:
    logger = get_run_logger()
    run = reproduce_stage(Path(workspace), stage, on_line=logger.info)
    logger.info("%s: %s", stage, "ran" if run.ran else "up to date, skipped by DVC")
    # The state's name is what Prefect's UI shows for the task run, so a reused stage reads differently at a glance.
    if run.ran:
        return Completed(data=run, message="DVC ran the stage")
    return Completed(data=run, name=UP_TO_DATE, message="DVC found the stage up to date and skipped it")


def stage_task(stage: str):
    """A Prefect task that reproduces one DVC stage; DVC decides staleness, so Prefect's cache stays off."""
    retries = NETWORK_RETRIES if stage in NETWORK_STAGES else 0
    return task(name=stage, retries=retries, retry_delay_seconds=10, cache_policy=NO_CACHE)(_reproduce)


def publish_artifacts(
    workspace: Path,
    run_name: str,
    params: Params,
    merged: Mapping[str, Any],
    overrides: Mapping[str, Any],
    outcomes: Mapping[str, str],
    experiment: Experiment | None,
) -> None:
    """The run's metrics table, its lineage summary and a link to its submission, as Prefect artifacts."""
    rows = metric_rows(workspace / params.paths.metrics)
    create_table_artifact(key=METRICS_KEY, table=rows, description=f"metrics/*.json after run {run_name}")
    changes = code_changes(workspace)
    try:
        commit = head_commit(workspace)
    except StageError:
        commit = "none (not a git checkout)"
    summary = lineage_markdown(
        run_name=run_name,
        workspace=workspace,
        params=params,
        merged=merged,
        overrides=overrides,
        outcomes=outcomes,
        commit=commit,
        changed=changes,
        experiment=experiment.name if experiment else None,
        experiment_commit=experiment.commit if experiment else None,
        metrics=rows,
    )
    create_markdown_artifact(key=LINEAGE_KEY, markdown=summary, description=f"lineage of run {run_name}")
    submission = (workspace / params.paths.submission).resolve()
    create_link_artifact(
        key=SUBMISSION_KEY, link=submission.as_uri(), link_text=params.paths.submission, description="submission"
    )


@flow(name="lesson2")
def lesson2(
    workspace: str = ".", overrides: dict[str, Any] | None = None, record_experiment: bool = True
) -> dict[str, str]:
    """Reproduce the DAG in workspace with params.yaml keys overridden for this run (e.g. {"train.head": "last_layer"}).

    Records the run as a DVC experiment named after the flow run; returns each stage's outcome.
    """
    logger = get_run_logger()
    root = Path(workspace)
    run_name = flow_run.get_name() or "lesson2"
    overrides = dict(overrides or {})
    with hold_workspace(root, f"flow run {run_name}"):
        # Everything that can be refused is checked here, before any stage touches the workspace.
        original, data = read_params_file(root)
        merged, params = validated_params(data, overrides)
        name = None
        if record_experiment:
            name = free_name(root, experiment_name(run_name), (flow_run.get_id() or "run")[:8])
        graph = stage_graph(root)
        outcomes: dict[str, str] = {}
        with params_in_place(root, original, merged, overridden=bool(overrides)):
            # One stage after another: two `dvc repro` at once in one workspace would fight over DVC's lock.
            for stage in execution_order(graph):
                # The task returns its own State (to name it); .result() gives the StageRun or raises its error.
                run: StageRun = stage_task(stage)(workspace, stage, return_state=True).result()
                outcomes[stage] = "ran" if run.ran else "up to date"
            experiment = save_experiment(root, name, on_line=logger.info) if name else None
            if experiment:
                logger.info("recorded as DVC experiment %s (%s)", experiment.name, experiment.commit)
            publish_artifacts(root, run_name, params, merged, overrides, outcomes, experiment)
    return outcomes


def main() -> None:
    outcomes = lesson2(workspace=sys.argv[1] if len(sys.argv) > 1 else ".")
    width = max(map(len, outcomes))
    print("\n".join(f"{stage:<{width}}  {outcome}" for stage, outcome in outcomes.items()))


if __name__ == "__main__":
    main()
