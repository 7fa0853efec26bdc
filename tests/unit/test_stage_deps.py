"""Each stage's code deps in dvc.yaml are exactly its import closure under tasks/, computed from the code.

A missing dep is a stale result nobody sees; an extra one reruns a stage (the conv pass: 40 minutes) for nothing.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
STAGE_CMD = re.compile(r"^python -m (tasks\.\w+)(?: \d+)?$")  # foreach stages pass their item


def module_path(root: Path, dotted: str) -> Path | None:
    """The file that defines a dotted module name under root, or None when it is not a module of ours."""
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, root: Path) -> set[str]:
    """Every tasks.* module path imports, at the top or inside a function; `from a import b` may name module a.b."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {n for n in names if n == "tasks" or n.startswith("tasks.")}


def import_closure(root: Path, module: str) -> set[str]:
    """The files (posix, relative to root) that running `python -m module` executes under tasks/.

    Package __init__ files are left out: test_package_inits_are_empty keeps them free of code.
    """
    start = module_path(root, module)
    assert start is not None, f"{module} has no file under {root}"
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path, root):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
                found = module_path(root, ".".join(parts[:i]))
                if found is not None:
                    todo.append(found)
    return {p.relative_to(root).as_posix() for p in seen if p.name != "__init__.py"}


def stage_code_deps(root: Path) -> dict[str, tuple[str, list[str]]]:
    """Each stage of dvc.yaml (resolved by DVC itself) -> its module and its deps under tasks/."""
    from dvc.repo import Repo

    stages = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            match = STAGE_CMD.match(stage.cmd)
            assert match, f"stage {stage.name}: cmd {stage.cmd!r} is not `python -m tasks.<stage>`"
            deps = [d.def_path.rstrip("/") for d in stage.deps if d.def_path.startswith("tasks/")]
            stages[stage.name] = (match.group(1), deps)
    return stages


def drift(root: Path) -> list[str]:
    """One line per stage whose code deps differ from its import closure, naming the stage and each file."""
    problems = []
    for stage, (module, deps) in stage_code_deps(root).items():
        needed = import_closure(root, module)
        covered: set[str] = set()
        for dep in deps:
            if (root / dep).is_dir():  # a package folder stands for its modules, only when the stage needs them all
                files = {p.relative_to(root).as_posix() for p in (root / dep).rglob("*.py") if p.name != "__init__.py"}
                unused = sorted(files - needed)
                if unused:
                    problems.append(f"stage {stage}: dvc.yaml lists {dep}/, but {', '.join(unused)} is not imported")
                covered |= files
            elif dep in needed:
                covered.add(dep)
            else:
                problems.append(f"stage {stage}: dvc.yaml lists {dep}, which {module} does not import")
        problems += [
            f"stage {stage}: {module} imports {path}, which dvc.yaml does not list as a dep"
            for path in sorted(needed - covered)
        ]
    return problems


def test_every_stage_lists_exactly_its_import_closure():
    assert drift(PROJECT) == []


def test_a_removed_dep_is_named_with_its_stage(tmp_path: Path):
    for name in ("tasks", "dvc.yaml", "params.yaml", ".dvc", ".dvcignore"):
        source = PROJECT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # DVC opens a repo inside a git checkout
    dvc_yaml = tmp_path / "dvc.yaml"
    text = dvc_yaml.read_text()
    line = "      - tasks/photos/manifest.py\n"
    split_block = text.index("\n  split:\n")  # the stage, not the path of the same name in vars
    at = text.index(line, split_block)
    dvc_yaml.write_text(text[:at] + text[at + len(line) :])
    assert drift(tmp_path) == [
        "stage split: tasks.split imports tasks/photos/manifest.py, which dvc.yaml does not list as a dep"
    ]
    (tmp_path / "tasks" / "split.py").write_text('"""Imports nothing now."""\n')
    assert "stage split: dvc.yaml lists tasks/photos/class_balance.py, which tasks.split does not import" in drift(
        tmp_path
    )


def test_package_inits_are_empty():
    # An __init__ runs whenever its package is imported, yet no stage lists it: it must hold nothing that matters.
    assert [p for p in (PROJECT / "tasks").rglob("__init__.py") if p.stat().st_size] == []


def test_tasks_top_level_holds_the_stages_and_no_stage_imports_another():
    stages = stage_code_deps(PROJECT)
    modules = {module.removeprefix("tasks.") for module, _ in stages.values()}
    # a foreach stage's items (features@0, features@1, ...) share its module
    assert {name.split("@")[0] for name in stages} == modules, "each stage's module is named for the stage"
    top_level = {p.stem for p in (PROJECT / "tasks").glob("*.py") if p.name != "__init__.py"}
    assert top_level == modules, "tasks/*.py holds the stages dvc.yaml runs and nothing else"
    for stage in {name.split("@")[0] for name in stages}:
        others = {f"tasks/{m}.py" for m in modules - {stage}}
        assert import_closure(PROJECT, f"tasks.{stage}") & others == set(), f"stage {stage} imports another stage"
