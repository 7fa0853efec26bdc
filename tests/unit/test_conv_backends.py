"""The conv base run by ONNX Runtime and OpenVINO gives Keras's features, on a few photos with a seeded random VGG16."""

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import StageError
from tasks.core.params import SplitParams
from tasks.features import PRECISION_FILE, features, subset_photos
from tasks.photos.class_list import read_class_list
from tasks.photos.decode import load_photo
from tasks.photos.manifest import read_manifest
from tasks.photos.photo_store import PhotoStore
from tasks.split import split
from tasks.vgg.conv_backends import make_conv_runner, precision_warning
from tasks.vgg.feature_store import read_feature_set
from tasks.vgg.preprocess import caffe_preprocess
from tests.support.cpu import cpu_flags, openvino_runs_bf16
from tests.support.params import features_params, reorganize_params
from tests.support.photos import organized_photos

# float32 backends differ from Keras only by summation order: relative to the largest feature, well under this.
FLOAT32_TOLERANCE = 1e-4
# bf16 keeps 8 bits of mantissa: measured ~1% of the largest feature after 13 convolutions; this leaves headroom.
BFLOAT16_TOLERANCE = 5e-2
RANDOM = features_params(weights="none", seed=0, image_size=224)  # a seeded random VGG16 at its own 224


@pytest.fixture(scope="module")
def conv():
    from tasks.vgg.vgg16 import conv_base, load_vgg16

    return conv_base(load_vgg16(RANDOM), RANDOM.layer)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("photos")
    organized = organized_photos(root, per_class=2, test_count=1)  # reorganize's photo store
    with PhotoStore(organized) as store:
        members = sorted(m for m in store.members() if m.startswith("train/"))[:3]
        decoded = [load_photo(store.open(m), RANDOM.image_size) for m in members]
    return organized, caffe_preprocess(np.stack(decoded))


@pytest.fixture(scope="module")
def keras_features(conv, photos) -> np.ndarray:
    return make_conv_runner(conv, "keras", "float32", xla=False)(photos[1])


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cpu_backends_match_keras_in_float32(conv, photos, keras_features, backend):
    got = make_conv_runner(conv, backend, "float32", xla=False)(photos[1])
    assert got.shape == keras_features.shape == (3, 7, 7, 512) and got.dtype == np.float32
    assert np.abs(keras_features).max() > 0  # a dead network would match anything
    assert relative_difference(got, keras_features) < FLOAT32_TOLERANCE


def test_bfloat16_is_bf16_where_the_cpu_can_and_float32_where_not(conv, photos, keras_features):
    """OpenVINO takes bf16 as a hint: bf16 where its CPU plugin has the kernels, float32 silently elsewhere.

    What the CPU can do is read from its flags, and the runtime must agree; the runner reports what it ran.
    """
    import openvino as ov

    can = openvino_runs_bf16(cpu_flags())
    assert ("BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")) == can
    runner = make_conv_runner(conv, "openvino", "mixed_bfloat16", xla=False)
    difference = relative_difference(runner(photos[1]), keras_features)
    if can:
        assert runner.precision_used == "mixed_bfloat16"
        assert FLOAT32_TOLERANCE < difference < BFLOAT16_TOLERANCE  # the precision param really changes the arithmetic
    else:
        assert runner.precision_used == "float32"
        assert difference < FLOAT32_TOLERANCE


def test_each_backend_reports_the_precision_it_runs(conv):
    """Keras computes in its policy's dtype on any CPU (TensorFlow emulates bf16 where the CPU lacks it: measured
    under QEMU's AVX2-only CPU, bf16 features 0.4% from float32); onnxruntime runs float32 only."""
    assert make_conv_runner(conv, "keras", "float32", xla=False).precision_used == "float32"
    assert make_conv_runner(conv, "keras", "mixed_bfloat16", xla=False).precision_used == "mixed_bfloat16"
    assert make_conv_runner(conv, "onnxruntime", "float32", xla=False).precision_used == "float32"
    assert make_conv_runner(conv, "openvino", "float32", xla=False).precision_used == "float32"


def test_an_ignored_precision_gets_one_warning_line():
    assert precision_warning("openvino", "mixed_bfloat16", "mixed_bfloat16") is None
    assert precision_warning("openvino", "mixed_bfloat16", "float32") == (
        "warning: features.precision is mixed_bfloat16 but openvino runs float32 on this CPU, which lacks the "
        "instructions for mixed_bfloat16; the features are float32 ones (recorded as precision_used): set "
        "features.precision to float32 to ask for what runs"
    )


def test_the_features_stage_uses_the_backend_param(conv, photos, tmp_path):
    organized = photos[0]
    split(
        organized.parent / "organized.csv",
        tmp_path / "split.csv",
        SplitParams(seed=0, valid_size=2, sample_train_size=1, sample_valid_size=1),
        read_class_list(organized.parent / "classes.json").classes,
    )
    params = features_params(weights="none", seed=0, image_size=224, batch_size=2, backend="onnxruntime")
    classes = organized.parent / "classes.json"
    max_bytes = reorganize_params().max_photo_bytes
    features(tmp_path / "split.csv", organized, organized, tmp_path / "features", params, max_bytes, classes, 0)
    recorded = json.loads((tmp_path / "features" / PRECISION_FILE).read_text())
    assert recorded == {"backend": "onnxruntime", "precision": "float32", "precision_used": "float32"}
    train = read_feature_set(tmp_path / "features", "train")
    rows = subset_photos(read_manifest(tmp_path / "split.csv"), "train", organized, ("cats", "dogs"))
    with PhotoStore(organized) as store:
        decoded = np.stack([load_photo(store.open(p.member), params.image_size) for p in rows])
    expected = make_conv_runner(conv, "keras", "float32", xla=False)(caffe_preprocess(decoded))  # same seed
    # float16 storage rounds to 2^-11 relative, far above the backends' own difference
    np.testing.assert_allclose(
        train.features.astype(np.float32), expected, rtol=2e-3, atol=1e-3 * np.abs(expected).max()
    )


@pytest.mark.parametrize(("backend", "absent"), [("onnxruntime", "onnxruntime"), ("openvino", "openvino")])
def test_a_backend_not_installed_names_its_extra_and_the_command(monkeypatch, backend, absent):
    """make run's environment has Keras only: the stage says which extra to add, before any conv work."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == absent else find_spec(name, *a))
    with pytest.raises(StageError) as refused:
        make_conv_runner(None, backend, "float32", xla=False)
    assert str(refused.value) == (
        f"features.backend is {backend}, but this environment lacks {absent}: install the {backend} extra with "
        f"`uv sync --inexact --no-dev --extra {backend}` (make test's environment has every backend)"
    )
