"""Figure 2: the lesson's whole workload (features once, three heads, predict) against the course's full-network epochs."""
from __future__ import annotations

import time

import numpy as np

from tasks.params import TrainParams

# The competition: 25,000 labelled photos (the course moved 2,000 to valid) and 12,500 test photos.
TRAIN, VALID, TEST = 23_000, 2_000, 12_500
# The course's epochs: the linear model 3 (on saved predictions), the last layer 2 and the dense layers 3
# (both by running every photo through the whole network each epoch).
LINEAR_EPOCHS, LAST_LAYER_EPOCHS, DENSE_EPOCHS = 3, 2, 3
HEAD_BATCH = 64


def _seconds(run) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def course_train_step_seconds(vgg, trainable: str, photos: np.ndarray, steps: int = 2) -> float:
    """Seconds per photo of one training step through the full VGG16 with the conv base frozen (Keras fit's work)."""
    import keras

    x = vgg.get_layer("fc2").output
    model = keras.Model(vgg.inputs, keras.layers.Dense(2, activation="softmax", name="cats_dogs")(x))
    for layer in model.layers:
        layer.trainable = layer.name == "cats_dogs" or (trainable == "dense" and layer.name in ("fc1", "fc2"))
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="sparse_categorical_crossentropy")
    labels = np.arange(len(photos)) % 2
    model.train_on_batch(photos, labels)  # warm-up: traces the step
    return min(_seconds(lambda: model.train_on_batch(photos, labels)) for _ in range(steps)) / len(photos)


def head_seconds(vgg, samples: int = 500) -> dict[str, float]:
    """Seconds per photo for what our way does after the cache: dense-tail passes and each head's epochs."""
    import keras

    from tasks.train import fit_head
    from tasks.vgg16 import dense_tail, run_in_batches

    rng = np.random.default_rng(0)
    pool5 = np.abs(rng.normal(0, 1, (samples, 7, 7, 512))).astype(np.float16)  # cost does not depend on the values
    labels = np.arange(samples) % 2
    tail_to_probabilities, tail_to_fc2 = dense_tail(vgg, "predictions"), dense_tail(vgg, "fc2")
    run_in_batches(tail_to_probabilities, pool5[:8], 8)  # warm-up
    run_in_batches(tail_to_fc2, pool5[:8], 8)
    costs = {"tail pass to probabilities": _seconds(lambda: run_in_batches(tail_to_probabilities, pool5, 256)) / samples}
    costs["tail pass to fc2"] = _seconds(lambda: run_in_batches(tail_to_fc2, pool5, 256)) / samples
    probabilities = run_in_batches(tail_to_probabilities, pool5, 256)
    fc2 = run_in_batches(tail_to_fc2, pool5, 256)
    trained = samples * TRAIN // (TRAIN + VALID)  # rows trained on; the rest validate, in the competition's proportion

    def linear(epochs: int) -> float:
        params = TrainParams(epochs=epochs, batch_size=HEAD_BATCH)
        return _seconds(lambda: fit_head(probabilities[:trained], labels[:trained], probabilities[trained:], labels[trained:], params))

    # Each fit pays a one-off trace; the difference of two epoch counts leaves the cost per epoch.
    costs["linear head, per photo-epoch"] = (linear(LINEAR_EPOCHS) - linear(1)) / (trained * (LINEAR_EPOCHS - 1))

    def fit(inputs, x, epochs: int, hidden: bool) -> float:
        """Marginal seconds per photo-epoch of a head on x (epochs vs one epoch, so tracing cancels out)."""
        def seconds(n: int) -> float:
            layer_input = keras.Input(inputs)
            h = keras.layers.Flatten()(layer_input)
            if hidden:  # the course's "all dense layers": fc1 and fc2 retrained from pool5
                h = keras.layers.Dense(4096, activation="relu")(h)
                h = keras.layers.Dense(4096, activation="relu")(h)
            model = keras.Model(layer_input, keras.layers.Dense(2, activation="softmax")(h))
            model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="sparse_categorical_crossentropy")
            data = dict(validation_data=(x[trained:], labels[trained:]), epochs=n, batch_size=HEAD_BATCH, verbose=0)
            return _seconds(lambda: model.fit(x[:trained], labels[:trained], **data))

        return (seconds(epochs) - seconds(1)) / (trained * (epochs - 1))

    costs["last-layer head, per photo-epoch (bench stand-in)"] = fit((4096,), fc2, LAST_LAYER_EPOCHS, hidden=False)
    costs["dense head, per photo-epoch (bench stand-in)"] = fit((7, 7, 512), pool5.astype(np.float32), DENSE_EPOCHS, hidden=True)
    return costs


def workload_totals(stage_rate: float, course_predict_rate: float, step: dict[str, float], heads: dict[str, float]) -> dict:
    """Seconds for the lesson's whole workload at the competition's size, both ways, from measured per-photo costs."""
    labelled = TRAIN + VALID
    ours = {
        "features once (stage)": (labelled + TEST) / stage_rate,
        "tail passes (probabilities for train/valid/test, fc2 for all)": (labelled + TEST) * (
            heads["tail pass to probabilities"] + heads["tail pass to fc2"]
        ),
        "linear head": TRAIN * LINEAR_EPOCHS * heads["linear head, per photo-epoch"],
        "last-layer head": TRAIN * LAST_LAYER_EPOCHS * heads["last-layer head, per photo-epoch (bench stand-in)"],
        "dense head": TRAIN * DENSE_EPOCHS * heads["dense head, per photo-epoch (bench stand-in)"],
    }
    course = {
        "full-network predictions for the linear model (train + valid)": labelled / course_predict_rate,
        "linear head (same as ours)": ours["linear head"],
        "last layer: epochs through the full network": LAST_LAYER_EPOCHS * (TRAIN * step["last_layer"] + VALID / course_predict_rate),
        "dense layers: epochs through the full network": DENSE_EPOCHS * (TRAIN * step["dense"] + VALID / course_predict_rate),
        "predict test through the full network": TEST / course_predict_rate,
    }
    return {"ours": ours, "course": course, "ratio": sum(course.values()) / sum(ours.values())}
