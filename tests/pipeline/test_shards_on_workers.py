"""The conv pass fanned out for real: a Prefect server and moto's S3 on loopback, two process workers each with its
own checkout, the lesson2 flow as coordinator (python -m flows.lesson2 --shard-deployment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from tests.support.prefect_server import PrefectServer, prefect_server
from tests.support.s3_remote import add_remote
from tests.support.workspace import PROJECT, dvc, make_workspace, run_tool

SHARD_DEPLOYMENT = "features-shard/local-pool"
TINY = {"features": {"image_size": 32}}
CONV_SUBSETS = ("train", "valid", "test")
RUN_TIMEOUT = 420  # a hang fails the test, not the suite


def coordinator(workspace: Path, server: PrefectServer, log: Path) -> subprocess.Popen:
    """The lesson2 flow in workspace, fanning the shards out to the local pool's workers."""
    args = [sys.executable, "-m", "flows.lesson2", str(workspace), "--shard-deployment", SHARD_DEPLOYMENT]
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=workspace, env=server.env, stdout=out, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, log: Path, server: PrefectServer) -> str:
    """Wait for the coordinator; its output, asserting it succeeded."""
    try:
        process.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    said = log.read_text()
    assert process.returncode == 0, f"{said}\n{server.tail()}"
    return said


