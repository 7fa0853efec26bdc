"""The lesson's five views of the validation set: PNG grids of photos, each titled with its true class and the call."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageOps

from tasks.competition.log_loss import predicted_classes
from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError
from tasks.photos.decode import eight_bit
from tasks.photos.photo_store import PhotoStore

VIEWS = ("random_correct", "random_incorrect", "confident_correct", "confident_incorrect", "uncertain")
TILES = 4  # photos per view, and per class in the two `confident` views: what the lesson shows
COLUMNS = 4
VIEW_SEED = 0  # the random views show the same photos on every run of the same predictions
CELL_PIXELS = 200  # a photo's square cell; the photo keeps its aspect ratio inside it, bars fill the rest
DPI = 80
CELL_INCHES = CELL_PIXELS / DPI
LETTERBOX = (236, 236, 236)  # the bars beside a photo that is not square: light, so the photo stands out
GROUP_FACE = ("#f4f6fa", "#faf6f0")  # alternate panel shades, so where one class ends and the next begins shows
NAME_CHARS = 22  # a class name in a cell title is cut to this, so a breed name stays inside its 200-pixel cell


class Cell(NamedTuple):
    """One photo of a view: its bytes, file name, title (true class, call, probability), whether called right."""

    photo: bytes
    name: str
    title: str
    correct: bool


class Group(NamedTuple):
    """One panel of a view: its heading and the validation rows it shows, in order."""

    heading: str
    rows: list[int]


def confidence(probabilities: np.ndarray) -> np.ndarray:
    """How sure each call is: the called class's probability, for two classes P(class 1)'s distance from 0.5.

    Two classes are called on column 1 alone (log_loss.predicted_classes), so that column ranks them too.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[1] == 2:
        return np.abs(p[:, 1] - 0.5)
    return p[np.arange(len(p)), predicted_classes(p)]


def choose_views(
    target: np.ndarray, probabilities: np.ndarray, tiles: int = TILES, seed: int = VIEW_SEED
) -> dict[str, list[int]]:
    """Row numbers for each view; a view shows fewer (even none) when fewer photos qualify.

    probabilities holds a row per photo and a column per class; the two `confident` views take up to tiles
    photos of each class, in class order.
    """
    target = np.asarray(target)
    correct = predicted_classes(probabilities) == target  # the same rule as the accuracy metric
    sure = confidence(probabilities)
    rng = np.random.default_rng(seed)

    def at_random(mask: np.ndarray) -> list[int]:
        rows = np.flatnonzero(mask)
        return sorted(rng.choice(rows, size=min(tiles, len(rows)), replace=False).tolist())

    def ranked(mask: np.ndarray, key: np.ndarray) -> list[int]:
        rows = np.flatnonzero(mask)
        return rows[np.argsort(key[rows], kind="stable")][:tiles].tolist()

    classes = range(np.shape(probabilities)[1])
    return {
        "random_correct": at_random(correct),
        "random_incorrect": at_random(~correct),
        "confident_correct": [r for c in classes for r in ranked(correct & (target == c), -sure)],
        "confident_incorrect": [r for c in classes for r in ranked(~correct & (target == c), -sure)],
        "uncertain": ranked(np.ones_like(correct), sure),
    }


def view_groups(
    view: str, rows: list[int], target: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]
) -> tuple[str, list[Group]]:
    """A view's title and its panels: one per class for the two `confident` views, else one for the whole view.

    Each heading says how many validation photos qualify, so "4 shown" reads against "of 37".
    """
    target = np.asarray(target)
    called = predicted_classes(probabilities)
    correct = called == target
    two = len(classes) == 2
    if view in ("random_correct", "random_incorrect"):
        word = view.removeprefix("random_")
        qualify = int((correct if word == "correct" else ~correct).sum())
        return f"{word}, at random", [Group(_heading(f"{word} photos", len(rows), qualify, "at random"), rows)]
    if view == "uncertain":
        if two:
            heading = _heading("all photos", len(rows), len(target), "nearest a coin toss first")
            return f"most uncertain: P({classes[1]}) nearest 0.5", [Group(heading, rows)]
        heading = _heading("all photos", len(rows), len(target), "least sure first")
        return "most uncertain: the called class's probability lowest", [Group(heading, rows)]
    right = view == "confident_correct"
    groups = []
    for cls, name in enumerate(classes):
        called = cls if right else 1 - cls  # the class these photos were called, when two classes tell it
        other = name if right else classes[called] if two else "another class"
        if two:
            order = f"surest first (P({classes[1]}) nearest {called})"
        else:
            order = "surest first (the called class's probability highest)"
        qualify = int(((target == cls) & (correct if right else ~correct)).sum())
        shown = [r for r in rows if int(target[r]) == cls]
        groups.append(Group(_heading(f"{name} called {other}", len(shown), qualify, order), shown))
    return f"most confident {'correct' if right else 'incorrect'}, by true class", groups


