"""Score a submission CSV against labelled ids by log loss: `python -m tasks.competition.grade SUBMISSION LABELS`."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competition.log_loss import log_loss
from tasks.competition.submission_format import read_submission, validate_submission
from tasks.core.errors import StageError, run_stage


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


def grade(submission: pd.DataFrame, labels: pd.DataFrame, name: str = "submission") -> float:
    """Log loss of submission's P(dog) against labels, after submit's format checks against the labelled ids."""
    validate_submission(submission, set(labels["id"].tolist()), name=name)
    merged = labels.merge(submission, on="id", suffixes=("_true", "_pred"))
    return log_loss(merged["label_true"].to_numpy(), merged["label_pred"].to_numpy(dtype=np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.competition.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submission", type=Path, help="id,label CSV with label = P(dog)")
    parser.add_argument("labels", type=Path, help="id,label CSV with label = 1 for dog, 0 for cat")
    args = parser.parse_args()
    score = grade(read_submission(args.submission), read_labels(args.labels), name=str(args.submission))
    print(f"{score:.6f}")


def cli() -> None:
    """The console script `lesson2-grade`: it reads only its two files, named from the folder it runs in."""
    run_stage("grade", main)


if __name__ == "__main__":
    cli()
