"""Photos that can't be decoded: train and valid ones are left out and listed, test ones keep their row."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from tasks.core.errors import StageError
from tasks.photos.decode import UnreadablePhoto, load_photo
from tasks.vgg.preprocess import CAFFE_BGR_MEANS

REPORT_FILE = "quarantine.csv"
REPORT_COLUMNS = ["subset", "id", "path", "reason", "action"]
# The submission needs a row per test id, so an undecodable test photo gets the answer that costs least
# when nothing is known: P(dog) = 0.5 costs log 2 = 0.69 whatever the truth, never a confident mistake.
UNREADABLE_TEST_P_DOG = 0.5
LABELLED_SUBSETS = ("train", "valid")
_COPY_ROWS = 256  # rows copied at a time when a cache is compacted, so a big cache never sits in memory
# The ImageNet mean colour: after caffe preprocessing a blank frame is all zeros, the most neutral input.
_MEAN_RGB = np.rint(CAFFE_BGR_MEANS[::-1]).astype(np.uint8)


def decode_or_blank(source: Path | BinaryIO, size: int) -> tuple[np.ndarray, str | None]:
    """The photo decoded at size x size and None, or a blank frame of that size and why the photo can't be decoded."""
    try:
        return load_photo(source, size), None
    except UnreadablePhoto as err:
        return np.broadcast_to(_MEAN_RGB, (size, size, 3)), str(err)


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


class Quarantine:
    """Collects undecodable photos per subset and enforces features.max_undecodable on train + valid."""

    def __init__(self, max_quarantined: int) -> None:
        self.max_quarantined = max_quarantined
        self.entries: list[dict[str, str]] = []

    def holds(self, subset: str, photo_id: str) -> bool:
        """Whether photo_id of subset was left out."""
        return any(e["subset"] == subset and e["id"] == photo_id and e["action"] == "left out" for e in self.entries)

    def apply(self, subset: str, rows: list, unreadable: dict[int, str], cache: np.ndarray, path: Path):
        """Record subset's undecodable rows; drop them from rows and the cache at path unless subset is test."""
        labelled = subset in LABELLED_SUBSETS
        action = "left out" if labelled else f"P(dog) = {UNREADABLE_TEST_P_DOG}"
        for index, reason in sorted(unreadable.items()):
            photo_id, photo = rows[index].id, rows[index].path
            self.entries.append({"subset": subset, "id": photo_id, "path": str(photo), "reason": reason, "action": action})
        if not labelled or not unreadable:
            return rows, cache
        left_out = [e for e in self.entries if e["action"] == "left out"]
        if len(left_out) > self.max_quarantined:
            examples = "; ".join(f"{e['path']} ({e['reason']})" for e in left_out[:5])
            raise StageError(
                f"{len(left_out)} train/valid photos can't be decoded, more than features.max_undecodable "
                f"({self.max_quarantined}), e.g. {examples}. Replace or remove them, or raise the threshold"
            )
        keep = [i for i in range(len(rows)) if i not in unreadable]
        return [rows[i] for i in keep], _keep_rows(cache, path, keep)

    def write_report(self, folder: Path) -> None:
        """Write folder/quarantine.csv, one row per undecodable photo (a header only when there are none)."""
        pd.DataFrame(self.entries, columns=REPORT_COLUMNS).to_csv(folder / REPORT_FILE, index=False)


def read_report(features_root: Path) -> pd.DataFrame:
    """The quarantine report written by the features stage."""
    return pd.read_csv(features_root / REPORT_FILE, dtype=str, keep_default_na=False)


def unreadable_test_ids(features_root: Path) -> list[str]:
    """Ids of the test photos that couldn't be decoded (they get P(dog) = UNREADABLE_TEST_P_DOG)."""
    report = read_report(features_root)
    return report.loc[report["subset"] == "test", "id"].tolist()


def undecoded_test_ids(test_predictions: pd.DataFrame) -> list[int]:
    """Test ids that predict marked as not decoded (their P(dog) is the fallback), from its test table."""
    if "decoded" not in test_predictions.columns:
        return []
    return test_predictions.loc[~test_predictions["decoded"].astype(bool), "id"].astype(int).tolist()


def quarantine_metrics(features_root: Path) -> dict[str, int]:
    """Counts for metrics/quarantine.json: photos left out per subset and test photos given the fallback."""
    counts = read_report(features_root)["subset"].value_counts()
    return {
        "train_left_out": int(counts.get("train", 0)),
        "valid_left_out": int(counts.get("valid", 0)),
        "test_unreadable": int(counts.get("test", 0)),
    }
