"""Odd file names (control characters, long, unicode, leading dashes) through ``camloc
localize`` with figures: exit 0, one strict-JSON record per image under its name, two figures
per image with printable names, and nothing unprintable on the terminal."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import camloc
from camloc.cli import main
from _harness import fuzz_settings, run_case

pytestmark = pytest.mark.fuzz

ALPHABET = st.one_of(st.characters(codec="utf-8", exclude_characters="/\x00"),
                     st.sampled_from(["\n", "\r", "\t", "\x1b", "\x7f", "\u202e", "\u0301", "😀", " ", "-", "."]))


def names():
    stem = st.text(ALPHABET, min_size=1, max_size=80).map(lambda s: s.lstrip("."))
    long = st.integers(150, 246).map(lambda n: "x" * n)
    return st.one_of(stem, long).filter(lambda s: s and len((s + ".png").encode()) <= 255)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    camloc.save_checkpoint(camloc.load_model("fashion_gap", num_classes=3, in_size=32, widths=(4, 8)), path)
    return str(path)


@fuzz_settings(scale=0.25)
@given(stems=st.lists(names(), min_size=1, max_size=4, unique_by=lambda s: (s + ".png").encode()))
def test_odd_names_through_the_cli(model, tmp_path_factory, capsys, stems):
    folder = tmp_path_factory.mktemp("names")
    out = tmp_path_factory.mktemp("out")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8))
    files = []
    for stem in stems:
        path = folder / (stem + ".png")
        photo.save(path, format="PNG")
        files.append(str(path))

    def call():
        code = main(["localize", str(folder), "--out", str(out), "--topk", "2", "--backend", "torch", "--model", model])
        return code, capsys.readouterr()

    def check(result):
        code, captured = result
        if code != 0:
            return f"exit {code}: {captured.err[-500:]!r}"
        for stream in (captured.out, captured.err):
            bad = [c for c in stream if not c.isprintable() and c != "\n"]
            if bad:
                return f"unprintable {bad[:3]!r} on the terminal"
        recs = [json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
                for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()[1:]]
        if sorted(r["image"] for r in recs) != sorted(files) or any(r["error"] for r in recs):
            return f"records {[(r['image'], r['error']) for r in recs]!r} for {files!r}"
        figures = os.listdir(out / "figures")
        if len(figures) != 2 * len(files) or not all(f.isprintable() and len(f.encode()) <= 255 for f in figures):
            return f"figures {figures!r} for {len(files)} images"
        return None

    run_case("file names", call, check)
