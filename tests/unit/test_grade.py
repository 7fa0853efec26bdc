"""grade: a submission scored against answers by the competition's log loss, for two classes and for N."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tasks.competition.grade import grade, read_labels
from tasks.competition.submission_format import read_submission
from tasks.core.errors import StageError
from tasks.photos.class_list import ClassList, submission_layout, write_class_list
from tests.support.workspace import PROJECT, tool_env

KAGGLE_EPS = 1e-15  # Kaggle's clip, written out here so the sums below are worked by hand


def write_csv(path: Path, rows: dict) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def grade_run(*args: object) -> subprocess.CompletedProcess:
    """`python -m tasks.competition.grade` with args, run from the checkout."""
    return subprocess.run(
        [sys.executable, "-m", "tasks.competition.grade", *map(str, args)],
        cwd=PROJECT,
        env=tool_env(),
        capture_output=True,
        text=True,
    )


def run_grade(*args: object) -> str:
    """grade's stdout, which must succeed."""
    result = grade_run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def class_list_file(path: Path, classes: tuple[str, ...], header: list[str] | None) -> Path:
    """A class list as reorganize writes it: classes and the submission's layout."""
    write_class_list(path, ClassList(classes, submission_layout(classes, header, "sample_submission.csv")))
    return path


def test_grade_agrees_with_a_hand_computation_and_says_what_it_means(tmp_path: Path):
    submission = write_csv(tmp_path / "sub.csv", {"id": [3, 1, 2], "label": [0.2, 0.9, 0.6]})
    labels = write_csv(tmp_path / "labels.csv", {"id": [1, 2, 3], "label": [1, 0, 0]})
    by_hand = -(math.log(0.9) + math.log(1 - 0.6) + math.log(1 - 0.2)) / 3
    score = grade(read_submission(submission), read_labels(labels))
    assert score.log_loss == pytest.approx(by_hand, rel=1e-12)
    assert (score.photos, score.accuracy, score.chance_log_loss) == (3, pytest.approx(2 / 3), math.log(2))
    # 0/1 answers don't name the classes: the column holds P(class 1).
    assert run_grade(submission, labels).splitlines() == [
        f"log loss  {by_hand:.6f}  on 3 photos (lower is better)",
        "chance    0.693147  (ln 2: P(class 1) = 0.5 for every photo)",
        "accuracy  0.666667  (2 of 3; P(class 1) > 0.5 counts as class 1)",
    ]
    machine = json.loads(run_grade(submission, labels, "--json"))
    assert machine == {
        "log_loss": pytest.approx(by_hand, rel=1e-12),
        "photos": 3,
        "accuracy": pytest.approx(2 / 3),
        "chance_log_loss": pytest.approx(math.log(2)),
    }
    # The pipeline's class list names them.
    classes = class_list_file(tmp_path / "classes.json", ("cats", "dogs"), ["id", "label"])
    assert run_grade(submission, labels, "--classes", classes).splitlines()[1:] == [
        "chance    0.693147  (ln 2: P(dogs) = 0.5 for every photo)",
        "accuracy  0.666667  (2 of 3; P(dogs) > 0.5 counts as dogs)",
    ]


