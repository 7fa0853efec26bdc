"""Per-run overrides: DVC's `-S` grammar and the typed ParamsOverride, merged and validated as a stage would, and
written into the run's params.yaml as `dvc exp run -S` writes it, comments and layout kept."""

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import apply_overrides as dvc_apply_overrides
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools import ValidationError, validate

from flows.lesson2 import lesson2, main
from flows.run_params import (
    ParamsOverride,
    params_file,
    parse_set_params,
    read_params_file,
    run_overrides,
    typed_overrides,
    validated_params,
)
from tasks.core.errors import StageError
from tasks.core.params import load_params, parse_params, read_params_text
from tests.support.workspace import PROJECT, project_params

EXPERIMENT = ["train.head=last_layer", "train.phases=[{lr:0.001,epochs:3}]", "clip.bounds=[0.02,0.98]"]


def test_dotted_keys_override_only_what_they_name():
    base = project_params()
    merged, params = validated_params(base, {"train.batch_size": 5, "clip.bounds": [0.02, 0.98]})
    assert params.train.batch_size == 5 and params.clip.bounds == (0.02, 0.98)
    assert merged["train"]["phases"] == base["train"]["phases"]
    assert base["train"]["batch_size"] != 5  # the base mapping is not touched


def test_set_params_are_parsed_with_dvcs_grammar():
    parsed = parse_set_params([*EXPERIMENT, "submit.message='a b: c'", "submit.force=true", "train.head=dense"])
    assert parsed == {
        "train.head": "dense",  # the last one wins, as with `dvc exp run -S`
        "train.phases": [{"lr": 0.001, "epochs": 3}],
        "clip.bounds": [0.02, 0.98],
        "submit.message": "a b: c",
        "submit.force": True,
    }


