"""VGG16's caffe preprocessing, checked against a hand-computed pixel and against Keras' own."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.photos.decode import load_photo
from tasks.vgg.preprocess import caffe_preprocess


def test_one_pixel_by_hand():
    rgb = np.array([[[200, 100, 50]]], dtype=np.uint8)
    # BGR order, minus the ImageNet means (B 103.939, G 116.779, R 123.68), no scaling.
    expected = [50 - 103.939, 100 - 116.779, 200 - 123.68]
    np.testing.assert_allclose(caffe_preprocess(rgb)[0, 0], expected, rtol=0, atol=1e-4)


def test_matches_keras_preprocess_input():
    from keras.applications.vgg16 import preprocess_input

    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3)).astype(np.uint8)
    np.testing.assert_allclose(caffe_preprocess(rgb), preprocess_input(rgb.astype(np.float32)), atol=1e-4)


@pytest.mark.parametrize("size", [224, 32])
def test_photos_become_rgb_squares_of_the_size_asked_whatever_their_mode(tmp_path: Path, size: int):
    for mode in ("RGB", "L", "CMYK"):
        path = tmp_path / f"{mode}.jpg"
        Image.new(mode, (300, 180), color=128 if mode == "L" else None).save(path, "JPEG")
        photo = load_photo(path, size)
        assert photo.shape == (size, size, 3) and photo.dtype == np.uint8
