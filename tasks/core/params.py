"""params.yaml loaded once, at a stage's edge, into typed, validated, frozen pydantic models.

params.yaml holds every knob (where the stages read and write is dvc.yaml's: tasks/core/paths.py); the models
hold none. They say what each key may be (types, ranges, the rules that tie keys together) and refuse a file that
breaks any of it at load, before any work, with one line per problem naming the key:
`params.yaml: <key> ...: what to do`.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from tasks.core.errors import StageError
from tasks.core.paths import VARS_KEY
from tasks.vgg.layers import CUTS, POOL5

PARAMS_FILE = Path("params.yaml")
# A classifier needs at least two classes; how many the data holds is known only once reorganize has read it, so
# split checks the sizes against that number (the class list), and params only against this floor.
MIN_CLASSES = 2
# NumPy's legacy seeding and Keras' set_random_seed take 32-bit seeds; a larger one loads, then crashes a stage.
SEED_LIMIT = 2**32 - 1


def _refuse(line: str) -> PydanticCustomError:
    """A broken rule, as the line the user reads; the line names its own keys."""
    return PydanticCustomError("params_rule", "{line}", {"line": line})


def _vgg16_cut(layer: str) -> str:
    """features.layer, refused unless VGG16 has a conv or pool layer of that name."""
    if layer not in CUTS:
        raise _refuse(f"features.layer is {layer!r}, not a VGG16 conv or pool layer; choose one of: {', '.join(CUTS)}")
    return layer


def _halvable(size: int) -> int:
    """features.image_size, refused unless VGG16's five 2x2 pools can halve it down to a whole pixel."""
    if size < 32 or size % 32:
        raise _refuse(
            f"features.image_size is {size}; it must be a multiple of 32 and at least 32 (VGG16 halves it five times)"
        )
    return size


def _holds_each_class(size: int) -> int:
    """split.valid_size, refused unless the validation set can hold a photo of each of the fewest classes there are."""
    if size < MIN_CLASSES:
        raise _refuse(
            f"split.valid_size is {size}; the validation set needs a photo of each class (a classifier has at least "
            f"{MIN_CLASSES}), so it must be at least {MIN_CLASSES}"
        )
    return size


def _outside_the_data(path: str) -> bool:
    """Whether a reorganize path leaves the data: absolute, climbing with .., or written with Windows' separators."""
    return path.startswith("/") or "\\" in path or ".." in path.split("/") or bool(re.match(r"^[A-Za-z]:", path))


def _bounds_kind(value: Any) -> str | None:
    """Which form clip.bounds takes: a string is meant as auto, a list of two as [lo, hi]; else neither fits."""
    if isinstance(value, str):
        return "auto"
    return "lo_hi" if isinstance(value, list | tuple) and len(value) == 2 else None


# Strict scalars: YAML's `true` is not the integer 1, `64.0` is not an image size, and "3" is not a number.
Count = Annotated[StrictInt, Field(ge=0)]
# YAML's .nan and .inf are floats: refused, as a rate or a timeout that is not a number makes no run.
Finite = Annotated[StrictFloat, Field(allow_inf_nan=False)]
AtLeastOne = Annotated[StrictInt, Field(ge=1)]
Seed = Annotated[StrictInt, Field(ge=0, le=SEED_LIMIT)]  # NumPy refuses negative seeds, and 32-bit ones only
# YAML reads an empty value (`path:`) as null; what was written there is the empty string.
Text = Annotated[StrictStr, BeforeValidator(lambda value: "" if value is None else value)]
# Who runs the conv base: keras, or onnxruntime / openvino (CPU), which match Keras within float32 round-off.
Backend = Literal["keras", "onnxruntime", "openvino"]
# float32, or bf16 / fp16 arithmetic (GPUs; openvino bf16 on CPUs that have it): faster, features differ ~1%.
Precision = Literal["float32", "mixed_bfloat16", "mixed_float16"]
# The value's form picks the member (Discriminator), so a bad value gets one line, not one per member.
Bounds = Annotated[
    Annotated[tuple[StrictFloat, StrictFloat], Tag("lo_hi")] | Annotated[Literal["auto"], Tag("auto")],
    Discriminator(
        _bounds_kind,
        custom_error_type="params_shape",
        custom_error_message="must be a list of 2 values [lo, hi], or auto",
    ),
]


