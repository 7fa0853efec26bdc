"""The Makefile builds .venv with the system interpreter, whatever the PATH: also from an activated environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def activated(venv: Path) -> dict[str, str]:
    """The environment `source .venv/bin/activate` gives: the venv's bin first on PATH, VIRTUAL_ENV set."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "VIRTUAL_ENV": str(venv)}


def make(checkout: Path, env: dict[str, str], *args: str) -> str:
    """make's stdout in checkout; it must succeed."""
    done = subprocess.run(["make", "-s", *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_activated_environment_after_a_lock_change_bootstraps_with_the_system_python(tmp_path: Path):
    """The venv's python3.11 comes first on PATH and has no pip (or uv): make must look past it, to its base."""
    for name in ("Makefile", "pyproject.toml", "uv.lock"):
        shutil.copy2(PROJECT / name, tmp_path / name)
    venv = tmp_path / ".venv"
    # A venv without pip, as uv makes them; the stamps of an earlier sync, then a `git pull` that changed uv.lock.
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    for stamp in (".synced-run-cpu", ".synced-test-cpu"):
        (venv / stamp).touch()
        os.utime(venv / stamp, (1, 1))
    (tmp_path / "uv.lock").touch()
    env = activated(venv)
    assert subprocess.run(["python3.11", "-m", "pip", "--version"], env=env, capture_output=True).returncode != 0

    bootstrap = make(tmp_path, env, "bootstrap-python").strip()
    probe = (
        "import sys, importlib.util as u; "
        "print(sys.prefix == sys.base_prefix, bool(u.find_spec('uv') or u.find_spec('pip')))"
    )
    assert subprocess.run([bootstrap, "-c", probe], capture_output=True, text=True).stdout.split() == ["True", "True"]
    # What make run would do now: sync with that interpreter, not the venv's.
    planned = make(tmp_path, env, "-n", "run")
    assert f"{bootstrap} -m uv sync --frozen --quiet --python {bootstrap} --no-dev --extra cpu" in planned
    assert str(venv / "bin" / "python3") not in planned.split("-m flows.lesson2")[0]


def test_every_target_of_a_fresh_clone_can_be_planned(tmp_path: Path):
    """Each target's prerequisites are rules of this Makefile (a stamp renamed and left behind stops a target cold)."""
    for name in ("Makefile", "pyproject.toml", "uv.lock"):
        shutil.copy2(PROJECT / name, tmp_path / name)
    phony = next(line for line in (PROJECT / "Makefile").read_text().splitlines() if line.startswith(".PHONY:"))
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    for target in phony.split(":", 1)[1].split():
        make(tmp_path, env, "-n", target)  # asserts make found a way to it, with no .venv there yet
