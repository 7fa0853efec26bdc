"""Undecodable photos: train and valid ones are left out and listed; test ones keep their row, at 1/N per class."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from tasks.core.errors import StageError
from tasks.photos.decode import UndecodablePhoto, load_photo
from tasks.vgg.preprocess import CAFFE_BGR_MEANS

REPORT_FILE = "undecodable.csv"
REPORT_COLUMNS = ["subset", "id", "path", "reason", "action"]
# Subsets whose photos have a target: an undecodable one there is left out, as nothing can be learnt from it.
LEFT_OUT_SUBSETS = ("train", "valid")
_COPY_ROWS = 256  # rows copied at a time when a cache is compacted, so a big cache never sits in memory
# The ImageNet mean colour: after caffe preprocessing a blank frame is all zeros, the most neutral input.
_MEAN_RGB = np.rint(CAFFE_BGR_MEANS[::-1]).astype(np.uint8)


def uniform_probability(class_count: int) -> float:
    """What an undecodable test photo gets for each class: 1/N (0.5 of two).

    The submission needs a row per test id, and when nothing is known the uniform answer costs least: log N
    (0.69 for two classes) whatever the truth, never a confident mistake.
    """
    return 1 / class_count


def fallback_action(class_count: int) -> str:
    """The report's action for an undecodable test photo: kept, at the uniform probability."""
    return f"P = 1/{class_count} for every class"


def blank_frame(size: int) -> np.ndarray:
    """What an undecodable photo is replaced by: size x size pixels of the ImageNet mean colour."""
    return np.broadcast_to(_MEAN_RGB, (size, size, 3))


def decode_or_blank(source: Path | BinaryIO, size: int) -> tuple[np.ndarray, str | None]:
    """The photo decoded at size x size and None, or a blank frame of that size and why the photo is undecodable."""
    try:
        return load_photo(source, size), None
    except UndecodablePhoto as err:
        return blank_frame(size), str(err)


def _keep_rows(cache: np.ndarray, path: Path, keep: list[int]) -> np.ndarray:
    """Rewrite the .npy at path with only the rows in keep (beside it, then renamed), memory-mapped."""
    tmp = path.with_name(f".{path.name}.keep.tmp")
    kept = np.lib.format.open_memmap(tmp, mode="w+", dtype=cache.dtype, shape=(len(keep), *cache.shape[1:]))
    for start in range(0, len(keep), _COPY_ROWS):
        kept[start : start + _COPY_ROWS] = cache[keep[start : start + _COPY_ROWS]]
    kept.flush()
    del kept
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


class UndecodableReport:
    """Collects undecodable photos per subset and enforces features.max_undecodable on train + valid."""

    def __init__(self, max_undecodable: int, class_count: int) -> None:
        self.max_undecodable, self.class_count = max_undecodable, class_count
        self.entries: list[dict[str, str]] = []

    def left_out(self, subset: str, photo_id: str) -> bool:
        """Whether photo_id of subset was left out."""
        return any(e["subset"] == subset and e["id"] == photo_id and e["action"] == "left out" for e in self.entries)

    def apply(self, subset: str, rows: list, undecodable: dict[int, str], cache: np.ndarray, path: Path):
        """Record subset's undecodable rows; drop them from rows and the cache at path unless subset is test."""
        leave_out = subset in LEFT_OUT_SUBSETS
        action = "left out" if leave_out else fallback_action(self.class_count)
        for index, reason in sorted(undecodable.items()):
            photo_id, photo = rows[index].id, rows[index].path
            self.entries.append(
                {"subset": subset, "id": photo_id, "path": str(photo), "reason": reason, "action": action}
            )
        if not leave_out or not undecodable:
            return rows, cache
        left_out = [e for e in self.entries if e["action"] == "left out"]
        if len(left_out) > self.max_undecodable:
            examples = "; ".join(f"{e['path']} ({e['reason']})" for e in left_out[:5])
            raise StageError(
                f"{len(left_out)} train/valid photos can't be decoded, more than features.max_undecodable "
                f"({self.max_undecodable}), e.g. {examples}. Replace or remove them, or raise the threshold"
            )
        keep = [i for i in range(len(rows)) if i not in undecodable]
        return [rows[i] for i in keep], _keep_rows(cache, path, keep)

    def write(self, folder: Path) -> None:
        """Write folder/undecodable.csv, one row per undecodable photo (a header only when there are none)."""
        pd.DataFrame(self.entries, columns=REPORT_COLUMNS).to_csv(folder / REPORT_FILE, index=False)


def read_report(features_root: Path) -> pd.DataFrame:
    """The undecodable-photo report written by a features stage in features_root (data/features/<shard>)."""
    return pd.read_csv(features_root / REPORT_FILE, dtype=str, keep_default_na=False)


def read_reports(features_root: Path, shards: tuple[int, ...]) -> pd.DataFrame:
    """The listed shards' reports (features_root/<shard>/undecodable.csv), joined in shard order."""
    reports = []
    for shard in shards:
        if not (features_root / str(shard) / REPORT_FILE).is_file():
            raise StageError(
                f"{features_root / str(shard) / REPORT_FILE} is missing, but features.shards lists shard {shard}; "
                f"run `dvc repro` (stage features@{shard} writes it)"
            )
        reports.append(read_report(features_root / str(shard)))
    return pd.concat(reports, ignore_index=True)


def require_within_limit(report: pd.DataFrame, max_undecodable: int) -> None:
    """Refuse more left-out train/valid photos, over all shards, than features.max_undecodable allows.

    Each features@<shard> stage refuses its own count over the limit, but sees only its shard: the joined count is
    checked where the shards meet, before anything is trained on them.
    """
    left_out = report[report["action"] == "left out"]
    if len(left_out) > max_undecodable:
        examples = "; ".join(f"{row.path} ({row.reason})" for row in left_out.head(5).itertuples())
        raise StageError(
            f"{len(left_out)} train/valid photos can't be decoded over all shards, more than "
            f"features.max_undecodable ({max_undecodable}), e.g. {examples}. Replace or remove them, or raise the "
            "threshold"
        )


def undecodable_ids(report: pd.DataFrame, subset: str) -> list[str]:
    """Ids of subset's undecodable photos, in report order: the one place this is derived."""
    return report.loc[report["subset"] == subset, "id"].tolist()


def undecodable_metrics(report: pd.DataFrame, subsets: tuple[str, ...]) -> dict[str, int]:
    """Counts for metrics/undecodable.json: <subset>_undecodable per subset (train and valid left out, test kept)."""
    return {f"{subset}_undecodable": len(undecodable_ids(report, subset)) for subset in subsets}
