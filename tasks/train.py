"""Stage train: the lesson's linear model, Dense(2, softmax) on VGG16's 1,000 ImageNet probabilities."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.atomic_output import atomic_file
from tasks.errors import run_stage
from tasks.head_inputs import DATASET_SUBSETS, imagenet_probabilities, load_subsets
from tasks.lineage import record_lineage
from tasks.log_loss import accuracy, log_loss
from tasks.params import TrainParams, load_params

HISTORY_FILE = "train_history.csv"
METRICS_FILE = "train.json"


@dataclass(frozen=True)
class TrainResult:
    model: object  # keras.Model; typed loosely so this module imports without TensorFlow
    history: pd.DataFrame
    metrics: dict[str, float]


def make_optimizer(name: str, lr: float):
    """The optimizer named in train.optimizer at learning rate lr."""
    import keras

    return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[name](
        learning_rate=lr
    )


def build_linear_head(inputs: int) -> object:
    """Dense(2, softmax) on `inputs` features: column 1 is P(dog)."""
    import keras

    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(2, activation="softmax", name="cats_dogs")])


def fit_head(x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, params: TrainParams) -> TrainResult:
    """Train the linear head with a fixed seed and deterministic ops; report validation accuracy and log loss."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same data, same params -> same model
    model = build_linear_head(x.shape[1])
    model.compile(optimizer=make_optimizer(params.optimizer, params.lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fitted = model.fit(
        x, y, validation_data=(x_valid, y_valid), epochs=params.epochs, batch_size=params.batch_size, shuffle=True, verbose=2
    )
    history = pd.DataFrame(fitted.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    p_dog = model.predict(x_valid, batch_size=params.batch_size, verbose=0)[:, 1]
    metrics = {
        "val_accuracy": accuracy(y_valid, p_dog),
        "val_log_loss": log_loss(y_valid, p_dog),
        "train_photos": int(len(y)),
        "valid_photos": int(len(y_valid)),
    }
    return TrainResult(model, history, metrics)


def main() -> None:
    params = load_params()
    train_set, valid_set = load_subsets(Path(params.paths.features), list(DATASET_SUBSETS[params.train.dataset]))
    x, x_valid = imagenet_probabilities([train_set, valid_set], params.features)
    result = fit_head(x, train_set.labels, x_valid, valid_set.labels, params.train)
    metrics_dir = Path(params.paths.metrics)
    with atomic_file(Path(params.paths.model)) as tmp:
        result.model.save(tmp)
    with atomic_file(metrics_dir / HISTORY_FILE) as tmp:
        result.history.to_csv(tmp, index=False)
    with atomic_file(metrics_dir / METRICS_FILE) as tmp:
        tmp.write_text(json.dumps(result.metrics, indent=2) + "\n")
    record_lineage("train", Path(params.paths.model), Path(params.paths.model_lineage))
    print("train: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.metrics.items()))


if __name__ == "__main__":
    run_stage("train", main)
