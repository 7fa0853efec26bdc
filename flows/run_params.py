"""Per-run overrides of params.yaml keys: DVC's `-S` grammar or the typed ParamsOverride, merged and validated before
any stage runs, and written into the run's own params.yaml with its comments and layout kept."""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, create_model

from tasks.core.errors import StageError
from tasks.core.params import PARAMS_FILE, Params, Section, parse_params, read_params_text

# Not params: dvc.yaml's vars declare the paths that lay out the DAG; moving outputs changes the project, not a run.
FIXED_SECTIONS = frozenset({"paths"})
EXAMPLE = "-S train.head=last_layer -S 'train.phases=[{lr:0.001,epochs:3}]'"


def partial_model(model: type[BaseModel]) -> type[BaseModel]:
    """model with every field optional (None keeps params.yaml's value), its sections likewise; FIXED_SECTIONS left out.

    Each field keeps its type and constraints (enums, ranges, single-key checks), so Prefect's parameter schema is
    params.yaml's own; the rules between keys run on the merged params. A list (train.phases) is replaced whole.
    """
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if model is Params and name in FIXED_SECTIONS:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            annotation = partial_model(annotation)
        elif field.metadata:
            annotation = Annotated[(annotation, *field.metadata)]
        fields[name] = (annotation | None, None)
    config = ConfigDict(extra="forbid", frozen=True)
    return create_model(f"{model.__name__.removesuffix('Params') or 'Params'}Override", __config__=config, **fields)


# The flow's typed `overrides` parameter: params.yaml's sections and keys, all optional (Prefect's form and schema).
ParamsOverride = partial_model(Params)


def _dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as dotted keys: {"train": {"head": "x"}} -> {"train.head": "x"}; lists are values."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def typed_overrides(overrides: BaseModel | None) -> dict[str, Any]:
    """The keys a ParamsOverride sets, dotted, with plain values (lists, not tuples)."""
    if overrides is None:
        return {}
    return _dotted(overrides.model_dump(mode="json", exclude_none=True))


def parse_set_params(texts: Sequence[str]) -> dict[str, Any]:
    """`dvc exp run -S` overrides (Hydra's grammar, parsed by DVC's own parser) as dotted keys; the last one wins."""
    from dvc.utils.hydra import to_hydra_overrides  # DVC and Hydra are heavy to import; only a run needs them
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    parsed: dict[str, Any] = {}
    for text in texts:
        try:
            (override,) = to_hydra_overrides([text])
        except HydraException as err:
            reason = str(err).splitlines()[0].removeprefix(f"Error parsing override '{text}'").strip()
            raise StageError(
                f"-S {text}: not DVC's -S syntax ({reason or 'see hydra.cc override grammar'}); e.g. {EXAMPLE}"
            ) from None
        key = override.key_or_group
        if override.type is OverrideType.DEL:
            raise StageError(f"-S {text} deletes {key}, but every key is required (the code holds no defaults)")
        if override.type is OverrideType.ADD:
            raise StageError(f"-S {text} adds a key; params.yaml already has every key a stage reads: -S {text[1:]}")
        if override.is_sweep_override():
            raise StageError(
                f"-S {text} is a sweep (several runs); a run takes one value per key: start one run per value, "
                "or queue them with `dvc exp run --queue -S ...`"
            )
        parsed[key] = override.value()
    return parsed


def run_overrides(overrides: BaseModel | None, set_params: Sequence[str] | None) -> dict[str, Any]:
    """One run's overrides as dotted keys: the typed ones and the `-S` ones; a key given in both is refused."""
    typed, texts = typed_overrides(overrides), parse_set_params(set_params or ())
    twice = sorted(typed.keys() & texts.keys())
    if twice:
        raise StageError(f"override {twice[0]} is given both in overrides and in set_params (-S): give it once")
    return typed | texts


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of params with each dotted key of overrides (e.g. 'train.head') set to its value."""
    merged = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        node, last = _holder(merged, key)
        if isinstance(node.get(last), dict):
            raise StageError(f"override {key} names a whole section; override its keys one by one")
        node[last] = value
    return merged


def _holder(params: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    """The section that holds dotted key, and the key's last part; StageError unless params has that section."""
    parts = key.split(".")
    if not key or "" in parts:
        raise StageError(f"override {key!r} is not a dotted params.yaml key such as 'train.head'")
    if parts[0] in FIXED_SECTIONS:
        raise StageError(
            f"override {key}: {parts[0]} are not params but lay out the DAG in dvc.yaml's vars; change them there"
        )
    node = params
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            raise StageError(f"override {key}: params.yaml has no section {'.'.join(parts[: depth + 1])} to set it in")
        node = child
    return node, parts[-1]


def validated_params(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> tuple[dict[str, Any], Params]:
    """Merge overrides into params and validate the result as a stage would; StageError names the bad key."""
    merged = apply_overrides(params, overrides)
    try:
        return merged, parse_params(merged)
    except StageError as err:
        if not overrides:
            raise
        lines = str(err).splitlines()  # one per problem
        raise StageError(
            "\n".join(f"override rejected: {line.removeprefix('params.yaml: ')}" for line in lines)
        ) from None


def read_params_file(workspace: Path) -> tuple[bytes, dict[str, Any]]:
    """params.yaml's exact bytes (to restore) and its parsed content."""
    path = workspace / PARAMS_FILE
    try:
        original = path.read_bytes()
    except FileNotFoundError:
        raise StageError(f"{path} not found: is {workspace} a checkout of this project?") from None
    try:
        data = read_params_text(original.decode())
    except yaml.YAMLError as err:
        raise StageError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise StageError(f"{path} must be a mapping of sections, got {data!r}")
    return original, data


def _round_trip_yaml() -> Any:
    """ruamel.yaml's round trip set up as DVC's `dvc exp run -S` writes params.yaml (the stages read 1e-05 too)."""
    from ruamel.yaml import YAML

    round_trip = YAML()  # DVC's settings (dvc/utils/serialize/_yaml.py): round trip, block style
    round_trip.default_flow_style = False
    return round_trip


def params_file(original: bytes, overrides: Mapping[str, Any]) -> bytes:
    """original params.yaml with overrides set, for a run's own worktree (flows/run_workspace.py).

    Only the overridden values change: comments, key order and layout stay, as `dvc exp run -S` keeps them.
    """
    round_trip = _round_trip_yaml()
    document = round_trip.load(original)
    for key, value in overrides.items():
        node, last = _holder(document, key)
        node[last] = value
    out = io.StringIO()
    round_trip.dump(document, out)
    return out.getvalue().encode()
