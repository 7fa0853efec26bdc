"""Per-run overrides of params.yaml: dotted keys merged, validated as a stage would, put back after the run."""

from pathlib import Path

import pytest
import yaml

from flows.run_params import apply_overrides, params_in_place, read_params_file, validated_params
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
        ({"paths.model": "elsewhere.keras"}, "the paths section lays out the DAG"),
        ({"train..epochs": 5}, "not a dotted params.yaml key"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(overrides, message):
    with pytest.raises(StageError, match=message):
        validated_params(project_params(), overrides)


def test_params_file_is_replaced_for_the_run_and_restored_byte_for_byte(tmp_path: Path):
    original = b"# a comment the run must not lose\n" + yaml.safe_dump(project_params()).encode()
    (tmp_path / "params.yaml").write_bytes(original)
    read_back, data = read_params_file(tmp_path)
    assert read_back == original
    merged = apply_overrides(data, {"train.batch_size": 7})
    with params_in_place(tmp_path, original, merged, overridden=True):
        assert yaml.safe_load((tmp_path / "params.yaml").read_text())["train"]["batch_size"] == 7
    assert (tmp_path / "params.yaml").read_bytes() == original


def test_params_file_is_restored_when_the_run_fails(tmp_path: Path):
    original = yaml.safe_dump(project_params()).encode()
    (tmp_path / "params.yaml").write_bytes(original)
    with pytest.raises(RuntimeError), params_in_place(tmp_path, original, {"train": {}}, overridden=True):
        raise RuntimeError("stage failed")
    assert (tmp_path / "params.yaml").read_bytes() == original
