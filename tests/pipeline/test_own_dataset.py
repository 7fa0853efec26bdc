"""Your own dataset, end to end: each layout of docs/own-dataset.md through `dvc repro` and the Prefect flow.

Three classes drawn by tests/support/datasets.py, in a folder of class folders, a zip with a labels file, and a
Kaggle competition served by the fake Kaggle server under another slug; the CT-scan recipe as the docs write it; and
the real photos of ../shared/data/real-sample sorted into class folders against the competition zip they came from.
Lean: 32 px, a random-init VGG16, four photos of each class. Each layout runs the DAG once, through one of DVC or
the flow, and the other then finds every stage up to date: both read the same dvc.lock, so that proves both.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import shutil
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tasks.vgg.feature_store import read_feature_set
from tests.support import datasets
from tests.support.datasets import Dataset
from tests.support.kaggle_fake import CANARY_KEY, CANARY_USER, CompetitionArchive, FakeKaggle, FakeKaggleServer
from tests.support.kaggle_fixtures import PORT, PORT_LOCK, _wait_for_port_lock
from tests.support.workspace import PROJECT, dvc, make_workspace, merged, run_tool, stages_ran

ALL_STAGES = ["download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"]
LEAN = {"split": datasets.SPLIT, "features": {"image_size": 32, "batch_size": 8}, "train": {"batch_size": 8}}
# Not shipped with the project (DESIGN.md): ../shared beside the checkout, or beside a folder above it (a worktree).
REAL_SAMPLE_IN_SHARED = Path("shared") / "data" / "real-sample" / "dogs-vs-cats-redux-kernels-edition.zip"
REAL_SAMPLE = next((d / REAL_SAMPLE_IN_SHARED for d in PROJECT.parents if (d / REAL_SAMPLE_IN_SHARED).is_file()), None)
KAGGLE_EPS = 1e-15  # Kaggle's bound on a probability before its log


def run_flow(workspace: Path) -> dict[str, str]:
    """The lesson2 flow over workspace, as `make run` runs it; each stage's outcome."""
    from flows.lesson2 import lesson2

    state = lesson2(workspace=str(workspace), return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def hand_log_loss(submission: Path, answers: Path) -> float:
    """Kaggle's multi-class log loss, from the two CSVs alone: each row's probabilities clipped to [eps, 1 - eps] and
    rescaled to sum 1, then the mean of -log of the true class's, the column found by the header's class name."""
    with submission.open() as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    truth = dict(list(csv.reader(answers.open()))[1:])
    p = np.clip(np.array([[float(x) for x in row[1:]] for row in body]), KAGGLE_EPS, 1 - KAGGLE_EPS)
    p /= p.sum(axis=1, keepdims=True)
    true_column = [header.index(truth[row[0]]) - 1 for row in body]
    return float(-np.mean(np.log(p[np.arange(len(body)), true_column])))


def check_outputs(workspace: Path, dataset: Dataset) -> None:
    """What a user of this dataset is promised: its classes, the submission's header and ids, grade's log loss,
    per-class metrics and a confusion matrix that names the classes."""
    classes = json.loads((workspace / "data/classes.json").read_text())
    assert tuple(classes["classes"]) == dataset.classes
    assert tuple(classes["submission"]["header"]) == dataset.header

    submission = workspace / "data/submission/submission.csv"
    with submission.open() as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == dataset.header
    assert tuple(row[0] for row in rows[1:]) == dataset.test_ids
    probabilities = np.array([[float(x) for x in row[1:]] for row in rows[1:]])
    assert probabilities.shape == (len(dataset.test_ids), len(dataset.classes))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)  # clipped, then renormalised

    graded = run_tool(
        [sys.executable, "-m", "tasks.competition.grade", str(submission), str(dataset.answers), "--json"], workspace
    )
    score = json.loads(graded.stdout)
    assert score["photos"] == len(dataset.test_ids)
    assert score["log_loss"] == pytest.approx(hand_log_loss(submission, dataset.answers), rel=1e-9, abs=1e-12)

    trained = json.loads((workspace / "metrics/train.json").read_text())
    assert list(trained["per_class"]) == list(dataset.classes)  # in class order, beside the whole set's figures
    for name, figures in trained["per_class"].items():
        assert figures["photos"] == 1 and 0 <= figures["accuracy"] <= 1 and figures["log_loss"] > 0, (name, figures)
    shown = json.loads(dvc(workspace, "metrics", "show", "--json").stdout)[""]["data"]["metrics/train.json"]["data"]
    assert shown["per_class"] == trained["per_class"]  # dvc metrics show lists them
    with (workspace / "metrics/confusion.csv").open() as handle:
        confusion = list(csv.DictReader(handle))
    assert {row["actual"] for row in confusion} == set(dataset.classes)  # valid holds one photo of each class
    assert {row["predicted"] for row in confusion} <= set(dataset.classes)


