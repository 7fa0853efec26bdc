"""Stage clip: pull P(dog) into [lo, hi] (given, or chosen on validation): one confident mistake can't dominate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competition.log_loss import log_loss
from tasks.core.atomic_output import atomic_file, write_json
from tasks.core.errors import run_stage
from tasks.core.params import load_params
from tasks.core.paths import load_paths
from tasks.heads.predictions import TEST_FILE, VALID_FILE, undecodable_test_ids

METRICS_FILE = "clip.json"
# Symmetric bounds b tried by `auto`: 0 (no clipping) first, so ties keep the least clipping and the loss never rises.
AUTO_BOUNDS = np.concatenate([[0.0], np.geomspace(1e-6, 0.49, 400)])


def clip_probabilities(p_dog: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """P(dog) clipped to [lo, hi]."""
    lo, hi = bounds
    return np.clip(p_dog, lo, hi)


def auto_bounds(target: np.ndarray, p_dog: np.ndarray) -> tuple[float, float]:
    """The symmetric [b, 1 - b] with the lowest validation log loss among AUTO_BOUNDS."""
    losses = [log_loss(target, clip_probabilities(p_dog, (b, 1.0 - b))) for b in AUTO_BOUNDS]
    best = float(AUTO_BOUNDS[int(np.argmin(losses))])  # argmin takes the first of equals: the smallest b
    return best, 1.0 - best


def resolve_bounds(valid: pd.DataFrame, bounds: tuple[float, float] | str) -> tuple[float, float]:
    """clip.bounds as numbers: `auto` is chosen on the validation predictions."""
    return auto_bounds(valid["target"].to_numpy(), valid["p_dog"].to_numpy()) if bounds == "auto" else bounds


def submission_frame(test: pd.DataFrame, bounds: tuple[float, float]) -> pd.DataFrame:
    """The competition's `id,label` table from test predictions, sorted by id."""
    # `label` is the competition's own column name for P(dog) (its sample_submission.csv), so it stays.
    frame = pd.DataFrame({"id": test["id"].astype(int), "label": clip_probabilities(test["p_dog"].to_numpy(), bounds)})
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def clip_metrics(valid: pd.DataFrame, bounds: tuple[float, float]) -> dict[str, float]:
    """Validation log loss before and after clipping, so the effect of the bounds is on record."""
    p = valid["p_dog"].to_numpy()
    return {
        "lo": bounds[0],
        "hi": bounds[1],
        "val_log_loss_raw": log_loss(valid["target"], p),
        "val_log_loss_clipped": log_loss(valid["target"], clip_probabilities(p, bounds)),
    }


def main() -> None:
    params, paths = load_params(), load_paths()
    predictions = Path(paths.predictions)
    valid = pd.read_csv(predictions / VALID_FILE)
    test = pd.read_csv(predictions / TEST_FILE)
    bounds = resolve_bounds(valid, params.clip.bounds)
    with atomic_file(Path(paths.submission)) as tmp:
        submission_frame(test, bounds).to_csv(tmp, index=False, float_format="%.6f")
    metrics = clip_metrics(valid, bounds)
    write_json(Path(paths.metrics) / METRICS_FILE, metrics)
    print(
        f"clip: [{bounds[0]:.6g}, {bounds[1]:.6g}], validation log loss "
        f"{metrics['val_log_loss_raw']:.4f} -> {metrics['val_log_loss_clipped']:.4f}"
    )
    # A warning only: the count is on record once, as test_undecodable in features' metrics/undecodable.json.
    undecodable = undecodable_test_ids(test)
    if undecodable:
        print(
            f"clip: warning: the submission holds {len(undecodable)} fallback rows for undecodable test photos: "
            f"ids {undecodable[:20]}"
        )


if __name__ == "__main__":
    run_stage("clip", main)
