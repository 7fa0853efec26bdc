"""Stage predict: each class's probability for every validation and test photo, and the pictures a person checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competition.log_loss import predicted_classes
from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError, run_stage
from tasks.core.params import load_params
from tasks.core.paths import load_paths
from tasks.heads.inputs import DATASET_SUBSETS, load_head_data
from tasks.heads.model_file import require_model_classes
from tasks.heads.predictions import TEST_FILE, VALID_FILE, probability_columns
from tasks.photos.class_list import read_class_list
from tasks.photos.manifest import natural_key
from tasks.photos.undecodable import read_reports, undecodable_ids, uniform_probability

# Under paths.metrics: DVC plots (dvc.yaml declares them; `dvc plots show` renders them with the learning curves).
CONFUSION_FILE = "confusion.csv"
VIEWS_DIR = "views"
FILTERS_FILE = "first_layer_filters.png"


def prediction_frames(
    valid_ids: list[str],
    valid_targets: np.ndarray,
    p_valid: np.ndarray,
    test_ids: list[str],
    p_test: np.ndarray,
    classes: tuple[str, ...],
    undecodable_test: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validation (id, target, p_<class>...) and test (id, p_<class>..., undecodable) tables, test in natural id order.

    p_valid and p_test hold a row per photo and a column per class. Test photos in undecodable_test keep their row,
    with 1/N for every class and undecodable True.
    """
    columns = probability_columns(classes)
    undecodable = np.array([i in undecodable_test for i in test_ids], dtype=bool)
    p_test = np.where(undecodable[:, None], uniform_probability(len(classes)), p_test)
    for name, p in (("validation", p_valid), ("test", p_test)):
        if not np.all(np.isfinite(p)):
            raise StageError(f"the model gave {int((~np.isfinite(p)).sum())} non-finite {name} predictions; retrain it")
    valid = pd.DataFrame(
        {"id": valid_ids, "target": valid_targets.astype(int), **{c: p_valid[:, i] for i, c in enumerate(columns)}}
    )
    test = pd.DataFrame(
        {
            "id": [str(i) for i in test_ids],
            **{c: p_test[:, i] for i, c in enumerate(columns)},
            "undecodable": undecodable,
        }
    )
    order = sorted(range(len(test)), key=lambda row: natural_key(test_ids[row]))
    return valid, test.iloc[order].reset_index(drop=True)


def confusion_frame(target: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per validation photo, actual and predicted class names: what DVC's confusion template counts."""
    names = np.array(classes, dtype=object)
    return pd.DataFrame(
        {"actual": names[np.asarray(target, dtype=int)], "predicted": names[predicted_classes(probabilities)]}
    )


def model_probabilities(head, x: np.ndarray, classes: tuple[str, ...], model: Path) -> np.ndarray:
    """head's probabilities for x, a column per class; a head with another number of outputs is refused."""
    p = head.predict(x, verbose=0)
    if p.shape[1] != len(classes):
        raise StageError(
            f"{model} gives {p.shape[1]} probabilities per photo but the class list names {len(classes)} classes; "
            "run `dvc repro`, which retrains it"
        )
    return p


def main() -> None:
    import keras

    from tasks.photos.validation_views import write_views
    from tasks.vgg.filter_grid import FIRST_CONV, write_filter_grid

    params, paths = load_params(), load_paths()
    classes = read_class_list(Path(paths.classes)).classes
    require_model_classes(Path(paths.model), classes)
    subsets = [DATASET_SUBSETS[params.train.dataset][1], "test"]
    data = load_head_data(Path(paths.features), subsets, params.train.head, params.features)
    (valid_set, test_set), (x_valid, x_test) = data.feature_sets, data.inputs
    head = keras.models.load_model(paths.model)
    p_valid = model_probabilities(head, x_valid, classes, Path(paths.model))
    p_test = model_probabilities(head, x_test, classes, Path(paths.model))
    report = read_reports(Path(paths.features), params.features.shards)
    undecodable = frozenset(undecodable_ids(report, "test"))
    valid, test = prediction_frames(
        valid_set.ids, valid_set.targets, p_valid, test_set.ids, p_test, classes, undecodable
    )
    out, metrics = Path(paths.predictions), Path(paths.metrics)
    with atomic_file(out / VALID_FILE) as tmp:
        valid.to_csv(tmp, index=False)
    with atomic_file(out / TEST_FILE) as tmp:
        test.to_csv(tmp, index=False)
    with atomic_file(metrics / CONFUSION_FILE) as tmp:
        confusion_frame(valid_set.targets, p_valid, classes).to_csv(tmp, index=False)
    tiles = write_views(valid_set.paths, valid_set.targets, p_valid, classes, metrics / VIEWS_DIR)
    write_filter_grid(data.vgg.get_layer(FIRST_CONV).get_weights()[0], metrics / FILTERS_FILE)
    print(f"predict: {len(valid)} validation and {len(test)} test photos; view tiles: {tiles}")
    if undecodable:
        print(
            f"predict: warning: {len(undecodable)} test photos can't be decoded, so every class gets "
            f"1/{len(classes)} for them: ids {sorted(undecodable, key=natural_key)[:20]}"
        )


if __name__ == "__main__":
    run_stage("predict", main)
