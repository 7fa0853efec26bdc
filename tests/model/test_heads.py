"""The four heads on cached features, learning-rate phases, reproducibility, other cuts, and the lesson's warm-up."""

from pathlib import Path

import numpy as np
import pytest

from tasks.core.params import PhaseParams, SplitParams, TrainParams
from tasks.features import features
from tasks.heads.inputs import head_inputs
from tasks.vgg.feature_store import read_feature_set
from tests.support.params import features_params, reorganize_params, train_params
from tests.support.photos import organized_photos, split_photos

CLASSES = ("cats", "dogs")  # the synthetic competition's
# Settings that learn from 16 photos of random-network features; the lesson's RMSprop 0.1 overshoots here.
HEAD_PARAMS = {
    head: train_params(head=head, optimizer="adam", phases=(PhaseParams(lr=0.01, epochs=10),), batch_size=8)
    for head in ("linear", "last_layer", "conv")
}
# fc1 alone has 103M weights: small steps, lowered in a second phase as the lesson does.
DENSE_PARAMS = train_params(
    head="dense",
    optimizer="adam",
    batch_size=4,
    phases=(PhaseParams(lr=3e-5, epochs=3), PhaseParams(lr=1e-5, epochs=3)),
)


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> tuple[Path, object]:
    """pool5 of 24 synthetic photos (8 for validation) from a seeded random VGG16, and that VGG16."""
    from tasks.vgg.vgg16 import load_vgg16

    root = tmp_path_factory.mktemp("heads")
    organized = organized_photos(root, per_class=12, test_count=1, seed=3)
    manifest = split_photos(root, SplitParams(seed=0, valid_size=8, sample_train_size=4, sample_valid_size=2))
    params = features_params(weights="none", seed=0, batch_size=8)
    features(
        manifest,
        organized,
        organized,
        root / "features",
        params,
        reorganize_params().max_photo_bytes,
        root / "classes.json",
        0,
    )
    return root / "features", load_vgg16(params)


def fit(cached, params: TrainParams):
    from tasks.train import fit_head

    root, vgg = cached
    train, valid = read_feature_set(root, "train"), read_feature_set(root, "valid")
    x, x_valid = head_inputs(params.head, [train, valid], vgg)
    return fit_head(x, train.targets, x_valid, valid.targets, params, vgg, CLASSES), x_valid


@pytest.mark.parametrize("head", list(HEAD_PARAMS))
def test_each_head_beats_chance_on_validation(cached, head):
    result, _ = fit(cached, HEAD_PARAMS[head])
    assert result.metrics["valid_photos"] == 8
    assert result.metrics["val_accuracy"] >= 0.75, result.metrics  # chance is 0.5


def test_head_inputs_are_the_layers_each_head_names(cached):
    root, vgg = cached
    valid = read_feature_set(root, "valid")
    shapes = {head: head_inputs(head, [valid], vgg)[0].shape for head in [*HEAD_PARAMS, "dense"]}
    assert shapes == {"linear": (8, 1000), "last_layer": (8, 4096), "dense": (8, 7, 7, 512), "conv": (8, 7, 7, 512)}
    np.testing.assert_allclose(head_inputs("linear", [valid], vgg)[0].sum(axis=1), 1.0, rtol=1e-4)


def test_dense_head_beats_chance_starting_from_vgg16s_dense_weights_and_leaving_them_alone(cached):
    _, vgg = cached
    before = vgg.get_layer("fc2").get_weights()[0].copy()
    result, _ = fit(cached, DENSE_PARAMS)
    assert result.metrics["val_accuracy"] >= 0.75, result.metrics
    trained = result.model.get_layer("fc2").get_weights()[0]
    assert not np.array_equal(trained, before)  # trained, so moved
    np.testing.assert_allclose(trained, before, atol=0.05)  # but from VGG16's weights, not a fresh init
    np.testing.assert_array_equal(vgg.get_layer("fc2").get_weights()[0], before)


def test_phases_change_the_learning_rate_at_the_boundary(cached):
    params = train_params(
        head="conv", phases=(PhaseParams(lr=0.1, epochs=2), PhaseParams(lr=0.01, epochs=1)), batch_size=8
    )
    result, _ = fit(cached, params)
    assert result.history["epoch"].tolist() == [1, 2, 3]
    # Exactly as params.yaml wrote them (Keras' float32 copies would read 0.10000000149...): the plot labels them.
    assert result.history["learning_rate"].tolist() == [0.1, 0.1, 0.01]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(result.history.columns)


def test_same_seed_data_and_params_give_the_same_predictions_after_a_save(cached, tmp_path):
    import keras

    from tasks.heads.models import inference_copy

    params = train_params(
        head="linear", phases=(PhaseParams(lr=0.1, epochs=2), PhaseParams(lr=0.01, epochs=1)), batch_size=4, seed=5
    )
    predictions = []
    for run in ("first", "second"):
        result, x_valid = fit(cached, params)
        inference_copy(result.model).save(tmp_path / f"{run}.keras")  # what the train stage writes
        loaded = keras.models.load_model(tmp_path / f"{run}.keras")
        assert getattr(loaded, "optimizer", None) is None  # predict needs no optimizer state
        predictions.append(loaded.predict(x_valid, verbose=0))
    np.testing.assert_array_almost_equal(predictions[0], predictions[1], decimal=6)
    other, x_valid = fit(cached, train_params(head="linear", phases=params.phases, batch_size=4, seed=6))
    assert not np.allclose(other.model.predict(x_valid, verbose=0), predictions[0], atol=1e-6)  # the seed matters


