"""The classes a dataset holds, found in its photos: index <-> name, fixed by reorganize, read by every stage after.

A photo's target is its class's position in `classes` (natural order: c2 before c10), so the two classes of Dogs vs.
Cats are cats 0 and dogs 1, as they always were. The submission's layout sits beside them: its header (from the
competition's sample_submission.csv when there is one) and the class whose probability each column after the id holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasks.core.atomic_output import write_json
from tasks.core.errors import StageError
from tasks.photos.manifest import natural_key

BINARY_COLUMN = "label"  # two classes without a sample header: `id,label`, P(classes[1]), as Dogs vs. Cats scores it
DEFAULT_ID_COLUMN = "id"
# Characters no folder name may hold on Windows or macOS (and `/` nowhere): a class is a folder under organized/.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_MAX_NAME_BYTES = 255  # the longest file name ext4, APFS and NTFS allow
TEST_CLASS = "unknown"  # the folder test photos sit in (test/unknown): never a class


@dataclass(frozen=True)
class SubmissionLayout:
    """The submission's header, and the class whose probability each column after the id column holds."""

    header: tuple[str, ...]
    columns: tuple[str, ...]  # class names, one per header column after the first
    source: str | None  # the sample submission the header was read from; None: the default layout

    @property
    def id_column(self) -> str:
        return self.header[0]


@dataclass(frozen=True)
class ClassList:
    """The dataset's classes in index order, and the submission layout that goes with them."""

    classes: tuple[str, ...]
    submission: SubmissionLayout

    def index(self, name: str) -> int:
        """The target of a photo of class name."""
        return self.classes.index(name)


def check_class_name(name: str, where: str) -> str:
    """A class name that can be a folder on any system, or the line saying why not (where: what holds it)."""
    problem = None
    if not name.strip():
        problem = "is empty"
    elif name != name.strip():
        problem = "starts or ends with a space"
    elif name in (".", "..") or name.startswith("."):
        problem = "starts with a dot (a hidden or parent folder)"
    elif _UNSAFE.search(name):
        problem = 'holds a character no folder name may (/ \\ : * ? " < > | or a control character)'
    elif len(name.encode()) > _MAX_NAME_BYTES:
        problem = f"is longer than {_MAX_NAME_BYTES} bytes"
    elif name.casefold() == TEST_CLASS:
        problem = f"is {TEST_CLASS!r}, the folder test photos sit in"
    if problem:
        raise StageError(f"class {name!r} in {where} {problem}; rename it to letters, digits, spaces, . _ or -")
    return name


def sorted_classes(names: Iterable[str], where: str) -> tuple[str, ...]:
    """The distinct class names in natural order, each checked; two that differ only in case are refused."""
    classes = tuple(sorted({check_class_name(n, where) for n in names}, key=natural_key))
    folded: dict[str, str] = {}
    for name in classes:
        other = folded.setdefault(name.casefold(), name)
        if other != name:
            raise StageError(
                f"classes {other!r} and {name!r} in {where} differ only in case, which Windows and macOS folders "
                "don't tell apart; merge or rename one"
            )
    if len(classes) < 2:
        raise StageError(f"{where} holds {len(classes)} class {list(classes)}; a classifier needs at least 2")
    return classes


def submission_layout(
    classes: tuple[str, ...], sample_header: list[str] | None, source: str | None
) -> SubmissionLayout:
    """The submission's layout: the sample's header when there is one, checked against classes; else the default.

    Two classes and a header of one probability column (Dogs vs. Cats' `id,label`) hold P(classes[1]). Otherwise the
    header must name every class once, in any order, which the submission keeps.
    """
    if sample_header is None:
        if len(classes) == 2:
            return SubmissionLayout((DEFAULT_ID_COLUMN, BINARY_COLUMN), (classes[1],), None)
        return SubmissionLayout((DEFAULT_ID_COLUMN, *classes), classes, None)
    header = tuple(sample_header)
    if len(header) < 2:
        raise StageError(f"{source} has the header {list(header)}; a submission needs an id column and probabilities")
    id_column, columns = header[0], header[1:]
    if len(classes) > 2 and len(columns) == 1 and columns[0] not in classes:
        raise StageError(
            f"{source} has the header {','.join(header)}: one column of class names, it seems, but this pipeline "
            f"writes a probability for each of the {len(classes)} classes; it can't write this submission"
        )
    if len(classes) == 2 and len(columns) == 1:
        return SubmissionLayout(header, (classes[1],), source)
    unknown = sorted(set(columns) - set(classes), key=natural_key)
    missing = sorted(set(classes) - set(columns), key=natural_key)
    twice = sorted({c for c in columns if columns.count(c) > 1}, key=natural_key)
    if unknown or missing or twice:
        parts = [
            f"names {len(unknown)} classes the photos lack ({', '.join(unknown[:5])})" if unknown else "",
            f"lacks {len(missing)} classes the photos hold ({', '.join(missing[:5])})" if missing else "",
            f"names {', '.join(twice[:5])} twice" if twice else "",
        ]
        raise StageError(
            f"{source}'s header ({id_column} then {len(columns)} columns) disagrees with the {len(classes)} classes "
            f"found: it {'; it '.join(p for p in parts if p)}; name the class folders (or labels) as the competition "
            "names its columns"
        )
    return SubmissionLayout(header, columns, source)


def check_probabilities(header: list[str], row: list[str] | None, source: str, class_count: int) -> None:
    """Refuse a sample submission whose first row holds class names where the pipeline writes probabilities."""
    names = [cell for cell in (row or [])[1:] if not _is_number(cell)]
    if names:
        raise StageError(
            f"{source} has the header {','.join(header)} and its rows hold class names ({names[0]!r}), not "
            f"probabilities; this pipeline writes a probability for each of the {class_count} classes, so it can't "
            "write this submission"
        )


def _is_number(cell: str) -> bool:
    """Whether a CSV cell reads as a number."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def write_class_list(target: Path, class_list: ClassList) -> None:
    """Write the class list as JSON, atomically."""
    layout = class_list.submission
    write_json(
        target,
        {
            "classes": list(class_list.classes),
            "submission": {"header": list(layout.header), "columns": list(layout.columns), "source": layout.source},
        },
    )


def read_class_list(source: Path) -> ClassList:
    """The class list reorganize wrote; a missing or malformed file is explained."""
    if not source.is_file():
        raise StageError(f"{source} is missing; run `dvc repro` so reorganize, which writes it, runs first")
    try:
        data = json.loads(source.read_text())
        layout = data["submission"]
        return ClassList(
            tuple(data["classes"]),
            SubmissionLayout(tuple(layout["header"]), tuple(layout["columns"]), layout["source"]),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise StageError(f"{source} is not a class list ({err}); run `dvc repro --force reorganize`") from None
