"""Stage split: carve a seeded, stratified validation set and a small sample set out of train, as a manifest.

The course moved photos into valid/ and copied some into sample/; a manifest (tasks/photos/manifest.py) says
the same in one small file, so DVC checks one file instead of 25,000 links on every `dvc repro`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tasks.core.atomic_output import atomic_dir, write_json
from tasks.core.errors import StageError, run_stage
from tasks.core.params import SplitParams, load_params
from tasks.core.paths import load_paths
from tasks.photos.class_balance import MIN_CLASS_SHARE, describe, missing_classes, rare_class_warning, smallest_share
from tasks.photos.class_list import read_class_list
from tasks.photos.manifest import TEST_SUBSET, PhotoEntry, in_subset, natural_key, read_manifest, write_manifest
from tasks.photos.photo_store import PhotoStore, PhotoStoreWriter
from tasks.photos.shards import CONV_SUBSETS, shard_entries

Plan = dict[str, dict[str, list[str]]]  # subset -> class name -> photo paths (train/<class>/<file>)
Counts = dict[str, dict[str, int]]  # subset -> class name -> photos
SUBSETS = ("train", "valid", "sample_train", "sample_valid")  # the names features and train.dataset use too
# Every class must be in these. The sample sets then hold every class too: they are drawn from them with at least one
# photo of each class (stratified_counts) when their size allows; train refuses one too small when train.dataset is
# sample (split does not read train.dataset, so switching it never reruns split).
CHECKED = ("train", "valid")
METRICS_FILE = "split.json"


def stratified_counts(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split total across classes in proportion to their sizes (largest remainder, ties by class order).

    Each class the sizes hold gets at least one photo when total allows: a subset without a class can train or
    validate no head, and proportions alone give a rare class none (2 of 95 cats and 5 dogs are 2 cats).
    """
    available = sum(sizes.values())
    if total > available:
        raise StageError(f"asked for {total} photos but only {available} are available")
    exact = {c: total * n / available if available else 0.0 for c, n in sizes.items()}
    counts = {c: int(v) for c, v in exact.items()}
    by_remainder = sorted(sizes, key=lambda c: (-(exact[c] - counts[c]), list(sizes).index(c)))
    for c in by_remainder[: total - sum(counts.values())]:
        counts[c] += 1
    present = [c for c, n in sizes.items() if n]
    if total >= len(present):
        for c in present:
            if not counts[c]:  # one from the largest share, which holds 2 or more as total >= len(present)
                counts[max(counts, key=lambda d: (counts[d], -list(sizes).index(d)))] -= 1
                counts[c] = 1
    return counts


