"""Outputs of every stage are byte-identical when the stage reruns on identical inputs (`dvc repro -f -s <stage>`)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tasks.lineage.digests import dir_listing, file_md5
from tasks.lineage.dvc_project import read_project
from tests.support.workspace import dvc, make_workspace, run_tool, stages_ran

ALL_STAGES = ["download", "reorganize", "split", "features@0", "train", "predict", "clip", "submit"]
# Outputs that record the run itself rather than a function of the stage's inputs, each with why it may differ. dvc.yaml
# marks them `type: run-facts`: no stage depends on them and no lineage record hashes them, so a rerun that changes
# them leaves nothing stale and every record still verifies (tests/pipeline/test_lineage_and_remote.py).
RUN_FACTS = {
    "models/head.run.json": "when, where and by which flow run train ran: the time differs on every run",
    "data/submission/run.json": "the same for submit",
    "data/submission/receipt.json": "the git commit and state submit ran at, and Kaggle's reply when it sends",
}


def outputs(workspace: Path, stage: str) -> dict[str, object]:
    """Each output of stage in dvc.lock -> its md5 there and what is on disk (a file's md5, a folder's listing)."""
    outs = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"][stage]["outs"]
    found: dict[str, object] = {}
    for out in outs:
        path = workspace / out["path"]
        found[out["path"]] = (out["md5"], dir_listing(path) if path.is_dir() else file_md5(path))
    return found


def test_every_stage_rerun_on_identical_inputs_writes_identical_bytes(tmp_path: Path):
    workspace = make_workspace(tmp_path / "ws", {"features": {"image_size": 32}})
    assert read_project(workspace).run_facts() == set(RUN_FACTS)
    assert stages_ran(dvc(workspace, "repro").stdout) == ALL_STAGES
    changed: dict[str, dict] = {}  # stage -> {output: (before, after)}
    for stage in ALL_STAGES:
        before = outputs(workspace, stage)
        assert stages_ran(dvc(workspace, "repro", "--force", "--single-item", stage).stdout) == [stage]
        after = outputs(workspace, stage)
        assert set(after) == set(before)
        differ = {path: (before[path], after[path]) for path in before if before[path] != after[path]}
        if set(differ) - set(RUN_FACTS):
            changed[stage] = {path: was_now for path, was_now in differ.items() if path not in RUN_FACTS}
    assert changed == {}
    # Nothing downstream went stale: every forced rerun reproduced what the next stage had consumed.
    assert stages_ran(dvc(workspace, "repro").stdout) == []
    for target in ("models/head.keras", "data/submission/submission.csv"):  # and every lineage record still holds
        run_tool([sys.executable, "-m", "tasks.lineage", "verify", target], workspace)
