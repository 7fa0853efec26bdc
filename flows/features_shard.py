"""The shard flow: one features@<i> stage on whichever worker takes it, through flows/shard_run.run_shard.

The lesson2 flow starts one run of this flow's deployment per shard (flows/fan_out.py); docs/shards.md. The worker's
checkout is $LESSON2_CHECKOUT where the worker was started with it (two workers on one host, each its own clone),
else the deployment's working directory (the directory `prefect deploy` ran in).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.dvc_stages import StageFailed
from flows.shard_run import PhotoProgress, run_shard
from tasks.core.errors import StageError

CHECKOUT_ENV = "LESSON2_CHECKOUT"
REPORT_KEY = "shard-report"  # every shard run adds a version: Prefect shows the bytes per shard as a history


def shard_checkout() -> Path:
    """This worker's own clone of the project: $LESSON2_CHECKOUT, else the working directory."""
    return Path(os.environ.get(CHECKOUT_ENV) or ".").resolve()


def progress_key(stage: str) -> str:
    """The progress artifact's key for a stage (keys take lowercase letters, digits and dashes)."""
    return "progress-" + "".join(c if c.isalnum() else "-" for c in stage.lower())


@flow(name="features-shard")
def features_shard(commit: str, params: str, stage: str, lock: str | None = None) -> dict:
    """Reproduce one shard stage (features@<i>) at the coordinator's commit with its params.yaml text (overrides
    included) and dvc.lock text, in a worktree of this worker's checkout; pull its inputs from the DVC remote, push
    its outputs and run-cache there. Returns the bytes moved, whether it computed, and its time."""
    logger = get_run_logger()
    checkout = shard_checkout()
    logger.info("%s on %s in %s at commit %s", stage, socket.gethostname(), checkout, commit[:12])
    progress = create_progress_artifact(0.0, key=progress_key(stage), description=f"{stage}: share of photos done")

    def on_progress(line: PhotoProgress, done: float) -> None:
        update_progress_artifact(progress, round(100 * done, 1))

    try:
        report = run_shard(
            checkout,
            commit,
            params,
            stage,
            lock,
            name=f"{stage}-{(flow_run.get_id() or str(os.getpid()))[:8]}",
            on_line=logger.info,
            on_progress=on_progress,
        )
    except StageFailed as err:
        return Failed(data=err, message=str(err).splitlines()[0])
    except StageError as err:  # the commit, the remote or a dvc command: one line that says what to do
        return Failed(data=err, message=str(err))
    update_progress_artifact(progress, 100.0)
    row = {
        "stage": stage,
        "host": socket.gethostname(),
        "computed": report.computed,
        "bytes_pulled": report.bytes_pulled,
        "bytes_pushed": report.bytes_pushed,
        "seconds": round(report.seconds, 1),
    }
    create_table_artifact([row], key=REPORT_KEY, description=f"{stage}: bytes pulled from and pushed to the remote")
    return row
