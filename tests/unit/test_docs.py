"""README.md and docs/*.md name only what exists: files, `python -m` modules, `make` targets, tests, links, the DAG.

Docs rot silently when code moves (the layout move left `tests/test_deployments.py` and the like behind); these
checks read the docs as a newcomer would follow them and fail naming the doc, the line and the missing thing.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
DOCS = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
OUR_PACKAGES = {"tasks", "flows", "bench", "tests"}

# A path into the project's own folders; not one inside a URL or another path (`~/x/tasks/...`).
PATH = re.compile(r"(?<![\w/.~-])(?:tasks|flows|tests|bench|docs)/[\w./-]*\w")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
PYTHON_M = re.compile(r"(?<![\w/.-])(python3?|\.venv/bin/python) -m ([\w.<>]*\w>?)")
MAKE = re.compile(r"(?<![\w-])make ([\w-]+)")
TEST_REF = re.compile(r"(tests/[\w/]+\.py)?::(test_\w+)")
BARE_TEST_FILE = re.compile(r"(?<![\w/])test_\w+\.py")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MERMAID_EDGE = re.compile(r"^\s*(\w+)\s*-->\s*(\w+)\s*$", re.MULTILINE)
# A node whose stage name mermaid can't take as an id (features@0): `features0["features@0"]`.
MERMAID_NODE = re.compile(r'^\s*(\w+)\["([^"]+)"\]\s*$', re.MULTILINE)


def line_of(text: str, offset: int) -> int:
    """The 1-based line number of a character offset."""
    return text.count("\n", 0, offset) + 1


def code_spans(text: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every fenced block and inline code span: where the docs show commands."""
    for block in FENCE.finditer(text):
        yield line_of(text, block.start(1)), block.group(1)
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # blank the fences, keep line numbers
    for span in INLINE.finditer(prose):
        yield line_of(prose, span.start(2)), span.group(2)


def where(doc: Path, line: int) -> str:
    """doc:line, relative to the project."""
    return f"{doc.relative_to(PROJECT)}:{line}"


def makefile_targets() -> set[str]:
    """The targets the Makefile defines."""
    return set(re.findall(r"^([\w-]+):", (PROJECT / "Makefile").read_text(), re.MULTILINE))


def bootstrap_modules() -> set[str]:
    """Modules the Makefile runs with the system python3 (uv and pip bootstrap the venv; they are not in it)."""
    return set(re.findall(r"\$\(BOOTSTRAP_PYTHON\) -m ([\w.]+)", (PROJECT / "Makefile").read_text()))


def module_exists(dotted: str) -> bool:
    """Whether `python -m dotted` finds a file: ours under the project, others in this interpreter's packages."""
    top, *rest = dotted.split(".")
    if top in OUR_PACKAGES:
        roots = [PROJECT / top]
    else:
        spec = importlib.util.find_spec(top)  # a top-level spec is found without importing the package
        if spec is None:
            return False
        if not rest:
            return True
        roots = [Path(p) for p in spec.submodule_search_locations or []]
    for root in roots:
        base = root.joinpath(*rest)
        if base.with_suffix(".py").is_file() or (base / "__main__.py").is_file():
            return True
    return False


def test_paths_named_in_the_docs_exist() -> None:
    """Every tasks/, flows/, tests/, bench/ and docs/ path in the docs is a file or folder of the project."""
    named, missing = 0, []
    for doc in DOCS:
        text = doc.read_text()
        for match in PATH.finditer(text):
            named += 1
            if not (PROJECT / match.group(0)).exists():
                missing.append(f"{where(doc, line_of(text, match.start()))}: {match.group(0)} does not exist")
    assert named > 10, "no project paths found in the docs: has PATH stopped matching?"
    assert not missing, "\n".join(missing)


def test_python_modules_run_in_the_docs_exist() -> None:
    """Every `python -m X` the docs show names a module with a file; `python3 -m` only what the Makefile bootstraps."""
    bootstrap = bootstrap_modules()
    shown, missing = 0, []
    for doc in DOCS:
        for line, code in code_spans(doc.read_text()):
            for match in PYTHON_M.finditer(code):
                shown += 1
                interpreter, module = match.groups()
                if "<" in module:  # a placeholder, as in `python -m tasks.<stage>`
                    continue
                found = module in bootstrap if interpreter == "python3" else module_exists(module)
                if not found:
                    missing.append(f"{where(doc, line)}: `{match.group(0)}`: no such module for {interpreter}")
    assert shown > 5, "no `python -m` commands found in the docs: has PYTHON_M stopped matching?"
    assert not missing, "\n".join(missing)


