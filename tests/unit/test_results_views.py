"""What a person checks after a run: the five validation views, the first-layer filters, and auto clipping."""

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.clip import AUTO_BOUNDS, auto_bounds, clip_metrics, resolve_bounds
from tasks.competition.log_loss import binary_log_loss
from tasks.core.errors import StageError
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.photos.validation_views import (
    LETTERBOX,
    VIEWS,
    Group,
    cell_title,
    choose_views,
    letterboxed,
    view_groups,
    write_views,
)
from tasks.predict import confusion_frame
from tasks.vgg.filter_grid import filter_images, write_filter_grid

# Ten validation photos: 5 cats (0) then 5 dogs (1); two confident mistakes (rows 1 and 8), one near-coin-toss (row 4).
TARGET = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
P_DOG = np.array([0.10, 0.97, 0.02, 0.30, 0.51, 0.80, 0.99, 0.60, 0.01, 0.49])
PROBABILITIES = np.column_stack([1 - P_DOG, P_DOG])  # what the head gives: a column per class
CLASSES = ("cats", "dogs")
# Nine photos of three classes, three each. Called wrong: row 1 (birds as cats), row 4 (cats as birds) and row 8
# (dogs as birds, surest of all); row 6 is the nearest a three-way tie.
TARGET_3 = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
PROBABILITIES_3 = np.array(
    [
        [0.80, 0.10, 0.10],
        [0.20, 0.70, 0.10],
        [0.60, 0.30, 0.10],
        [0.05, 0.90, 0.05],
        [0.50, 0.40, 0.10],
        [0.10, 0.55, 0.35],
        [0.30, 0.30, 0.40],
        [0.10, 0.20, 0.70],
        [0.95, 0.03, 0.02],
    ]
)
CLASSES_3 = ("birds", "cats", "dogs")


@contextmanager
def stored(files: list[Path]):
    """files packed in a photo store beside them (members train/x/<name>, then deleted), opened; yields the features
    index's paths for them (organized/<member>), the store and organized."""
    root = files[0].parent
    organized, members = root / "organized", [f"train/x/{f.name}" for f in files]
    with PhotoStoreWriter(root / "photos.zip") as writer:
        for file, member in zip(files, members, strict=True):
            writer.add_bytes(member, file.read_bytes())
            file.unlink()  # the views read the store, not a file
    with PhotoStore(root / "photos.zip") as store:
        yield [str(organized / m) for m in members], store, organized


def test_views_pick_the_right_photos():
    views = choose_views(TARGET, PROBABILITIES, tiles=2)
    correct = {0, 2, 3, 5, 6, 7}
    assert len(views["random_correct"]) == 2 and set(views["random_correct"]) <= correct
    assert len(views["random_incorrect"]) == 2 and set(views["random_incorrect"]) <= {1, 4, 8, 9}
    assert views["confident_correct"] == [2, 0, 6, 5]  # cats most sure of cat, then dogs most sure of dog
    assert views["confident_incorrect"] == [1, 4, 8, 9]  # cats called dog, then dogs called cat, surest first
    assert views["uncertain"] == [4, 9]


def two_classes(p_class_1: list[float]) -> np.ndarray:
    """A two-class probability table from P(class 1)."""
    p = np.asarray(p_class_1)
    return np.column_stack([1 - p, p])


def test_views_of_three_classes_take_each_class_in_turn_and_rank_by_the_called_class():
    views = choose_views(TARGET_3, PROBABILITIES_3, tiles=2)
    assert set(views["random_correct"]) <= {0, 2, 3, 5, 6, 7} and len(views["random_correct"]) == 2
    assert sorted(views["random_incorrect"]) in ([1, 4], [1, 8], [4, 8])
    assert views["confident_correct"] == [0, 2, 3, 5, 7, 6]  # birds, cats, dogs: the called class's p highest first
    assert views["confident_incorrect"] == [1, 4, 8]  # each class's mistakes, surest first
    assert views["uncertain"] == [6, 4]  # the called class's probability lowest: 0.40, then 0.50


