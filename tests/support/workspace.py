"""Test workspaces: tiny parameters, a scratch git + DVC repository holding a copy of the project, and CLI runs."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
# What a workspace needs to run the DAG: the code, the DAG, the params and DVC's settings.
WORKSPACE_FILES = ("tasks", "flows", "dvc.yaml", "params.yaml", ".dvcignore")

# Small enough that a full DAG run takes well under a minute on 2 cores, at the pipeline's 224x224.
TINY_PARAMS = {
    "download": {"synthetic": {"seed": 0, "train_per_class": 12, "test_count": 6}},
    "split": {"seed": 1, "valid_size": 6, "sample_train_size": 4, "sample_valid_size": 2},
    "features": {"batch_size": 8},
    "train": {"batch_size": 8},
}


def merge(base: dict, override: dict) -> dict:
    """Deep-merge override into a copy of base."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = (
            merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def project_params(override: dict | None = None) -> dict:
    """The project's params.yaml with TINY_PARAMS and override applied."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    return merge(merge(params, TINY_PARAMS), override or {})


def write_params(workspace: Path, override: dict | None = None) -> None:
    """Write params.yaml into workspace."""
    (workspace / "params.yaml").write_text(yaml.safe_dump(project_params(override), sort_keys=False))


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first, quiet TensorFlow."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_tool(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in cwd, output captured as text."""
    result = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the dvc CLI in workspace."""
    return run_tool([sys.executable, "-m", "dvc", *args], workspace, check)


def stages_ran(output: str) -> list[str]:
    """Names of the stages DVC actually ran, from its `Running stage 'x'` lines."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def make_workspace(root: Path, override: dict | None = None) -> Path:
    """A fresh git + DVC repository holding a copy of the project and tiny params."""
    root.mkdir(parents=True, exist_ok=True)
    for name in WORKSPACE_FILES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    write_params(root, override)
    run_tool(["git", "init", "-q"], root)
    run_tool(["git", "config", "user.email", "tests@example.invalid"], root)
    run_tool(["git", "config", "user.name", "tests"], root)
    dvc(root, "init", "-q")
    shutil.copy2(PROJECT / ".dvc" / "config", root / ".dvc" / "config")
    run_tool(["git", "add", "-A"], root)
    run_tool(["git", "commit", "-qm", "workspace"], root)
    return root
