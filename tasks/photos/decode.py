"""Photo decoding: any format Pillow opens, to square RGB uint8, refusing what can't be decoded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageMode

# Pillow's own bomb threshold (~89 megapixels); above it Pillow only warns, up to twice it. We refuse
# outright: a competition photo is ~0.2 megapixels, and a declared size this big is a bomb, not a photo.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# The range a pixel value is read against, for each of Pillow's modes that are not 8-bit (by numpy type). A photo
# is scaled by its type's range, not its own min..max: a full-range 16-bit photo then gives what its 8-bit version
# gives (v / 257), its exposure is kept (a dark photo stays dark, one hot pixel changes nothing), and gray
# 16-bit photos match colour ones, which Pillow reduces to their high byte. Pillow's 32-bit "I" mode is its
# container for 16-bit files (PGM/PPM with maxval over 255 are rescaled to 0..65535), so it is read as 16-bit
# too; float photos use the [0, 1] convention. A photo whose values lie outside that range has no known
# convention (32-bit measurements, floats in other units): it is scaled by its own min..max.
_PIXEL_RANGES = {"u2": (0, 65535), "i4": (0, 65535), "f4": (0.0, 1.0)}
# Pillow's error messages may quote the file object ("<_io.BytesIO object at 0x7f...>"): an address differs on
# every run, and the reason lands in a DVC output. Object reprs and anything like an address are dropped.
_OBJECT_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{9,}\b")
_MAX_REASON = 200  # characters: a reason is one line of undecodable.csv and of the stage's error


class UndecodablePhoto(Exception):
    """A photo file that can't be decoded; the message says why."""


def load_photo(source: Path | BinaryIO, size: int) -> np.ndarray:
    """Decode a photo to RGB uint8 of shape (size, size, 3), squashed to square as the course's loader did.

    The format comes from the bytes, not the name (a PNG or GIF named .jpg decodes fine); grayscale,
    palette, CMYK and alpha become RGB; 16-bit, 32-bit and float photos are scaled to 8 bits by their range
    (eight_bit). EXIF orientation is ignored, as Keras' loaders ignore it, and the same function decodes train,
    valid and test photos, so all are treated alike.
    Raises UndecodablePhoto, with a reason that is the same on every run, for an empty, truncated, corrupt,
    non-image or oversized file, or whatever else Pillow fails on.
    """
    try:
        with Image.open(source) as image:
            if image.width * image.height > MAX_PIXELS:
                raise UndecodablePhoto(f"declares {image.width}x{image.height} pixels, over the {MAX_PIXELS} limit")
            image.draft("RGB", (size, size))  # lets libjpeg decode at a reduced scale: much faster for big photos
            rgb = eight_bit(image).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except UndecodablePhoto:
        raise
    except Exception as err:  # Pillow's plugins raise almost any type on a corrupt file: see raised_in_pillow
        if not raised_in_pillow(err):
            raise  # a bug of ours, not a bad photo: it must show
        raise UndecodablePhoto(failure_reason(err)) from None


def raised_in_pillow(err: BaseException) -> bool:
    """Whether err came out of Pillow: a frame of a PIL module is on its traceback.

    On a corrupt file Pillow's format plugins raise OSError, ValueError, SyntaxError, struct.error, IndexError,
    TypeError, ZeroDivisionError, EOFError, MemoryError, ...: no list of types is complete, where it came from is.
    """
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").split(".")[0] == "PIL":
            return True
        tb = tb.tb_next
    return False


def failure_reason(err: BaseException) -> str:
    """Why Pillow failed, the same on every run: `<exception class>: <message>`, one line, no object addresses."""
    message = _ADDRESS.sub("0x...", _OBJECT_REPR.sub("", str(err)))
    message = " ".join(message.split())
    reason = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


def eight_bit(image: Image.Image) -> Image.Image:
    """image itself if its pixels are 8-bit (or 1-bit); else an 8-bit image of it scaled by its range.

    Converting a 16-bit, 32-bit or float image straight to RGB clips it at 255 (a white frame) or
    truncates floats (a black one). Raises UndecodablePhoto where no range can be found.
    """
    kind = ImageMode.getmode(image.mode).typestr[1:]
    if kind not in _PIXEL_RANGES:
        return image
    values = np.asarray(image)
    if values.size == 0:
        raise UndecodablePhoto(f"mode {image.mode} photo has no pixels")
    low, high = pixel_range(values, _PIXEL_RANGES[kind], image.mode)
    scaled = (values.astype(np.float32) - np.float32(low)) * np.float32(255 / (high - low))
    return Image.fromarray(np.rint(np.clip(scaled, 0, 255)).astype(np.uint8))


def pixel_range(values: np.ndarray, conventional: tuple[float, float], mode: str) -> tuple[float, float]:
    """The range to read values against: the conventional one if they lie in it, else their own min..max."""
    if not np.isfinite(values).all():
        raise UndecodablePhoto(f"mode {mode} photo has NaN or infinite pixels; save it as an 8-bit photo")
    low, high = values.min().item(), values.max().item()
    if conventional[0] <= low and high <= conventional[1]:
        return conventional
    if low == high:
        low_end, high_end = conventional
        raise UndecodablePhoto(
            f"mode {mode} photo is one value ({low}) outside {low_end}..{high_end}: no range to scale by"
        )
    return low, high
