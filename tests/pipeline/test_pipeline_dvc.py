"""The whole DAG through `dvc repro` in a scratch git + DVC repository, and DVC's staleness rules."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.params import NO_LOCAL_ARCHIVE
from tasks.core.paths import DVC_FILE, load_paths
from tasks.vgg.feature_store import FEATURES_FILE, INDEX_FILE, read_feature_set, read_shards, write_index
from tests.support.bad_inputs import one_class_archive
from tests.support.workspace import dvc, make_workspace, stages_ran, write_params

ALL_STAGES = ["download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"]


def test_dag_runs_end_to_end_and_reruns_only_what_changed(workspace: Path):
    first = dvc(workspace, "repro")
    assert stages_ran(first.stdout) == ALL_STAGES

    submission = pd.read_csv(workspace / "data/submission/submission.csv")
    assert list(submission.columns) == ["id", "label"]
    assert submission["id"].tolist() == list(range(1, 7))
    assert submission["label"].between(0.05, 0.95).all()
    receipt = json.loads((workspace / "data/submission/receipt.json").read_text())
    assert receipt["validated"] is True and receipt["sent"] is False and receipt["rows"] == 6
    assert (workspace / "models/head.keras").is_file()
    metrics = json.loads(dvc(workspace, "metrics", "show", "--json").stdout)
    shown = metrics[""]["data"]
    assert 0.0 <= shown["metrics/train.json"]["data"]["val_accuracy"] <= 1.0
    assert shown["metrics/train.json"]["data"]["val_log_loss"] > 0
    assert set(yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]) == set(ALL_STAGES)

    assert stages_ran(dvc(workspace, "repro").stdout) == []
    # The synthetic source reads no local file: download depends on the committed placeholder, which never changes.
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout
    download_deps = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]["download"]["deps"]
    assert NO_LOCAL_ARCHIVE in [dep["path"] for dep in download_deps]

    # A photo replaced by hand: DVC sees reorganize's output changed and checks it out again from its run-cache
    # (the same deps ran before), so no stage runs and the photo is back. (Replaced, not edited in place: the file
    # is a hardlink into DVC's cache, which `dvc unprotect` exists for.)
    photo = workspace / "data/organized/train/cats/cat.1.jpg"
    original = photo.read_bytes()
    photo.unlink()
    photo.write_bytes(b"not the photo")
    restored = dvc(workspace, "repro").stdout
    assert "Stage 'reorganize' is cached - skipping run, checking out outputs" in restored
    assert stages_ran(restored) == []
    assert photo.read_bytes() == original

    # One page with the curves, the confusion matrix, the five validation views and the first layer's filters.
    dvc(workspace, "plots", "show", "-o", "plots_html")
    page = (workspace / "plots_html/index.html").read_text()
    for image in [
        "views_random_correct",
        "views_random_incorrect",
        "views_confident_correct",
        "views_confident_incorrect",
        "views_uncertain",
        "first_layer_filters",
    ]:
        assert f"metrics_{image}.png" in page
    assert '"actual": "cats"' in page and "val_accuracy" in page

    # Switching heads reruns train and what follows, never features.
    features_before = (workspace / "data/features/0/train/pool5.npy").stat().st_mtime_ns
    write_params(workspace, {"train": {"head": "last_layer"}})
    assert stages_ran(dvc(workspace, "repro").stdout) == ["train", "predict", "clip", "submit"]
    assert (workspace / "data/features/0/train/pool5.npy").stat().st_mtime_ns == features_before

    write_params(workspace, {"train": {"head": "last_layer", "dataset": "sample"}})
    assert stages_ran(dvc(workspace, "repro").stdout)[:2] == ["train", "predict"]
    trained = json.loads((workspace / "metrics/train.json").read_text())
    assert (trained["train_photos"], trained["valid_photos"]) == (4, 2)
    assert len(pd.read_csv(workspace / "data/predictions/valid.csv")) == 2
    assert len(pd.read_csv(workspace / "data/predictions/test.csv")) == 6

    # submit reruns only if the clipped CSV's bytes changed: DVC compares hashes, not timestamps.
    write_params(workspace, {"train": {"head": "last_layer", "dataset": "sample"}, "clip": {"bounds": "auto"}})
    assert stages_ran(dvc(workspace, "repro").stdout) in (["clip"], ["clip", "submit"])
    clip = json.loads((workspace / "metrics/clip.json").read_text())
    assert clip["lo"] + clip["hi"] == 1.0 and clip["val_log_loss_clipped"] <= clip["val_log_loss_raw"]


def test_a_different_local_archive_reruns_download_and_everything_after_it(tmp_path: Path):
    # The user's own zip, outside the workspace (as in ~/Downloads), at features' quick image size.
    archive = tmp_path / "downloads" / "dogs-vs-cats-redux-kernels-edition.zip"
    archive.parent.mkdir()
    build_synthetic_archive(archive, seed=0, train_per_class=12, test_count=6)
    override = {"download": {"source": "archive", "path": str(archive)}, "features": {"image_size": 32}}
    workspace = make_workspace(tmp_path / "ws", override)
    assert stages_ran(dvc(workspace, "repro").stdout) == ALL_STAGES
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout

    # The same bytes written again (a fresh copy, a later mtime): DVC hashes the content, so nothing is stale.
    data = archive.read_bytes()
    archive.unlink()
    archive.write_bytes(data)
    later = archive.stat().st_mtime + 60
    os.utime(archive, (later, later))
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout
    assert stages_ran(dvc(workspace, "repro").stdout) == []

    # Different photos at the same path: plain `dvc status` says so, and `dvc repro` reruns download and all after it.
    other = tmp_path / "other.zip"
    build_synthetic_archive(other, seed=1, train_per_class=12, test_count=6)
    other.replace(archive)
    status = dvc(workspace, "status").stdout
    assert f"modified:           {archive}" in status and status.index("download:") < status.index(str(archive))
    assert stages_ran(dvc(workspace, "repro").stdout) == ALL_STAGES
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout
    assert (workspace / "data/raw/dogs-vs-cats-redux-kernels-edition.zip").read_bytes() == archive.read_bytes()


def test_a_failing_stage_stops_the_dag_with_its_message(workspace: Path):
    write_params(workspace, {"split": {"valid_size": 1000}})  # checked when params load, before any work
    result = dvc(workspace, "repro", check=False)
    assert result.returncode != 0
    assert "split.valid_size is 1000 but download.synthetic makes only 24 train photos" in result.stderr
    assert "Traceback" not in result.stderr
    assert stages_ran(result.stdout) == ["download"]
    assert not (workspace / "data").exists() or not any((workspace / "data").rglob("*.zip"))


def test_an_archive_of_one_class_is_refused_at_reorganize_naming_the_class(workspace: Path, tmp_path: Path):
    """An archive of cats only used to give val_accuracy 1.0 and a submission worse than chance, with no message."""
    archive = one_class_archive(tmp_path / "cats-only.zip", "cat", train_per_class=12, test_count=6)
    write_params(workspace, {"download": {"source": "archive", "path": str(archive)}})
    result = dvc(workspace, "repro", check=False)
    assert result.returncode != 0
    assert (
        "error: reorganize: the train folder train holds 1 class ['cats']; a classifier needs at least 2"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert stages_ran(result.stdout) == ["download", "reorganize"]
    assert not (workspace / "data/organized.csv").exists() and not (workspace / "data/classes.json").exists()


def test_split_reports_class_counts_as_a_dvc_metric(workspace: Path):
    """metrics/split.json is listed in dvc.yaml, so `dvc metrics show` shows each subset's classes."""
    dvc(workspace, "repro", "split")
    shown = json.loads(dvc(workspace, "metrics", "show", "--json").stdout)[""]["data"]["metrics/split.json"]["data"]
    assert shown["valid"] == {"cats": 3, "dogs": 3, "smallest_class_share": 0.5}
    assert shown["train"] == {"cats": 9, "dogs": 9, "smallest_class_share": 0.5}
    assert shown["smallest_class_share"] == 0.5 and shown["min_class_share"] == 0.1


