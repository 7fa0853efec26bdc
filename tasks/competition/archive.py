"""The competition archive's layout: which members it holds and how photo names carry ids and classes."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

from tasks.core.errors import StageError

TRAIN_ZIP = "train.zip"
TEST_ZIP = "test.zip"
SAMPLE_SUBMISSION = "sample_submission.csv"
REQUIRED_MEMBERS = (TRAIN_ZIP, TEST_ZIP, SAMPLE_SUBMISSION)
CLASSES = ("cats", "dogs")  # class names (the folders); a photo's target is its class's position, so P(dog) is column 1

_TRAIN_NAME = re.compile(r"^(cat|dog)\.(\d+)\.jpg$")
_TEST_NAME = re.compile(r"^(\d+)\.jpg$")
# Fixed timestamps make an archive written twice from the same photos byte-identical.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def parse_train_name(name: str) -> tuple[str, str]:
    """Return (class folder, id) for a train photo name like 'cat.12.jpg'."""
    match = _TRAIN_NAME.match(name)
    if not match:
        raise StageError(f"train photo {name!r} is not named cat.N.jpg or dog.N.jpg")
    return f"{match.group(1)}s", f"{match.group(1)}.{match.group(2)}"


def parse_test_name(name: str) -> int:
    """Return the numeric id of a test photo name like '17.jpg'."""
    match = _TEST_NAME.match(name)
    if not match:
        raise StageError(f"test photo {name!r} is not named N.jpg with N a number")
    return int(match.group(1))


def check_member_path(zip_name: str, member: str, expected: str) -> None:
    """Refuse a member whose path is absolute or climbs with '..' (a "zip slip"), naming it and what was expected.

    Photos are written under their base name only, so such a member could not escape the output anyway;
    refusing it says plainly that this is not the competition's archive instead of quietly renaming files.
    """
    path = PurePosixPath(member.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", member):
        raise StageError(f"{zip_name} holds {member!r}, an absolute or '..' path; expected names like {expected}")


def check_archive(path: Path) -> None:
    """Fail unless path is a readable zip holding train.zip, test.zip and sample_submission.csv."""
    if not path.is_file():
        raise StageError(f"competition archive {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise StageError(f"{path} is not a readable zip archive ({err}); download it again") from None
    for name in sorted(names):
        check_member_path(path.name, name, ", ".join(REQUIRED_MEMBERS))
    if bad is not None:
        raise StageError(f"{path} is corrupt (member {bad} fails its CRC check); download it again")
    missing = [m for m in REQUIRED_MEMBERS if m not in names]
    if missing:
        raise StageError(f"{path} lacks {', '.join(missing)}; expected {', '.join(REQUIRED_MEMBERS)}")


def write_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Add a stored member with a fixed timestamp (photos and zips are already compressed)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.external_attr = 0o644 << 16
    archive.writestr(info, data, compress_type=zipfile.ZIP_STORED)
