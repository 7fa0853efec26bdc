"""The folder source: every file under the user's folder of photos, copied into the raw zip at its relative path.

The user's files are only read: never linked, moved or changed. Members are stored (photos are compressed already)
with fixed timestamps, in path order, so the same files always give the same zip; each is streamed, never held in
memory whole. What the layout means (class folders, a labels CSV) is reorganize's to read, not this module's.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# File managers' own files are left out by the rule archive.py applies to a zip's members, so a folder and the zip
# of it give the same photos.
from tasks.competition.archive import ZIP_EPOCH, is_file_manager_file
from tasks.core.errors import StageError

TEST_FOLDER = "test"  # where a separate test folder's photos go in the zip, as in the course layout
_CHUNK_BYTES = 2**20


@dataclass(frozen=True)
class FolderFile:
    """A file to copy: where it is read (a link's own path: opening it follows the link) and its zip member name."""

    source: Path
    member: str


def _refuse_root(root: Path, key: str) -> None:
    """Refuse a root that is missing or not a folder, naming the key that set it."""
    if root.is_file():
        raise StageError(
            f"{key} {root} is a file, not a folder: give the folder that holds your photos "
            "(for a zip, set download.source to archive)"
        )
    if not root.is_dir():
        raise StageError(f"{key} {root} does not exist: set it to the folder that holds your photos")


def _followed(link: Path, real_root: Path, key: str) -> None:
    """Refuse a link that points outside the folder or at nothing: its target is not part of the dataset DVC hashes."""
    target = Path(os.path.realpath(link))
    if not target.exists():
        raise StageError(f"{link} under {key} is a link to {target}, which does not exist: remove the link")
    if not target.is_relative_to(real_root):
        raise StageError(
            f"{link} under {key} is a link to {target}, outside the folder: copy what it points to into the "
            f"folder in its place, or set {key} to a folder that holds it"
        )


def _unreadable(path: Path, err: OSError) -> StageError:
    """The line for a file or folder download may not read."""
    return StageError(
        f"{path} can't be read ({err.strerror or err}): let yourself read it (chmod u+r), or move it out of the folder"
    )


def _walk(folder: Path, prefix: str, real_root: Path, key: str, above: frozenset[str]) -> Iterator[FolderFile]:
    """The files under folder (links inside the folder followed), as members under prefix; above: real folders."""
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError as err:
        raise _unreadable(folder, err) from None
    for entry in entries:
        path, member = Path(entry.path), prefix + entry.name
        if entry.is_symlink():
            _followed(path, real_root, key)
        if entry.is_dir():
            real = os.path.realpath(path)
            if real in above:
                raise StageError(f"{path} under {key} is a link to {real}, a folder above it: remove the link")
            yield from _walk(path, f"{member}/", real_root, key, above | {real})
        elif entry.is_file() and not is_file_manager_file(PurePosixPath(member)):
            if not os.access(path, os.R_OK):
                raise _unreadable(path, PermissionError(13, "Permission denied"))
            yield FolderFile(path, member)
        # else a FIFO, socket or device: not a file of the dataset


def folder_files(root: Path, key: str, prefix: str = "") -> list[FolderFile]:
    """Every file under root, members under prefix; StageError (one line) when root is missing, empty or unsafe."""
    _refuse_root(root, key)
    real_root = Path(os.path.realpath(root))
    files = list(_walk(root, prefix, real_root, key, frozenset({str(real_root)})))
    if not files:
        raise StageError(f"{key} {root} holds no files: put your photos there, one folder per class")
    for file in files:
        try:
            file.member.encode()
        except UnicodeEncodeError:
            raise StageError(f"{file.source} under {key} has a name that is not UTF-8 text: rename it") from None
    return files


def _copy_member(archive: zipfile.ZipFile, file: FolderFile) -> None:
    """Stream one file into archive as a stored member with a fixed timestamp (archive.write_member's format)."""
    info = zipfile.ZipInfo(file.member, date_time=ZIP_EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_STORED
    try:
        with open(file.source, "rb") as source:
            info.file_size = os.fstat(source.fileno()).st_size  # zipfile picks zip64 headers from it
            with archive.open(info, "w") as member:
                shutil.copyfileobj(source, member, _CHUNK_BYTES)
    except OSError as err:
        raise _unreadable(file.source, err) from None


def pack_files(files: list[FolderFile], target: Path) -> None:
    """Write files to the zip target, in member order."""
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(files, key=lambda f: f.member):
            _copy_member(archive, file)


def _inside(inner: Path, outer: Path) -> bool:
    return Path(os.path.realpath(inner)).is_relative_to(os.path.realpath(outer))


def dataset_files(root: Path, test_root: Path | None, target: Path) -> list[FolderFile]:
    """Every file under root, and under test_root as test/, to be packed at target; StageError when unsafe."""
    files = folder_files(root, "download.path")
    if _inside(target, root):
        raise StageError(
            f"download.path {root} holds download's own output {target}: set it to the folder of your photos"
        )
    if test_root is not None:
        if _inside(test_root, root) or _inside(root, test_root):
            raise StageError(
                f"download.test_path {test_root} and download.path {root} overlap: keep the test photos in a "
                f"folder of their own, or in {root}/{TEST_FOLDER} with download.test_path set to the placeholder"
            )
        if any(f.member.split("/")[0] == TEST_FOLDER for f in files):
            raise StageError(
                f"download.path {root} holds a {TEST_FOLDER} of its own and download.test_path names another: "
                f"use one, moving {root}/{TEST_FOLDER} out or setting download.test_path back to the placeholder"
            )
        files += folder_files(test_root, "download.test_path", f"{TEST_FOLDER}/")
    return files