def test_views_of_three_classes_name_the_classes_in_panels_and_titles():
    rows = choose_views(TARGET_3, PROBABILITIES_3)["confident_incorrect"]
    title, groups = view_groups("confident_incorrect", rows, TARGET_3, PROBABILITIES_3, CLASSES_3)
    order = "surest first (the called class's probability highest)"
    assert title == "most confident incorrect, by true class"
    assert groups == [
        Group(f"birds called another class: 1 of 1, {order}", [1]),
        Group(f"cats called another class: 1 of 1, {order}", [4]),
        Group(f"dogs called another class: 1 of 1, {order}", [8]),
    ]
    _, groups = view_groups("confident_correct", [0], TARGET_3, PROBABILITIES_3, CLASSES_3)
    assert [g.heading for g in groups] == [
        f"birds called birds: 1 of 2, {order}",
        f"cats called cats: 0 of 2, {order}",
        f"dogs called dogs: 0 of 2, {order}",
    ] and groups[1].rows == []
    assert view_groups("uncertain", [6], TARGET_3, PROBABILITIES_3, CLASSES_3)[0] == (
        "most uncertain: the called class's probability lowest"
    )
    assert cell_title(PROBABILITIES_3[8], 2, CLASSES_3) == "dogs\ncalled birds, P 0.950"
    assert cell_title(PROBABILITIES[1], 0, CLASSES) == "cats, P(dogs) 0.970\ncalled dogs"  # two: P(class 1)
    assert (
        cell_title(PROBABILITIES_3[0], 0, ("a" * 30, "b", "c"))
        == "a" * 21 + "\u2026\ncalled " + "a" * 21 + "\u2026, P 0.800"
    )


def test_three_class_grids_are_written(tmp_path: Path):
    files = []
    for i in range(len(TARGET_3)):
        Image.new("L", (60 + 20 * i, 30), 40 * int(TARGET_3[i])).save(tmp_path / f"{i}.png")  # grey, wide
        files.append(tmp_path / f"{i}.png")
    with stored(files) as (paths, store, organized):
        tiles = write_views(paths, TARGET_3, PROBABILITIES_3, CLASSES_3, tmp_path / "views", store, organized)
    assert tiles == {
        "random_correct": 4,
        "random_incorrect": 3,
        "confident_correct": 6,
        "confident_incorrect": 3,
        "uncertain": 4,
    }
    assert all((tmp_path / "views" / f"{view}.png").is_file() for view in VIEWS)


def test_views_show_fewer_tiles_when_fewer_photos_qualify():
    all_right = choose_views(np.array([0, 1, 1]), two_classes([0.2, 0.9, 0.7]), tiles=4)
    assert all_right["random_incorrect"] == [] and all_right["confident_incorrect"] == []
    assert len(all_right["random_correct"]) == 3 and all_right["uncertain"] == [2, 0, 1]
    one_mistake = choose_views(np.array([0, 1, 1, 0]), two_classes([0.2, 0.9, 0.3, 0.1]), tiles=4)
    assert one_mistake["random_incorrect"] == [2] and one_mistake["confident_incorrect"] == [2]


def test_the_five_grids_are_written_with_their_tile_counts(tmp_path: Path):
    files = []
    for i, dog in enumerate(TARGET):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40, 30), (200, 100, 50) if dog else (50, 100, 200)).save(path)
        files.append(path)
    with stored(files) as (paths, store, organized):
        tiles = write_views(paths, TARGET, PROBABILITIES, CLASSES, tmp_path / "views", store, organized)
        empty = write_views(
            paths[:3], TARGET[:3], two_classes([0.1, 0.2, 0.3]), CLASSES, tmp_path / "none", store, organized
        )
    assert tiles == {
        "random_correct": 4,
        "random_incorrect": 4,
        "confident_correct": 6,
        "confident_incorrect": 4,
        "uncertain": 4,
    }
    sizes = {view: Image.open(tmp_path / "views" / f"{view}.png").size for view in VIEWS}
    assert sizes["confident_correct"][1] > sizes["uncertain"][1]  # six tiles need a second row
    assert empty["random_incorrect"] == 0 and (tmp_path / "none" / "random_incorrect.png").is_file()


