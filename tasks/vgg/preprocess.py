"""VGG16's ImageNet "caffe" preprocessing: RGB -> BGR, minus the ImageNet channel means, no scaling."""

from __future__ import annotations

import numpy as np

# ImageNet channel means in BGR order, the ones VGG16 was trained with.
CAFFE_BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def caffe_preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> BGR float32 minus the ImageNet means, no scaling (what keras' vgg16.preprocess_input does)."""
    return rgb[..., ::-1].astype(np.float32) - CAFFE_BGR_MEANS
