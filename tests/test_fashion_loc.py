"""The Fashion-MNIST localization benchmark: IDX reader, generator, writer, ``camloc data``."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import struct

import cv2
import numpy as np
import pytest

from camloc.data.fashion_mnist import CLASSES, FASHION_DIR, load_fashion_mnist, read_idx
from camloc.errors import IdxError
from camloc.experiments.fashion_loc import REGIMES, Regime, generate, render, source_indices, tight_box, write_benchmark

HAVE_FMNIST = os.path.isfile(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason="Debian's dataset-fashion-mnist is not installed")


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


# ------------------------------------------------------------------------------------ IDX reader

def test_read_idx_uint8_plain_and_gzip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(a))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(_idx_bytes(a)))
    for name in ("a.idx", "a.idx.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, a)


def test_read_idx_big_endian_int32(tmp_path):
    a = np.array([1, -2, 70000], dtype=np.int32)
    (tmp_path / "b.idx").write_bytes(_idx_bytes(a, code=0x0C))
    got = read_idx(tmp_path / "b.idx")
    assert got.tolist() == [1, -2, 70000]


@pytest.mark.parametrize("data, reason", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX value type 0x07"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "header says shape (3,) (3 bytes) but 1 bytes follow"),
])
def test_read_idx_errors_are_one_line(tmp_path, data, reason):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(IdxError) as err:
        read_idx(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and reason in msg and "\n" not in msg


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(IdxError, match="no such file"):
        read_idx(tmp_path / "nothing.gz")


@needs_fmnist
def test_real_fashion_mnist_shapes_and_balance():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("val")


# ------------------------------------------------------------------------------------ generator

def _toy_source(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Items: a 200-valued rectangle of varying size in a 28x28 frame (never 255)."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        h, w = rng.integers(8, 27, size=2)
        y, x = rng.integers(0, 28 - h), rng.integers(0, 28 - w)
        images[i, y : y + h, x : x + w] = 200
    return images, np.arange(n) % 10


def test_tight_box():
    m = np.zeros((5, 6), bool)
    assert tight_box(m) is None
    m[1, 2] = m[3, 4] = True
    assert tight_box(m) == [2, 1, 4, 3]


def test_clean_box_is_the_tight_box_of_the_visible_pixels():
    source = _toy_source()
    s = generate(REGIMES["clean"], "train", 60, seed=3, source=source)
    for image, box in zip(s.images, s.boxes):
        assert tight_box(image >= REGIMES["clean"].visible) == box.tolist()
    longer = np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1]) + 1
    assert longer.max() <= REGIMES["clean"].item_max and longer.min() >= REGIMES["clean"].item_min - 1


def test_clutter_never_touches_the_item_box():
    # Fragments come from an all-255 pool, the item is 200: inside the box no pixel is 255.
    regime = Regime("t", canvas=64, item_min=20, item_max=30, clutter=12, fragment_min=6, fragment_max=8)
    item = np.zeros((28, 28), np.uint8)
    item[4:24, 6:20] = 200
    pool = np.full((5, 28, 28), 255, np.uint8)
    rng = np.random.default_rng(1)
    for _ in range(30):
        canvas, box = render(rng, item, pool, regime)
        x0, y0, x1, y1 = box
        inside = canvas[y0 : y1 + 1, x0 : x1 + 1]
        assert inside.max() == 200 and (inside == 200).all()
        assert (canvas == 255).sum() >= 6 * 6  # at least one fragment was placed
        assert tight_box(canvas == 200) == box


def test_generation_is_deterministic_and_seeded():
    source = _toy_source()
    a = generate("cluttered", "test", 20, seed=5, source=source)
    b = generate("cluttered", "test", 20, seed=5, source=source)
    c = generate("cluttered", "test", 20, seed=6, source=source)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.images, c.images)
    assert a.labels.tolist() == source[1][a.sources].tolist()


def test_val_and_test_items_are_disjoint_halves():
    val = set(source_indices("val", 10000, seed=0).tolist())
    test = set(source_indices("test", 10000, seed=0).tolist())
    assert len(val) == len(test) == 5000 and not val & test
    assert source_indices("train", 7, seed=0).tolist() == list(range(7))
    source = _toy_source(40)
    v = generate("clean", "val", 20, seed=0, source=source)
    t = generate("clean", "test", 20, seed=0, source=source)
    assert not set(v.sources.tolist()) & set(t.sources.tolist())
    assert len(set(t.sources.tolist())) == 20  # without replacement while items last


def test_bad_regime_is_refused():
    with pytest.raises(ValueError, match="item_max <= canvas"):
        dataclasses.replace(REGIMES["clean"], item_max=80)


# ------------------------------------------------------------------------------------ on disk

def test_write_benchmark_round_trip(tmp_path):
    from camloc.data.wsol import read_wsol

    source_dir = tmp_path / "src"
    source_dir.mkdir()
    images, labels = _toy_source(30)
    for prefix, n in (("train", 30), ("t10k", 30)):
        (source_dir / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images[:n])))
        (source_dir / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels[:n].astype(np.uint8))))
    out = tmp_path / "bench"
    info = write_benchmark(out, "cluttered", {"train": 12, "val": 4, "test": 5}, seed=2, root=source_dir, progress=False)
    assert info["splits"]["test"]["images"] == 5 and info["splits"]["val"]["source_split"] == "test"
    assert json.loads((out / "benchmark.json").read_text())["regime"]["clutter"] == REGIMES["cluttered"].clutter
    expected = generate("cluttered", "test", 5, seed=2, root=source_dir)
    split = read_wsol(out / "test")
    assert split.classes == CLASSES and not split.skipped
    assert [s.label for s in split.samples] == expected.labels.tolist()
    assert [s.boxes for s in split.samples] == [[b.tolist()] for b in expected.boxes]
    for s, image in zip(split.samples, expected.images):
        assert s.size == (64, 64)
        np.testing.assert_array_equal(cv2.imread(s.path, cv2.IMREAD_UNCHANGED), image)


def test_cli_data_fashion_loc(tmp_path, capsys):
    from camloc.cli import main

    if not HAVE_FMNIST:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    rc = main(["data", "fashion-loc", "--out", str(tmp_path / "d"), "--train", "6", "--val", "2", "--test", "3"])
    assert rc == 0
    for regime in ("clean", "cluttered"):
        ids = (tmp_path / "d" / regime / "test" / "image_ids.txt").read_text().split()
        assert len(ids) == 3 and all((tmp_path / "d" / regime / "test" / i).is_file() for i in ids)
    rc = main(["data", "fashion-loc", "--out", str(tmp_path / "e"), "--regime", "clean", "--item-max", "99"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("camloc data: error: regime 'clean'")


@needs_fmnist
def test_camloc_train_and_evaluate_read_the_generated_benchmark(tmp_path):
    """The generated folders are an ordinary dataset for the shared trainer and evaluator."""
    from camloc.data import open_dataset
    from camloc.evaluate import EvalOptions, evaluate
    from camloc.models.registry import load_model
    from camloc.train import train

    write_benchmark(tmp_path / "d", "cluttered", {"train": 64, "val": 16, "test": 16}, seed=0, progress=False)
    result = train({"data": str(tmp_path / "d"), "model": "fashion_gap", "out": str(tmp_path / "run"),
                    "epochs": 1, "batch_size": 32, "lr": 0.01, "resize": 64, "crop": 64, "workers": 0,
                    "progress": False, "model_args": {"widths": [4, 8, 8], "head_channels": 8, "stride": 2}})
    assert result.metrics[-1]["images"] == 64
    net = load_model(result.last)
    assert net.module.map_side == 32 and net.class_names == CLASSES
    split = open_dataset(tmp_path / "d", "test")
    metrics = evaluate(net, split, EvalOptions(topk=1, progress=False)).metrics
    assert metrics["num_images"] == 16 and 0 <= metrics["MaxBoxAcc"] <= 100
