"""`make browse`: copy the class folders out of the photo store (data/photos.zip) to look at; not a DVC stage.

The stages read the photos from the store, a single file DVC checks once per `dvc repro`. People (and the course's
notebooks) want the folders, train/cats, train/dogs, test/unknown: this writes them to paths.organized as plain
copies, which no stage reads and DVC does not track, so editing or deleting them changes nothing downstream.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from tasks.core.atomic_output import atomic_dir
from tasks.core.errors import StageError, run_stage
from tasks.core.paths import load_paths
from tasks.photos.photo_store import PhotoStore

# Written inside every copy: browse replaces only a folder it made, never one a person (or an older checkout's
# reorganize) filled.
MARKER = ".copied-by-make-browse"
PHOTO_FOLDERS = ("train", "test")  # what counts as a photo in the output line; the sample submission does not


def _safe_member(member: str, store: Path) -> PurePosixPath:
    """member as a relative path inside the copy; a name that would land outside it is refused."""
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in member:
        raise StageError(f"{store} holds a member named {member!r}, outside its class folders; run `dvc repro --force`")
    return path


def browse(store: Path, target: Path) -> int:
    """Copy every member of store to target (replacing a copy browse made before); return how many are photos."""
    if target.exists() and not (target / MARKER).is_file():
        raise StageError(
            f"{target} exists and was not copied there by `make browse` (no {MARKER} in it): move or delete it, "
            "then run `make browse` again"
        )
    photos = 0
    with PhotoStore(store) as source, atomic_dir(target) as tmp:
        for member in source.members():
            if member.endswith("/"):
                continue  # a folder entry: the folders come with the photos in them
            path = _safe_member(member, store)
            source.extract(member, tmp.joinpath(*path.parts))
            photos += path.parts[0] in PHOTO_FOLDERS
        (tmp / MARKER).write_text(f"a copy of {store}; DVC does not track it and no stage reads it\n")
    return photos


def main() -> None:
    paths = load_paths()
    store, target = Path(paths.photos), Path(paths.organized)
    photos = browse(store, target)
    print(f"browse: {photos} photos copied out of {store} to {target}/ (train/<class>, test/unknown)")


if __name__ == "__main__":
    run_stage("browse", main)
