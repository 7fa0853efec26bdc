"""`make plots`' page in a real headless browser with no network: each plot drawn once, the way a report shows it."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from PIL import Image

from tasks.lineage.dvc_project import read_project
from tests.support.browser import draw
from tests.support.workspace import dvc, make_workspace, run_tool

# Three epochs in two phases, as train writes them; the validation photos' (actual, predicted) counts, one pair none.
HISTORY = pd.DataFrame(
    {
        "epoch": [1, 2, 3],
        "accuracy": [0.62, 0.81, 0.9],
        "loss": [0.66, 0.45, 0.31],
        "val_accuracy": [0.7, 0.8, 0.85],
        "val_loss": [0.58, 0.44, 0.38],
        "learning_rate": [0.1, 0.1, 0.01],
    }
)
COUNTS = {("cat", "cat"): 7, ("cat", "dog"): 2, ("dog", "cat"): 0, ("dog", "dog"): 6}
# Three classes, as predict writes them (class names); no photo is called birds, so that column is all imputed zeros.
COUNTS_3 = {("birds", "cats"): 2, ("cats", "cats"): 5, ("cats", "dogs"): 1, ("dogs", "dogs"): 4}
VEGA_PLOTS = {"loss", "accuracy", "learning_rate", "confusion_matrix"}


def plot_workspace(root: Path, counts: dict[tuple[str, str], int] = COUNTS) -> Path:
    """A copy of the project with the two CSVs the Vega plots read and a small picture for each image plot."""
    workspace = make_workspace(root)
    metrics = workspace / "metrics"
    metrics.mkdir()
    HISTORY.to_csv(metrics / "train_history.csv", index=False)
    rows = [pair for pair, n in counts.items() for _ in range(n)]
    pd.DataFrame(rows, columns=["actual", "predicted"]).to_csv(metrics / "confusion.csv", index=False)
    for spec in read_project(workspace).stages.values():
        for picture in (p for p in spec.plots if p.endswith(".png")):
            (workspace / picture).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), "gray").save(workspace / picture)
    return workspace


def test_the_plot_page_draws_every_plot_once_with_no_network(tmp_path: Path):
    workspace = plot_workspace(tmp_path / "ws")
    run_tool([sys.executable, "-m", "tasks.plots.offline_page"], workspace)
    page = workspace / "dvc_plots" / "index.html"
    assert "<script src=" not in page.read_text()  # nothing to fetch: the libraries are in the page

    drawn = draw(page, tmp_path / "browser")
    assert drawn.console == []  # no error or warning from Vega, vega-embed or the browser
    assert set(drawn.plots) == VEGA_PLOTS  # each figure once: no stage-level duplicate of a CSV
    assert drawn.images == sum(p.endswith(".png") for s in read_project(workspace).stages.values() for p in s.plots)

    for name, y_title in (("loss", "log loss"), ("accuracy", "accuracy")):
        plot = drawn.plots[name]
        assert plot.svgs == 1
        assert plot.items["mark-line"] == 2 and plot.items["mark-symbol"] == 6  # two series, a point per epoch each
        assert plot.texts["role-legend-label"] == ["training", "validation"]
        assert plot.texts["role-axis-title"] == ["epoch", y_title]
        assert plot.texts["role-axis-label"][:3] == ["1", "2", "3"]  # whole epochs only

    rate = drawn.plots["learning_rate"]
    assert rate.texts["role-mark"] == ["0.1", "0.01"]  # each phase's rate where it starts, as params.yaml has it
    assert rate.texts["role-axis-title"] == ["epoch", "learning rate"]
    assert rate.texts["role-axis-label"][-1] == "0.1"  # the axis reaches the rate, from 0

    confusion = drawn.plots["confusion_matrix"]
    assert confusion.items["mark-rect"] == 4
    assert sorted(confusion.texts["role-mark"], key=int) == sorted(str(n) for n in COUNTS.values())
    assert sorted(confusion.texts["role-axis-title"]) == ["actual class", "predicted class"]
    assert set(confusion.texts["role-axis-label"]) >= {"cat", "dog"}

    # DVC's own page, which loads the libraries from a CDN, draws nothing here: the browser really had no network.
    dvc(workspace, "plots", "show", "-o", "cdn_page")
    assert all(plot.svgs == 0 for plot in draw(workspace / "cdn_page" / "index.html", tmp_path / "cdn").plots.values())


def test_the_confusion_matrix_of_three_classes_is_three_by_three_with_their_names(tmp_path: Path):
    workspace = plot_workspace(tmp_path / "ws", COUNTS_3)
    run_tool([sys.executable, "-m", "tasks.plots.offline_page"], workspace)
    drawn = draw(workspace / "dvc_plots" / "index.html", tmp_path / "browser")
    assert drawn.console == []
    confusion = drawn.plots["confusion_matrix"]
    assert confusion.items["mark-rect"] == 9  # every (actual, predicted) pair, those with no photo too
    assert sorted(confusion.texts["role-mark"], key=int) == ["0"] * 5 + ["1", "2", "4", "5"]
    assert set(confusion.texts["role-axis-label"]) >= {"birds", "cats", "dogs"}
