"""The one exception a stage raises for a problem the user can fix, and the entry point that reports it."""

from __future__ import annotations

import errno
import os
import select
import sys
from collections.abc import Callable
from typing import TextIO

from tasks.core.stage_log import configure_stage_logging

# Out of space, over quota, or over a file-size limit: the machine's problem, not the code's, so a sentence.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# The exit status when the reader of our output left early (`| head`): 128 + SIGPIPE, what bash reports for any
# tool a closed pipe ended (`cat`, `grep`), so a `set -o pipefail` script treats ours as it treats theirs; and
# distinct from 0 (everything printed), 1 (`lineage verify`: a check failed) and 2 (an error line).
READER_LEFT = 128 + 13


class StageError(Exception):
    """A problem with the input or the setup, explained in a sentence that says what to do."""


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's or tool's main(); errors a user can fix become lines on stderr and exit status 2, not a traceback.

    A StageError listing several problems (params.yaml's, one per line) gives one such line per problem. A reader
    that stops reading (`| head`) ends the process quietly with READER_LEFT, as Python's docs advise (signal module,
    "Note on SIGPIPE"): stdout is flushed here, where a closed pipe can be caught, and then pointed at /dev/null so the
    flush at interpreter exit has nothing left to fail on. SIGPIPE stays ignored (Python's default) rather than
    reset: reset, a socket closed under DVC or boto3 would kill the process without a word.
    """
    configure_stage_logging()
    status: int | str | None = None
    try:
        status = _exit_status(name, main)
        sys.stdout.flush()
    except BrokenPipeError:
        if not (_reader_left(sys.stdout) or _reader_left(sys.stderr)):
            raise  # another pipe broke (a subprocess's, a socket's): a fault that must show
        _drop_closed_output()
        status = status or READER_LEFT  # a verdict already reached (verify's 1) is kept
    if status:
        raise SystemExit(status)


def _exit_status(name: str, main: Callable[[], None]) -> int | str | None:
    """Run main(); its exit status (None for success), with a StageError or a full disk reported on stderr as 2."""
    try:
        main()
    except SystemExit as done:
        return done.code
    except StageError as err:
        for line in str(err).splitlines():
            print(f"error: {name}: {line}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in _NO_SPACE:
            raise
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"error: {name}: the disk is full or a size limit was hit{where} ({err.strerror}); nothing was kept: "
            "free some space and run it again",
            file=sys.stderr,
        )
        return 2
    return None


def _reader_left(stream: TextIO) -> bool:
    """Whether stream is a pipe (or socket) whose reader has closed it: poll reports POLLERR on its write end."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness, or closed
        return False
    poll = select.poll()
    poll.register(descriptor, 0)  # no events asked for: POLLERR is always reported
    return any(events & select.POLLERR for _, events in poll.poll(0))


def _drop_closed_output() -> None:
    """Point stdout and stderr, where their reader left, at /dev/null: what is still buffered goes nowhere, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            if _reader_left(stream):
                os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)