def test_typed_and_set_overrides_meet_as_the_same_dotted_keys():
    typed = ParamsOverride.model_validate(
        {"train": {"head": "last_layer", "phases": [{"lr": 0.001, "epochs": 3}]}, "clip": {"bounds": [0.02, 0.98]}}
    )
    assert typed_overrides(typed) == parse_set_params(EXPERIMENT)
    assert run_overrides(typed, ["submit.force=true"]) == {**parse_set_params(EXPERIMENT), "submit.force": True}
    with pytest.raises(StageError, match=r"override train\.head is given both in overrides and in set_params"):
        run_overrides(typed, ["train.head=dense"])


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["train.epoch=5"], "override rejected: unknown key train.epoch"),
        (["train.batch_size=five"], "override rejected: train.batch_size must be int"),
        (["split.valid_size=-3"], "override rejected: split.valid_size is -3"),
        (["train.head=resnet"], "override rejected: train.head is 'resnet'; expected one of: linear, last_layer"),
        (["train.phases=[{lr:0.001}]"], r"override rejected: missing key train.phases\[0\].epochs"),
        (["trian.epochs=5"], "params.yaml has no section trian"),
        (["train.batch_size.x=5"], "no section train.batch_size"),
        (["train={epochs:5}"], "names a whole section"),
        (["paths.model=elsewhere.keras"], "paths are not params but lay out the DAG in dvc.yaml's vars"),
        (["train.head=linear,dense"], "is a sweep .several runs.; a run takes one value per key"),
        (["~train.seed"], "deletes train.seed, but every key is required"),
        (["+train.x=1"], "adds a key; params.yaml already has every key a stage reads"),
        (["train.phases=[{lr:0.001,epochs:3}"], r"-S train.phases=\[\{lr:0.001,epochs:3\}: not DVC's -S syntax"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(texts, message):
    with pytest.raises(StageError, match=message):
        validated_params(project_params(), run_overrides(None, texts))


def test_the_run_params_file_is_the_one_dvc_exp_run_s_writes(tmp_path: Path):
    """One grammar: the flow's params.yaml for `-S ...` is byte for byte what `dvc exp run -S ...` makes of it."""
    shutil.copy2(PROJECT / "params.yaml", tmp_path / "params.yaml")
    original, data = read_params_file(tmp_path)
    ours = params_file(original, parse_set_params([*EXPERIMENT, "submit.message='a b: c'"]))
    dvc_apply_overrides(tmp_path / "params.yaml", [*EXPERIMENT, "submit.message='a b: c'"])
    assert ours == (tmp_path / "params.yaml").read_bytes()
    assert yaml.safe_load(ours) == validated_params(data, parse_set_params([*EXPERIMENT, "submit.message='a b: c'"]))[0]


def test_an_override_changes_only_its_own_lines_of_params_yaml(tmp_path: Path):
    """params.yaml is laid out as DVC rewrites it: `dvc exp run -S` keeps every comment and line it does not set."""
    before = (PROJECT / "params.yaml").read_text().splitlines()
    shutil.copy2(PROJECT / "params.yaml", tmp_path / "params.yaml")
    dvc_apply_overrides(tmp_path / "params.yaml", EXPERIMENT)
    after = (tmp_path / "params.yaml").read_text().splitlines()
    assert len(after) == len(before)
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert [new.split("#")[0].strip() for _, new in changed] == ["head: last_layer", "- lr: 0.001", "- 0.02", "- 0.98"]
    assert after[before.index(changed[0][0])].endswith(changed[0][0].split("#", 1)[1])  # train.head's comment kept


def test_a_small_learning_rate_is_written_as_dvc_writes_it_and_the_stages_read_it():
    """The run's params.yaml says 1e-05, as `dvc exp run -S` writes it, and the stages' loader reads a float."""
    written = params_file(
        (PROJECT / "params.yaml").read_bytes(), parse_set_params(["train.phases=[{lr:1e-5,epochs:3}]"])
    )
    assert "  - lr: 1e-05\n" in written.decode()
    assert parse_params(read_params_text(written.decode())).train.phases[0].lr == 1e-5


def flow_schema() -> dict:
    """The parameter schema Prefect registers for the flow's deployments (and draws the UI's form from)."""
    return parameter_schema(lesson2).model_dump_for_openapi()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": {"head": "resnet"}}, "'resnet' is not one of ['linear', 'last_layer', 'dense', 'conv']"),
        ({"train": {"batch_size": 0}}, "0 is less than the minimum of 1"),
        ({"train": {"phases": [{"lr": 0.001}]}}, "'epochs' is a required property"),
        ({"train.head": "last_layer"}, "('train.head' was unexpected)"),
        ({"paths": {"model": "elsewhere.keras"}}, "('paths' was unexpected)"),
        ({"features": {"xla": "yes"}}, "'overrides.features.xla'. Failure reason: 'yes' is not valid"),
    ],
)
def test_prefect_refuses_a_bad_typed_override_with_the_flows_schema(overrides, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        validate({"overrides": overrides}, flow_schema(), raise_on_error=True)


def test_the_nightly_deployments_overrides_fit_the_schema_and_the_params():
    (nightly,) = [
        d for d in yaml.safe_load((PROJECT / "prefect.yaml").read_text())["deployments"] if "gpu" in d["name"]
    ]
    validate(nightly["parameters"], flow_schema(), raise_on_error=True)
    overrides = typed_overrides(ParamsOverride.model_validate(nightly["parameters"]["overrides"]))
    _, params = validated_params(project_params(), overrides)
    assert params.download.source == "kaggle" and params.features.weights == "imagenet"


def test_the_command_line_refuses_a_bad_s_before_any_prefect_server_starts(tmp_path, monkeypatch, capsys):
    shutil.copy2(PROJECT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setattr(sys, "argv", ["flows.lesson2", str(tmp_path), "-S", "train.head=resnet"])
    with pytest.raises(SystemExit) as exit_status:
        main()
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        "override rejected: train.head is 'resnet'; expected one of: linear, last_layer, dense, conv\n"
    )


def test_dvcs_s_writes_a_small_float_that_the_stages_read_as_one(tmp_path: Path):
    """`dvc exp run -S` writes lr 1e-5 as 1e-05 (no dot), which YAML 1.1 reads as text; the stages read a float."""
    shutil.copy2(PROJECT / "params.yaml", tmp_path / "params.yaml")
    dvc_apply_overrides(tmp_path / "params.yaml", ["train.phases=[{lr:1e-5,epochs:3}]"])
    assert "  - lr: 1e-05\n" in (tmp_path / "params.yaml").read_text()
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["train"]["phases"][0]["lr"] == "1e-05"
    assert load_params(tmp_path / "params.yaml").train.phases[0].lr == 1e-5


def test_a_typed_override_is_checked_key_by_key_as_the_run_starts():
    """What the JSON schema can't say (a VGG16 cut, a size VGG16 can halve) Prefect checks with the params' rules."""
    with pytest.raises(ParameterTypeError, match=r"overrides.features.image_size: features.image_size is 33; it must"):
        lesson2.validate_parameters({"overrides": {"features": {"image_size": 33}}})
    validated = lesson2.validate_parameters({"overrides": {"train": {"head": "last_layer"}}})
    assert typed_overrides(validated["overrides"]) == {"train.head": "last_layer"}


def test_a_shard_count_set_with_s_adds_only_its_items_to_params_yaml(tmp_path: Path):
    """`dvc exp run -S 'features.shards=[0,1]'` (and the flow's -S) writes the list in block style, one line added."""
    before = (PROJECT / "params.yaml").read_text().splitlines()
    shutil.copy2(PROJECT / "params.yaml", tmp_path / "params.yaml")
    original, _ = read_params_file(tmp_path)
    dvc_apply_overrides(tmp_path / "params.yaml", ["features.shards=[0,1]"])
    after = (tmp_path / "params.yaml").read_text().splitlines()
    at = before.index("  shards:")
    assert after == [*before[: at + 2], "  - 1", *before[at + 2 :]] and before[at + 1] == "  - 0"
    assert params_file(original, parse_set_params(["features.shards=[0,1]"])) == (tmp_path / "params.yaml").read_bytes()
    assert load_params(tmp_path / "params.yaml").features.shards == (0, 1)
