"""The raw archive's format: a readable, safe zip of the dataset's files, and how photo names carry ids and classes.

download writes one zip at paths.raw_archive: the dataset's files at their paths relative to its top folder. A member
that is itself a zip (`train.zip`) stands for the folder of that name; reorganize reads the layout inside
(tasks/photos/layout.py). Dogs vs. Cats' archive (train.zip, test.zip, sample_submission.csv) is one instance.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

from tasks.core.errors import StageError

# Dogs vs. Cats' archive: the synthetic source writes these members, the Kaggle source expects them for it.
TRAIN_ZIP = "train.zip"
TEST_ZIP = "test.zip"
SAMPLE_SUBMISSION = "sample_submission.csv"
CLASSES = ("cats", "dogs")  # Dogs vs. Cats' class folders; a photo's target is its class's position, so P(dog) is 1

# Dogs vs. Cats names its train photos `<word>.<n>.<ext>` (cat.1.jpg), whose class folder is `<word>s` (cats).
_TRAIN_NAME = re.compile(r"^([^.]+)\.(\d+)\.[^.]+$")
# A numeric test id travels as a 64-bit integer wherever a reader infers the column's type: a larger one wraps.
MAX_TEST_ID = 2**63 - 1
# An id a CSV would have to quote, or whose line it would break: the manifests and the submission hold ids bare.
_CSV_UNSAFE = re.compile(r'[\x00-\x1f\x7f,"]')
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
    """(class folder, id) of a photo named as Dogs vs. Cats names them: 'cat.12.jpg' -> ('cats', 'cat.12')."""
    match = _TRAIN_NAME.match(name)
    if not match:
        raise StageError(f"train photo {name!r} is not named <word>.<n>.<ext> like cat.1.jpg")
    return f"{match.group(1)}s", name.rsplit(".", 1)[0]


def check_photo_id(photo_id: str, name: str) -> str:
    """A photo's id, refused when a CSV would have to quote it or, all digits, it overflows a signed 64-bit integer."""
    if _CSV_UNSAFE.search(photo_id):
        raise StageError(
            f"photo {name!r} has the id {photo_id!r}, which holds a comma, a double quote or a control character "
            "that the manifests and the submission (CSV files) can't hold bare: rename the photo"
        )
    if photo_id.isdigit() and int(photo_id) > MAX_TEST_ID:
        raise StageError(
            f"photo {name!r} has an id over {MAX_TEST_ID}: numeric ids must fit in a signed 64-bit integer; "
            "rename it (the competition's test ids are 1 to 12500)"
        )
    return photo_id


def data_path(member: str) -> PurePosixPath:
    """A member's path inside the data, a backslash read as the folder separator the Windows tool meant.

    Windows tools that ignore the zip spec's forward slash (PowerShell 5's Compress-Archive among them) write
    `train\\cat.1.jpg` for `train/cat.1.jpg`; check_member_path reads it so too.
    """
    return PurePosixPath(member.replace("\\", "/"))


def is_folder(member: zipfile.ZipInfo) -> bool:
    """Whether a member is a folder entry (with either separator)."""
    return member.is_dir() or member.filename.endswith("\\")


def is_file_manager_file(path: PurePosixPath) -> bool:
    """Whether a path is a file manager's own file (.DS_Store, Thumbs.db, ._name, anything under __MACOSX/)."""
    name = path.name
    return _FILE_MANAGER_FOLDER in path.parts or name.startswith("._") or name in _FILE_MANAGER_FILES


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
    """Fail unless path is a readable zip whose every member is safe to unpack (what it holds is reorganize's)."""
    if path.is_dir():
        raise StageError(f"competition archive {path} is a folder, not a zip file: give the path of the zip itself")
    if not path.is_file():
        raise StageError(f"competition archive {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            check_members(path.name, members, "train/cat.1.jpg (paths inside the data)")
            for member in members:  # testzip decompresses every member
                check_readable(path.name, member)
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise StageError(f"{path} is not a readable zip archive ({err}); download it again") from None
    if bad is not None:
        raise StageError(f"{path} is corrupt (member {bad} fails its CRC check); download it again")


def write_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Add a stored member with a fixed timestamp (photos and zips are already compressed)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.external_attr = 0o644 << 16
    archive.writestr(info, data, compress_type=zipfile.ZIP_STORED)
