"""The lesson2 flow's fan-out: each features shard as its own flow run of the shard deployment
(flows/features_shard.py), on whichever workers of its pool are free, joined through the DVC remote (docs/shards.md).

After split, the coordinator pushes the shards' inputs, submits one run per shard that the remote does not hold yet,
and waits; a run that crashes or fails is submitted again as a new flow run (any worker may take it), up to
SHARD_RETRIES times. Each submission carries an idempotency key made of the commit, the params, the stage and the
attempt, so two coordinators on one commit and params share one flow run per shard instead of both computing it
(Prefect's server returns the existing run for a deployment and key).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.dvc_stages import _dvc_stage, default_remote, on_remote, stream_dvc
from flows.experiment import git, head_commit
from flows.run_workspace import local_changes
from flows.shard_run import written_by_others
from tasks.core.errors import StageError
from tasks.core.params import PARAMS_FILE

SHARD_PREFIX = "features@"
SHARD_RETRIES = 2  # a shard's run is submitted at most 1 + SHARD_RETRIES times
POLL_SECONDS = 2.0
RETRYABLE = frozenset({"FAILED", "CRASHED"})
FINISHED = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
# Where a killed coordinator's rerun finds its earlier attempts' keys taken by failed runs: it skips past those, up to
# this many, without counting them as its own attempts.
MAX_ATTEMPT_NUMBER = 50


class ShardFailed(StageError):
    """A shard kept failing, or the fan-out could not start: the message names the shard, the worker and why."""


def shard_stages(order: list[str]) -> list[str]:
    """The features shard stages (features@0, features@1, ...), in DVC's order."""
    return [stage for stage in order if stage.startswith(SHARD_PREFIX)]


def params_digest(params: bytes, lock: bytes) -> str:
    """A short digest of the run's params.yaml and of the upstream hashes its shards read."""
    return hashlib.sha256(params + b"\0" + lock).hexdigest()[:16]


def idempotency_key(commit: str, digest: str, stage: str, attempt: int) -> str:
    """The key of a shard's flow run: the same for every coordinator on this commit and params, new per attempt."""
    return f"lesson2-shard/{commit}/{digest}/{stage}/attempt-{attempt}"


def unpushed_code(changed: list[str], deps: list[str], written: list[str]) -> list[str]:
    """Changed files (not yet committed) that a shard stage reads as code: a worker runs the commit, without them."""
    code = [dep for dep in deps if dep not in written and dep != str(PARAMS_FILE)] + ["dvc.yaml"]
    return sorted(
        path for path in changed if any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in code)
    )


def failure_message(stage: str, runs: int, flow_run: str, worker: str | None, where: str | None, why: str) -> str:
    """The run's one line when a shard keeps failing: which shard, on which worker and host:pid, and its last word."""
    on = f"worker {worker}" if worker else "an unknown worker"
    process = f"process {where}" if where else "no process recorded"  # Prefect's infrastructure_pid: [host:]pid
    times = f"{runs} time{'s' if runs > 1 else ''}"
    return f"shard {stage} failed {times}; its last flow run {flow_run} ran on {on} ({process}): {why}"


def check_reachable(workspace: Path, commit: str) -> str:
    """Where the workers will fetch commit from; ShardFailed when the checkout's git remotes lack it."""
    remotes = git(workspace, "remote").stdout.split()
    if not remotes:
        return f"no git remote: the workers' checkouts must be clones of {workspace.resolve()} itself"
    for remote in remotes:
        git(workspace, "fetch", "--quiet", remote)
    holders = git(workspace, "branch", "-r", "--contains", commit).stdout.split()
    if not holders:
        raise ShardFailed(
            f"commit {commit[:12]} is on none of the git remotes {', '.join(remotes)} the shard workers fetch from: "
            "push it (git push), then run again"
        )
    return f"on {holders[0]}"


@dataclass
class Submission:
    """A shard's current flow run."""

    stage: str
    attempt: int
    failures: int
    flow_run_id: Any
    progress: float | None = None
    state: str | None = None


def stage_inputs_of(run_dir: Path, stages: list[str]) -> dict[str, str]:
    """Each input of the shard stages that another stage writes, with the out holding it (union over the shards);
    ShardFailed when the stages' code has changes the commit lacks (the workers run the commit)."""
    from dvc.repo import Repo

    found: dict[str, str] = {}
    code: set[str] = set()
    with Repo(str(run_dir)) as repo:
        outs = {other.name: [out.def_path for out in other.outs] for other in repo.index.stages}
        deps = {stage: [dep.def_path for dep in _dvc_stage(repo, stage).deps] for stage in stages}
    changed = local_changes(run_dir)
    for stage in stages:
        written = written_by_others(deps[stage], outs, stage)
        found |= written
        code |= set(unpushed_code(changed, deps[stage], list(written)))
    if code:
        raise ShardFailed(
            f"the shard workers run the commit, which lacks your changes to {', '.join(sorted(code))}: commit them "
            "(and push), then run again"
        )
    return found


