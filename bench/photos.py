"""The photos a benchmark runs on: the real Kaggle sample when present beside the project, else synthetic 500x375 JPEGs."""
from __future__ import annotations

from pathlib import Path

from tasks.features import Photo, subset_photos
from tasks.photos.manifest import read_manifest
from tasks.reorganize import reorganize
from tasks.competition.synthetic import build_synthetic_archive

REAL_SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-sample" / "dogs-vs-cats-redux-kernels-edition.zip"
COMPETITION_SIDE = 500  # the competition's photos are mostly about 500x375


def bench_archive(scratch: Path) -> tuple[Path, str]:
    """The competition-format zip to benchmark on and a phrase saying what it is."""
    shared = REAL_SAMPLE.resolve()
    if shared.is_file():
        return shared, f"real Kaggle photos ({shared.parent.name}: 200 train + 50 test, 200x200)"
    archive = scratch / "synthetic.zip"
    build_synthetic_archive(archive, seed=0, train_per_class=100, test_count=50, max_side=COMPETITION_SIDE)
    return archive, "synthetic JPEGs up to 500x375 (no real sample found)"


def organized_bench_photos(scratch: Path) -> tuple[Path, str]:
    """The bench archive reorganized into train/cats, train/dogs, test/unknown under scratch/organized."""
    archive, what = bench_archive(scratch)
    reorganize(archive, scratch / "organized", scratch / "organized.csv")
    return scratch / "organized", what


def all_photos(organized: Path) -> list[Photo]:
    """Every photo reorganize listed beside organized (organized.csv), train then test, as the features stage reads them."""
    index = read_manifest(organized.with_suffix(".csv"))
    return subset_photos(index, "train", organized) + subset_photos(index, "test", organized)
