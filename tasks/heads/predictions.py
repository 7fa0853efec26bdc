"""The predict stage's tables under paths.predictions, as clip and submit read them."""
from __future__ import annotations

VALID_FILE = "valid.csv"  # one row per validation photo: id, is_dog, p_dog
TEST_FILE = "test.csv"  # one row per test photo, by numeric id: id, p_dog, decoded
