"""The lesson's five views of the validation set: PNG grids of photos with P(dog) and the true class under each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tasks.core.atomic_output import atomic_file

VIEWS = ("random_correct", "random_incorrect", "confident_correct", "confident_incorrect", "uncertain")
TILES = 4  # photos per view, and per class in the two `confident` views: what the lesson shows
COLUMNS = 4
VIEW_SEED = 0  # the random views show the same photos on every run of the same predictions
THUMBNAIL = 160


def choose_views(
    target: np.ndarray, p_dog: np.ndarray, tiles: int = TILES, seed: int = VIEW_SEED
) -> dict[str, list[int]]:
    """Row numbers for each view; a view shows fewer (even none) when fewer photos qualify."""
    dog = np.asarray(target) == 1
    p = np.asarray(p_dog, dtype=np.float64)
    correct = (p > 0.5) == dog  # the same rule as the accuracy metric
    confidence = np.abs(p - 0.5)  # how far from a coin toss the predicted class is
    rng = np.random.default_rng(seed)

    def at_random(mask: np.ndarray) -> list[int]:
        rows = np.flatnonzero(mask)
        return sorted(rng.choice(rows, size=min(tiles, len(rows)), replace=False).tolist())

    def ranked(mask: np.ndarray, key: np.ndarray) -> list[int]:
        rows = np.flatnonzero(mask)
        return rows[np.argsort(key[rows], kind="stable")][:tiles].tolist()

    return {
        "random_correct": at_random(correct),
        "random_incorrect": at_random(~correct),
        "confident_correct": ranked(correct & ~dog, -confidence) + ranked(correct & dog, -confidence),
        "confident_incorrect": ranked(~correct & ~dog, -confidence) + ranked(~correct & dog, -confidence),
        "uncertain": ranked(np.ones_like(dog), confidence),
    }


def draw_grid(photos: list[tuple[str, float, int]], title: str, dest: Path) -> int:
    """Write a PNG grid of (photo path, P(dog), target) tiles to dest; return the number of photo tiles."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no display, no global backend switch

    rows = max(1, -(-len(photos) // COLUMNS))
    columns = max(1, min(COLUMNS, len(photos)))
    figure = Figure(figsize=(2.2 * columns, 2.6 * rows + 0.4), dpi=72, layout="constrained")
    figure.suptitle(title)
    if not photos:
        axes = figure.add_subplot()
        axes.axis("off")
        axes.text(0.5, 0.5, "no validation photos\nfall in this view", ha="center", va="center")
    for i, (path, p, target) in enumerate(photos):
        axes = figure.add_subplot(rows, columns, i + 1)
        with Image.open(path) as image:
            axes.imshow(np.asarray(image.convert("RGB").resize((THUMBNAIL, THUMBNAIL))))
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_xlabel(f"P(dog) {p:.3f}\ntrue: {'dog' if target else 'cat'}")
    with atomic_file(dest) as tmp:
        figure.savefig(tmp, format="png")
    return len(photos)


def write_views(paths: list[str], target: np.ndarray, p_dog: np.ndarray, folder: Path) -> dict[str, int]:
    """Write folder/<view>.png for the five views; return the tiles in each."""
    titles = {
        "random_correct": "correct, at random",
        "random_incorrect": "incorrect, at random",
        "confident_correct": "most confident correct: cats, then dogs",
        "confident_incorrect": "most confident incorrect: cats, then dogs",
        "uncertain": "most uncertain (P(dog) nearest 0.5)",
    }
    chosen = choose_views(target, p_dog)
    return {
        view: draw_grid(
            [(paths[r], float(p_dog[r]), int(target[r])) for r in rows], titles[view], folder / f"{view}.png"
        )
        for view, rows in chosen.items()
    }
