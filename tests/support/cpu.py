"""What this CPU can run, read from its flags, and a real CPU without AVX-512 to run a command on (QEMU's).

OpenVINO's CPU plugin runs bf16 where oneDNN may use avx512_core or avx2_vnni_2 (its precision_support.cpp,
hasBF16HardwareSupport), and float32 elsewhere. An environment variable can't show the second case on a CPU that
has them: with ONEDNN_MAX_CPU_ISA=AVX2 OpenVINO 2026.4 still picks bf16, then fails to compile a convolution
("object is not initialized"). QEMU's user-mode emulator runs the same binaries on a CPU model whose CPUID lacks
AVX-512, which is what an AVX2-only machine shows them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tasks.lineage.run_context import cpu_flags
from tests.support.workspace import PROJECT, tool_env

__all__ = ["AVX2_ONLY_CPU", "QEMU", "cpu_flags", "openvino_runs_bf16", "run_on_avx2_only_cpu"]

AVX512_CORE = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}  # oneDNN's avx512_core
AVX2_VNNI_2 = {"avx_vnni_int8", "avx_ne_convert"}  # oneDNN's avx2_vnni_2
AVX2_ONLY_CPU = "Haswell-v4"  # QEMU's Haswell without TSX: AVX2 and FMA, no AVX-512
QEMU = shutil.which("qemu-x86_64")  # Debian/Ubuntu: apt install qemu-user


def openvino_runs_bf16(flags: set[str]) -> bool:
    """Whether OpenVINO's CPU plugin runs a bf16 hint as bf16 on a CPU with these flags (float32 if not)."""
    return AVX512_CORE.issubset(flags) or AVX2_VNNI_2.issubset(flags)


def run_on_avx2_only_cpu(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run this interpreter with args in cwd under QEMU's AVX2-only CPU model, the project importable."""
    assert QEMU is not None
    env = tool_env() | {"PYTHONPATH": str(PROJECT)}
    command = [QEMU, "-cpu", AVX2_ONLY_CPU, sys.executable, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
