"""Photo manifests: one CSV row per photo (subset, class name, id, path, md5), written by reorganize and split.

Downstream stages depend on these small files instead of the 37,500-file photo folder, so DVC hashes that
folder once per `dvc repro` (as reorganize's output) rather than once per stage that reads it. The md5
column keeps the link to the bytes: a changed photo changes the manifest, and readers check it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError

COLUMNS = ("subset", "class_name", "id", "path", "md5")
TEST_SUBSET = "test"  # reorganize lists test photos under it, and split passes them through unchanged


class PhotoEntry(NamedTuple):
    """One photo: its subset, class name (its folder: cats, dogs or unknown), id, path under organized/, md5."""

    subset: str
    class_name: str
    id: str
    path: str
    md5: str


def write_manifest(target: Path, entries: Iterable[PhotoEntry]) -> None:
    """Write entries as CSV to target, atomically."""
    with atomic_file(target) as tmp, open(tmp, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(entries)


def read_manifest(source: Path) -> list[PhotoEntry]:
    """The entries of a manifest; a missing or malformed file is explained."""
    if not source.is_file():
        raise StageError(f"{source} is missing; run `dvc repro` so the stage that writes it runs first")
    with open(source, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise StageError(
                f"{source} is not a photo manifest (header {header}, expected {','.join(COLUMNS)}); "
                "run `dvc repro --force` on the stage that writes it"
            )
        rows = list(reader)
    bad = next((n for n, row in enumerate(rows, start=2) if len(row) != len(COLUMNS)), None)
    if bad is not None:
        raise StageError(
            f"{source} line {bad} does not have {len(COLUMNS)} fields; run `dvc repro --force` on the "
            "stage that writes it"
        )
    return [PhotoEntry(*row) for row in rows]


def in_subset(entries: Iterable[PhotoEntry], subset: str) -> list[PhotoEntry]:
    """The entries of one subset, in manifest order."""
    return [e for e in entries if e.subset == subset]


def natural_key(name: str) -> tuple:
    """Sort 'cat.10.jpg' after 'cat.9.jpg', so no order depends on directory listing order."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))
