"""Per-run overrides of params.yaml: dotted keys merged and validated as a stage would, for the run's worktree."""

from pathlib import Path

import pytest
import yaml

from flows.run_params import apply_overrides, params_file, read_params_file, validated_params
from tasks.core.errors import StageError
from tests.support.workspace import project_params


def test_dotted_keys_override_only_what_they_name():
    base = project_params()
    merged, params = validated_params(base, {"train.batch_size": 5, "clip.bounds": [0.02, 0.98]})
    assert params.train.batch_size == 5 and params.clip.bounds == (0.02, 0.98)
    assert merged["train"]["phases"] == base["train"]["phases"]
    assert base["train"]["batch_size"] != 5  # the base mapping is not touched


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.epoch": 5}, "override rejected: unknown key train.epoch"),
        ({"train.batch_size": "five"}, "override rejected: train.batch_size must be int"),
        ({"split.valid_size": -3}, "override rejected: split.valid_size is -3"),
        ({"trian.epochs": 5}, "params.yaml has no section trian"),
        ({"train.batch_size.x": 5}, "no section train.batch_size"),
        ({"train": {"epochs": 5}}, "names a whole section"),
        ({"paths.model": "elsewhere.keras"}, "paths are not params but lay out the DAG in dvc.yaml's vars"),
        ({"train..epochs": 5}, "not a dotted params.yaml key"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(overrides, message):
    with pytest.raises(StageError, match=message):
        validated_params(project_params(), overrides)


def test_the_merged_params_file_holds_the_overrides_in_params_order(tmp_path: Path):
    original = b"# a comment\n" + yaml.safe_dump(project_params(), sort_keys=False).encode()
    (tmp_path / "params.yaml").write_bytes(original)
    read_back, data = read_params_file(tmp_path)
    assert read_back == original
    written = yaml.safe_load(params_file(apply_overrides(data, {"train.batch_size": 7})))
    assert written["train"]["batch_size"] == 7 and list(written) == list(data)
    assert (tmp_path / "params.yaml").read_bytes() == original  # the workspace's file is only read
