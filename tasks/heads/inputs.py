"""What a head sees: a subset's cached conv features, carried through VGG16's dense layers as far as the head needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core.params import FeaturesParams
from tasks.vgg.feature_store import FeatureSet, read_shards

# train.dataset -> (subset trained on, subset validated on)
DATASET_SUBSETS = {"full": ("train", "valid"), "sample": ("sample_train", "sample_valid")}
TAIL_BATCH = 256  # fc1 is 25088x4096: batches of this size keep the widened float32 input near 25 MB
# train.head -> the VGG16 layer whose output it trains on; None: the cached features themselves
HEAD_INPUT_LAYER = {"linear": "predictions", "last_layer": "fc2", "dense": None, "conv": None}


@dataclass(frozen=True)
class HeadData:
    """Feature subsets, row-aligned with the head's input for each, and the VGG16 that gave the dense layers."""

    feature_sets: list[FeatureSet]  # ids, targets and photo paths of each subset
    inputs: list[np.ndarray]
    vgg: object  # keras.Model; typed loosely so this module imports without TensorFlow


def head_inputs(head: str, feature_sets: list[FeatureSet], vgg) -> list[np.ndarray]:
    """Inputs of `head` for each feature set, from the cache: no second conv pass. vgg supplies the dense layers.

    A head other than conv needs the cache cut at pool5; params.py refuses any other cut for it at load.
    """
    from tasks.vgg.vgg16 import dense_tail, run_in_batches

    until = HEAD_INPUT_LAYER[head]
    if until is None:
        return [np.asarray(fs.features) for fs in feature_sets]
    tail = dense_tail(vgg, until=until)
    return [run_in_batches(tail, fs.features, TAIL_BATCH) for fs in feature_sets]


def load_head_data(features_root: Path, subsets: list[str], head: str, features: FeaturesParams) -> HeadData:
    """Open the named feature subsets (the shards features.shards lists, joined), build the VGG16 that features
    used, and compute `head`'s input for each.

    train and predict both start here, so the network they rebuild is the one the cache came from.
    """
    from tasks.vgg.vgg16 import load_vgg16

    feature_sets = [read_shards(features_root, features.shards, s) for s in subsets]
    vgg = load_vgg16(features)
    return HeadData(feature_sets, head_inputs(head, feature_sets, vgg), vgg)
