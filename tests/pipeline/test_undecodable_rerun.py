"""Features rerun on identical inputs, undecodable photos among them, writes byte-identical outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from tests.support.bad_inputs import encoded, photo_pixels, synthetic_with_bad_photos, truncated_jpeg
from tests.support.workspace import dvc, make_workspace, stages_ran

PARAMS = {
    "download": {"source": "archive", "synthetic": {"train_per_class": 4, "test_count": 2}},
    "split": {"seed": 1, "valid_size": 2, "sample_train_size": 2, "sample_valid_size": 1},
    "features": {"batch_size": 4, "max_undecodable": 3},
}


def _digests(folder: Path) -> dict[str, str]:
    """md5 of every file under folder, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _features_lock(ws: Path) -> list[dict]:
    """features' outs in dvc.lock (path, md5, size, files)."""
    return yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["features@0"]["outs"]


def test_features_forced_twice_on_undecodable_photos_gives_identical_outputs(tmp_path: Path):
    sixteen_bit = encoded(Image.fromarray(photo_pixels(3)[..., 0].astype(np.uint16) * 257), "PNG")
    archive = synthetic_with_bad_photos(
        tmp_path / "competition.zip",
        4,
        2,
        {
            "train/cat.5.jpg": b"text, not a photo",  # Pillow's reason named the BytesIO it read, address and all
            "train/dog.5.jpg": truncated_jpeg(),
            "train/dog.6.jpg": sixteen_bit,  # decoded: a 16-bit photo is scaled, not quarantined
        },
        {"test/3.jpg": b""},
    )
    ws = make_workspace(tmp_path / "ws", {**PARAMS, "download": {**PARAMS["download"], "path": str(archive)}})
    dvc(ws, "repro", "features@0")
    first_lock, first_files = _features_lock(ws), _digests(ws / "data/features/0")
    report = pd.read_csv(ws / "data/features/0/undecodable.csv", dtype=str)
    assert sorted(report["id"]) == ["3", "cat.5", "dog.5"]
    assert not report["reason"].str.contains("0x").any(), report["reason"].tolist()

    forced = dvc(ws, "repro", "--force", "--single-item", "features@0")
    assert stages_ran(forced.stdout) == ["features@0"]
    assert _digests(ws / "data/features/0") == first_files
    assert _features_lock(ws) == first_lock  # same hash in dvc.lock: train and predict stay up to date
