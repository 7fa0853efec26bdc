"""The competition's submission format: the class list's header, one row per test id, finite probabilities in [0, 1].

The header comes from the class list (tasks/photos/class_list.py): Dogs vs. Cats' `id,label`, where `label` is the
competition's own name for P(dog), or an id column and one column per class (`img,c0,...,c9`, `id,<breeds>`). Ids are
strings, as the manifest holds them: a submission is read with every cell as text, so `007` stays `007`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import StageError
from tasks.photos.manifest import natural_key


def read_submission(path: Path) -> pd.DataFrame:
    """Read a submission CSV as text, failing with a sentence (not a traceback) when it can't be parsed."""
    try:
        # Every cell as written: ids keep their zeros and suffixes, and a blank is '' rather than NaN.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise StageError(f"submission {path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise StageError(f"submission {path} is not a readable CSV: {err}") from None
    return frame


def id_list(ids: Iterable[str], limit: int = 10) -> str:
    """The first ids as the messages show them: `[1, 2, 3]`, `[img_1.jpg, img_7.jpg]`."""
    return "[" + ", ".join(list(ids)[:limit]) + "]"


def probabilities(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The named columns as numbers, one row per photo; text that is no number becomes NaN."""
    return np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64) for c in columns])


def validate_submission(
    frame: pd.DataFrame, test_ids: set[str], header: Sequence[str], name: str = "submission"
) -> None:
    """Raise StageError naming the first way frame breaks the format: its header, its ids, or its probabilities."""
    header = list(header)
    if list(frame.columns) != header:
        raise StageError(f"{name} has columns {list(frame.columns)}; the header must be exactly {','.join(header)}")
    ids = frame[header[0]].astype(str)
    duplicates = sorted(set(ids[ids.duplicated()]), key=natural_key)
    if duplicates:
        raise StageError(f"{name}: ids appear more than once: {id_list(duplicates)}")
    missing = sorted(test_ids - set(ids), key=natural_key)
    extra = sorted(set(ids) - test_ids, key=natural_key)
    if missing:
        raise StageError(f"{name}: {len(missing)} test ids have no row, e.g. {id_list(missing)}")
    if extra:
        raise StageError(f"{name}: {len(extra)} ids are not test ids, e.g. {id_list(extra)}")
    p = probabilities(frame, header[1:])
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        at = id_list(ids[bad.any(axis=1)])
        # One column (`id,label`) keeps the competition's word for its values; N columns are probabilities.
        if len(header) == 2:
            values = "labels" if header[1] == "label" else f"{header[1]} values"
            raise StageError(f"{name}: {int(bad.sum())} {values} are not numbers in [0, 1], at ids {at}")
        columns = [c for c, column_bad in zip(header[1:], bad.any(axis=0), strict=True) if column_bad]
        raise StageError(
            f"{name}: {int(bad.sum())} probabilities are not numbers in [0, 1], at ids {at} "
            f"(columns {', '.join(columns[:10])})"
        )
