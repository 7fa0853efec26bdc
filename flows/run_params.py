"""Per-run overrides of params.yaml keys: merged and validated before any stage runs, for the run's own worktree."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tasks.core.errors import StageError
from tasks.core.params import PARAMS_FILE, Params, parse_params

# Not params: dvc.yaml's vars declare the paths that lay out the DAG; moving outputs changes the project, not a run.
FIXED_SECTIONS = frozenset({"paths"})


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of params with each dotted key of overrides (e.g. 'train.head') set to its value."""
    merged = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        parts = key.split(".")
        if not key or "" in parts:
            raise StageError(f"override {key!r} is not a dotted params.yaml key such as 'train.head'")
        if parts[0] in FIXED_SECTIONS:
            raise StageError(
                f"override {key}: {parts[0]} are not params but lay out the DAG in dvc.yaml's vars; change them there"
            )
        node = merged
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise StageError(f"override {key}: params.yaml has no section {where} to set it in")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise StageError(f"override {key} names a whole section; override its keys one by one")
        node[parts[-1]] = value
    return merged


def validated_params(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> tuple[dict[str, Any], Params]:
    """Merge overrides into params and validate the result as a stage would; StageError names the bad key."""
    merged = apply_overrides(params, overrides)
    try:
        return merged, parse_params(merged)
    except StageError as err:
        if not overrides:
            raise
        lines = str(err).splitlines()  # one per problem
        raise StageError(
            "\n".join(f"override rejected: {line.removeprefix('params.yaml: ')}" for line in lines)
        ) from None


def read_params_file(workspace: Path) -> tuple[bytes, dict[str, Any]]:
    """params.yaml's exact bytes (to restore) and its parsed content."""
    path = workspace / PARAMS_FILE
    try:
        original = path.read_bytes()
    except FileNotFoundError:
        raise StageError(f"{path} not found: is {workspace} a checkout of this project?") from None
    try:
        data = yaml.safe_load(original)
    except yaml.YAMLError as err:
        raise StageError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise StageError(f"{path} must be a mapping of sections, got {data!r}")
    return original, data


def params_file(merged: Mapping[str, Any]) -> bytes:
    """The merged params as a params.yaml for a run's own worktree (flows/run_workspace.py), key order kept."""
    return yaml.safe_dump(dict(merged), sort_keys=False).encode()
