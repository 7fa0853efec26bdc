"""docs/own-dataset.md's examples are params a stage loads: each YAML block, set over params.yaml, passes the checks
params.yaml gets at load (tasks/core/params.py), and the CT-scan recipe's -S keys are params.yaml's own."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tasks.core.params import parse_params
from tests.support.workspace import PROJECT, merged

PAGE = PROJECT / "docs" / "own-dataset.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", PAGE.read_text(), re.DOTALL | re.MULTILINE)


def test_the_page_has_its_three_worked_examples():
    sources = [yaml.safe_load(block)["download"]["source"] for block in yaml_blocks()]
    assert sources == ["folder", "archive", "kaggle"]


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda block: yaml.safe_load(block)["download"]["source"])
def test_each_worked_example_loads_as_params(block: str):
    params = merged(yaml.safe_load((PROJECT / "params.yaml").read_text()), yaml.safe_load(block))
    parse_params(params)  # raises StageError naming the key when the page shows params that can't run


def test_the_ct_scan_recipe_sets_only_keys_params_yaml_has():
    recipe = re.search(r"<!-- ct-recipe -->\s*```\w*\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert recipe, "docs/own-dataset.md lost its CT-scan recipe block (after <!-- ct-recipe -->)"
    words = shlex.split(recipe.group(1))
    settings = [words[i + 1] for i, word in enumerate(words) if word == "-S"]
    assert len(settings) >= 4
    params: dict = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for setting in settings:
        key, value = setting.split("=", 1)
        section = params
        *parents, leaf = key.split(".")
        for part in parents:
            section = section[part]
        assert leaf in section, f"{key} is not a key of params.yaml"
        section[leaf] = yaml.safe_load(value)
    parse_params(params)