class Section(BaseModel):
    # Unknown keys are typos, refused; frozen, because params never change during a run. No field has a
    # default: params.yaml is the one place values live, so a missing key is an error, not a silent fallback.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticParams(Section):
    seed: Seed
    train_per_class: Count  # small enough for a CPU demo, big enough to train and validate on
    test_count: Count
    # 2 (and colour) is the Dogs vs. Cats archive, byte for byte as it always was; more: class folders class_0...
    classes: Annotated[StrictInt, Field(ge=2)]
    grayscale: StrictBool  # single-channel photos of varied sizes and aspect ratios: a stand-in for CT scans


# What params.yaml's download.path (and download.test_path) names when the source reads no local data: a committed
# file, since dvc.yaml lists both paths as download's dependencies and DVC needs a dependency to exist.
NO_LOCAL_ARCHIVE = "data/raw/no-local-archive"
# What download.path must be for each source that reads it.
_LOCAL_DATA = {"archive": "a local copy of the competition zip", "folder": "your folder of photos"}


def _dvc_can_hash(key: str, path: str) -> None:
    """Refuse a path DVC can't hash as download's dependency: empty (an assertion in DVC) or `~/...` (not expanded)."""
    if not path:
        raise _refuse(
            f"{key} is empty, but dvc.yaml lists it as download's dependency, which must exist: "
            f"set it to {NO_LOCAL_ARCHIVE}, the placeholder for sources that read no local data"
        )
    if path.startswith("~"):
        raise _refuse(
            f"{key} {path} starts with ~, which DVC does not expand "
            "(it hashes the path as download's dependency): write the full path"
        )


class DownloadParams(Section):
    source: Literal["synthetic", "archive", "folder", "kaggle"]
    competition: StrictStr  # the Kaggle competition's slug, read only when source is kaggle
    # The local data: a zip (source archive) or a folder (source folder); DVC hashes it as download's dependency
    # for every source, so the others name the placeholder.
    path: Text
    test_path: Text  # source folder only: a separate folder of unlabelled test photos, packed as test/
    synthetic: SyntheticParams  # read only when source is synthetic

    @model_validator(mode="after")
    def _local_data_is_named(self) -> DownloadParams:
        if self.source in _LOCAL_DATA and self.path in ("", NO_LOCAL_ARCHIVE):
            shown = "empty" if not self.path else f"the placeholder {NO_LOCAL_ARCHIVE}"
            raise _refuse(
                f"download.source is {self.source} but download.path is {shown}: set it to {_LOCAL_DATA[self.source]}"
            )
        _dvc_can_hash("download.path", self.path)
        _dvc_can_hash("download.test_path", self.test_path)
        if self.source != "folder" and self.test_path != NO_LOCAL_ARCHIVE:
            raise _refuse(
                f"download.test_path is {self.test_path} but only download.source folder reads it "
                f"(source is {self.source}): set it back to {NO_LOCAL_ARCHIVE}"
            )
        return self


