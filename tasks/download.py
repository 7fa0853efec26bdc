"""Stage download: put the competition archive at paths.raw_archive, from Kaggle, a local copy, or a seed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tasks.competition.archive import check_archive
from tasks.competition.synthetic import build_synthetic_archive
from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError, run_stage
from tasks.core.params import DownloadParams, load_params


def copy_archive(source: Path, target: Path) -> None:
    """Link (or copy, across filesystems) a local competition zip to target after checking it."""
    check_archive(source)
    with atomic_file(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or links not allowed: fall back to a copy
            shutil.copyfile(source, tmp)


def download(params: DownloadParams, target: Path) -> None:
    """Produce the competition archive at target from the configured source."""
    if params.source == "synthetic":
        with atomic_file(target) as tmp:
            cfg = params.synthetic
            build_synthetic_archive(tmp, cfg.seed, cfg.train_per_class, cfg.test_count)
    elif params.source == "archive":
        copy_archive(Path(params.archive_path).expanduser(), target)
    elif params.source == "kaggle":
        from tasks.kaggle.source import download_competition  # the client is heavy and authenticates on import

        download_competition(params.competition, target)
    else:  # params validation makes this unreachable; kept so a new source can't slip through silently
        raise StageError(f"download.source {params.source!r} is not supported")


def main() -> None:
    params = load_params()
    download(params.download, Path(params.paths.raw_archive))


if __name__ == "__main__":
    run_stage("download", main)
