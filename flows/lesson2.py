"""The Prefect flow: one task per DVC stage, same names, in the order DVC's graph gives."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State

from flows.dvc_stages import (
    PUSH_HINT,
    RAN,
    RESTORED,
    UP_TO_DATE,
    StageFailed,
    StageInterrupted,
    StageRun,
    default_remote,
    execution_order,
    published_link,
    reproduce_stage,
    stage_graph,
)
from flows.experiment import (
    Experiment,
    ExperimentNotSaved,
    code_changes,
    experiment_name,
    free_name,
    head_commit,
    save_experiment,
)
from flows.fan_out import ShardFailed, fan_out, shard_stages
from flows.interruption import INTERRUPTED_STATUS, run_in_own_session, stop_requests
from flows.run_params import ParamsOverride, params_file, read_params_file, run_overrides, validated_params
from flows.run_report import lineage_markdown, locked_hashes, metric_rows, pictures_markdown, submission_markdown
from flows.run_workspace import RUNS_DIR, dvc_cache_dir, remove_stale_runs, run_workspace
from flows.stage_output import StderrLevels
from flows.workspace_lock import WorkspaceBusy, hold_workspace
from tasks.core.errors import StageError
from tasks.core.paths import DVC_FILE, load_paths

# Only these touch the network, so only these are worth retrying.
NETWORK_STAGES = frozenset({"download", "submit"})
NETWORK_RETRIES = 2
# A failed task's message when the stage died without an error line from it or DVC (killed, or a crash): only such a
# failure is worth retrying; an error line is a diagnosis, and the stages' network calls retry by themselves.
UNEXPLAINED = "without an error line"
# The task run's state name for each outcome, which Prefect's UI shows on the run. All three are of type COMPLETED (the
# stage's outputs are there and current), and Prefect 3.9's UI colours a state by its type alone, so all three are
# green: the name and the run's length (an up-to-date stage takes no time) tell them apart.
STATE_NAMES = {RAN: "Ran", RESTORED: "Restored", UP_TO_DATE: "Up to date"}
STATE_MESSAGES = {
    RAN: "DVC ran the stage",
    RESTORED: "DVC restored the stage's outputs from its cache (run-cache or remote) without running it",
    UP_TO_DATE: "DVC found the stage up to date: nothing ran",
}
# Artifact keys: every run adds a version under the same key, so Prefect shows each as a history across runs.
METRICS_KEY = "lesson2-metrics"
LINEAGE_KEY = "lesson2-lineage"
SUBMISSION_KEY = "lesson2-submission"
PICTURES_KEY = "lesson2-pictures"
SUBMISSION_LINK_LIFETIME_S = 7 * 24 * 3600  # the longest an S3 presigned URL lives (SigV4)
VERDICT_FD = "LESSON2_VERDICT_FD"  # set by main() for the flow's own process: where it writes its verdict


def _reproduce(workspace: str, stage: str) -> State:
    logger = get_run_logger()
    # A stage's failure is a State, not a raised exception: its one line is already in the log, streamed with the
    # rest of its output, and a traceback through Prefect's engine would only bury it. The flow's state repeats it.
    levels = StderrLevels(stage)
    try:
        run = reproduce_stage(
            Path(workspace), stage, on_line=logger.info, on_stderr=lambda line: logger.log(levels.level(line), line)
        )
    except StageInterrupted as err:
        return Cancelled(data=err, message=f"stage {stage} interrupted")
    except StageFailed as err:
        return Failed(data=err, message=f"stage {stage} failed" + ("" if err.explained else f" {UNEXPLAINED}"))
    logger.info("%s: %s", stage, STATE_MESSAGES[run.outcome])
    return Completed(data=run, name=STATE_NAMES[run.outcome], message=STATE_MESSAGES[run.outcome])


class _FailedStateEcho(logging.Filter):
    """Drops Prefect's "Task run failed with state ..." record for a task that returned a Failed state: it repeats the
    final state that Prefect logs next, with the state's data in full and an empty traceback ("NoneType: None")."""

    def filter(self, record: logging.LogRecord) -> bool:
        empty_traceback = record.exc_info == (None, None, None)
        return not (empty_traceback and record.getMessage().startswith("Task run failed with state"))