def shard_runs(server: PrefectServer) -> list[dict]:
    """Every flow run of the features-shard flow, oldest first."""
    body = {"flows": {"name": {"any_": ["features-shard"]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return server.api("POST", "/flow_runs/filter", body)


def worker_of(server: PrefectServer, flow_run_id: str) -> str:
    """The name of the worker that ran the flow run, from the event its worker emitted when it submitted it."""
    body = {
        "filter": {
            "event": {"name": ["prefect.worker.submitted-flow-run"]},
            "related": {"id": [f"prefect.flow-run.{flow_run_id}"]},
        }
    }
    (event,) = server.api("POST", "/events/filter", body)["events"]
    return event["resource"]["prefect.resource.name"]


def joined(workspace: Path, shards: int, subset: str) -> np.ndarray:
    """A subset's pool5 features, the shards' rows joined in shard order."""
    return np.concatenate([np.load(workspace / f"data/features/{i}/{subset}/pool5.npy") for i in range(shards)])


def assert_same_features(workspace: Path, shards: int, reference: Path) -> None:
    """The shards' features, joined, are the one-shard run's, byte for byte."""
    for subset in CONV_SUBSETS:
        one = np.load(reference / f"data/features/0/{subset}/pool5.npy")
        both = joined(workspace, shards, subset)
        assert both.dtype == one.dtype and both.tobytes() == one.tobytes(), subset


def cached_files(checkout: Path) -> set[str]:
    """The md5s of the object files in a checkout's DVC cache."""
    root = checkout / ".dvc" / "cache" / "files" / "md5"
    return {p.parent.name + p.name for p in root.rglob("*") if p.is_file()}


def locked_md5(workspace: Path, path: str) -> str:
    """The md5 dvc.lock records for a file inside a stage's output folder, from its .dir listing in the cache."""
    import json

    lock = yaml.safe_load((workspace / "dvc.lock").read_text())
    folder, name = path.rsplit("/", 1)
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == folder:
                md5 = out["md5"]
                listing = workspace / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
                return next(e["md5"] for e in json.loads(listing.read_text()) if e["relpath"] == name)
    raise AssertionError(f"{path} not in dvc.lock")


def kill_a_shard_mid_run(server: PrefectServer, coordinator: subprocess.Popen) -> str:
    """Kill the first shard run whose stage is running (its process group: the flow run and its dvc and stage), as
    a worker host dying would; the stage it ran."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline and coordinator.poll() is None:
        for run in shard_runs(server):
            running = run["state_type"] == "RUNNING" and run["infrastructure_pid"]
            if running and "Running stage 'features@" in server.logs_of(run["id"]):
                pid = int(run["infrastructure_pid"].rsplit(":", 1)[-1])  # [host:]pid
                os.killpg(pid, signal.SIGKILL)  # Prefect starts each flow run in its own session
                return run["parameters"]["stage"]
        time.sleep(0.3)
    raise AssertionError(f"no shard run was seen computing\n{server.tail()}")


def test_shards_run_on_two_workers_join_to_the_one_shard_features_and_survive_a_killed_worker(
    tmp_path: Path, s3_endpoint: str
):
    began = time.monotonic()
    reference = make_workspace(tmp_path / "one-shard", TINY)
    dvc(reference, "repro", "features@0")

    workspace = make_workspace(tmp_path / "ws", {"features": {"image_size": 32, "shards": [0, 1]}})
    (workspace / "prefect.yaml").write_bytes((PROJECT / "prefect.yaml").read_bytes())
    add_remote(workspace, s3_endpoint)
    run_tool(["git", "add", "-A"], workspace)
    run_tool(["git", "commit", "-qm", "deployments and the remote"], workspace)
    # Each worker's own checkout: a clone, as on another host (its origin is the coordinator's checkout).
    checkouts = [tmp_path / f"worker-{i}" for i in range(2)]
    for checkout in checkouts:
        run_tool(["git", "clone", "-q", str(workspace), str(checkout)], tmp_path)

    with prefect_server(tmp_path / "prefect-home") as server:
        server.cli("work-pool", "create", "local", "--type", "process", cwd=workspace)
        server.cli("deploy", "--name", SHARD_DEPLOYMENT, cwd=workspace)
        for i, checkout in enumerate(checkouts):  # one shard at a time each, so that each takes one
            server.start_worker("local", tmp_path, name=f"worker-{i}", limit=1, env={"LESSON2_CHECKOUT": str(checkout)})

        said = finish(coordinator(workspace, server, tmp_path / "first.log"), tmp_path / "first.log", server)
        assert "features@0  restored" in said and "features@1  restored" in said  # the coordinator ran neither
        runs = shard_runs(server)
        assert sorted(run["parameters"]["stage"] for run in runs) == ["features@0", "features@1"]
        assert all(run["state_type"] == "COMPLETED" for run in runs)
        assert sorted(worker_of(server, run["id"]) for run in runs) == ["worker-0", "worker-1"]
        assert_same_features(workspace, 2, reference)
        # Each worker pulled its own shard's photos and the shared inputs into its own checkout's cache, not the rest.
        by_stage = {run["parameters"]["stage"]: worker_of(server, run["id"]) for run in runs}
        for stage, worker in by_stage.items():
            shard = stage.split("@")[1]
            cache = cached_files(tmp_path / worker)
            assert locked_md5(workspace, f"data/shards/{shard}.zip") in cache
            assert locked_md5(workspace, f"data/shards/{1 - int(shard)}.zip") not in cache
            logs = server.logs_of(next(r["id"] for r in runs if r["parameters"]["stage"] == stage))
            assert f"{stage}: computed; pulled " in logs and "photos/s" in logs

        # The same commit and params again: both shards are on the remote, so no shard run starts.
        finish(coordinator(workspace, server, tmp_path / "second.log"), tmp_path / "second.log", server)
        assert len(shard_runs(server)) == 2

        # Three shards (other params, so new shard stages to compute); one shard run is killed mid-stage.
        params = yaml.safe_load((workspace / "params.yaml").read_text())
        params["features"]["shards"] = [0, 1, 2]
        (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        third = coordinator(workspace, server, tmp_path / "third.log")
        killed = kill_a_shard_mid_run(server, third)
        said = " ".join(finish(third, tmp_path / "third.log", server).split())
        # The coordinator names the worker of the killed run (from Prefect's events) and submits it again.
        assert f"{killed}: flow run {killed}-attempt-1 ended Crashed (" in said
        assert "on worker worker-" in said and "submitting it again" in said
        earlier = {run["id"] for run in runs}
        new = [run for run in shard_runs(server) if run["id"] not in earlier]
        stages = [f"features@{i}" for i in params["features"]["shards"]]
        tries = {stage: [run["state_type"] for run in new if run["parameters"]["stage"] == stage] for stage in stages}
        assert tries[killed] == ["CRASHED", "COMPLETED"], tries
        assert all(states == ["COMPLETED"] for stage, states in tries.items() if stage != killed), tries
        assert_same_features(workspace, 3, reference)
    print(f"shards on workers: {time.monotonic() - began:.0f} s")