class FanOut:
    """One coordinator's fan-out over the shard deployment."""

    def __init__(self, run_dir: Path, root: Path, deployment: str, logger: logging.Logger | logging.LoggerAdapter):
        self.run_dir, self.root, self.deployment, self.logger = run_dir, root, deployment, logger
        self.began = datetime.now(UTC)
        self.digest = ""  # of the params and upstream hashes the shards run on: prepare() sets it

    def prepare(self, stages: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Check and push what the workers need; the shard runs' parameters and the stages to submit."""
        remote = default_remote(self.run_dir)
        if remote is None:
            raise ShardFailed(
                f"fan-out to {self.deployment} needs a DVC remote every worker can reach, and {self.root.resolve()} "
                "has none: `dvc remote add -d` one (docs/remote.md), or run without shard_deployment"
            )
        inputs = stage_inputs_of(self.run_dir, stages)
        commit = head_commit(self.run_dir)
        self.logger.info("commit %s: %s", commit[:12], check_reachable(self.root, commit))
        outs = sorted(set(inputs.values()))
        self.logger.info("pushing the shards' inputs to DVC remote %s: %s", remote, ", ".join(outs))
        returncode, lines, _ = stream_dvc(self.run_dir, ["push", *outs], self.logger.info)
        if returncode:
            raise ShardFailed(f"dvc push {' '.join(outs)} failed: {lines[-1] if lines else returncode}")
        params = (self.run_dir / PARAMS_FILE).read_bytes()
        lock = (self.run_dir / "dvc.lock").read_bytes()
        done = on_remote(self.run_dir, stages)
        for stage in done:
            self.logger.info("%s: already on the remote (its run-cache entry and outputs): not submitted", stage)
        parameters = {"commit": commit, "params": params.decode(), "lock": lock.decode()}
        self.digest = params_digest(params, lock)
        return parameters, [stage for stage in stages if stage not in done]

    def submit(self, stage: str, attempt: int, failures: int, parameters: dict[str, Any]) -> Submission:
        """Start (or join, by its idempotency key) the shard's flow run for this attempt."""
        from prefect.deployments import run_deployment

        while True:
            key = idempotency_key(parameters["commit"], self.digest, stage, attempt)
            run = run_deployment(
                self.deployment,
                parameters={**parameters, "stage": stage},
                timeout=0,
                idempotency_key=key,
                flow_run_name=f"{stage}-attempt-{attempt}",
            )
            stale = run.created and run.created < self.began and run.state and run.state.type.value in RETRYABLE
            if not stale or attempt >= MAX_ATTEMPT_NUMBER:
                break
            attempt += 1  # an earlier coordinator's failed attempt: not this run's to count
        joined = " (joined the run another coordinator started)" if run.created and run.created < self.began else ""
        self.logger.info("%s: flow run %s, attempt %d%s", stage, run.name, attempt, joined)
        return Submission(stage, attempt, failures, run.id)

    def wait(
        self, parameters: dict[str, Any], pending: list[Submission], stop: threading.Event, sleep: Callable = time.sleep
    ) -> None:
        """Poll the shards' runs until all completed; resubmit a failed one; ShardFailed once one keeps failing."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while pending:
                if stop.is_set():
                    raise ShardFailed("interrupted (Ctrl-C) while the shards ran; their flow runs go on")
                for submission in list(pending):
                    run = client.read_flow_run(submission.flow_run_id)
                    self._report(client, submission, run)
                    state = run.state.type.value if run.state else "SCHEDULED"
                    if state not in FINISHED:
                        continue
                    pending.remove(submission)
                    if state == "COMPLETED":
                        continue
                    message = (run.state.message if run.state else None) or run.state_name or state
                    failures = submission.failures + 1
                    if state not in RETRYABLE or failures > SHARD_RETRIES:
                        raise ShardFailed(
                            failure_message(
                                submission.stage,
                                failures,
                                run.name,
                                worker_of(client, run.id),
                                run.infrastructure_pid,
                                message,
                            )
                        )
                    self.logger.warning(
                        "%s: flow run %s ended %s (%s) on worker %s, process %s; submitting it again",
                        submission.stage,
                        run.name,
                        run.state_name,
                        message,
                        worker_of(client, run.id) or "unknown",
                        run.infrastructure_pid or "unknown",
                    )
                    pending.append(self.submit(submission.stage, submission.attempt + 1, failures, parameters))
                if pending:
                    sleep(POLL_SECONDS)

    def _report(self, client: Any, submission: Submission, run: Any) -> None:
        """Log the shard run's state and progress when either changed."""
        progress = latest_progress(client, run.id)
        if (run.state_name, progress) == (submission.state, submission.progress):
            return
        submission.state, submission.progress = run.state_name, progress
        done = f", {progress:.0f}% of its photos" if progress is not None else ""
        self.logger.info("%s: %s%s (flow run %s)", submission.stage, run.state_name, done, run.name)


def latest_progress(client: Any, flow_run_id: Any) -> float | None:
    """The shard run's progress artifact, in percent, if it made one yet."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=["progress"])
        )
    )
    return float(found[-1].data) if found else None


def worker_of(client: Any, flow_run_id: Any) -> str | None:
    """The worker that submitted the flow run, from the event Prefect's workers emit for it (None if not found)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    found = EventFilter(
        event=EventNameFilter(name=["prefect.worker.submitted-flow-run"]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    try:
        events = client.read_events(filter=found, limit=5).events
    except Exception:  # the worker's name is a courtesy in a failure message; never a second failure
        return None
    return events[-1].resource.name if events else None


def fan_out(
    run_dir: Path, root: Path, stages: list[str], deployment: str, logger: Any, stop: threading.Event
) -> list[str]:
    """Run the shard stages as flow runs of the deployment until each is on the remote; the stages submitted."""
    fan = FanOut(run_dir, root, deployment, logger)
    parameters, todo = fan.prepare(stages)
    pending = [fan.submit(stage, 1, 0, parameters) for stage in todo]
    fan.wait(parameters, pending, stop)
    return todo
