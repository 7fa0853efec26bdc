"""clip, the competition's log loss, and the submission format check, for two classes and for N."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tasks.clip import (
    AUTO_BOUNDS,
    FLOAT_FORMAT,
    auto_bounds,
    clip_metrics,
    clip_probabilities,
    resolve_bounds,
    submission_frame,
)
from tasks.competition.log_loss import accuracy, binary_log_loss, log_loss
from tasks.competition.submission_format import read_submission, validate_submission
from tasks.core.errors import StageError
from tasks.photos.class_list import ClassList, SubmissionLayout, submission_layout, write_class_list
from tasks.photos.manifest import PhotoEntry, write_manifest
from tasks.submit import test_ids as submission_ids  # not test_: pytest would collect it
from tests.support.workspace import PROJECT, merged, write_paths

DOGS_VS_CATS = ClassList(("cats", "dogs"), SubmissionLayout(("id", "label"), ("dogs",), "sample_submission.csv"))


def two_columns(p_dog: np.ndarray) -> np.ndarray:
    """P(dog) as predict's two columns, p_cats and p_dogs."""
    p_dog = np.asarray(p_dog, dtype=np.float64)
    return np.column_stack([1.0 - p_dog, p_dog])


def test_log_loss_by_hand():
    expected = -(math.log(0.9) + math.log(1 - 0.2) + math.log(0.6)) / 3
    assert log_loss(np.array([1, 0, 1]), two_columns([0.9, 0.2, 0.6])) == pytest.approx(expected)
    assert log_loss(np.array([1]), two_columns([0.0])) == pytest.approx(-math.log(1e-15))
    assert accuracy(np.array([1, 0, 1]), two_columns([0.9, 0.2, 0.4])) == pytest.approx(2 / 3)


# ---- two classes: the base's clip, kept here as it was, is the yardstick ------------------------------------------


def base_auto_bounds(target: np.ndarray, p_dog: np.ndarray) -> tuple[float, float]:
    """The base's auto_bounds: P(dog) clipped to each [b, 1 - b], the binary log loss, the first minimum."""
    losses = [binary_log_loss(target, np.clip(p_dog, b, 1.0 - b)) for b in AUTO_BOUNDS]
    best = float(AUTO_BOUNDS[int(np.argmin(losses))])
    return best, 1.0 - best


def base_submission_bytes(ids: list[str], p_dog: np.ndarray, bounds: tuple[float, float]) -> bytes:
    """The base's submission: `id,label` with integer ids sorted, P(dog) clipped, written as clip wrote it."""
    frame = pd.DataFrame({"id": [int(i) for i in ids], "label": np.clip(p_dog, *bounds)})
    return (
        frame.sort_values("id", kind="stable").reset_index(drop=True).to_csv(index=False, float_format="%.6f").encode()
    )


def predictions_test(ids: list[str], p: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    """predict's test table: id, one p_<class> column per class, undecodable."""
    frame = pd.DataFrame({"id": ids, **{f"p_{c}": p[:, i] for i, c in enumerate(classes)}})
    return frame.assign(undecodable=False)


def written(frame: pd.DataFrame) -> bytes:
    """The submission's bytes, as the clip stage writes it."""
    return frame.to_csv(index=False, float_format=FLOAT_FORMAT).encode()


@pytest.mark.parametrize("seed", range(5))
def test_two_classes_clip_exactly_as_the_base_did(seed: int):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, 40)
    p_dog = np.where(target == 1, rng.beta(5, 1.2, 40), rng.beta(1.2, 5, 40))
    p_dog[:3] = [0.0, 1.0, 0.999999]  # confident, and a mistake or two
    p = two_columns(p_dog)
    assert auto_bounds(target, p) == base_auto_bounds(target, p_dog)
    for bounds in [(0.05, 0.95), (0.02, 0.98), (0.3, 0.6), base_auto_bounds(target, p_dog)]:
        assert resolve_bounds(target, p, bounds) == bounds  # any 0 <= lo < hi <= 1 is taken for two classes
        metrics = clip_metrics(target, p, bounds)
        assert metrics == {
            "lo": bounds[0],
            "hi": bounds[1],
            "val_log_loss_raw": binary_log_loss(target, p_dog),
            "val_log_loss_clipped": binary_log_loss(target, np.clip(p_dog, *bounds)),
        }
        ids = [str(i) for i in rng.permutation(np.arange(1, 41))]
        frame = submission_frame(predictions_test(ids, p, DOGS_VS_CATS.classes), DOGS_VS_CATS, bounds)
        assert written(frame) == base_submission_bytes(ids, p_dog, bounds)


