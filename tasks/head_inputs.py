"""What a head sees: the cached pool5 of a subset, carried through VGG16's dense layers to the 1,000 class probabilities."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.feature_store import FeatureSet, read_feature_set
from tasks.params import FeaturesParams

# train.dataset -> (subset trained on, subset validated on)
DATASET_SUBSETS = {"full": ("train", "valid"), "sample": ("sample_train", "sample_valid")}
TAIL_BATCH = 256  # fc1 is 25088x4096: batches of this size keep the widened float32 input near 25 MB


def imagenet_probabilities(feature_sets: list[FeatureSet], weights: FeaturesParams) -> list[np.ndarray]:
    """The 1,000 ImageNet probabilities for each feature set, from the cache: no second conv pass."""
    from tasks.vgg16 import dense_tail, load_vgg16, run_in_batches

    tail = dense_tail(load_vgg16(weights.weights, weights.seed), until="predictions")
    return [run_in_batches(tail, fs.features, TAIL_BATCH) for fs in feature_sets]


def load_subsets(features_root: Path, subsets: list[str]) -> list[FeatureSet]:
    """Open the named feature subsets."""
    return [read_feature_set(features_root, s) for s in subsets]
