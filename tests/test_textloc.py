"""The generated text benchmark: determinism, tight word boxes, scoring, and a small end-to-end run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from camloc.errors import TextlocError
from camloc.experiments.textloc import CLASSES, _part, _photo, make_image, make_textloc, read_textloc, render_words
from camloc.boxes import inside
from camloc.experiments.textloc_score import covered_fraction, random_box_rate


def test_images_are_deterministic_from_the_seed():
    a, boxes_a, words_a = make_image(7, "train", 3, True, size=112)
    b, boxes_b, words_b = make_image(7, "train", 3, True, size=112)
    np.testing.assert_array_equal(a, b)
    assert boxes_a == boxes_b and words_a == words_b and len(words_a) == 1
    c, _, _ = make_image(8, "train", 3, True, size=112)
    d, _, _ = make_image(7, "test", 3, True, size=112)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    e, boxes_e, _ = make_image(7, "train", 4, False, size=112)
    assert e.shape == (112, 112, 3) and e.dtype == np.uint8 and boxes_e == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_word_boxes_are_the_tight_ink_boxes(seed):
    """On a flat background every pixel changed by more than a quarter of the contrast lies in a
    word's box, and each box edge touches such a pixel."""
    bg = np.full((224, 224, 3), 200, np.uint8)
    img, boxes, words = render_words(np.random.default_rng(seed), bg, 2)
    assert 1 <= len(boxes) <= 2 and len(words) == len(boxes)
    change = np.abs(img.astype(int) - 200).max(axis=2)
    contrast = change.max()
    assert contrast > 100  # dark text on a light background
    strong = change > contrast / 4 + 1
    covered = np.zeros_like(strong)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 <= x1 < 224 and 0 <= y0 <= y1 < 224
        covered[y0 : y1 + 1, x0 : x1 + 1] = True
        word = change[y0 : y1 + 1, x0 : x1 + 1]
        edge = word >= word.max() / 4 - 1  # this word's own contrast (colors differ per word)
        assert edge[0].any() and edge[-1].any() and edge[:, 0].any() and edge[:, -1].any()
    assert not (strong & ~covered).any()
    if len(boxes) == 2:  # words do not overlap
        a, b = boxes
        assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def test_training_and_test_backgrounds_are_disjoint_parts():
    photo = _photo("coffee")
    train, test = _part(photo, "train"), _part(photo, "test")
    assert train.shape[0] == test.shape[0] == photo.shape[0]
    assert train.shape[1] + test.shape[1] == photo.shape[1]
    np.testing.assert_array_equal(np.concatenate([train, test], axis=1), photo)


def test_make_and_read(tmp_path):
    splits = make_textloc(tmp_path, 6, 4, seed=1, size=96)
    train, test = splits["train"], splits["test"]
    assert len(train) == 6 and len(test) == 4 and train.classes == CLASSES == ["no_text", "text"]
    assert [s.label for s in train.samples] == [0, 1, 0, 1, 0, 1]
    for s in train.samples + test.samples:
        assert os.path.isfile(s.path) and s.size == (96, 96)
        assert bool(s.boxes) == (s.label == 1)
    meta = json.loads((tmp_path / "textloc.json").read_text())
    assert meta["params"] == {"n_train": 6, "n_test": 4, "seed": 1, "size": 96, "max_words": 1, "font_px": [36, 80]}
    # the same parameters reuse the folder; the files are those of make_image
    mtime = os.stat(train.samples[1].path).st_mtime_ns
    again = make_textloc(tmp_path, 6, 4, seed=1, size=96)
    assert os.stat(train.samples[1].path).st_mtime_ns == mtime
    assert [s.boxes for s in again["train"].samples] == [s.boxes for s in train.samples]
    from PIL import Image

    arr, boxes, _ = make_image(1, "train", 1, True, size=96)
    np.testing.assert_array_equal(np.asarray(Image.open(train.samples[1].path)), arr)
    assert train.samples[1].boxes == boxes


def test_read_errors_are_one_line(tmp_path):
    with pytest.raises(TextlocError) as err:
        read_textloc(tmp_path, "train")
    assert str(err.value) == f"{tmp_path / 'textloc.json'}: no such file (write the benchmark with make_textloc)"
    (tmp_path / "textloc.json").write_text("{not json")
    with pytest.raises(TextlocError, match="textloc.json: unreadable"):
        read_textloc(tmp_path, "train")
    make_textloc(tmp_path / "ok", 2, 2, size=64)
    with pytest.raises(TextlocError, match="no split 'val' \\(has train, test\\)"):
        read_textloc(tmp_path / "ok", "val")


def test_scoring_helpers_closed_form():
    assert inside((5, 5), [5, 5, 5, 5]) and not inside((6, 5), [5, 5, 5, 5])
    assert inside((7, 5), [5, 5, 5, 5], tolerance=2)
    # two 5x5 boxes overlapping in a 2x2 square: 46 of 100 pixels
    assert covered_fraction([[0, 0, 4, 4], [3, 3, 7, 7]], (10, 10)) == pytest.approx(46 / 100)
    rng = np.random.default_rng(0)
    # a same-size box in a 10 x 1 image at x0 in 0..5 hits [0, 4] when its overlap o >= 4: x0 in {0, 1}
    assert random_box_rate([[0, 0, 4, 0]], (10, 1), rng, 30_000, like=[3, 0, 7, 0]) == pytest.approx(1 / 3, abs=0.01)
    # uniform corners in a 2 x 1 image: boxes [0,0] [1,1] [0,1] w.p. 1/4, 1/4, 1/2; the GT [0, 1]
    # is hit (IoU >= 0.5) by all of them
    assert random_box_rate([[0, 0, 1, 0]], (2, 1), rng, 1000) == 1.0
    # ... and the GT [0, 0] by [0,0] (1/4) and [0,1] (IoU 1/2, 1/2)
    assert random_box_rate([[0, 0, 0, 0]], (2, 1), rng, 40_000) == pytest.approx(0.75, abs=0.01)


@pytest.mark.slow
def test_small_benchmark_localizes_text_well_above_random(tmp_path):
    """Small mode, the embedded backbone at 448 px: the probe's CAM finds the words far more often
    than random boxes and random points on the same images."""
    import camloc
    from camloc.experiments.textloc_score import choose_threshold, score_textloc
    from camloc.probe import fit_probe

    splits = make_textloc(tmp_path, 40, 24, seed=0)
    net = camloc.load_model("efficientnet_lite0")
    net.preprocessing = camloc.Preprocessing(shape=(448, 448), mean=net.preprocessing.mean, std=net.preprocessing.std)
    probe = fit_probe(net, splits["train"], progress=False)
    threshold, by_t = choose_threshold(net, probe, splits["train"], max_images=10, progress=False)
    assert by_t[threshold] == max(by_t.values()) and by_t[threshold] > 0
    res = score_textloc(net, probe, splits["test"], thresholds=(0.2, threshold), progress=False)
    assert res["n_images"] == 24 and res["n_text"] == 12 and res["skipped"] == []
    assert res["accuracy"] >= 0.6
    loc = res["localization"][threshold]
    assert loc >= 2 / 12
    assert loc >= 3 * res["random_box_same_size"][threshold] and loc >= 10 * res["random_box"]
    assert res["pointing"] >= 2 * res["random_point"] and res["pointing"] >= 0.4
    # per-image records agree with the aggregate
    assert np.mean([r["iou"][threshold] >= 0.5 for r in res["per_image"]]) == pytest.approx(loc)
