"""Recording a run as a DVC experiment: names safe for git, a taken name not overwritten, stage metrics included."""

import json
from pathlib import Path

import pytest
import yaml

from flows.experiment import experiment_name, free_name, head_commit, save_experiment, untracked_outputs
from tasks.core.errors import StageError
from tests.support.workspace import dvc, run_tool

STAGE = {
    "cmd": "echo '{\"n\": 3}' > metrics.json && echo x > out.txt",
    "outs": ["out.txt"],
    "metrics": [{"metrics.json": {"cache": False}}],
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A one-stage git + DVC repository, reproduced once."""
    run_tool(["git", "init", "-q"], tmp_path)
    run_tool(["git", "config", "user.email", "tests@example.invalid"], tmp_path)
    run_tool(["git", "config", "user.name", "tests"], tmp_path)
    dvc(tmp_path, "init", "-q")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"count": STAGE}}))
    (tmp_path / "notes.txt").write_text("not the pipeline's")
    run_tool(["git", "add", ".dvc", "dvc.yaml"], tmp_path)
    run_tool(["git", "commit", "-qm", "init"], tmp_path)
    dvc(tmp_path, "repro", "-q")
    return tmp_path


def test_names_are_made_safe_for_git():
    assert experiment_name("brave-lemur") == "brave-lemur"
    assert experiment_name("nightly run: 2026/11/28") == "nightly-run-2026-11-28"
    assert experiment_name("~^:") == "lesson2-run"


def test_saved_experiment_holds_stage_metrics_and_a_taken_name_gets_a_suffix(repo: Path):
    assert untracked_outputs(repo) == [".gitignore", "dvc.lock", "metrics.json"]  # not notes.txt
    assert free_name(repo, "brave-lemur", "0123abcd") == "brave-lemur"
    saved = save_experiment(repo, "brave-lemur", on_line=lambda line: None)
    assert saved.commit == run_tool(["git", "rev-parse", saved.commit], repo).stdout.strip()
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    revs = [rev for b in shown for e in (b.get("experiments") or []) for rev in e["revs"]]
    assert [(r["name"], r["data"]["metrics"]["metrics.json"]["data"]) for r in revs] == [("brave-lemur", {"n": 3})]
    assert free_name(repo, "brave-lemur", "0123abcd") == "brave-lemur-0123abcd"
    assert untracked_outputs(repo) == [".gitignore", "dvc.lock", "metrics.json"]  # the workspace is left as it was


def test_a_workspace_without_commits_is_refused_before_anything_runs(tmp_path: Path):
    run_tool(["git", "init", "-q"], tmp_path)
    with pytest.raises(StageError, match="not a git repository with a commit"):
        head_commit(tmp_path)
