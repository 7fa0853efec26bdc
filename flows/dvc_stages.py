"""DVC as the flow sees it: the stage graph read from dvc.yaml, and one stage reproduced in a subprocess."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import IO

from flows.interruption import interrupt_passes_to, interrupt_tree

# What DVC does with a stage, in the words the flow reports it with (its outcomes, the task runs' state names).
RAN = "ran"  # DVC ran the stage's command
RESTORED = "restored"  # DVC checked its outputs out of the cache (run-cache, dvc.lock's hashes) or pulled them
UP_TO_DATE = "up to date"  # nothing changed: DVC has nothing to do
# `dvc repro` says this after every stage it ran or restored, remote or not; the flow says it once, at the end, and
# only when the workspace has a remote (lesson2.push_reminder).
PUSH_HINT = "Use `dvc push` to send your updates to remote storage."


@dataclass(frozen=True)
class StageRun:
    """What happened to one stage (RAN, RESTORED or UP_TO_DATE, as DVC's API predicted it), and DVC's output."""

    stage: str
    outcome: str
    output: str


class StageFailed(RuntimeError):
    """A stage's command failed; the message names the stage and ends with the stage's own error line.

    explained: the stage printed its own `error: <stage>: ...` line (bad input, or a network call that failed after the
    stage's own retries) or DVC its `ERROR: ...` (a missing dependency, a busy lock): the problem is diagnosed, and
    running the stage again unchanged would only print it again. Unexplained: killed, or a crash with a traceback.
    """

    def __init__(self, message: str, explained: bool = False) -> None:
        super().__init__(message)
        self.explained = explained


class StageInterrupted(StageFailed):
    """Ctrl-C stopped the stage: DVC interrupted its command, kept none of its outputs and released its lock."""


def stage_graph(workspace: Path) -> dict[str, list[str]]:
    """Each stage with the stages it depends on, from DVC's own graph (no second DAG kept by hand)."""
    from dvc.repo import Repo  # DVC is heavy to import; only needed when the flow starts

    with Repo(str(workspace)) as repo:
        graph = repo.index.graph
        upstream: dict[str, list[str]] = {stage.name: [] for stage in repo.index.stages}
        for downstream, dependency in graph.edges:  # DVC draws edges from a stage to what it depends on
            upstream[downstream.name].append(dependency.name)
    return upstream


def execution_order(graph: dict[str, list[str]]) -> list[str]:
    """Stages in an order where each follows everything it depends on."""
    return list(TopologicalSorter(graph).static_order())


def default_remote(workspace: Path) -> str | None:
    """The workspace's default DVC remote, if any: with one, stages are pulled from it rather than rerun."""
    from dvc.config import Config  # the repo's config with its --local, --global and --system levels

    return Config(dvc_dir=str(workspace / ".dvc"))["core"].get("remote")


def stage_environment() -> dict[str, str]:
    """The environment for DVC and the stages: this interpreter's bin first, so `python` in dvc.yaml is ours."""
    from prefect.runtime import flow_run  # flows/ may import Prefect; the stages only read the variable

    env = dict(os.environ)
    if flow_run.id:  # only the run-facts files (dvc.yaml `type: run-facts`) carry it; no stage depends on them
        env["PREFECT__FLOW_RUN_ID"] = str(flow_run.id)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter drowns the stage's own log
    env.setdefault("PYTHONUNBUFFERED", "1")  # so progress lines stream as they happen
    return env


def _read_into(stream: IO[str], is_stderr: bool, lines: queue.Queue) -> None:
    """Put each line of stream on lines, tagged with its stream, then None once it ends."""
    for line in stream:
        lines.put((is_stderr, line.rstrip("\n")))
    lines.put(None)


def _both_streams(process: subprocess.Popen) -> Iterator[tuple[bool, str]]:
    """(is_stderr, line) for each line of the process's stdout and stderr, in the order they come."""
    lines: queue.Queue = queue.Queue()
    readers = [
        threading.Thread(target=_read_into, args=(stream, is_stderr, lines), daemon=True)
        for stream, is_stderr in ((process.stdout, False), (process.stderr, True))
    ]
    for reader in readers:
        reader.start()
    open_streams = len(readers)
    while open_streams:
        item = lines.get()
        if item is None:
            open_streams -= 1
        else:
            yield item


def stream_dvc(
    workspace: Path,
    args: list[str],
    on_line: Callable[[str], None] = print,
    on_stderr: Callable[[str], None] | None = None,
) -> tuple[int, list[str], bool]:
    """Run the dvc CLI in workspace, handing each line of its stdout to on_line, of its stderr to on_stderr (by default
    on_line too), as they come. The stage's command writes to the same two streams.

    A Ctrl-C here goes on to dvc and its stage's command (interrupt_passes_to), as in a terminal; so does anything
    that ends this process early (Prefect's termination signal), so dvc never runs on unwatched. After an interrupt,
    what the stage prints while dying (a KeyboardInterrupt traceback) is kept in the lines but not handed on.
    Returns the exit status, every line of both streams in the order they came, and whether it was interrupted.
    """
    command = [sys.executable, "-m", "dvc", *args]
    lines: list[str] = []
    process = subprocess.Popen(
        command,
        cwd=workspace,
        env=stage_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # apart, so that a stage's stderr is logged by what each line says (stage_output.py)
        text=True,
    )
    with process, interrupt_passes_to(process) as interrupted:
        try:
            for is_stderr, line in _both_streams(process):
                lines.append(line)
                if not interrupted.is_set():
                    (on_stderr or on_line)(line) if is_stderr else on_line(line)
        except BaseException:
            interrupt_tree(process.pid)
            process.wait()
            raise
    return process.returncode, lines, interrupted.is_set()


def own_error_prefix(stage: str) -> str:
    """How the stage's code starts its one-line error: its step's name, `features` for every features@<shard>."""
    return f"error: {stage.partition('@')[0]}: "


def error_lines(stage: str, lines: list[str]) -> list[str]:
    """The stage's own one-line errors (`error: <stage>: ...`), else DVC's first error (`ERROR: ...` and the lines
    that go on with it, up to a blank one: DVC's busy lock names its holder there), else the last line."""
    own = [line for line in lines if line.startswith(own_error_prefix(stage))]
    if own:
        return own
    first = next((i for i, line in enumerate(lines) if line.startswith("ERROR: ")), None)
    if first is None:
        return lines[-1:]
    end = next((i for i in range(first + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[first:end]


def diagnosed(stage: str, reported: list[str]) -> bool:
    """Whether the lines error_lines picked hold a diagnosis: the stage's own error line, or DVC's."""
    return any(line.startswith((own_error_prefix(stage), "ERROR: ")) for line in reported)


def _dvc_stage(repo, stage: str):
    """The stage named stage in the repo's dvc.yaml, as DVC's API holds it (by name: a target would be read relative
    to this process's working directory, which is not the run's worktree)."""
    (found,) = (candidate for candidate in repo.index.stages if candidate.name == stage)
    return found


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """The logger's INFO records dropped during the block: a dry restore logs "checking out outputs" as if it did."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def predicted_outcome(workspace: Path, stage: str, pull: bool) -> str:
    """What `dvc repro --single-item [--pull] stage` will do, decided by DVC's API the way its reproduce decides it
    (dvc/stage/__init__.py Stage.reproduce, dvc/stage/run.py run_stage): UP_TO_DATE when nothing changed; RESTORED
    when dvc.lock's outputs can be pulled (pull, outputs missing but nothing else changed) or the run-cache holds a
    run on these very inputs whose outputs are in the cache (StageCache.restore, dry: it checks, restores nothing);
    else RAN. With a remote, DVC may still find a run in the remote's run-cache and restore a stage predicted RAN.
    """
    from dvc.repo import Repo
    from dvc.stage.cache import RunCacheNotFoundError
    from dvc_data.hashfile.hash_info import HashInfo

    with Repo(str(workspace)) as repo, repo.lock:  # DVC reads a stage's deps and outs under its repository lock
        target = _dvc_stage(repo, stage)
        if not target.changed():
            return UP_TO_DATE
        if pull and not target.changed(allow_missing=True):
            return RESTORED
        if not target.deps_cached():
            # A dry restore() neither records the deps as they are now, which is what the run-cache is keyed by (a
            # real one does, in run_stage), nor forgets dvc.lock's outputs, which belong to the old deps: do both here,
            # on this throwaway copy of the stage, so that it looks the run-cache up as the real one will.
            target.save_deps()
            for out in target.outs:
                out.hash_info = HashInfo()
        try:
            # restore() makes the cached stage at the relative path "dvc.yaml": it takes the repository to be the
            # working directory, as it is for the dvc CLI (not for a run in its own worktree).
            with contextlib.chdir(workspace), _quiet("dvc.stage.cache"):
                repo.stage_cache.restore(target, dry=True)
        except RunCacheNotFoundError:
            return RAN
        return RESTORED


def unchanged_after(workspace: Path, stage: str) -> bool:
    """Whether DVC now finds the stage up to date: what a stage that ran or was restored must leave behind."""
    from dvc.repo import Repo

    with Repo(str(workspace)) as repo, repo.lock:
        return not _dvc_stage(repo, stage).changed()


def reproduce_stage(
    workspace: Path,
    stage: str,
    on_line: Callable[[str], None] = print,
    on_stderr: Callable[[str], None] | None = None,
) -> StageRun:
    """Reproduce one stage through `dvc repro --single-item stage`, streaming its output line by line; a stage DVC's
    API finds up to date is not handed to dvc at all (it would only say so and pull the run-cache).

    Raises StageFailed, whose message is `stage <stage> failed: <its error line>`, or StageInterrupted after Ctrl-C.
    """
    from dvc.exceptions import DvcException

    pull = default_remote(workspace) is not None
    try:
        outcome = predicted_outcome(workspace, stage, pull)
    except DvcException as err:  # e.g. another `dvc repro` writing this stage's outputs: its rwlock names it
        raise StageFailed(f"stage {stage} failed: ERROR: {err}", explained=True) from err
    if outcome == UP_TO_DATE:
        return StageRun(stage, outcome, output="")
    args = ["repro", "--single-item", stage]
    if pull:
        args.append("--pull")  # restore from the shared cache and run-cache what another clone already ran
    said = lambda line: None if line == PUSH_HINT else on_line(line)  # noqa: E731
    returncode, lines, interrupted = stream_dvc(workspace, args, said, on_stderr)
    output = "\n".join(lines)
    if returncode != 0 and interrupted:
        raise StageInterrupted(
            f"stage {stage} interrupted (Ctrl-C): DVC stopped its command and kept none of its outputs; "
            "run again to redo it"
        )
    if returncode != 0:
        reported = error_lines(stage, lines)
        raise StageFailed(f"stage {stage} failed: " + "\n".join(reported), explained=diagnosed(stage, reported))
    if not unchanged_after(workspace, stage):
        raise StageFailed(f"stage {stage} failed: dvc repro succeeded, but DVC still finds the stage changed")
    if outcome == RAN and restored_from_run_cache(stage, lines):
        outcome = RESTORED  # the remote's run-cache had it, which the prediction cannot see without pulling it
    return StageRun(stage, outcome, output=output)


def restored_from_run_cache(stage: str, lines: list[str]) -> bool:
    """Whether `dvc repro` said it restored the stage from the run-cache instead of running it."""
    return any(line.startswith(f"Stage '{stage}' is cached - skipping run") for line in lines)


def published_link(workspace: Path, path: str, md5: str, lifetime_s: int) -> str | None:
    """A presigned URL of the output at path in the workspace's default remote, after pushing it there: a link that a
    browser anywhere opens for lifetime_s, with no credentials of its own. None when the remote cannot presign one
    (a directory, SSH, ...), and then nothing is pushed."""
    from dvc.repo import Repo

    with Repo(str(workspace)) as repo:
        remote = repo.cloud.get_remote_odb(None, "push")
        try:
            link = remote.fs.sign(remote.oid_to_path(md5), expiration=lifetime_s)
        except NotImplementedError:
            return None
        repo.push(targets=[str(workspace / path)])  # that one output, so the link opens; `dvc push` does the rest
    return link


def on_remote(workspace: Path, stages: list[str]) -> list[str]:
    """The stages whose run on their current deps the default remote already holds: a run-cache entry there, with the
    outputs it names (DVC pushes a folder's .dir object after its files, so its presence means the files are there).
    `dvc repro --pull` restores such a stage instead of running it. Pulls the remote's run-cache entries (small
    files, one per run) into the local cache to read them."""
    from dvc.repo import Repo
    from dvc.stage.cache import RunCacheNotSupported

    found = []
    with Repo(str(workspace)) as repo, repo.lock:
        try:
            repo.stage_cache.pull(None)
        except RunCacheNotSupported:  # e.g. an HTTP remote: no run-cache to find a stage in
            return []
        for stage in stages:
            target = _dvc_stage(repo, stage)
            with contextlib.chdir(workspace):  # as predicted_outcome: the run-cache reads paths as the CLI would
                target.save_deps()
                entry = repo.stage_cache._load(target)
                if not entry:
                    continue
                cached = repo.stage_cache._create_stage(entry, wdir=target.wdir)
            outputs = [out.hash_info for out in cached.outs if out.hash_info]
            status = repo.cloud.status(outputs)
            if outputs and not (status.missing | status.new):
                found.append(stage)
    return found


def push_restorable(workspace: Path, stage: str) -> int:
    """Push to the default remote every object a restore of the stage from its run-cache entry pulls; how many were
    sent. `dvc push` leaves out outputs marked `cache: false` (metrics files), but the run-cache entry names them too,
    and `dvc repro --pull` on another machine fails to restore the stage without them ("Some of the cache files do not
    exist neither locally nor on remote") and runs it instead. They are in the local cache: DVC's run-cache commits
    them there when it records the run."""
    from dvc.repo import Repo

    with Repo(str(workspace)) as repo, repo.lock:
        target = _dvc_stage(repo, stage)
        with contextlib.chdir(workspace):
            target.save_deps()
            entry = repo.stage_cache._load(target)
            if not entry:
                return 0
            cached = repo.stage_cache._create_stage(entry, wdir=target.wdir)
        sent = 0
        for objs in cached.get_used_objs().values():
            sent += len(repo.cloud.push(objs).transferred)
    return sent
