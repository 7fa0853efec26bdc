"""What a stage process prints on stderr: the project's log lines, short, and less of TensorFlow's C++ log."""

from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # e.g. "INFO tasks.kaggle.source: downloaded ... (123 bytes)"


def configure_stage_logging() -> None:
    """Send tasks.* log records from INFO up, and other libraries' from WARNING up, to stderr; quiet TensorFlow's C++.

    Called once per stage process by run_stage, before the stage imports TensorFlow, which reads
    TF_CPP_MIN_LOG_LEVEL as it loads. 2, as `make run` and the Prefect flow set it, drops TensorFlow's C++ INFO and
    WARNING lines (the CPU-instructions notice) and keeps its errors; setdefault, so a user can ask for more with 0.
    The oneDNN and CUDA-probing lines still print: TensorFlow 2.21's CUDA build logs them while its libraries load,
    before absl's logging is set up (seen here at TF_CPP_MIN_LOG_LEVEL 2 and 3, ABSL_MIN_LOG_LEVEL, GLOG_minloglevel).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("tasks").setLevel(logging.INFO)
