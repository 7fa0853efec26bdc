"""Scheduled runs for real: prefect.yaml deployed to a Prefect server on loopback, run by a process worker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.prefect_server import prefect_server
from tests.support.workspace import PROJECT, dvc, make_workspace, run_tool

STAGES = ["download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"]
PREFECT = [sys.executable, "-m", "prefect", "--no-prompt"]
RUN_TIMEOUT = 480  # a first run on 2 busy cores; a run that hangs fails the test instead of the suite


def experiments(workspace: Path) -> dict[str, dict]:
    """`dvc exp show`'s experiments by name, each with the params and metrics DVC recorded for it."""
    shown = json.loads(dvc(workspace, "exp", "show", "--json").stdout)
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment.get("revs", []):
                data = revision.get("data") or {}
                found[revision.get("name") or data.get("name")] = data
    return found


def experiment_file(workspace: Path, name: str, path: str) -> str:
    """A file as experiment `name` recorded it, read from its git ref (refs/exps/.../<name>)."""
    refs = run_tool(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], workspace).stdout.split()
    (ref,) = [r for r in refs if r.endswith(f"/{name}")]
    return run_tool(["git", "show", f"{ref}:{path}"], workspace).stdout


def test_a_deployment_runs_on_a_worker_records_an_experiment_then_finds_everything_up_to_date(tmp_path: Path):
    workspace = make_workspace(tmp_path / "ws")
    shutil.copy2(PROJECT / "prefect.yaml", workspace / "prefect.yaml")
    run_tool(["git", "add", "prefect.yaml"], workspace)
    run_tool(["git", "commit", "-qm", "deployments"], workspace)
    committed_params = (workspace / "params.yaml").read_text()
    overrides = {"overrides": {"train": {"phases": [{"lr": 0.1, "epochs": 1}]}, "clip": {"bounds": [0.02, 0.98]}}}

    with prefect_server(tmp_path / "prefect-home") as server:
        server.cli("work-pool", "create", "local", "--type", "process", cwd=workspace)
        # Deployed from the workspace: prefect.yaml has no pull step, so runs start in this directory.
        server.cli("deploy", "--name", "local", cwd=workspace)
        server.start_worker("local", cwd=tmp_path)

        first = server.run_deployment("lesson2/local", workspace, overrides)
        run = server.wait_for_run(first, RUN_TIMEOUT)
        logs = server.logs_of(first)
        assert run["state_type"] == "COMPLETED", f"{run['state_name']}\n{logs}\n{server.tail()}"
        tasks = server.task_runs(first, expected=len(STAGES))
        assert {name: t["state_name"] for name, t in tasks.items()} == dict.fromkeys(STAGES, "Ran")
        assert all(f"{stage}: DVC ran the stage" in logs for stage in STAGES)
        assert "features@0: train 18/18 photos" in logs  # the stage's own progress, streamed into its task's log

        artifacts = server.artifacts(first)
        assert {"lesson2-metrics", "lesson2-lineage", "lesson2-pictures", "lesson2-submission"} <= set(artifacts)
        assert artifacts["lesson2-pictures"]["data"].count("](data:image/") == 6  # five views and the filters
        table = json.loads(artifacts["lesson2-metrics"]["data"])
        metrics = {row["metric"]: row["value"] for row in table}
        assert metrics["clip.lo"] == 0.02 and 0.0 <= metrics["train.val_accuracy"] <= 1.0
        # A run with overrides runs in its own worktree: its dvc.lock is the experiment's, not the workspace's.
        assert not (workspace / "dvc.lock").exists()
        lock = yaml.safe_load(experiment_file(workspace, run["name"], "dvc.lock"))
        archive_md5 = lock["stages"]["download"]["outs"][0]["md5"]
        lineage = artifacts["lesson2-lineage"]["data"]
        assert run["name"] in lineage and archive_md5 in lineage and "train.phases=" in lineage
        assert "data/submission/submission.csv" in artifacts["lesson2-submission"]["data"]

        recorded = experiments(workspace)
        assert run["name"] in recorded
        params = recorded[run["name"]]["params"]["params.yaml"]["data"]
        assert params["train"]["phases"] == [{"lr": 0.1, "epochs": 1}]
        assert recorded[run["name"]]["metrics"]["metrics/clip.json"]["data"]["lo"] == 0.02
        assert (workspace / "params.yaml").read_text() == committed_params  # overrides were for that run only

        second = server.run_deployment("lesson2/local", workspace, overrides)
        again = server.wait_for_run(second, RUN_TIMEOUT)
        logs = server.logs_of(second)
        assert again["state_type"] == "COMPLETED", f"{again['state_name']}\n{logs}\n{server.tail()}"
        tasks = server.task_runs(second, expected=len(STAGES))
        # The same overrides, in a fresh worktree of HEAD (no dvc.lock, no outputs): DVC restores every stage from its
        # run-cache, running none. Before, this read "Up to date", as if the outputs had been there all along.
        assert {name: t["state_name"] for name, t in tasks.items()} == dict.fromkeys(STAGES, "Restored")
        assert all(f"{stage}: DVC restored the stage's outputs" in logs for stage in STAGES)
        assert "Running stage" not in logs
        assert {run["name"], again["name"]} <= set(experiments(workspace))


def test_the_server_refuses_a_bad_override_when_the_run_is_created(tmp_path: Path):
    """The flow's typed `overrides` is the deployment's parameter schema: the server checks a run against it when
    `prefect deployment run` creates it, so a bad value never reaches a worker (none runs here)."""
    workspace = make_workspace(tmp_path / "ws")
    shutil.copy2(PROJECT / "prefect.yaml", workspace / "prefect.yaml")
    with prefect_server(tmp_path / "prefect-home") as server:
        server.cli("work-pool", "create", "local", "--type", "process", cwd=workspace)
        server.cli("deploy", "--name", "local", cwd=workspace)
        (deployment,) = server.api("POST", "/deployments/filter", {})
        assert deployment["enforce_parameter_schema"] is True
        schema = deployment["parameter_openapi_schema"]  # what the UI draws its form from
        assert schema["definitions"]["TrainOverride"]["properties"]["head"]["anyOf"][0]["enum"] == [
            "linear",
            "last_layer",
            "dense",
            "conv",
        ]

        bad = subprocess.run(
            [*PREFECT, "deployment", "run", "lesson2/local", "--param", 'overrides={"train": {"head": "resnet"}}'],
            cwd=workspace,
            env=server.env,
            capture_output=True,
            text=True,
        )
        assert bad.returncode == 1, bad.stdout + bad.stderr
        said = " ".join((bad.stdout + bad.stderr).split())
        assert "Error creating flow run: Validation failed for field 'overrides.train.head'. " in said
        assert "Failure reason: 'resnet' is not one of ['linear', 'last_layer', 'dense', 'conv']" in said
        assert server.api("POST", "/flow_runs/filter", {}) == []  # no run was created

        good = server.run_deployment("lesson2/local", workspace, {"overrides": {"train": {"head": "last_layer"}}})
        run = server.api("GET", f"/flow_runs/{good}")
        assert run["state_type"] == "SCHEDULED" and run["parameters"]["overrides"] == {"train": {"head": "last_layer"}}
        # The -S strings as docs/deployments.md passes them; the flow checks them when it starts.
        server.cli(
            "deployment", "run", "lesson2/local", "--param", 'set_params=["train.head=last_layer"]', cwd=workspace
        )
        runs = server.api("POST", "/flow_runs/filter", {})
        assert sorted(str(r["parameters"].get("set_params")) for r in runs) == ["None", "['train.head=last_layer']"]
