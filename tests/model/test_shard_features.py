"""features@<shard>: one shard is today's features byte for byte, and 2 or 3 shards joined are that one, byte for byte.

14 photos of a seeded random VGG16 at 32x32, batches of 4: train holds 10 (two whole batches and a partial one),
valid 4 (one batch, so with three shards two of them hold no valid photo), test 5.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.params import SplitParams
from tasks.features import SAMPLE_SUBSETS, features
from tasks.lineage.run_context import cpu_simd
from tasks.photos.manifest import read_manifest
from tasks.photos.shards import CONV_SUBSETS, shard_entries
from tasks.photos.undecodable import read_report, read_reports
from tasks.split import write_shards
from tasks.vgg.feature_store import FEATURES_FILE, INDEX_FILE, read_shards, write_index
from tests.support.params import features_params, reorganize_params
from tests.support.photos import organized_photos, split_photos

SUBSETS = (*CONV_SUBSETS, *SAMPLE_SUBSETS)
ORGANIZED = Path("data/organized")  # what the index's path column starts with, as in the pipeline
# The features stage before shards (commit ee78948, reading the class folders) on this very data and params.
BEFORE_SHARDS = {
    "train/pool5.npy": "3b0563acd7bc2c4697b915f6c1490a42",
    "train/index.csv": "b09b70192fd33bf5b38a5e56fa72623d",
    "valid/pool5.npy": "f05980b92328f01cea543c305e712fbd",
    "valid/index.csv": "e21d53b91f32fa28b077f129d1575889",
    "test/pool5.npy": "8be253430fb4d19e972877cb27d147e4",
    "test/index.csv": "bce872a0c2e06b3bbbf48b86f18f28bc",
    "sample_train/pool5.npy": "4c7aabee67534542985ed623e3e0fa3f",
    "sample_train/index.csv": "fd2e78be4ebb3ec10797f56623ebc665",
    "sample_valid/pool5.npy": "fac5b3f504c9032cab32429bfb25c0a8",
    "sample_valid/index.csv": "99a709d04a78fd35ec2d3c4e486e716d",
}
# The index files hold no float: they are the same on any CPU. The features only on the recording CPU's SIMD.
RECORDED_SIMD = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"]


def run_shards(root: Path, shards: int) -> Path:
    """split's stores and every features@<shard> for features.shards = [0 .. shards-1]; return the features root."""
    params = features_params(weights="none", seed=0, image_size=32, batch_size=4, shards=tuple(range(shards)))
    out = root / f"features{shards}"
    write_shards(root / "photos.zip", root / "split.csv", root / f"shards{shards}", shards, params.batch_size)
    for shard in range(shards):
        store = root / f"shards{shards}" / f"{shard}.zip"
        max_bytes = reorganize_params().max_photo_bytes
        features(
            root / "split.csv", store, ORGANIZED, out / str(shard), params, max_bytes, root / "classes.json", shard
        )
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Path]]:
    root = tmp_path_factory.mktemp("shards")
    organized_photos(root, per_class=7, test_count=5)
    split_photos(root, SplitParams(seed=0, valid_size=4, sample_train_size=3, sample_valid_size=2))
    return root, {shards: run_shards(root, shards) for shards in (1, 2, 3)}


def test_one_shard_is_the_features_stage_before_shards_byte_for_byte(runs):
    one = runs[1][1] / "0"
    md5s = {name: hashlib.md5((one / name).read_bytes()).hexdigest() for name in BEFORE_SHARDS}
    indexes = {name: md5 for name, md5 in BEFORE_SHARDS.items() if name.endswith(INDEX_FILE)}
    assert {name: md5s[name] for name in indexes} == indexes
    assert (one / "train" / INDEX_FILE).read_text().splitlines()[1] == "cat.1,0,data/organized/train/cats/cat.1.jpg"
    if cpu_simd() != RECORDED_SIMD:
        pytest.skip(f"this CPU's SIMD extensions {cpu_simd()} are not the recording one's {RECORDED_SIMD}")
    assert md5s == BEFORE_SHARDS


def test_the_data_has_a_partial_last_batch_and_an_empty_shard(runs):
    entries = read_manifest(runs[0] / "split.csv")
    assert [len(shard_entries(entries, s, 3, 4)["valid"]) for s in range(3)] == [0, 0, 4]
    assert [len(shard_entries(entries, s, 3, 4)["train"]) for s in range(3)] == [4, 4, 2]
    assert [len(shard_entries(entries, s, 2, 4)["train"]) for s in range(2)] == [4, 6]


@pytest.mark.parametrize("shards", [2, 3])
def test_shards_joined_in_order_are_the_one_shard_features_byte_for_byte(runs, shards: int, tmp_path: Path):
    one, many = runs[1][1] / "0", runs[1][shards]
    for subset in SUBSETS:
        joined = read_shards(many, tuple(range(shards)), subset)
        saved = io.BytesIO()
        np.save(saved, np.asarray(joined.features))
        assert saved.getvalue() == (one / subset / FEATURES_FILE).read_bytes(), subset
        (tmp_path / subset).mkdir()
        write_index(tmp_path / subset, joined.ids, joined.targets.tolist(), joined.paths)
        assert (tmp_path / subset / INDEX_FILE).read_bytes() == (one / subset / INDEX_FILE).read_bytes(), subset
    pd.testing.assert_frame_equal(read_reports(many, tuple(range(shards))), read_report(one))
    assert all(
        (many / str(s) / "precision.json").read_bytes() == (one / "precision.json").read_bytes() for s in range(shards)
    )
