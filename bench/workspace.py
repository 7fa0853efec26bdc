"""Scratch copies of the project as git + DVC repositories, and the dvc runs in them: for bench's DAG and memory
figures, and for the tests (tests/support/workspace.py), which may import bench while bench never imports tests."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tasks.core.params import NO_LOCAL_ARCHIVE
from tasks.core.paths import DVC_FILE, VARS_KEY, load_paths

PROJECT = Path(__file__).resolve().parents[1]
# What `dvc repro` needs in a copy of the project: the stages' code, the DAG, the params and DVC's settings, and
# the placeholder download depends on when no local archive is read.
WORKSPACE_FILES = ("tasks", "dvc.yaml", "params.yaml", ".dvcignore", NO_LOCAL_ARCHIVE)


def merged(base: dict, override: dict) -> dict:
    """A copy of base with override's keys set in it, section by section."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def bench_params(override: dict) -> dict:
    """The project's params.yaml with override applied."""
    return merged(yaml.safe_load((PROJECT / "params.yaml").read_text()), override)


def write_paths(root: Path, override: dict[str, str]) -> None:
    """A dvc.yaml at root holding only the project's paths with override applied: all a stage run alone reads of it."""
    paths = load_paths(PROJECT / DVC_FILE).model_dump() | override
    (root / DVC_FILE).write_text(yaml.safe_dump({"vars": [{VARS_KEY: paths}]}, sort_keys=False))


def tool_env() -> dict[str, str]:
    """Environment for the dvc and stage processes: this interpreter's bin first, TensorFlow's C++ log quiet."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_tool(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in cwd, output captured as text; with check, a failure raises with both streams."""
    result = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{args} failed ({result.returncode}) in {cwd}:\n{result.stdout}\n{result.stderr}")
    return result


def dvc(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the dvc CLI in workspace."""
    return run_tool([sys.executable, "-m", "dvc", *args], workspace, check)


def stages_ran(output: str) -> list[str]:
    """Names of the stages DVC actually ran, from its `Running stage 'x'` lines."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def make_workspace(root: Path, params: dict, files: tuple[str, ...] = WORKSPACE_FILES, project: Path = PROJECT) -> Path:
    """A fresh git + DVC repository at root holding a copy of project's files (this checkout's, or another commit's
    exported), with params as its params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        source = project / name
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_tool(["git", "init", "-q"], root)
    run_tool(["git", "config", "user.email", "workspace@example.invalid"], root)
    run_tool(["git", "config", "user.name", "workspace"], root)
    dvc(root, "init", "-q")
    # DVC's settings and the plot templates dvc.yaml names: after `dvc init`, which refuses an existing .dvc/.
    shutil.copy2(project / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copytree(project / ".dvc" / "plots", root / ".dvc" / "plots")
    run_tool(["git", "add", "-A"], root)
    run_tool(["git", "commit", "-qm", "workspace"], root)
    return root
