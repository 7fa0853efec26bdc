"""Bad inputs made on the spot: broken photos, photos in other formats, and competition archives built around them."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from tasks.competition.archive import SAMPLE_SUBMISSION, TEST_ZIP, TRAIN_ZIP, write_member
from tasks.competition.synthetic import build_synthetic_archive
from tasks.photos.manifest import natural_key


def photo_pixels(seed: int = 0, size: tuple[int, int] = (300, 200)) -> np.ndarray:
    """A noisy RGB photo, (height, width, 3) uint8, with no symmetry (so a rotation would show)."""
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[: height // 3, : width // 4] = (250, 20, 20)  # a red block in one corner
    return pixels


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    """image saved in fmt, as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def truncated_jpeg(seed: int = 0) -> bytes:
    """The first half of a JPEG: the header is fine, the pixel data stops."""
    data = encoded(Image.fromarray(photo_pixels(seed)), "JPEG")
    return data[: len(data) // 2]


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG that declares width x height pixels: decoding it would need width*height*3 bytes."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip holding members (name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            write_member(archive, name, data)
    return buffer.getvalue()


def _sample_of(test_members: Iterable[str]) -> bytes:
    """Dogs vs. Cats' sample submission for the test photos among test_members: their ids (stems), P(dog) 0.5."""
    names = [PurePosixPath(n.replace("\\", "/")).name for n in test_members]
    ids = {PurePosixPath(n).stem for n in names if n.lower().endswith(".jpg") and not n.startswith("._")}
    return ("id,label\n" + "".join(f"{i},0.5\n" for i in sorted(ids, key=natural_key))).encode()


def competition_zip(
    path: Path, train: dict[str, bytes], test: dict[str, bytes], outer_extra: dict[str, bytes] | None = None
) -> Path:
    """A competition archive at path whose train.zip and test.zip hold exactly the given members, and whose sample
    submission lists the test photos' ids (reorganize refuses one that lists others)."""
    members = {TRAIN_ZIP: zip_bytes(train), TEST_ZIP: zip_bytes(test), SAMPLE_SUBMISSION: _sample_of(test)}
    path.write_bytes(zip_bytes({**members, **(outer_extra or {})}))
    return path


def synthetic_with_bad_photos(
    path: Path, train_per_class: int, test_count: int, bad_train: dict[str, bytes], bad_test: dict[str, bytes]
) -> Path:
    """The seeded synthetic archive plus the given broken train and test photos (name -> bytes)."""
    build_synthetic_archive(path, seed=0, train_per_class=train_per_class, test_count=test_count)
    with zipfile.ZipFile(path) as outer:
        inner = {name: outer.read(name) for name in outer.namelist()}
    for name, extra in ((TRAIN_ZIP, bad_train), (TEST_ZIP, bad_test)):
        with zipfile.ZipFile(io.BytesIO(inner[name])) as archive:
            members = {m: archive.read(m) for m in archive.namelist()}
        inner[name] = zip_bytes({**members, **extra})
        if name == TEST_ZIP:  # the sample submission lists every test photo, as reorganize requires
            inner[SAMPLE_SUBMISSION] = _sample_of(members.keys() | extra.keys())
    path.write_bytes(zip_bytes(inner))
    return path


# Where each field sits in a member's local header and in its central directory entry (the zip spec, APPNOTE 4.3.7
# and 4.3.12), with its struct format: zipfile writes neither Deflate64 nor encryption, so tests patch them in.
_HEADER_FIELDS = {"flag_bits": (6, 8, "<H"), "compress_type": (8, 10, "<H"), "file_size": (22, 24, "<I")}


def patched_headers(data: bytes, **fields: int) -> bytes:
    """A zip's bytes with fields (flag_bits, compress_type, file_size) set in both headers of every member."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        offsets = [m.header_offset for m in archive.infolist()]
        central = archive.start_dir
    for local in offsets:
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", out, central + 28)
        for field, value in fields.items():
            local_at, central_at, fmt = _HEADER_FIELDS[field]
            struct.pack_into(fmt, out, local + local_at, value)
            struct.pack_into(fmt, out, central + central_at, value)
        central += 46 + name_length + extra_length + comment_length
    return bytes(out)


def one_class_archive(path: Path, animal: str, train_per_class: int, test_count: int) -> Path:
    """The seeded synthetic archive with only the train photos of animal (cat or dog): a user's archive of one class."""
    build_synthetic_archive(path, seed=0, train_per_class=train_per_class, test_count=test_count)
    with zipfile.ZipFile(path) as outer:
        inner = {name: outer.read(name) for name in outer.namelist()}
    with zipfile.ZipFile(io.BytesIO(inner[TRAIN_ZIP])) as archive:
        kept = {m: archive.read(m) for m in archive.namelist() if m.startswith(f"train/{animal}.")}
    inner[TRAIN_ZIP] = zip_bytes(kept)
    path.write_bytes(zip_bytes(inner))
    return path
