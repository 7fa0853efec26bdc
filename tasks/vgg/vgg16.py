"""VGG16 from keras.applications, cut into the conv base (run once per photo) and the dense tail (run on its cache)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from tasks.core.errors import StageError
from tasks.vgg.layers import DENSE_LAYERS, POOL5

if TYPE_CHECKING:  # for the hint only: bench/gpu.sh imports this module on a GPU image that lacks pydantic
    from tasks.core.params import FeaturesParams

# A Glorot-initialised top gives near-uniform probabilities (max ~0.0015), too flat for the lesson's linear
# model to learn from in 3 epochs; scaled by this its max probability is ~0.3, like a trained network's.
RANDOM_TOP_SCALE = 30.0
IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"  # the file Keras fetches for weights="imagenet"


def load_vgg16(params: FeaturesParams) -> keras.Model:
    """The full VGG16 with its top, for features.image_size photos, with features.weights (seeded by features.seed)."""
    from keras.applications import VGG16  # imported here so importing this module stays cheap

    weights, size = params.weights, params.image_size
    if weights == "imagenet":
        try:
            return VGG16(weights="imagenet", include_top=True)  # Keras downloads it once into ~/.keras/models
        except Exception as err:  # Keras raises a bare Exception for a failed fetch
            raise StageError(
                f"could not fetch VGG16's ImageNet weights ({err}). They are downloaded once (528 MB) and need the "
                f"network; offline, copy {IMAGENET_FILE} into ~/.keras/models/ or set features.weights to its path"
            ) from None
    keras.utils.set_random_seed(params.seed)  # `none` must be the same network in every stage that rebuilds it
    # Below 224 pool5 shrinks (1x1x512 at 32) and fc1 with it: only `none` can be built so (params.py checks).
    model = VGG16(weights=None, include_top=True, input_shape=(size, size, 3))
    if weights == "none":
        top = model.get_layer("predictions")
        kernel, bias = top.get_weights()
        top.set_weights([kernel * RANDOM_TOP_SCALE, bias])
        return model
    path = Path(weights).expanduser()
    if not path.is_file():
        raise StageError(f"features.weights is {weights!r}, which is neither imagenet, none, nor an existing file")
    try:
        model.load_weights(path)
    except (ValueError, OSError) as err:
        raise StageError(f"features.weights file {path} does not hold VGG16 weights with its top: {err}") from None
    return model


def conv_base(vgg: keras.Model, layer: str) -> keras.Model:
    """Photos (caffe-preprocessed) -> the output of `layer`, one of tasks/vgg/layers.py's CUTS (params.py checks).

    At POOL5 that is 7x7x512 at 224, 99% of VGG16's multiply-adds.
    """
    return keras.Model(vgg.inputs, vgg.get_layer(layer).output, name="vgg16_conv_base")


def dense_tail(vgg: keras.Model, until: str = "predictions") -> keras.Model:
    """pool5 -> the dense layers up to `until` (fc1, fc2 or predictions), with VGG16's own weights."""
    inputs = keras.Input(vgg.get_layer(POOL5).output.shape[1:], name="pool5")  # follows the image size
    x = inputs
    for name in DENSE_LAYERS[: DENSE_LAYERS.index(until) + 1]:
        x = vgg.get_layer(name)(x)
    return keras.Model(inputs, x, name=f"vgg16_tail_to_{until}")


def run_in_batches(model: keras.Model, features: np.ndarray, batch_size: int) -> np.ndarray:
    """Apply model to cached features batch by batch, so float16 caches are widened only a batch at a time."""
    outputs = [
        np.asarray(model.predict_on_batch(features[i : i + batch_size].astype(np.float32)))
        for i in range(0, len(features), batch_size)
    ]
    if not outputs:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    return np.concatenate(outputs)
