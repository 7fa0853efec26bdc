"""What a run leaves for people in Prefect: its metrics as rows, a markdown lineage of the model it made, its
learning curves and pictures, and where its submission is."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flows.dvc_stages import RAN, RESTORED, UP_TO_DATE
from tasks.core.paths import Paths
from tasks.lineage.dvc_project import read_lock


def metric_rows(metrics_dir: Path) -> list[dict[str, Any]]:
    """One row per scalar in metrics/**/*.json, named file.key (train.val_accuracy, features/0/precision.backend).

    Each features@<shard> stage writes its own metrics/features/<shard>/ (DVC lets no two stages write one file).
    """
    rows = []
    for path in sorted(metrics_dir.rglob("*.json")):
        name = path.relative_to(metrics_dir).with_suffix("").as_posix()
        for key, value in json.loads(path.read_text()).items():
            if isinstance(value, int | float | str | bool):
                rows.append({"metric": f"{name}.{key}", "value": value})
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


# Prefect colours a task's state by its type alone, and Ran, Restored and Up to date are all COMPLETED (green): the
# report gives each outcome a colour of its own, so a glance at the table tells work done from work skipped.
OUTCOME_MARKS = {RAN: "🟢", RESTORED: "🔵", UP_TO_DATE: "⚪"}


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

    def shards(root: str) -> str:  # features@<shard> writes root/<shard>: one hash each
        inside = [path for path in hashes if path.startswith(root.rstrip("/") + "/")]
        return ", ".join(locked(path) for path in inside) if inside else locked(root)

    lineage = [
        ("raw archive", locked(paths.raw_archive)),
        ("features", shards(paths.features)),
        ("model", locked(paths.model)),
        ("submission", locked(paths.submission)),
        ("VGG16 weights", weights_identity(workspace, paths.model_lineage)),
        ("code commit", f"`{commit}`" + (f" plus uncommitted changes to {', '.join(changed)}" if changed else "")),
        ("DVC experiment", f"`{experiment}` at `{experiment_commit}`" if experiment else "not recorded"),
    ]
    sections = [f"# lesson2 run `{run_name}`", "", "## Lineage", "", *_table(("what", "identity"), lineage)]
    stages = [(stage, f"{OUTCOME_MARKS.get(outcome, '')} {outcome}".strip()) for stage, outcome in outcomes.items()]
    sections += ["", "## Stages", "", *_table(("stage", "outcome"), stages)]
    metric_table = _table(("metric", "value"), [(row["metric"], str(row["value"])) for row in metrics])
    sections += ["", "## Metrics", "", *(metric_table if metrics else ["(none written)"])]
    sections += ["", "## Params", ""]
    if overrides:
        sections += ["Overridden for this run: " + ", ".join(f"`{k}={v!r}`" for k, v in overrides.items()), ""]
    sections += ["```yaml", yaml.safe_dump(dict(merged), sort_keys=False).rstrip(), "```", ""]
    return "\n".join(sections)


# Pictures go into the artifact itself, as data: URIs, which Prefect's UI (3.9's default UI) draws in a markdown
# artifact: they need no file server, no remote and no network, and show wherever the UI is opened. The views are
# kept out of DVC's cache (dvc.yaml: cache: false), so no remote holds them anyway. The server keeps every version of
# an artifact in its database with no size limit of its own, so each picture is scaled to at most this many pixels a
# side and stored as whichever of PNG and JPEG is smaller: a run's pictures come to about 200 KB instead of 1.3 MB.
PICTURE_MAX_SIDE = 1024
JPEG_QUALITY = 85


def _encoded(picture: Any, fmt: str) -> bytes:
    """picture as PNG or as JPEG (transparency flattened onto white, which JPEG cannot hold)."""
    from PIL import Image

    if fmt == "JPEG" and picture.mode != "RGB":
        flat = Image.new("RGB", picture.size, "white")
        flat.paste(picture, mask=picture.convert("RGBA").getchannel("A"))
        picture = flat
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **({"quality": JPEG_QUALITY} if fmt == "JPEG" else {"optimize": True}))
    return buffer.getvalue()


def embedded_picture(path: Path, max_side: int = PICTURE_MAX_SIDE) -> str:
    """A data: URI of the picture at path, scaled to fit max_side, as the smaller of PNG and JPEG."""
    from PIL import Image  # Keras' and TensorFlow's dependency, already in the environment

    with Image.open(path) as opened:
        picture = opened.copy()
    picture.thumbnail((max_side, max_side))
    fmt, data = min(((fmt, _encoded(picture, fmt)) for fmt in ("PNG", "JPEG")), key=lambda pair: len(pair[1]))
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(data).decode('ascii')}"


def history_table(path: Path) -> list[str]:
    """train_history.csv (one row per epoch) as a markdown table, numbers to four significant digits."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return ["(no epochs recorded)"]

    def cell(value: str) -> str:
        try:
            return f"{float(value):.4g}"
        except ValueError:
            return value

    header, *body = rows
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(cell(value) for value in row) + " |" for row in body]


def pictures_markdown(run_name: str, metrics_dir: Path, metrics_label: str) -> str:
    """The run's learning curves as a table and every picture under metrics_dir embedded, each under its name."""
    sections = [f"# lesson2 run `{run_name}`: learning curves and pictures", ""]
    history = metrics_dir / "train_history.csv"
    sections += [f"## Learning curves (`{metrics_label}/train_history.csv`)", ""]
    sections += [*history_table(history), ""] if history.is_file() else ["(not written)", ""]
    for path in sorted(metrics_dir.rglob("*.png")):
        label = f"{metrics_label}/{path.relative_to(metrics_dir).as_posix()}"
        title = path.stem.replace("_", " ")
        sections += [f"## {title} (`{label}`)", "", f"![{title}]({embedded_picture(path)})", ""]
    return "\n".join(sections)


def submission_markdown(
    *, label: str, host: str, location: Path, md5: str, link: str | None, note: str, preview_rows: int = 5
) -> str:
    """Where the run's submission is and what it holds: a link that opens it when there is one, its first rows."""
    with location.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, *body = rows or [[]]
    sections = [f"# Submission `{label}`", ""]
    sections += [f"[Download {label}]({link}) ({note})" if link else note, ""]
    sections += _table(
        ("what", "value"),
        [("rows", str(len(body))), ("md5", f"`{md5}`"), ("on", f"`{host}:{location}`")],
    )
    if header:
        sections += ["", f"First {min(preview_rows, len(body))} rows:", "", "```", ",".join(header)]
        sections += [*(",".join(row) for row in body[:preview_rows]), "```"]
    return "\n".join(sections) + "\n"
