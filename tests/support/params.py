"""A params section for tests that call a stage's core directly: params.yaml's values, with what the test changes."""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from tasks.core.params import DownloadParams, FeaturesParams, ReorganizeParams, TrainParams
from tests.support.workspace import PROJECT

Section = TypeVar("Section", bound=BaseModel)


def _section(model: type[Section], name: str, changes: dict[str, Any]) -> Section:
    """Section `name` of the project's params.yaml with changes, validated by its own rules, as at load."""
    return model.model_validate({**yaml.safe_load((PROJECT / "params.yaml").read_text())[name], **changes})


def download_params(**changes: Any) -> DownloadParams:
    return _section(DownloadParams, "download", changes)


def reorganize_params(**changes: Any) -> ReorganizeParams:
    return _section(ReorganizeParams, "reorganize", changes)


def features_params(**changes: Any) -> FeaturesParams:
    return _section(FeaturesParams, "features", changes)


def train_params(**changes: Any) -> TrainParams:
    """phases may be given as PhaseParams or as {lr, epochs} mappings."""
    return _section(TrainParams, "train", changes)
