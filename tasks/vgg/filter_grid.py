"""VGG16's first conv layer as a picture: its 64 filters of 3x3 RGB, the view of what the first layer has learned."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tasks.core.atomic_output import atomic_file

FIRST_CONV = "block1_conv1"


def filter_images(kernel: np.ndarray) -> np.ndarray:
    """(3, 3, 3, n) BGR kernel -> (n, 3, 3, 3) RGB images, each stretched to [0, 1] on its own."""
    images = np.moveaxis(np.asarray(kernel, dtype=np.float64)[:, :, ::-1, :], -1, 0)  # VGG16 reads BGR (caffe)
    lo = images.min(axis=(1, 2, 3), keepdims=True)
    span = images.max(axis=(1, 2, 3), keepdims=True) - lo
    return (images - lo) / np.where(span > 0, span, 1.0)


def write_filter_grid(kernel: np.ndarray, target: Path) -> int:
    """Write the filters of a first-layer kernel as a square PNG grid; return how many were drawn."""
    from matplotlib.figure import Figure

    images = filter_images(kernel)
    side = math.ceil(math.sqrt(len(images)))
    figure = Figure(figsize=(6, 6.4), dpi=72, layout="constrained")
    figure.suptitle(f"{FIRST_CONV}: {len(images)} filters, 3x3 RGB")
    for i, image in enumerate(images):
        axes = figure.add_subplot(side, side, i + 1)
        axes.imshow(image, interpolation="nearest")
        axes.axis("off")
    with atomic_file(target) as tmp:
        figure.savefig(tmp, format="png")
    return len(images)
