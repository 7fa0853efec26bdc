"""Fixtures shared by every tier, and the tiers themselves: tests outside tests/unit are marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.workspace import make_workspace

pytest_plugins = ["tests.support.kaggle_fixtures", "tests.support.s3_remote"]
FAST_TIER = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test outside tests/unit slow, so `pytest -m "not slow"` runs the fast tier alone."""
    for item in items:
        if FAST_TIER not in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A scratch project workspace with tiny params."""
    return make_workspace(tmp_path / "ws")


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory):
    """An isolated Prefect API (temporary PREFECT_HOME and database) for one test module's flow runs."""
    home = tmp_path_factory.mktemp("prefect-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(home))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    patch.undo()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test with tmp_path as the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