def test_make_targets_in_the_docs_exist() -> None:
    """Every `make X` the docs show is a Makefile target."""
    targets = makefile_targets()
    shown, missing = set(), []
    for doc in DOCS:
        for line, code in code_spans(doc.read_text()):
            for target in MAKE.findall(code):
                shown.add(target)
                if target not in targets:
                    missing.append(f"{where(doc, line)}: `make {target}`: the Makefile has no such target")
    assert {"run", "test", "test-fast"} <= shown, f"the docs must show make run, test and test-fast; found {shown}"
    assert not missing, "\n".join(missing)


def test_tests_cited_in_the_docs_exist() -> None:
    """Every `tests/x.py::test_y` the docs cite is defined there; `::test_z` after it means the same file."""
    cited, problems = 0, []
    for doc in DOCS:
        text = doc.read_text()
        for number, row in enumerate(text.splitlines(), start=1):
            problems += [
                f"{where(doc, number)}: {bare} lacks its folder: write tests/<tier>/{bare}"
                for bare in BARE_TEST_FILE.findall(PATH.sub("", row))
            ]
            current: str | None = None  # a bare ::name continues the file named last on the same line
            for match in TEST_REF.finditer(row):
                cited += 1
                current = match.group(1) or current
                name = match.group(2)
                if current is None:
                    problems.append(f"{where(doc, number)}: ::{name} names no file before it")
                elif not (PROJECT / current).is_file():
                    problems.append(f"{where(doc, number)}: {current} does not exist")
                elif not re.search(rf"^\s*def {name}\(", (PROJECT / current).read_text(), re.MULTILINE):
                    problems.append(f"{where(doc, number)}: {current} defines no {name}")
    assert cited > 10, "no tests cited in the docs: has TEST_REF stopped matching?"
    assert not problems, "\n".join(problems)


def test_links_between_docs_resolve() -> None:
    """Every relative link in the docs points at a file or folder that exists; the README links every docs page."""
    missing = []
    readme_links: set[Path] = set()
    for doc in DOCS:
        text = doc.read_text()
        for match in LINK.finditer(text):
            target = match.group(1).split("#")[0]
            if not target or re.match(r"\w+:", target):  # an anchor on the same page, or a URL
                continue
            resolved = (doc.parent / target).resolve()
            if doc.name == "README.md":
                readme_links.add(resolved)
            if not resolved.exists():
                missing.append(f"{where(doc, line_of(text, match.start()))}: link {target} goes nowhere")
    unlinked = [str(d.relative_to(PROJECT)) for d in DOCS[1:] if d.resolve() not in readme_links]
    assert len(DOCS) > 1, "no docs/*.md pages found"
    assert not missing, "\n".join(missing)
    assert not unlinked, f"README.md links none of: {unlinked}"


def test_the_readmes_dag_is_dvcs_graph() -> None:
    """The mermaid DAG in README.md has exactly the edges DVC's own graph has."""
    from flows.dvc_stages import stage_graph  # DVC's graph of dvc.yaml, as the flow reads it

    blocks = re.findall(r"^```mermaid\n(.*?)^```", (PROJECT / "README.md").read_text(), re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, f"README.md should hold one mermaid block, found {len(blocks)}"
    named = dict(MERMAID_NODE.findall(blocks[0]))
    drawn = {(named.get(up, up), named.get(down, down)) for up, down in MERMAID_EDGE.findall(blocks[0])}
    dvc = {(up, down) for down, ups in stage_graph(PROJECT).items() for up in ups}
    assert drawn == dvc, f"README.md's DAG lacks {sorted(dvc - drawn)} and has extra {sorted(drawn - dvc)}"


def test_deployments_named_in_the_docs_exist() -> None:
    """Every `lesson2/<name>` deployment and `prefect deploy --name <name>` in the docs is in prefect.yaml."""
    deployments = {d["name"] for d in yaml.safe_load((PROJECT / "prefect.yaml").read_text())["deployments"]}
    shown, missing = 0, []
    for doc in DOCS:
        for line, code in code_spans(doc.read_text()):
            for name in re.findall(r"lesson2/([\w-]+)|prefect deploy --name ([\w-]+)", code):
                shown += 1
                name = name[0] or name[1]
                if name not in deployments:
                    missing.append(f"{where(doc, line)}: deployment {name} is not in prefect.yaml ({deployments})")
    assert shown > 0, "no deployments named in the docs: has the pattern stopped matching?"
    assert not missing, "\n".join(missing)
