"""Ctrl-C under the flow: one orderly stop that DVC carries out, with Prefect's server alive to record it.

A terminal's Ctrl-C sends SIGINT to its whole foreground process group. Left alone, that kills Prefect's temporary
server along with the flow, and the flow then spends minutes retrying to report its state to a server that is gone.
So `python -m flows.lesson2` runs the flow in its own session (run_in_own_session) and passes each Ctrl-C to the flow
process alone; the flow passes it on to the running `dvc repro` and the stage's command under it
(interrupt_passes_to), which is what a Ctrl-C on `dvc repro` in a terminal does: DVC lets the stage's command take
the SIGINT, the command stops (its outputs are written under temporary names, removed on the way out), DVC reports
the stage failed and releases its lock. The flow then ends before its next stage (stop_requests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from types import FrameType

# Exit status of a run stopped by Ctrl-C, as shells report a process ended by SIGINT.
INTERRUPTED_STATUS = 128 + signal.SIGINT

Handler = Callable[[int, FrameType | None], None]


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # Python runs signal handlers there only


@contextlib.contextmanager
def _on_sigint(handler: Handler) -> Iterator[None]:
    """handler for SIGINT during the block (then whatever was there before); a no-op outside the main thread."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _chained(previous: object) -> Callable[[int, FrameType | None], None] | None:
    """The handler in place before ours, if it is a handler of this program's (not Python's KeyboardInterrupt)."""
    if callable(previous) and previous is not signal.default_int_handler:
        return previous  # type: ignore[return-value]
    return None


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """An event set by Ctrl-C during the block, instead of a KeyboardInterrupt wherever the flow happens to be."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT) if _in_main_thread() else None
    outer = _chained(previous)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if outer:
            outer(signum, frame)

    with _on_sigint(request_stop):
        yield stop


def interrupt_tree(pid: int) -> None:
    """SIGINT to pid and every process under it, as a terminal's Ctrl-C reaches a command and what it started."""
    import psutil  # DVC's own dependency

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:  # it has just ended
        return
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGINT)


@contextlib.contextmanager
def interrupt_passes_to(process: subprocess.Popen) -> Iterator[threading.Event]:
    """While the block runs, Ctrl-C goes to process and everything under it (interrupt_tree).

    The returned event says whether one came. A handler already in place (the flow's stop_requests) is told too.
    """
    interrupted = threading.Event()
    previous = signal.getsignal(signal.SIGINT) if _in_main_thread() else None
    outer = _chained(previous)

    def pass_on(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        interrupt_tree(process.pid)
        if outer:
            outer(signum, frame)

    with _on_sigint(pass_on):
        yield interrupted


def run_in_own_session(command: list[str], verdict_variable: str) -> tuple[int, str]:
    """Run command in a new session; each SIGINT or SIGTERM this process gets reaches it as one SIGINT.

    The command writes its verdict (its last words) to the pipe whose descriptor is in verdict_variable; returns its
    exit status and that verdict, read once it has exited, so that nothing it prints at exit comes after it.
    """
    read_end, write_end = os.pipe()
    env = {**os.environ, verdict_variable: str(write_end)}
    child = subprocess.Popen(command, start_new_session=True, env=env, pass_fds=(write_end,))
    os.close(write_end)

    def pass_on(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with os.fdopen(read_end) as verdict:
            said = verdict.read()  # until the child and everything it passed the pipe to are gone (retried: PEP 475)
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return (128 - status if status < 0 else status), said  # killed by signal N: the shell's 128 + N
