"""Shards: whole batches of each conv subset, in manifest order, and split's photo store of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import StageError
from tasks.core.params import SplitParams
from tasks.features import SAMPLE_SUBSETS, sample_part
from tasks.photos.manifest import PhotoEntry, in_subset, read_manifest
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.photos.shards import CONV_SUBSETS, shard_entries, shard_ranges
from tasks.split import write_shards
from tests.support.photos import organized_photos, split_photos


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
    organized_photos(tmp_path, per_class=4, test_count=1)
    split_photos(tmp_path, SplitParams(seed=0, valid_size=2, sample_train_size=1, sample_valid_size=1))
    entries = read_manifest(tmp_path / "split.csv")
    other = tmp_path / "other.zip"
    with PhotoStore(tmp_path / "organized") as whole, PhotoStoreWriter(other) as writer:
        for e in in_subset(entries, "train") + in_subset(entries, "valid") + in_subset(entries, "test"):
            data = whole.read_checked(e.path, e.md5, 1 << 20)
            writer.add_bytes(e.path, b"not the photo" if e.id == "dog.2" else data)
    write_shards(tmp_path / "organized", tmp_path / "split.csv", tmp_path / "shards", 1, 2)
    before = (tmp_path / "shards" / "0.zip").read_bytes()
    with pytest.raises(StageError, match=r"^train/dogs/dog.2.jpg in .*other.zip is not the photo the manifest lists"):
        write_shards(other, tmp_path / "split.csv", tmp_path / "shards", 1, 2)
    assert (tmp_path / "shards" / "0.zip").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["0.zip"]  # no temporary left beside it
