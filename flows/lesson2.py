"""The Prefect flow: one task per DVC stage, same names, in the order DVC's graph gives."""
from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.dvc_stages import StageRun, execution_order, reproduce_stage, stage_graph

# Only these touch the network, so only these are worth retrying.
NETWORK_STAGES = frozenset({"download", "submit"})
NETWORK_RETRIES = 2


def _reproduce(workspace: str, stage: str) -> StageRun:
    logger = get_run_logger()
    run = reproduce_stage(Path(workspace), stage, on_line=logger.info)
    logger.info("%s: %s", stage, "ran" if run.ran else "up to date, skipped by DVC")
    return run


def stage_task(stage: str):
    """A Prefect task that reproduces one DVC stage; DVC decides staleness, so Prefect's cache stays off."""
    retries = NETWORK_RETRIES if stage in NETWORK_STAGES else 0
    return task(name=stage, retries=retries, retry_delay_seconds=10, cache_policy=NO_CACHE)(_reproduce)


@flow(name="lesson2")
def lesson2(workspace: str = ".") -> dict[str, str]:
    """Reproduce the whole DAG in workspace; return each stage's outcome ('ran' or 'up to date')."""
    graph = stage_graph(Path(workspace))
    outcomes = {}
    # Stages run one after another: two `dvc repro` at once in one workspace would fight over DVC's lock.
    for stage in execution_order(graph):
        run = stage_task(stage)(workspace, stage)
        outcomes[stage] = "ran" if run.ran else "up to date"
    return outcomes


def main() -> None:
    outcomes = lesson2(workspace=sys.argv[1] if len(sys.argv) > 1 else ".")
    width = max(map(len, outcomes))
    print("\n".join(f"{stage:<{width}}  {outcome}" for stage, outcome in outcomes.items()))


if __name__ == "__main__":
    main()
