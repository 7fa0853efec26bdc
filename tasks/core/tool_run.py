"""The entry point of the project's command-line tools (grade, lineage, remote check): a stage's, plus quiet pipes."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable
from typing import TextIO

from tasks.core.errors import run_stage

# The exit status when the reader of a tool's output left early (`| head`): 128 + SIGPIPE, what bash reports for
# any tool a closed pipe ended (`cat`, `grep`), so a `set -o pipefail` script treats ours as it treats theirs; and
# distinct from 0 (everything printed), 1 (`lineage verify`: a check failed) and 2 (an error line).
READER_LEFT = 128 + 13


def run_tool(name: str, main: Callable[[], None]) -> None:
    """run_stage(name, main), and a quiet end with READER_LEFT when the reader stops reading (`| head`).

    As Python's docs advise (signal module, "Note on SIGPIPE"): stdout is flushed here, where a closed pipe can be
    caught, then pointed at /dev/null, so the flush at interpreter exit has nothing left to fail on. SIGPIPE stays
    ignored (Python's default) rather than reset: reset, a socket closed under DVC or boto3 would end the process
    without a word. Stages keep run_stage alone: DVC and the flow read all they print, and a change to the module
    every stage imports would make every stage's code dep, and so its result, stale.
    """
    status: int | str | None = None
    try:
        try:
            run_stage(name, main)
        except SystemExit as done:
            status = done.code
        sys.stdout.flush()
    except BrokenPipeError:
        if not (_reader_left(sys.stdout) or _reader_left(sys.stderr)):
            raise  # another pipe broke (a subprocess's, a socket's): a fault that must show
        _drop_closed_output()
        status = status or READER_LEFT  # a verdict already reached (verify's 1) is kept
    if status:
        raise SystemExit(status)


def _reader_left(stream: TextIO) -> bool:
    """Whether stream is a pipe (or socket) whose reader has closed it: poll reports POLLERR on its write end."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness, or closed
        return False
    poll = select.poll()
    poll.register(descriptor, 0)  # no events asked for: POLLERR is reported all the same
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
