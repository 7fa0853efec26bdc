"""The lesson's five views of the validation set: PNG grids of photos, each titled with its true class and P(dog)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

from tasks.core.atomic_output import atomic_file
from tasks.photos.decode import eight_bit

VIEWS = ("random_correct", "random_incorrect", "confident_correct", "confident_incorrect", "uncertain")
TILES = 4  # photos per view, and per class in the two `confident` views: what the lesson shows
COLUMNS = 4
VIEW_SEED = 0  # the random views show the same photos on every run of the same predictions
CELL_PIXELS = 200  # a photo's square cell; the photo keeps its aspect ratio inside it, bars fill the rest
DPI = 80
CELL_INCHES = CELL_PIXELS / DPI
LETTERBOX = (236, 236, 236)  # the bars beside a photo that is not square: light, so the photo stands out
GROUP_FACE = ("#f4f6fa", "#faf6f0")  # alternate panel shades, so where one class ends and the next begins shows
CLASS_WORDS = (("cat", "cats"), ("dog", "dogs"))  # (singular, plural) by target


class Group(NamedTuple):
    """One panel of a view: its heading and the validation rows it shows, in order."""

    heading: str
    rows: list[int]


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


def view_groups(view: str, rows: list[int], target: np.ndarray, p_dog: np.ndarray) -> tuple[str, list[Group]]:
    """A view's title and its panels: one per class for the two `confident` views, else one for the whole view.

    Each heading says how many validation photos qualify, so "4 shown" reads against "of 37".
    """
    dog = np.asarray(target) == 1
    correct = (np.asarray(p_dog, dtype=np.float64) > 0.5) == dog
    if view in ("random_correct", "random_incorrect"):
        word = view.removeprefix("random_")
        qualify = int((correct if word == "correct" else ~correct).sum())
        return f"{word}, at random", [Group(_heading(f"{word} photos", len(rows), qualify, "at random"), rows)]
    if view == "uncertain":
        heading = _heading("all photos", len(rows), len(dog), "nearest a coin toss first")
        return "most uncertain: P(dog) nearest 0.5", [Group(heading, rows)]
    right = view == "confident_correct"
    groups = []
    for cls, (_, many) in enumerate(CLASS_WORDS):
        called = CLASS_WORDS[cls if right else 1 - cls][0]
        qualify = int(((dog == bool(cls)) & (correct if right else ~correct)).sum())
        order = f"surest first (P(dog) nearest {0 if called == 'cat' else 1})"
        shown = [r for r in rows if int(target[r]) == cls]
        groups.append(Group(_heading(f"{many} called {called}", len(shown), qualify, order), shown))
    return f"most confident {'correct' if right else 'incorrect'}, by true class", groups


def _heading(what: str, shown: int, qualify: int, order: str) -> str:
    """A panel heading: what it shows and how many of how many, or that none qualify."""
    return f"{what}: {shown} of {qualify}, {order}" if qualify else f"{what}: none"


def letterboxed(path: str | Path, pixels: int = CELL_PIXELS) -> np.ndarray:
    """The photo scaled to fit a pixels x pixels cell with its aspect ratio kept, centred between bars: RGB uint8."""
    with Image.open(path) as image:
        image.draft("RGB", (pixels, pixels))  # libjpeg decodes a big photo at a reduced scale: much faster
        rgb = eight_bit(image).convert("RGB")
        return np.asarray(ImageOps.pad(rgb, (pixels, pixels), Image.Resampling.LANCZOS, color=LETTERBOX))


def _draw_photo(axes, path: str, p_dog: float, target: int) -> None:
    """One cell: the letterboxed photo, titled with its true class and P(dog), its file name under it."""
    axes.imshow(letterboxed(path), interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    for side in axes.spines.values():
        side.set_color("#b0b0b0")
    called = int(p_dog > 0.5)  # the same rule as the accuracy metric
    colour = "#1b5e20" if called == target else "#b71c1c"  # a cue only: the words say it too
    axes.set_title(
        f"{CLASS_WORDS[target][0]}, P(dog) {p_dog:.3f}\ncalled {CLASS_WORDS[called][0]}", fontsize=10, color=colour
    )
    axes.set_xlabel(Path(path).name, fontsize=8, color="#555555")


def draw_grid(groups: list[Group], title: str, photos: dict[int, tuple[str, float, int]], dest: Path) -> int:
    """Write a PNG of groups (panels of photos: row -> (path, P(dog), target)) to dest; return the photos drawn."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no display, no global backend switch

    # Inches per panel: rows of cells (photo, two-line title, file name) under a heading; an empty panel a note.
    heights = [-(-len(g.rows) // COLUMNS) * (CELL_INCHES + 0.75) + 0.35 if g.rows else 0.9 for g in groups]
    figure = Figure(figsize=(COLUMNS * (CELL_INCHES + 0.15), sum(heights) + 0.45), dpi=DPI, layout="constrained")
    figure.suptitle(title, fontsize=14, fontweight="bold")
    panels = figure.subfigures(len(groups), 1, height_ratios=heights, squeeze=False)[:, 0]
    for i, (panel, group) in enumerate(zip(panels, groups, strict=True)):
        panel.set_facecolor(GROUP_FACE[i % len(GROUP_FACE)])
        panel.set_edgecolor("#c8c8c8")
        panel.set_linewidth(1)
        panel.suptitle(group.heading, x=0.01, ha="left", fontsize=11, fontweight="bold")
        if not group.rows:
            axes = panel.add_subplot()
            axes.axis("off")
            axes.text(0.5, 0.5, "no validation photo falls here", ha="center", va="center", color="#555555")
            continue
        rows = max(1, -(-len(group.rows) // COLUMNS))
        for j, row in enumerate(group.rows):
            _draw_photo(panel.add_subplot(rows, COLUMNS, j + 1), *photos[row])
    with atomic_file(dest) as tmp:
        # No Software/creation metadata: the same photos and predictions give the same bytes on every run.
        figure.savefig(tmp, format="png", metadata={"Software": None})
    return sum(len(g.rows) for g in groups)


def write_views(paths: list[str], target: np.ndarray, p_dog: np.ndarray, folder: Path) -> dict[str, int]:
    """Write folder/<view>.png for the five views; return the photos in each."""
    chosen = choose_views(target, p_dog)
    tiles = {}
    for view, rows in chosen.items():
        title, groups = view_groups(view, rows, target, p_dog)
        photos = {r: (paths[r], float(p_dog[r]), int(target[r])) for r in rows}
        tiles[view] = draw_grid(groups, title, photos, folder / f"{view}.png")
    return tiles
