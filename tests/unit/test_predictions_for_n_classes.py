"""predict's tables and train's metrics for N classes, and two classes giving exactly the figures they always gave."""

import io
import math

import numpy as np
import pandas as pd
import pytest

from tasks.competition.log_loss import binary_log_loss
from tasks.core.errors import StageError
from tasks.features import photo_target
from tasks.photos.manifest import PhotoEntry
from tasks.photos.undecodable import UndecodableReport, uniform_probability
from tasks.predict import prediction_frames
from tasks.train import class_metrics, summary, validation_metrics

CLASSES_3 = ("c2", "c10", "c1")  # not sorted here on purpose: the columns follow the list given, whatever it is
P_VALID_3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4]], dtype=np.float32)
TARGET_3 = np.array([0, 1, 2, 2])


def test_three_class_tables_have_a_probability_column_per_class_and_test_rows_in_natural_id_order():
    p_test = np.array([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2], [0.2, 0.7, 0.1]], dtype=np.float32)
    valid, test = prediction_frames(
        ["a.1", "b.2", "c.3", "c.4"], TARGET_3, P_VALID_3, ["img_10", "img_9", "0a", "img_1"], p_test, CLASSES_3
    )
    assert list(valid.columns) == ["id", "target", "p_c2", "p_c10", "p_c1"]
    assert list(test.columns) == ["id", "p_c2", "p_c10", "p_c1", "undecodable"]
    assert test["id"].tolist() == ["0a", "img_1", "img_9", "img_10"]  # natural order, ids kept as the strings they are
    np.testing.assert_array_equal(test[["p_c2", "p_c10", "p_c1"]].to_numpy(), p_test[[2, 3, 1, 0]])
    np.testing.assert_array_equal(valid[["p_c2", "p_c10", "p_c1"]].to_numpy(), P_VALID_3)
    assert valid["target"].tolist() == [0, 1, 2, 2] and not test["undecodable"].any()
    written = pd.read_csv(io.StringIO(test.to_csv(index=False)), dtype={"id": str})
    assert written["id"].tolist() == ["0a", "img_1", "img_9", "img_10"]


def test_an_undecodable_test_photo_gets_one_nth_of_every_class_and_nan_elsewhere_is_refused():
    p_test = np.array([[0.1, 0.1, 0.8], [np.nan, np.nan, np.nan]], dtype=np.float32)
    _, test = prediction_frames(["a"], np.array([0]), P_VALID_3[:1], ["1", "2"], p_test, CLASSES_3, frozenset({"2"}))
    assert test.loc[1, ["p_c2", "p_c10", "p_c1"]].tolist() == [pytest.approx(1 / 3)] * 3
    assert test["undecodable"].tolist() == [False, True]
    assert uniform_probability(2) == 0.5 and uniform_probability(4) == 0.25
    with pytest.raises(StageError, match="3 non-finite test predictions; retrain it"):
        prediction_frames(["a"], np.array([0]), P_VALID_3[:1], ["1", "2"], p_test, CLASSES_3)
    with pytest.raises(StageError, match="1 non-finite validation predictions"):
        prediction_frames(["a"], np.array([0]), np.array([[0.5, np.inf, 0.0]]), [], np.zeros((0, 3)), CLASSES_3)


def _base_prediction_frames(valid_ids, valid_targets, p_valid, test_ids, p_test, undecodable_test=frozenset()):
    """The base's prediction_frames (commit a5a6305), P(dog) alone: what two classes must still give, to the byte."""
    undecodable = np.array([i in undecodable_test for i in test_ids], dtype=bool)
    p_test = np.where(undecodable, 0.5, p_test)
    valid = pd.DataFrame({"id": valid_ids, "target": valid_targets.astype(int), "p_dog": p_valid})
    test = pd.DataFrame({"id": [int(i) for i in test_ids], "p_dog": p_test, "undecodable": undecodable}).sort_values(
        "id", kind="stable"
    )
    return valid, test.reset_index(drop=True)


def test_two_classes_write_the_base_p_dog_column_to_the_byte_beside_the_new_p_cats():
    rng = np.random.default_rng(0)
    p_dog = rng.random(30, dtype=np.float32)
    p_dog_test = rng.random(25, dtype=np.float32)
    probabilities = np.column_stack([1 - p_dog, p_dog])  # the head's softmax columns, float32 as Keras gives them
    test_probabilities = np.column_stack([1 - p_dog_test, p_dog_test])
    valid_ids = [f"cat.{i}" for i in range(15)] + [f"dog.{i}" for i in range(15)]
    targets = np.repeat([0, 1], 15)
    test_ids = [str(i) for i in rng.permutation(np.arange(1, 26))]
    undecodable = frozenset({test_ids[3]})
    old = _base_prediction_frames(valid_ids, targets, p_dog, test_ids, p_dog_test, undecodable)
    new = prediction_frames(
        valid_ids, targets, probabilities, test_ids, test_probabilities, ("cats", "dogs"), undecodable
    )
    assert new[1].loc[new[1]["undecodable"], ["p_cats", "p_dogs"]].values.tolist() == [[0.5, 0.5]]
    for old_frame, new_frame in zip(old, new, strict=True):
        trimmed = new_frame.drop(columns="p_cats").rename(columns={"p_dogs": "p_dog"})
        assert trimmed.to_csv(index=False) == old_frame.to_csv(index=False)


