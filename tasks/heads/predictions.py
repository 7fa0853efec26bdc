"""The predict stage's tables under paths.predictions, as clip and submit read them.

One probability column per class, `p_<class>`, in the class list's order (tasks/photos/class_list.py):
valid.csv holds id, target (the class index), then the probabilities; test.csv holds id, the probabilities,
then undecodable, its rows in natural id order.
"""

from __future__ import annotations

import pandas as pd

VALID_FILE = "valid.csv"
TEST_FILE = "test.csv"
PROBABILITY_PREFIX = "p_"


def probability_columns(classes: tuple[str, ...]) -> list[str]:
    """The columns that hold each class's probability, in class order."""
    return [f"{PROBABILITY_PREFIX}{name}" for name in classes]


def undecodable_test_ids(test: pd.DataFrame) -> list[str]:
    """Ids in predict's test table whose photo is undecodable: their probabilities are a fallback, not a prediction."""
    return test.loc[test["undecodable"].astype(bool), "id"].astype(str).tolist()
