"""params.yaml loaded once, at a stage's edge, into typed and validated dataclasses."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tasks.core.errors import StageError

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class PathsParams:
    raw_archive: str
    organized: str
    organized_index: str  # reorganize's list of its photos with their md5s (tasks/photos/manifest.py)
    split: str  # split's manifest: which photo is in which subset
    features: str
    model: str
    predictions: str
    submission: str
    receipt: str
    metrics: str
    model_lineage: str  # lineage records (tasks/lineage/record.py): written beside what they describe
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
    layer: str = "block5_pool"  # where VGG16 is cut: earlier layers suit data unlike ImageNet (the lesson's CT scans)
    # Who runs the conv base: keras, or onnxruntime / openvino (CPU), which match Keras within float32 round-off.
    backend: Literal["keras", "onnxruntime", "openvino"] = "keras"
    # float32, or bf16 / fp16 arithmetic (GPUs; openvino bf16 on CPUs that have it): faster, features differ ~1%.
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    xla: bool = False  # compile the keras conv pass with XLA: meant for GPUs (bench/gpu.sh); unmeasured on CPUs here
    # Undecodable train/valid photos are left out and listed; more than this many fails the stage.
    max_quarantined: int = 10
    # Photos are resized to this square: VGG16's 224, or smaller for quick runs (32: 1/49 of the conv multiply-adds).
    image_size: int = 224


@dataclass(frozen=True)
class PhaseParams:
    lr: float  # both required: a phase with a silent default would train at a rate nobody chose
    epochs: int


@dataclass(frozen=True)
class TrainParams:
    dataset: Literal["full", "sample"] = "full"
    # linear: on the 1,000 probabilities; last_layer: on fc2; dense: fc1+fc2+new top on pool5; conv: any cut
    head: Literal["linear", "last_layer", "dense", "conv"] = "linear"
    optimizer: Literal["rmsprop", "adam", "sgd"] = "rmsprop"
    # The lesson fits more than once, lowering the learning rate: each phase runs `epochs` at `lr`, in turn.
    phases: tuple[PhaseParams, ...] = (PhaseParams(lr=0.1, epochs=3),)
    batch_size: int = 64
    seed: int = 0


@dataclass(frozen=True)
class ClipParams:
    # [lo, hi], or auto: the symmetric [b, 1 - b] with the lowest validation log loss
    bounds: tuple[float, float] | Literal["auto"] = (0.05, 0.95)


@dataclass(frozen=True)
class SubmitParams:
    enabled: bool = False
    message: str = "fast.ai lesson 2 pipeline"
    force: bool = False  # Kaggle caps submissions a day: a CSV it already has is not sent again unless forced
    poll_timeout_s: float = 600.0  # how long to wait for the score before recording the submission as pending


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
    if origin is tuple and typing.get_args(hint)[-1] is Ellipsis:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list | tuple) or not value:
            raise StageError(f"params.yaml: {key} must be a non-empty list, got {value!r}")
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise StageError(f"params.yaml: {key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        reasons = []
        for option in typing.get_args(hint):
            try:
                return _convert(value, option, key)
            except StageError as err:
                reasons.append(str(err).removeprefix("params.yaml: "))
        raise StageError(f"params.yaml: {key} has an unsupported value {value!r}: " + "; or ".join(reasons))
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
        "features.max_quarantined": params.features.max_quarantined,
    }
    for key, value in counts.items():
        if value < 0:
            raise StageError(f"params.yaml: {key} is {value}; it must be 0 or more")
    positive = {
        "features.batch_size": params.features.batch_size,
        "train.batch_size": params.train.batch_size,
    }
    positive.update({f"train.phases[{i}].epochs": p.epochs for i, p in enumerate(params.train.phases)})
    for key, value in positive.items():
        if value < 1:
            raise StageError(f"params.yaml: {key} is {value}; it must be at least 1")
    size, weights = params.features.image_size, params.features.weights
    if size < 32 or size % 32:
        raise StageError(
            f"params.yaml: features.image_size is {size}; it must be a multiple of 32 and at least 32 "
            "(VGG16 halves it five times)"
        )
    if size != 224 and weights != "none":
        raise StageError(
            f"params.yaml: features.image_size is {size} but features.weights is {weights!r}, whose dense layers "
            "expect 224 (a 7x7x512 pool5); set image_size to 224, or weights to none"
        )
    for i, phase in enumerate(params.train.phases):
        if phase.lr <= 0:
            raise StageError(f"params.yaml: train.phases[{i}].lr is {phase.lr}; it must be positive")
    if params.clip.bounds != "auto":
        lo, hi = params.clip.bounds
        if not 0.0 <= lo < hi <= 1.0:
            raise StageError(f"params.yaml: clip.bounds is [{lo}, {hi}]; it needs 0 <= lo < hi <= 1")
    split = params.split
    if split.sample_valid_size > split.valid_size:
        raise StageError(
            f"params.yaml: split.sample_valid_size is {split.sample_valid_size}, more than split.valid_size "
            f"({split.valid_size}) it is drawn from"
        )
    if params.download.source == "synthetic":  # the data's size is known before any work: check it now
        total = 2 * params.download.synthetic.train_per_class
        if split.valid_size >= total:
            raise StageError(
                f"params.yaml: split.valid_size is {split.valid_size} but download.synthetic makes only {total} "
                "train photos; lower it so some remain to train on"
            )
        if split.sample_train_size > total - split.valid_size:
            raise StageError(
                f"params.yaml: split.sample_train_size is {split.sample_train_size} but only "
                f"{total - split.valid_size} train photos remain after split.valid_size"
            )
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
