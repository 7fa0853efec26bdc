"""What a run leaves for people in Prefect: its metrics as rows, and a markdown lineage of the model it made."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tasks.core.paths import Paths
from tasks.lineage.dvc_project import read_lock


def metric_rows(metrics_dir: Path) -> list[dict[str, Any]]:
    """One row per scalar in metrics/*.json, named file.key (e.g. train.val_accuracy)."""
    rows = []
    for path in sorted(metrics_dir.glob("*.json")):
        for key, value in json.loads(path.read_text()).items():
            if isinstance(value, int | float | str | bool):
                rows.append({"metric": f"{path.stem}.{key}", "value": value})
    return rows


def locked_hashes(workspace: Path) -> dict[str, str]:
    """Each output path recorded in dvc.lock with its hash: what DVC itself would restore for this run."""
    lock = read_lock(workspace) or {}
    return {out["path"]: out.get("md5", "?") for stage in lock.values() for out in stage.get("outs", [])}


def weights_identity(workspace: Path, model_lineage: str) -> str:
    """Which VGG16 weights the features came from, as the model's lineage record (written by train) names them."""
    record = workspace / model_lineage
    if not record.is_file():
        return "unknown: no model lineage record"
    vgg16 = json.loads(record.read_text()).get("features", {}).get("vgg16", {})
    return vgg16.get("identity", "unknown") + (f", sha256 {vgg16['sha256']}" if "sha256" in vgg16 else "")


def _table(header: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    return [f"| {header[0]} | {header[1]} |", "| --- | --- |", *(f"| {key} | {value} |" for key, value in rows)]


def lineage_markdown(
    *,
    run_name: str,
    workspace: Path,
    paths: Paths,
    merged: Mapping[str, Any],
    overrides: Mapping[str, Any],
    outcomes: Mapping[str, str],
    commit: str,
    changed: list[str],
    experiment: str | None,
    experiment_commit: str | None,
    metrics: list[dict[str, Any]],
) -> str:
    """The run's lineage: data and feature hashes, code commit, experiment, params, weights, and metrics."""
    hashes = locked_hashes(workspace)

    def locked(path: str) -> str:
        return f"`{path}` md5 `{hashes.get(path, 'not in dvc.lock')}`"

    lineage = [
        ("raw archive", locked(paths.raw_archive)),
        ("features", locked(paths.features)),
        ("model", locked(paths.model)),
        ("submission", locked(paths.submission)),
        ("VGG16 weights", weights_identity(workspace, paths.model_lineage)),
        ("code commit", f"`{commit}`" + (f" plus uncommitted changes to {', '.join(changed)}" if changed else "")),
        ("DVC experiment", f"`{experiment}` at `{experiment_commit}`" if experiment else "not recorded"),
    ]
    sections = [f"# lesson2 run `{run_name}`", "", "## Lineage", "", *_table(("what", "identity"), lineage)]
    sections += ["", "## Stages", "", *_table(("stage", "outcome"), list(outcomes.items()))]
    metric_table = _table(("metric", "value"), [(row["metric"], str(row["value"])) for row in metrics])
    sections += ["", "## Metrics", "", *(metric_table if metrics else ["(none written)"])]
    sections += ["", "## Params", ""]
    if overrides:
        sections += ["Overridden for this run: " + ", ".join(f"`{k}={v!r}`" for k, v in overrides.items()), ""]
    sections += ["```yaml", yaml.safe_dump(dict(merged), sort_keys=False).rstrip(), "```", ""]
    return "\n".join(sections)
