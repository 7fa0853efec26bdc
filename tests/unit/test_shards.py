"""Shards: whole batches of each conv subset, in manifest order, and split's photo store of each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tasks.core.errors import StageError
from tasks.core.params import SplitParams, parse_params
from tasks.features import SAMPLE_SUBSETS, sample_part, shard_argument
from tasks.photos.manifest import PhotoEntry, in_subset, read_manifest
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.photos.shards import CONV_SUBSETS, shard_entries, shard_ranges
from tasks.photos.undecodable import REPORT_COLUMNS, UndecodableReport, read_reports, require_within_limit
from tasks.split import write_shards
from tasks.vgg.feature_store import FEATURES_FILE, read_shards, write_index
from tests.support.photos import organized_photos, split_photos
from tests.support.workspace import PROJECT, merged


@pytest.mark.parametrize(
    ("count", "batch_size", "shards", "ranges"),
    [
        (10, 4, 1, [range(0, 10)]),  # one shard: everything, the partial last batch too
        (10, 4, 2, [range(0, 4), range(4, 10)]),  # 3 batches: the later shard one more
        (10, 4, 3, [range(0, 4), range(4, 8), range(8, 10)]),  # the last batch partial
        (10, 4, 4, [range(0, 0), range(0, 4), range(4, 8), range(8, 10)]),  # more shards than batches: one empty
        (0, 4, 2, [range(0, 0), range(0, 0)]),  # no photos (a data set without test photos)
        (8, 4, 2, [range(0, 4), range(4, 8)]),
    ],
)
def test_shard_ranges_are_whole_batches_in_order(count: int, batch_size: int, shards: int, ranges: list[range]):
    got = shard_ranges(count, batch_size, shards)
    assert got == ranges
    assert [row for part in got for row in part] == list(range(count))  # joined in order: every row once
    assert all(part.start % batch_size == 0 for part in got if part)  # each starts a batch of the one-shard pass


def _entries(train: int, valid: int, test: int) -> list[PhotoEntry]:
    rows = [PhotoEntry("train", "cats", f"cat.{i}", f"train/cats/cat.{i}.jpg", "") for i in range(train)]
    rows += [PhotoEntry("valid", "dogs", f"dog.{i}", f"train/dogs/dog.{i}.jpg", "") for i in range(valid)]
    rows += [PhotoEntry("sample_train", "cats", "cat.1", "train/cats/cat.1.jpg", "")]
    return rows + [PhotoEntry("test", "unknown", str(i), f"test/unknown/{i}.jpg", "") for i in range(test)]


def test_shard_entries_cut_each_conv_subset_and_join_back_to_it():
    entries = _entries(train=9, valid=3, test=5)
    for shards in (1, 2, 3, 5):
        parts = [shard_entries(entries, shard, shards, 2) for shard in range(shards)]
        for subset in CONV_SUBSETS:
            assert [e for part in parts for e in part[subset]] == in_subset(entries, subset), (shards, subset)
    assert [len(p) for p in shard_entries(entries, 0, 3, 2).values()] == [2, 0, 2]  # train, valid, test of shard 0
    assert [len(p) for p in shard_entries(entries, 2, 3, 2).values()] == [3, 1, 1]


def test_the_shards_sample_parts_join_to_the_sample_subsets_in_their_order(tmp_path: Path):
    """split lists a sample subset in the order of the subset it is drawn from, so the per-shard parts join back."""
    organized_photos(tmp_path, per_class=10, test_count=3)
    split_photos(tmp_path, SplitParams(seed=3, valid_size=6, sample_train_size=7, sample_valid_size=4))
    entries = read_manifest(tmp_path / "split.csv")
    for shards in (1, 2, 3, 4):
        parts = [shard_entries(entries, shard, shards, 3) for shard in range(shards)]
        for sample, source in SAMPLE_SUBSETS.items():
            joined = [e for part in parts for e in sample_part(entries, sample, part[source])]
            assert joined == in_subset(entries, sample), (shards, sample)


def test_split_writes_each_shards_photos_to_its_store_in_manifest_order(tmp_path: Path):
    store = organized_photos(tmp_path, per_class=6, test_count=3)
    split_photos(tmp_path, SplitParams(seed=0, valid_size=4, sample_train_size=2, sample_valid_size=2))
    entries = read_manifest(tmp_path / "split.csv")
    assert write_shards(store, tmp_path / "split.csv", tmp_path / "shards", 3, 2) == [2, 6, 7]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["0.zip", "1.zip", "2.zip"]
    with PhotoStore(store) as whole:
        for shard in range(3):
            chosen = shard_entries(entries, shard, 3, 2)
            with PhotoStore(tmp_path / "shards" / f"{shard}.zip") as part:
                assert part.members() == [e.path for s in CONV_SUBSETS for e in chosen[s]]
                for e in chosen["train"]:
                    assert part.read_checked(e.path, e.md5, 1 << 20) == whole.read_checked(e.path, e.md5, 1 << 20)
    first = (tmp_path / "shards" / "1.zip").read_bytes()
    write_shards(store, tmp_path / "split.csv", tmp_path / "shards", 3, 2)
    assert (tmp_path / "shards" / "1.zip").read_bytes() == first  # fixed timestamps: the same bytes, the same md5


def test_split_refuses_a_photo_whose_bytes_are_not_the_listed_ones_and_keeps_the_old_shards(tmp_path: Path):
    store = organized_photos(tmp_path, per_class=4, test_count=1)
    split_photos(tmp_path, SplitParams(seed=0, valid_size=2, sample_train_size=1, sample_valid_size=1))
    entries = read_manifest(tmp_path / "split.csv")
    other = tmp_path / "other.zip"
    with PhotoStore(store) as whole, PhotoStoreWriter(other) as writer:
        for e in in_subset(entries, "train") + in_subset(entries, "valid") + in_subset(entries, "test"):
            data = whole.read_checked(e.path, e.md5, 1 << 20)
            writer.add_bytes(e.path, b"not the photo" if e.id == "dog.2" else data)
    write_shards(store, tmp_path / "split.csv", tmp_path / "shards", 1, 2)
    before = (tmp_path / "shards" / "0.zip").read_bytes()
    with pytest.raises(StageError, match=r"^train/dogs/dog.2.jpg in .*other.zip is not the photo the manifest lists"):
        write_shards(other, tmp_path / "split.csv", tmp_path / "shards", 1, 2)
    assert (tmp_path / "shards" / "0.zip").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["0.zip"]  # no temporary left beside it


def _shard(root: Path, shard: int, rows: int, shape: tuple[int, ...] = (1, 1, 2)) -> None:
    """A features@<shard> folder of rows train photos, features of shape, and an empty undecodable report."""
    folder = root / str(shard) / "train"
    folder.mkdir(parents=True)
    np.save(folder / FEATURES_FILE, np.full((rows, *shape), shard, np.float16))
    ids = [f"cat.{shard}.{i}" for i in range(rows)]
    write_index(folder, ids, [0] * rows, [f"data/organized/train/cats/{i}.jpg" for i in ids])
    UndecodableReport(0, 2).write(root / str(shard))


def test_read_shards_joins_the_listed_shards_in_order_and_refuses_a_missing_or_other_shaped_one(tmp_path: Path):
    for shard, rows in enumerate([2, 0, 3]):
        _shard(tmp_path, shard, rows)
    _shard(tmp_path, 5, 1)  # a shard of an earlier, longer list: not listed, not read
    joined = read_shards(tmp_path, (0, 1, 2), "train")
    assert joined.ids == ["cat.0.0", "cat.0.1", "cat.2.0", "cat.2.1", "cat.2.2"]
    assert np.asarray(joined.features)[:, 0, 0, 0].tolist() == [0, 0, 2, 2, 2] and joined.targets.tolist() == [0] * 5
    assert isinstance(read_shards(tmp_path, (0,), "train").features, np.memmap)  # one shard: no copy at all
    with pytest.raises(
        StageError, match=r"^.*/3/train is missing, but features.shards lists shard 3; run `dvc repro` "
    ):
        read_shards(tmp_path, (0, 1, 2, 3), "train")
    _shard(tmp_path, 3, 1, shape=(2, 2, 2))
    with pytest.raises(StageError, match=r"/3/train holds features of shape \(2, 2, 2\), shard 0 of \(1, 1, 2\)"):
        read_shards(tmp_path, (0, 1, 2, 3), "train")
    with pytest.raises(StageError, match=r"/4/undecodable.csv is missing, but features.shards lists shard 4"):
        read_reports(tmp_path, (0, 4))


def test_max_undecodable_is_enforced_on_the_shards_together():
    rows = [("train", f"cat.{i}", f"data/organized/train/cats/cat.{i}.jpg", "broken", "left out") for i in range(3)]
    report = pd.DataFrame([*rows, ("test", "1", "t", "broken", "P = 1/2 for every class")], columns=REPORT_COLUMNS)
    require_within_limit(report, 3)  # test photos keep their row: they don't count
    with pytest.raises(StageError, match=r"^3 train/valid photos can't be decoded over all shards, more than "):
        require_within_limit(report, 2)


@pytest.mark.parametrize("argv", [[], ["a"], ["0", "1"], ["-1"]])
def test_the_features_stage_needs_one_shard_number(argv: list[str]):
    with pytest.raises(StageError, match=r"^expected one shard number, as `python -m tasks.features 0`"):
        shard_argument(argv)
    assert shard_argument(["12"]) == 12


@pytest.mark.parametrize(
    ("shards", "got"),
    [([1, 2], "[1, 2]"), ([0, 2], "[0, 2]"), ([1, 0], "[1, 0]"), ([0, 0], "[0, 0]"), ([], "[]")],
)
def test_a_shard_list_that_is_not_0_to_n_minus_1_is_refused_at_load(shards: list[int], got: str):
    data = merged(yaml.safe_load((PROJECT / "params.yaml").read_text()), {"features": {"shards": shards}})
    with pytest.raises(StageError) as refused:
        parse_params(data)
    assert str(refused.value) == (
        f"params.yaml: features.shards is {got}; it must list the shard numbers 0 to N-1 in order, one per shard: "
        "[0] for one shard, [0, 1, 2, 3] for four"
    )
