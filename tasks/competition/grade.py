"""Score a submission CSV against labelled ids by log loss: `python -m tasks.competition.grade SUBMISSION LABELS`."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competition.log_loss import binary_log_loss, multiclass_log_loss
from tasks.competition.submission_format import id_list, probabilities, read_submission, validate_submission
from tasks.core.errors import StageError
from tasks.core.tool_run import run_tool
from tasks.photos.class_list import ClassList, SubmissionLayout, read_class_list
from tasks.photos.manifest import natural_key

LABEL, CLASS = "label", "class"  # the answer file's second column: a 0/1 class index, or a class name
EPILOG = """\
LABELS: `id,class` (class names) or `id,label` (two classes: 1 for the second, 0 for the first: dog 1, cat 0 in
Dogs vs. Cats); its id column may have any name (`id`, `img`, ...), and its ids must be the submission's.

A submission with one probability column per class (`img,c0,c1,c2`, `id,<breeds>`) is scored by Kaggle's
multi-class log loss (probabilities clipped to [1e-15, 1 - 1e-15], each row rescaled to sum 1, mean -log p of the
true class); accuracy counts its most probable class. A submission of one column (`id,label`) holds P of the second
of two classes: binary log loss, accuracy by P > 0.5. Which class is the second: --classes says (the pipeline's
data/classes.json: its classes and the submission's header, which must then match exactly, as submit checks it);
without it, the second in natural order of the class names the answers hold (cats before dogs), or of the
submission's class columns for `id,label` answers.

Chance is ln N, the log loss of answering 1/N for every class of every photo."""


def read_labels(path: Path) -> pd.DataFrame:
    """Read an answer file, `id,label` (0/1) or `id,class` (class names), as text, naming what is wrong with it."""
    if not path.is_file():
        raise StageError(f"labels {path} does not exist")
    frame = read_submission(path)
    if len(frame.columns) != 2 or frame.columns[1] not in (LABEL, CLASS):
        raise StageError(
            f"labels {path} has columns {list(frame.columns)}; it must have the header id,label (1 or 0 for two "
            "classes) or id,class (class names)"
        )
    ids = frame[frame.columns[0]]
    if ids.duplicated().any():
        raise StageError(f"labels {path}: ids appear more than once: {id_list(sorted(set(ids[ids.duplicated()])))}")
    if frame.columns[1] == LABEL:
        label = pd.to_numeric(frame[LABEL], errors="coerce")
        if not label.isin([0, 1]).all():
            raise StageError(
                f"labels {path}: every label must be 1 or 0 (1 for the class the submission's label is P of, "
                "dog in Dogs vs. Cats; 0 for cat)"
            )
        return frame.assign(label=label.astype(int))
    blank = frame[CLASS].str.strip() == ""
    if blank.any():
        raise StageError(f"labels {path}: {int(blank.sum())} rows have no class, at ids {id_list(ids[blank])}")
    return frame


def scoring_classes(header: tuple[str, ...], labels: pd.DataFrame, class_list: ClassList | None) -> ClassList:
    """The classes a submission is scored on, in target order, and what its columns hold.

    From the class list when given; else one probability column holds P of the second of two classes (named by the
    answers' class names in natural order), and N columns hold the classes they name.
    """
    if class_list is not None:
        return class_list
    if len(header) > 2:
        columns = header[1:]
        return ClassList(tuple(sorted(columns, key=natural_key)), SubmissionLayout(header, columns, None))
    if labels.columns[1] == LABEL:
        return ClassList(("class 0", "class 1"), SubmissionLayout(header, ("class 1",), None))
    names = tuple(sorted(set(labels[CLASS]), key=natural_key))
    if len(names) != 2:
        raise StageError(
            f"the answers name {len(names)} classes ({', '.join(names[:5])}) but the submission has one probability "
            f"column ({header[1]}), which scores two: give --classes data/classes.json to say which class it holds"
        )
    return ClassList(names, SubmissionLayout(header, (names[1],), None))


def targets(labels: pd.DataFrame, classes: ClassList, where: str) -> np.ndarray:
    """Each answer's class index in classes; answers naming a class the submission doesn't score are refused."""
    if labels.columns[1] == LABEL:
        if len(classes.classes) != 2:
            raise StageError(
                f"{where} holds 0/1 labels, which score two classes; the submission scores {len(classes.classes)}: "
                "give an id,class file of class names"
            )
        return labels[LABEL].to_numpy(dtype=np.int64)
    unknown = sorted(set(labels[CLASS]) - set(classes.classes), key=natural_key)
    if unknown:
        raise StageError(
            f"{where} names {len(unknown)} classes the submission has no column for: {', '.join(unknown[:5])}; "
            f"it scores {', '.join(classes.classes[:10])}"
        )
    return np.array([classes.index(name) for name in labels[CLASS]], dtype=np.int64)


@dataclass(frozen=True)
class Grade:
    """A submission's score: log loss, the photos scored, accuracy, the log loss of 1/N for all, and its classes."""

    log_loss: float
    photos: int
    accuracy: float
    chance_log_loss: float
    classes: tuple[str, ...]
    positive: str | None  # a one-column submission: the class whose probability it holds; None: one column per class

    def figures(self) -> dict[str, float | int]:
        """The four figures `--json` prints."""
        return {
            "log_loss": self.log_loss,
            "photos": self.photos,
            "accuracy": self.accuracy,
            "chance_log_loss": self.chance_log_loss,
        }

    def lines(self) -> str:
        """The score as a person reads it: the log loss next to its chance baseline, then accuracy."""
        right = round(self.accuracy * self.photos)
        n = len(self.classes)
        if self.positive is not None:
            chance = f"P({self.positive}) = 0.5 for every photo"
            rule = f"P({self.positive}) > 0.5 counts as {self.positive}"
        else:
            chance = f"1/{n} for each class of every photo"
            rule = "the most probable class counts as called"
        return (
            f"log loss  {self.log_loss:.6f}  on {self.photos:,} photos (lower is better)\n"
            f"chance    {self.chance_log_loss:.6f}  (ln {n}: {chance})\n"
            f"accuracy  {self.accuracy:.6f}  ({right:,} of {self.photos:,}; {rule})"
        )


def grade(
    submission: pd.DataFrame,
    labels: pd.DataFrame,
    class_list: ClassList | None = None,
    name: str = "submission",
    where: str = "the answers",
) -> Grade:
    """Score submission against labels, after submit's format checks against the labelled ids."""
    header = tuple(str(c) for c in submission.columns)
    if len(header) < 2:
        raise StageError(f"{name} has columns {list(header)}; a submission needs an id column and probabilities")
    classes = scoring_classes(header, labels, class_list)
    layout = classes.submission
    answer_ids = labels[labels.columns[0]].astype(str)
    validate_submission(submission, set(answer_ids), layout.header, name=name)
    target = targets(labels, classes, where)
    # The submission's rows in the answers' order.
    rows = pd.Index(submission[layout.id_column].astype(str)).get_indexer(answer_ids)
    p = probabilities(submission, layout.header[1:])[rows]
    n = len(classes.classes)
    if len(layout.columns) == 1:
        positive: str | None = layout.columns[0]
        target = (target == classes.index(layout.columns[0])).astype(np.int64)  # 1: the class the column holds
        score = binary_log_loss(target, p[:, 0])
        called = (p[:, 0] > 0.5).astype(np.int64)  # ties go to the other class, as the pipeline's accuracy counts
    else:
        by_class = np.zeros((len(p), n))
        by_class[:, [classes.index(c) for c in layout.columns]] = p
        score = multiclass_log_loss(target, by_class)
        called = np.argmax(by_class, axis=1)
        positive = None
    # Answering 1/N for every class of every photo scores ln N whatever the answers: the line a model must beat.
    accuracy = float(np.mean(called == target))
    return Grade(score, len(target), accuracy, math.log(n), classes.classes, positive)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.competition.grade",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("submission", type=Path, help="the submission CSV: id,label (P of one class) or id,<classes>")
    parser.add_argument("labels", type=Path, help="the answers: id,label (1 or 0) or id,class (class names)")
    parser.add_argument(
        "--classes", type=Path, help="a class list (data/classes.json): the classes and the submission's header"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object: log_loss, photos, accuracy, chance_log_loss"
    )
    args = parser.parse_args()
    class_list = read_class_list(args.classes) if args.classes is not None else None
    labels = read_labels(args.labels)
    score = grade(read_submission(args.submission), labels, class_list, str(args.submission), f"labels {args.labels}")
    print(json.dumps(score.figures()) if args.json else score.lines())


def cli() -> None:
    """The console script `lesson2-grade`: it reads only the files it is given, named from the folder it runs in."""
    run_tool("grade", main)


if __name__ == "__main__":
    cli()
