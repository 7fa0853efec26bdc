"""Lineage records and the shared S3 remote, on one synthetic `dvc repro` pushed to a loopback S3 server."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from flows.dvc_stages import (
    PUSH_HINT,
    RESTORED,
    UP_TO_DATE,
    execution_order,
    published_link,
    reproduce_stage,
    stage_graph,
)
from tasks.lineage.run_context import package_version
from tests.support.s3_remote import BUCKET, CREDENTIALS, add_remote, workspace_state
from tests.support.workspace import dvc, make_workspace, run_tool, stages_ran

ALL_STAGES = ["download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"]
FLOW_RUN_ID = "0b9d6a52-6c1e-4bd4-9d5e-5f0c3a7e1f11"
MODEL, MODEL_RECORD, MODEL_RUN = "models/head.keras", "models/head.lineage.json", "models/head.run.json"
SUBMISSION, SUBMISSION_RECORD = "data/submission/submission.csv", "data/submission/lineage.json"
SUBMISSION_RUN = "data/submission/run.json"
# The class list reorganize found in the synthetic archive: targets cats 0, dogs 1; its sample's `id,label` is P(dogs).
CLASSES = {
    "classes": ["cats", "dogs"],
    "submission": {"header": ["id", "label"], "columns": ["dogs"], "source": "sample_submission.csv"},
}


def lineage(workspace: Path, *args: str, check: bool = True):
    """Run `python -m tasks.lineage ...` in workspace."""
    return run_tool([sys.executable, "-m", "tasks.lineage", *args], workspace, check)


@pytest.fixture(scope="module")
def origin(tmp_path_factory, s3_endpoint: str) -> Path:
    """One full synthetic run, as if started by a Prefect flow run, committed and pushed with its run-cache."""
    workspace = make_workspace(tmp_path_factory.mktemp("lineage") / "origin")
    add_remote(workspace, s3_endpoint)
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT__FLOW_RUN_ID", FLOW_RUN_ID)
    try:
        assert stages_ran(dvc(workspace, "repro").stdout) == ALL_STAGES
    finally:
        patch.undo()
    run_tool(["git", "add", "-A"], workspace)
    run_tool(["git", "commit", "-qm", "run"], workspace)
    dvc(workspace, "push", "--run-cache")
    return workspace


def lock_stage(workspace: Path, name: str) -> dict:
    return yaml.safe_load((workspace / "dvc.lock").read_text())["stages"][name]


def test_model_record_is_complete(origin: Path):
    record = json.loads((origin / MODEL_RECORD).read_text())
    params = yaml.safe_load((origin / "params.yaml").read_text())
    raw = lock_stage(origin, "download")["outs"][0]
    assert record["source"] == {
        "kind": "synthetic",
        "seed": 0,
        "train_per_class": 12,
        "test_count": 6,
        "classes": 2,
        "grayscale": False,
        "archive": {"path": raw["path"], "md5": raw["md5"], "size": raw["size"]},
    }
    assert record["split"] == {
        **params["split"],
        "counts": {"train": 18, "valid": 6, "sample_train": 4, "sample_valid": 2, "test": 6},
    }
    assert record["features"]["outs"][0]["md5"] == lock_stage(origin, "features@0")["outs"][0]["md5"]
    assert record["classes"] == CLASSES == json.loads((origin / "data/classes.json").read_text())
    assert record["features"]["vgg16"]["identity"] == f"none (random init), seed 0, keras {metadata.version('keras')}"
    upstream = {link["name"]: link for link in record["upstream"]}
    assert list(upstream) == ["download", "reorganize", "split", "features@0"]
    for name in ("download", "split", "features@0"):
        assert upstream[name]["params"] == lock_stage(origin, name)["params"]["params.yaml"]
    assert record["stage"]["params"] == {
        "features.weights": "none",
        "features.seed": 0,
        "features.layer": "block5_pool",
        "features.image_size": 224,
        "features.shards": [0],
        "features.max_undecodable": 10,
        "train": params["train"],
    }
    model_bytes = (origin / MODEL).read_bytes()
    assert record["artifact"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    locked = {out["path"]: out["md5"] for out in lock_stage(origin, "train")["outs"]}
    assert record["artifact"]["md5"] == hashlib.md5(model_bytes).hexdigest() == locked[MODEL]
    upstream_metrics = (
        "metrics/split.json",
        "metrics/features/0/undecodable.json",
        "metrics/features/0/precision.json",
    )
    assert record["metrics"] == {  # its own metrics and those of the stages upstream
        path: json.loads((origin / path).read_text()) for path in ("metrics/train.json", *upstream_metrics)
    }
    # the precision features ran at, as the runtime reported it, beside the one params.yaml asked for
    assert record["metrics"]["metrics/features/0/precision.json"] == {
        "backend": "keras",
        "precision": "float32",
        "precision_used": "float32",
    }
    # The run's facts live beside the record, naming it by its md5; the record holds none of them.
    assert record["run_facts"] == MODEL_RUN
    assert not {"written_at", "git", "versions", "hardware", "prefect_flow_run_id"} & set(record)
    facts = json.loads((origin / MODEL_RUN).read_text())
    assert facts["record"] == {
        "path": MODEL_RECORD,
        "md5": hashlib.md5((origin / MODEL_RECORD).read_bytes()).hexdigest(),
    }
    first_commit = run_tool(["git", "rev-list", "--max-parents=0", "HEAD"], origin).stdout.strip()
    assert (
        facts["git"]["commit"] == first_commit and facts["git"]["dirty"] is True
    )  # ran before the results were committed
    assert "dvc.lock" in facts["git"]["changed"]
    assert facts["versions"] == {
        "python": platform.python_version(),
        # tensorflow-cpu on CPU hosts (the cpu extra), tensorflow on GPU ones
        "tensorflow": package_version(("tensorflow", "tensorflow-cpu")),
        **{name: metadata.version(name) for name in ("keras", "dvc", "prefect")},
    }
    assert facts["hardware"]["cpu_count"] == os.cpu_count() and facts["hardware"]["platform"] == platform.platform()
    assert isinstance(facts["hardware"]["gpus"], list)
    assert facts["prefect_flow_run_id"] == FLOW_RUN_ID


def test_submission_record_chains_through_the_model_to_the_raw_archive(origin: Path):
    record = json.loads((origin / SUBMISSION_RECORD).read_text())
    receipt = json.loads((origin / "data/submission/receipt.json").read_text())
    assert [link["name"] for link in record["upstream"]] == ALL_STAGES[:-1]
    assert (
        record["artifact"]["sha256"]
        == receipt["sha256"]
        == hashlib.sha256((origin / SUBMISSION).read_bytes()).hexdigest()
    )
    assert "receipt" not in record  # the receipt is a run fact (git state, Kaggle's reply): dvc.yaml marks it so
    assert record["model"]["lineage"] == json.loads((origin / MODEL_RECORD).read_text())
    assert record["classes"] == CLASSES  # the submission's header and the class its column holds
    assert MODEL_RECORD in [dep["path"] for dep in record["stage"]["deps"]]  # so DVC reruns submit if it changes
    facts = json.loads((origin / SUBMISSION_RUN).read_text())
    assert facts["model_run"] == json.loads((origin / MODEL_RUN).read_text())  # training's facts as submit found them
    assert facts["prefect_flow_run_id"] == FLOW_RUN_ID
    assert set(record["metrics"]) == {
        "metrics/split.json",
        "metrics/features/0/undecodable.json",
        "metrics/features/0/precision.json",
        "metrics/train.json",
        "metrics/clip.json",
    }
    assert record["source"]["archive"]["md5"] == lock_stage(origin, "download")["outs"][0]["md5"]


def test_show_prints_the_chain_and_json(origin: Path):
    text = lineage(origin, "show", SUBMISSION).stdout
    order = [text.index(f"<- {stage}:") for stage in reversed(ALL_STAGES)]
    assert order == sorted(order)  # submit first, download last: read from the submission back to the archive
    assert "raw archive: kind synthetic, seed 0" in text and FLOW_RUN_ID in text
    assert "classes (2, target = position): 0 cats, 1 dogs" in text.splitlines()
    assert "submission header: id,label (label = P(dogs), from sample_submission.csv)" in text.splitlines()
    assert json.loads(lineage(origin, "show", MODEL, "--json").stdout) == json.loads(
        (origin / MODEL_RECORD).read_text()
    )


def test_console_scripts_work_from_a_folder_inside_the_checkout(origin: Path):
    """lesson2-lineage and lesson2-remote-check find the project's root; a path is taken from where they start."""
    scripts = Path(sys.executable).parent
    record = json.loads((origin / MODEL_RECORD).read_text())
    for folder, path in (("models", "head.keras"), ("data/features", MODEL)):
        shown = run_tool([str(scripts / "lesson2-lineage"), "show", path, "--json"], origin / folder)
        assert json.loads(shown.stdout) == record
    assert "credentials accepted" in run_tool([str(scripts / "lesson2-remote-check")], origin / "data").stdout


