"""Dogs vs. Cats with params.yaml as committed gives, byte for byte, what it gave before the pipeline took any dataset.

The figures are the committed reference run at commit a5a6305 (before issue 14): its dvc.lock's md5s of the
manifests, the features and the submission, and its metrics/train.json and metrics/clip.json, as a fresh clone's
`make run` wrote them on the machine its models/head.run.json names (an AVX-512 Xeon, 2 cores). What needs no
TensorFlow (the archive, the manifests) holds on any CPU; the features and everything after them hold only on a CPU
with the same SIMD extensions (README.md, "What the repository holds"): oneDNN picks other kernels elsewhere and the
last bits move, so there those checks are skipped, saying why.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bench.workspace import make_workspace as copy_project
from tasks.lineage.digests import file_md5
from tasks.lineage.run_context import cpu_simd
from tests.support.workspace import PROJECT, TEST_FILES, dvc, stages_ran

ALL_STAGES = ["download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"]
# dvc.lock at a5a6305: these hold wherever Python and zlib run, as no TensorFlow is involved.
BEFORE_FEATURES = {
    "data/organized.csv": "0fc317bb88ac95065627620e5d339246",
    "data/split.csv": "8aa0cda5ea83d4326f344087dcc7aef6",
}
# dvc.lock and metrics/ at a5a6305: these hold on a CPU with the recording machine's SIMD extensions.
# data/features is now features@0's data/features/0 (features.shards: [0]): the same files, so the same .dir md5.
FROM_FEATURES = {
    "data/features/0": "bfe1a9edf00e4fd7161951a1c90fd15b.dir",
    "data/submission/submission.csv": "d642d80340ea48036f3ac8676955e9f9",
}
TRAIN_METRICS = {"val_accuracy": 0.85, "val_log_loss": 0.5354815522489667}
CLIP_METRICS = {"val_log_loss_clipped": 0.5354815506330123}
# models/head.run.json's hardware.cpu_simd at a5a6305: the CPU the figures above were recorded on.
RECORDED_SIMD = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"]


def locked_md5s(workspace: Path) -> dict[str, str]:
    """Each output's md5 in the workspace's dvc.lock."""
    stages = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One `dvc repro` of a copy of the project with params.yaml exactly as committed (no test's small sizes), and
    what DVC said: each test checks the stages it needs, so a later stage's failure hides no earlier difference."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    workspace = copy_project(tmp_path_factory.mktemp("defaults") / "ws", params, TEST_FILES)
    return workspace, dvc(workspace, "repro", check=False)


def test_the_archive_and_manifests_are_the_ones_before(default_run: tuple[Path, subprocess.CompletedProcess]):
    workspace, run = default_run
    assert stages_ran(run.stdout)[:3] == ALL_STAGES[:3], run.stdout + run.stderr
    locked = locked_md5s(workspace)
    for path, md5 in BEFORE_FEATURES.items():
        assert (locked[path], file_md5(workspace / path)) == (md5, md5), path
    classes = json.loads((workspace / "data/classes.json").read_text())
    assert classes["classes"] == ["cats", "dogs"]  # cats 0, dogs 1, as the targets always were
    assert classes["submission"]["header"] == ["id", "label"] and classes["submission"]["columns"] == ["dogs"]


def test_features_metrics_and_submission_are_the_ones_before(default_run: tuple[Path, subprocess.CompletedProcess]):
    if cpu_simd() != RECORDED_SIMD:
        pytest.skip(f"this CPU's SIMD extensions {cpu_simd()} are not the reference run's {RECORDED_SIMD}")
    workspace, run = default_run
    assert run.returncode == 0 and stages_ran(run.stdout) == ALL_STAGES, run.stdout + run.stderr
    locked = locked_md5s(workspace)
    assert {path: locked[path] for path in FROM_FEATURES} == FROM_FEATURES
    assert file_md5(workspace / "data/submission/submission.csv") == FROM_FEATURES["data/submission/submission.csv"]
    trained = json.loads((workspace / "metrics/train.json").read_text())
    assert {key: trained[key] for key in TRAIN_METRICS} == TRAIN_METRICS  # exact: the same bits, not nearly
    clipped = json.loads((workspace / "metrics/clip.json").read_text())
    assert {key: clipped[key] for key in CLIP_METRICS} == CLIP_METRICS
    submission = (workspace / "data/submission/submission.csv").read_text().splitlines()
    assert submission[0] == "id,label" and len(submission) == 51