def cell_title(probabilities: np.ndarray, target: int, classes: tuple[str, ...]) -> str:
    """A photo's title from its row of probabilities: its true class, the class called and how sure.

    Two classes show P(class 1), the figure the submission holds; more show the called class's probability.
    """
    called = int(predicted_classes(np.asarray(probabilities)[None])[0])
    true, call = _short(classes[target]), _short(classes[called])
    if len(classes) == 2:
        return f"{true}, P({_short(classes[1])}) {probabilities[1]:.3f}\ncalled {call}"
    return f"{true}\ncalled {call}, P {probabilities[called]:.3f}"


def _short(name: str) -> str:
    """name, cut to NAME_CHARS characters with an ellipsis when longer."""
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "\u2026"


def _heading(what: str, shown: int, qualify: int, order: str) -> str:
    """A panel heading: what it shows and how many of how many, or that none qualify."""
    return f"{what}: {shown} of {qualify}, {order}" if qualify else f"{what}: none"


def letterboxed(photo: str | Path | BinaryIO, pixels: int = CELL_PIXELS) -> np.ndarray:
    """The photo (a file, or its bytes as a stream) scaled to fit a pixels x pixels cell with its aspect ratio kept,
    centred between bars: RGB uint8."""
    with Image.open(photo) as image:
        image.draft("RGB", (pixels, pixels))  # libjpeg decodes a big photo at a reduced scale: much faster
        rgb = eight_bit(image).convert("RGB")
        return np.asarray(ImageOps.pad(rgb, (pixels, pixels), Image.Resampling.LANCZOS, color=LETTERBOX))


def _draw_photo(axes, cell: Cell) -> None:
    """One cell: the letterboxed photo under its title (true class, call, probability), its file name under it."""
    axes.imshow(letterboxed(io.BytesIO(cell.photo)), interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    for side in axes.spines.values():
        side.set_color("#b0b0b0")
    colour = "#1b5e20" if cell.correct else "#b71c1c"  # a cue only: the words say it too
    axes.set_title(cell.title, fontsize=10, color=colour)
    axes.set_xlabel(cell.name, fontsize=8, color="#555555")


def draw_grid(groups: list[Group], title: str, photos: dict[int, Cell], dest: Path) -> int:
    """Write a PNG of groups (panels of photos: row -> its cell) to dest; return the photos drawn."""
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
            _draw_photo(panel.add_subplot(rows, COLUMNS, j + 1), photos[row])
    with atomic_file(dest) as tmp:
        # No Software/creation metadata: the same photos and predictions give the same bytes on every run.
        figure.savefig(tmp, format="png", metadata={"Software": None})
    return sum(len(g.rows) for g in groups)


def store_member(path: str, organized: Path) -> str:
    """The photo store's member for a features index path (paths.organized/<manifest path>): the manifest path."""
    try:
        return PurePosixPath(Path(path).relative_to(organized)).as_posix()
    except ValueError:
        raise StageError(
            f"the features list {path!r}, which is not under {organized}/; run `dvc repro`, which rewrites them"
        ) from None


def write_views(
    paths: list[str],
    target: np.ndarray,
    probabilities: np.ndarray,
    classes: tuple[str, ...],
    folder: Path,
    store: PhotoStore,
    organized: Path,
) -> dict[str, int]:
    """Write folder/<view>.png for the five views (probabilities: a row per photo, a column per class); return the
    photos in each.

    paths are the features index's (organized/<manifest path>); each photo is read from store by its manifest path.
    """
    chosen = choose_views(target, probabilities)
    correct = predicted_classes(probabilities) == np.asarray(target)
    tiles = {}
    for view, rows in chosen.items():
        title, groups = view_groups(view, rows, target, probabilities, classes)
        photos = {}
        for r in rows:
            with store.open(store_member(paths[r], organized)) as source:
                photo = source.read()
            name = PurePosixPath(paths[r]).name
            photos[r] = Cell(photo, name, cell_title(probabilities[r], int(target[r]), classes), bool(correct[r]))
        tiles[view] = draw_grid(groups, title, photos, folder / f"{view}.png")
    return tiles
