"""Where and with what a stage ran: git state, package versions, hardware, Prefect flow run, time."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# Prefect sets this for a flow run's processes; flows/dvc_stages.py passes it to the stages it starts.
FLOW_RUN_VARIABLE = "PREFECT__FLOW_RUN_ID"
PACKAGES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "dvc": ("dvc",),
    "prefect": ("prefect",),
}
MAX_CHANGED_PATHS = 50  # enough to see what was edited without bloating the record on a messy tree


def _git(args: list[str], cwd: Path) -> str | None:
    """A git command's stdout, or None outside a repository or without git."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout


def git_state(cwd: Path = Path(".")) -> dict:
    """HEAD's commit, whether the tree differs from it, and which paths do (the first MAX_CHANGED_PATHS)."""
    commit = _git(["rev-parse", "HEAD"], cwd)
    status = _git(["status", "--porcelain", "--untracked-files=normal"], cwd)
    if commit is None or status is None:
        return {"commit": None, "dirty": None, "changed": []}
    changed = [line[3:] for line in status.splitlines() if line]
    return {"commit": commit.strip(), "dirty": bool(changed), "changed": changed[:MAX_CHANGED_PATHS]}


def package_version(names: tuple[str, ...]) -> str | None:
    """The installed version of the first distribution found among names (read from metadata, nothing imported)."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict:
    """Python and the packages whose behaviour shapes the outputs."""
    found = {"python": platform.python_version()}
    found.update({key: package_version(names) for key, names in PACKAGES.items()})
    return found


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# The SIMD extensions that pick oneDNN's conv kernels: CPUs that differ in them give features that differ in the
# last bits (measured: 8 of 2,048 float16 values, AVX-512 against QEMU's AVX2-only CPU), and so other dvc.lock hashes.
CONV_SIMD = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux only; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_simd() -> list[str]:
    """Which of CONV_SIMD this CPU has, in that order."""
    flags = cpu_flags()
    return [name for name in CONV_SIMD if name in flags]


def gpu_names() -> list[str]:
    """GPU names: from TensorFlow if a stage already imported it (never imported just for this), else nvidia-smi."""
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        devices = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(d).get("device_name", d.name) for d in devices]
    if shutil.which("nvidia-smi"):
        try:
            query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
            out = subprocess.run(query, capture_output=True, text=True, check=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [line.strip() for line in out.splitlines() if line.strip()]
    return []


def hardware() -> dict:
    """The machine: OS, architecture, CPU model, SIMD extensions and count, GPUs."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_simd": cpu_simd(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_names(),
    }


def run_context() -> dict:
    """Everything about this run that is not a hash or a param."""
    return {
        "written_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "versions": versions(),
        "hardware": hardware(),
        "prefect_flow_run_id": os.environ.get(FLOW_RUN_VARIABLE) or None,
    }