def _draw(
    pool: dict[str, list[str]], total: int, rng: np.random.Generator
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Draw a stratified random subset of total from pool; return (drawn, rest), both in natural order."""
    counts = stratified_counts({c: len(names) for c, names in pool.items()}, total)
    drawn, rest = {}, {}
    for c, names in pool.items():
        chosen = set(rng.choice(len(names), size=counts[c], replace=False).tolist())
        drawn[c] = [n for i, n in enumerate(names) if i in chosen]
        rest[c] = [n for i, n in enumerate(names) if i not in chosen]
    return drawn, rest


def plan_split(train: dict[str, list[str]], params: SplitParams) -> Plan:
    """Assign every train photo to train or valid, and pick sample_train from train and sample_valid from valid."""
    pool = {c: sorted(names, key=natural_key) for c, names in train.items()}
    total = sum(len(v) for v in pool.values())
    # How many photos train holds is known only now for the archive and Kaggle sources, so these two checks
    # stay here (params.py makes them at load for the synthetic source, whose size params.yaml sets).
    # sample_valid_size <= valid_size needs no data: params.py checks it, once, at load.
    if params.valid_size >= total:
        raise StageError(
            f"split.valid_size is {params.valid_size} but train holds only {total} photos; "
            "lower it so some remain to train on"
        )
    rng = np.random.default_rng(params.seed)
    valid, rest = _draw(pool, params.valid_size, rng)
    if params.sample_train_size > total - params.valid_size:
        raise StageError(
            f"split.sample_train_size is {params.sample_train_size} but only {total - params.valid_size} "
            "train photos remain after the validation set"
        )
    sample_train, _ = _draw(rest, params.sample_train_size, rng)
    sample_valid, _ = _draw(valid, params.sample_valid_size, rng)
    return {"train": rest, "valid": valid, "sample_train": sample_train, "sample_valid": sample_valid}


def plan_counts(plan: Plan, classes: tuple[str, ...]) -> Counts:
    """Photos of each class in each subset of plan, every class a key."""
    return {subset: {c: len(plan[subset].get(c, [])) for c in classes} for subset in SUBSETS}


def _classes_named(classes: tuple[str, ...]) -> str:
    """`3 classes (a, b, c)`, or the first few of many."""
    shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
    return f"{len(classes)} classes ({shown})"


def check_valid_size(params: SplitParams, classes: tuple[str, ...]) -> None:
    """Refuse a validation set too small to hold a photo of each class (params.py knows only that there are 2+)."""
    if params.valid_size < len(classes):
        raise StageError(
            f"split.valid_size is {params.valid_size} but the data holds {_classes_named(classes)}; the validation "
            f"set needs a photo of each: raise it to at least {len(classes)}"
        )


def require_each_class(train: dict[str, list[str]], counts: Counts) -> None:
    """Refuse a plan whose train or valid set lacks a class: a head trained or validated so learns a constant."""
    pool = {c: len(train.get(c, [])) for c in counts["train"]}
    for subset in CHECKED:
        lacking = missing_classes(counts[subset])
        if not lacking:
            continue
        if missing_classes(pool):
            remedy = f"the archive's train photos hold {describe(pool)}: use an archive with photos of each class"
        else:  # valid holds at least one of each class it can (stratified_counts), so train is the one left short
            remedy = f"split.valid_size took every one of {', '.join(lacking)}: add photos of them"
        raise StageError(
            f"{subset} holds {describe(counts[subset])}; every class needs photos in train and valid: {remedy}"
        )


def balance_metrics(counts: Counts) -> dict:
    """Per subset, its photos of each class and the smallest class's share; overall, the smallest in train and valid."""
    per_subset = {s: {**counts[s], "smallest_class_share": smallest_share(counts[s])} for s in SUBSETS}
    smallest = min(smallest_share(counts[s]) for s in CHECKED)
    return {**per_subset, "smallest_class_share": smallest, "min_class_share": MIN_CLASS_SHARE}


def split(index: Path, target: Path, params: SplitParams, classes: tuple[str, ...]) -> Counts:
    """Write the plan to the manifest target, one row per photo and subset, test rows last.

    classes: the class list's, in index order. Refuses a plan whose train or valid set lacks a class; returns photos
    per class in each subset, and the test photos under `unknown`.
    """
    entries = read_manifest(index)
    # Keyed by path, train/<class>/<file>: two classes may each hold a 0001.jpg, one class never two. Within a class
    # the paths share their folder, so their natural order is their file names': the draw is the one names gave.
    by_path = {e.path: e for e in in_subset(entries, "train")}
    strangers = sorted({e.class_name for e in by_path.values()} - set(classes), key=natural_key)
    if strangers:
        raise StageError(
            f"{index} lists classes the class list lacks ({', '.join(strangers[:5])}); run `dvc repro`, whose "
            "reorganize writes both"
        )
    check_valid_size(params, classes)
    train = {c: [path for path, e in by_path.items() if e.class_name == c] for c in classes}
    plan = plan_split(train, params)
    counts = plan_counts(plan, classes)
    require_each_class(train, counts)
    rows = [
        by_path[path]._replace(subset=subset) for subset in SUBSETS for paths in plan[subset].values() for path in paths
    ]
    test = in_subset(entries, TEST_SUBSET)
    write_manifest(target, [*rows, *test])
    return counts | {TEST_SUBSET: {"unknown": len(test)}}


def copy_checked(store: PhotoStore, writer: PhotoStoreWriter, entry: PhotoEntry) -> None:
    """Copy one photo from store into writer, refused unless its bytes are the ones the manifest lists."""
    with store.open(entry.path) as source:
        size = store.archive.getinfo(entry.path).file_size
        md5 = writer.add(entry.path, source, size, f"{entry.path} in {store.path}")
    if md5 != entry.md5:
        raise StageError(
            f"{entry.path} in {store.path} is not the photo the manifest lists (md5 {md5}, listed {entry.md5}); "
            "run `dvc repro`, which rewrites the store and the manifest together"
        )


def write_shards(photos: Path, manifest: Path, target: Path, shards: int, batch_size: int) -> list[int]:
    """Write target/<shard>.zip for each of shards: a photo store of the shard's photos, in manifest order.

    Each features@<shard> stage depends on its own store alone, so a worker pulls and DVC hashes one shard's photos,
    not all of them. Returns the photos in each shard.
    """
    entries = read_manifest(manifest)
    counts = []
    with PhotoStore(photos) as store, atomic_dir(target) as out:
        for shard in range(shards):
            chosen = shard_entries(entries, shard, shards, batch_size)
            with PhotoStoreWriter(out / f"{shard}.zip") as writer:
                for subset in CONV_SUBSETS:
                    for entry in chosen[subset]:
                        copy_checked(store, writer, entry)
            counts.append(sum(len(chosen[s]) for s in CONV_SUBSETS))
    return counts


def main() -> None:
    params = load_params()
    paths = load_paths()
    classes = read_class_list(Path(paths.classes)).classes
    counts = split(Path(paths.organized_index), Path(paths.split), params.split, classes)
    shards = len(params.features.shards)
    photos = write_shards(Path(paths.photos), Path(paths.split), Path(paths.shards), shards, params.features.batch_size)
    write_json(Path(paths.metrics) / METRICS_FILE, balance_metrics(counts))
    print("split: " + ", ".join(f"{subset} {sum(n.values())}" for subset, n in counts.items()))
    each = ", ".join(f"{shard}: {n:,}" for shard, n in enumerate(photos))
    print(f"split: {shards} shard{'s' * (shards > 1)} of photos in {paths.shards} ({each})")
    for subset in CHECKED:
        warning = rare_class_warning(subset, counts[subset])
        if warning:
            print(f"split: {warning}", file=sys.stderr)


if __name__ == "__main__":
    run_stage("split", main)