class ReorganizeParams(Section):
    # Where things sit inside the data (params.yaml says how each layout reads).
    train: Text  # the labelled photos' folder; `.` for the data's top
    test: Text  # the unlabelled photos' folder; '' for none
    labels: Text  # a CSV of photo id, class for photos directly in train; '' when folders or names give classes
    sample_submission: Text  # the competition's sample submission; a file the data lacks means none
    # Bounds on what unpacking may write, checked from the zip directories before writing and while streaming:
    # a few-MB zip can declare gigabytes of zeros. Far above the competition's photos and archive (params.yaml).
    max_photo_bytes: AtLeastOne  # one photo, unpacked; features reads no more than this of a photo file
    max_unpacked_bytes: AtLeastOne  # everything reorganize writes or reads: the inner zips, the CSVs, the photos

    @model_validator(mode="after")
    def _places_differ(self) -> ReorganizeParams:
        for key in ("train", "test", "labels", "sample_submission"):
            if _outside_the_data(getattr(self, key)):
                raise _refuse(
                    f"reorganize.{key} is {getattr(self, key)!r}; it is a path inside the data as downloaded, like "
                    "train or imgs/train: relative, with / between folders and no .."
                )
        if not self.train:
            raise _refuse("reorganize.train is empty; set it to the folder of labelled photos (. for the data's top)")
        if self.test.strip("/") in (".", self.train.strip("/")):
            raise _refuse(
                f"reorganize.test is {self.test!r}, the train folder or the whole data; set it to the folder of "
                "unlabelled photos, or to '' if there are none"
            )
        for key in ("labels", "sample_submission"):
            if getattr(self, key).strip("/") == ".":
                raise _refuse(f"reorganize.{key} is '.'; it names a CSV file inside the data, or '' for none")
        return self


class SplitParams(Section):
    seed: Seed
    valid_size: Annotated[StrictInt, AfterValidator(_holds_each_class)]  # carved out of train, stratified
    sample_train_size: Count  # drawn from what train keeps
    sample_valid_size: Count  # drawn from the validation set

    @model_validator(mode="after")
    def _sample_valid_fits(self) -> SplitParams:
        if self.sample_valid_size > self.valid_size:
            raise _refuse(
                f"split.sample_valid_size is {self.sample_valid_size}, more than split.valid_size "
                f"({self.valid_size}) it is drawn from: lower it, or raise split.valid_size"
            )
        return self


def _numbered_shards(shards: tuple[int, ...]) -> tuple[int, ...]:
    if shards != tuple(range(len(shards))) or not shards:
        raise _refuse(  # as the other rules say it: a plain ValueError reads `features.shards: Value error, ...`
            f"features.shards is {list(shards)}; it must list the shard numbers 0 to N-1 in order, one per shard: "
            "[0] for one shard, [0, 1, 2, 3] for four"
        )
    return shards


class FeaturesParams(Section):
    weights: StrictStr  # "imagenet", "none", or a weights file path (whether it exists is checked when VGG16 loads)
    seed: Seed  # makes `none` the same random network in every stage that rebuilds it
    batch_size: AtLeastOne
    # Where VGG16 is cut: earlier layers suit data unlike ImageNet (the lesson's CT scans).
    layer: Annotated[StrictStr, AfterValidator(_vgg16_cut)]
    backend: Backend  # who runs the conv base (bench/RESULTS.md compares them)
    precision: Precision
    xla: StrictBool  # compile the keras conv pass with XLA: meant for GPUs (bench/gpu.sh); unmeasured on CPUs here
    # Undecodable train/valid photos are left out and listed; more than this many fails the stage.
    max_undecodable: Count
    # Photos are resized to this square: VGG16's 224, or smaller for quick runs (32: 1/49 of the conv multiply-adds).
    image_size: Annotated[StrictInt, AfterValidator(_halvable)]
    # One DVC stage per entry (features@0, features@1, ...): DVC's foreach needs the list itself, so N shards are
    # written 0 to N-1. Each shard is whole batches of each conv subset (tasks/photos/shards.py).
    shards: Annotated[tuple[Count, ...], AfterValidator(_numbered_shards)]

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesParams:
        if self.image_size != 224 and self.weights != "none":
            raise _refuse(
                f"features.image_size is {self.image_size} but features.weights is {self.weights!r}, "
                "whose dense layers expect 224 (a 7x7x512 pool5); set image_size to 224, or weights to none"
            )
        if self.xla and self.backend != "keras":
            raise _refuse(
                f"features.xla is true but XLA compiles only for the keras backend, not {self.backend}: "
                "set features.xla to false, or features.backend to keras"
            )
        if self.backend == "onnxruntime" and self.precision != "float32":
            raise _refuse(
                f"features.precision {self.precision} needs the keras or openvino backend; onnxruntime runs "
                "float32 on CPU: set features.precision to float32, or change features.backend"
            )
        return self


