"""A finished run recorded as a DVC experiment (`dvc exp save`), so `dvc exp show` lists it with params and metrics."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.dvc_stages import stream_dvc
from tasks.core.errors import StageError
from tasks.lineage.dvc_project import read_lock


@dataclass(frozen=True)
class Experiment:
    """A saved experiment: its name and the git commit that holds its code, params, dvc.lock and metrics."""

    name: str
    commit: str


class ExperimentNotSaved(RuntimeError):
    """`dvc exp save` failed; the message ends with what it printed."""


def git(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    """Run git in workspace, output captured as text; the caller checks the status."""
    return subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True)


def head_commit(workspace: Path) -> str:
    """The workspace's HEAD commit; experiments are recorded against it, so it must exist."""
    result = git(workspace, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if result.returncode != 0:
        raise StageError(
            f"{workspace.resolve()} is not a git repository with a commit, and DVC experiments need one: "
            "run the flow in a git checkout of this project, or with record_experiment=False"
        )
    return result.stdout.strip()


def code_changes(workspace: Path) -> list[str]:
    """Tracked files that differ from HEAD, leaving out params.yaml and dvc.lock (the experiment records those)."""
    result = git(workspace, "diff", "--name-only", "HEAD")
    return [p for p in result.stdout.splitlines() if p not in ("params.yaml", "dvc.lock")]


def experiment_name(run_name: str) -> str:
    """run_name made safe as a git ref name (a flow run can be given any name by hand)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", run_name).strip("-") or "lesson2-run"


def free_name(workspace: Path, wanted: str, suffix: str) -> str:
    """wanted, or wanted-suffix if an experiment of that name already hangs off HEAD (flow run names can repeat)."""
    from dvc.repo.experiments.refs import ExpRefInfo  # DVC's own layout of experiment refs

    taken = git(workspace, "show-ref", "--verify", "--quiet", str(ExpRefInfo(head_commit(workspace), wanted)))
    return f"{wanted}-{suffix}" if taken.returncode == 0 else wanted


def untracked_outputs(workspace: Path) -> list[str]:
    """Stage-written files git does not track yet: uncached outputs (metrics, plots), dvc.lock, DVC's .gitignores.

    `dvc exp save` adds only top-level metrics and params by itself; stage-level metrics left out would show as
    missing in `dvc exp show`.
    """
    listed = git(workspace, "ls-files", "--others", "--exclude-standard", "-z")
    if listed.returncode != 0:
        raise ExperimentNotSaved(f"git ls-files failed in {workspace}: {listed.stderr.strip()}")
    lock = read_lock(workspace) or {}
    outs = {out["path"] for stage in lock.values() for out in stage.get("outs", [])}
    wanted = []
    for path in filter(None, listed.stdout.split("\0")):
        if (
            path == "dvc.lock"
            or Path(path).name == ".gitignore"
            or any(path == out or path.startswith(f"{out}/") for out in outs)
        ):
            wanted.append(path)
    return sorted(wanted)


def save_experiment(workspace: Path, name: str, on_line: Callable[[str], None] = print) -> Experiment:
    """Record the workspace as experiment `name` (workspace files untouched); raise ExperimentNotSaved on failure."""
    args = ["exp", "save", "--name", name]
    for path in untracked_outputs(workspace):
        args += ["--include-untracked", path]
    returncode, lines, interrupted = stream_dvc(workspace, args, on_line)
    if returncode != 0 and interrupted:
        raise ExperimentNotSaved(f"dvc exp save --name {name} was interrupted (Ctrl-C); the run is not recorded")
    if returncode != 0:
        tail = "\n".join(lines[-10:])
        raise ExperimentNotSaved(f"dvc exp save --name {name} failed (exit status {returncode}):\n{tail}")
    from dvc.repo.experiments.refs import ExpRefInfo

    ref = git(workspace, "rev-parse", "--verify", str(ExpRefInfo(head_commit(workspace), name)))
    if ref.returncode != 0:
        raise ExperimentNotSaved(f"dvc exp save reported success but experiment {name} is not in git")
    return Experiment(name, ref.stdout.strip())