def files_as_they_are(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Each file under root: inode, mode, link count and bytes, to show a run left the user's files alone."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            info = path.stat()
            found[str(path.relative_to(root))] = (info.st_ino, info.st_mode, info.st_nlink, path.read_bytes())
    return found


def test_a_folder_of_class_folders_through_the_flow_then_dvc(tmp_path: Path, prefect_harness):
    dataset = datasets.class_folders(tmp_path / "data")
    before = files_as_they_are(dataset.path)
    workspace = make_workspace(tmp_path / "ws", merged(LEAN, dataset.params))
    assert run_flow(workspace) == dict.fromkeys(ALL_STAGES, "ran")
    check_outputs(workspace, dataset)
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout
    assert stages_ran(dvc(workspace, "repro").stdout) == []
    assert files_as_they_are(dataset.path) == before  # copied, never linked, moved or changed


def test_a_labels_file_in_a_zip_through_dvc_then_the_flow(tmp_path: Path, prefect_harness):
    dataset = datasets.labels_file(tmp_path / "data")
    workspace = make_workspace(tmp_path / "ws", merged(LEAN, dataset.params))
    assert stages_ran(dvc(workspace, "repro").stdout) == ALL_STAGES
    check_outputs(workspace, dataset)
    assert run_flow(workspace) == dict.fromkeys(ALL_STAGES, "up to date")


@pytest.fixture
def kaggle_competition(tmp_path: Path, kaggle_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dataset]:
    """The fake Kaggle on localhost:80 serving the 3-class competition under its own slug, and a client set on it."""
    dataset, data = datasets.kaggle_competition(tmp_path / "data")
    fake = FakeKaggle(CompetitionArchive(data, {}), CANARY_USER, CANARY_KEY, competition=datasets.KAGGLE_SLUG)
    with PORT_LOCK.open("w") as lock_file:
        _wait_for_port_lock(lock_file)
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
        monkeypatch.setenv("KAGGLE_USERNAME", CANARY_USER)
        monkeypatch.setenv("KAGGLE_KEY", CANARY_KEY)
        with FakeKaggleServer(fake, port=PORT):
            yield dataset


def test_an_n_class_kaggle_competition_through_the_flow_then_dvc(
    kaggle_competition: Dataset, tmp_path: Path, prefect_harness
):
    workspace = make_workspace(tmp_path / "ws", merged(LEAN, kaggle_competition.params))
    assert run_flow(workspace) == dict.fromkeys(ALL_STAGES, "ran")
    assert (workspace / "data/raw/dogs-vs-cats-redux-kernels-edition.zip").read_bytes() == (
        kaggle_competition.path.read_bytes()
    )
    check_outputs(workspace, kaggle_competition)
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout


def ct_recipe() -> list[list[str]]:
    """The CT-scan recipe's commands, as docs/own-dataset.md shows them (its block after `<!-- ct-recipe -->`)."""
    text = (PROJECT / "docs" / "own-dataset.md").read_text()
    block = re.search(r"<!-- ct-recipe -->\s*```\w*\n(.*?)```", text, re.DOTALL)
    assert block, "docs/own-dataset.md lost its CT-scan recipe block (after <!-- ct-recipe -->)"
    return [shlex.split(line.split("#")[0]) for line in block.group(1).splitlines() if line.startswith("dvc ")]


def test_the_ct_scan_recipe_as_the_docs_write_it(tmp_path: Path):
    """Grayscale photos of 3 synthetic classes, VGG16 cut at an early block, the conv head: offline, as documented."""
    workspace = make_workspace(tmp_path / "ws", LEAN)
    commands = ct_recipe()
    assert commands and all(command[:3] == ["dvc", "exp", "run"] for command in commands)
    for command in commands:
        dvc(workspace, *command[1:])
    applied = yaml.safe_load((workspace / "params.yaml").read_text())  # `dvc exp run -S` leaves its values there
    synthetic = applied["download"]["synthetic"]
    assert synthetic["grayscale"] is True and applied["train"]["head"] == "conv"
    assert (applied["features"]["layer"], applied["features"]["image_size"]) == ("block3_pool", 32)
    classes = json.loads((workspace / "data/classes.json").read_text())["classes"]
    assert len(classes) == synthetic["classes"] == 3
    with zipfile.ZipFile(workspace / "data/raw/dogs-vs-cats-redux-kernels-edition.zip") as raw:
        photos = [name for name in raw.namelist() if name.endswith(".jpg")]
        assert photos and {Image.open(io.BytesIO(raw.read(name))).mode for name in photos} == {"L"}
    # The cache holds the early cut: block3_pool of a 32 px photo is 4 x 4 x 256 (pool5 would be 1 x 1 x 512).
    assert read_feature_set(workspace / "data/features/0", "train").features.shape[1:] == (4, 4, 256)
    assert list(json.loads((workspace / "metrics/train.json").read_text())["per_class"]) == classes
    with (workspace / "data/submission/submission.csv").open() as handle:
        header = next(csv.reader(handle))
    assert sorted(header[1:]) == sorted(classes)  # one probability column per class
    assert "Data and pipelines are up to date" in dvc(workspace, "status").stdout


def manifest_counts(workspace: Path, name: str) -> Counter:
    """(subset, class_name) -> photos in a manifest."""
    with (workspace / name).open() as handle:
        return Counter((row["subset"], row["class_name"]) for row in csv.DictReader(handle))


@pytest.mark.skipif(
    REAL_SAMPLE is None, reason=f"no ../{REAL_SAMPLE_IN_SHARED} beside the project (not shipped with it)"
)
def test_real_photos_in_class_folders_match_the_competition_zip_they_came_from(tmp_path: Path):
    """The 250 real photos sorted into train/cats, train/dogs and test (or with the test photos in a folder of their
    own) give the manifests and the submission ids the competition zip gives (download, reorganize and split only: the
    submission's ids are the manifest's test ids)."""
    archive = shutil.copy(REAL_SAMPLE, tmp_path / "competition.zip")  # the shared file is only ever read
    folder = datasets.unpack_into_class_folders(Path(archive), tmp_path / "sorted")
    # The same photos again, the test photos in a folder of their own beside the class folders (download.test_path).
    apart = shutil.copytree(folder / "train", tmp_path / "apart" / "train")
    tests_apart = shutil.copytree(folder / "test", tmp_path / "test-photos")
    split = {"seed": 42, "valid_size": 40, "sample_train_size": 40, "sample_valid_size": 20}
    runs = {
        "zip": {"download": {"source": "archive", "path": str(archive)}},
        "folder": {
            "download": {"source": "folder", "path": str(folder)},
            "reorganize": {"train": "train", "test": "test", "labels": "", "sample_submission": ""},
        },
        "test apart": {
            "download": {"source": "folder", "path": str(apart.parent), "test_path": str(tests_apart)},
            "reorganize": {"train": "train", "test": "test", "labels": "", "sample_submission": ""},
        },
    }
    found = {}
    for name, override in runs.items():
        workspace = make_workspace(tmp_path / name.replace(" ", "-"), {**override, "split": split})
        assert stages_ran(dvc(workspace, "repro", "split").stdout) == ["download", "reorganize", "split"]
        with (workspace / "data/split.csv").open() as handle:
            test_ids = [row["id"] for row in csv.DictReader(handle) if row["subset"] == "test"]
        classes = json.loads((workspace / "data/classes.json").read_text())
        found[name] = (
            manifest_counts(workspace, "data/organized.csv"),
            manifest_counts(workspace, "data/split.csv"),
            test_ids,
            classes["classes"],
            classes["submission"]["header"],
        )
    organized, _, test_ids, classes, header = found["zip"]
    assert organized == Counter({("train", "cats"): 100, ("train", "dogs"): 100, ("test", "unknown"): 50})
    assert sorted(test_ids, key=int) == [str(i) for i in range(1, 51)] and (classes, header) == (
        ["cats", "dogs"],
        ["id", "label"],
    )
    assert found["folder"] == found["zip"] and found["test apart"] == found["zip"]
