"""What a person checks after a run: the five validation views, the first-layer filters, and auto clipping."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.clip import AUTO_BOUNDS, auto_bounds, clip_metrics, resolve_bounds
from tasks.competition.log_loss import binary_log_loss
from tasks.photos.validation_views import LETTERBOX, VIEWS, Group, choose_views, letterboxed, view_groups, write_views
from tasks.predict import confusion_frame
from tasks.vgg.filter_grid import filter_images, write_filter_grid

# Ten validation photos: 5 cats (0) then 5 dogs (1); two confident mistakes (rows 1 and 8), one near-coin-toss (row 4).
TARGET = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
P_DOG = np.array([0.10, 0.97, 0.02, 0.30, 0.51, 0.80, 0.99, 0.60, 0.01, 0.49])


def test_views_pick_the_right_photos():
    views = choose_views(TARGET, P_DOG, tiles=2)
    correct = {0, 2, 3, 5, 6, 7}
    assert len(views["random_correct"]) == 2 and set(views["random_correct"]) <= correct
    assert len(views["random_incorrect"]) == 2 and set(views["random_incorrect"]) <= {1, 4, 8, 9}
    assert views["confident_correct"] == [2, 0, 6, 5]  # cats most sure of cat, then dogs most sure of dog
    assert views["confident_incorrect"] == [1, 4, 8, 9]  # cats called dog, then dogs called cat, surest first
    assert views["uncertain"] == [4, 9]


def test_views_show_fewer_tiles_when_fewer_photos_qualify():
    all_right = choose_views(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.7]), tiles=4)
    assert all_right["random_incorrect"] == [] and all_right["confident_incorrect"] == []
    assert len(all_right["random_correct"]) == 3 and all_right["uncertain"] == [2, 0, 1]
    one_mistake = choose_views(np.array([0, 1, 1, 0]), np.array([0.2, 0.9, 0.3, 0.1]), tiles=4)
    assert one_mistake["random_incorrect"] == [2] and one_mistake["confident_incorrect"] == [2]


def test_the_five_grids_are_written_with_their_tile_counts(tmp_path: Path):
    paths = []
    for i, dog in enumerate(TARGET):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40, 30), (200, 100, 50) if dog else (50, 100, 200)).save(path)
        paths.append(str(path))
    tiles = write_views(paths, TARGET, P_DOG, tmp_path / "views")
    assert tiles == {
        "random_correct": 4,
        "random_incorrect": 4,
        "confident_correct": 6,
        "confident_incorrect": 4,
        "uncertain": 4,
    }
    sizes = {view: Image.open(tmp_path / "views" / f"{view}.png").size for view in VIEWS}
    assert sizes["confident_correct"][1] > sizes["uncertain"][1]  # six tiles need a second row
    empty = write_views(paths[:3], TARGET[:3], np.array([0.1, 0.2, 0.3]), tmp_path / "none")
    assert empty["random_incorrect"] == 0 and (tmp_path / "none" / "random_incorrect.png").is_file()


def test_the_confident_views_show_each_class_in_its_own_labelled_panel():
    title, groups = view_groups("confident_incorrect", [1, 4, 8, 9], TARGET, P_DOG)
    assert title == "most confident incorrect, by true class"
    assert groups == [
        Group("cats called dog: 2 of 2, surest first (P(dog) nearest 1)", [1, 4]),
        Group("dogs called cat: 2 of 2, surest first (P(dog) nearest 0)", [8, 9]),
    ]
    _, groups = view_groups(
        "confident_correct", choose_views(TARGET, P_DOG, tiles=1)["confident_correct"], TARGET, P_DOG
    )
    assert groups == [
        Group("cats called cat: 1 of 3, surest first (P(dog) nearest 0)", [2]),
        Group("dogs called dog: 1 of 3, surest first (P(dog) nearest 1)", [6]),
    ]
    _, groups = view_groups("confident_incorrect", [], TARGET[:1], P_DOG[:1])
    assert [g.heading for g in groups] == ["cats called dog: none", "dogs called cat: none"]
    assert view_groups("random_incorrect", [1, 8], TARGET, P_DOG) == (
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
    paths = []
    for i, dog in enumerate(TARGET):
        Image.new("RGB", (30 + 10 * i, 40), (200, 100, 50) if dog else (50, 100, 200)).save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    write_views(paths, TARGET, P_DOG, tmp_path / "a")
    write_views(paths, TARGET, P_DOG, tmp_path / "b")
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
    frame = confusion_frame(TARGET[:5], P_DOG[:5])
    assert frame.to_dict("list") == {"actual": ["cat"] * 5, "predicted": ["cat", "dog", "cat", "cat", "dog"]}


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