def test_train_metrics_per_class_on_three_classes_by_hand():
    metrics = validation_metrics(7, TARGET_3, P_VALID_3, CLASSES_3)
    assert metrics["val_accuracy"] == 0.75 and metrics["train_photos"] == 7 and metrics["valid_photos"] == 4
    p = np.array([0.7, 0.6, 0.6, 0.4], dtype=np.float64)  # each photo's probability of its own class
    assert metrics["val_log_loss"] == pytest.approx(-np.mean(np.log(p)), rel=1e-6)
    per_class = metrics["per_class"]
    assert list(per_class) == list(CLASSES_3)
    assert per_class["c2"] == {"accuracy": 1.0, "log_loss": pytest.approx(-math.log(0.7), rel=1e-6), "photos": 1}
    assert per_class["c10"] == {"accuracy": 1.0, "log_loss": pytest.approx(-math.log(0.6), rel=1e-6), "photos": 1}
    assert per_class["c1"]["accuracy"] == 0.5 and per_class["c1"]["photos"] == 2  # row 3 called c2
    assert per_class["c1"]["log_loss"] == pytest.approx(-(math.log(0.6) + math.log(0.4)) / 2, rel=1e-6)
    assert class_metrics(np.array([0, 0]), P_VALID_3[:2], CLASSES_3)["c1"] == {
        "accuracy": None,
        "log_loss": None,
        "photos": 0,
    }
    line = summary(metrics)
    assert line.startswith("train: val_accuracy 0.7500, val_log_loss ")
    assert "; per class: c2 1 photos, accuracy 1.0000, log loss 0.3567; c10 1 photos" in line


def test_two_class_train_metrics_are_the_base_figures():
    """The base scored P(dog) with the binary formula and called a dog above 0.5; the same inputs give the same bits."""
    rng = np.random.default_rng(1)
    p_dog = rng.random(40, dtype=np.float32)
    y = rng.integers(0, 2, 40)
    metrics = validation_metrics(160, y, np.column_stack([1 - p_dog, p_dog]), ("cats", "dogs"))
    base_log_loss = binary_log_loss(y, p_dog)  # the base's log_loss, moved there unchanged
    base_accuracy = float(np.mean((np.asarray(p_dog) > 0.5) == (np.asarray(y) == 1)))
    assert metrics["val_log_loss"] == base_log_loss and metrics["val_accuracy"] == base_accuracy
    assert list(metrics)[:4] == ["val_accuracy", "val_log_loss", "train_photos", "valid_photos"]
    dogs = y == 1
    assert metrics["per_class"]["dogs"]["log_loss"] == binary_log_loss(y[dogs], p_dog[dogs])
    assert metrics["per_class"]["cats"]["accuracy"] == float(np.mean(p_dog[~dogs] <= 0.5))


def test_the_undecodable_report_names_the_uniform_fallback():
    report = UndecodableReport(max_undecodable=0, class_count=3)
    rows = [type("Row", (), {"id": "7", "path": "test/unknown/7.jpg"})()]
    kept, _ = report.apply("test", rows, {0: "truncated"}, np.zeros((1, 2)), None)
    assert kept == rows and report.entries[0]["action"] == "P = 1/3 for every class"


def test_a_photo_target_is_its_class_index_in_the_class_list_and_a_class_it_lacks_is_refused():
    entry = PhotoEntry("train", "c10", "x.1", "train/c10/x.1.jpg", "0" * 32)
    assert photo_target(entry, CLASSES_3) == 1
    assert photo_target(PhotoEntry("train", "dogs", "dog.1", "train/dogs/dog.1.jpg", ""), ("cats", "dogs")) == 1
    assert photo_target(PhotoEntry("test", "unknown", "17", "test/unknown/17.jpg", ""), CLASSES_3) == -1
    horse = PhotoEntry("train", "horses", "h.1", "train/horses/h.1.jpg", "")
    with pytest.raises(
        StageError, match=r"train/horses/h.1.jpg is of class 'horses', which the class list \(cats, dogs\) lacks"
    ):
        photo_target(horse, ("cats", "dogs"))
