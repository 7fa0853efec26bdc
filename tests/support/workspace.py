"""Test workspaces: tiny parameters over params.yaml, in bench's scratch copies of the project (bench/workspace.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.workspace import PROJECT, WORKSPACE_FILES, dvc, merged, run_tool, stages_ran, tool_env, write_paths
from bench.workspace import make_workspace as copy_project

__all__ = [
    "PROJECT",
    "dvc",
    "make_workspace",
    "merged",
    "project_params",
    "run_tool",
    "stages_ran",
    "tool_env",
    "write_params",
    "write_paths",
]

# The tests also run the Prefect flow inside their workspaces, with the checkout's Prefect settings.
TEST_FILES = (*WORKSPACE_FILES, "flows", "prefect.toml")

# Small enough that a full DAG run takes well under a minute on 2 cores, at the pipeline's 224x224.
TINY_PARAMS = {
    "download": {"synthetic": {"seed": 0, "train_per_class": 12, "test_count": 6}},
    "split": {"seed": 1, "valid_size": 6, "sample_train_size": 4, "sample_valid_size": 2},
    "features": {"batch_size": 8},
    "train": {"batch_size": 8},
}


def project_params(override: dict | None = None) -> dict:
    """The project's params.yaml with TINY_PARAMS and override applied."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    return merged(merged(params, TINY_PARAMS), override or {})


def write_params(workspace: Path, override: dict | None = None) -> None:
    """Write params.yaml into workspace."""
    (workspace / "params.yaml").write_text(yaml.safe_dump(project_params(override), sort_keys=False))


def make_workspace(root: Path, override: dict | None = None) -> Path:
    """A fresh git + DVC repository holding a copy of the project (flows included) and tiny params."""
    return copy_project(root, project_params(override), TEST_FILES)
