"""features, train and predict on a tiny photo set with a seeded random VGG16."""

from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import StageError
from tasks.core.params import PhaseParams, SplitParams
from tasks.features import features
from tasks.photos.photo_store import PhotoStore
from tasks.predict import prediction_frames
from tasks.vgg.feature_store import read_feature_set
from tests.support.params import features_params, reorganize_params, train_params
from tests.support.photos import organized_photos, split_photos

RANDOM = features_params(weights="none", seed=0)  # a seeded random VGG16 at 224


@pytest.fixture(scope="module")
def feature_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("features")
    organized = organized_photos(root, per_class=8, test_count=5)
    manifest = split_photos(root, SplitParams(seed=0, valid_size=4, sample_train_size=4, sample_valid_size=2))
    features(
        manifest,
        organized,
        organized,
        root / "features" / "0",  # features@0 of features.shards [0]
        features_params(weights="none", seed=0, batch_size=5),
        reorganize_params().max_photo_bytes,
        root / "classes.json",
        0,
    )
    return root


def test_random_init_is_the_same_network_for_the_same_seed():
    from tasks.vgg.vgg16 import load_vgg16

    seeded = features_params(weights="none", seed=3)
    first, second = load_vgg16(seeded), load_vgg16(seeded)
    for layer in ("block1_conv1", "fc2", "predictions"):
        for a, b in zip(first.get_layer(layer).get_weights(), second.get_layer(layer).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    other = load_vgg16(features_params(weights="none", seed=4))
    assert not np.array_equal(other.get_layer("fc1").get_weights()[0], first.get_layer("fc1").get_weights()[0])


def test_at_image_size_32_pool5_is_1x1_and_the_dense_tail_still_gives_probabilities():
    from tasks.heads.models import build_head
    from tasks.vgg.layers import POOL5
    from tasks.vgg.preprocess import caffe_preprocess
    from tasks.vgg.vgg16 import conv_base, dense_tail, load_vgg16

    vgg = load_vgg16(features_params(weights="none", seed=0, image_size=32))
    photos = caffe_preprocess(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    pool5 = np.asarray(conv_base(vgg, POOL5).predict_on_batch(photos))
    assert pool5.shape == (2, 1, 1, 512)
    probabilities = np.asarray(dense_tail(vgg).predict_on_batch(pool5))
    assert probabilities.shape == (2, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    assert (probabilities.max(axis=1) > 0.01).all()  # the scaled random top, not a flat one (max ~0.0015)
    assert build_head("dense", pool5.shape[1:], vgg, 2).predict_on_batch(pool5).shape == (2, 2)  # fc1 follows the size


def test_a_missing_weights_file_is_explained():
    from tasks.vgg.vgg16 import load_vgg16

    with pytest.raises(StageError, match="neither imagenet, none, nor an existing file"):
        load_vgg16(features_params(weights="/nowhere/vgg16.weights.h5"))


def test_pool5_is_cached_as_float16_with_ids_and_targets(feature_root: Path):
    root = feature_root / "features" / "0"
    train = read_feature_set(root, "train")
    assert train.features.dtype == np.float16 and train.features.shape == (12, 7, 7, 512)
    assert sorted(train.targets.tolist()) == [0] * 6 + [1] * 6
    assert (root / "train" / "index.csv").read_text().splitlines()[0] == "id,target,path"
    assert all(i.startswith("cat.") for i, lab in zip(train.ids, train.targets, strict=True) if lab == 0)
    test = read_feature_set(root, "test")
    assert test.ids == ["1", "2", "3", "4", "5"] and set(test.targets.tolist()) == {-1}
    assert np.isfinite(test.features.astype(np.float32)).all()
    assert sorted(p.name for p in root.iterdir()) == [
        "precision.json",  # features.precision and the precision the runtime ran
        "sample_train",
        "sample_valid",
        "test",
        "train",
        "undecodable.csv",
        "valid",
    ]
    assert (root / "undecodable.csv").read_text().splitlines() == ["subset,id,path,reason,action"]  # nothing broken


def test_sample_features_are_the_train_rows_not_a_second_pass(feature_root: Path):
    root = feature_root / "features" / "0"
    train, sample = read_feature_set(root, "train"), read_feature_set(root, "sample_train")
    assert len(sample.ids) == 4
    for i, photo_id in enumerate(sample.ids):
        np.testing.assert_array_equal(sample.features[i], train.features[train.ids.index(photo_id)])


def test_cached_features_equal_a_direct_conv_pass(feature_root: Path):
    from tasks.photos.decode import load_photo
    from tasks.vgg.preprocess import caffe_preprocess
    from tasks.vgg.vgg16 import conv_base, load_vgg16

    valid = read_feature_set(feature_root / "features" / "0", "valid")
    member = Path(valid.paths[0]).relative_to(feature_root / "photos.zip").as_posix()  # the index's class-folder path
    with PhotoStore(feature_root / "photos.zip") as store:
        photo = caffe_preprocess(load_photo(store.open(member), RANDOM.image_size))[None]
    direct = conv_base(load_vgg16(RANDOM), RANDOM.layer).predict_on_batch(photo)
    np.testing.assert_allclose(valid.features[0].astype(np.float32), np.asarray(direct[0]), rtol=1e-2, atol=1e-3)


def test_linear_head_learns_and_is_reproducible(feature_root: Path):
    from tasks.heads.inputs import head_inputs, load_head_data
    from tasks.train import fit_head

    # What train and predict call: the subsets, the VGG16 that features used, and the head's inputs.
    data = load_head_data(feature_root / "features", ["train", "valid"], "linear", RANDOM)
    (train, valid), (x, x_valid), vgg = data.feature_sets, data.inputs, data.vgg
    assert train.ids == read_feature_set(feature_root / "features" / "0", "train").ids and len(valid.ids) == 4
    np.testing.assert_array_equal(x_valid, head_inputs("linear", [valid], vgg)[0])
    assert x.shape == (12, 1000)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=1e-4)
    params = train_params(head="linear", phases=(PhaseParams(lr=0.1, epochs=2),), batch_size=4, seed=0)
    first = fit_head(x, train.targets, x_valid, valid.targets, params, vgg, ("cats", "dogs"))
    second = fit_head(x, train.targets, x_valid, valid.targets, params, vgg, ("cats", "dogs"))
    np.testing.assert_array_equal(first.model.predict(x_valid, verbose=0), second.model.predict(x_valid, verbose=0))
    assert list(first.history.columns) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate"]
    assert set(first.metrics) >= {"val_accuracy", "val_log_loss", "per_class"}
    assert first.metrics["per_class"]["cats"]["photos"] + first.metrics["per_class"]["dogs"]["photos"] == 4


def test_predictions_are_in_id_order_and_must_be_finite():
    two = ("cats", "dogs")
    valid, test = prediction_frames(
        ["cat.1", "dog.2"], np.array([0, 1]), p([0.2, 0.9]), ["10", "2", "1"], p([0.1, 0.2, 0.3]), two
    )
    assert test["id"].tolist() == ["1", "2", "10"] and test["p_dogs"].tolist() == [0.3, 0.2, 0.1]
    assert valid["target"].tolist() == [0, 1]
    with pytest.raises(StageError, match="1 non-finite test predictions"):
        prediction_frames(["cat.1"], np.array([0]), p([0.2]), ["1", "2"], np.array([[0.5, 0.5], [0.5, np.nan]]), two)


def p(p_class_1: list[float]) -> np.ndarray:
    """A two-class probability table from P(class 1)."""
    return np.column_stack([1 - np.asarray(p_class_1), p_class_1])


def test_a_local_weights_file_loads_the_same_network(tmp_path: Path):
    from tasks.vgg.vgg16 import load_vgg16

    saved = load_vgg16(features_params(weights="none", seed=7))
    path = tmp_path / "vgg16.weights.h5"
    saved.save_weights(path)
    loaded = load_vgg16(features_params(weights=str(path), seed=0))
    for layer in ("block1_conv1", "predictions"):
        np.testing.assert_array_equal(loaded.get_layer(layer).get_weights()[0], saved.get_layer(layer).get_weights()[0])


def test_imagenet_weights_offline_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from tasks.vgg.vgg16 import load_vgg16

    # An empty Keras home, so Keras must fetch; the fetch fails as it does offline, without a 528 MB download
    # where a network happens to exist.
    monkeypatch.setattr("keras.src.backend.config.keras_home", lambda: str(tmp_path / "keras"))
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", _no_network)
    with pytest.raises(
        StageError, match=r"could not fetch VGG16's ImageNet weights .* set features.weights to its path"
    ):
        load_vgg16(features_params(weights="imagenet", image_size=224))


def _no_network(*args, **kwargs):
    raise OSError("[Errno -2] Name or service not known")
