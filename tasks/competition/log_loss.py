"""The competition's metric, Kaggle's log loss, for two classes or N, and accuracy by the same decision rule.

Probabilities come as one row per photo and one column per class (a ClassList's order); targets are class indexes.
Two classes are scored on column 1 alone, as Dogs vs. Cats scores P(dog): the binary formula gives the figures it
always gave, to the last bit, where rescaling rows that sum to 1 only in float32 would not.
"""

from __future__ import annotations

import numpy as np

# Kaggle bounds predictions away from 0 and 1 before taking logs, so one wrong certainty costs ~34.5, not infinity.
KAGGLE_EPS = 1e-15


def binary_log_loss(target: np.ndarray, p_positive: np.ndarray) -> float:
    """Mean of -[y log p + (1 - y) log(1 - p)] over photos, p (P of class 1) clipped to [eps, 1 - eps]."""
    y = np.asarray(target, dtype=np.float64)
    p = np.clip(np.asarray(p_positive, dtype=np.float64), KAGGLE_EPS, 1 - KAGGLE_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def multiclass_log_loss(target: np.ndarray, probabilities: np.ndarray) -> float:
    """Kaggle's multi-class log loss: clip to [eps, 1 - eps], rescale rows to sum 1, mean -log p of the true class."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), KAGGLE_EPS, 1 - KAGGLE_EPS)
    p = p / p.sum(axis=1, keepdims=True)
    rows = np.arange(len(p))
    return float(-np.mean(np.log(p[rows, np.asarray(target, dtype=np.int64)])))


def log_loss(target: np.ndarray, probabilities: np.ndarray) -> float:
    """The competition's log loss of probabilities (photos x classes): binary on column 1 for two classes."""
    p = np.asarray(probabilities)
    return binary_log_loss(target, p[:, 1]) if p.shape[1] == 2 else multiclass_log_loss(target, p)


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """Each photo's called class: P(class 1) > 0.5 for two classes (ties go to class 0), else the most probable."""
    p = np.asarray(probabilities)
    return (p[:, 1] > 0.5).astype(np.int64) if p.shape[1] == 2 else np.argmax(p, axis=1)


def accuracy(target: np.ndarray, probabilities: np.ndarray) -> float:
    """Share of photos whose called class is their true class."""
    return float(np.mean(predicted_classes(probabilities) == np.asarray(target)))