class PhaseParams(Section):
    # Both required, as every key is: a phase with a silent default would train at a rate nobody chose.
    lr: Annotated[Finite, Field(gt=0)]
    epochs: AtLeastOne


def _some_phase(phases: tuple[PhaseParams, ...]) -> tuple[PhaseParams, ...]:
    if not phases:
        raise _refuse("train.phases must be a non-empty list, got []: give at least one {lr, epochs}")
    return phases


class TrainParams(Section):
    dataset: Literal["full", "sample"]
    # linear: on the 1,000 probabilities; last_layer: on fc2; dense: fc1+fc2+new top on pool5; conv: any cut
    head: Literal["linear", "last_layer", "dense", "conv"]
    optimizer: Literal["rmsprop", "adam", "sgd"]
    # The lesson fits more than once, lowering the learning rate: each phase runs `epochs` at `lr`, in turn.
    phases: Annotated[tuple[PhaseParams, ...], AfterValidator(_some_phase)]
    batch_size: AtLeastOne
    seed: Seed


class ClipParams(Section):
    # [lo, hi], or auto: the symmetric [b, 1 - b] with the lowest validation log loss
    bounds: Bounds

    @model_validator(mode="after")
    def _ordered(self) -> ClipParams:
        if self.bounds != "auto" and not 0.0 <= self.bounds[0] < self.bounds[1] <= 1.0:
            lo, hi = self.bounds
            raise _refuse(f"clip.bounds is [{lo}, {hi}]; it needs 0 <= lo < hi <= 1")
        return self


class SubmitParams(Section):
    enabled: StrictBool
    message: StrictStr
    force: StrictBool  # Kaggle caps submissions a day: a CSV it already has is not sent again unless forced
    poll_timeout_s: Annotated[Finite, Field(ge=0)]  # how long to wait for the score before recording it pending


class Params(Section):
    download: DownloadParams
    reorganize: ReorganizeParams
    split: SplitParams
    features: FeaturesParams
    train: TrainParams
    clip: ClipParams
    submit: SubmitParams

    @model_validator(mode="after")
    def _head_has_its_cut(self) -> Params:
        head, layer = self.train.head, self.features.layer
        if head != "conv" and layer != POOL5:
            raise _refuse(
                f"train.head {head} needs features.layer {POOL5} (VGG16's dense layers start there), but it is "
                f"{layer}; use train.head conv for another cut, or set features.layer back to {POOL5}"
            )
        return self

    @model_validator(mode="after")
    def _sample_sets_hold_each_class(self) -> Params:
        # train.dataset sample trains on sample_train and validates on sample_valid: each needs every class.
        if self.train.dataset != "sample":
            return self
        for key in ("sample_train_size", "sample_valid_size"):
            size = getattr(self.split, key)
            if size < MIN_CLASSES:
                raise _refuse(
                    f"split.{key} is {size} but train.dataset is sample, which needs a photo of each class "
                    f"(a classifier has at least {MIN_CLASSES}) there: raise it to at least {MIN_CLASSES}, "
                    "or set train.dataset to full"
                )
        return self

    @model_validator(mode="after")
    def _synthetic_photos_suffice(self) -> Params:
        # Only the synthetic source's size and classes are known before any work; split checks the others.
        if self.download.source != "synthetic":
            return self
        split, synthetic = self.split, self.download.synthetic
        classes, total = synthetic.classes, synthetic.classes * synthetic.train_per_class
        if split.valid_size < classes:
            raise _refuse(
                f"split.valid_size is {split.valid_size} but download.synthetic.classes is {classes}: the "
                f"validation set needs a photo of each class, so it must be at least {classes}"
            )
        if split.valid_size >= total:
            raise _refuse(
                f"split.valid_size is {split.valid_size} but download.synthetic makes only {total} "
                "train photos; lower it so some remain to train on"
            )
        if split.sample_train_size > total - split.valid_size:
            raise _refuse(
                f"split.sample_train_size is {split.sample_train_size} but only {total - split.valid_size} "
                "train photos remain after split.valid_size: lower one of them"
            )
        for key in ("sample_train_size", "sample_valid_size"):
            size = getattr(split, key)
            if self.train.dataset == "sample" and size < classes:
                raise _refuse(
                    f"split.{key} is {size} but train.dataset is sample, which needs a photo of each of the "
                    f"{classes} classes of download.synthetic there: raise it to at least {classes}, "
                    "or set train.dataset to full"
                )
        return self


