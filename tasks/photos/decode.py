"""Photo decoding: any format Pillow opens, to square RGB uint8, refusing what can't be decoded."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

# Pillow's own bomb threshold (~89 megapixels); above it Pillow only warns, up to twice it. We refuse
# outright: a competition photo is ~0.2 megapixels, and a declared size this big is a bomb, not a photo.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# What Pillow raises for files it can't decode: empty, text, truncated, corrupt, or a bomb.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


class UndecodablePhoto(Exception):
    """A photo file that can't be decoded; the message says why."""


def load_photo(source: Path | BinaryIO, size: int) -> np.ndarray:
    """Decode a photo to RGB uint8 of shape (size, size, 3), squashed to square as the course's loader did.

    The format comes from the bytes, not the name (a PNG or GIF named .jpg decodes fine); grayscale,
    palette, CMYK and alpha become RGB. EXIF orientation is ignored, as Keras' loaders ignore it, and
    the same function decodes train, valid and test photos, so all are treated alike.
    Raises UndecodablePhoto for an empty, truncated, non-image or oversized file.
    """
    try:
        with Image.open(source) as image:
            if image.width * image.height > MAX_PIXELS:
                raise UndecodablePhoto(f"declares {image.width}x{image.height} pixels, over the {MAX_PIXELS} limit")
            image.draft("RGB", (size, size))  # lets libjpeg decode at a reduced scale: much faster for big photos
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except _DECODE_ERRORS as err:
        raise UndecodablePhoto(f"{type(err).__name__}: {err}") from None
