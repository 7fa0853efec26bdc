"""A run with overrides runs in a worktree of the workspace: its changes copied in, DVC's cache shared, then gone."""

import os
from pathlib import Path

import pytest

from flows.run_workspace import RUNS_DIR, copy_changes, local_changes, remove_stale_runs, run_workspace
from tasks.core.errors import StageError
from tests.support.workspace import dvc, run_tool


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC repository with one commit, then changes of every kind: edited, staged, deleted, new, ignored."""
    repo = tmp_path / "ws"
    repo.mkdir()
    run_tool(["git", "init", "-q"], repo)
    run_tool(["git", "config", "user.email", "tests@example.invalid"], repo)
    run_tool(["git", "config", "user.name", "tests"], repo)
    dvc(repo, "init", "-q")
    for name in ("params.yaml", "edited.py", "staged.py", "deleted.py"):
        (repo / name).write_text(f"{name} as committed\n")
    (repo / ".gitignore").write_text("ignored.bin\n")
    run_tool(["git", "add", "-A"], repo)
    run_tool(["git", "commit", "-qm", "init"], repo)
    (repo / "edited.py").write_text("edited\n")
    (repo / "staged.py").write_text("staged\n")
    run_tool(["git", "add", "staged.py"], repo)
    (repo / "deleted.py").unlink()
    (repo / "pkg").mkdir()
    (repo / "pkg" / "new.py").write_text("new\n")
    (repo / "ignored.bin").write_text("not the project's\n")
    return repo


def files(repo: Path) -> dict[str, bytes]:
    """Every file of the workspace but git's and DVC's own, with its bytes."""
    paths = [p.relative_to(repo) for p in repo.rglob("*") if p.is_file()]
    return {str(p): (repo / p).read_bytes() for p in paths if p.parts[0] not in (".git", ".dvc")}


def test_local_changes_are_what_differs_from_head_and_are_copied_over(repo: Path, tmp_path: Path):
    assert local_changes(repo) == ["deleted.py", "edited.py", "pkg/new.py", "staged.py"]
    copy = tmp_path / "copy"
    run_tool(["git", "worktree", "add", "-q", "--detach", str(copy), "HEAD"], repo)
    copy_changes(repo, copy)
    assert {p.name: p.read_text() for p in copy.rglob("*.py")} == {
        "edited.py": "edited\n",
        "staged.py": "staged\n",
        "new.py": "new\n",
    }
    assert not (copy / "ignored.bin").exists()


def test_a_run_with_params_gets_its_own_worktree_sharing_the_cache_and_it_goes_after(repo: Path):
    before = files(repo)
    with run_workspace(repo, "brave-lemur", b"run: params\n") as run_dir:
        assert run_dir == repo / RUNS_DIR / "brave-lemur"
        assert (run_dir / "params.yaml").read_bytes() == b"run: params\n"
        assert (run_dir / "edited.py").read_text() == "edited\n"
        shared = dvc(run_dir, "cache", "dir").stdout.strip()
        assert Path(shared) == (repo / ".dvc" / "cache").resolve()
        assert "brave-lemur" in run_tool(["git", "worktree", "list"], repo).stdout
    assert not run_dir.exists()
    assert len(run_tool(["git", "worktree", "list"], repo).stdout.splitlines()) == 1
    assert files(repo) == before  # params.yaml never written


def test_without_params_the_run_stays_in_the_workspace(repo: Path):
    with run_workspace(repo, "plain", None) as run_dir:
        assert run_dir == repo
    assert not (repo / RUNS_DIR).exists()


def test_a_worktree_left_by_a_killed_run_is_removed_by_the_next(repo: Path):
    stale = repo / RUNS_DIR / "killed-run"
    run_tool(["git", "worktree", "add", "-q", "--detach", str(stale), "HEAD"], repo)
    (stale / "data").mkdir()
    (stale / "data" / "linked").write_text("a cache link")
    os.chmod(stale / "data" / "linked", 0o444)  # DVC makes its cache links read-only
    assert remove_stale_runs(repo) == ["killed-run"]
    assert not stale.exists()
    assert len(run_tool(["git", "worktree", "list"], repo).stdout.splitlines()) == 1
    assert remove_stale_runs(repo) == []


def test_overrides_need_a_commit_to_branch_from(tmp_path: Path):
    run_tool(["git", "init", "-q"], tmp_path)
    with pytest.raises(StageError, match="needs a git checkout with a commit"), run_workspace(tmp_path, "x", b""):
        pass