def test_the_views_read_each_photo_from_the_store_by_its_manifest_path(tmp_path: Path):
    """A photo is the store's member at its path under organized; one the store lacks, or outside, is explained."""
    files = []
    for i, dog in enumerate(TARGET):
        Image.new("RGB", (40, 30), (200, 100, 50) if dog else (50, 100, 200)).save(tmp_path / f"{i}.jpg")
        files.append(tmp_path / f"{i}.jpg")
    with stored(files) as (paths, store, organized):
        assert not organized.exists()
        missing = [*paths[:-1], str(organized / "train/x/gone.jpg")]
        with pytest.raises(StageError, match=r"photos\.zip lacks train/x/gone\.jpg, which the manifest lists"):
            write_views(missing, TARGET, PROBABILITIES, CLASSES, tmp_path / "views", store, organized)
        outside = [str(tmp_path / "elsewhere" / Path(p).name) for p in paths]
        with pytest.raises(
            StageError, match=r"the features list '.*elsewhere/\d\.jpg', which is not under .*organized/"
        ):
            write_views(outside, TARGET, PROBABILITIES, CLASSES, tmp_path / "views", store, organized)


def test_the_confident_views_show_each_class_in_its_own_labelled_panel():
    title, groups = view_groups("confident_incorrect", [1, 4, 8, 9], TARGET, PROBABILITIES, CLASSES)
    assert title == "most confident incorrect, by true class"
    assert groups == [
        Group("cats called dogs: 2 of 2, surest first (P(dogs) nearest 1)", [1, 4]),
        Group("dogs called cats: 2 of 2, surest first (P(dogs) nearest 0)", [8, 9]),
    ]
    chosen = choose_views(TARGET, PROBABILITIES, tiles=1)["confident_correct"]
    _, groups = view_groups("confident_correct", chosen, TARGET, PROBABILITIES, CLASSES)
    assert groups == [
        Group("cats called cats: 1 of 3, surest first (P(dogs) nearest 0)", [2]),
        Group("dogs called dogs: 1 of 3, surest first (P(dogs) nearest 1)", [6]),
    ]
    _, groups = view_groups("confident_incorrect", [], TARGET[:1], PROBABILITIES[:1], CLASSES)
    assert [g.heading for g in groups] == ["cats called dogs: none", "dogs called cats: none"]
    assert view_groups("uncertain", [4, 9], TARGET, PROBABILITIES, CLASSES) == (
        "most uncertain: P(dogs) nearest 0.5",
        [Group("all photos: 2 of 10, nearest a coin toss first", [4, 9])],
    )
    assert view_groups("random_incorrect", [1, 8], TARGET, PROBABILITIES, CLASSES) == (
        "incorrect, at random",
        [Group("incorrect photos: 2 of 4, at random", [1, 8])],
    )


def test_a_photo_keeps_its_aspect_ratio_between_bars(tmp_path: Path):
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "wide.png")
    Image.new("RGB", (10, 20), (0, 0, 255)).save(tmp_path / "tall.png")
    wide, tall = letterboxed(tmp_path / "wide.png", 20), letterboxed(tmp_path / "tall.png", 20)
    assert wide.shape == tall.shape == (20, 20, 3)
    assert (wide[:5] == LETTERBOX).all() and (wide[15:] == LETTERBOX).all()  # 40x20 fits as 20x10: bars above, below
    assert (wide[5:15] == (255, 0, 0)).all()
    assert (tall[:, :5] == LETTERBOX).all() and (tall[:, 15:] == LETTERBOX).all()  # 10x20 fits as is: bars beside
    assert (tall[:, 5:15] == (0, 0, 255)).all()


