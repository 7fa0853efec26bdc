"""The competition's submission format: `id,label` with one finite P(dog) in [0, 1] per test id.

`label` is the competition's own name for that column (its sample_submission.csv); elsewhere the pipeline calls the
value p_dog, and a photo's 0/1 class index its target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import StageError


def read_submission(path: Path) -> pd.DataFrame:
    """Read a submission CSV, failing with a sentence (not a traceback) when it can't be parsed."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise StageError(f"submission {path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise StageError(f"submission {path} is not a readable CSV: {err}") from None
    return frame


def validate_submission(frame: pd.DataFrame, test_ids: set[int], name: str = "submission") -> None:
    """Raise StageError naming the first way frame breaks the format: columns, ids, or labels."""
    if list(frame.columns) != ["id", "label"]:
        raise StageError(f"{name} has columns {list(frame.columns)}; the header must be exactly id,label")
    if not pd.api.types.is_integer_dtype(frame["id"]):
        raise StageError(f"{name}: every id must be a whole number")
    ids = frame["id"].tolist()
    duplicates = sorted(set(frame["id"][frame["id"].duplicated()].tolist()))
    if duplicates:
        raise StageError(f"{name}: ids appear more than once: {duplicates[:10]}")
    missing, extra = sorted(test_ids - set(ids)), sorted(set(ids) - test_ids)
    if missing:
        raise StageError(f"{name}: {len(missing)} test ids have no row, e.g. {missing[:10]}")
    if extra:
        raise StageError(f"{name}: {len(extra)} ids are not test ids, e.g. {extra[:10]}")
    p_dog = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(p_dog) | (p_dog < 0) | (p_dog > 1)
    if bad.any():
        first = frame["id"][bad].tolist()[:10]
        raise StageError(f"{name}: {int(bad.sum())} labels are not numbers in [0, 1], at ids {first}")
