"""The flow under a terminal: a failed stage's one line picked out, Ctrl-C passed on as one orderly stop."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

from flows.dvc_stages import diagnosed, error_lines
from flows.interruption import INTERRUPTED_STATUS, run_in_own_session

# A child that reports whether it shares the parent's process group, says it is ready (a file), then waits for
# Ctrl-C and says it got it.
CHILD = """
import os, signal, sys, time
verdict = os.fdopen(int(os.environ.pop("VERDICT")), "w")
print("own group" if os.getpgrp() != int(sys.argv[1]) else "terminal's group", flush=True)
signal.signal(signal.SIGINT, lambda *_: (verdict.write("stopped by SIGINT"), verdict.close(), sys.exit(130)))
open(sys.argv[2], "w").close()
time.sleep(60)
"""


def test_the_stage_s_own_error_lines_else_dvc_s_else_the_last():
    dvc_says = "ERROR: failed to reproduce 'features': failed to run: python -m tasks.features, exited with 2"
    lines = ["Running stage 'features':", "error: features: a", "error: features: b", dvc_says]
    assert error_lines("features", lines) == ["error: features: a", "error: features: b"]
    # A foreach stage's code names its step: features@1's own line starts `error: features:`, a diagnosis.
    assert error_lines("features@1", lines) == ["error: features: a", "error: features: b"]
    assert diagnosed("features@1", ["error: features: a"]) and not diagnosed("features@1", ["Killed"])
    busy = ["ERROR: 'models' is busy, it is being blocked by:", "  (PID 7): dvc repro", "", "If there are no ..."]
    assert error_lines("train", ["Running stage 'train':", *busy]) == busy[:2]
    assert error_lines("clip", ["Traceback ...", "ValueError: x"]) == ["ValueError: x"]


def test_ctrl_c_reaches_the_run_once_in_its_own_session_and_its_verdict_comes_back(tmp_path: Path, capfd):
    script, ready, done = tmp_path / "child.py", tmp_path / "ready", threading.Event()
    script.write_text(CHILD)

    def ctrl_c_once_ready() -> None:
        """SIGINT to this process, as a terminal's Ctrl-C would send, once the child waits for it."""
        while not done.wait(0.05):
            if ready.exists():
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=ctrl_c_once_ready, daemon=True).start()
    started = time.monotonic()
    try:
        status, verdict = run_in_own_session([sys.executable, str(script), str(os.getpgrp()), str(ready)], "VERDICT")
    finally:
        done.set()
    assert (status, verdict) == (INTERRUPTED_STATUS, "stopped by SIGINT")
    assert time.monotonic() - started < 30
    assert "own group" in capfd.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # this process's handler is back


def test_only_a_failure_without_an_error_line_is_retried():
    from prefect.states import Failed

    from flows.lesson2 import UNEXPLAINED, unexplained_failure

    assert diagnosed("download", ["error: download: Kaggle refused the token"])
    assert diagnosed("download", ["ERROR: failed to reproduce 'download': [Errno 2] No such file or directory: 'x'"])
    assert not diagnosed("download", ["Killed"])  # the last line, as error_lines gives it for a killed stage
    assert not unexplained_failure(None, None, Failed(message="stage download failed"))
    assert unexplained_failure(None, None, Failed(message=f"stage download failed {UNEXPLAINED}"))
