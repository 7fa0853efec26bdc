"""split: seeded, stratified validation and sample sets, written as a manifest."""

from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import StageError
from tasks.core.params import SplitParams
from tasks.photos.class_balance import (
    MIN_CLASS_SHARE,
    rare_class_warning,
    require_room_for_each_class,
    require_targets_of_each_class,
)
from tasks.photos.manifest import PhotoEntry, read_manifest, write_manifest
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.split import (
    balance_metrics,
    natural_key,
    plan_counts,
    plan_split,
    require_each_class,
    split,
    stratified_counts,
)
from tests.support.photos import organized_photos

CATS_DOGS = ("cats", "dogs")


def stored(store: Path, entries: list[PhotoEntry]) -> list[PhotoEntry]:
    """entries with their photos (a few bytes each, named by path) written to the store at store, and their md5s."""
    store.parent.mkdir(parents=True, exist_ok=True)
    with PhotoStoreWriter(store) as writer:
        return [e._replace(md5=writer.add_bytes(e.path, e.path.encode())) for e in entries]


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
    counts = {
        s: sum(n.values())
        for s, n in split(tmp_path / "organized.csv", tmp_path / "split.csv", params, CATS_DOGS).items()
    }
    assert counts == {"train": 12, "valid": 4, "sample_train": 4, "sample_valid": 2, "test": 3}
    assert (tmp_path / "split.csv").read_text().splitlines()[0] == "subset,class_name,id,path,md5"
    rows = read_manifest(tmp_path / "split.csv")
    by_subset = {s: [e for e in rows if e.subset == s] for s in counts}
    assert {s: len(v) for s, v in by_subset.items()} == counts
    index = {e.path: e for e in read_manifest(tmp_path / "organized.csv")}
    with PhotoStore(organized) as store:
        members = set(store.members())
    for e in rows:
        assert (e.class_name, e.id, e.md5) == (index[e.path].class_name, index[e.path].id, index[e.path].md5)
        assert e.path in members
    train, valid = {e.path for e in by_subset["train"]}, {e.path for e in by_subset["valid"]}
    assert not train & valid and len(train | valid) == 16
    assert {e.path for e in by_subset["sample_train"]} <= train and {e.path for e in by_subset["sample_valid"]} <= valid
    assert [e.id for e in by_subset["test"]] == ["1", "2", "3"]
    first = (tmp_path / "split.csv").read_bytes()
    split(tmp_path / "organized.csv", tmp_path / "split.csv", params, CATS_DOGS)
    assert (tmp_path / "split.csv").read_bytes() == first  # seeded: the same manifest, byte for byte
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_split_explains_a_missing_or_foreign_index(tmp_path: Path):
    params = SplitParams(seed=0, valid_size=2, sample_train_size=1, sample_valid_size=1)
    with pytest.raises(StageError, match=r"organized.csv is missing; run `dvc repro`"):
        split(tmp_path / "organized.csv", tmp_path / "split.csv", params, CATS_DOGS)
    (tmp_path / "organized.csv").write_text("id,label\ncat.1,0\n")
    with pytest.raises(StageError, match="is not a photo manifest"):
        split(tmp_path / "organized.csv", tmp_path / "split.csv", params, CATS_DOGS)
    assert not (tmp_path / "split.csv").exists()


# ---- every class in every subset a head trains or validates on -----------------------------------------


def planned(pool: dict[str, list[str]], params: SplitParams) -> dict:
    """The per-class counts of the plan for pool, after split's class check."""
    counts = plan_counts(plan_split(pool, params), tuple(pool))
    require_each_class(pool, counts)
    return counts


SIZES = SplitParams(seed=0, valid_size=4, sample_train_size=2, sample_valid_size=2)


@pytest.mark.parametrize(
    ("pool", "params", "line"),
    [
        (
            {"cats": [f"cat.{i}.jpg" for i in range(1, 41)], "dogs": []},
            SIZES,
            "train holds 0 dogs and 36 cats; every class needs photos in train and valid: the archive's train photos "
            "hold 0 dogs and 40 cats: use an archive with photos of each class",
        ),
        (
            {"cats": [], "dogs": [f"dog.{i}.jpg" for i in range(1, 11)]},
            SIZES,
            "train holds 0 cats and 6 dogs; every class needs photos in train and valid: the archive's train photos "
            "hold 0 cats and 10 dogs: use an archive with photos of each class",
        ),
        (  # one dog in 40: the validation set takes it (each class gets a photo), and train keeps none
            train_pool(39, 1),
            SIZES,
            "train holds 0 dogs and 36 cats; every class needs photos in train and valid: split.valid_size took every "
            "one of dogs: add photos of them",
        ),
    ],
    ids=["no-dogs", "no-cats", "one-dog"],
)
def test_a_subset_without_a_class_is_refused_naming_the_counts(pool, params, line):
    with pytest.raises(StageError) as refused:
        planned(pool, params)
    assert str(refused.value) == line


