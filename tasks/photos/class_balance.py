"""How many photos of each class a subset holds: the sentence that says so, a missing class, a class too rare.

A head trained without one class learns a constant (val_accuracy 1.0 on a validation set of the same class, and
a submission worse than chance), so split refuses such a set and train checks again what it is given.
"""

from __future__ import annotations

import numpy as np

from tasks.core.errors import StageError

# A class under this share of a subset gets a warning (split's output and metrics/split.json), not a refusal: the
# head still learns, leaning to the larger class. The competition is balanced (12,500 each); a tenth is far off it.
# A constant, not a param: it changes no output, only whether a warning is printed.
MIN_CLASS_SHARE = 0.10


def class_counts(targets: np.ndarray, classes: tuple[str, ...]) -> dict[str, int]:
    """Photos of each class among targets (class indexes; the unknown -1 counts for none), every class a key."""
    return {name: int(np.count_nonzero(targets == index)) for index, name in enumerate(classes)}


def describe(counts: dict[str, int]) -> str:
    """`0 dogs and 40 cats`: each class's count, the rarest first, so the problem reads first."""
    order = list(counts)
    rarest_first = sorted(counts, key=lambda name: (counts[name], order.index(name)))
    return " and ".join(f"{counts[name]} {name}" for name in rarest_first)


def missing_classes(counts: dict[str, int]) -> list[str]:
    """The classes with no photo in counts (which holds every class), in class order."""
    return [name for name, n in counts.items() if not n]


def smallest_share(counts: dict[str, int]) -> float:
    """The rarest class's share of the subset (0.0 for an empty one)."""
    total = sum(counts.values())
    return min(counts.values()) / total if total else 0.0


def rare_class_warning(subset: str, counts: dict[str, int]) -> str | None:
    """A warning when a class holds less than MIN_CLASS_SHARE of subset; None when every class holds enough."""
    share = smallest_share(counts)
    if share >= MIN_CLASS_SHARE:
        return None
    rarest = min(counts, key=lambda name: counts[name])
    others = "other class" if len(counts) == 2 else "other classes"
    return (
        f"warning: {subset} holds {describe(counts)}: {rarest} are {share:.1%} of it, under {MIN_CLASS_SHARE:.0%}; "
        f"the head will lean to the {others}: add photos of {rarest} if you have them"
    )


# The split params that size each sample set: train names them when one is too small for the classes.
SAMPLE_SIZE_KEYS = {"sample_train": "split.sample_train_size", "sample_valid": "split.sample_valid_size"}


def require_room_for_each_class(subset: str, targets: np.ndarray, classes: tuple[str, ...]) -> None:
    """Refuse a sample set of fewer photos than classes: split draws it as asked, but it can't hold every class."""
    key = SAMPLE_SIZE_KEYS.get(subset)
    if key and len(targets) < len(classes):
        raise StageError(
            f"{subset} holds {len(targets)} photos but the data holds {len(classes)} classes, each needing a photo "
            f"there (train.dataset is sample): raise {key} to at least {len(classes)}, or set train.dataset to full"
        )


def require_targets_of_each_class(subset: str, targets: np.ndarray, classes: tuple[str, ...]) -> None:
    """Refuse to train or validate on targets that lack a class.

    split refuses such a subset; this catches the one it could not see: every photo of a class left out by features
    as undecodable.
    """
    counts = class_counts(targets, classes)
    lacking = missing_classes(counts)
    if lacking:
        raise StageError(
            f"the features of {subset} hold {describe(counts)}; a head needs photos of every class to train and "
            f"validate on: if photos of {', '.join(lacking)} were left out as undecodable (`dvc metrics show` counts "
            "them), replace them; then run `dvc repro`, whose split refuses a subset without a class"
        )