def test_verify_passes_on_the_untouched_run(origin: Path):
    for target in (MODEL, SUBMISSION):
        result = lineage(origin, "verify", target, "--json")
        report = json.loads(result.stdout)
        assert report["ok"] is True
        checked = {f["path"] for f in report["findings"]}
        assert {target, "data/features", "data/raw/dogs-vs-cats-redux-kernels-edition.zip", "tasks/train.py"} <= checked
        assert MODEL_RUN in checked and (target == MODEL or SUBMISSION_RUN in checked)


def _replace(path: Path, change: Callable[[bytes], bytes]) -> None:
    """Write changed bytes as a new file: the old one may be a hardlink into the DVC cache, which must stay intact."""
    data = change(path.read_bytes())
    path.unlink()
    path.write_bytes(data)


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def _swap_model(workspace: Path) -> None:
    _replace(workspace / MODEL, lambda data: (workspace / "metrics/train_history.csv").read_bytes())


def _forge_record(workspace: Path) -> None:
    """Swap the model and rewrite its record to match: only dvc.lock's hash of the record can still tell."""
    _swap_model(workspace)
    record = json.loads((workspace / MODEL_RECORD).read_text())
    swapped = (workspace / MODEL).read_bytes()
    for entry in [record["artifact"], *record["stage"]["outs"]]:
        if entry["path"] == MODEL:
            entry.update(md5=hashlib.md5(swapped).hexdigest(), sha256=hashlib.sha256(swapped).hexdigest())
    _replace(workspace / MODEL_RECORD, lambda _: json.dumps(record).encode())


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    record = json.loads(path.read_text())
    change(record)
    _replace(path, lambda _: json.dumps(record, indent=2).encode() + b"\n")


