"""Keras model files whose bytes depend only on the model: the same weights always give the same .keras file."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from tasks.competition.archive import ZIP_EPOCH
from tasks.core.atomic_output import atomic_file

METADATA = "metadata.json"


def normalise_keras_zip(source: Path, target: Path) -> None:
    """Copy a .keras zip with fixed member timestamps and no save date, so equal models hash equal in dvc.lock."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for member in src.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=ZIP_EPOCH)
            info.compress_type, info.external_attr = member.compress_type, member.external_attr
            if member.filename == METADATA:
                metadata = json.loads(src.read(member))
                metadata.pop("date_saved", None)  # the only thing that differs between two saves of one model
                dst.writestr(info, json.dumps(metadata, sort_keys=True))
                continue
            with src.open(member) as reader, dst.open(info, "w") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)


def save_model(model, target: Path) -> None:
    """Save a Keras model to target (.keras) reproducibly and atomically."""
    with atomic_file(target) as tmp:
        raw = tmp.with_name(f"{tmp.stem}.raw{target.suffix}")  # Keras insists on the .keras suffix
        try:
            model.save(raw)
            normalise_keras_zip(raw, tmp)
        finally:
            raw.unlink(missing_ok=True)