def test_clipping_bounds_and_the_submission_table():
    np.testing.assert_allclose(clip_probabilities(two_columns([0.0, 0.5, 1.0]), (0.05, 0.95))[:, 1], [0.05, 0.5, 0.95])
    p = two_columns([0.99, 0.01, 0.5])
    frame = submission_frame(predictions_test(["3", "1", "2"], p, DOGS_VS_CATS.classes), DOGS_VS_CATS, (0.05, 0.95))
    assert written(frame) == b"id,label\n1,0.050000\n2,0.500000\n3,0.950000\n"


def test_clipping_rescues_a_confident_mistake():
    metrics = clip_metrics(np.array([1, 0, 1]), two_columns([0.0, 0.1, 0.9]), (0.05, 0.95))
    assert metrics["val_log_loss_clipped"] < metrics["val_log_loss_raw"]


# ---- N classes -----------------------------------------------------------------------------------------------


def test_three_classes_are_clipped_then_each_row_rescaled_to_one():
    p = np.array([[0.98, 0.01, 0.01], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    clipped = clip_probabilities(p, (0.05, 0.95))
    # Row 1: (0.95, 0.05, 0.05) sums to 1.05; row 2 is inside the bounds; row 3: (0.05, 0.05, 0.95) sums to 1.05.
    expected = [[0.95 / 1.05, 0.05 / 1.05, 0.05 / 1.05], [0.2, 0.3, 0.5], [0.05 / 1.05, 0.05 / 1.05, 0.95 / 1.05]]
    np.testing.assert_allclose(clipped, expected, rtol=1e-12)
    np.testing.assert_allclose(clipped.sum(axis=1), 1.0, rtol=1e-12)
    target = np.array([1, 2, 0])  # row 1's and row 3's confident mistakes
    metrics = clip_metrics(target, p, (0.05, 0.95))
    by_hand = -(math.log(0.05 / 1.05) + math.log(0.5) + math.log(0.05 / 1.05)) / 3
    assert metrics["val_log_loss_clipped"] == pytest.approx(by_hand, rel=1e-12)
    assert metrics["val_log_loss_clipped"] < metrics["val_log_loss_raw"]


def test_auto_for_n_classes_tries_bounds_below_one_over_n_and_takes_the_lowest_loss():
    rng = np.random.default_rng(3)
    for n in (3, 5, 10):
        target = rng.integers(0, n, 60)
        p = rng.dirichlet(np.ones(n) * 0.3, 60)
        p[np.arange(60), target] += 2.0  # mostly right, and sure of it
        p /= p.sum(axis=1, keepdims=True)
        p[:4] = np.eye(n)[(target[:4] + 1) % n]  # four certain mistakes: clipping must pay
        lo, hi = auto_bounds(target, p)
        assert 0 < lo < 1 / n and hi == pytest.approx(1 - lo)
        chosen = log_loss(target, clip_probabilities(p, (lo, hi)))
        for b in AUTO_BOUNDS[np.less(AUTO_BOUNDS, 1 / n)]:
            assert chosen <= log_loss(target, clip_probabilities(p, (b, 1 - b))) + 1e-12
        assert chosen < log_loss(target, p)
    modest = np.array([[0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.1, 0.2, 0.7]])
    assert auto_bounds(np.array([0, 1, 2]), modest) == (0.0, 1.0)  # any clipping would cost: none is chosen
    # Sure and always wrong: the flattest bound wins, and for 3 classes that is the largest tried below 1/3, not 0.49.
    wrong = np.eye(3)[[1, 2, 0, 1]]
    assert auto_bounds(np.array([0, 1, 2, 0]), wrong)[0] == AUTO_BOUNDS[AUTO_BOUNDS < 1 / 3].max()


def test_bounds_that_would_flatten_n_classes_are_refused():
    p = np.full((2, 25), 1 / 25)
    with pytest.raises(StageError, match=r"clip.bounds \[0.05, 0.95\] can't clip 25 classes: lo must be below 1/25"):
        resolve_bounds(np.array([0, 1]), p, (0.05, 0.95))
    assert resolve_bounds(np.array([0, 1]), p, (0.01, 0.99)) == (0.01, 0.99)
    assert resolve_bounds(np.array([0, 1]), np.full((2, 3), 1 / 3), (0.05, 0.95)) == (0.05, 0.95)


def test_the_submission_takes_the_class_lists_header_column_for_column():
    classes = ("c0", "c1", "c2")
    layout = submission_layout(classes, ["img", "c0", "c1", "c2"], "sample_submission.csv")
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    test = predictions_test(["img_10.jpg", "img_2.jpg", "img_1.jpg"], p, classes)
    frame = submission_frame(test, ClassList(classes, layout), (0.0, 1.0))
    assert written(frame) == (
        b"img,c0,c1,c2\n"
        b"img_1.jpg,0.300000,0.400000,0.300000\n"
        b"img_2.jpg,0.100000,0.100000,0.800000\n"
        b"img_10.jpg,0.700000,0.200000,0.100000\n"
    )


def test_breed_columns_keep_the_samples_order_not_the_class_order(tmp_path: Path):
    classes = ("beagle", "boxer", "pug")  # natural order: the targets
    layout = submission_layout(classes, ["id", "pug", "beagle", "boxer"], "sample_submission.csv")
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])  # P(beagle), P(boxer), P(pug)
    test = predictions_test(["007", "0a1b"], p, classes)
    frame = submission_frame(test, ClassList(classes, layout), (0.0, 1.0))
    # Natural order: 0a1b (0, then a, 1, b) before 007 (7).
    assert written(frame) == b"id,pug,beagle,boxer\n0a1b,0.600000,0.200000,0.200000\n007,0.100000,0.600000,0.300000\n"
    (tmp_path / "submission.csv").write_bytes(written(frame))
    validate_submission(read_submission(tmp_path / "submission.csv"), {"007", "0a1b"}, layout.header)


