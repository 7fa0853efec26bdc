"""Lineage records for the model and the submission: the chain of hashes and params back to the raw archive.

Written by the train and submit stages (`record_lineage`), shown and verified (tasks/lineage/check.py) from the shell:
  python -m tasks.lineage show   models/head.keras | data/submission/submission.csv  [--json]
  python -m tasks.lineage verify models/head.keras | data/submission/submission.csv  [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from tasks.core.atomic_output import write_json
from tasks.lineage.digests import file_digest, path_digest
from tasks.core.errors import StageError
from tasks.lineage.check import dvc_cache_dir, verify
from tasks.core.params import PARAMS_FILE
from tasks.photos.manifest import read_manifest
from tasks.lineage.run_context import run_context

SCHEMA = 1
DVC_YAML = Path("dvc.yaml")
LOCK_FILE = Path("dvc.lock")
TEMPLATE = re.compile(r"\$\{\s*([\w.-]+)\s*\}")
# The stage and params sections whose settings say where the data came from (names fixed across the project).
SOURCE_STAGE, SPLIT_STAGE, FEATURES_STAGE, TRAIN_STAGE, SUBMIT_STAGE = "download", "split", "features", "train", "submit"


def lookup(data: dict, dotted: str) -> Any:
    """data["a"]["b"] for "a.b"; KeyError names the whole key."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _entry_path(entry: Any) -> str:
    """A dvc.yaml dep/out entry is a path or {path: options}."""
    return entry if isinstance(entry, str) else next(iter(entry))


def stage_spec(stage: str, params_data: dict, dvc_yaml: Path = DVC_YAML) -> dict[str, Any]:
    """One stage of dvc.yaml with `${...}` resolved from params: deps, outs, metrics, plots and params keys."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    if stage not in stages:
        raise StageError(f"{dvc_yaml} has no stage {stage!r}")
    resolve = lambda text: TEMPLATE.sub(lambda m: str(lookup(params_data, m.group(1))), text)  # noqa: E731
    spec = stages[stage]
    return {
        key: [resolve(_entry_path(entry)) for entry in spec.get(key, [])] for key in ("deps", "outs", "metrics", "plots")
    } | {"params": [p for p in spec.get("params", []) if isinstance(p, str)], "cmd": spec["cmd"]}


def read_lock(lock_file: Path = LOCK_FILE) -> dict[str, dict]:
    """dvc.lock's stages; a stage run outside `dvc repro` finds none and cannot chain its inputs."""
    if not lock_file.is_file():
        raise StageError(f"{lock_file} not found: run the pipeline with `dvc repro` so the lineage reaches the raw archive")
    return yaml.safe_load(lock_file.read_text()).get("stages", {})


def _compact(entry: dict) -> dict:
    """A dvc.lock dep/out without its `hash: md5` marker."""
    return {k: v for k, v in entry.items() if k != "hash"}


def lock_stage(name: str, entry: dict) -> dict:
    """A dvc.lock stage as a lineage link: command, params, deps and outs with their md5s."""
    params = {}
    for values in (entry.get("params") or {}).values():
        params.update(values)
    return {
        "name": name,
        "cmd": entry.get("cmd"),
        "params": params,
        "deps": [_compact(d) for d in entry.get("deps", [])],
        "outs": [_compact(o) for o in entry.get("outs", [])],
    }


