"""params.yaml is validated at load time, with messages that name the key."""
from pathlib import Path

import pytest
import yaml

from tasks.core.errors import StageError
from tasks.core.params import load_params, parse_params
from tests.support.workspace import PROJECT, merge


def project_yaml() -> dict:
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def test_project_params_load_into_typed_values():
    params = load_params(PROJECT / "params.yaml")
    assert params.download.source == "synthetic"
    assert params.features.weights == "none"
    assert params.clip.bounds == (0.05, 0.95)
    assert params.train.phases[0].lr == 0.1 and isinstance(params.train.phases[0].lr, float)
    assert params.train.head == "linear" and params.features.layer == "block5_pool"
    assert parse_params(merge(project_yaml(), {"clip": {"bounds": "auto"}})).clip.bounds == "auto"
    assert params.features.image_size == 224
    assert parse_params(merge(project_yaml(), {"features": {"image_size": 32}})).features.image_size == 32


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train": {"epocs": 3}}, "unknown key train.epocs"),
        ({"trian": {}}, "unknown key trian"),
        ({"train": {"phases": [{"lr": 0.1, "epochs": "three"}]}}, "train.phases[0].epochs must be int"),
        ({"train": {"phases": [{"lr": 0.1, "epochs": True}]}}, "train.phases[0].epochs must be int"),
        ({"train": {"optimizer": "adagrad"}}, "train.optimizer is 'adagrad'"),
        ({"download": {"source": "ftp"}}, "download.source is 'ftp'"),
        ({"split": {"valid_size": -1}}, "split.valid_size is -1"),
        ({"clip": {"bounds": [0.9, 0.1]}}, "clip.bounds is [0.9, 0.1]"),
        ({"clip": {"bounds": [0.1]}}, "clip.bounds must be a list of 2"),
        ({"train": {"phases": [{"lr": 0.1, "epochs": 2}, {"lr": 0, "epochs": 1}]}}, "train.phases[1].lr is 0"),
        ({"train": {"phases": []}}, "train.phases must be a non-empty list"),
        ({"train": {"phases": [{"lr": 0.01}]}}, "missing key train.phases[0].epochs"),
        ({"train": {"phases": [{"lr": 0.1, "epochs": 0}]}}, "train.phases[0].epochs is 0"),
        ({"train": {"head": "resnet"}}, "train.head is 'resnet'"),
        ({"clip": {"bounds": "best"}}, "expected one of: auto"),
        ({"download": {"source": "archive", "archive_path": ""}}, "download.archive_path is empty"),
        ({"features": {"image_size": 100}}, "features.image_size is 100; it must be a multiple of 32"),
        ({"features": {"image_size": 0}}, "features.image_size is 0; it must be a multiple of 32 and at least 32"),
        ({"features": {"image_size": 64.0}}, "features.image_size must be int"),
        ({"features": {"weights": "imagenet", "image_size": 64}},
         "features.image_size is 64 but features.weights is 'imagenet', whose dense layers expect 224"),
    ],
)
def test_bad_params_are_rejected_naming_the_key(override, message):
    with pytest.raises(StageError) as err:
        parse_params(merge(project_yaml(), override))
    assert message in str(err.value)


def test_missing_and_malformed_files_are_explained(tmp_path: Path):
    with pytest.raises(StageError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(StageError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
