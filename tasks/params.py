"""params.yaml loaded once, at a stage's edge, into typed and validated dataclasses."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tasks.errors import StageError

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class PathsParams:
    raw_archive: str
    organized: str
    split: str
    features: str
    model: str
    predictions: str
    submission: str
    receipt: str
    metrics: str
    model_lineage: str  # lineage records (tasks/lineage.py): written beside what they describe
    submission_lineage: str


@dataclass(frozen=True)
class SyntheticParams:
    seed: int = 0
    train_per_class: int = 100  # small enough for a CPU demo, big enough to train and validate on
    test_count: int = 50


@dataclass(frozen=True)
class DownloadParams:
    source: Literal["synthetic", "archive", "kaggle"] = "synthetic"
    competition: str = "dogs-vs-cats-redux-kernels-edition"
    archive_path: str = ""
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)


@dataclass(frozen=True)
class SplitParams:
    seed: int = 42
    valid_size: int = 40
    sample_train_size: int = 40
    sample_valid_size: int = 20


@dataclass(frozen=True)
class FeaturesParams:
    weights: str = "none"  # "imagenet", "none", or a weights file path
    seed: int = 0  # makes `none` the same random network in every stage that rebuilds it
    batch_size: int = 16


@dataclass(frozen=True)
class TrainParams:
    dataset: Literal["full", "sample"] = "full"
    optimizer: Literal["rmsprop", "adam", "sgd"] = "rmsprop"
    lr: float = 0.1
    epochs: int = 3
    batch_size: int = 64
    seed: int = 0


@dataclass(frozen=True)
class ClipParams:
    bounds: tuple[float, float] = (0.05, 0.95)


@dataclass(frozen=True)
class SubmitParams:
    enabled: bool = False
    message: str = "fast.ai lesson 2 pipeline"


@dataclass(frozen=True)
class Params:
    paths: PathsParams
    download: DownloadParams = field(default_factory=DownloadParams)
    split: SplitParams = field(default_factory=SplitParams)
    features: FeaturesParams = field(default_factory=FeaturesParams)
    train: TrainParams = field(default_factory=TrainParams)
    clip: ClipParams = field(default_factory=ClipParams)
    submit: SubmitParams = field(default_factory=SubmitParams)


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Check value against a type hint; key is the dotted name used in error messages."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise StageError(f"params.yaml: {key} is {value!r}; expected one of: {choices}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise StageError(f"params.yaml: {key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _convert(value, option, key)
            except StageError:
                continue
        raise StageError(f"params.yaml: {key} has an unsupported value {value!r}")
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is str and value is None:
        return ""
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise StageError(f"params.yaml: {key} must be {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass cls from a mapping, refusing unknown keys so a typo never goes unnoticed."""
    if not isinstance(data, dict):
        raise StageError(f"params.yaml: {where or 'the file'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise StageError(
            f"params.yaml: unknown key {prefix}{unknown[0]}; known keys here: {', '.join(sorted(names))}"
        )
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name in data:
            values[f.name] = _convert(data[f.name], hints[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise StageError(f"params.yaml: missing key {key}")
    return cls(**values)


def _check_ranges(params: Params) -> None:
    """Reject values that type-check but make no sense, naming the key."""
    counts = {
        "download.synthetic.train_per_class": params.download.synthetic.train_per_class,
        "download.synthetic.test_count": params.download.synthetic.test_count,
        "split.valid_size": params.split.valid_size,
        "split.sample_train_size": params.split.sample_train_size,
        "split.sample_valid_size": params.split.sample_valid_size,
    }
    for key, value in counts.items():
        if value < 0:
            raise StageError(f"params.yaml: {key} is {value}; it must be 0 or more")
    positive = {
        "features.batch_size": params.features.batch_size,
        "train.epochs": params.train.epochs,
        "train.batch_size": params.train.batch_size,
    }
    for key, value in positive.items():
        if value < 1:
            raise StageError(f"params.yaml: {key} is {value}; it must be at least 1")
    if params.train.lr <= 0:
        raise StageError(f"params.yaml: train.lr is {params.train.lr}; it must be positive")
    lo, hi = params.clip.bounds
    if not 0.0 <= lo < hi <= 1.0:
        raise StageError(f"params.yaml: clip.bounds is [{lo}, {hi}]; it needs 0 <= lo < hi <= 1")
    if params.download.source == "archive" and not params.download.archive_path:
        raise StageError("params.yaml: download.source is archive but download.archive_path is empty")


def parse_params(data: Any) -> Params:
    """Validate a params mapping (as read from YAML) into Params."""
    params = _build(Params, data, "")
    _check_ranges(params)
    return params


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StageError(f"{path} not found: run stages from the project root") from None
    except yaml.YAMLError as err:
        raise StageError(f"{path} is not valid YAML: {err}") from None
    return parse_params(data)
