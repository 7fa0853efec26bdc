"""Stage predict: P(dog) for every validation and test photo, in id order, and the pictures a person checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError, run_stage
from tasks.core.params import load_params
from tasks.core.paths import load_paths
from tasks.heads.inputs import DATASET_SUBSETS, load_head_data
from tasks.heads.predictions import TEST_FILE, VALID_FILE
from tasks.photos.undecodable import UNDECODABLE_P_DOG, read_report, undecodable_ids

# Under paths.metrics: DVC plots (dvc.yaml declares them; `dvc plots show` renders them with the learning curves).
CONFUSION_FILE = "confusion.csv"
VIEWS_DIR = "views"
FILTERS_FILE = "first_layer_filters.png"
CLASS_NAMES = ("cat", "dog")


def prediction_frames(
    valid_ids: list[str],
    valid_targets: np.ndarray,
    p_valid: np.ndarray,
    test_ids: list[str],
    p_test: np.ndarray,
    undecodable_test: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validation (id, target, p_dog) and test (id, p_dog, undecodable) tables, test sorted by numeric id.

    Test photos in undecodable_test keep their row, with P(dog) = UNDECODABLE_P_DOG and undecodable True.
    """
    undecodable = np.array([i in undecodable_test for i in test_ids], dtype=bool)
    p_test = np.where(undecodable, UNDECODABLE_P_DOG, p_test)
    for name, p in (("validation", p_valid), ("test", p_test)):
        if not np.all(np.isfinite(p)):
            raise StageError(f"the model gave {int((~np.isfinite(p)).sum())} non-finite {name} predictions; retrain it")
    valid = pd.DataFrame({"id": valid_ids, "target": valid_targets.astype(int), "p_dog": p_valid})
    test = pd.DataFrame({"id": [int(i) for i in test_ids], "p_dog": p_test, "undecodable": undecodable}).sort_values(
        "id", kind="stable"
    )
    return valid, test.reset_index(drop=True)


def confusion_frame(target: np.ndarray, p_dog: np.ndarray) -> pd.DataFrame:
    """One row per validation photo, actual and predicted class names: what DVC's confusion template counts."""
    names = np.array(CLASS_NAMES)
    return pd.DataFrame(
        {"actual": names[np.asarray(target, dtype=int)], "predicted": names[(np.asarray(p_dog) > 0.5).astype(int)]}
    )


def main() -> None:
    import keras

    from tasks.photos.validation_views import write_views
    from tasks.vgg.filter_grid import FIRST_CONV, write_filter_grid

    params, paths = load_params(), load_paths()
    subsets = [DATASET_SUBSETS[params.train.dataset][1], "test"]
    data = load_head_data(Path(paths.features), subsets, params.train.head, params.features)
    (valid_set, test_set), (x_valid, x_test) = data.feature_sets, data.inputs
    head = keras.models.load_model(paths.model)
    p_valid = head.predict(x_valid, verbose=0)[:, 1]
    p_test = head.predict(x_test, verbose=0)[:, 1]
    undecodable = frozenset(undecodable_ids(read_report(Path(paths.features)), "test"))
    valid, test = prediction_frames(valid_set.ids, valid_set.targets, p_valid, test_set.ids, p_test, undecodable)
    out, metrics = Path(paths.predictions), Path(paths.metrics)
    with atomic_file(out / VALID_FILE) as tmp:
        valid.to_csv(tmp, index=False)
    with atomic_file(out / TEST_FILE) as tmp:
        test.to_csv(tmp, index=False)
    with atomic_file(metrics / CONFUSION_FILE) as tmp:
        confusion_frame(valid_set.targets, p_valid).to_csv(tmp, index=False)
    tiles = write_views(valid_set.paths, valid_set.targets, p_valid, metrics / VIEWS_DIR)
    write_filter_grid(data.vgg.get_layer(FIRST_CONV).get_weights()[0], metrics / FILTERS_FILE)
    print(f"predict: {len(valid)} validation and {len(test)} test photos; view tiles: {tiles}")
    if undecodable:
        print(
            f"predict: warning: {len(undecodable)} test photos can't be decoded, so their P(dog) is "
            f"{UNDECODABLE_P_DOG}: ids {sorted(undecodable, key=int)[:20]}"
        )


if __name__ == "__main__":
    run_stage("predict", main)