def test_another_cut_trains_the_conv_head(tmp_path):
    """The other heads refuse such a cut at load: tests/unit/test_params.py."""
    from tasks.train import fit_head
    from tasks.vgg.feature_store import read_feature_set

    organized = organized_photos(tmp_path, per_class=4, test_count=1)
    manifest = split_photos(tmp_path, SplitParams(seed=0, valid_size=2, sample_train_size=2, sample_valid_size=2))
    features(
        manifest,
        organized,
        organized,
        tmp_path / "features",
        features_params(weights="none", seed=0, batch_size=4, layer="block2_pool"),
        reorganize_params().max_photo_bytes,
        tmp_path / "classes.json",
        0,
    )
    train, valid = read_feature_set(tmp_path / "features", "train"), read_feature_set(tmp_path / "features", "valid")
    assert (
        train.features.shape == (6, 56, 56, 128)
        and read_feature_set(tmp_path / "features", "test").features.shape[0] == 1
    )
    x, x_valid = head_inputs("conv", [train, valid], None)
    params = train_params(head="conv", phases=(PhaseParams(lr=0.1, epochs=1),))
    result = fit_head(x, train.targets, x_valid, valid.targets, params, None, CLASSES)
    assert result.model.input_shape == (None, 56, 56, 128)


def test_warm_up_recovers_a_known_line_with_sgd():
    """The lesson's first example: y = 2*x1 + 3*x2 + 1 from 30 random points, one Dense(1), SGD on MSE."""
    import keras

    from tasks.train import fit_phases, seed_everything

    seed_everything(0)
    rng = np.random.default_rng(0)
    x = rng.random((30, 2)).astype(np.float32)
    y = x @ np.array([2.0, 3.0], dtype=np.float32) + 1.0
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    params = train_params(optimizer="sgd", phases=(PhaseParams(lr=0.1, epochs=40),), batch_size=1)
    history = fit_phases(model, x, y, params, "mse")
    kernel, bias = model.layers[0].get_weights()
    np.testing.assert_allclose(kernel[:, 0], [2.0, 3.0], atol=0.05)
    np.testing.assert_allclose(bias, [1.0], atol=0.05)
    assert history["loss"].iloc[-1] < 1e-3 < history["loss"].iloc[0]


THREE = ("birds", "cats", "dogs")
# train.head -> the shape of one photo's input at image_size 32 (pool5 1x1x512), where fc1 is 512x4096: lean.
THREE_CLASS_INPUTS = {"linear": (1000,), "last_layer": (4096,), "dense": (1, 1, 512), "conv": (1, 1, 512)}


@pytest.fixture(scope="module")
def small_vgg():
    """A seeded random VGG16 at 32x32, whose fc1 and fc2 the dense head starts from."""
    from tasks.vgg.vgg16 import load_vgg16

    return load_vgg16(features_params(weights="none", seed=0, image_size=32))


def three_class_features(shape: tuple[int, ...], per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """per_class rows of each of three classes: noise around a mean of each class's own, in the head's input shape."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).random((3, *shape)).astype(np.float32)
    y = np.repeat(np.arange(3), per_class)
    x = means[y] + rng.normal(0, 0.05, (len(y), *shape)).astype(np.float32)
    return x, y


@pytest.mark.parametrize("head", list(THREE_CLASS_INPUTS))
def test_each_head_fits_three_classes_and_names_them_in_its_file(small_vgg, head, tmp_path):
    import keras

    from tasks.heads.model_file import save_model, saved_classes
    from tasks.heads.models import inference_copy
    from tasks.train import fit_head

    x, y = three_class_features(THREE_CLASS_INPUTS[head], 6, seed=0)
    x_valid, y_valid = three_class_features(THREE_CLASS_INPUTS[head], 3, seed=1)
    lr = 1e-4 if head == "dense" else 0.01  # fc1 and fc2 are VGG16's: small steps
    params = train_params(head=head, optimizer="adam", phases=(PhaseParams(lr=lr, epochs=8),), batch_size=6)
    result = fit_head(x, y, x_valid, y_valid, params, small_vgg, THREE)
    p = result.model.predict(x_valid, verbose=0)
    assert p.shape == (9, 3) and result.model.output_shape == (None, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert result.model.get_layer("classes").units == 3
    assert result.metrics["val_accuracy"] > 0.5, result.metrics  # chance is 1/3
    assert {name: f["photos"] for name, f in result.metrics["per_class"].items()} == dict.fromkeys(THREE, 3)
    save_model(inference_copy(result.model), tmp_path / "head.keras", THREE)
    assert saved_classes(tmp_path / "head.keras") == THREE
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "head.keras").predict(x_valid, verbose=0), p)