def test_the_same_predictions_give_the_same_png_bytes(tmp_path: Path):
    files = []
    for i, dog in enumerate(TARGET):
        Image.new("RGB", (30 + 10 * i, 40), (200, 100, 50) if dog else (50, 100, 200)).save(tmp_path / f"{i}.jpg")
        files.append(tmp_path / f"{i}.jpg")
    with stored(files) as (paths, store, organized):
        write_views(paths, TARGET, PROBABILITIES, CLASSES, tmp_path / "a", store, organized)
        write_views(paths, TARGET, PROBABILITIES, CLASSES, tmp_path / "b", store, organized)
    for view in VIEWS:
        png = (tmp_path / "a" / f"{view}.png").read_bytes()
        assert png == (tmp_path / "b" / f"{view}.png").read_bytes()
        assert b"Software" not in png and b"atplotlib" not in png  # no version stamp to differ between machines


def test_first_layer_filters_are_drawn_as_rgb_tiles(tmp_path: Path):
    kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 64))
    kernel[..., 0] = 0.0
    kernel[:, :, 0, 0] = 1.0  # filter 0 reads only VGG16's first input channel, blue in BGR
    images = filter_images(kernel)
    assert images.shape == (64, 3, 3, 3) and images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images[0][..., 2], 1.0)  # shown in the blue channel of RGB
    np.testing.assert_array_equal(images[0][..., :2], 0.0)
    assert write_filter_grid(kernel, tmp_path / "filters.png") == 64
    assert Image.open(tmp_path / "filters.png").format == "PNG"


def test_confusion_rows_name_actual_and_predicted_classes():
    frame = confusion_frame(TARGET[:5], PROBABILITIES[:5], CLASSES)
    assert frame.to_dict("list") == {"actual": ["cats"] * 5, "predicted": ["cats", "dogs", "cats", "cats", "dogs"]}
    assert confusion_frame(np.array([1]), two_classes([0.5]), CLASSES)["predicted"].tolist() == ["cats"]  # as accuracy


def test_confusion_rows_of_three_classes_are_an_n_by_n_count_of_names():
    frame = confusion_frame(TARGET_3, PROBABILITIES_3, CLASSES_3)
    assert frame["actual"].tolist() == ["birds"] * 3 + ["cats"] * 3 + ["dogs"] * 3
    assert frame["predicted"].tolist() == ["birds", "cats", "birds", "cats", "birds", "cats", "dogs", "dogs", "birds"]
    counts = pd.crosstab(frame["actual"], frame["predicted"])
    assert counts.loc["dogs", "birds"] == 1 and counts.loc["birds", "cats"] == 1 and counts.values.sum() == 9


def test_auto_clip_lowers_the_loss_of_confident_mistakes_and_never_raises_it():
    lo, hi = auto_bounds(TARGET, np.column_stack([1 - P_DOG, P_DOG]))
    assert 0 < lo < 0.5 and hi == pytest.approx(1 - lo)
    metrics = clip_metrics(TARGET, np.column_stack([1 - P_DOG, P_DOG]), (lo, hi))
    assert metrics["val_log_loss_clipped"] < metrics["val_log_loss_raw"]
    for b in AUTO_BOUNDS:
        assert metrics["val_log_loss_clipped"] <= binary_log_loss(TARGET, np.clip(P_DOG, b, 1 - b)) + 1e-12
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 30)
        p = np.where(y == 1, rng.beta(5, 2, 30), rng.beta(2, 5, 30))
        lo, hi = auto_bounds(y, np.column_stack([1 - p, p]))
        assert binary_log_loss(y, np.clip(p, lo, hi)) <= binary_log_loss(y, p)


def test_auto_clip_leaves_modest_predictions_alone_and_explicit_bounds_pass_through():
    y, p = np.array([0, 1, 0, 1]), np.array([[0.7, 0.3], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    assert auto_bounds(y, p) == (0.0, 1.0)  # any clipping would cost: none is chosen
    assert resolve_bounds(y, p, (0.02, 0.98)) == (0.02, 0.98)
    assert resolve_bounds(y, p, "auto") == (0.0, 1.0)
