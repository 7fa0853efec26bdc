"""Cached conv features on disk: per shard and subset a float16 pool5.npy and an index.csv of id, target and path.

features@<shard> writes <root>/<shard>/<subset>/; train and predict join the shards features.shards lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import StageError

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


def shard_folder(root: Path, shard: int) -> Path:
    """Where features@<shard> writes its subsets."""
    return root / str(shard)


def read_shards(root: Path, shards: tuple[int, ...], subset: str) -> FeatureSet:
    """A subset's features of the listed shards, joined in shard order: the one-shard features, row for row.

    Each shard is opened memory-mapped; with one shard the set is that memory map, with more the rows are joined in
    memory (never written to disk again). A missing shard, or one whose rows have another shape, is refused.
    """
    pieces = []
    for shard in shards:
        folder = shard_folder(root, shard)
        if not (folder / subset / INDEX_FILE).is_file():
            raise StageError(
                f"{folder / subset} is missing, but features.shards lists shard {shard}; run `dvc repro` "
                f"(stage features@{shard} writes it)"
            )
        pieces.append(read_feature_set(folder, subset))
    first = pieces[0].features.shape[1:]
    for shard, piece in zip(shards, pieces, strict=True):
        if piece.features.shape[1:] != first:
            raise StageError(
                f"{shard_folder(root, shard) / subset} holds features of shape {piece.features.shape[1:]}, shard "
                f"{shards[0]} of {first}: they come from other features params; run `dvc repro`, which reruns them"
            )
    if len(pieces) == 1:
        return pieces[0]
    return FeatureSet(
        [i for p in pieces for i in p.ids],
        np.concatenate([p.targets for p in pieces]),
        [path for p in pieces for path in p.paths],
        np.concatenate([p.features for p in pieces]),
    )
