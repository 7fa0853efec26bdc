"""Stage predict: P(dog) for every validation and test photo, in id order."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.atomic_output import atomic_file
from tasks.errors import StageError, run_stage
from tasks.head_inputs import DATASET_SUBSETS, imagenet_probabilities, load_subsets
from tasks.params import load_params
from tasks.photo_quarantine import UNREADABLE_TEST_P_DOG, unreadable_test_ids

VALID_FILE = "valid.csv"
TEST_FILE = "test.csv"


def prediction_frames(valid_ids: list[str], valid_labels: np.ndarray, p_valid: np.ndarray,
                      test_ids: list[str], p_test: np.ndarray,
                      unreadable_test: frozenset[str] = frozenset()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validation (id, is_dog, p_dog) and test (id, p_dog, decoded) tables, test sorted by numeric id.

    Test photos in unreadable_test keep their row, with P(dog) = UNREADABLE_TEST_P_DOG and decoded False.
    """
    decoded = np.array([i not in unreadable_test for i in test_ids], dtype=bool)
    p_test = np.where(decoded, p_test, UNREADABLE_TEST_P_DOG)
    for name, p in (("validation", p_valid), ("test", p_test)):
        if not np.all(np.isfinite(p)):
            raise StageError(f"the model gave {int((~np.isfinite(p)).sum())} non-finite {name} predictions; retrain it")
    valid = pd.DataFrame({"id": valid_ids, "is_dog": valid_labels.astype(int), "p_dog": p_valid})
    test = pd.DataFrame({"id": [int(i) for i in test_ids], "p_dog": p_test, "decoded": decoded}).sort_values("id", kind="stable")
    return valid, test.reset_index(drop=True)


def main() -> None:
    import keras

    params = load_params()
    subsets = [DATASET_SUBSETS[params.train.dataset][1], "test"]
    valid_set, test_set = load_subsets(Path(params.paths.features), subsets)
    x_valid, x_test = imagenet_probabilities([valid_set, test_set], params.features)
    head = keras.models.load_model(params.paths.model)
    p_valid = head.predict(x_valid, verbose=0)[:, 1]
    p_test = head.predict(x_test, verbose=0)[:, 1]
    unreadable = frozenset(unreadable_test_ids(Path(params.paths.features)))
    valid, test = prediction_frames(valid_set.ids, valid_set.labels, p_valid, test_set.ids, p_test, unreadable)
    out = Path(params.paths.predictions)
    with atomic_file(out / VALID_FILE) as tmp:
        valid.to_csv(tmp, index=False)
    with atomic_file(out / TEST_FILE) as tmp:
        test.to_csv(tmp, index=False)
    print(f"predict: {len(valid)} validation and {len(test)} test photos")
    if unreadable:
        print(f"predict: warning: {len(unreadable)} test photos can't be decoded, so their P(dog) is "
              f"{UNREADABLE_TEST_P_DOG}: ids {sorted(unreadable, key=int)[:20]}")


if __name__ == "__main__":
    run_stage("predict", main)
