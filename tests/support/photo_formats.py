"""Photos in every format and pixel mode Pillow handles, and deterministic ways to corrupt them, for decoder tests."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from bench.photos import REAL_SAMPLE
from tasks.competition.archive import TRAIN_ZIP
from tests.support.bad_inputs import encoded
from tests.support.workspace import PROJECT

# Modes each format is tried in, first that saves wins: some write only palette, gray or 1-bit photos.
_SAVE_MODES = ("RGB", "L", "P", "1")
# Formats Pillow lists as writable whose files it can't open back here without outside tools (EPS needs
# Ghostscript) or that write only through a registered handler (BUFR, GRIB, HDF5, WMF stubs).
_NOT_ROUND_TRIP = ("EPS", "BUFR", "GRIB", "HDF5", "WMF", "PDF", "MPO", "PALM", "XVTHUMB")


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """A float photo in [0, 1], rising left to right (0 to 1) plus a little top to bottom, never constant."""
    across = np.linspace(0.0, 1.0, width)[None, :]
    down = np.linspace(0.0, 0.25, height)[:, None]
    return np.clip(across * 0.8 + down, 0.0, 1.0)


def png_16bit(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of pixels (uint16, (h, w) gray or (h, w, 3) RGB), which Pillow can't write itself."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    height, width = pixels.shape[:2]
    colour_type = 2 if pixels.ndim == 3 else 0
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)  # filter byte 0 before each row
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def tiff_rgb_16bit(pixels: np.ndarray) -> bytes:
    """An uncompressed 16-bit RGB TIFF (little-endian, one strip) of pixels (h, w, 3) uint16."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    count = 10
    bits_at = 8 + 2 + count * 12 + 4  # after the header, the IFD and its next-IFD offset
    data_at = bits_at + 6

    def tag(code: int, kind: int, value: int, n: int = 1) -> bytes:  # kind 3: SHORT, 4: LONG
        packed = struct.pack("<HH", value, 0) if kind == 3 and n == 1 else struct.pack("<I", value)
        return struct.pack("<HHI", code, kind, n) + packed

    tags = [
        tag(256, 4, width),
        tag(257, 4, height),
        tag(258, 3, bits_at, 3),  # BitsPerSample: three values, stored at bits_at
        tag(259, 3, 1),  # no compression
        tag(262, 3, 2),  # RGB
        tag(273, 4, data_at),
        tag(277, 3, 3),
        tag(278, 4, height),
        tag(279, 4, len(data)),
        tag(284, 3, 1),  # chunky: RGBRGB...
    ]
    ifd = struct.pack("<H", count) + b"".join(tags) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<HHH", 16, 16, 16) + data


def non_8bit_photos(values: np.ndarray) -> dict[str, bytes]:
    """values (floats in [0, 1]) saved in each mode that is not 8-bit, in formats Pillow writes or opens.

    Keys name the mode and format; each file holds values at its full range (16-bit: 0..65535, float: 0..1),
    except `I-wide` and `F-wide`, which lie outside any convention (so only their own range can be used).
    """
    u16 = np.rint(values * 65535).astype(np.uint16)
    rgb16 = np.stack([u16, u16[:, ::-1], np.full_like(u16, 30000)], axis=-1)
    as_i16b = Image.frombytes("I;16B", u16.shape[::-1], u16.astype(">u2").tobytes())  # convert("I;16B") clips
    return {
        "I;16-png": png_16bit(u16),
        "I;16-tiff": encoded(Image.fromarray(u16), "TIFF"),
        "I;16B-tiff": encoded(as_i16b, "TIFF"),
        "I-pgm": b"P5\n%d %d\n65535\n" % (u16.shape[1], u16.shape[0]) + u16.astype(">u2").tobytes(),
        "I;16-jpeg2000": encoded(Image.fromarray(u16), "JPEG2000"),
        "I-tiff": encoded(Image.fromarray(u16.astype(np.int32)), "TIFF"),
        "I-wide-tiff": encoded(Image.fromarray((values * 4e6 - 1e6).astype(np.int32)), "TIFF"),
        "F-tiff": encoded(Image.fromarray(values.astype(np.float32)), "TIFF"),
        "F-wide-tiff": encoded(Image.fromarray((values * 500 - 100).astype(np.float32)), "TIFF"),
        "F-spider": encoded(Image.fromarray(values.astype(np.float32)), "SPIDER"),
        "RGB16-png": png_16bit(rgb16),
        "RGB16-tiff": tiff_rgb_16bit(rgb16),
    }


def round_trip_formats() -> list[str]:
    """Every format this Pillow can both write and open (WebP, AVIF, JPEG 2000 where it was built with them)."""
    Image.init()
    return sorted(f for f in set(Image.SAVE) & set(Image.OPEN) if f not in _NOT_ROUND_TRIP)


def saved_in(image: Image.Image, fmt: str) -> bytes | None:
    """image in fmt, in the first mode fmt writes; None where it writes none of them."""
    small = image if fmt not in ("ICO", "ICNS") else image.resize((32, 32))  # icons are small squares
    for mode in _SAVE_MODES:
        try:
            return encoded(small.convert(mode), fmt)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # this format doesn't write this mode; try the next
    return None


def real_photos(count: int) -> dict[str, bytes]:
    """The first count train photos (name -> JPEG bytes) of the real Kaggle sample beside the project (DESIGN.md);
    {} where it is absent, as in a clone without ../shared."""
    archive = PROJECT.parent / REAL_SAMPLE
    if not archive.is_file():
        return {}
    with zipfile.ZipFile(archive) as outer, zipfile.ZipFile(io.BytesIO(outer.read(TRAIN_ZIP))) as train:
        names = sorted(n for n in train.namelist() if n.endswith(".jpg"))[:count]
        return {Path(n).stem.replace(".", "-"): train.read(n) for n in names}


def corruptions(data: bytes, seed: int) -> dict[str, bytes]:
    """data damaged in deterministic ways: truncated at several points, seeded byte flips, header fields zeroed
    or maxed (sizes, offsets and counts there become 0 or huge)."""
    rng = np.random.default_rng(seed)
    size = len(data)
    damaged = {f"truncated-{n}": data[:n] for n in sorted({0, 1, 8, 16, 32, size // 10, size // 2, size - 1})}
    for i in range(12):
        flipped = bytearray(data)
        for position in rng.integers(0, size, 1 + i % 4):
            flipped[position] ^= int(rng.integers(1, 256))
        damaged[f"flipped-{i}"] = bytes(flipped)
    for i in range(6):  # flips confined to the header, where a plugin reads its fields
        flipped = bytearray(data)
        for position in rng.integers(0, min(size, 64), 2):
            flipped[position] ^= int(rng.integers(1, 256))
        damaged[f"header-flipped-{i}"] = bytes(flipped)
    for start in range(4, min(size, 48), 4):
        for fill in (0x00, 0xFF):
            field = bytearray(data)
            field[start : start + 4] = bytes([fill]) * len(field[start : start + 4])
            damaged[f"header-{start}-{fill:02x}"] = bytes(field)
    return damaged
