"""VGG16's fixed layer names, without Keras: params are checked against them before any model is built."""

from __future__ import annotations

# Where features.layer may cut VGG16: its conv and pool layers, in order (keras.applications' names).
CUTS = (
    "block1_conv1",
    "block1_conv2",
    "block1_pool",
    "block2_conv1",
    "block2_conv2",
    "block2_pool",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block3_pool",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block4_pool",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "block5_pool",
)
POOL5 = "block5_pool"  # the last cut: VGG16's dense layers start here, so only the conv head trains on another
DENSE_LAYERS = ("flatten", "fc1", "fc2", "predictions")
