"""Model files are reproducible (two saves of one model are the same bytes and load back) and name their classes."""

import time
from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import StageError
from tasks.heads.model_file import require_model_classes, save_model, saved_classes


def test_two_saves_a_second_apart_are_byte_identical_and_load(tmp_path: Path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="softmax")])
    first, second = tmp_path / "a" / "head.keras", tmp_path / "b" / "head.keras"
    save_model(model, first, ("cats", "dogs"))
    time.sleep(1.1)  # Keras stamps each save with the time to the second
    save_model(model, second, ("cats", "dogs"))
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["head.keras"]
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    np.testing.assert_array_equal(keras.models.load_model(first).predict(x, verbose=0), model.predict(x, verbose=0))


def test_the_file_names_the_class_of_each_output_and_a_model_of_other_classes_is_refused(tmp_path: Path):
    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    save_model(model, tmp_path / "head.keras", ("c1", "c2", "c10"))
    assert saved_classes(tmp_path / "head.keras") == ("c1", "c2", "c10")
    require_model_classes(tmp_path / "head.keras", ("c1", "c2", "c10"))
    with pytest.raises(StageError, match=r"trained on the classes c1, c2, c10, but the class list names c1, c10, c2"):
        require_model_classes(tmp_path / "head.keras", ("c1", "c10", "c2"))
    model.save(tmp_path / "plain.keras")  # a file Keras saved itself: nothing recorded, nothing to check
    assert saved_classes(tmp_path / "plain.keras") is None
    require_model_classes(tmp_path / "plain.keras", ("a", "b"))
    (tmp_path / "junk.keras").write_text("not a zip")
    with pytest.raises(StageError, match="is not a saved head"):
        saved_classes(tmp_path / "junk.keras")
