"""Garbled dataset metadata through the readers (WSOL evaluation layout, CUB-200-2011): each
folder gives a split whose samples are consistent, or a one-line ``DataError`` naming the file
(and line); skipped images are listed one line each."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camloc.data.cub import read_cub
from camloc.data.wsol import read_wsol
from _harness import fuzz_settings, one_line, run_case

pytestmark = pytest.mark.fuzz

IDS = ["a/1.jpg", "b/2.png", "c d/3.JPEG", "é/4.jpg", "5"]
ODD_NUMBERS = st.one_of(st.integers(-3, 10**6), st.sampled_from(["1e3", "0x10", "7.5", "", " 3", "-0", "NaN",
                                                           "99999999999999999999", "١٢", "+4"]))
JUNK = st.one_of(st.text(max_size=30), st.sampled_from(["", ",", ",,,,", "\ufeffa/1.jpg", "a/1.jpg,\x00",
                                                        "\x85", "a/1.jpg\r", "# comment"]))


def field(draw) -> str:
    """Mostly a plausible number (a pixel, a class index), sometimes an odd one."""
    return str(draw(ODD_NUMBERS) if rare(draw, 5) else draw(st.integers(0, 40)))


def rare(draw, n: int) -> bool:
    """True about once in ``n`` draws (hypothesis favours small integers, so not ``== 0``)."""
    return draw(st.integers(0, n - 1)) == n // 2


def junk(draw) -> list[str]:
    return draw(st.lists(JUNK, max_size=2)) if rare(draw, 4) else []


@st.composite
def wsol_folder(draw) -> dict[str, bytes]:
    ids = draw(st.lists(st.sampled_from(IDS), min_size=0, max_size=5))

    def lines(make) -> list[str]:
        out = [make(i) for i in ids if not rare(draw, 8)]
        out += junk(draw)
        return draw(st.permutations(out))

    files = {
        "image_ids.txt": lines(lambda i: i),
        "class_labels.txt": lines(lambda i: f"{i},{field(draw)}"),
        "image_sizes.txt": lines(lambda i: f"{i},{field(draw)},{field(draw)}"),
        "localization.txt": lines(
            (lambda i: f"{i},{','.join(field(draw) for _ in range(4))}") if draw(st.booleans())
            else (lambda i: f"{i},{draw(st.sampled_from(['m.png', '', '../m.png']))},{draw(st.sampled_from(['', 'ig.png']))}")),
    }
    if draw(st.booleans()):
        files["class_names.txt"] = draw(st.lists(st.sampled_from(["cat", "", "dog, big", "\x1b[31m"]), max_size=4))
    out = {}
    for name, text in files.items():
        if rare(draw, 16):
            continue  # the file is missing
        body = draw(st.sampled_from(["\n", "\r\n"])).join(text)
        data = body.encode("utf-8", "surrogatepass")
        if rare(draw, 16):
            data = draw(st.binary(max_size=40)) + data  # not UTF-8, or a BOM
        out[name] = data
    return out


@st.composite
def cub_folder(draw) -> dict[str, bytes]:
    n = draw(st.integers(0, 4))
    nums = [str(i + 1) for i in range(n)]

    def lines(make) -> list[str]:
        out = [make(i) for i in nums if not rare(draw, 8)]
        out += junk(draw)
        return draw(st.permutations(out))

    files = {
        "images.txt": lines(lambda i: f"{i} {draw(st.sampled_from(IDS if rare(draw, 6) else IDS[:2]))}"),
        "image_class_labels.txt": lines(lambda i: f"{i} {field(draw) if rare(draw, 6) else draw(st.integers(1, max(n, 1)))}"),
        "classes.txt": lines(lambda i: f"{i} {draw(JUNK)}" if rare(draw, 6) else f"{i} {i}.Bird"),
        "train_test_split.txt": lines(lambda i: f"{i} {field(draw) if rare(draw, 6) else draw(st.integers(0, 1))}"),
        "bounding_boxes.txt": lines(lambda i: " ".join([i] + [field(draw) for _ in range(4)])),
    }
    return {k: "\n".join(v).encode("utf-8", "surrogatepass") for k, v in files.items() if not rare(draw, 16)}


def split_problem(split) -> str | None:
    for s in split.samples:
        if not 0 <= s.label < len(split.classes):
            return f"label {s.label} of {s.image_id!r} outside {len(split.classes)} classes"
        for b in s.boxes:
            if b[0] > b[2] or b[1] > b[3] or min(b) < 0:
                return f"box {b} of {s.image_id!r} is not a box"
            if s.size is not None and (b[2] >= s.size[0] or b[3] >= s.size[1]):
                return f"box {b} of {s.image_id!r} outside its size {s.size}"
    for line in split.skipped:
        if not one_line(line):
            return f"skipped reason on several lines: {line!r}"
    return None


def _write(folder, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


@fuzz_settings(scale=4)
@given(files=wsol_folder(), strict=st.booleans())
def test_garbled_wsol_metadata(tmp_path_factory, files, strict):
    folder = tmp_path_factory.mktemp("wsol")
    _write(folder, files)
    run_case("WSOL metadata", lambda: read_wsol(folder, strict=strict), split_problem)


@fuzz_settings(scale=2)
@given(files=cub_folder(), split=st.sampled_from(["train", "test", "all"]), strict=st.booleans())
def test_garbled_cub_metadata(tmp_path_factory, files, split, strict):
    folder = tmp_path_factory.mktemp("cub")
    _write(folder, files)
    run_case("CUB metadata", lambda: read_cub(folder, split, strict=strict), split_problem)
