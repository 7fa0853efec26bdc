"""Lineage records for the model and the submission: the chain of hashes and params back to the raw archive.

Built and written by the train and submit stages (`record_lineage`), from dvc.yaml and dvc.lock as DVC reads them
(tasks/lineage/dvc_project.py); shown and verified with `python -m tasks.lineage` (tasks/lineage/__main__.py).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from tasks.core.atomic_output import write_json
from tasks.core.errors import StageError
from tasks.core.paths import Paths, load_paths
from tasks.lineage.digests import file_digest, path_digest
from tasks.lineage.dvc_project import DvcProject, read_params, read_project
from tasks.lineage.run_context import PACKAGES, package_version, run_context
from tasks.photos.class_list import read_class_list
from tasks.photos.manifest import read_manifest

SCHEMA = 2  # 2: run facts moved out of the record into their own file (run_facts)
# The stage and params sections whose settings say where the data came from (names fixed across the project).
SOURCE_STAGE, SPLIT_STAGE, FEATURES_STAGE, TRAIN_STAGE = "download", "split", "features", "train"


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


def upstream_chain(lock: dict[str, dict], deps: list[dict], declared: dict[str, str]) -> list[dict]:
    """The dvc.lock stages that produced deps and everything before them, upstream first.

    Each dep's md5 (computed now) must equal what its producer recorded, or the chain would describe other data.
    """
    # An entry of a stage dvc.yaml no longer has (features before it became features@<shard>) is history, not lineage:
    # DVC leaves it in dvc.lock, and its outputs' old hashes would otherwise be taken for the current ones.
    lock = {name: entry for name, entry in lock.items() if name in set(declared.values())}
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

    def producers_of(path: str) -> list[str]:
        """The stage that wrote path, or those dvc.yaml has writing inside the folder path (features@<shard>)."""
        if path in producer:
            return [producer[path]]
        inside = [out for out in declared if out.startswith(path.rstrip("/") + "/") and out in producer]
        return [producer[out] for out in inside]

    def visit(paths: list[str]) -> None:
        for path in paths:
            for name in producers_of(path):
                if name in ordered:
                    continue
                visit([d["path"] for d in lock[name].get("deps", [])])
                if name not in ordered:
                    ordered.append(name)

    visit([d["path"] for d in deps])
    return [lock_stage(name, lock[name]) for name in ordered]


def within(deps: list[dict], declared: dict[str, str]) -> list[dict]:
    """The declared outputs inside a dep that is a folder of them (train's data/features holds data/features/<shard>).

    DVC links such a dep to every stage writing inside it; the chain follows each of those outputs, in dvc.yaml's
    order, as if it were a dep of its own.
    """
    inside = [path for dep in deps for path in declared if path.startswith(dep["path"].rstrip("/") + "/")]
    return [describe(Path(path)) for path in inside]


def describe(path: Path) -> dict:
    """A path with its hashes: md5 (as dvc.lock has it) and, for files, sha256."""
    if not path.exists():
        raise StageError(f"{path} is missing: the lineage record needs every input and output of the stage")
    return {"path": path.as_posix(), **path_digest(path)}


def source_of(download: dict) -> dict:
    """Where the raw archive came from: the competition, a local zip or folder, or a synthetic seed and counts."""
    kind = download.get("source")
    if kind == "synthetic":
        return {"kind": "synthetic", **download.get("synthetic", {})}
    if kind == "archive":
        return {"kind": "archive", "path": download.get("path")}
    if kind == "folder":
        return {"kind": "folder", "path": download.get("path"), "test_path": download.get("test_path")}
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


def class_list_record(path: Path) -> dict:
    """The classes in target order, the submission's header and the class each of its columns holds (class_list.py)."""
    class_list = read_class_list(path)
    layout = class_list.submission
    submission = {"header": list(layout.header), "columns": list(layout.columns), "source": layout.source}
    return {"classes": list(class_list.classes), "submission": submission}


def locked_stages(project: DvcProject) -> dict[str, dict]:
    """dvc.lock's stages; a stage run outside `dvc repro` finds none and cannot chain its inputs."""
    if project.lock is None:
        raise StageError("dvc.lock not found: run the pipeline with `dvc repro` so the lineage reaches the raw archive")
    return project.lock


def without_run_facts(lock: dict[str, dict], run_facts: frozenset[str]) -> dict[str, dict]:
    """dvc.lock's stages less the run-facts outputs: a record that hashed them would fail to verify after a rerun."""
    return {
        name: entry | {"outs": [out for out in entry.get("outs", []) if out["path"] not in run_facts]}
        for name, entry in lock.items()
    }


def build_record(
    stage: str, artifact: Path, record_path: Path, run_path: Path, paths: Paths, project: DvcProject
) -> dict:
    """The lineage record of artifact, an output of stage, which has just run (so it is not yet in dvc.lock).

    A function of the stage's inputs alone (hashes, params, weights' identity), so a rerun on identical inputs writes
    identical bytes and nothing downstream goes stale; what varies by run goes to run_path (run_facts).
    """
    spec = project.stage(stage)
    deps = [describe(Path(p)) for p in spec.deps]
    declared = project.producers()
    lock = without_run_facts(locked_stages(project), project.run_facts())
    upstream = upstream_chain(lock, deps + within(deps, declared), declared)
    own_outs = [p for p in spec.outputs if p not in {record_path.as_posix(), *spec.run_facts}]
    links = {link["name"]: link for link in upstream}
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "artifact": describe(artifact),
        "stage": {
            "name": stage,
            "cmd": spec.cmd,
            "params": read_params(spec),
            "deps": deps,
            "outs": [describe(Path(p)) for p in own_outs],
        },
        "upstream": upstream,
        "run_facts": run_path.as_posix(),
    }
    if paths.classes in spec.deps:  # the stages that read the class list (train, submit): index <-> name, on record
        record["classes"] = class_list_record(Path(paths.classes))
    params_of = lambda name: links[name]["params"] if name in links else {}  # noqa: E731
    if SOURCE_STAGE in links:
        raw = links[SOURCE_STAGE]["outs"][0]
        record["source"] = source_of(params_of(SOURCE_STAGE).get("download", {})) | {"archive": raw}
    if SPLIT_STAGE in links:
        manifest = Path(paths.split)  # split's manifest; its other output is the shards' photo stores
        record["split"] = params_of(SPLIT_STAGE).get("split", {}) | {"counts": split_counts(manifest)}
    shards = [name for name in links if name.split("@")[0] == FEATURES_STAGE]  # features@0, features@1, ...
    if shards:
        features = params_of(shards[0]).get("features", {})
        keras_version = package_version(PACKAGES["keras"])
        record["features"] = {
            "outs": [out for name in shards for out in links[name]["outs"]],
            "vgg16": weights_identity(str(features.get("weights")), int(features.get("seed", 0)), keras_version),
        }
    metrics_paths = list(spec.metrics)
    for name in links:
        metrics_paths += project.stage(name).metrics
    record["metrics"] = {
        p: json.loads(Path(p).read_text()) for p in metrics_paths if p.endswith(".json") and Path(p).is_file()
    }
    if stage != TRAIN_STAGE and TRAIN_STAGE in links:
        # The model's record is a dep of this stage in dvc.yaml: should it ever change, DVC reruns this stage.
        model_lineage = Path(paths.model_lineage)
        record["model"] = {"lineage_path": model_lineage.as_posix(), "lineage": json.loads(model_lineage.read_text())}
    return record


def run_facts_for(record: dict, record_path: Path, paths: Paths) -> dict:
    """This run's facts (time, git, versions, hardware, flow run), naming the record it wrote by its md5.

    A downstream stage's facts keep a copy of the training run's facts as they were when it ran: a later rerun of
    train (same model, same record) replaces models' run facts, and these still say what the original run was.
    """
    facts: dict[str, Any] = {"record": {"path": record_path.as_posix(), "md5": file_digest(record_path)["md5"]}}
    if "model" in record:
        model_run = Path(paths.model_run)
        facts["model_run"] = json.loads(model_run.read_text()) if model_run.is_file() else None
    return facts | run_context()


def record_lineage(stage: str, artifact: Path, record_path: Path, run_path: Path) -> dict:
    """Write artifact's lineage record to record_path and this run's facts to run_path; return the record."""
    paths = load_paths()
    record = build_record(stage, artifact, record_path, run_path, paths, read_project())
    write_json(record_path, record)
    write_json(run_path, run_facts_for(record, record_path, paths))
    print(f"{stage}: lineage of {artifact} written to {record_path}, this run's facts to {run_path}")
    return record
