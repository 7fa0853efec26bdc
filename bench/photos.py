"""The photos a benchmark runs on: the real Kaggle sample when it is beside the project, else synthetic JPEGs."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from bench.workspace import PROJECT, bench_params
from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.params import ReorganizeParams
from tasks.features import Photo, subset_photos
from tasks.photos.class_list import read_class_list
from tasks.photos.manifest import read_manifest
from tasks.photos.photo_store import PhotoStore
from tasks.reorganize import reorganize

# Not shipped with the project: a clone has it only where ../shared is set up beside it (DESIGN.md).
REAL_SAMPLE = Path("shared") / "data" / "real-sample" / "dogs-vs-cats-redux-kernels-edition.zip"
COMPETITION_SIDE = 500  # the competition's photos are mostly about 500x375
# The real sample's counts, so either set gives the same number of photos.
SYNTHETIC_PER_CLASS, SYNTHETIC_TEST = 100, 50
FOLDERS = "folders"  # the photos copied out of the store, beside it, for what reads files (the course's loader)


class PhotoSource(NamedTuple):
    """Where the bench photos come from: the real sample's archive (None: synthetic), and a phrase for the report."""

    real_archive: Path | None
    description: str


def photo_source(project: Path = PROJECT) -> PhotoSource:
    """The real sample at project/../shared when it is there, else synthetic photos."""
    real = (project.parent / REAL_SAMPLE).resolve()
    if real.is_file():
        return PhotoSource(real, f"real Kaggle photos ({real.parent.name}: 200 train + 50 test, 200x200)")
    return PhotoSource(None, f"synthetic JPEGs up to 500x375 (no real sample at ../{REAL_SAMPLE})")


def bench_archive(scratch: Path, source: PhotoSource) -> Path:
    """The competition-format zip of source: the real one itself, or a synthetic one written under scratch."""
    scratch.mkdir(parents=True, exist_ok=True)  # the synthetic zip and reorganize's output go here
    if source.real_archive is not None:
        return source.real_archive
    archive = scratch / "synthetic.zip"
    build_synthetic_archive(archive, 0, SYNTHETIC_PER_CLASS, SYNTHETIC_TEST, COMPETITION_SIDE)
    return archive


def stage_limits() -> ReorganizeParams:
    """params.yaml's unpacking limits, as the stages use them (features reads at most max_photo_bytes of a photo)."""
    return ReorganizeParams.model_validate(bench_params({})["reorganize"])


def organized_bench_photos(scratch: Path, archive: Path) -> Path:
    """The bench archive reorganized into the photo store scratch/organized, and copied out of it into class folders
    (train/cats, train/dogs, test/unknown) under scratch/folders for the course's loader."""
    reorganize(archive, scratch / "organized", scratch / "organized.csv", scratch / "classes.json", stage_limits())
    with PhotoStore(scratch / "organized") as store:
        for member in store.members():
            store.extract(member, scratch / FOLDERS / member)
    return scratch / "organized"


def all_photos(organized: Path) -> list[Photo]:
    """Every photo reorganize listed in organized.csv, train then test, as the features stage reads them from the
    store organized; each photo's path is its copy under organized's sibling folders/ (extracted or not)."""
    index = read_manifest(organized.with_suffix(".csv"))
    classes = read_class_list(organized.parent / "classes.json").classes  # reorganize writes it beside the index
    folders = organized.parent / FOLDERS
    return subset_photos(index, "train", folders, classes) + subset_photos(index, "test", folders, classes)
