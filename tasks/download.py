"""Stage download: put the dataset, as one zip, at paths.raw_archive: from Kaggle, a local zip or folder, or a seed."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

from tasks.competition.archive import check_archive
from tasks.competition.local_folder import dataset_files, pack_files
from tasks.competition.synthetic import build_class_folders_archive, build_synthetic_archive
from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError, run_stage
from tasks.core.params import NO_LOCAL_ARCHIVE, DownloadParams, SyntheticParams, load_params
from tasks.core.paths import load_paths

# linux/fs.h's FICLONE, _IOW(0x94, 9, int): make a file share another's blocks copy-on-write (btrfs, XFS).
_FICLONE = 0x40049409


def _copy_bytes(source: Path, target: Path) -> None:
    """Copy source's bytes to the new file target: a reflink where the filesystem can, else a plain copy."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            return
        except OSError:  # no reflinks here (ext4, tmpfs, overlayfs) or across filesystems: copy the bytes
            pass
    shutil.copyfile(source, target)


def copy_archive(source: Path, target: Path) -> None:
    """Copy a local competition zip to target after checking it: a reflink where the filesystem can, else bytes.

    Never a hardlink: DVC links its cache object to the output and makes it read-only, which would turn the
    user's own file into a cache object (mode 0444, and DVC's cache corrupted by any later edit of it).
    A reflink shares blocks only until either file is written, so it is as safe as a copy.
    """
    if source.is_dir():  # check_archive says so too; here the line can name the source that copies a folder
        raise StageError(
            f"competition archive {source} is a folder, not a zip file: give the path of the zip itself, "
            "or set download.source to folder to copy the folder"
        )
    check_archive(source)
    with atomic_file(target) as tmp:
        _copy_bytes(source, tmp)


def write_synthetic(cfg: SyntheticParams, target: Path) -> None:
    """The synthetic dataset: two colour classes as Dogs vs. Cats' archive (as it always was), else class folders."""
    with atomic_file(target) as tmp:
        if cfg.classes == 2 and not cfg.grayscale:
            build_synthetic_archive(tmp, cfg.seed, cfg.train_per_class, cfg.test_count)
        else:
            build_class_folders_archive(tmp, cfg.seed, cfg.classes, cfg.grayscale, cfg.train_per_class, cfg.test_count)


def copy_folder(root: Path, test_root: Path | None, target: Path) -> None:
    """Copy the user's folder (and test folder) into the zip target; every refusal comes before anything is written."""
    files = dataset_files(root, test_root, target)
    with atomic_file(target) as tmp:
        pack_files(files, tmp)


def download(params: DownloadParams, target: Path) -> None:
    """Produce the raw zip at target from the configured source (params refuse `~`: DVC would not expand it)."""
    if params.source == "synthetic":
        write_synthetic(params.synthetic, target)
    elif params.source == "archive":
        copy_archive(Path(params.path), target)
    elif params.source == "folder":
        test_root = None if params.test_path == NO_LOCAL_ARCHIVE else Path(params.test_path)
        copy_folder(Path(params.path), test_root, target)
    elif params.source == "kaggle":
        from tasks.kaggle.source import download_competition  # the client is heavy and authenticates on import

        download_competition(params.competition, target)
    else:  # params validation makes this unreachable; kept so a new source can't slip through silently
        raise StageError(f"download.source {params.source!r} is not supported")


def main() -> None:
    params = load_params()
    download(params.download, Path(load_paths().raw_archive))


if __name__ == "__main__":
    run_stage("download", main)
