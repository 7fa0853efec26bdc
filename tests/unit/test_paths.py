"""Where the stages read and write: dvc.yaml's `vars`, loaded with one line per problem, and each stage's own."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from tasks.core.errors import StageError
from tasks.core.paths import DVC_FILE, VARS_KEY, Paths, load_paths, parse_paths
from tests.support.workspace import PROJECT

DVC_YAML = yaml.safe_load((PROJECT / DVC_FILE).read_text())
# Paths a stage opens without templating them in its dvc.yaml entry, and why a changed one needs no rerun of it.
UNTEMPLATED = {
    # the photos, found through the split manifest (a dep), whose md5s pin their bytes wherever they are
    ("features", "organized"),
    # only the prefix of the features index's paths, dropped to name each photo in the photo store (a dep): predict
    # opens nothing under it
    ("predict", "organized"),
}


def with_paths(paths: object) -> dict:
    """The project's dvc.yaml with paths as its vars' `paths`."""
    return DVC_YAML | {"vars": [{VARS_KEY: paths}]}


def refusal(data: object) -> str:
    with pytest.raises(StageError) as err:
        parse_paths(data)
    return str(err.value)


def test_the_project_declares_every_path_once_in_dvc_yamls_vars():
    paths = load_paths(PROJECT / DVC_FILE)
    assert paths.model == "models/head.keras" and paths.metrics == "metrics"
    assert DVC_YAML["vars"] == [{VARS_KEY: paths.model_dump()}]
    assert VARS_KEY not in yaml.safe_load((PROJECT / "params.yaml").read_text())


def test_each_problem_is_one_line_naming_the_key():
    paths = load_paths(PROJECT / DVC_FILE).model_dump()
    del paths["model"]
    assert refusal(with_paths(paths | {"modle": "m.keras", "metrics": 3})).splitlines() == [
        "dvc.yaml: missing key paths.model: add it to the paths of dvc.yaml's vars",
        "dvc.yaml: paths.metrics must be a path (text), got 3",
        f"dvc.yaml: unknown key paths.modle; known keys here: {', '.join(Paths.model_fields)}",
    ]
    assert refusal(with_paths(["models"])) == "dvc.yaml: paths must be a mapping of names to paths, got ['models']"


@pytest.mark.parametrize("data", [{"stages": {}}, {"vars": ["params.yaml"]}, None])
def test_a_dvc_yaml_without_its_paths_is_refused(data: object):
    assert refusal(data) == (
        "dvc.yaml: its vars must hold one `paths` mapping (where each stage reads and writes), found 0: "
        "restore it from the project's dvc.yaml"
    )


def test_a_stage_run_outside_the_project_is_told_where_to_run(tmp_path: Path):
    with pytest.raises(StageError, match=r"^.*dvc.yaml not found: run stages from the project root$"):
        load_paths(tmp_path / DVC_FILE)


def _paths_read(stage: str) -> set[str]:
    """The path names tasks/<stage>.py reads: `paths.x` and `load_paths().x`."""
    tree = ast.parse((PROJECT / "tasks" / f"{stage}.py").read_text())
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (
            (isinstance(node.value, ast.Name) and node.value.id == "paths")
            or (isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "load_paths")
        )
    }


@pytest.mark.parametrize("stage", list(DVC_YAML["stages"]))
def test_each_path_a_stage_opens_is_in_its_dvc_yaml_entry(stage: str):
    """No stage depends on dvc.yaml: a changed path reruns exactly the stages whose entry templates it."""
    templated = set(re.findall(r"\$\{paths\.(\w+)\}", yaml.safe_dump(DVC_YAML["stages"][stage])))
    read = _paths_read(stage)
    assert read, f"found no path read by tasks/{stage}.py: has _paths_read stopped matching?"
    assert read - templated == {key for name, key in UNTEMPLATED if name == stage}
