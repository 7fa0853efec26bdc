"""Stage train: the head named in train.head, fitted on cached features through the learning-rate phases."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competition.log_loss import accuracy, log_loss
from tasks.core.atomic_output import atomic_file, write_json
from tasks.core.errors import run_stage
from tasks.core.params import PhaseParams, TrainParams, load_params
from tasks.core.paths import load_paths
from tasks.heads.inputs import DATASET_SUBSETS, load_head_data
from tasks.heads.model_file import save_model
from tasks.lineage.record import record_lineage
from tasks.photos.class_balance import require_room_for_each_class, require_targets_of_each_class
from tasks.photos.class_list import read_class_list
from tasks.photos.undecodable import read_reports, require_within_limit
from tasks.vgg.feature_store import read_shards

HISTORY_FILE = "train_history.csv"
METRICS_FILE = "train.json"


@dataclass(frozen=True)
class TrainResult:
    model: object  # keras.Model; typed loosely so this module imports without TensorFlow
    history: pd.DataFrame
    metrics: dict[str, object]  # figures of the whole validation set, then per_class: {class: figures}


def make_optimizer(name: str, lr: float):
    """The optimizer named in train.optimizer at learning rate lr."""
    import keras

    return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[name](
        learning_rate=lr
    )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make ops deterministic: same seed, data and params -> same model."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def epoch_rates(phases: tuple[PhaseParams, ...]) -> list[float]:
    """The learning rate of each epoch, phase after phase."""
    return [phase.lr for phase in phases for _ in range(phase.epochs)]


def fit_phases(model, x, y, params: TrainParams, loss: str, validation=None, metrics=()) -> pd.DataFrame:
    """Compile model with train.optimizer and fit it through train.phases; one history row per epoch, with its rate."""
    import keras

    rates = epoch_rates(params.phases)
    model.compile(optimizer=make_optimizer(params.optimizer, rates[0]), loss=loss, metrics=list(metrics))
    # One fit call with the rate set at each epoch's start: the shuffling stream runs on across phases as in one fit.
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: rates[epoch])
    fitted = model.fit(
        x,
        y,
        validation_data=validation,
        epochs=len(rates),
        batch_size=params.batch_size,
        shuffle=True,
        verbose=2,
        callbacks=[schedule],
    )
    history = pd.DataFrame(fitted.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    # The rate each epoch was set to, as params.yaml writes it: Keras logs its float32 copy (0.1 as 0.10000000149...).
    history["learning_rate"] = rates
    return history


def class_metrics(target: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict]:
    """Per class, on its own validation photos: accuracy (the share called right), the competition's log loss, count.

    Both use the whole set's rules (log_loss.py) on the class's rows; a class with no photo has no figures (None).
    """
    target, figures = np.asarray(target), {}
    for index, name in enumerate(classes):
        rows = target == index
        photos = int(rows.sum())
        figures[name] = {
            "accuracy": accuracy(target[rows], probabilities[rows]) if photos else None,
            "log_loss": log_loss(target[rows], probabilities[rows]) if photos else None,
            "photos": photos,
        }
    return figures


def validation_metrics(
    train_photos: int, y_valid: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]
) -> dict[str, object]:
    """metrics/train.json: validation accuracy and log loss over all classes, photo counts, and the same per class."""
    return {
        "val_accuracy": accuracy(y_valid, probabilities),
        "val_log_loss": log_loss(y_valid, probabilities),
        "train_photos": train_photos,
        "valid_photos": len(y_valid),
        "per_class": class_metrics(y_valid, probabilities, classes),
    }


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    vgg,
    classes: tuple[str, ...],
) -> TrainResult:
    """Build train.head with one output per class (dense copies vgg's fc1/fc2), fit it, and score it on validation."""
    from tasks.heads.models import build_head

    seed_everything(params.seed)
    model = build_head(params.head, x.shape[1:], vgg, len(classes))
    history = fit_phases(model, x, y, params, "sparse_categorical_crossentropy", (x_valid, y_valid), ["accuracy"])
    probabilities = model.predict(x_valid, batch_size=params.batch_size, verbose=0)
    return TrainResult(model, history, validation_metrics(len(y), y_valid, probabilities, classes))


def summary(metrics: dict[str, object]) -> str:
    """The line train prints: the whole set's figures, then each class's accuracy and log loss."""
    overall = ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items() if k != "per_class"
    )
    per_class = "; ".join(
        f"{name} {f['photos']} photos"
        + (f", accuracy {f['accuracy']:.4f}, log loss {f['log_loss']:.4f}" if f["photos"] else "")
        for name, f in metrics["per_class"].items()
    )
    return f"train: {overall}; per class: {per_class}"


def main() -> None:
    from tasks.heads.models import inference_copy

    params, paths = load_params(), load_paths()
    classes = read_class_list(Path(paths.classes)).classes
    subsets = list(DATASET_SUBSETS[params.train.dataset])
    features_root, shards = Path(paths.features), params.features.shards
    require_within_limit(read_reports(features_root, shards), params.features.max_undecodable)
    for subset in subsets:  # before VGG16 is built and the dense layers run: the targets alone decide
        targets = read_shards(features_root, shards, subset).targets
        require_room_for_each_class(subset, targets, classes)
        require_targets_of_each_class(subset, targets, classes)
    data = load_head_data(features_root, subsets, params.train.head, params.features)
    (train_set, valid_set), (x, x_valid) = data.feature_sets, data.inputs
    result = fit_head(x, train_set.targets, x_valid, valid_set.targets, params.train, data.vgg, classes)
    metrics_dir = Path(paths.metrics)
    save_model(inference_copy(result.model), Path(paths.model), classes)
    with atomic_file(metrics_dir / HISTORY_FILE) as tmp:
        result.history.to_csv(tmp, index=False)
    write_json(metrics_dir / METRICS_FILE, result.metrics)
    record_lineage("train", Path(paths.model), Path(paths.model_lineage), Path(paths.model_run))
    print(summary(result.metrics))


if __name__ == "__main__":
    run_stage("train", main)
