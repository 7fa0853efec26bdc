"""bench/ stands alone: it imports no test helper and no private name of tasks/, and runs without ../shared."""

from __future__ import annotations

import ast
import importlib
import zipfile
from pathlib import Path

import pytest

import bench.photos
from bench.photos import REAL_SAMPLE, bench_archive, photo_source
from tasks.competition.archive import TEST_ZIP, TRAIN_ZIP

BENCH = Path(__file__).resolve().parents[2] / "bench"


def forbidden_imports(source: str) -> list[str]:
    """What source imports that bench may not: anything from tests, or an underscored name inside tasks."""
    found = []
    tasks_modules: set[str] = set()  # local names bound to a tasks module, whose underscored attributes are private
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tests" or (parts[0] == "tasks" and any(p.startswith("_") for p in parts)):
                    found.append(alias.name)
                elif parts[0] == "tasks":
                    tasks_modules.add(alias.asname or "tasks")
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "tests":
                found.append(node.module)
            elif parts[0] == "tasks":
                found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
                found += [node.module] if any(p.startswith("_") for p in parts) else []
                tasks_modules |= {a.asname or a.name for a in node.names}
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in tasks_modules
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_the_check_catches_each_kind_of_forbidden_import():
    """The check itself: every way bench used to (or could) reach into tests/ or a private name is caught."""
    source = (
        "from tests.support.workspace import dvc\nimport tests.support.photos\n"
        "from tasks.features import Photo, _batches\nimport tasks.features as f\nf._decode\n"
        "from tasks import features\nfeatures._batches\n"
    )
    assert sorted(forbidden_imports(source)) == [
        "f._decode",
        "features._batches",
        "tasks.features._batches",
        "tests.support.photos",
        "tests.support.workspace",
    ]
    assert forbidden_imports("from tasks.features import Photo, preprocessed_batches\nimport numpy as np\n") == []


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_bench_imports_no_test_helper_and_no_private_name(path: Path):
    assert forbidden_imports(path.read_text()) == []
    importlib.import_module(f"bench.{path.stem}")  # and it imports without tests/ on hand


def test_without_shared_the_bench_makes_synthetic_photos_in_a_new_scratch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A fresh clone with no ../shared: synthetic photos, written into a scratch folder that does not exist yet."""
    monkeypatch.setattr(bench.photos, "SYNTHETIC_PER_CLASS", 2)  # the choice, not the photo count, is under test
    monkeypatch.setattr(bench.photos, "SYNTHETIC_TEST", 1)
    source = photo_source(tmp_path / "clone")
    assert source.real_archive is None
    assert source.description.startswith("synthetic")
    archive = bench_archive(tmp_path / "scratch" / "photos", source)
    with zipfile.ZipFile(archive) as outer:
        assert {TRAIN_ZIP, TEST_ZIP} <= set(outer.namelist())


def test_with_shared_the_bench_uses_the_real_sample_in_place(tmp_path: Path):
    real = tmp_path / REAL_SAMPLE
    real.parent.mkdir(parents=True)
    real.write_bytes(b"stands in for the real archive")
    source = photo_source(tmp_path / "clone")
    assert source.real_archive == real
    assert source.description.startswith("real Kaggle photos")
    assert bench_archive(tmp_path / "scratch", source) == real