# pydantic's error kinds -> the words of the one-line message
_TYPE_NAMES = {
    "int_type": "int",
    "float_type": "float",
    "bool_type": "bool",
    "string_type": "str",
    "tuple_type": "a list",
    "model_type": "a mapping of keys to values",
}


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as the items of a tuple; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is tuple:
        return _section_of(typing.get_args(annotation)[0])
    return None


def _locate(loc: tuple[int | str, ...]) -> tuple[str, type[BaseModel]]:
    """The dotted key of an error's location (train.phases[0].lr), and the model holding its last part."""
    key, holder, model = "", Params, Params
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif model is not None:  # a key of model, known or not
            key = f"{key}.{part}" if key else part
            holder, field = model, model.model_fields.get(part)
            model = _section_of(field.annotation) if field else None
        # else: part names the member of a union that failed (clip.bounds' lo_hi or auto), not a key
    return key, holder


def _number(value: float) -> str:
    """A bound as written: an integer exactly (a seed's 4294967295), a float in its shortest form."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _problem(error: ErrorDetails) -> str:
    """One validation error as one line, naming the key and what is expected."""
    key, holder = _locate(error["loc"])
    kind, value, context = error["type"], error["input"], error.get("ctx", {})
    if kind == "params_rule":
        return error["msg"]
    if kind == "missing":
        return f"missing key {key}: add it to params.yaml (the code holds no defaults)"
    if kind == "extra_forbidden" and key == VARS_KEY:
        return (
            f"{VARS_KEY} is not a params section: where the stages read and write is declared in dvc.yaml's vars "
            f"(DVC lists every params.yaml key as a param); remove {VARS_KEY} from params.yaml"
        )
    if kind == "extra_forbidden":
        return f"unknown key {key}; known keys here: {', '.join(holder.model_fields)}"
    if kind in _TYPE_NAMES:
        return f"{key or 'the file'} must be {_TYPE_NAMES[kind]}, got {value!r}"
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", context["expected"]))
        return f"{key} is {value!r}; expected one of: {choices}"
    if kind == "greater_than_equal":
        return f"{key} is {value}; it must be at least {_number(context['ge'])}"
    if kind == "greater_than":
        return f"{key} is {value}; it must be more than {_number(context['gt'])}"
    if kind == "less_than_equal":
        return f"{key} is {value}; it must be at most {_number(context['le'])}"
    if kind == "finite_number":
        return f"{key} is {value}; it must be a finite number"
    if kind == "params_shape":
        return f"{key} {error['msg']}, got {value!r}"
    return f"{key}: {error['msg']}"  # a kind no field here can raise today, in pydantic's own words


def parse_params(data: Any) -> Params:
    """Validate a params mapping (as read from YAML) into Params; StageError lists every problem, one per line."""
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise StageError("\n".join(f"params.yaml: {_problem(e)}" for e in err.errors())) from None


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading 1e-05 as a float, as YAML 1.2 and DVC do (`dvc exp run -S` writes floats so)."""


# YAML 1.1 (PyYAML's) wants a dot before an exponent (1.0e-5) and reads 1e-5 as text; DVC (ruamel, YAML 1.2)
# writes and reads it as a number, so without this, `dvc exp run -S` with lr 1e-5 gave a params.yaml no stage took.
ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def read_params_text(text: str) -> Any:
    """params.yaml's text as data, floats read as DVC reads them; yaml.YAMLError if it is not YAML."""
    return yaml.load(text, Loader=ParamsLoader)


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    try:
        data = read_params_text(path.read_text())
    except FileNotFoundError:
        raise StageError(f"{path} not found: run stages from the project root") from None
    except yaml.YAMLError as err:
        raise StageError(f"{path} is not valid YAML: {err}") from None
    return parse_params(data)
