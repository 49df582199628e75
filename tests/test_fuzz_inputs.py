"""Property-based fuzzing of the one decoder (load_image → preprocess) with Hypothesis, seeded.

Mutated headers and EXIF blocks of small JPEG, PNG and WebP files, and EXIF blocks built from
random tags, types, counts and values: the only outcomes allowed are a valid model input or one
of edgeclf's typed errors (``EdgeclfError``). Any other exception — TypeError, AttributeError,
IndexError, struct.error, ... escaping from Pillow — fails the test with the input that caused it.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from _exif_blocks import exif_with_gps, ifd
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.image import load_image
from edgeclf.runtime.preprocess import PreprocessConfig, preprocess

CFG = PreprocessConfig(crop_size=8, resize_size=8)
#: Small enough that a mutated header cannot make a case allocate much (the API's own guard).
MAX_PIXELS = 250_000
FUZZ = settings(max_examples=2000, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _exif() -> bytes:
    """A valid EXIF block: Orientation=6, a GPS IFD with a proper latitude reference."""
    return exif_with_gps([(1, 2, 2, b"N\0"), (2, 5, 3, struct.pack("<6I", 48, 1, 51, 1, 0, 1))])


def _base(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, fmt, exif=_exif())
    return buf.getvalue()


BASES = {fmt: _base(fmt) for fmt in ("JPEG", "PNG", "WEBP")}


def _regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges to mutate: the header (first 40 bytes), the EXIF block, anywhere."""
    start = data.find(b"II*\0")
    exif = (start, start + len(_exif()) - 6) if start >= 0 else (0, len(data))
    return {"header": (0, min(40, len(data))), "exif": exif, "anywhere": (0, len(data))}


REGIONS = {fmt: _regions(data) for fmt, data in BASES.items()}


@st.composite
def mutated_files(draw) -> bytes:
    fmt = draw(st.sampled_from(sorted(BASES)))
    lo, hi = REGIONS[fmt][draw(st.sampled_from(["header", "exif", "exif", "anywhere"]))]
    data = bytearray(BASES[fmt])
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(lo, max(lo, min(hi, len(data)) - 1)))
        op = draw(st.sampled_from(["byte", "byte", "int16", "int32", "insert", "delete"]))
        if op == "byte":
            data[pos:pos + 1] = bytes([draw(st.integers(0, 255))])
        elif op == "int16":
            data[pos:pos + 2] = struct.pack("<H", draw(st.sampled_from([0, 1, 2, 7, 0x7FFF, 0xFFFF])))
        elif op == "int32":
            data[pos:pos + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 9, 2**16, 2**31 - 1, 2**32 - 1])))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[pos:pos + draw(st.integers(1, 16))]
    return bytes(data)


TAGS = [0x0112, 0x8825, 0x8769, 0xA005, 0x010F, 0x0132, 0x9003, 0x927C, 0x0000, 0xFFFF, 1, 2, 5, 7]


@st.composite
def exif_entries(draw, depth: int = 0):
    entries = []
    for _ in range(draw(st.integers(0, 5))):
        tag = draw(st.sampled_from(TAGS))
        typ = draw(st.integers(0, 14))
        count = draw(st.sampled_from([0, 1, 2, 3, 4, 8, 2**31]))
        value = draw(st.binary(min_size=0, max_size=24))
        entries.append((tag, typ, count, value))
    return entries


@st.composite
def random_exif_jpegs(draw) -> bytes:
    """A valid JPEG whose EXIF block is IFD0 + a GPS IFD of random entries (any tag, type, count)."""
    gps = draw(exif_entries())
    ifd0_extra = draw(exif_entries())
    if draw(st.booleans()):
        block = exif_with_gps(gps)
    else:
        block = b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd(ifd0_extra)
    buf = io.BytesIO()
    Image.new("RGB", (12, 20), (10, 200, 30)).save(buf, "JPEG", exif=block)
    return buf.getvalue()


def _only_typed_errors(data: bytes) -> None:
    try:
        x = preprocess(load_image(data, max_pixels=MAX_PIXELS, name="fuzz"), CFG)
    except EdgeclfError:
        return
    assert x.shape == (3, 8, 8) and x.dtype == np.float32 and np.isfinite(x).all()


@pytest.mark.slow
@FUZZ
@given(mutated_files())
def test_mutated_headers_and_exif_give_images_or_typed_errors(data):
    _only_typed_errors(data)


@pytest.mark.slow
@settings(FUZZ, max_examples=1000)
@given(random_exif_jpegs())
def test_random_exif_blocks_give_images_or_typed_errors(data):
    _only_typed_errors(data)


def test_the_bases_decode():
    for fmt, data in BASES.items():
        img = load_image(data)
        assert img.size == (12, 20), fmt  # Orientation=6 applied (stored 20 x 12)
