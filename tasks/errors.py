"""The one exception a stage raises for a problem the user can fix, and the entry point that reports it."""
from __future__ import annotations

import sys
from collections.abc import Callable


class StageError(Exception):
    """A problem with the input or the setup, explained in a sentence that says what to do."""


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(); a StageError becomes one line on stderr and exit status 2, not a traceback."""
    try:
        main()
    except StageError as err:
        print(f"error: {name}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