def test_a_one_column_submission_against_class_names_holds_p_of_the_second_in_natural_order(tmp_path: Path):
    submission = read_submission(write_csv(tmp_path / "sub.csv", {"id": [1, 2, 3], "label": [0.9, 0.2, 0.6]}))
    answers = read_labels(write_csv(tmp_path / "answers.csv", {"id": [1, 2, 3], "class": ["dog", "cat", "cat"]}))
    score = grade(submission, answers)  # cat before dog: label is P(dog)
    assert score.log_loss == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3, rel=1e-12)
    assert (score.accuracy, score.positive, score.classes) == (pytest.approx(2 / 3), "dog", ("cat", "dog"))
    # Answers of one class can't say which class the column holds; the class list can.
    dogs_only = read_labels(write_csv(tmp_path / "dogs.csv", {"id": [1, 2, 3], "class": ["dogs"] * 3}))
    with pytest.raises(StageError, match=r"the answers name 1 classes \(dogs\) but the submission has one probability"):
        grade(submission, dogs_only)
    dogs_vs_cats = ClassList(("cats", "dogs"), submission_layout(("cats", "dogs"), ["id", "label"], "s.csv"))
    score = grade(submission, dogs_only, dogs_vs_cats)
    assert score.log_loss == pytest.approx(-(math.log(0.9) + math.log(0.2) + math.log(0.6)) / 3, rel=1e-12)
    three = read_labels(write_csv(tmp_path / "three.csv", {"id": [1, 2, 3], "class": ["a", "b", "c"]}))
    with pytest.raises(StageError, match=r"the answers name 3 classes \(a, b, c\) .* give --classes"):
        grade(submission, three)


def test_n_classes_are_scored_by_kaggles_multiclass_log_loss_worked_by_hand(tmp_path: Path):
    # The submission's columns in its sample's order (not the class order), ids with a suffix, rows out of order.
    submission = write_csv(
        tmp_path / "sub.csv",
        {
            "img": ["img_10.jpg", "img_1.jpg", "img_3.jpg", "img_2.jpg"],
            "c2": [0.0, 0.1, 0.2, 0.5],
            "c0": [0.4, 0.6, 0.2, 0.25],
            "c1": [0.4, 0.3, 0.2, 0.25],
        },
    )
    answers = write_csv(
        tmp_path / "answers.csv",
        {"img": ["img_1.jpg", "img_2.jpg", "img_3.jpg", "img_10.jpg"], "class": ["c0", "c1", "c2", "c2"]},
    )
    # Kaggle: clip to [1e-15, 1 - 1e-15], rescale each row to sum 1, mean -log p of the true class.
    img_1 = math.log(0.6 / (0.1 + 0.6 + 0.3))  # c0, a row that sums to 1: 0.5108
    img_2 = math.log(0.25 / (0.5 + 0.25 + 0.25))  # c1, while c2 is called: 1.3863
    img_3 = math.log(0.2 / (0.2 + 0.2 + 0.2))  # c2, a row that sums to 0.6, rescaled to 1/3 each: 1.0986
    img_10 = math.log(KAGGLE_EPS / (KAGGLE_EPS + 0.4 + 0.4))  # c2 at 0, clipped to 1e-15: 34.5388 - 0.2231
    by_hand = -(img_1 + img_2 + img_3 + img_10) / 4
    assert by_hand == pytest.approx((0.5108 + 1.3863 + 1.0986 + 34.3157) / 4, abs=1e-4)
    score = grade(read_submission(submission), read_labels(answers))
    assert score.log_loss == pytest.approx(by_hand, rel=1e-12)
    # Called: img_1 c0 (right), img_2 c2, img_3 and img_10 ties that go to the first class, c0: 1 of 4.
    assert (score.photos, score.accuracy, score.chance_log_loss) == (4, 0.25, pytest.approx(math.log(3)))
    assert run_grade(submission, answers).splitlines() == [
        f"log loss  {by_hand:.6f}  on 4 photos (lower is better)",
        "chance    1.098612  (ln 3: 1/3 for each class of every photo)",
        "accuracy  0.250000  (1 of 4; the most probable class counts as called)",
    ]
    # With the class list, its header must be the submission's, exactly.
    classes = class_list_file(tmp_path / "classes.json", ("c0", "c1", "c2"), ["img", "c2", "c0", "c1"])
    assert json.loads(run_grade(submission, answers, "--classes", classes, "--json"))["log_loss"] == pytest.approx(
        by_hand
    )
    other = class_list_file(tmp_path / "other.json", ("c0", "c1", "c2"), ["img", "c0", "c1", "c2"])
    refused = grade_run(submission, answers, "--classes", other)
    assert refused.returncode == 2 and refused.stderr.splitlines() == [
        f"error: grade: {submission} has columns ['img', 'c2', 'c0', 'c1']; the header must be exactly img,c0,c1,c2"
    ]


