"""The log level of each line a stage (or DVC) writes to stderr, from what the line says.

stderr is where every tool here writes its diagnostics, not only its errors: the stages' own log records
(tasks/core/stage_log.py: `INFO tasks.x: ...`), DVC's warnings, Python's warnings, TensorFlow's C++ log. Logging
all of it as errors would cry wolf; all of it as info would bury a real error. A stage that fails says so in its
exit status and its one `error: <stage>: ...` line, so only lines that are errors are logged as errors.
"""

from __future__ import annotations

import logging
import re

# TensorFlow's and absl's C++ log lines (glog format): a severity letter, then MMDD and the time,
# e.g. "W0000 00:00:1733241600.123456  4242 cuda_executor.cc:1228] ...".
GLOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d")
GLOG_LEVELS = {
    "I": logging.DEBUG,  # start-up chatter (oneDNN, CPU features): for whoever debugs TensorFlow itself
    "W": logging.WARNING,
    # TensorFlow logs at E what it recovers from (CUDA probing on a CPU host, grappler's NodeDef notices): the stage
    # carries on, and if it does fail its exit status and error line say so. So E is a warning here, F (fatal) an error.
    "E": logging.WARNING,
    "F": logging.ERROR,
}
# TensorFlow's E lines known to mean nothing for the stage, at DEBUG. The one every train run prints: with
# tf.config.experimental.enable_op_determinism() (tasks/train.py), tf.data rewrites Keras' parallel map into a
# MapDataset and drops an attribute that op lacks; the map runs, deterministically, as asked (seen with a bare
# keras fit(shuffle=True) too, and with the CPU and the CUDA builds of TensorFlow 2.21.0 alike).
HARMLESS_NOTICES = ("NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition",)
# absl's preface to TensorFlow's first C++ log line, once per process: it says where logs go, nothing about the stage.
ABSL_PREFACE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Level names at the start of a line: Python's logging (`WARNING name: ...`, `WARNING:absl:...`), DVC's (`ERROR: ...`).
LEVEL_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[: ]")
# Python's warnings module: "/path/file.py:12: UserWarning: message".
PYTHON_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ")


class StderrLevels:
    """Gives each stderr line of one stage its level; holds the state that spans lines (a traceback, a warning's
    source line), so use one per stage run."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._in_traceback = False
        self._previous = logging.INFO

    def level(self, line: str) -> int:
        """The level to log line at."""
        level = self._level(line)
        self._previous = level
        return level

    def _level(self, line: str) -> int:
        if line.startswith("Traceback (most recent call last):"):
            self._in_traceback = True
            return logging.ERROR
        if self._in_traceback:
            # A traceback's frames are indented; its last line (the exception) is not, and ends it.
            self._in_traceback = line.startswith((" ", "\t")) or not line.strip()
            return logging.ERROR
        if line.startswith(f"error: {self.stage}: "):
            return logging.ERROR  # the stage's own one-line error (tasks/core/errors.py)
        if line == ABSL_PREFACE:
            return logging.DEBUG
        if glog := GLOG_LINE.match(line):
            return logging.DEBUG if any(notice in line for notice in HARMLESS_NOTICES) else GLOG_LEVELS[glog.group(1)]
        if prefix := LEVEL_PREFIX.match(line):
            return logging.getLevelName(prefix.group(1))
        if PYTHON_WARNING.match(line):
            return logging.WARNING
        if line.startswith((" ", "\t")):
            return self._previous  # goes on with the line before (a warning's source line, a wrapped message)
        return logging.INFO  # progress and notes a tool writes to stderr: not an error by being there