def test_every_class_gets_a_photo_in_each_subset_when_the_size_allows():
    """Proportions alone give a rare class none: 4 of 39 cats and 1 dog are 4 cats, 2 of 36 and 4 are 2 cats."""
    assert stratified_counts({"cats": 39, "dogs": 1}, 4) == {"cats": 3, "dogs": 1}
    assert stratified_counts({"cats": 36, "dogs": 4}, 2) == {"cats": 1, "dogs": 1}
    assert stratified_counts({"cats": 36, "dogs": 4}, 1) == {"cats": 1, "dogs": 0}  # too few for both
    assert stratified_counts({"cats": 36, "dogs": 0}, 2) == {"cats": 2, "dogs": 0}  # none to give
    counts = planned(train_pool(36, 4), SplitParams(seed=0, valid_size=20, sample_train_size=2, sample_valid_size=2))
    assert counts["sample_train"] == {"cats": 1, "dogs": 1} and counts["sample_valid"] == {"cats": 1, "dogs": 1}
    assert planned(train_pool(20, 20), SIZES)["valid"] == {"cats": 2, "dogs": 2}  # balanced sets are as before


def test_balance_metrics_and_the_rare_class_warning():
    counts = planned(train_pool(95, 5), SplitParams(seed=0, valid_size=20, sample_train_size=40, sample_valid_size=10))
    assert counts["valid"] == {"cats": 19, "dogs": 1} and counts["train"] == {"cats": 76, "dogs": 4}
    metrics = balance_metrics(counts)
    assert metrics["valid"] == {"cats": 19, "dogs": 1, "smallest_class_share": 0.05}
    assert metrics["smallest_class_share"] == 0.05 and metrics["min_class_share"] == MIN_CLASS_SHARE == 0.10
    assert rare_class_warning("valid", counts["valid"]) == (
        "warning: valid holds 1 dogs and 19 cats: dogs are 5.0% of it, under 10%; the head will lean to the other "
        "class: add photos of dogs if you have them"
    )
    balanced = planned(train_pool(20, 20), SIZES)
    assert rare_class_warning("valid", balanced["valid"]) is None
    assert balance_metrics(balanced)["smallest_class_share"] == 0.5
    assert rare_class_warning("train", {"cats": 9, "dogs": 1}) is None  # exactly 10%: not under


def test_split_refuses_an_index_of_one_class_and_writes_nothing(tmp_path: Path):
    organized_photos(tmp_path, per_class=6, test_count=2)
    index = tmp_path / "organized.csv"
    index.write_text("".join(line + "\n" for line in index.read_text().splitlines() if "/dogs/" not in line))
    with pytest.raises(
        StageError, match=r"^train holds 0 dogs and 3 cats; every class needs photos in train and valid"
    ):
        split(
            index,
            tmp_path / "split.csv",
            SplitParams(seed=0, valid_size=3, sample_train_size=2, sample_valid_size=2),
            CATS_DOGS,
        )
    assert not (tmp_path / "split.csv").exists()


def test_train_refuses_targets_without_a_class():
    """train's own check: every photo of a class can also be lost after split, left out as undecodable."""
    require_targets_of_each_class("valid", np.array([0, 1, 1]), ("cats", "dogs"))
    with pytest.raises(StageError) as refused:
        require_targets_of_each_class("sample_valid", np.array([1, 1, 1]), ("cats", "dogs"))
    assert str(refused.value) == (
        "the features of sample_valid hold 0 cats and 3 dogs; a head needs photos of every class to train and "
        "validate on: if photos of cats were left out as undecodable (`dvc metrics show` counts them), replace "
        "them; then run `dvc repro`, whose split refuses a subset without a class"
    )


