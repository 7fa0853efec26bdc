"""Figure 2: the lesson's whole workload (features once, three heads, predict) vs the course's full-network epochs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.conv_pass import SIDE
from tasks.core.params import PhaseParams, TrainParams

# The competition: 25,000 labelled photos (the course moved 2,000 to valid) and 12,500 test photos.
TRAIN, VALID, TEST = 23_000, 2_000, 12_500
CLASSES = ("cats", "dogs")  # the competition's two classes, the heads' two outputs
# The course's epochs: the linear model 3 (on saved predictions), the last layer 2 and the dense layers 3
# (both by running every photo through the whole network each epoch).
LINEAR_EPOCHS, LAST_LAYER_EPOCHS, DENSE_EPOCHS = 3, 2, 3
HEAD_BATCH = 64
# The course's lesson-2 notebook fits at batch_size=64 (fit_model: gen.flow(trn_data, ..., batch_size=batch_size)).
# Each RMSprop update of fc1+fc2 (~120M parameters) is shared by a batch's photos: at a smaller batch its cost per
# photo grows and the course looks slower than it is.
COURSE_TRAIN_BATCH = 64


def _seconds(run) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def course_batch(photos: list[Path], size: int = COURSE_TRAIN_BATCH) -> np.ndarray:
    """size preprocessed photos, the given ones repeated to fill it (a step's cost does not depend on the pixels)."""
    from tasks.photos.decode import load_photo
    from tasks.vgg.preprocess import caffe_preprocess

    decoded = [load_photo(p, SIDE) for p in photos[:size]]
    return caffe_preprocess(np.stack([decoded[i % len(decoded)] for i in range(size)]))


def course_train_step_seconds(vgg, trainable: str, photos: np.ndarray, steps: int = 2) -> float:
    """Seconds per photo of one training step through the full VGG16 with the conv base frozen (Keras fit's work)."""
    import keras

    x = vgg.get_layer("fc2").output
    model = keras.Model(vgg.inputs, keras.layers.Dense(2, activation="softmax", name="cats_dogs")(x))
    for layer in model.layers:
        layer.trainable = layer.name == "cats_dogs" or (trainable == "dense" and layer.name in ("fc1", "fc2"))
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="sparse_categorical_crossentropy")
    targets = np.arange(len(photos)) % 2
    model.train_on_batch(photos, targets)  # warm-up: traces the step
    return min(_seconds(lambda: model.train_on_batch(photos, targets)) for _ in range(steps)) / len(photos)


# Cached rows the heads are timed on. An epoch pays costs that 23,000 real rows spread thin: validation, callbacks,
# and a last partial batch that costs a full RMSprop update of fc1 (103M weights). Side by side, 500 rows gave the
# dense head 1.9x the per-photo cost that 2,500 gave, so time on 2,500.
HEAD_ROWS = 2_500


def head_seconds(vgg, samples: int = HEAD_ROWS) -> dict[str, float]:
    """Seconds per photo for what our way does after the cache: dense-tail passes and each head's epochs."""
    from tasks.train import fit_head
    from tasks.vgg.vgg16 import dense_tail, run_in_batches

    rng = np.random.default_rng(0)
    pool5 = np.abs(rng.normal(0, 1, (samples, 7, 7, 512))).astype(np.float16)  # cost does not depend on the values
    targets = np.arange(samples) % 2
    tail_to_probabilities, tail_to_fc2 = dense_tail(vgg, "predictions"), dense_tail(vgg, "fc2")
    run_in_batches(tail_to_probabilities, pool5[:8], 8)  # warm-up
    run_in_batches(tail_to_fc2, pool5[:8], 8)
    costs = {
        "tail pass to probabilities": _seconds(lambda: run_in_batches(tail_to_probabilities, pool5, 256)) / samples
    }
    costs["tail pass to fc2"] = _seconds(lambda: run_in_batches(tail_to_fc2, pool5, 256)) / samples
    probabilities = run_in_batches(tail_to_probabilities, pool5, 256)
    fc2 = run_in_batches(tail_to_fc2, pool5, 256)
    trained = samples * TRAIN // (TRAIN + VALID)  # rows trained on; the rest validate, in the competition's proportion

    def seconds(head: str, x: np.ndarray, epochs: int) -> float:
        """The stage's own fit of `head` (build, phases, validation) for `epochs` epochs."""
        phases = (PhaseParams(lr=0.01, epochs=epochs),)
        params = TrainParams(
            dataset="full", head=head, optimizer="rmsprop", phases=phases, batch_size=HEAD_BATCH, seed=0
        )
        return _seconds(
            lambda: fit_head(x[:trained], targets[:trained], x[trained:], targets[trained:], params, vgg, CLASSES)
        )

    def per_photo_epoch(head: str, x: np.ndarray, epochs: int) -> float:
        # Each fit pays a one-off trace and build; the difference of two epoch counts leaves the cost per epoch.
        return (seconds(head, x, epochs) - seconds(head, x, 1)) / (trained * (epochs - 1))

    costs["linear head, per photo-epoch"] = per_photo_epoch("linear", probabilities, LINEAR_EPOCHS)
    costs["last-layer head, per photo-epoch"] = per_photo_epoch("last_layer", fc2, LAST_LAYER_EPOCHS)
    costs["dense head, per photo-epoch"] = per_photo_epoch("dense", pool5.astype(np.float32), DENSE_EPOCHS)
    return costs


def workload_totals(
    stage_rate: float, course_predict_rate: float, step: dict[str, float], heads: dict[str, float]
) -> dict:
    """Seconds for the lesson's whole workload at the competition's size, both ways, from measured per-photo costs."""
    labelled = TRAIN + VALID
    ours = {
        "features once (stage)": (labelled + TEST) / stage_rate,
        "tail passes (probabilities for train/valid/test, fc2 for all)": (labelled + TEST)
        * (heads["tail pass to probabilities"] + heads["tail pass to fc2"]),
        "linear head": TRAIN * LINEAR_EPOCHS * heads["linear head, per photo-epoch"],
        "last-layer head": TRAIN * LAST_LAYER_EPOCHS * heads["last-layer head, per photo-epoch"],
        "dense head": TRAIN * DENSE_EPOCHS * heads["dense head, per photo-epoch"],
    }
    course = {
        "full-network predictions for the linear model (train + valid)": labelled / course_predict_rate,
        "linear head (same as ours)": ours["linear head"],
        "last layer: epochs through the full network": LAST_LAYER_EPOCHS
        * (TRAIN * step["last_layer"] + VALID / course_predict_rate),
        "dense layers: epochs through the full network": DENSE_EPOCHS
        * (TRAIN * step["dense"] + VALID / course_predict_rate),
        "predict test through the full network": TEST / course_predict_rate,
    }
    return {"ours": ours, "course": course, "ratio": sum(course.values()) / sum(ours.values())}
