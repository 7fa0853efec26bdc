"""Three classes from photos to predict's files: features' targets, a head of three outputs, tables and views."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tasks.core.errors import StageError
from tasks.core.params import PhaseParams
from tasks.photos.class_list import ClassList, submission_layout, write_class_list
from tasks.photos.manifest import PhotoEntry, write_manifest
from tasks.photos.photo_store import PhotoStoreWriter
from tests.support.params import features_params, reorganize_params, train_params
from tests.support.workspace import PROJECT, merged, write_paths

CLASSES = ("c1", "c2", "c10")  # natural order, as reorganize sorts them: c10 after c2
COLOURS = {"c1": (220, 40, 40), "c2": (40, 200, 40), "c10": (40, 40, 220)}
TEST_IDS = ["img_10", "img_9", "img_1", "broken"]
SMALL = {"weights": "none", "seed": 0, "image_size": 32, "batch_size": 8}
PATHS = {
    "photos": "photos.zip",
    "organized": "organized",
    "classes": "classes.json",
    "split": "split.csv",
    "features": "features",
    "model": "head.keras",
    "predictions": "predictions",
    "metrics": "metrics",
}


def _photo(path: Path, colour: tuple[int, int, int], seed: int, mode: str) -> bytes:
    """A small photo of one colour with noise, saved at path (grey, mode L, when asked: the CT-scan case)."""
    pixels = np.clip(np.array(colour) + np.random.default_rng(seed).normal(0, 20, (24, 40, 3)), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8))
    buffer = io.BytesIO()
    (image.convert("L") if mode == "L" else image).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Organized photos of three classes (one photo of each grey), a manifest, the class list, paths and params."""
    root = tmp_path_factory.mktemp("three")
    entries = []
    for c, name in enumerate(CLASSES):
        for i in range(8):
            rel = f"train/{name}/{name}.{i}.png"
            data = _photo(root / "organized" / rel, COLOURS[name], 10 * c + i, "L" if i == 0 else "RGB")
            subset = "valid" if i >= 6 else "train"
            entries.append(PhotoEntry(subset, name, f"{name}.{i}", rel, hashlib.md5(data).hexdigest()))
    for n, photo_id in enumerate(TEST_IDS):
        rel = f"test/unknown/{photo_id}.png"
        if photo_id == "broken":
            (root / "organized" / rel).write_bytes(b"not a photo")
            data = b"not a photo"
        else:
            data = _photo(root / "organized" / rel, COLOURS[CLASSES[n % 3]], 100 + n, "RGB")
        entries.append(PhotoEntry("test", "unknown", photo_id, rel, hashlib.md5(data).hexdigest()))
    write_manifest(root / "split.csv", entries)
    with PhotoStoreWriter(root / "photos.zip") as store:  # reorganize's photo store of the same photos
        for entry in entries:
            store.add_bytes(entry.path, (root / "organized" / entry.path).read_bytes())
    write_class_list(root / "classes.json", ClassList(CLASSES, submission_layout(CLASSES, None, None)))
    write_paths(root, PATHS)
    params = merged(yaml.safe_load((PROJECT / "params.yaml").read_text()), {"features": SMALL})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def test_three_classes_go_from_photos_through_a_head_to_predicts_files(workspace: Path, monkeypatch):
    from tasks.features import features
    from tasks.heads.inputs import load_head_data
    from tasks.heads.model_file import save_model
    from tasks.heads.models import inference_copy
    from tasks.predict import main as predict
    from tasks.train import fit_head

    root = workspace
    monkeypatch.chdir(root)  # the index's paths are relative, as in a workspace: predict finds each under organized/
    counts = features(
        root / "split.csv",
        root / "photos.zip",
        Path(PATHS["organized"]),
        root / "features" / "0",
        features_params(**SMALL),
        reorganize_params().max_photo_bytes,
        root / "classes.json",
        0,
    )
    assert counts["train"] == 18 and counts["valid"] == 6 and counts["test"] == 4
    data = load_head_data(root / "features", ["train", "valid"], "linear", features_params(**SMALL))
    (train, valid), (x, x_valid) = data.feature_sets, data.inputs
    assert sorted(set(train.targets.tolist())) == [0, 1, 2]  # c1 0, c2 1, c10 2: the class list's order
    assert [valid.ids[k] for k in np.flatnonzero(valid.targets == 2)] == ["c10.6", "c10.7"]
    params = train_params(head="linear", optimizer="adam", phases=(PhaseParams(lr=0.01, epochs=5),), batch_size=6)
    result = fit_head(x, train.targets, x_valid, valid.targets, params, data.vgg, CLASSES)
    assert list(result.metrics["per_class"]) == list(CLASSES)
    save_model(inference_copy(result.model), root / "head.keras", CLASSES)

    monkeypatch.chdir(root)
    predict()
    valid_csv = pd.read_csv(root / "predictions" / "valid.csv", dtype={"id": str})
    test_csv = pd.read_csv(root / "predictions" / "test.csv", dtype={"id": str})
    assert list(valid_csv.columns) == ["id", "target", "p_c1", "p_c2", "p_c10"]
    assert list(test_csv.columns) == ["id", "p_c1", "p_c2", "p_c10", "undecodable"]
    assert test_csv["id"].tolist() == ["broken", "img_1", "img_9", "img_10"]  # natural order, string ids
    probabilities = test_csv[["p_c1", "p_c2", "p_c10"]].to_numpy()
    np.testing.assert_allclose(probabilities[0], 1 / 3, rtol=1e-6)  # the undecodable photo
    assert test_csv["undecodable"].tolist() == [True, False, False, False]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    confusion = pd.read_csv(root / "metrics" / "confusion.csv")
    assert confusion["actual"].tolist() == ["c1", "c1", "c2", "c2", "c10", "c10"]
    assert set(confusion["predicted"]) <= set(CLASSES)
    assert sorted(p.name for p in (root / "metrics" / "views").iterdir()) == sorted(
        f"{v}.png"
        for v in ("random_correct", "random_incorrect", "confident_correct", "confident_incorrect", "uncertain")
    )

    # The same model against a class list of other classes (one renamed) is refused before anything is written.
    other = ("c1", "c2", "c3")
    write_class_list(root / "classes.json", ClassList(other, submission_layout(other, None, None)))
    (root / "predictions" / "valid.csv").unlink()
    with pytest.raises(StageError, match=r"head\.keras was trained on the classes c1, c2, c10, but the class list"):
        predict()
    assert not (root / "predictions" / "valid.csv").exists()
