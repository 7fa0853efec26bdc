"""split: seeded, stratified validation and sample sets, materialised as hardlinks."""
from pathlib import Path

import pytest

from tasks.errors import StageError
from tasks.params import SplitParams
from tasks.split import natural_key, plan_split, split, stratified_counts
from tests.photos import organized_photos


def train_pool(cats: int, dogs: int) -> dict[str, list[str]]:
    return {"cats": [f"cat.{i}.jpg" for i in range(1, cats + 1)], "dogs": [f"dog.{i}.jpg" for i in range(1, dogs + 1)]}


def test_stratified_counts_follow_class_proportions():
    assert stratified_counts({"cats": 12500, "dogs": 12500}, 2000) == {"cats": 1000, "dogs": 1000}
    assert stratified_counts({"cats": 30, "dogs": 10}, 8) == {"cats": 6, "dogs": 2}
    assert stratified_counts({"cats": 5, "dogs": 5}, 3) == {"cats": 2, "dogs": 1}
    assert sum(stratified_counts({"cats": 7, "dogs": 13}, 9).values()) == 9


def test_plan_sizes_disjointness_and_stratification():
    plan = plan_split(train_pool(30, 10), SplitParams(seed=0, valid_size=8, sample_train_size=4, sample_valid_size=4))
    assert {c: len(v) for c, v in plan["valid"].items()} == {"cats": 6, "dogs": 2}
    assert {c: len(v) for c, v in plan["train"].items()} == {"cats": 24, "dogs": 8}
    assert {c: len(v) for c, v in plan["sample/train"].items()} == {"cats": 3, "dogs": 1}
    for c in ("cats", "dogs"):
        assert not set(plan["train"][c]) & set(plan["valid"][c])
        assert set(plan["train"][c]) | set(plan["valid"][c]) == set(train_pool(30, 10)[c])
        assert set(plan["sample/train"][c]) <= set(plan["train"][c])
        assert set(plan["sample/valid"][c]) <= set(plan["valid"][c])


def test_plan_is_seeded_and_ignores_listing_order():
    params = SplitParams(seed=5, valid_size=10, sample_train_size=4, sample_valid_size=2)
    pool = train_pool(20, 20)
    shuffled = {c: list(reversed(v)) for c, v in pool.items()}
    assert plan_split(pool, params) == plan_split(shuffled, params)
    other = plan_split(pool, SplitParams(seed=6, valid_size=10, sample_train_size=4, sample_valid_size=2))
    assert other["valid"] != plan_split(pool, params)["valid"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (SplitParams(valid_size=40), "split.valid_size is 40 but train holds only 40"),
        (SplitParams(valid_size=10, sample_train_size=31), "split.sample_train_size is 31"),
        (SplitParams(valid_size=10, sample_train_size=1, sample_valid_size=11), "split.sample_valid_size is 11"),
    ],
)
def test_impossible_sizes_are_explained(params, message):
    with pytest.raises(StageError, match=message):
        plan_split(train_pool(20, 20), params)


def test_natural_order():
    assert sorted(["cat.10.jpg", "cat.9.jpg", "cat.100.jpg"], key=natural_key) == ["cat.9.jpg", "cat.10.jpg", "cat.100.jpg"]


def test_split_links_photos_instead_of_copying(tmp_path: Path):
    organized = organized_photos(tmp_path, per_class=8, test_count=2)
    counts = split(organized, tmp_path / "split", SplitParams(seed=0, valid_size=4, sample_train_size=4, sample_valid_size=2))
    assert counts == {"train": 12, "valid": 4, "sample/train": 4, "sample/valid": 2}
    for photo in (tmp_path / "split").rglob("*.jpg"):
        original = organized / "train" / photo.parent.name / photo.name
        assert photo.stat().st_ino == original.stat().st_ino
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
