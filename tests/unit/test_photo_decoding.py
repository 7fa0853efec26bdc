"""The photo decoder: photos that are not 8-bit keep their pixels, corrupt files of any format become
UndecodablePhoto, and a reason is the same on every run."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, features

from tasks.photos.decode import UndecodablePhoto, failure_reason, load_photo
from tests.support.bad_inputs import encoded, photo_pixels, truncated_jpeg
from tests.support.photo_formats import (
    corruptions,
    gradient,
    non_8bit_photos,
    real_photos,
    round_trip_formats,
    saved_in,
)
from tests.support.workspace import PROJECT

SIZE = 64  # the gradient's width: decoding at it leaves each column's value in place
GRADIENT = gradient()
NON_8BIT = non_8bit_photos(GRADIENT)
# Formats the fuzz test must cover whatever else this Pillow has: a quiet drop of one would hide its plugin.
CORE_FORMATS = {"BMP", "GIF", "ICO", "JPEG", "PCX", "PNG", "PPM", "SGI", "SPIDER", "TGA", "TIFF"}
OPTIONAL_FORMATS = {"WEBP": "webp", "AVIF": "avif", "JPEG2000": "jpg_2000"}  # format -> PIL.features name
# ICNS holds a PNG of every size up to 1024x1024, upscaled; decoding a noisy one is slow, and its PNGs are
# fuzzed as PNGs already: one smooth photo covers its container.
ONE_SOURCE_FORMATS = {"ICNS"}
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def _expected_8bit(values: np.ndarray) -> np.ndarray:
    """values (floats in [0, 1]) as the 8-bit photo they stand for, decoded as load_photo decodes one (gray)."""
    gray = Image.fromarray(np.rint(values * 255).astype(np.uint8))
    return np.asarray(gray.resize((SIZE, SIZE), Image.Resampling.BILINEAR)).astype(int)


# ---- photos that are not 8-bit ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NON_8BIT))
def test_photos_that_are_not_8bit_decode_to_their_pixels_not_a_blank_frame(name: str):
    data = NON_8BIT[name]
    assert Image.open(io.BytesIO(data)).mode == name.split("-")[0].replace("RGB16", "RGB")  # the mode meant
    decoded = load_photo(io.BytesIO(data), SIZE).astype(int)
    assert decoded.shape == (SIZE, SIZE, 3)
    expected = _expected_8bit(GRADIENT)
    if name.startswith("RGB16"):  # red rises, green falls, blue is 30000 of 65535
        np.testing.assert_allclose(decoded[..., 0], expected, atol=1)
        np.testing.assert_allclose(decoded[..., 1], _expected_8bit(GRADIENT[:, ::-1]), atol=1)
        assert np.abs(decoded[..., 2] - 30000 / 257).max() <= 1
    else:
        for channel in range(3):  # gray: every channel is the photo
            np.testing.assert_allclose(decoded[..., channel], expected, atol=1)
    assert decoded[0, 0, 0] <= 1 and decoded[-1, -1, 0] >= 254  # the full range: black top left, white bottom right


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_grayscale_photo_decodes_to_three_equal_channels_of_its_pixels(fmt: str):
    """The CT-scan case: single-channel 8-bit photos (mode L) are as welcome as colour ones."""
    gray = Image.fromarray(np.rint(GRADIENT * 255).astype(np.uint8))
    assert gray.mode == "L"
    decoded = load_photo(io.BytesIO(encoded(gray, fmt)), SIZE).astype(int)
    assert decoded.shape == (SIZE, SIZE, 3) and decoded.dtype == int
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 1])
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])
    np.testing.assert_allclose(decoded[..., 0], _expected_8bit(GRADIENT), atol=3 if fmt == "JPEG" else 0)


@pytest.mark.parametrize("size", [(3000, 7), (5, 2000), (1, 1)])
def test_photos_of_any_size_and_aspect_ratio_decode_to_the_square_input(size: tuple[int, int]):
    photo = Image.fromarray(photo_pixels(0, size))  # size: (width, height)
    assert photo.size == size
    decoded = load_photo(io.BytesIO(encoded(photo, "PNG")), SIZE)
    assert decoded.shape == (SIZE, SIZE, 3) and decoded.dtype == np.uint8


def test_a_dark_16bit_photo_stays_dark_its_type_range_is_used_not_its_own():
    dark = np.rint(GRADIENT * 4095).astype(np.uint16)  # 12 bits used of 16: a photo exposed 4 stops under
    decoded = load_photo(io.BytesIO(encoded(Image.fromarray(dark), "PNG")), SIZE).astype(int)
    np.testing.assert_allclose(decoded[..., 0], _expected_8bit(GRADIENT * 4095 / 65535), atol=1)
    assert 10 <= decoded.max() <= 17  # 4095 / 257 = 15.9: dark, not stretched to white, and not blank


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.where(GRADIENT > 0.5, np.nan, GRADIENT).astype(np.float32), "mode F photo has NaN or infinite pixels"),
        (np.full((8, 8), np.inf, dtype=np.float32), "mode F photo has NaN or infinite pixels"),
        (np.full((8, 8), 7.5, dtype=np.float32), r"mode F photo is one value \(7.5\) outside 0.0..1.0"),
        (np.full((8, 8), -3, dtype=np.int32), r"mode I photo is one value \(-3\) outside 0..65535"),
    ],
    ids=["nan", "inf", "one-float", "one-negative-int"],
)
def test_photos_with_no_range_to_scale_by_are_undecodable_with_the_reason(pixels: np.ndarray, message: str):
    with pytest.raises(UndecodablePhoto, match=message):
        load_photo(io.BytesIO(encoded(Image.fromarray(pixels), "TIFF")), SIZE)


def test_a_constant_16bit_photo_is_its_grey_not_refused():
    flat = np.full((8, 8), 32896, dtype=np.uint16)  # 128 * 257: mid grey in 16 bits
    assert (load_photo(io.BytesIO(encoded(Image.fromarray(flat), "PNG")), SIZE) == 128).all()


# ---- corrupt photos of every format ----------------------------------------------------------------------


def _fuzz_sources() -> dict[str, Image.Image | bytes]:
    """Photos to save in every format (images) and non-8-bit files to corrupt as they are (bytes)."""
    built = {
        "noise": Image.fromarray(photo_pixels(0, (60, 40))),
        "gradient": Image.fromarray(np.rint(GRADIENT * 255).astype(np.uint8)).convert("RGB"),
    }
    real = real_photos(2)  # fuzzed as they are (JPEG), and shrunk in every format (QOI's decoder is pure Python)
    shrunk = {name: Image.open(io.BytesIO(data)).resize((64, 64)) for name, data in real.items()}
    return {**built, **shrunk, **{f"{name}-as-is": data for name, data in real.items()}, **NON_8BIT}


def _outcome(data: bytes) -> str:
    """'ok' for a photo of the right shape, 'undecodable' for UndecodablePhoto with a reason; else what went wrong."""
    try:
        decoded = load_photo(io.BytesIO(data), 16)
    except UndecodablePhoto as err:
        reason = str(err)
        return "undecodable" if reason and not ADDRESS.search(reason) else f"bad reason {reason!r}"
    except Exception as err:  # every other exception is what this test is looking for
        return f"{type(err).__name__}: {err}"
    ok = decoded.shape == (16, 16, 3) and decoded.dtype == np.uint8
    return "ok" if ok else f"decoded to {decoded.shape} {decoded.dtype}"


@pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns of the damage (skipped tags, odd sizes) it meets
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_every_corrupted_photo_of_every_format_decodes_or_is_undecodable_with_a_reason():
    files: dict[str, bytes] = {}
    for source, photo in _fuzz_sources().items():
        if isinstance(photo, bytes):
            files[source] = photo
            continue
        for fmt in round_trip_formats():
            if fmt in ONE_SOURCE_FORMATS and source != "gradient":
                continue
            data = saved_in(photo, fmt)
            if data is not None:
                files[f"{source}.{fmt}"] = data
    covered = {name.rsplit(".", 1)[1] for name in files if "." in name}
    wanted = CORE_FORMATS | {fmt for fmt, feature in OPTIONAL_FORMATS.items() if features.check(feature)}
    assert wanted <= covered, f"formats not fuzzed: {sorted(wanted - covered)}"
    clean = {name: _outcome(data) for name, data in files.items()}
    assert {name: o for name, o in clean.items() if o != "ok"} == {}  # each undamaged file decodes
    failures, outcomes = [], {"ok": 0, "undecodable": 0}
    for seed, (name, data) in enumerate(sorted(files.items())):
        for damage, damaged in corruptions(data, seed).items():
            outcome = _outcome(damaged)
            if outcome in outcomes:
                outcomes[outcome] += 1
            else:
                failures.append(f"{name} {damage}: {outcome}")
    assert failures == [], f"{len(failures)} of {sum(outcomes.values()) + len(failures)}: {failures[:20]}"
    assert outcomes["undecodable"] > 0 and outcomes["ok"] > 0  # both happen: the damage reaches the decoders


def test_a_bug_outside_pillow_is_not_taken_for_a_bad_photo(monkeypatch: pytest.MonkeyPatch):
    def broken(image):
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr("tasks.photos.decode.eight_bit", broken)
    with pytest.raises(ZeroDivisionError, match="a bug of ours"):
        load_photo(io.BytesIO(encoded(Image.fromarray(photo_pixels()), "PNG")), SIZE)


# ---- reasons are the same on every run --------------------------------------------------------------------

_BROKEN = {
    "text": b"id,label\n1,0.5\n",
    "empty": b"",
    "truncated-jpeg": truncated_jpeg(),
    "bad-tiff": encoded(Image.fromarray(photo_pixels()), "TIFF")[:60],
}
_REASONS_SCRIPT = """
import io, json, sys
from tasks.photos.undecodable import decode_or_blank
broken = {name: bytes.fromhex(h) for name, h in json.loads(sys.stdin.read()).items()}
print(json.dumps({name: decode_or_blank(io.BytesIO(data), 16)[1] for name, data in broken.items()}))
"""


def _reasons_in_a_new_process() -> dict[str, str]:
    """The reasons decode_or_blank gives for _BROKEN, as the features stage decodes them, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", _REASONS_SCRIPT],
        input=json.dumps({name: data.hex() for name, data in _BROKEN.items()}),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_the_same_broken_photo_gets_the_same_reason_in_every_process():
    first, second = _reasons_in_a_new_process(), _reasons_in_a_new_process()
    assert first == second
    assert first["text"] == "UnidentifiedImageError: cannot identify image file"  # no "<_io.BytesIO ... at 0x...>"
    assert all(reason and not ADDRESS.search(reason) for reason in first.values()), first


def test_a_reason_drops_object_addresses_and_stays_one_short_line():
    err = ValueError(f"bad tile <PIL.ImageFile._Tile object at 0x7f3c2a1b4d50> in\n{object()!r} id 0x55d1c0ffee12")
    assert failure_reason(err) == "ValueError: bad tile in id 0x..."
    assert failure_reason(MemoryError()) == "MemoryError"
    assert len(failure_reason(SyntaxError("x" * 1000))) == 200
