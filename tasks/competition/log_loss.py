"""The competition's metric: binary log loss of P(dog) against the target (1 dog, 0 cat)."""

from __future__ import annotations

import numpy as np

# Kaggle bounds predictions away from 0 and 1 before taking logs, so one wrong certainty costs ~34.5, not infinity.
KAGGLE_EPS = 1e-15


def log_loss(target: np.ndarray, p_dog: np.ndarray) -> float:
    """Mean of -[y log p + (1 - y) log(1 - p)] over photos, p clipped to [eps, 1 - eps]."""
    y = np.asarray(target, dtype=np.float64)
    p = np.clip(np.asarray(p_dog, dtype=np.float64), KAGGLE_EPS, 1 - KAGGLE_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(target: np.ndarray, p_dog: np.ndarray) -> float:
    """Share of photos on the right side of 0.5."""
    return float(np.mean((np.asarray(p_dog) > 0.5) == (np.asarray(target) == 1)))
