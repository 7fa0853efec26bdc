"""The pipeline as DVC itself reads it: dvc.yaml's stages with `${...}` resolved, dvc.lock, and the local cache.

The project's one reader of dvc.yaml's stages and of dvc.lock (tasks/core/paths.py reads only dvc.yaml's vars). DVC's
own loader resolves the templates (from dvc.yaml's vars and params.yaml, as `dvc repro` does) and validates both
files, so a lineage record names exactly the paths DVC tracks. Nothing here
takes DVC's repository lock, so a stage that `dvc repro` is running (and holding that lock) can read the project.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import StageError

# The `type` dvc.yaml gives an output that records the run (time, machine, git state) rather than a function of the
# stage's inputs: it may differ on every run, so nothing downstream may depend on it (DVC's own annotation field).
RUN_FACTS_TYPE = "run-facts"

if TYPE_CHECKING:  # DVC is imported where it is used: importing this module stays cheap for the stages
    from dvc.dvcfile import Lockfile
    from dvc.repo import Repo
    from dvc.stage import PipelineStage


@dataclass(frozen=True)
class StageSpec:
    """One dvc.yaml stage, resolved: its command, dep paths, outputs by kind, and params keys by params file."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    metrics: tuple[str, ...]
    plots: tuple[str, ...]
    params: dict[str, tuple[str, ...]]  # params file -> keys, as dvc.yaml lists them
    run_facts: tuple[str, ...] = ()  # outputs dvc.yaml marks `type: run-facts`: about the run, not its inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every path the stage writes: outs, then metrics, then plots (dvc.yaml's order)."""
        return self.outs + self.metrics + self.plots


@dataclass(frozen=True)
class DvcProject:
    """dvc.yaml's stages (in file order), dvc.lock's stages (None without a dvc.lock), and the local cache folder."""

    stages: dict[str, StageSpec]
    lock: dict[str, dict] | None
    cache_dir: Path

    def stage(self, name: str) -> StageSpec:
        """The stage called name; a StageError when dvc.yaml has none (a dvc.lock older than dvc.yaml, say)."""
        if name not in self.stages:
            raise StageError(f"dvc.yaml has no stage {name!r}")
        return self.stages[name]

    def run_facts(self) -> frozenset[str]:
        """Every output dvc.yaml marks `type: run-facts`: lineage records neither hash nor embed them."""
        return frozenset(path for spec in self.stages.values() for path in spec.run_facts)

    def producers(self) -> dict[str, str]:
        """Every output path dvc.yaml declares -> the stage that writes it."""
        return {path: spec.name for spec in self.stages.values() for path in spec.outputs}


def _stage_spec(stage: PipelineStage) -> StageSpec:
    """A dvc.stage.PipelineStage as a StageSpec: paths as dvc.yaml wrote them, after DVC resolved the templates."""
    from dvc.dependency import ParamsDependency

    params = {dep.def_path: tuple(dep.params) for dep in stage.deps if isinstance(dep, ParamsDependency)}
    return StageSpec(
        name=stage.name,
        cmd=stage.cmd,
        deps=tuple(dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)),
        outs=tuple(out.def_path for out in stage.outs if not (out.metric or out.plot)),
        metrics=tuple(out.def_path for out in stage.outs if out.metric),
        plots=tuple(out.def_path for out in stage.outs if out.plot),
        params=params,
        run_facts=tuple(out.def_path for out in stage.outs if out.annot.type == RUN_FACTS_TYPE),
    )


@contextmanager
def _open_repo(root: Path) -> Iterator[Repo]:
    """DVC's repository at root; DVC's own errors (no repository, a dvc.yaml it can't parse) as one StageError."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(os.fspath(root)) as repo:
            yield repo
    except DvcException as err:
        raise StageError(f"DVC cannot read the project at {root}: {err}") from err


def _lockfile(repo: Repo) -> Lockfile:
    """DVC's handle on the repository's dvc.lock (loading it checks it against DVC's lockfile schema)."""
    from dvc.dvcfile import LOCK_FILE, Lockfile

    return Lockfile(repo, os.path.join(repo.root_dir, LOCK_FILE))


def read_project(root: Path = Path(".")) -> DvcProject:
    """Open the DVC repository at root once and read dvc.yaml (resolved), dvc.lock and where the cache is."""
    from dvc.dvcfile import PROJECT_FILE, load_file

    with _open_repo(root) as repo:
        pipeline = load_file(repo, os.path.join(repo.root_dir, PROJECT_FILE))
        stages = {name: _stage_spec(pipeline.stages[name]) for name in pipeline.stages}
        # The stage loader has parsed dvc.lock already (it fills hashes from it): reuse that, don't parse it twice.
        lock = pipeline.lockfile_contents.get("stages", {}) if _lockfile(repo).exists() else None
        return DvcProject(stages, lock, Path(repo.cache.local.path))


def read_lock(root: Path = Path(".")) -> dict[str, dict] | None:
    """dvc.lock's stages as DVC loads them; None when there is no dvc.lock."""
    with _open_repo(root) as repo:
        lockfile = _lockfile(repo)
        return lockfile.load().get("stages", {}) if lockfile.exists() else None


def read_params(spec: StageSpec, root: Path = Path(".")) -> dict[str, Any]:
    """The stage's params keys with their values now (key -> value), read as DVC reads them for dvc.lock."""
    from dvc.dependency.param import read_param_file
    from dvc.fs import LocalFileSystem

    values: dict[str, Any] = {}
    for params_file, keys in spec.params.items():
        path = os.fspath(root / params_file)
        values.update(read_param_file(LocalFileSystem(), path, list(keys) or None, flatten=True))
    # DVC skips a key it can't find; `dvc repro` refuses such a stage before it runs, so this is a guard, not a path.
    missing = [key for keys in spec.params.values() for key in keys if key not in values]
    if missing:
        raise StageError(f"stage {spec.name}'s params are missing from params.yaml: {', '.join(missing)}")
    return values
