"""Photo stores: photos packed in one zip (stored, fixed timestamps), each member named by its manifest path.

DVC checks a tracked folder file by file, about 100 µs a photo on a slow CPU, on every `dvc repro`; a store is one
file to check and one object to pull, so the no-op and a shard's transfer scale with the number of stores, not photos.
Members are stored uncompressed (JPEGs don't shrink) so a photo is read straight from its offset.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path
from typing import BinaryIO

from tasks.competition.archive import ZIP_EPOCH
from tasks.core.errors import StageError

_CHUNK = 1 << 20


class PhotoStoreWriter:
    """Adds photos to a new store at a path (the caller makes the path atomic), in the order they are added."""

    def __init__(self, target: Path) -> None:
        self.archive = zipfile.ZipFile(target, "w", allowZip64=True)

    def add(self, member: str, source: BinaryIO, size: int, what: str) -> str:
        """Stream source in as member, refusing more than size bytes (what it declares); return the md5.

        zipfile itself stops at a member's declared size; counting here keeps the bound whatever reads the stream.
        """
        info = zipfile.ZipInfo(member, date_time=ZIP_EPOCH)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = size  # zipfile picks zip64 headers from it
        digest, written = hashlib.md5(), 0
        with self.archive.open(info, "w") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > size:
                    raise StageError(f"{what} unpacks to more than the {size} bytes declared for it; download it again")
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    def add_bytes(self, member: str, data: bytes) -> str:
        """Add data as member; return its md5."""
        info = zipfile.ZipInfo(member, date_time=ZIP_EPOCH)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_STORED
        self.archive.writestr(info, data)
        return hashlib.md5(data).hexdigest()

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> PhotoStoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PhotoStore:
    """Reads photos from a store by their manifest path; a context manager that closes the zip."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise StageError(f"{path} is missing; run `dvc repro` (or `dvc pull {path}`) to restore it")
        try:
            self.archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise StageError(
                f"{path} is not a photo store (a zip); run `dvc repro --force` on the stage that writes it"
            ) from None
        self.path = path

    def members(self) -> list[str]:
        """The member names, in store order."""
        return self.archive.namelist()

    def open(self, member: str) -> BinaryIO:
        """The photo's bytes as a stream; a member the store lacks is explained."""
        try:
            return self.archive.open(member)
        except KeyError:
            raise StageError(
                f"{self.path} lacks {member}, which the manifest lists; run `dvc repro`, which rewrites both"
            ) from None

    def read_checked(self, member: str, md5: str, max_bytes: int) -> bytes:
        """The photo's bytes, refused unless their md5 is the listed one; at most max_bytes + 1 of them.

        A member over max_bytes comes back cut at max_bytes + 1 bytes; the rest is only hashed, a chunk at a time.
        """
        with self.open(member) as source:
            data = source.read(max_bytes + 1)
            digest = hashlib.md5(data)
            while len(data) > max_bytes and (chunk := source.read(_CHUNK)):
                digest.update(chunk)
        if digest.hexdigest() != md5:
            raise StageError(
                f"{member} in {self.path} is not the photo the manifest lists (md5 {digest.hexdigest()}, listed "
                f"{md5}); run `dvc repro`, which rewrites the store and the manifest together"
            )
        return data

    def extract(self, member: str, target: Path) -> None:
        """Copy one photo out to target (a copy: the store is left as it is)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(member) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> PhotoStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
