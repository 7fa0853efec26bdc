"""The competition archive's layout: which members it holds and how photo names carry ids and classes."""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

from tasks.core.errors import StageError

TRAIN_ZIP = "train.zip"
TEST_ZIP = "test.zip"
SAMPLE_SUBMISSION = "sample_submission.csv"
REQUIRED_MEMBERS = (TRAIN_ZIP, TEST_ZIP, SAMPLE_SUBMISSION)
CLASSES = ("cats", "dogs")  # class names (the folders); a photo's target is its class's position, so P(dog) is column 1

_TRAIN_NAME = re.compile(r"^(cat|dog)\.(\d+)\.jpg$")
_TEST_NAME = re.compile(r"^(\d+)\.jpg$")
# Test ids travel as 64-bit integers (pandas, NumPy, the submission's id column): a larger one would wrap around.
MAX_TEST_ID = 2**63 - 1
# Files that file managers add beside photos (macOS Finder, Windows Explorer): not photos, skipped as folders are.
# `__MACOSX/` holds macOS's resource forks, `._name` is one outside it; the set holds whole names.
_FILE_MANAGER_FOLDER = "__MACOSX"
_FILE_MANAGER_FILES = {".DS_Store", "Thumbs.db"}
# Compression methods Python's zipfile decompresses; it raises on the others when a member is opened.
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# The unreadable ones a user's zip tool may write: Windows' built-in zip writes Deflate64 for large archives.
_METHOD_NAMES = {9: "Deflate64", 93: "Zstandard", 95: "XZ", 98: "PPMd", 99: "WinZip AES encryption"}
# Fixed timestamps make an archive written twice from the same photos byte-identical.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def parse_train_name(name: str) -> tuple[str, str]:
    """Return (class folder, id) for a train photo name like 'cat.12.jpg'."""
    match = _TRAIN_NAME.match(name)
    if not match:
        raise StageError(f"train photo {name!r} is not named cat.N.jpg or dog.N.jpg")
    return f"{match.group(1)}s", f"{match.group(1)}.{match.group(2)}"


def parse_test_name(name: str) -> int:
    """Return the numeric id of a test photo name like '17.jpg'; ids must fit in a signed 64-bit integer."""
    match = _TEST_NAME.match(name)
    if not match:
        raise StageError(f"test photo {name!r} is not named N.jpg with N a number")
    test_id = int(match.group(1))
    if test_id > MAX_TEST_ID:
        raise StageError(
            f"test photo {name!r} has an id over {MAX_TEST_ID}: ids must fit in a signed 64-bit integer; "
            "rename it (the competition's test ids are 1 to 12500)"
        )
    return test_id


def photo_name(member: zipfile.ZipInfo) -> str | None:
    """The file name of a member that may be a photo, or None for a folder or a file manager's own file.

    A backslash is read as the folder separator it is: Windows tools that ignore the zip spec's forward
    slash (PowerShell 5's Compress-Archive among them) write `train\\cat.1.jpg` for `train/cat.1.jpg`, and
    check_member_path already reads it so. Only the name counts: the folders above it are ignored.
    """
    parts = PurePosixPath(member.filename.replace("\\", "/")).parts
    if member.is_dir() or member.filename.endswith("\\") or not parts:
        return None
    name = parts[-1]
    if _FILE_MANAGER_FOLDER in parts or name.startswith("._") or name in _FILE_MANAGER_FILES:
        return None
    return name


def check_readable(zip_name: str, member: zipfile.ZipInfo) -> None:
    """Refuse, from the zip directory alone, a member Python's zipfile can't decompress: encrypted, or an odd method."""
    if member.flag_bits & 0x1:  # the zip spec's "encrypted" bit
        raise StageError(
            f"{zip_name} holds {member.filename!r} encrypted with a password, which the pipeline can't read: "
            "re-zip it without a password"
        )
    if member.compress_type not in _READABLE_METHODS:
        method = _METHOD_NAMES.get(member.compress_type, "an unsupported method")
        raise StageError(
            f"{zip_name} holds {member.filename!r} compressed with {method} (zip method {member.compress_type}), "
            "which Python's zipfile can't read: re-zip it with plain deflate (`zip -r`, or 7-Zip's Deflate)"
        )


def check_member_path(zip_name: str, member: str, expected: str) -> None:
    """Refuse a member whose path is absolute or climbs with '..' (a "zip slip"), naming it and what was expected.

    Photos are written under their base name only, so such a member could not escape the output anyway;
    refusing it says plainly that this is not the competition's archive instead of quietly renaming files.
    """
    path = PurePosixPath(member.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", member):
        raise StageError(f"{zip_name} holds {member!r}, an absolute or '..' path; expected names like {expected}")


def check_members(zip_name: str, members: list[zipfile.ZipInfo], expected: str) -> None:
    """Refuse unsafe paths and a name held twice (zipfile would silently read the last copy)."""
    for member in members:
        check_member_path(zip_name, member.filename, expected)
    twice = sorted(name for name, count in Counter(m.filename for m in members).items() if count > 1)
    if twice:
        raise StageError(
            f"{zip_name} holds {', '.join(twice)} more than once; which copy is meant is unclear: "
            "re-zip it with one of each"
        )


def check_archive(path: Path) -> None:
    """Fail unless path is a readable zip holding train.zip, test.zip and sample_submission.csv."""
    if path.is_dir():
        raise StageError(f"competition archive {path} is a folder, not a zip file: give the path of the zip itself")
    if not path.is_file():
        raise StageError(f"competition archive {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            check_members(path.name, members, ", ".join(REQUIRED_MEMBERS))
            for member in members:  # testzip decompresses every member
                check_readable(path.name, member)
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise StageError(f"{path} is not a readable zip archive ({err}); download it again") from None
    names = {m.filename for m in members}
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
