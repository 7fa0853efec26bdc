"""The machine a benchmark ran on, and a GEMM probe of its measured FP32 peak."""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from tasks.lineage.run_context import cpu_model, cpu_simd, package_version

PACKAGES = ("tensorflow", "keras", "onnxruntime", "openvino", "numpy", "pillow", "dvc")


def machine_details() -> dict[str, str]:
    """CPU model, usable cores, memory, SIMD extensions that matter for conv kernels, and package versions."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    details = {
        "cpu": cpu_model() or "unknown",
        "cores usable": str(len(os.sched_getaffinity(0))),
        "memory": f"{pages / 2**30:.0f} GiB",
        "simd": " ".join(cpu_simd()),
        "python": platform.python_version(),
        "os": platform.platform(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    # TensorFlow is the tensorflow-cpu distribution where the cpu extra installed it; a backend may not be installed.
    details.update({p: package_version((p, f"{p}-cpu")) or "not installed" for p in PACKAGES})
    return details


def gemm_flops(seconds: float = 2.0, n: int = 2048) -> dict[str, float]:
    """Best FP32 FLOP/s of an n x n matmul, by numpy (OpenBLAS) and by TensorFlow (oneDNN), each for ~seconds."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    import tensorflow as tf

    ta, tb = tf.constant(a), tf.constant(b)
    probes = {"numpy": lambda: a @ b, "tensorflow": lambda: tf.linalg.matmul(ta, tb).numpy()}
    best = {}
    for name, run in probes.items():
        run()  # warm-up: thread pools and kernels
        fastest, began = float("inf"), time.perf_counter()
        while time.perf_counter() - began < seconds:
            t = time.perf_counter()
            run()
            fastest = min(fastest, time.perf_counter() - t)
        best[name] = 2 * n**3 / fastest
    return best