def test_predictions_that_lack_a_class_are_refused():
    classes = ("c0", "c1", "c2")
    test = predictions_test(["1"], np.array([[0.5, 0.5]]), ("c0", "c1"))
    layout = submission_layout(classes, None, None)
    with pytest.raises(StageError, match=r"test.csv lacks the columns p_c2 for the 3 classes in the class list"):
        submission_frame(test, ClassList(classes, layout), (0.0, 1.0))


def clip_workspace(root: Path, class_list: ClassList, valid: pd.DataFrame, test: pd.DataFrame, bounds) -> None:
    """What the clip stage reads, in root: params.yaml, the paths, the class list and predict's two tables."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(merged(params, {"clip": {"bounds": bounds}})))
    write_paths(
        root,
        {"classes": "classes.json", "predictions": "predictions", "submission": "submission.csv", "metrics": "metrics"},
    )
    write_class_list(root / "classes.json", class_list)
    (root / "predictions").mkdir()
    valid.to_csv(root / "predictions/valid.csv", index=False)
    test.to_csv(root / "predictions/test.csv", index=False)


def test_the_stage_writes_three_classes_in_the_samples_layout(in_tmp: Path, capsys: pytest.CaptureFixture[str]):
    from tasks import clip as stage

    classes = ("c0", "c1", "c2")
    class_list = ClassList(classes, submission_layout(classes, ["img", "c0", "c1", "c2"], "sample_submission.csv"))
    valid = pd.DataFrame(
        {"id": ["a", "b"], "target": [0, 2], "p_c0": [0.9, 0.1], "p_c1": [0.05, 0.1], "p_c2": [0.05, 0.8]}
    )
    test = predictions_test(["img_2.jpg", "img_10.jpg"], np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]), classes)
    test.loc[1, "undecodable"] = True
    clip_workspace(in_tmp, class_list, valid, test, [0.05, 0.95])
    stage.main()
    assert (in_tmp / "submission.csv").read_text() == (
        "img,c0,c1,c2\nimg_2.jpg,0.904762,0.047619,0.047619\nimg_10.jpg,0.333333,0.333333,0.333333\n"
    )
    metrics = json.loads((in_tmp / "metrics/clip.json").read_text())
    assert list(metrics) == ["lo", "hi", "val_log_loss_raw", "val_log_loss_clipped"]
    assert metrics["val_log_loss_raw"] == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, rel=1e-12)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("clip: [0.05, 0.95] on each of 3 classes, rows rescaled to sum 1, validation log loss ")
    assert out[1] == (
        "clip: warning: the submission holds 1 fallback rows (1/3 for each class) for undecodable test photos: "
        "ids ['img_10.jpg']"
    )


def test_the_stage_keeps_dogs_vs_cats_line_and_bytes(in_tmp: Path, capsys: pytest.CaptureFixture[str]):
    from tasks import clip as stage

    valid = pd.DataFrame({"id": ["cat.1", "dog.1"], "target": [0, 1], "p_cats": [0.8, 0.3], "p_dogs": [0.2, 0.7]})
    test = predictions_test(["10", "9", "1"], two_columns([0.97, 0.5, 0.01]), DOGS_VS_CATS.classes)
    clip_workspace(in_tmp, DOGS_VS_CATS, valid, test, [0.05, 0.95])
    stage.main()
    submission = (in_tmp / "submission.csv").read_bytes()
    assert submission == base_submission_bytes(["10", "9", "1"], np.array([0.97, 0.5, 0.01]), (0.05, 0.95))
    assert submission == b"id,label\n1,0.050000\n9,0.500000\n10,0.950000\n"
    raw = -(math.log(0.8) + math.log(0.7)) / 2
    assert capsys.readouterr().out == f"clip: [0.05, 0.95], validation log loss {raw:.4f} -> {raw:.4f}\n"


# ---- the format check ---------------------------------------------------------------------------------------------


def good() -> pd.DataFrame:
    return pd.DataFrame({"id": ["1", "2", "3"], "label": ["0.1", "0.5", "0.9"]})


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
        (pd.DataFrame({"id": ["1", "2", "3"], "label": ["0.1", "", "high"]}), r"2 labels are not numbers"),
        (pd.DataFrame({"id": ["01", "2", "3"], "label": [0.1] * 3}), r"1 test ids have no row, e.g. \[1\]"),
    ],
)
def test_submission_format_errors_name_the_problem(frame, message):
    with pytest.raises(StageError, match=message):
        validate_submission(frame, {"1", "2", "3"}, ("id", "label"))


N_HEADER = ("img", "c0", "c1", "c2")


def n_good() -> pd.DataFrame:
    return pd.DataFrame({"img": ["img_1.jpg", "img_2.jpg"], "c0": [0.2, 0.1], "c1": [0.3, 0.1], "c2": [0.5, 0.8]})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            n_good()[["img", "c1", "c0", "c2"]],
            r"has columns \['img', 'c1', 'c0', 'c2'\]; the header must be exactly img,c0",
        ),
        (n_good().rename(columns={"img": "id"}), "the header must be exactly img,c0,c1,c2"),
        (n_good().drop(columns="c2"), "the header must be exactly img,c0,c1,c2"),
        (n_good().assign(img=["img_1.jpg", "img_1.jpg"]), r"ids appear more than once: \[img_1.jpg\]"),
        (n_good().assign(img=["img_1.jpg", "img_3.jpg"]), r"1 test ids have no row, e.g. \[img_2.jpg\]"),
        (
            n_good().assign(c1=[np.nan, 1.2]),
            r"2 probabilities are not numbers in \[0, 1\], at ids \[img_1.jpg, img_2.jpg\] \(columns c1\)",
        ),
        (n_good().assign(c0=[-0.1, 0.1], c2=[0.5, np.inf]), r"2 probabilities .* \(columns c0, c2\)"),
    ],
)
def test_n_class_submission_errors_name_the_problem(frame, message):
    with pytest.raises(StageError, match=message):
        validate_submission(frame, {"img_1.jpg", "img_2.jpg"}, N_HEADER)


def test_a_good_submission_passes_and_unreadable_files_are_explained(tmp_path: Path):
    validate_submission(good(), {"1", "2", "3"}, ("id", "label"))
    validate_submission(n_good(), {"img_1.jpg", "img_2.jpg"}, N_HEADER)
    with pytest.raises(StageError, match="does not exist"):
        read_submission(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(StageError, match="not a readable CSV"):
        read_submission(tmp_path / "empty.csv")


def test_ids_are_read_and_checked_as_the_strings_the_manifest_holds(tmp_path: Path):
    (tmp_path / "sub.csv").write_text("id,label\n007,0.5\n8,0.25\n")
    frame = read_submission(tmp_path / "sub.csv")
    assert frame["id"].tolist() == ["007", "8"]
    write_manifest(
        tmp_path / "split.csv",
        [PhotoEntry("test", "unknown", i, f"test/unknown/{i}.jpg", "0" * 32) for i in ("007", "8")]
        + [PhotoEntry("train", "cats", "cat.1", "train/cats/cat.1.jpg", "0" * 32)],
    )
    assert submission_ids(tmp_path / "split.csv") == {"007", "8"}
    validate_submission(frame, submission_ids(tmp_path / "split.csv"), ("id", "label"))
    with pytest.raises(StageError, match=r"1 test ids have no row, e.g. \[007\]"):
        validate_submission(frame.assign(id=["7", "8"]), {"007", "8"}, ("id", "label"))