def test_a_small_image_size_runs_the_dag_through_train(tmp_path: Path):
    workspace = make_workspace(tmp_path / "ws", {"features": {"image_size": 32}})
    assert stages_ran(dvc(workspace, "repro", "train").stdout) == ALL_STAGES[:5]
    paths = load_paths(workspace / DVC_FILE)
    assert read_feature_set(workspace / paths.features / "0", "train").features.shape == (
        18,
        1,
        1,
        512,
    )  # 24 less 6 valid
    trained = json.loads((workspace / paths.metrics / "train.json").read_text())
    assert trained["train_photos"] == 18 and 0.0 <= trained["val_accuracy"] <= 1.0 and trained["val_log_loss"] > 0
    # train rebuilds VGG16 at the features' size, so DVC must rerun it when the size changes
    locked = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    assert locked["train"]["params"]["params.yaml"]["features.image_size"] == 32
    # paths are templated from dvc.yaml's vars, not locked as params: only params.yaml's knobs are
    assert {file for stage in locked.values() for file in stage["params"]} == {"params.yaml"}
    assert not [key for stage in locked.values() for key in stage["params"]["params.yaml"] if key.startswith("paths")]


def test_two_shards_set_by_exp_run_give_the_one_shard_features_and_model_then_nothing_to_do(tmp_path: Path):
    """`dvc exp run -S 'features.shards=[0,1]'`: one line more in params.yaml, split and both shards rerun, and train
    on the joined shards gets the one-shard features byte for byte, so the same metrics; then `dvc repro` is a no-op."""
    workspace = make_workspace(tmp_path / "ws", {"features": {"image_size": 32}})
    assert stages_ran(dvc(workspace, "repro", "train").stdout) == ALL_STAGES[:5]
    one = workspace / "data/features/0"
    subsets = ("train", "valid", "test", "sample_train", "sample_valid")
    before = {s: ((one / s / FEATURES_FILE).read_bytes(), (one / s / INDEX_FILE).read_bytes()) for s in subsets}
    trained = (workspace / "metrics/train.json").read_bytes()
    params = (workspace / "params.yaml").read_text().splitlines()

    ran = dvc(workspace, "exp", "run", "-S", "features.shards=[0,1]", "train")
    assert stages_ran(ran.stdout) == ["split", "features@0", "features@1", "train"]
    at = params.index("  shards:")
    assert (workspace / "params.yaml").read_text().splitlines() == [*params[: at + 2], "  - 1", *params[at + 2 :]]
    assert sorted(p.name for p in (workspace / "data/shards").iterdir()) == ["0.zip", "1.zip"]
    for subset, (features, index) in before.items():
        joined = read_shards(workspace / "data/features", (0, 1), subset)
        saved = io.BytesIO()
        np.save(saved, np.asarray(joined.features))
        (tmp_path / subset).mkdir()
        write_index(tmp_path / subset, joined.ids, joined.targets.tolist(), joined.paths)
        assert (saved.getvalue(), (tmp_path / subset / INDEX_FILE).read_bytes()) == (features, index), subset
    assert len(read_feature_set(workspace / "data/features/1", "train").ids) > 0  # shard 1 is not empty
    assert (workspace / "metrics/train.json").read_bytes() == trained
    assert stages_ran(dvc(workspace, "repro", "train").stdout) == []
