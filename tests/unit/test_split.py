"""split: seeded, stratified validation and sample sets, written as a manifest."""

from pathlib import Path

import pytest

from tasks.core.errors import StageError
from tasks.core.params import SplitParams
from tasks.photos.manifest import read_manifest
from tasks.split import natural_key, plan_split, split, stratified_counts
from tests.support.photos import organized_photos


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
    assert {c: len(v) for c, v in plan["sample_train"].items()} == {"cats": 3, "dogs": 1}
    for c in ("cats", "dogs"):
        assert not set(plan["train"][c]) & set(plan["valid"][c])
        assert set(plan["train"][c]) | set(plan["valid"][c]) == set(train_pool(30, 10)[c])
        assert set(plan["sample_train"][c]) <= set(plan["train"][c])
        assert set(plan["sample_valid"][c]) <= set(plan["valid"][c])


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
        (
            SplitParams(seed=0, valid_size=40, sample_train_size=4, sample_valid_size=2),
            "split.valid_size is 40 but train holds only 40",
        ),
        (
            SplitParams(seed=0, valid_size=10, sample_train_size=31, sample_valid_size=2),
            "split.sample_train_size is 31",
        ),
    ],
)
def test_sizes_beyond_the_photos_are_explained(params, message):
    """How many photos an archive holds is known only here; sizes that need no data are refused at load."""
    with pytest.raises(StageError, match=message):
        plan_split(train_pool(20, 20), params)


def test_natural_order():
    assert sorted(["cat.10.jpg", "cat.9.jpg", "cat.100.jpg"], key=natural_key) == [
        "cat.9.jpg",
        "cat.10.jpg",
        "cat.100.jpg",
    ]


def test_split_writes_a_manifest_of_every_subset_with_the_index_md5s(tmp_path: Path):
    organized = organized_photos(tmp_path, per_class=8, test_count=3)
    params = SplitParams(seed=0, valid_size=4, sample_train_size=4, sample_valid_size=2)
    counts = split(tmp_path / "organized.csv", tmp_path / "split.csv", params)
    assert counts == {"train": 12, "valid": 4, "sample_train": 4, "sample_valid": 2, "test": 3}
    assert (tmp_path / "split.csv").read_text().splitlines()[0] == "subset,class_name,id,path,md5"
    rows = read_manifest(tmp_path / "split.csv")
    by_subset = {s: [e for e in rows if e.subset == s] for s in counts}
    assert {s: len(v) for s, v in by_subset.items()} == counts
    index = {e.path: e for e in read_manifest(tmp_path / "organized.csv")}
    for e in rows:
        assert (e.class_name, e.id, e.md5) == (index[e.path].class_name, index[e.path].id, index[e.path].md5)
        assert (organized / e.path).is_file()
    train, valid = {e.path for e in by_subset["train"]}, {e.path for e in by_subset["valid"]}
    assert not train & valid and len(train | valid) == 16
    assert {e.path for e in by_subset["sample_train"]} <= train and {e.path for e in by_subset["sample_valid"]} <= valid
    assert [e.id for e in by_subset["test"]] == ["1", "2", "3"]
    first = (tmp_path / "split.csv").read_bytes()
    split(tmp_path / "organized.csv", tmp_path / "split.csv", params)
    assert (tmp_path / "split.csv").read_bytes() == first  # seeded: the same manifest, byte for byte
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_split_explains_a_missing_or_foreign_index(tmp_path: Path):
    params = SplitParams(seed=0, valid_size=2, sample_train_size=1, sample_valid_size=1)
    with pytest.raises(StageError, match=r"organized.csv is missing; run `dvc repro`"):
        split(tmp_path / "organized.csv", tmp_path / "split.csv", params)
    (tmp_path / "organized.csv").write_text("id,label\ncat.1,0\n")
    with pytest.raises(StageError, match="is not a photo manifest"):
        split(tmp_path / "organized.csv", tmp_path / "split.csv", params)
    assert not (tmp_path / "split.csv").exists()
