"""clip, the competition's log loss, and the submission format check."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.clip import clip_metrics, clip_probabilities, submission_frame
from tasks.competition.log_loss import accuracy, log_loss
from tasks.competition.submission_format import read_submission, validate_submission
from tasks.core.errors import StageError


def test_log_loss_by_hand():
    expected = -(math.log(0.9) + math.log(1 - 0.2) + math.log(0.6)) / 3
    assert log_loss(np.array([1, 0, 1]), np.array([0.9, 0.2, 0.6])) == pytest.approx(expected)
    assert log_loss(np.array([1]), np.array([0.0])) == pytest.approx(-math.log(1e-15))
    assert accuracy(np.array([1, 0, 1]), np.array([0.9, 0.2, 0.4])) == pytest.approx(2 / 3)


def test_clipping_bounds_and_the_submission_table():
    np.testing.assert_allclose(clip_probabilities(np.array([0.0, 0.5, 1.0]), (0.05, 0.95)), [0.05, 0.5, 0.95])
    test = pd.DataFrame({"id": [3, 1, 2], "p_dog": [0.99, 0.01, 0.5]})
    frame = submission_frame(test, (0.05, 0.95))
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["label"].tolist() == [0.05, 0.5, 0.95]


def test_clipping_rescues_a_confident_mistake():
    valid = pd.DataFrame({"target": [1, 0, 1], "p_dog": [0.0, 0.1, 0.9]})
    metrics = clip_metrics(valid, (0.05, 0.95))
    assert metrics["val_log_loss_clipped"] < metrics["val_log_loss_raw"]


def good() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "label": [0.1, 0.5, 0.9]})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (good().rename(columns={"label": "p"}), "header must be exactly id,label"),
        (pd.DataFrame({"id": [1, 1, 3], "label": [0.1, 0.5, 0.9]}), r"more than once: \[1\]"),
        (good().iloc[:2], r"1 test ids have no row, e.g. \[3\]"),
        (pd.DataFrame({"id": [1, 2, 3, 4], "label": [0.1] * 4}), r"not test ids, e.g. \[4\]"),
        (
            pd.DataFrame({"id": [1, 2, 3], "label": [0.1, np.nan, 1.5]}),
            r"2 labels are not numbers in \[0, 1\], at ids \[2, 3\]",
        ),
        (pd.DataFrame({"id": [1, 2, 3], "label": [0.1, -0.1, np.inf]}), "2 labels are not numbers"),
    ],
)
def test_submission_format_errors_name_the_problem(frame, message):
    with pytest.raises(StageError, match=message):
        validate_submission(frame, {1, 2, 3})


def test_a_good_submission_passes_and_unreadable_files_are_explained(tmp_path: Path):
    validate_submission(good(), {1, 2, 3})
    with pytest.raises(StageError, match="does not exist"):
        read_submission(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(StageError, match="not a readable CSV"):
        read_submission(tmp_path / "empty.csv")
