"""The Fashion-MNIST localization benchmark's ground-truth masks (for PxAP): what a mask holds,
that asking for masks leaves the random stream (canvases, boxes) as it was, the ``masks.txt``
layout, and adding masks to a benchmark an earlier camloc wrote without them."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import cv2
import numpy as np
import pytest
from test_fashion_loc import _toy_source

from camloc.data import DataError, Sample, Split, read_wsol, write_wsol
from camloc.data.fashion_mnist import FASHION_DIR, load_fashion_mnist
from camloc.experiments.fashion_loc import (
    REGIMES,
    Regime,
    add_masks,
    generate,
    has_masks,
    render,
    render_with_mask,
    tight_box,
    write_benchmark,
)
from camloc.metrics.pxap import PxAPEvaluator, ground_truth

HAVE_FMNIST = os.path.isfile(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))


def _digest(s) -> str:
    d = hashlib.sha256()
    for a in (s.images, s.boxes.astype(np.int64), s.labels.astype(np.int64), s.sources.astype(np.int64)):
        d.update(np.ascontiguousarray(a).tobytes())
    return d.hexdigest()[:16]


# Computed with the generator as it was before masks existed (commit b737a8d): 9 canvases per split.
GOLDEN_TOY = {  # _toy_source(), seed 4
    ("clean", "train"): "6fe044030aa91f94", ("clean", "val"): "2532a5047777c2d8", ("clean", "test"): "bcfd92a821ce8c0d",
    ("cluttered", "train"): "f79a2aa6b737ceab", ("cluttered", "val"): "36716e9592ef5859",
    ("cluttered", "test"): "50714411bb2acdc3",
}
GOLDEN_REAL = {  # Debian's Fashion-MNIST, seed 0
    ("clean", "train"): "746265b7d84b2074", ("clean", "val"): "14cb23e8427e911e", ("clean", "test"): "1bbdeadb5b5238eb",
    ("cluttered", "train"): "ed076f73a28fdee8", ("cluttered", "val"): "9f285dd4b80900b7",
    ("cluttered", "test"): "f6b151cc837d4485",
}


def test_masks_leave_canvases_and_boxes_as_before():
    source = _toy_source()
    for (regime, split), digest in GOLDEN_TOY.items():
        s = generate(regime, split, 9, seed=4, source=source)
        assert _digest(s) == digest, (regime, split)
        assert s.masks is not None and s.masks.shape == s.images.shape and s.masks.dtype == bool


@pytest.mark.skipif(not HAVE_FMNIST, reason="Debian's dataset-fashion-mnist is not installed")
def test_masks_leave_real_canvases_and_boxes_as_before():
    sources = {k: load_fashion_mnist(k) for k in ("train", "test")}
    for (regime, split), digest in GOLDEN_REAL.items():
        s = generate(regime, split, 9, seed=0, source=sources["train" if split == "train" else "test"])
        assert _digest(s) == digest, (regime, split)


def test_mask_of_one_canvas_is_the_items_visible_pixels():
    # An item whose visible part is a 14x20 plus sign (200) with faint pixels (10) around it; the
    # regime draws it at its own size (longer side 20: scale 1), so its crop is placed unchanged.
    item = np.zeros((28, 28), np.uint8)
    item[3:23, 5:19] = 10
    item[3:23, 10:13] = 200          # the vertical bar: rows 3..22, columns 10..12
    item[11:14, 5:19] = 200          # the horizontal bar: rows 11..13, columns 5..18
    crop_visible = item[3:23, 5:19] >= 25  # the tight box of the visible pixels, 20 rows x 14 columns
    regime = Regime("t", canvas=48, item_min=20, item_max=20, clutter=6, fragment_min=4, fragment_max=6)
    pool = np.full((3, 28, 28), 255, np.uint8)  # fragments are 255: never item pixels
    rng = np.random.default_rng(3)
    for _ in range(10):
        state = rng.bit_generator.state
        canvas, box, mask = render_with_mask(rng, item, pool, regime)
        rng2 = np.random.default_rng()
        rng2.bit_generator.state = state
        canvas2, box2 = render(rng2, item, pool, regime)  # the same draws without the mask
        assert np.array_equal(canvas, canvas2) and box == box2
        assert rng.bit_generator.state == rng2.bit_generator.state
        x0, y0, x1, y1 = box
        assert (x1 - x0 + 1, y1 - y0 + 1) == (14, 20)
        want = np.zeros((48, 48), bool)
        want[y0 : y1 + 1, x0 : x1 + 1] = crop_visible
        np.testing.assert_array_equal(mask, want)
        assert mask.sum() == 3 * 20 + 3 * 14 - 9 and tight_box(mask) == box
        assert (canvas[mask] == 200).all() and (canvas == 255).any()  # clutter drawn, never in the mask


def test_generated_masks_are_the_visible_pixels_in_the_box():
    source = _toy_source()
    for regime in ("clean", "cluttered"):
        s = generate(regime, "train", 30, seed=1, source=source)
        for image, box, mask in zip(s.images, s.boxes, s.masks):
            x0, y0, x1, y1 = box
            inside = np.zeros_like(mask)
            inside[y0 : y1 + 1, x0 : x1 + 1] = True
            np.testing.assert_array_equal(mask, (image >= REGIMES[regime].visible) & inside)
            assert tight_box(mask) == box.tolist()


def _fake_source(folder, n: int = 40) -> str:
    images, labels = _toy_source(n)

    def idx(a: np.ndarray) -> bytes:
        return bytes([0, 0, 8, a.ndim]) + b"".join(int(v).to_bytes(4, "big") for v in a.shape) + a.tobytes()

    os.makedirs(folder, exist_ok=True)
    for prefix in ("train", "t10k"):
        with open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
            f.write(gzip.compress(idx(images)))
        with open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
            f.write(gzip.compress(idx(labels.astype(np.uint8))))
    return str(folder)


def test_written_masks_read_back_and_score_pxap_in_closed_form(tmp_path):
    src = _fake_source(tmp_path / "src")
    info = write_benchmark(tmp_path / "b", "cluttered", {"train": 4, "val": 3, "test": 6}, seed=2, root=src,
                           progress=False)
    assert info["masks"] is True and has_masks(tmp_path / "b")
    expected = generate("cluttered", "test", 6, seed=2, root=src)
    split = read_wsol(tmp_path / "b" / "test")
    assert [s.boxes for s in split.samples] == [[b.tolist()] for b in expected.boxes]  # boxes stay in localization.txt
    gts = []
    for s, mask in zip(split.samples, expected.masks):
        assert s.masks == [str(tmp_path / "b" / "test" / "masks" / s.image_id)] and s.ignore is None
        np.testing.assert_array_equal(cv2.imread(s.mask, cv2.IMREAD_UNCHANGED), mask.astype(np.uint8) * 255)
        gt = ground_truth(s.masks, s.ignore)
        resized = cv2.resize(mask.astype(np.uint8), (224, 224), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(gt, resized)
        gts.append(gt)
    perfect = PxAPEvaluator()
    perfect.accumulate([g.astype(np.float32) for g in gts], gts)
    assert perfect.compute()["PxAP"] == pytest.approx(100.0)
    constant = PxAPEvaluator()
    constant.accumulate([np.full((224, 224), 0.37, np.float32) for _ in gts], gts)
    fraction = sum(int(g.sum()) for g in gts) / (len(gts) * 224 * 224)
    assert 0 < fraction < 0.5
    assert constant.compute()["PxAP"] == pytest.approx(100 * fraction)
    # write_wsol keeps both on a round trip: boxes in localization.txt, masks in masks.txt
    write_wsol(split, tmp_path / "copy", mask_root=tmp_path / "b" / "test")
    again = read_wsol(tmp_path / "copy", image_root=tmp_path / "b" / "test")
    assert [(s.boxes, s.masks) for s in again.samples] == [(s.boxes, s.masks) for s in split.samples]


def test_masks_txt_beside_mask_localization_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "image_ids.txt").write_text("a.png\n")
    (folder / "class_labels.txt").write_text("a.png,0\n")
    (folder / "localization.txt").write_text("a.png,a_m.png,\n")
    (folder / "masks.txt").write_text("a.png,a_m.png,\n")
    with pytest.raises(DataError, match="masks.txt: localization.txt already holds masks"):
        read_wsol(folder)
    (folder / "localization.txt").write_text("a.png,0,0,3,3\n")
    (folder / "masks.txt").write_text("b.png,b_m.png,\n")  # a box image without its mask line: left out
    (folder / "image_ids.txt").write_text("a.png\nb.png\n")
    (folder / "class_labels.txt").write_text("a.png,0\nb.png,0\n")
    (folder / "localization.txt").write_text("a.png,0,0,3,3\nb.png,1,1,2,2\n")
    split = read_wsol(folder)
    assert [s.image_id for s in split.samples] == ["b.png"] and split.samples[0].boxes == [[1, 1, 2, 2]]
    assert "masks.txt: no line for image id 'a.png'" in split.skipped[0]


def test_add_masks_to_a_benchmark_written_without_them(tmp_path):
    src = _fake_source(tmp_path / "src")
    old, new = tmp_path / "old", tmp_path / "new"
    write_benchmark(old, "cluttered", {"train": 5, "val": 3, "test": 4}, seed=7, root=src, progress=False, masks=False)
    write_benchmark(new, "cluttered", {"train": 5, "val": 3, "test": 4}, seed=7, root=src, progress=False)
    assert not has_masks(old) and not (old / "test" / "masks.txt").exists()
    assert read_wsol(old / "test").samples[0].masks == []

    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    before = files(old)
    info = add_masks(old, root=src, progress=False)
    assert info["masks"] is True and has_masks(old)
    after, fresh = files(old), files(new)
    assert {k: after[k] for k in before if k != "benchmark.json"} == {k: v for k, v in before.items()
                                                                     if k != "benchmark.json"}  # nothing rewritten
    assert set(after) == set(fresh) and all(after[k] == fresh[k] for k in fresh)  # as if written with masks

    # a stored image that is not the regenerated one: refused in one line, nothing written
    bad = tmp_path / "bad"
    write_benchmark(bad, "cluttered", {"train": 5, "val": 3, "test": 4}, seed=7, root=src, progress=False, masks=False)
    first = read_wsol(bad / "test").samples[1].path
    image = cv2.imread(first, cv2.IMREAD_UNCHANGED)
    image[0, 0] ^= 1
    cv2.imwrite(first, image)
    with pytest.raises(DataError) as err:
        add_masks(bad, root=src, progress=False)
    assert str(err.value).startswith(f"{first}: differs from the regenerated image (regenerated with seed 7")
    assert "\n" not in str(err.value)
    assert not any(bad.rglob("masks.txt")) and not any(bad.rglob("masks")) and not has_masks(bad)
    # another seed than the one the benchmark was written with: the first split checked differs
    meta = json.loads((bad / "benchmark.json").read_text())
    meta["seed"] = 8
    (bad / "benchmark.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="regenerated with seed 8"):
        add_masks(bad, root=src, progress=False)


def test_cli_add_masks(tmp_path, capsys):
    from camloc.cli import main

    src = _fake_source(tmp_path / "src")
    args = ["data", "fashion-loc", "--out", str(tmp_path / "d"), "--train", "3", "--val", "2", "--test", "2",
            "--source", src]
    assert main([*args, "--no-masks"]) == 0
    assert not has_masks(tmp_path / "d" / "clean") and not has_masks(tmp_path / "d" / "cluttered")
    assert main([*args, "--add-masks"]) == 0
    out = capsys.readouterr().out
    assert "masks added to 7 images" in out
    assert has_masks(tmp_path / "d" / "clean") and has_masks(tmp_path / "d" / "cluttered")
    assert main(["data", "fashion-loc", "--out", str(tmp_path / "none"), "--add-masks"]) == 1
    assert "no benchmark.json there" in capsys.readouterr().err


def test_split_with_masks_but_some_without_is_refused_on_write(tmp_path):
    samples = [Sample("a.png", str(tmp_path / "a.png"), 0, boxes=[[0, 0, 1, 1]], size=(4, 4),
                      mask=str(tmp_path / "m.png"), masks=[str(tmp_path / "m.png")]),
               Sample("b.png", str(tmp_path / "b.png"), 0, boxes=[[0, 0, 1, 1]], size=(4, 4))]
    with pytest.raises(DataError, match="no mask while other samples have masks"):
        write_wsol(Split(samples, ["x"], "t"), tmp_path / "w")