def quiet_failed_state_echo() -> None:
    """Add _FailedStateEcho to Prefect's task run logger, once per process."""
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(existing, _FailedStateEcho) for existing in logger.filters):
        logger.addFilter(_FailedStateEcho())


def unexplained_failure(task: Any, task_run: Any, state: State) -> bool:
    """Prefect's retry condition: retry a network stage only if it failed without saying why.

    Retrying a stage that printed its own error would print that line again for every retry and change nothing.
    """
    return (state.message or "").endswith(UNEXPLAINED)


def stage_task(stage: str):
    """A Prefect task that reproduces one DVC stage; DVC decides staleness, so Prefect's cache stays off."""
    retries = NETWORK_RETRIES if stage in NETWORK_STAGES else 0
    return task(
        name=stage,
        retries=retries,
        retry_delay_seconds=10,
        retry_condition_fn=unexplained_failure,
        cache_policy=NO_CACHE,
    )(_reproduce)


def publish_artifacts(
    workspace: Path,
    run_dir: Path,
    run_name: str,
    merged: Mapping[str, Any],
    overrides: Mapping[str, Any],
    outcomes: Mapping[str, str],
    experiment: Experiment | None,
) -> None:
    """The run's metrics table, its lineage summary and a link to its submission, as Prefect artifacts.

    run_dir is where the stages ran: the workspace, or the run's own worktree (removed after the run).
    """
    paths = load_paths(run_dir / DVC_FILE)
    rows = metric_rows(run_dir / paths.metrics)
    create_table_artifact(key=METRICS_KEY, table=rows, description=f"metrics/*.json after run {run_name}")
    changes = code_changes(run_dir)
    try:
        commit = head_commit(run_dir)
    except StageError:
        commit = "none (not a git checkout)"
    summary = lineage_markdown(
        run_name=run_name,
        workspace=run_dir,
        paths=paths,
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
    pictures = pictures_markdown(run_name, run_dir / paths.metrics, paths.metrics)
    create_markdown_artifact(key=PICTURES_KEY, markdown=pictures, description=f"curves and views of run {run_name}")
    create_markdown_artifact(
        key=SUBMISSION_KEY,
        markdown=submission_report(workspace, run_dir, paths.submission, experiment),
        description=f"submission of run {run_name}",
    )


def submission_report(workspace: Path, run_dir: Path, path: str, experiment: Experiment | None) -> str:
    """The submission artifact's text: with an S3 remote, a presigned link to the CSV pushed there; else where the file
    is on this host (a file:// link would open the reader's own disk, not this one) and how to get it."""
    md5 = locked_hashes(run_dir).get(path, "")
    location = (run_dir / path).resolve()
    where = "the workspace"
    if run_dir != workspace:  # the worktree goes when the run ends; DVC's cache keeps the file under its md5
        location = dvc_cache_dir(workspace) / "files" / "md5" / md5[:2] / md5[2:]
        where = "DVC's cache" + (f" (`dvc exp apply {experiment.name}` puts it in the workspace)" if experiment else "")
    link, note = None, f"On the worker, in {where}. With a DVC remote on S3 (docs/remote.md) this is a download link."
    if default_remote(run_dir):
        try:
            link = published_link(run_dir, path, md5, SUBMISSION_LINK_LIFETIME_S)
        except Exception as err:  # any refusal of the remote's (endpoint, key, bucket): the run is done; no link
            get_run_logger().warning("submission not published to the DVC remote: %s", err)
        if link:
            expires = datetime.now(UTC) + timedelta(seconds=SUBMISSION_LINK_LIFETIME_S)
            note = f"pushed to the DVC remote; the link works until {expires:%Y-%m-%d %H:%M} UTC"
    return submission_markdown(
        label=path, host=socket.gethostname(), location=location, md5=md5 or "not in dvc.lock", link=link, note=note
    )


def _run_stages(
    run_dir: Path, stop: threading.Event, root: Path | None = None, shard_deployment: str | None = None
) -> tuple[dict[str, str], State | None]:
    """Each stage as its task, in DVC's order; the outcomes, and the flow's final state if a stage did not finish.

    With a shard deployment and more than one shard, the shards first run as flow runs of it (flows/fan_out.py), on
    the pool's workers, before the first of them is due here, where each is then restored from the remote.
    """
    outcomes: dict[str, str] = {}
    order = execution_order(stage_graph(run_dir))
    shards = shard_stages(order) if shard_deployment else []
    # One stage after another: two `dvc repro` at once in one workspace would fight over DVC's lock.
    for stage in order:
        if stop.is_set():
            return outcomes, Cancelled(message=f"interrupted (Ctrl-C) before stage {stage}, which did not start")
        if len(shards) > 1 and stage == shards[0]:
            try:
                fan_out(run_dir, root or run_dir, shards, shard_deployment, get_run_logger(), stop)
            except ShardFailed as err:  # or Ctrl-C while the shards ran: their flow runs go on, on their workers
                return outcomes, (Cancelled if stop.is_set() else Failed)(data=err, message=str(err))
        state = stage_task(stage)(str(run_dir), stage, return_state=True)
        if state.is_completed():
            run: StageRun = state.result()
            outcomes[stage] = run.outcome
            continue
        err = state.result(raise_on_failure=False)  # the task's StageFailed, as it returned it
        message = str(err) if isinstance(err, StageFailed) else f"stage {stage}: {state.name} ({state.message})"
        final = Cancelled if state.is_cancelled() else Failed
        return outcomes, final(data=err if isinstance(err, Exception) else None, message=message)
    return outcomes, None


@flow(name="lesson2")
def lesson2(
    workspace: str = ".",
    overrides: ParamsOverride | None = None,
    set_params: list[str] | None = None,
    record_experiment: bool = True,
    shard_deployment: str | None = None,
) -> dict[str, str]:
    """Reproduce the DAG in workspace with params.yaml keys overridden for this run.

    overrides: params.yaml's sections and keys, each optional and typed as params.yaml's (Prefect's form and schema),
    e.g. {"train": {"head": "last_layer"}}. set_params: the same as `dvc exp run -S` takes them, e.g.
    ["train.head=last_layer", "train.phases=[{lr:0.001,epochs:3}]"]. A run with overrides runs in its own worktree
    (flows/run_workspace.py): the workspace's files stay as they are. Records the run as a DVC experiment named after
    the flow run; returns each stage's outcome. A stage that fails (or Ctrl-C) ends the flow Failed (Cancelled), its
    message `stage <stage> failed: <the stage's error line>`. shard_deployment: a deployment of the features-shard
    flow (e.g. "features-shard/gpu-pool"); with it and more than one features.shards, each shard runs as a flow run of
    it on that pool's workers, joined through the DVC remote (docs/shards.md); without it the shards run here, in
    order.
    """
    quiet_failed_state_echo()
    root = Path(workspace)
    run_name = flow_run.get_name() or "lesson2"
    try:
        dotted = run_overrides(overrides, set_params)
        with stop_requests() as stop, hold_workspace(root, f"flow run {run_name}"):
            return _run(root, run_name, dotted, record_experiment, stop, shard_deployment)
    except (StageError, WorkspaceBusy) as err:  # explained in a sentence (a refused override, a busy workspace)
        return Failed(data=err, message=str(err))


def _run(
    root: Path,
    run_name: str,
    overrides: dict[str, Any],
    record_experiment: bool,
    stop: threading.Event,
    shard_deployment: str | None = None,
) -> dict[str, str] | State:
    """The flow's body, holding the workspace: check, run the stages where they belong, record, publish."""
    logger = get_run_logger()
    # Everything that can be refused is checked here, before any stage touches the workspace.
    original, data = read_params_file(root)
    merged, _ = validated_params(data, overrides)
    name = None
    if record_experiment:
        name = free_name(root, experiment_name(run_name), (flow_run.get_id() or "run")[:8])
    for stale in remove_stale_runs(root):
        logger.info("removed the worktree %s that a killed run left under %s", stale, RUNS_DIR)
    own = params_file(original, overrides) if overrides else None
    with run_workspace(root, experiment_name(run_name), own) as run_dir:
        if run_dir != root:
            logger.info("overrides: this run's stages run in its own worktree %s", run_dir)
        outcomes, unfinished = _run_stages(run_dir, stop, root, shard_deployment)
        if unfinished:
            return unfinished
        if stop.is_set():
            return Cancelled(message="interrupted (Ctrl-C) after the last stage; the run is not recorded")
        try:
            experiment = save_experiment(run_dir, name, on_line=logger.info) if name else None
        except ExperimentNotSaved as err:
            return Failed(data=err, message=str(err).splitlines()[0])
        if experiment:
            logger.info("recorded as DVC experiment %s (%s)", experiment.name, experiment.commit)
        publish_artifacts(root, run_dir, run_name, merged, overrides, outcomes, experiment)
        if reminder := push_reminder(run_dir, outcomes):
            logger.info(reminder)
    return outcomes


def push_reminder(run_dir: Path, outcomes: Mapping[str, str]) -> str | None:
    """DVC's push hint, once per run (each `dvc repro` prints it, and the flow drops it there): only when the workspace
    has a remote to push to and a stage left something new in the cache."""
    remote = default_remote(run_dir)
    if remote is None or set(outcomes.values()) <= {UP_TO_DATE}:
        return None
    return f"{PUSH_HINT} (remote {remote}: `dvc push --run-cache` shares the run-cache too)"


def run_here(workspace: str, set_params: list[str], shard_deployment: str | None = None) -> tuple[int, str]:
    """Run the flow in this process; its exit status and verdict: each stage's outcome, or why it stopped."""
    try:
        state = lesson2(
            workspace=workspace, set_params=set_params or None, shard_deployment=shard_deployment, return_state=True
        )
    except KeyboardInterrupt:  # Ctrl-C before the flow could take it over (while Prefect's server starts)
        return INTERRUPTED_STATUS, "interrupted (Ctrl-C) before the flow started; nothing ran"
    if state.is_completed():
        outcomes = state.result()
        width = max(map(len, outcomes))
        return 0, "\n".join(f"{stage:<{width}}  {outcome}" for stage, outcome in outcomes.items())
    return (INTERRUPTED_STATUS if state.is_cancelled() else 1), state.message or state.name


def command_line(argv: list[str]) -> argparse.Namespace:
    """`python -m flows.lesson2 [WORKSPACE] [-S KEY=VALUE ...]`, -S as `dvc exp run -S` takes it."""
    parser = argparse.ArgumentParser(prog="python -m flows.lesson2", description="Run the lesson2 flow once.")
    parser.add_argument("workspace", nargs="?", default=".", help="the project checkout to run in (default: .)")
    parser.add_argument(
        "-S",
        "--set-param",
        dest="set_params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml key for this run only, as `dvc exp run -S` does, e.g. -S train.head=last_layer "
        "-S 'train.phases=[{lr:0.001,epochs:3}]'; the run runs in its own git worktree",
    )
    parser.add_argument(
        "--shard-deployment",
        metavar="FLOW/DEPLOYMENT",
        help="with more than one features.shards, run each shard as a flow run of this deployment (e.g. "
        "features-shard/gpu-pool) on its pool's workers, joined through the DVC remote (docs/shards.md)",
    )
    return parser.parse_args(argv)


def refused_overrides(workspace: str, set_params: list[str]) -> str | None:
    """Why the -S overrides would be refused, checked before Prefect's temporary server starts (30 s); None if not."""
    try:
        _, data = read_params_file(Path(workspace))
        validated_params(data, run_overrides(None, set_params))
    except StageError as err:
        return str(err)
    return None


def main() -> None:
    """`make run`: the flow in a session of its own, so that Ctrl-C reaches it as one orderly stop (interruption.py).

    The verdict is printed last, after the flow's process has exited (Prefect's temporary server logs its stop then).
    """
    args = command_line(sys.argv[1:])
    if VERDICT_FD in os.environ:  # the flow's own process, started below
        with os.fdopen(int(os.environ.pop(VERDICT_FD)), "w") as verdict:
            status, said = run_here(args.workspace, args.set_params, args.shard_deployment)
            verdict.write(said)
        sys.exit(status)
    refused = refused_overrides(args.workspace, args.set_params) if args.set_params else None
    if refused:
        print(refused, file=sys.stderr)
        sys.exit(1)
    status, said = run_in_own_session([sys.executable, "-m", "flows.lesson2", *sys.argv[1:]], VERDICT_FD)
    if said:  # nothing when the flow's process died before it could say (killed, or a crash with its traceback)
        print(said, file=sys.stdout if status == 0 else sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
