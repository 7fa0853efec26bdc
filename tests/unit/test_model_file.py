"""Model files are reproducible: two saves of one model, at different times, are the same bytes and load back."""

import time
from pathlib import Path

import numpy as np

from tasks.heads.model_file import save_model


def test_two_saves_a_second_apart_are_byte_identical_and_load(tmp_path: Path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="softmax")])
    first, second = tmp_path / "a" / "head.keras", tmp_path / "b" / "head.keras"
    save_model(model, first)
    time.sleep(1.1)  # Keras stamps each save with the time to the second
    save_model(model, second)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["head.keras"]
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    np.testing.assert_array_equal(keras.models.load_model(first).predict(x, verbose=0), model.predict(x, verbose=0))
