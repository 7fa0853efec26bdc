"""A stage process (run_stage) shows the project's log lines on stderr and asks TensorFlow's C++ for quiet."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
STAGE = textwrap.dedent("""
    import logging, os
    from tasks.core.errors import run_stage

    def main():
        logging.getLogger("tasks.kaggle.source").info("downloaded c to data/raw/c.zip (3 bytes)")
        logging.getLogger("tasks.kaggle.client").debug("not shown: below INFO")
        logging.getLogger("urllib3").info("not shown: another library's INFO")
        logging.getLogger("urllib3").warning("another library's warning")
        print("TF_CPP_MIN_LOG_LEVEL=" + os.environ["TF_CPP_MIN_LOG_LEVEL"])

    assert not logging.getLogger().handlers, "configured at import"
    run_stage("demo", main)
""")


def run_demo_stage(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", STAGE],
        cwd=PROJECT,
        env={**clean, "PYTHONPATH": str(PROJECT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_tasks_loggers_reach_stderr_once_in_the_short_format():
    run = run_demo_stage()
    assert run.stderr.splitlines() == [
        "INFO tasks.kaggle.source: downloaded c to data/raw/c.zip (3 bytes)",
        "WARNING urllib3: another library's warning",
    ]


def test_tensorflow_cpp_log_level_defaults_to_2_and_a_users_choice_stands():
    assert run_demo_stage().stdout == "TF_CPP_MIN_LOG_LEVEL=2\n"
    assert run_demo_stage(TF_CPP_MIN_LOG_LEVEL="0").stdout == "TF_CPP_MIN_LOG_LEVEL=0\n"