def test_grade_refuses_answers_it_cant_score_in_one_line(tmp_path: Path):
    submission = read_submission(
        write_csv(tmp_path / "sub.csv", {"id": ["a", "b"], "c0": [0.2, 0.1], "c1": [0.3, 0.1], "c2": [0.5, 0.8]})
    )
    unknown = read_labels(write_csv(tmp_path / "unknown.csv", {"id": ["a", "b"], "class": ["c9", "c1"]}))
    with pytest.raises(StageError, match=r"names 1 classes the submission has no column for: c9; it scores c0, c1, c2"):
        grade(submission, unknown)
    zero_one = read_labels(write_csv(tmp_path / "zero_one.csv", {"id": ["a", "b"], "label": [0, 1]}))
    with pytest.raises(StageError, match="holds 0/1 labels, which score two classes; the submission scores 3"):
        grade(submission, zero_one)
    with pytest.raises(StageError, match=r"has columns \['id', 'breed'\]; it must have the header id,label"):
        read_labels(write_csv(tmp_path / "breed.csv", {"id": ["a"], "breed": ["c0"]}))
    with pytest.raises(StageError, match=r"1 rows have no class, at ids \[b\]"):
        read_labels(write_csv(tmp_path / "blank.csv", {"id": ["a", "b"], "class": ["c0", " "]}))
    with pytest.raises(StageError, match=r"ids appear more than once: \[a\]"):
        read_labels(write_csv(tmp_path / "twice.csv", {"id": ["a", "a"], "class": ["c0", "c1"]}))
    with pytest.raises(StageError, match=r"a submission needs an id column and probabilities"):
        grade(submission[["id"]], unknown)


def test_grade_applies_submits_format_checks_and_explains_bad_labels(tmp_path: Path):
    labels = read_labels(write_csv(tmp_path / "labels.csv", {"id": [1, 2, 3], "label": [1, 0, 0]}))
    with pytest.raises(StageError, match=r"1 test ids have no row, e.g. \[3\]"):
        grade(pd.DataFrame({"id": [1, 2], "label": [0.5, 0.5]}), labels)
    with pytest.raises(StageError, match="labels are not numbers in"):
        grade(pd.DataFrame({"id": [1, 2, 3], "label": [0.5, 1.5, 0.5]}), labels)
    with pytest.raises(StageError, match=r"every label must be 1 or 0 \(1 for the class the submission's label is P"):
        read_labels(write_csv(tmp_path / "soft.csv", {"id": [1], "label": [0.7]}))
    with pytest.raises(StageError, match="does not exist"):
        read_labels(tmp_path / "missing.csv")
    bad = grade_run(tmp_path / "nope.csv", tmp_path / "labels.csv")
    assert bad.returncode == 2 and "error: grade: submission" in bad.stderr and "Traceback" not in bad.stderr


def test_help_says_which_class_one_column_holds():
    text = " ".join(run_grade("--help").split())
    assert "`id,class` (class names) or `id,label`" in text
    assert "--classes says (the pipeline's data/classes.json" in text
    assert "the second in natural order of the class names the answers hold (cats before dogs)" in text


def test_zero_one_answers_against_two_class_columns_take_the_second_in_natural_order(tmp_path: Path):
    submission = read_submission(write_csv(tmp_path / "sub.csv", {"id": [1, 2], "dog": [0.8, 0.6], "cat": [0.2, 0.6]}))
    answers = read_labels(write_csv(tmp_path / "answers.csv", {"id": [1, 2], "label": [1, 0]}))
    score = grade(submission, answers)  # cat, dog: 1 is dog; two columns are scored as Kaggle's N-class log loss
    assert score.log_loss == pytest.approx(-(math.log(0.8) + math.log(0.6 / 1.2)) / 2, rel=1e-12)
    assert (score.classes, score.positive, score.accuracy) == (("cat", "dog"), None, 1.0)  # the tie goes to cat
