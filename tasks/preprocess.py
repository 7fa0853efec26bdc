"""Photo decoding and VGG16's ImageNet "caffe" preprocessing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SIZE = 224
# ImageNet channel means in BGR order, the ones VGG16 was trained with.
CAFFE_BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def load_photo(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Decode a photo to RGB uint8 of shape (size, size, 3), squashed to square as the course's loader did.

    EXIF orientation is ignored, as Keras' loaders ignore it, so train and test photos are treated alike.
    """
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # lets libjpeg decode at a reduced scale: much faster for big photos
        rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def caffe_preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> BGR float32 minus the ImageNet means, no scaling (what keras' vgg16.preprocess_input does)."""
    return rgb[..., ::-1].astype(np.float32) - CAFFE_BGR_MEANS