def declared_outputs(params_data: dict, dvc_yaml: Path = DVC_YAML) -> dict[str, str]:
    """Every output path dvc.yaml declares -> the stage that makes it."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    made = {}
    for name in stages:
        spec = stage_spec(name, params_data, dvc_yaml)
        made.update({path: name for path in spec["outs"] + spec["metrics"] + spec["plots"]})
    return made


def upstream_chain(lock: dict[str, dict], deps: list[dict], declared: dict[str, str]) -> list[dict]:
    """The dvc.lock stages that produced deps and everything before them, upstream first.

    Each dep's md5 (computed now) must equal what its producer recorded, or the chain would describe other data.
    """
    producer = {out["path"]: name for name, entry in lock.items() for out in entry.get("outs", [])}
    recorded = {out["path"]: out["md5"] for entry in lock.values() for out in entry.get("outs", [])}
    for dep in deps:
        if dep["path"] in declared and dep["path"] not in producer:
            raise StageError(
                f"dvc.lock has no entry for stage {declared[dep['path']]}, which makes {dep['path']}: "
                "run the pipeline with `dvc repro` so the lineage reaches the raw archive"
            )
        if dep["path"] in producer and recorded[dep["path"]] != dep["md5"]:
            raise StageError(
                f"{dep['path']} is not what dvc.lock records for stage {producer[dep['path']]}: "
                "reproduce the pipeline with `dvc repro` so the lineage describes the data actually used"
            )
    ordered: list[str] = []

    def visit(paths: list[str]) -> None:
        for path in paths:
            name = producer.get(path)
            if name is not None and name not in ordered:
                visit([d["path"] for d in lock[name].get("deps", [])])
                if name not in ordered:
                    ordered.append(name)

    visit([d["path"] for d in deps])
    return [lock_stage(name, lock[name]) for name in ordered]


def describe(path: Path) -> dict:
    """A path with its hashes: md5 (as dvc.lock has it) and, for files, sha256."""
    if not path.exists():
        raise StageError(f"{path} is missing: the lineage record needs every input and output of the stage")
    return {"path": path.as_posix(), **path_digest(path)}


def source_of(download: dict) -> dict:
    """Where the raw archive came from: the competition, a local file, or a synthetic seed and counts."""
    kind = download.get("source")
    if kind == "synthetic":
        return {"kind": "synthetic", **download.get("synthetic", {})}
    if kind == "archive":
        return {"kind": "archive", "path": download.get("archive_path")}
    return {"kind": kind, "competition": download.get("competition")}


def split_counts(manifest: Path) -> dict[str, int]:
    """Photos per subset (train, valid, sample_train, sample_valid, test) in the split manifest."""
    counts = Counter(e.subset for e in read_manifest(manifest)) if manifest.is_file() else Counter()
    return dict(counts)


def weights_identity(weights: str, seed: int, keras_version: str | None) -> dict:
    """Which VGG16 weights: a file's sha256, the Keras release for imagenet, or `none` with its init seed."""
    if weights == "none":
        return {"weights": "none", "identity": f"none (random init), seed {seed}, keras {keras_version}"}
    if weights == "imagenet":
        keras_home = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()  # where Keras keeps what it fetched
        found = keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
        identity = {"weights": "imagenet", "identity": f"keras.applications VGG16 imagenet, keras {keras_version}"}
        return identity | ({"path": str(found), "sha256": file_digest(found)["sha256"]} if found.is_file() else {})
    path = Path(weights).expanduser()
    return {"weights": weights, "identity": f"file {path}", "path": str(path), "sha256": file_digest(path)["sha256"]}


def build_record(stage: str, artifact: Path, record_path: Path, params_data: dict, lock: dict[str, dict]) -> dict:
    """The lineage record of artifact, an output of stage, which has just run (so it is not yet in dvc.lock)."""
    spec = stage_spec(stage, params_data)
    deps = [describe(Path(p)) for p in spec["deps"]]
    upstream = upstream_chain(lock, deps, declared_outputs(params_data))
    own_outs = [p for p in spec["outs"] + spec["metrics"] + spec["plots"] if p != record_path.as_posix()]
    links = {link["name"]: link for link in upstream}
    context = run_context()
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "artifact": describe(artifact),
        "stage": {
            "name": stage,
            "cmd": spec["cmd"],
            "params": {key: lookup(params_data, key) for key in spec["params"]},
            "deps": deps,
            "outs": [describe(Path(p)) for p in own_outs],
        },
        "upstream": upstream,
    }
    params_of = lambda name: links[name]["params"] if name in links else {}  # noqa: E731
    if SOURCE_STAGE in links:
        raw = links[SOURCE_STAGE]["outs"][0]
        record["source"] = source_of(params_of(SOURCE_STAGE).get("download", {})) | {"archive": raw}
    if SPLIT_STAGE in links:
        manifest = Path(links[SPLIT_STAGE]["outs"][0]["path"])
        record["split"] = params_of(SPLIT_STAGE).get("split", {}) | {"counts": split_counts(manifest)}
    if FEATURES_STAGE in links:
        features = params_of(FEATURES_STAGE).get("features", {})
        record["features"] = {
            "outs": links[FEATURES_STAGE]["outs"],
            "vgg16": weights_identity(
                str(features.get("weights")), int(features.get("seed", 0)), context["versions"]["keras"]
            ),
        }
    metrics_paths = list(spec["metrics"])
    for name in links:
        metrics_paths += stage_spec(name, params_data)["metrics"]
    record["metrics"] = {
        p: json.loads(Path(p).read_text()) for p in metrics_paths if p.endswith(".json") and Path(p).is_file()
    }
    if stage != TRAIN_STAGE and TRAIN_STAGE in links:
        model_lineage = Path(params_data["paths"]["model_lineage"])
        record["model"] = {"lineage_path": model_lineage.as_posix(), "lineage": json.loads(model_lineage.read_text())}
    if stage == SUBMIT_STAGE:
        record["receipt"] = json.loads(Path(params_data["paths"]["receipt"]).read_text())
    return record | context


