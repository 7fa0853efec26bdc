"""A page as headless Chromium draws it with no network: its DOM after the scripts ran, and its console messages."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Root has no sandbox; nothing phones home; every host name resolves to nothing, so a page that loads a library from a
# CDN draws as it would offline. The virtual time budget lets the page's scripts and promises run before the DOM dump.
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=10000",
    "--enable-logging=stderr",
    "--v=0",
)
CONSOLE_MARK = ":CONSOLE"  # Chromium's log lines for the page's console messages (errors, warnings, logs)
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def browser() -> str:
    """Chromium's path; the test fails (never skips) without it, so a CI machine lacking it can't pass unseen."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.fail("headless Chromium is needed to check the plot page and none is on PATH: `apt-get install chromium`")


@dataclass
class DrawnPlot:
    """What vega-embed drew in one plot's <div>: SVG items per mark type, and the texts per role."""

    svgs: int = 0  # Vega's drawings (<svg class="marks">)
    items: Counter = field(default_factory=Counter)  # "mark-line" -> lines drawn, "mark-rect" -> cells ...
    texts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # "role-axis-title" -> [...]


@dataclass
class DrawnPage:
    plots: dict[str, DrawnPlot]  # the id of each vega-embed <div> -> what it holds
    images: int
    console: list[str]


class _PlotCollector(HTMLParser):
    """Walks the DOM dump, keeping per vega-embed <div> the SVG items of each mark and the texts of each role."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []  # (tag, class)
        self.plot_stack: list[str | None] = []
        self.plots: dict[str, DrawnPlot] = {}
        self.images = 0

    def _plot(self) -> DrawnPlot | None:
        ids = [i for i in self.plot_stack if i]
        return self.plots[ids[-1]] if ids else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        self.images += tag == "img"
        plot = self._plot()
        if plot is not None:
            plot.svgs += tag == "svg" and "marks" in attr.get("class", "").split()  # not the actions menu's icon
            parent_class = self.stack[-1][1] if self.stack else ""
            if "role-mark" in parent_class.split():
                plot.items[next(c for c in parent_class.split() if c.startswith("mark-"))] += 1
        if tag in VOID_TAGS:
            return
        opens = tag == "div" and "vega-embed" in attr.get("class", "").split() and attr.get("id")
        self.stack.append((tag, attr.get("class", "")))
        self.plot_stack.append(attr["id"] if opens else None)
        if opens:
            self.plots[attr["id"]] = DrawnPlot()

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            open_tag, _ = self.stack.pop()
            self.plot_stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        plot = self._plot()
        if plot is None or not data.strip():
            return
        role = next((c for _, cls in reversed(self.stack) for c in cls.split() if c.startswith("role-")), None)
        if role:
            plot.texts[role].append(data.strip())


def draw(page: Path, scratch: Path) -> DrawnPage:
    """Open page in headless Chromium with no network and read what it drew (scratch: the browser's profile)."""
    run = subprocess.run(
        [browser(), *BROWSER_FLAGS, f"--user-data-dir={scratch}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"chromium failed ({run.returncode}):\n{run.stderr[-3000:]}"
    collector = _PlotCollector()
    collector.feed(run.stdout)
    console = [line for line in run.stderr.splitlines() if CONSOLE_MARK in line]
    return DrawnPage(collector.plots, collector.images, console)
