"""The one exception a stage raises for a problem the user can fix, and the entry point that reports it."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

from tasks.core.stage_log import configure_stage_logging

# Out of space, over quota, or over a file-size limit: the machine's problem, not the code's, so a sentence.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class StageError(Exception):
    """A problem with the input or the setup, explained in a sentence that says what to do."""


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(); a StageError or a full disk becomes one line on stderr and exit status 2, not a traceback.

    A StageError listing several problems (params.yaml's, one per line) gives one such line per problem.
    """
    configure_stage_logging()
    try:
        main()
    except StageError as err:
        for line in str(err).splitlines():
            print(f"error: {name}: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as err:
        if err.errno not in _NO_SPACE:
            raise
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"error: {name}: the disk is full or a size limit was hit{where} ({err.strerror}); nothing was kept: "
            "free some space and run it again",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
