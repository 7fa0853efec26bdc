"""DVC as the flow sees it: the stage graph read from dvc.yaml, and one stage reproduced in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

from flows.interruption import interrupt_passes_to, interrupt_tree


@dataclass(frozen=True)
class StageRun:
    """What happened to one stage: DVC ran it, or found it up to date."""

    stage: str
    ran: bool
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


def stream_dvc(workspace: Path, args: list[str], on_line: Callable[[str], None] = print) -> tuple[int, list[str], bool]:
    """Run the dvc CLI in workspace, handing each line of its output to on_line as it comes.

    A Ctrl-C here goes on to dvc and its stage's command (interrupt_passes_to), as in a terminal; so does anything
    that ends this process early (Prefect's termination signal), so dvc never runs on unwatched. After an interrupt,
    what the stage prints while dying (a KeyboardInterrupt traceback) is kept in the lines but not handed on.
    Returns the exit status, every line, and whether it was interrupted.
    """
    command = [sys.executable, "-m", "dvc", *args]
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=workspace,
        env=stage_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        with interrupt_passes_to(process) as interrupted:
            try:
                for line in process.stdout:
                    line = line.rstrip("\n")
                    lines.append(line)
                    if not interrupted.is_set():
                        on_line(line)
            except BaseException:
                interrupt_tree(process.pid)
                process.wait()
                raise
    return process.returncode, lines, interrupted.is_set()


def error_lines(stage: str, lines: list[str]) -> list[str]:
    """The stage's own one-line errors (`error: <stage>: ...`), else DVC's first error (`ERROR: ...` and the lines
    that go on with it, up to a blank one: DVC's busy lock names its holder there), else the last line."""
    own = [line for line in lines if line.startswith(f"error: {stage}: ")]
    if own:
        return own
    first = next((i for i, line in enumerate(lines) if line.startswith("ERROR: ")), None)
    if first is None:
        return lines[-1:]
    end = next((i for i in range(first + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[first:end]


def diagnosed(stage: str, reported: list[str]) -> bool:
    """Whether the lines error_lines picked hold a diagnosis: the stage's own error line, or DVC's."""
    return any(line.startswith((f"error: {stage}: ", "ERROR: ")) for line in reported)


def reproduce_stage(workspace: Path, stage: str, on_line: Callable[[str], None] = print) -> StageRun:
    """Run `dvc repro --single-item stage`, streaming its output line by line.

    Raises StageFailed, whose message is `stage <stage> failed: <its error line>`, or StageInterrupted after Ctrl-C.
    """
    args = ["repro", "--single-item", stage]
    if default_remote(workspace):
        args.append("--pull")  # restore from the shared cache and run-cache what another clone already ran
    returncode, lines, interrupted = stream_dvc(workspace, args, on_line)
    output = "\n".join(lines)
    if returncode != 0 and interrupted:
        raise StageInterrupted(
            f"stage {stage} interrupted (Ctrl-C): DVC stopped its command and kept none of its outputs; "
            "run again to redo it"
        )
    if returncode != 0:
        reported = error_lines(stage, lines)
        raise StageFailed(f"stage {stage} failed: " + "\n".join(reported), explained=diagnosed(stage, reported))
    return StageRun(stage, ran=f"Running stage '{stage}'" in output, output=output)
