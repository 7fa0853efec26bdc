"""Cached conv features on disk: per subset a float16 pool5.npy and an index.csv of id, target and photo path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

UNKNOWN_TARGET = -1  # test photos
FEATURES_FILE = "pool5.npy"
INDEX_FILE = "index.csv"


@dataclass(frozen=True)
class FeatureSet:
    """One subset's features, row-aligned with its ids, targets (class indexes; -1 unknown) and photo paths."""

    ids: list[str]
    targets: np.ndarray
    paths: list[str]
    features: np.ndarray


def write_index(folder: Path, ids: list[str], targets: list[int], paths: list[str]) -> None:
    """Write a subset's index.csv."""
    pd.DataFrame({"id": ids, "target": targets, "path": paths}).to_csv(folder / INDEX_FILE, index=False)


def read_feature_set(root: Path, subset: str) -> FeatureSet:
    """Open a subset's features memory-mapped, so a 25,000-photo cache is read only as it's used."""
    folder = root / subset
    index = pd.read_csv(folder / INDEX_FILE, dtype={"id": str, "target": np.int64, "path": str})
    features = np.load(folder / FEATURES_FILE, mmap_mode="r")
    if len(features) != len(index):
        raise ValueError(f"{folder}: {len(features)} feature rows but {len(index)} index rows")
    return FeatureSet(list(index["id"]), index["target"].to_numpy(), list(index["path"]), features)


def select_rows(source: FeatureSet, ids: list[str]) -> FeatureSet:
    """The rows of source with the given ids, in that order (the sample sets are cut from train and valid)."""
    position = {photo_id: i for i, photo_id in enumerate(source.ids)}
    rows = [position[photo_id] for photo_id in ids]
    return FeatureSet(ids, source.targets[rows], [source.paths[i] for i in rows], np.asarray(source.features[rows]))