def test_the_stage_warns_of_a_rare_class_and_records_every_subsets_classes(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
):
    import json

    import yaml

    from tasks import split as stage
    from tasks.photos.class_list import ClassList, submission_layout, write_class_list
    from tasks.photos.manifest import PhotoEntry, write_manifest
    from tests.support.workspace import PROJECT, merged, write_paths

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    write_paths(
        in_tmp,
        {"organized_index": "organized.csv", "classes": "classes.json", "split": "split.csv", "metrics": "metrics"},
    )
    write_class_list(in_tmp / "classes.json", ClassList(CATS_DOGS, submission_layout(CATS_DOGS, None, None)))
    sizes = {"valid_size": 20, "sample_train_size": 40, "sample_valid_size": 10}
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(merged(params, {"split": sizes})))
    pool = train_pool(95, 5)
    write_manifest(
        in_tmp / "organized.csv",
        stored(
            in_tmp / "data/photos.zip",
            [PhotoEntry("train", c, n[:-4], f"train/{c}/{n}", "") for c, names in pool.items() for n in names]
            + [PhotoEntry("test", "unknown", "1", "test/unknown/1.jpg", "")],
        ),
    )
    stage.main()
    out, err = capsys.readouterr()
    assert out == "split: train 80, valid 20, sample_train 40, sample_valid 10, test 1\n" + (
        "split: 1 shard of photos in data/shards (0: 101)\n"
    )
    assert err.splitlines() == [
        "split: warning: train holds 4 dogs and 76 cats: dogs are 5.0% of it, under 10%; the head will lean to the "
        "other class: add photos of dogs if you have them",
        "split: warning: valid holds 1 dogs and 19 cats: dogs are 5.0% of it, under 10%; the head will lean to the "
        "other class: add photos of dogs if you have them",
    ]
    metrics = json.loads((in_tmp / "metrics/split.json").read_text())
    assert metrics["train"] == {"cats": 76, "dogs": 4, "smallest_class_share": 0.05}
    assert metrics["sample_train"]["cats"] + metrics["sample_train"]["dogs"] == 40
    assert metrics["smallest_class_share"] == 0.05


# ---- N classes --------------------------------------------------------------------------------------------

THREE = ("c2", "c10", "horse")  # the class list's natural order: c2 before c10


def three_pool(c2: int, c10: int, horse: int) -> dict[str, list[str]]:
    return {c: [f"{c}_{i}.jpg" for i in range(1, n + 1)] for c, n in zip(THREE, (c2, c10, horse), strict=True)}


def test_three_classes_are_stratified_and_counted_under_their_names():
    pool = three_pool(30, 20, 10)
    counts = planned(pool, SplitParams(seed=0, valid_size=12, sample_train_size=6, sample_valid_size=3))
    assert counts["valid"] == {"c2": 6, "c10": 4, "horse": 2}
    assert counts["train"] == {"c2": 24, "c10": 16, "horse": 8}
    assert counts["sample_valid"] == {"c2": 1, "c10": 1, "horse": 1}  # each class gets one when the size allows
    metrics = balance_metrics(counts)
    assert list(metrics["valid"]) == ["c2", "c10", "horse", "smallest_class_share"]
    assert metrics["smallest_class_share"] == pytest.approx(1 / 6)
    rare = planned(three_pool(50, 45, 5), SplitParams(seed=0, valid_size=20, sample_train_size=3, sample_valid_size=3))
    assert rare_class_warning("valid", rare["valid"]) == (
        "warning: valid holds 1 horse and 9 c10 and 10 c2: horse are 5.0% of it, under 10%; the head will lean to "
        "the other classes: add photos of horse if you have them"
    )
    with pytest.raises(StageError) as lacking:
        planned(three_pool(20, 20, 1), SplitParams(seed=0, valid_size=4, sample_train_size=2, sample_valid_size=2))
    assert str(lacking.value) == (
        "train holds 0 horse and 18 c10 and 19 c2; every class needs photos in train and valid: split.valid_size "
        "took every one of horse: add photos of them"
    )


def _three_class_index(path: Path) -> None:
    from tasks.photos.manifest import PhotoEntry, write_manifest

    write_manifest(
        path,
        [
            PhotoEntry("train", c, n[:-4], f"train/{c}/{n}", "0" * 32)
            for c, names in three_pool(5, 5, 5).items()
            for n in names
        ]
        + [PhotoEntry("test", "unknown", "img_1.jpg", "test/unknown/img_1.jpg", "0" * 32)],
    )


