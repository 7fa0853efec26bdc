"""Every import of a tasks.* name resolves, including the lazy ones inside functions that only a full run reaches."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for folder in ("tasks", "flows", "bench", "tests") for p in (PROJECT / folder).rglob("*.py"))


def tasks_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) for each absolute import of tasks.* in path."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] == "tasks"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "tasks":
            found += [(node.lineno, node.module, a.name) for a in node.names]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PROJECT).as_posix())
def test_every_tasks_import_resolves(path: Path):
    broken = []
    for line, module, name in tasks_imports(path):
        try:
            imported = importlib.import_module(module)
        except ImportError as err:
            broken.append(f"line {line}: {module}: {err}")
            continue
        if name is not None and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                broken.append(f"line {line}: {module} has no {name}")
    assert broken == []
