"""Shards: the conv subsets' photos cut into features.shards parts of whole batches, each its own DVC stage.

A shard holds, per conv subset, a run of whole features.batch_size batches in manifest order, so every photo is in
the very batch it would be in with one shard: the joined features are the one-shard features byte for byte on any
runtime, even one whose kernels vary with a batch's size or neighbours.
"""

from __future__ import annotations

from itertools import pairwise

from tasks.photos.manifest import PhotoEntry, in_subset

# Conv passes run on these; the sample subsets are cut from their rows, never recomputed.
CONV_SUBSETS = ("train", "valid", "test")


def shard_ranges(count: int, batch_size: int, shards: int) -> list[range]:
    """The rows of each shard of count photos: whole batches in order, the later shards one batch more when uneven."""
    batches = -(-count // batch_size)
    bounds = [shard * batches // shards for shard in range(shards + 1)]
    return [range(min(first * batch_size, count), min(last * batch_size, count)) for first, last in pairwise(bounds)]


def shard_entries(entries: list[PhotoEntry], shard: int, shards: int, batch_size: int) -> dict[str, list[PhotoEntry]]:
    """Shard number shard's photos of each conv subset, in manifest order."""
    chosen = {}
    for subset in CONV_SUBSETS:
        photos = in_subset(entries, subset)
        chosen[subset] = [photos[row] for row in shard_ranges(len(photos), batch_size, shards)[shard]]
    return chosen