def test_split_sizes_are_checked_against_the_class_lists_count(tmp_path: Path):
    """params.py knows only that there are at least 2 classes; split knows N and names the key and N."""
    _three_class_index(tmp_path / "organized.csv")
    with pytest.raises(StageError) as small:
        split(
            tmp_path / "organized.csv",
            tmp_path / "split.csv",
            SplitParams(seed=0, valid_size=2, sample_train_size=2, sample_valid_size=2),
            THREE,
        )
    assert str(small.value) == (
        "split.valid_size is 2 but the data holds 3 classes (c2, c10, horse); the validation set needs a photo of "
        "each: raise it to at least 3"
    )
    assert not (tmp_path / "split.csv").exists()
    sizes = SplitParams(seed=0, valid_size=3, sample_train_size=2, sample_valid_size=3)
    with pytest.raises(StageError) as sample:  # train's check: split draws a sample set of 2 for 3 classes as asked
        require_room_for_each_class("sample_train", np.array([0, 1]), THREE)
    assert str(sample.value) == (
        "sample_train holds 2 photos but the data holds 3 classes, each needing a photo there (train.dataset is "
        "sample): raise split.sample_train_size to at least 3, or set train.dataset to full"
    )
    require_room_for_each_class("sample_valid", np.array([0, 1, 2]), THREE)
    require_room_for_each_class("valid", np.array([0, 1]), THREE)  # valid is split's to check, against valid_size
    with pytest.raises(StageError, match=r"lists classes the class list lacks \(horse\); run `dvc repro`"):
        split(tmp_path / "organized.csv", tmp_path / "split.csv", sizes, ("c2", "c10"))
    counts = split(tmp_path / "organized.csv", tmp_path / "split.csv", sizes, THREE)
    assert counts["valid"] == {"c2": 1, "c10": 1, "horse": 1} and counts["test"] == {"unknown": 1}
    assert read_manifest(tmp_path / "split.csv")[-1].id == "img_1.jpg"  # test ids pass through as strings


def test_the_stage_reads_the_class_list(in_tmp: Path, capsys: pytest.CaptureFixture[str]):
    import json

    import yaml

    from tasks import split as stage
    from tasks.photos.class_list import ClassList, submission_layout, write_class_list
    from tests.support.workspace import PROJECT, merged, write_paths

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    write_paths(
        in_tmp,
        {"organized_index": "organized.csv", "classes": "classes.json", "split": "split.csv", "metrics": "metrics"},
    )
    sizes = {"valid_size": 6, "sample_train_size": 3, "sample_valid_size": 3}
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(merged(params, {"split": sizes})))
    _three_class_index(in_tmp / "organized.csv")
    write_manifest(
        in_tmp / "organized.csv", stored(in_tmp / "data/photos.zip", read_manifest(in_tmp / "organized.csv"))
    )
    write_class_list(in_tmp / "classes.json", ClassList(THREE, submission_layout(THREE, None, None)))
    stage.main()
    assert capsys.readouterr().out == "split: train 9, valid 6, sample_train 3, sample_valid 3, test 1\n" + (
        "split: 1 shard of photos in data/shards (0: 16)\n"
    )
    metrics = json.loads((in_tmp / "metrics/split.json").read_text())
    assert metrics["valid"] == {"c2": 2, "c10": 2, "horse": 2, "smallest_class_share": 1 / 3}


# ---- class folders that number their photos alike ---------------------------------------------------------------


def _organized_and_split(tmp_path: Path, name_of, params: SplitParams) -> list:
    """Reorganize, then split, 3 class folders of 6 photos each named by name_of(class, number); the split rows."""
    from tasks.reorganize import reorganize
    from tests.support.bad_inputs import zip_bytes
    from tests.support.params import reorganize_params

    tmp_path.mkdir()
    files = {f"{c}/{name_of(c, i)}": f"{c} {i}".encode() for c in ("wasps", "bees", "hornets") for i in range(1, 7)}
    (tmp_path / "data.zip").write_bytes(zip_bytes({**files, "test/1.jpg": b"t"}))
    place = {"train": ".", "test": "test", "labels": "", "sample_submission": ""}
    reorganize(
        tmp_path / "data.zip",
        tmp_path / "organized",
        tmp_path / "organized.csv",
        tmp_path / "classes.json",
        reorganize_params(**place),
    )
    split(tmp_path / "organized.csv", tmp_path / "split.csv", params, ("bees", "hornets", "wasps"))
    return read_manifest(tmp_path / "split.csv")


def test_class_folders_of_the_same_file_names_split_as_names_told_apart_would(tmp_path: Path):
    """Every class holds 0001.jpg to 0006.jpg: each photo is split once, and the draw is the one distinct names give."""
    params = SplitParams(seed=3, valid_size=6, sample_train_size=3, sample_valid_size=3)
    alike = _organized_and_split(tmp_path / "alike", lambda c, i: f"{i:04d}.jpg", params)
    apart = _organized_and_split(tmp_path / "apart", lambda c, i: f"{c}-{i:04d}.jpg", params)
    train_valid = [e for e in alike if e.subset in ("train", "valid")]
    assert len(train_valid) == 18 and len({e.id for e in train_valid}) == 18
    assert {e.id for e in train_valid} == {f"{c}/{i:04d}" for c in ("bees", "hornets", "wasps") for i in range(1, 7)}
    # The same photos (by their bytes) in the same subsets, in the same order: the file names changed nothing.
    assert [(e.subset, e.class_name, e.md5) for e in alike] == [(e.subset, e.class_name, e.md5) for e in apart]