def _fake_model_md5(record: dict) -> None:
    """The model's md5 replaced by another, consistently throughout the (model) record."""
    for entry in [record["artifact"], *record["stage"]["outs"]]:
        if entry["path"] == MODEL:
            entry["md5"] = "0" * 32


TAMPERING = {
    "model swapped": (MODEL, _swap_model, [MODEL]),
    "features edited": (
        SUBMISSION,
        lambda ws: _replace(ws / "data/features/0/test/pool5.npy", _flip_last_byte),
        ["data/features/0/test/pool5.npy (changed)"],
    ),
    "submission altered": (
        SUBMISSION,
        lambda ws: _replace(ws / SUBMISSION, lambda d: d.replace(b",0.", b",0.9", 1)),
        [SUBMISSION],
    ),
    "record forged": (MODEL, _forge_record, [MODEL_RECORD]),
    "embedded model record edited": (
        SUBMISSION,
        lambda ws: _edit_json(ws / SUBMISSION_RECORD, lambda r: _fake_model_md5(r["model"]["lineage"])),
        [SUBMISSION_RECORD, f"{MODEL_RECORD} (embedded copy)"],
    ),
    "run facts edited": (
        MODEL,
        lambda ws: _edit_json(ws / MODEL_RUN, lambda facts: facts.update(prefect_flow_run_id=None)),
        [MODEL_RUN],
    ),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_verify_fails_naming_the_tampered_file(origin: Path, tmp_path: Path, kind: str):
    target, tamper, named = TAMPERING[kind]
    workspace = tmp_path / "copy"
    shutil.copytree(origin, workspace, symlinks=True, copy_function=shutil.copy2)  # a copy: origin stays untouched
    tamper(workspace)
    result = lineage(workspace, "verify", target, check=False)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    for name in named:
        assert any(name in line for line in failed), result.stdout
    assert f"checks FAILED for {target}" in result.stderr


def _verifies(workspace: Path, target: str) -> bool:
    result = lineage(workspace, "verify", target, "--json", check=False)
    assert result.returncode == (0 if json.loads(result.stdout)["ok"] else 1), result.stderr
    return json.loads(result.stdout)["ok"]


def test_records_verify_after_train_reruns_on_the_same_inputs(origin: Path, tmp_path: Path):
    workspace = tmp_path / "copy"
    shutil.copytree(origin, workspace, symlinks=True, copy_function=shutil.copy2)
    records = {path: (workspace / path).read_bytes() for path in (MODEL_RECORD, SUBMISSION_RECORD)}
    first_run = json.loads((workspace / MODEL_RUN).read_text())
    # A forced rerun of train, then one after its model left the workspace and the DVC cache (a lost object).
    assert stages_ran(dvc(workspace, "repro", "--force", "--single-item", "train").stdout) == ["train"]
    assert stages_ran(dvc(workspace, "repro").stdout) == []  # same model, same record: nothing downstream is stale
    assert _verifies(workspace, MODEL) and _verifies(workspace, SUBMISSION)
    model_md5 = next(out["md5"] for out in lock_stage(workspace, "train")["outs"] if out["path"] == MODEL)
    (workspace / MODEL).unlink()
    (workspace / ".dvc/cache/files/md5" / model_md5[:2] / model_md5[2:]).unlink()
    assert stages_ran(dvc(workspace, "repro").stdout) == ["train"]
    assert _verifies(workspace, MODEL) and _verifies(workspace, SUBMISSION)
    # The records are the first run's, byte for byte; the run facts are the last run's, and submit's copy of the
    # training run's facts still says what the run behind the submission was.
    assert {path: (workspace / path).read_bytes() for path in records} == records
    assert json.loads((workspace / MODEL_RUN).read_text())["prefect_flow_run_id"] is None  # not run by the flow
    assert json.loads((workspace / SUBMISSION_RUN).read_text())["model_run"] == first_run
    shown = lineage(workspace, "show", SUBMISSION).stdout
    assert (
        "training, as this stage found it: ran at" in shown
        and "training, rerun since on the same inputs: ran at" in shown
    )
    assert FLOW_RUN_ID in shown
    # A changed model is still caught, from either record.
    _swap_model(workspace)
    assert not _verifies(workspace, MODEL) and not _verifies(workspace, SUBMISSION)


def test_a_record_is_refused_when_the_inputs_are_not_what_dvc_lock_chains(origin: Path, tmp_path: Path, monkeypatch):
    from tasks.core.errors import StageError
    from tasks.core.paths import load_paths
    from tasks.lineage.dvc_project import read_project
    from tasks.lineage.record import build_record

    workspace = tmp_path / "copy"
    shutil.copytree(origin, workspace, symlinks=True)
    monkeypatch.chdir(workspace)
    paths = load_paths()
    project = read_project()
    without_features = dataclasses.replace(project, lock={n: e for n, e in project.lock.items() if n != "features@0"})
    with pytest.raises(StageError, match=r"dvc.lock has no entry for stage features@0, which makes data/features/0"):
        build_record("train", Path(MODEL), Path(MODEL_RECORD), Path(MODEL_RUN), paths, without_features)
    _replace(Path("data/features/0/train/pool5.npy"), _flip_last_byte)
    with pytest.raises(StageError, match=r"data/features/0 is not what dvc.lock records for stage features@0"):
        build_record("train", Path(MODEL), Path(MODEL_RECORD), Path(MODEL_RUN), paths, project)


def _clone(origin: Path, target: Path) -> Path:
    run_tool(["git", "clone", "-q", str(origin), str(target)], origin.parent)
    return target


def test_fresh_clone_restores_every_stage_from_the_remote_without_running_one(origin: Path, tmp_path: Path):
    clone = _clone(origin, tmp_path / "clone")
    assert not (clone / MODEL).exists()
    result = dvc(clone, "repro", "--pull")
    assert stages_ran(result.stdout) == []
    restored = [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Pulling data for stage")]
    assert restored == ALL_STAGES[:-1]  # submit's outputs are small and kept in git, so it is already up to date
    assert (clone / MODEL).read_bytes() == (origin / MODEL).read_bytes()
    assert stages_ran(dvc(clone, "repro").stdout) == []
    for target in (MODEL, SUBMISSION):
        assert json.loads(lineage(clone, "verify", target, "--json").stdout)["ok"] is True


def test_flow_stages_pull_from_the_remote_instead_of_running(origin: Path, tmp_path: Path):
    clone = _clone(origin, tmp_path / "flow-clone")
    runs = [reproduce_stage(clone, stage, on_line=lambda _: None) for stage in execution_order(stage_graph(clone))]
    # DVC's API said so before each stage (flows/dvc_stages.py predicted_outcome): pulled, not run
    assert {run.stage: run.outcome for run in runs} == {
        **dict.fromkeys(ALL_STAGES[:-1], RESTORED),
        "submit": UP_TO_DATE,
    }
    assert all("Pulling data for stage" in run.output for run in runs if run.stage != "submit")
    assert (clone / "data/features/0/train/pool5.npy").read_bytes() == (
        origin / "data/features/0/train/pool5.npy"
    ).read_bytes()


def remote_check(workspace: Path):
    return run_tool([sys.executable, "-m", "tasks.remote.check"], workspace, check=False)


def _assert_fails_and_changes_nothing(clone: Path, dvc_says: str, check_says: str) -> None:
    """dvc pull and dvc repro --pull fail, saying dvc_says; tasks.remote.check says check_says; no file changes."""
    before = workspace_state(clone)
    for args in (["pull"], ["repro", "--pull"]):
        result = dvc(clone, *args, check=False)
        assert result.returncode != 0
        assert dvc_says in result.stderr, result.stderr
        assert stages_ran(result.stdout) == []
    checked = remote_check(clone)
    assert checked.returncode == 2 and check_says in checked.stderr, checked.stderr
    assert workspace_state(clone) == before


def test_wrong_endpoint_fails_clearly_and_leaves_the_workspace_alone(origin: Path, tmp_path: Path, monkeypatch):
    clone = _clone(origin, tmp_path / "wrong-endpoint")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # a closed port needs no retries to be declared unreachable
    dvc(clone, "remote", "modify", "--local", "storage", "endpointurl", "http://127.0.0.1:9")  # the discard port
    _assert_fails_and_changes_nothing(
        clone,
        'Could not connect to the endpoint URL: "http://127.0.0.1:9',
        "at http://127.0.0.1:9): cannot reach the endpoint",
    )


def test_bad_credentials_fail_clearly_and_leave_the_workspace_alone(origin: Path, tmp_path: Path):
    from moto.core.authorization import enable_iam_authentication

    clone = _clone(origin, tmp_path / "bad-credentials")
    assert "credentials accepted" in remote_check(clone).stdout
    with enable_iam_authentication():  # the server now checks keys, and knows none: every key is a wrong one
        _assert_fails_and_changes_nothing(clone, "(403)", "the server refused the credentials (HTTP 403)")


def test_credentials_stay_out_of_the_committed_config(origin: Path):
    config = (origin / ".dvc/config").read_text()
    assert "endpointurl" in config and "s3://" in config
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in config and CREDENTIALS["AWS_ACCESS_KEY_ID"] not in config


def test_the_submission_link_opens_the_csv_it_pushed_to_the_remote(origin: Path, s3_endpoint: str):
    """Last in this module: it takes the submission's object off the shared bucket (the link's push puts it back)."""
    import urllib.request

    import boto3

    from flows.lesson2 import push_reminder

    md5 = next(out["md5"] for out in lock_stage(origin, "clip")["outs"] if out["path"] == SUBMISSION)
    key = f"cache/files/md5/{md5[:2]}/{md5[2:]}"
    boto3.client("s3", endpoint_url=s3_endpoint).delete_object(Bucket=BUCKET, Key=key)
    link = published_link(origin, SUBMISSION, md5, lifetime_s=600)
    assert link.startswith(f"{s3_endpoint}/{BUCKET}/{key}?") and "Signature" in link
    with urllib.request.urlopen(link, timeout=30) as response:  # what a browser does with it: no credentials
        assert response.read() == (origin / SUBMISSION).read_bytes()
    # DVC's push hint, once per run and only with a remote, and only when a stage left something new
    assert push_reminder(origin, {"train": "ran", "clip": "up to date"}).startswith(PUSH_HINT + " (remote storage")
    assert push_reminder(origin, {"train": "up to date"}) is None
