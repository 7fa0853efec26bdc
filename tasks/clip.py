"""Stage clip: pull predictions into [lo, hi] (given, or chosen on validation) so one confident mistake can't dominate.

Two classes clip P(class 1) alone, as Dogs vs. Cats always clipped P(dog); N classes clip every probability, then
rescale each row to sum 1, as Kaggle's own multi-class log loss treats a submission. The submission is written in the
class list's layout (tasks/photos/class_list.py): its header, one column per class it names, ids in natural order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competition.log_loss import log_loss
from tasks.core.atomic_output import atomic_file, write_json
from tasks.core.errors import StageError, run_stage
from tasks.core.params import load_params
from tasks.core.paths import load_paths
from tasks.heads.predictions import TEST_FILE, VALID_FILE, probability_columns, undecodable_test_ids
from tasks.photos.class_list import ClassList, read_class_list
from tasks.photos.manifest import natural_key

METRICS_FILE = "clip.json"
# Symmetric bounds b tried by `auto`: 0 (no clipping) first, so ties keep the least clipping and the loss never rises.
# N classes try only those below 1/N: a floor at or above the uniform 1/N would flatten every photo's row.
AUTO_BOUNDS = np.concatenate([[0.0], np.geomspace(1e-6, 0.49, 400)])
FLOAT_FORMAT = "%.6f"  # the submission's numbers: six decimals, as the course wrote them


def probability_matrix(frame: pd.DataFrame, classes: tuple[str, ...], source: str) -> np.ndarray:
    """Predict's p_<class> columns as one row per photo, one column per class in class order."""
    columns = probability_columns(classes)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StageError(
            f"{source} lacks the columns {', '.join(missing[:5])} for the {len(classes)} classes in the class list; "
            "run `dvc repro predict` so the predictions match the classes"
        )
    return frame[columns].to_numpy(dtype=np.float64)


def check_bounds(bounds: tuple[float, float], n_classes: int) -> None:
    """Refuse bounds that can't clip N (3 or more) classes: the floor must sit below 1/N and the ceiling above."""
    lo, hi = bounds
    if n_classes > 2 and not lo < 1.0 / n_classes < hi:
        raise StageError(
            f"clip.bounds [{lo:g}, {hi:g}] can't clip {n_classes} classes: lo must be below 1/{n_classes} = "
            f"{1.0 / n_classes:.6g} and hi above it, or every photo's probabilities flatten toward 1/{n_classes}; "
            "lower lo (e.g. [0.001, 0.999]) or set clip.bounds: auto"
        )


def clip_probabilities(p: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Probabilities (photos x classes) clipped to [lo, hi].

    Two classes: P(class 1) clipped, class 0 the rest (the course's rule). N classes: each clipped, rows rescaled to 1.
    """
    lo, hi = bounds
    if p.shape[1] == 2:
        p_positive = np.clip(p[:, 1], lo, hi)
        return np.column_stack([1.0 - p_positive, p_positive])
    clipped = np.clip(p, lo, hi)
    return clipped / clipped.sum(axis=1, keepdims=True)


def auto_bounds(target: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The symmetric [b, 1 - b] with the lowest validation log loss among AUTO_BOUNDS below 1/N."""
    uniform = 1.0 / p.shape[1]
    candidates = AUTO_BOUNDS[np.less(AUTO_BOUNDS, uniform)]  # every one of them for two classes (max 0.49)
    losses = [log_loss(target, clip_probabilities(p, (b, 1.0 - b))) for b in candidates]
    best = float(candidates[int(np.argmin(losses))])  # argmin takes the first of equals: the smallest b
    return best, 1.0 - best


def resolve_bounds(target: np.ndarray, p: np.ndarray, bounds: tuple[float, float] | str) -> tuple[float, float]:
    """clip.bounds as numbers: `auto` is chosen on the validation predictions; given bounds are checked against N."""
    if bounds == "auto":
        return auto_bounds(target, p)
    check_bounds(bounds, p.shape[1])
    return bounds


def natural_order(ids: pd.Series) -> list[int]:
    """Row positions that put ids in natural order (7 before 10, img_2 before img_10); equal keys keep their order."""
    keys = [natural_key(i) for i in ids.astype(str)]
    return sorted(range(len(keys)), key=keys.__getitem__)


def submission_frame(test: pd.DataFrame, class_list: ClassList, bounds: tuple[float, float]) -> pd.DataFrame:
    """The competition's table: the class list's header, each column the clipped P of its class, ids in order."""
    layout = class_list.submission
    p = clip_probabilities(probability_matrix(test, class_list.classes, TEST_FILE), bounds)
    order = natural_order(test["id"])
    # Ids go out as the manifest holds them (strings: `007` stays `007`), the probabilities in the header's order.
    frame = pd.DataFrame({layout.id_column: test["id"].astype(str).to_numpy()[order]})
    for column, name in zip(layout.header[1:], layout.columns, strict=True):
        frame[column] = p[order, class_list.index(name)]
    return frame


def clip_metrics(target: np.ndarray, p: np.ndarray, bounds: tuple[float, float]) -> dict[str, float]:
    """Validation log loss before and after clipping, so the effect of the bounds is on record."""
    return {
        "lo": bounds[0],
        "hi": bounds[1],
        "val_log_loss_raw": log_loss(target, p),
        "val_log_loss_clipped": log_loss(target, clip_probabilities(p, bounds)),
    }


def summary(bounds: tuple[float, float], metrics: dict[str, float], n_classes: int) -> str:
    """The stage's line: the bounds, how they apply, and the validation log loss before and after."""
    how = "" if n_classes == 2 else f" on each of {n_classes} classes, rows rescaled to sum 1"
    return (
        f"clip: [{bounds[0]:.6g}, {bounds[1]:.6g}]{how}, validation log loss "
        f"{metrics['val_log_loss_raw']:.4f} -> {metrics['val_log_loss_clipped']:.4f}"
    )


def main() -> None:
    params, paths = load_params(), load_paths()
    class_list = read_class_list(Path(paths.classes))
    predictions = Path(paths.predictions)
    valid = pd.read_csv(predictions / VALID_FILE, dtype={"id": str})
    test = pd.read_csv(predictions / TEST_FILE, dtype={"id": str})
    target = valid["target"].to_numpy()
    p_valid = probability_matrix(valid, class_list.classes, VALID_FILE)
    bounds = resolve_bounds(target, p_valid, params.clip.bounds)
    frame = submission_frame(test, class_list, bounds)
    with atomic_file(Path(paths.submission)) as tmp:
        frame.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    metrics = clip_metrics(target, p_valid, bounds)
    write_json(Path(paths.metrics) / METRICS_FILE, metrics)
    print(summary(bounds, metrics, len(class_list.classes)))
    # A warning only: the count is on record once, as test_undecodable in features' metrics/undecodable.json.
    undecodable = undecodable_test_ids(test)
    if undecodable:
        share = "0.5" if len(class_list.classes) == 2 else f"1/{len(class_list.classes)}"
        print(
            f"clip: warning: the submission holds {len(undecodable)} fallback rows ({share} for each class) for "
            f"undecodable test photos: ids {undecodable[:20]}"
        )


if __name__ == "__main__":
    run_stage("clip", main)
