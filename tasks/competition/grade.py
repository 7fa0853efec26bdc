"""Score a submission CSV against labelled ids by log loss: `python -m tasks.competition.grade SUBMISSION LABELS`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from tasks.competition.archive import CLASSES
from tasks.competition.log_loss import accuracy, log_loss
from tasks.competition.submission_format import read_submission, validate_submission
from tasks.core.errors import StageError
from tasks.core.tool_run import run_tool


def read_labels(path: Path) -> pd.DataFrame:
    """Read an `id,label` answer file, label 1 for dog and 0 for cat, naming what is wrong with it."""
    if not path.is_file():
        raise StageError(f"labels {path} does not exist")
    frame = read_submission(path)
    if list(frame.columns) != ["id", "label"] or not pd.api.types.is_integer_dtype(frame["id"]):
        raise StageError(f"labels {path} must have the header id,label and whole-number ids")
    if frame["id"].duplicated().any():
        raise StageError(f"labels {path}: ids appear more than once")
    if not frame["label"].isin([0, 1]).all():
        raise StageError(f"labels {path}: every label must be 1 (dog) or 0 (cat)")
    return frame


class Grade(NamedTuple):
    """A submission's score: log loss, the photos scored, accuracy, and the log loss of answering 0.5 for all."""

    log_loss: float
    photos: int
    accuracy: float
    chance_log_loss: float

    def lines(self) -> str:
        """The score as a person reads it: the log loss next to its chance baseline, then accuracy."""
        right = round(self.accuracy * self.photos)
        return (
            f"log loss  {self.log_loss:.6f}  on {self.photos:,} photos (lower is better)\n"
            f"chance    {self.chance_log_loss:.6f}  (ln {len(CLASSES)}: P(dog) = 0.5 for every photo)\n"
            f"accuracy  {self.accuracy:.6f}  ({right:,} of {self.photos:,}; P(dog) > 0.5 counts as dog)"
        )


def grade(submission: pd.DataFrame, labels: pd.DataFrame, name: str = "submission") -> Grade:
    """Score submission's P(dog) against labels, after submit's format checks against the labelled ids."""
    validate_submission(submission, set(labels["id"].tolist()), name=name)
    merged = labels.merge(submission, on="id", suffixes=("_true", "_pred"))
    target, p_dog = merged["label_true"].to_numpy(), merged["label_pred"].to_numpy(dtype=np.float64)
    # Answering 1/k for every photo scores ln k whatever the labels: the line a model must beat.
    return Grade(log_loss(target, p_dog), len(merged), accuracy(target, p_dog), math.log(len(CLASSES)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.competition.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submission", type=Path, help="id,label CSV with label = P(dog)")
    parser.add_argument("labels", type=Path, help="id,label CSV with label = 1 for dog, 0 for cat")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object: log_loss, photos, accuracy, chance_log_loss"
    )
    args = parser.parse_args()
    score = grade(read_submission(args.submission), read_labels(args.labels), name=str(args.submission))
    print(json.dumps(score._asdict()) if args.json else score.lines())


def cli() -> None:
    """The console script `lesson2-grade`: it reads only its two files, named from the folder it runs in."""
    run_tool("grade", main)


if __name__ == "__main__":
    cli()
