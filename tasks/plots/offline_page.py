"""DVC's plots as a page that draws with no network: Vega, Vega-Lite and vega-embed inlined from an installed package.

  python -m tasks.plots.offline_page [show] [dvc plots show options] | diff [revisions] [options]    (`make plots`)

`dvc plots show` alone writes a page that loads the three libraries from a CDN: offline (an air-gapped GPU host, a
train) its charts are silently missing and only the pictures show. This runs the same command through an HTML
template that holds the libraries themselves, read from the PyPI package django-js-lib-vega-embed (their release
builds, MIT, nothing else in it; Vega 5, Vega-Lite 5 and vega-embed 6, the majors DVC's own page loads), so the page
in dvc_plots/ (DVC's default; `-o DIR` for another) draws wherever it is opened.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path

from tasks.core.errors import StageError, run_stage

VEGA_PACKAGE = "js_lib_vega_embed"  # the import name of django-js-lib-vega-embed; importing it needs no Django
# In load order: Vega-Lite compiles to Vega, and vega-embed needs both.
VEGA_SCRIPTS = ("vega5.js", "vega-lite5.js", "vega-embed6.js")
SUBCOMMANDS = ("show", "diff")

# DVC fills {plot_divs} with one <div> per plot. Its {scripts} placeholder (the CDN tags) is left out on purpose.
PAGE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Dogs vs. Cats: plots</title>
<style>
  body { font-family: sans-serif; margin: 16px; }
  .vega-embed { margin: 8px 24px 24px 0; vertical-align: top; }
</style>
"""
PAGE_BODY = """</head>
<body>
{plot_divs}
</body>
</html>
"""


def vega_scripts() -> list[str]:
    """The three libraries' code, in load order, from the installed package."""
    try:
        folder = resources.files(VEGA_PACKAGE) / "static" / VEGA_PACKAGE
    except ModuleNotFoundError:
        raise StageError(
            "the Vega libraries are not installed (PyPI package django-js-lib-vega-embed, in uv.lock): "
            "run `make plots`, which rebuilds the environment from uv.lock first"
        ) from None
    return [(folder / name).read_text(encoding="utf-8") for name in VEGA_SCRIPTS]


def page_template(scripts: list[str]) -> str:
    """DVC's HTML template with each script inlined (no library code contains `</script`, which would end the tag)."""
    tags = "".join(f"<script>\n{code}\n</script>\n" for code in scripts)
    return PAGE_HEAD + tags + PAGE_BODY


def write_page(dvc_args: list[str]) -> int:
    """`dvc plots <dvc_args>` through the offline template; DVC's exit status."""
    from dvc.cli import main as dvc_main

    with tempfile.TemporaryDirectory(prefix="plots-page-") as tmp:
        template = Path(tmp) / "page.html"
        template.write_text(page_template(vega_scripts()), encoding="utf-8")
        return dvc_main(["plots", *dvc_args, "--html-template", str(template)])


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] not in SUBCOMMANDS:  # options alone (`-o DIR`, targets) are `show`'s
        args = ["show", *args]
    status = write_page(args)
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    run_stage("plots", main)
