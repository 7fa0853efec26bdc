"""Where the stages read and write: the `paths` of dvc.yaml's `vars`, loaded at a stage's edge into a frozen model.

Paths are locations, not knobs. DVC lists every key of params.yaml, and every key it templates from a `vars` file,
as a param in `dvc exp show` and `dvc params diff`; a value written in dvc.yaml's own `vars` it templates
(`${paths.model}`) without listing. So the paths are declared once there, and the stages read them from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from tasks.core.errors import StageError

DVC_FILE = Path("dvc.yaml")
VARS_KEY = "paths"  # the name dvc.yaml templates them by (`${paths.x}`) and the stages know them by


class Paths(BaseModel):
    # Unknown keys are typos; every key is required: dvc.yaml is the one place they live.
    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_archive: StrictStr
    photos: StrictStr  # reorganize's photo store (tasks/photos/photo_store.py): members named train/cats/cat.1.jpg
    organized: StrictStr  # where `make browse` copies the class folders out of the photo store; no stage uses it
    organized_index: StrictStr  # reorganize's list of its photos with their md5s (tasks/photos/manifest.py)
    classes: StrictStr  # reorganize's class list: index <-> name, and the submission's header (photos/class_list.py)
    split: StrictStr  # split's manifest: which photo is in which subset
    shards: StrictStr  # split's photo store per features shard, <shards>/<shard>.zip (tasks/photos/shards.py)
    features: StrictStr
    model: StrictStr
    predictions: StrictStr
    submission: StrictStr
    receipt: StrictStr
    metrics: StrictStr
    model_lineage: StrictStr  # lineage records (tasks/lineage/record.py): written beside what they describe
    model_run: StrictStr  # run facts of the run that wrote a record: kept apart so the record is deterministic
    submission_lineage: StrictStr
    submission_run: StrictStr


def _problem(error: ErrorDetails) -> str:
    """One validation error as one line naming the key."""
    key = ".".join(str(part) for part in (VARS_KEY, *error["loc"]))
    if error["type"] == "missing":
        return f"missing key {key}: add it to the {VARS_KEY} of dvc.yaml's vars"
    if error["type"] == "extra_forbidden":
        return f"unknown key {key}; known keys here: {', '.join(Paths.model_fields)}"
    if error["type"] == "model_type":
        return f"{key} must be a mapping of names to paths, got {error['input']!r}"
    return f"{key} must be a path (text), got {error['input']!r}"


def parse_paths(dvc_yaml: Any, source: Path = DVC_FILE) -> Paths:
    """The paths of a parsed dvc.yaml's `vars`; StageError lists every problem, one per line."""
    entries = dvc_yaml.get("vars") if isinstance(dvc_yaml, dict) else None
    found = [e[VARS_KEY] for e in entries or [] if isinstance(e, dict) and VARS_KEY in e]
    if len(found) != 1:
        raise StageError(
            f"{source}: its vars must hold one `{VARS_KEY}` mapping (where each stage reads and writes), "
            f"found {len(found)}: restore it from the project's dvc.yaml"
        )
    try:
        return Paths.model_validate(found[0])
    except ValidationError as err:
        raise StageError("\n".join(f"{source}: {_problem(e)}" for e in err.errors())) from None


def load_paths(path: Path = DVC_FILE) -> Paths:
    """Read and validate the paths from dvc.yaml's vars."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StageError(f"{path} not found: run stages from the project root") from None
    except yaml.YAMLError as err:
        raise StageError(f"{path} is not valid YAML: {err}") from None
    return parse_paths(data, path)
