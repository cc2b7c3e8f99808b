"""Defects found by outside checks (issue 14), each with the test that found it."""

from __future__ import annotations

import json
import os

from PIL import Image

from camloc.cli import main


def test_odd_file_names_do_not_abort_localize_with_figures(tmp_path, photo_dir):
    """A newline in a file name, or a name too long once ``_topk.png`` is added, used to end the
    whole run ("can't measure length of multiline text", "File name too long")."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    photo = Image.open(f"{photo_dir}/chelsea.png").convert("RGB").resize((96, 64))
    names = ["new\nline.png", "x" * 250 + ".png", "é" * 125 + ".png"]  # 254 bytes each for the long ones
    for name in names:
        photo.save(folder / name)
    out = tmp_path / "out"
    assert main(["localize", str(folder), "--out", str(out), "--topk", "2", "--backend", "torch"]) == 0
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(os.path.basename(r["image"]) for r in recs) == sorted(names)
    assert all(r["error"] is None for r in recs)
    stems = ["new_line", "x" * 200, "é" * 100]  # cut to 200 bytes of UTF-8, whole characters kept
    expected = {f"{s}_{kind}.png" for s in stems for kind in ("cam", "topk")}
    assert set(os.listdir(out / "figures")) == expected
    for s in stems:
        assert Image.open(out / "figures" / f"{s}_cam.png").size == (96, 64)
        assert Image.open(out / "figures" / f"{s}_topk.png").size[0] > 3 * 96  # photo + two panels


def test_printable_escapes_control_characters():
    from camloc.viz import printable

    assert printable("a\nb\tc\x1bd é") == "a\\nb\\tc\\x1bd é"
