"""Keras model files whose bytes depend only on the model: the same weights always give the same .keras file.

The file also says what its outputs mean: the class names, in output order, sit in the zip's metadata.json, the
file Keras writes its version and save date to and never reads back. Keras has no API for a model's own metadata
(a custom layer holding the names would need registering before every load), so the normaliser that already
rewrites that file adds them.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from tasks.competition.archive import ZIP_EPOCH
from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError

METADATA = "metadata.json"
CLASSES_KEY = "classes"  # metadata.json's key for the class names, output column i being classes[i]


def normalise_keras_zip(source: Path, target: Path, classes: tuple[str, ...]) -> None:
    """Copy a .keras zip with fixed member timestamps, no save date and the class names, so equal models hash equal."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for member in src.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=ZIP_EPOCH)
            info.compress_type, info.external_attr = member.compress_type, member.external_attr
            if member.filename == METADATA:
                metadata = json.loads(src.read(member))
                metadata.pop("date_saved", None)  # the only thing that differs between two saves of one model
                metadata[CLASSES_KEY] = list(classes)
                dst.writestr(info, json.dumps(metadata, sort_keys=True))
                continue
            with src.open(member) as reader, dst.open(info, "w") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)


def save_model(model, target: Path, classes: tuple[str, ...]) -> None:
    """Save a Keras model to target (.keras) reproducibly and atomically, with the class names of its outputs."""
    with atomic_file(target) as tmp:
        raw = tmp.with_name(f"{tmp.stem}.raw{target.suffix}")  # Keras insists on the .keras suffix
        try:
            model.save(raw)
            normalise_keras_zip(raw, tmp, classes)
        finally:
            raw.unlink(missing_ok=True)


def saved_classes(source: Path) -> tuple[str, ...] | None:
    """The class names save_model recorded in source, in output order; None for a model saved without them."""
    try:
        with zipfile.ZipFile(source) as saved:
            classes = json.loads(saved.read(METADATA)).get(CLASSES_KEY)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise StageError(f"{source} is not a saved head ({err}); run `dvc repro train`") from None
    return None if classes is None else tuple(classes)


def require_model_classes(source: Path, classes: tuple[str, ...]) -> None:
    """Refuse a model whose outputs are other classes than classes (the class list's), in another order or number."""
    recorded = saved_classes(source)
    if recorded is not None and recorded != classes:
        raise StageError(
            f"{source} was trained on the classes {', '.join(recorded)}, but the class list names "
            f"{', '.join(classes)}; run `dvc repro`, which retrains it on these"
        )