def record_lineage(stage: str, artifact: Path, record_path: Path) -> dict:
    """Write artifact's lineage record to record_path (called at the end of a stage's main()); return it."""
    params_data = yaml.safe_load(PARAMS_FILE.read_text())
    record = build_record(stage, artifact, record_path, params_data, read_lock())
    write_json(record_path, record)
    print(f"{stage}: lineage of {artifact} written to {record_path}")
    return record


# --- show ---------------------------------------------------------------------------------------------------------


def _short(entry: dict) -> str:
    """path (md5 prefix[, n files])."""
    extra = f", {entry['nfiles']} files" if "nfiles" in entry else ""
    return f"{entry['path']} (md5 {entry['md5'][:12]}{extra})"


def _flat(params: dict, prefix: str = "") -> list[str]:
    """Nested params as key=value strings."""
    items = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        items += _flat(value, f"{name}.") if isinstance(value, dict) else [f"{name}={value}"]
    return items


def render(record: dict) -> str:
    """The chain from the artifact back to the raw archive, for a person."""
    art = record["artifact"]
    lines = [f"{art['path']}  sha256 {art['sha256']}  md5 {art['md5']}", ""]
    stages = [record["stage"], *reversed(record.get("upstream", []))]
    for link in stages:
        params = ", ".join(_flat(link.get("params", {})))
        lines.append(f"<- {link['name']}: `{link.get('cmd')}`" + (f"  [{params}]" if params else ""))
        for dep in link.get("deps", []):
            lines.append(f"     from {_short(dep)}")
        for out in link.get("outs", []):
            lines.append(f"     made {_short(out)}")
    source = record.get("source")
    if source:
        origin = ", ".join(f"{k} {v}" for k, v in source.items() if k != "archive")
        lines += ["", f"raw archive: {origin}; {_short(source['archive'])}"]
    if "split" in record:
        lines.append("split: " + ", ".join(_flat(record["split"])))
    if "features" in record:
        vgg16 = record["features"]["vgg16"]
        lines.append(f"VGG16 weights: {vgg16['identity']}" + (f", sha256 {vgg16['sha256']}" if "sha256" in vgg16 else ""))
    for path, values in record.get("metrics", {}).items():
        lines.append(f"metrics {path}: " + ", ".join(_flat(values)))
    model = record.get("model", {}).get("lineage")
    runs = [("this stage", record)] + ([("training", model)] if model else [])
    for label, rec in runs:
        git = rec["git"]
        dirty = f"dirty: {', '.join(git['changed'])}" if git["dirty"] else "clean"
        lines += [
            "",
            f"{label} ran at {rec['written_at']}, git {git['commit']} ({dirty})",
            "  versions: " + ", ".join(f"{k} {v}" for k, v in rec["versions"].items()),
            "  hardware: " + ", ".join(f"{k} {v}" for k, v in rec["hardware"].items()),
            f"  Prefect flow run: {rec['prefect_flow_run_id'] or 'none (not run by the flow)'}",
        ]
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------------------------------


def record_path_for(target: Path, params_data: dict) -> Path:
    """The lineage record of a model or submission path (or the record itself when given one)."""
    paths = params_data["paths"]
    records = {paths["model"]: paths["model_lineage"], paths["submission"]: paths["submission_lineage"]}
    name = target.as_posix()
    if name in records.values():
        return target
    if name not in records:
        raise StageError(f"no lineage record is kept for {name}; give one of: {', '.join(records)}")
    return Path(records[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.lineage", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["show", "verify"])
    parser.add_argument("path", type=Path, help="models/head.keras or data/submission/submission.csv (or its record)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    record_path = record_path_for(args.path, yaml.safe_load(PARAMS_FILE.read_text()))
    if not record_path.is_file():
        raise StageError(f"{record_path} not found: reproduce or pull the pipeline first (`dvc repro --pull`)")
    record = json.loads(record_path.read_text())
    if args.command == "show":
        print(json.dumps(record, indent=2) if args.json else render(record))
        return 0
    findings = verify(record, record_path, read_lock() if LOCK_FILE.is_file() else None, dvc_cache_dir())
    failed = [f for f in findings if not f.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        for f in findings:
            print(f"{'ok  ' if f.ok else 'FAIL'}  {f.path}: {f.detail}")
    if failed:
        names = "; ".join(f.path for f in failed)
        artifact = record["artifact"]["path"]
        print(f"verify: {len(failed)} of {len(findings)} checks FAILED for {artifact}: {names}", file=sys.stderr)
        return 1
    print(f"verify: all {len(findings)} recorded hashes match for {record['artifact']['path']}", file=sys.stderr)
    return 0

