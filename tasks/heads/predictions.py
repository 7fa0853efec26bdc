"""The predict stage's tables under paths.predictions, as clip and submit read them."""

from __future__ import annotations

import pandas as pd

VALID_FILE = "valid.csv"  # one row per validation photo: id, target, p_dog
TEST_FILE = "test.csv"  # one row per test photo, by numeric id: id, p_dog, undecodable


def undecodable_test_ids(test: pd.DataFrame) -> list[int]:
    """Ids in predict's test table whose photo is undecodable: their P(dog) is the fallback, not a prediction."""
    return test.loc[test["undecodable"].astype(bool), "id"].astype(int).tolist()
