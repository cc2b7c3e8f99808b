"""Corrupt and odd image files through ``camloc.localize``: every file gives a record, with a
one-line error naming it or predictions with boxes inside the image; nothing raises or hangs."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import camloc
from camloc.pixels.geometry import parse_resize
from _harness import fuzz_settings, record_problem, run_case, tiny_net

pytestmark = pytest.mark.fuzz

FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp",
           "PPM": ".ppm", "ICO": ".ico"}
MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I", "F", "I;16", "YCbCr", "PA")
SUFFIXES = sorted(set(FORMATS.values()) | {".jpeg", ".tiff", ".pgm"})


@pytest.fixture(scope="module")
def net():
    return tiny_net()


def encoded(fmt: str, mode: str, w: int, h: int, seed: int) -> bytes | None:
    """A valid file of ``fmt`` holding a random ``w x h`` image of ``mode`` (None if Pillow
    cannot write that mode in that format)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    try:
        img = base.convert(mode) if mode not in ("I;16", "I", "F") else Image.fromarray(
            (rng.random((h, w)) * {"I;16": 65535, "I": 1e6, "F": 1e3}[mode] - (0 if mode == "I;16" else 10)).astype(
                {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def png_with_size(width: int, height: int, data: bytes) -> bytes:
    """A PNG whose header claims ``width x height`` (RGB, 8 bit) over ``data`` as its pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is rewritten to claim ``width x height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@st.composite
def image_files(draw) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["valid", "truncated", "flipped", "spliced", "random", "huge_png", "huge_jpeg",
                                 "wrong_suffix", "empty"]))
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(MODES))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    data = encoded(fmt, mode, w, h, draw(st.integers(0, 2**16)))
    suffix = FORMATS[fmt]
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=600)), draw(st.sampled_from(SUFFIXES))
    if kind == "empty":
        return b"", suffix
    if kind == "huge_png":
        side = draw(st.sampled_from([0, 1, 2**15, 2**16 - 1, 2**31 - 1, 30_000, 12_000]))
        other = draw(st.sampled_from([0, 1, 3, side]))
        return png_with_size(side, other, draw(st.binary(max_size=64))), ".png"
    if kind == "huge_jpeg":
        return jpeg_with_size(draw(st.sampled_from([0, 1, 9_000, 65_500])), draw(st.sampled_from([0, 1, 9_000, 65_500]))), ".jpg"
    if data is None:
        data = encoded(fmt, "RGB", w, h, 0) or b""
    if kind == "truncated" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flipped" and data:
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        data = bytes(b)
    elif kind == "spliced" and data:
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.binary(min_size=1, max_size=64)) + data[i:]
    elif kind == "wrong_suffix":
        suffix = draw(st.sampled_from([s for s in SUFFIXES if s != suffix]))
    return data, suffix


@fuzz_settings(scale=4)
@given(case=image_files(), resize=st.sampled_from([None, "squash", "crop:32", "aspect:32", "aspect:64"]))
def test_odd_image_files_give_a_record_each(net, tmp_path_factory, case, resize):
    data, suffix = case
    path = tmp_path_factory.mktemp("img") / f"case{suffix}"
    path.write_bytes(data)

    def call():
        geometry = None if resize is None else parse_resize(resize)
        return camloc.localize(net, [str(path)], topk=2, backend="torch", resize=geometry)

    def check(recs):
        if len(recs) != 1:
            return f"{len(recs)} records for one input"
        return record_problem(recs[0], str(path))

    recs = run_case("image files", call, check, failed=lambda recs: recs[0]["error"] is not None)
    assert recs[0]["image"] == str(path)
