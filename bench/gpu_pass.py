"""The conv pass on synthetic images in float32 and bf16 (XLA): images/s and the largest feature difference."""

from __future__ import annotations

import argparse
import time

import numpy as np

from tasks.vgg.conv_backends import make_conv_runner

SIDE = 224  # VGG16's own input side


def backend() -> str:
    """The Keras backend in use: tensorflow here, jax on a GPU host whose image has JAX but not TensorFlow."""
    import keras

    return keras.backend.backend()


def devices() -> list[str]:
    """The devices the Keras backend sees, so the output shows whether the GPU was used."""
    if backend() == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=8192, help="images timed per precision")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-xla", action="store_true", help="run without XLA compilation")
    args = parser.parse_args()
    import keras

    from tasks.vgg.layers import POOL5
    from tasks.vgg.preprocess import caffe_preprocess
    from tasks.vgg.vgg16 import conv_base

    print(f"keras backend {backend()}; devices: {', '.join(devices())}", flush=True)
    # Random weights: ImageNet's shapes and FLOPs. Built here, not by load_vgg16(FeaturesParams), because the
    # GPU image this runs on has no pydantic (tasks/core/params.py).
    keras.utils.set_random_seed(0)
    conv = conv_base(keras.applications.VGG16(weights=None, include_top=True, input_shape=(SIDE, SIDE, 3)), POOL5)
    rng = np.random.default_rng(0)
    batch = caffe_preprocess(rng.integers(0, 256, (args.batch_size, SIDE, SIDE, 3), dtype=np.uint8))
    steps = max(1, args.images // args.batch_size)
    features = {}
    for precision in ("float32", "mixed_bfloat16"):
        run = make_conv_runner(conv, "keras", precision, xla=not args.no_xla)
        features[precision] = run(batch)  # warm-up: compiles
        began = time.perf_counter()
        for _ in range(steps):
            run(batch)
        rate = steps * args.batch_size / (time.perf_counter() - began)
        xla = "xla (jax)" if backend() == "jax" else f"xla={not args.no_xla}"
        print(f"{precision}: {rate:,.0f} images/s ({steps} batches of {args.batch_size}, {xla})", flush=True)
    difference = np.abs(features["mixed_bfloat16"] - features["float32"]).max()
    scale = np.abs(features["float32"]).max()
    share = difference / scale
    print(f"largest feature difference bf16 vs float32: {difference:.4g} ({share:.2%} of the largest feature)")


if __name__ == "__main__":
    main()
