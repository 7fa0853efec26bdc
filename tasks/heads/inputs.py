"""What a head sees: the cached conv features of a subset, carried through VGG16's dense layers as far as the head needs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.core.errors import StageError
from tasks.vgg.feature_store import FeatureSet, read_feature_set

# train.dataset -> (subset trained on, subset validated on)
DATASET_SUBSETS = {"full": ("train", "valid"), "sample": ("sample_train", "sample_valid")}
TAIL_BATCH = 256  # fc1 is 25088x4096: batches of this size keep the widened float32 input near 25 MB
# train.head -> the VGG16 layer whose output it trains on; None: the cached features themselves
HEAD_INPUT_LAYER = {"linear": "predictions", "last_layer": "fc2", "dense": None, "conv": None}


def check_cut(head: str, layer: str) -> None:
    """Refuse a head that needs VGG16's dense layers when the cache holds another cut than pool5."""
    from tasks.vgg.layers import POOL5

    if head != "conv" and layer != POOL5:
        raise StageError(
            f"train.head {head} needs features.layer {POOL5} (VGG16's dense layers start there), but it is {layer}; "
            f"use train.head conv for another cut, or set features.layer back to {POOL5}"
        )


def head_inputs(head: str, layer: str, feature_sets: list[FeatureSet], vgg) -> list[np.ndarray]:
    """Inputs of `head` for each feature set, from the cache: no second conv pass. vgg supplies the dense layers."""
    from tasks.vgg.vgg16 import dense_tail, run_in_batches

    check_cut(head, layer)
    until = HEAD_INPUT_LAYER[head]
    if until is None:
        return [np.asarray(fs.features) for fs in feature_sets]
    tail = dense_tail(vgg, until=until)
    return [run_in_batches(tail, fs.features, TAIL_BATCH) for fs in feature_sets]


def load_subsets(features_root: Path, subsets: list[str]) -> list[FeatureSet]:
    """Open the named feature subsets."""
    return [read_feature_set(features_root, s) for s in subsets]
