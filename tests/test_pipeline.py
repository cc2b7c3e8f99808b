"""The inference pipeline: geometry, decoding, inputs, backends, order, records."""

from __future__ import annotations

import glob
import itertools
import json
import os
import threading

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

import camloc
from camloc.boxes import box_grid, scale_box, boxes_from_map
from camloc.readings import upsample
from camloc.errors import ImageError
from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.pipeline import Job, Pipeline, Resize, iter_paths, parse_resize
from camloc.pipeline.backends import cached_graph, graph_key
from camloc.pixels.decode import decode
from camloc.pipeline.records import JsonlWriter

# --------------------------------------------------------------------------- geometry


def test_aspect_mode_keeps_the_whole_image_at_its_aspect_rounded_to_the_stride():
    r = Resize("aspect", 256)
    assert r.input_size((500, 375)) == (352, 256)  # 341.3 -> 352
    assert r.input_size((375, 500)) == (256, 352)
    assert r.input_size((500, 333)) == (384, 256)  # 384.4 -> 384
    assert r.input_size((300, 300)) == (256, 256)
    assert r.input_size((4000, 400)) == (768, 256)  # ratio 10 capped at 3
    assert Resize("squash").input_size((500, 375), net_shape=(240, 320)) == (320, 240)
    assert Resize("crop", 224).input_size((500, 375)) == (224, 224)


def test_parse_resize():
    assert parse_resize("aspect:288") == Resize("aspect", 288)
    assert parse_resize("aspect") == Resize("aspect", 256)
    assert parse_resize("squash").mode == "squash"
    assert parse_resize("crop:224") == Resize("crop", 224)
    for bad in ("fit", "aspect:x", "aspect:8"):
        with pytest.raises(ValueError):
            parse_resize(bad)


def test_box_grid_and_scale_box_written_out():
    assert box_grid((800, 600), 1024) == (800, 600)
    assert box_grid((4000, 3000), 1000) == (1000, 750)
    # The grid is the image: identity.
    assert scale_box([3, 4, 10, 12], (800, 600), (800, 600)) == [3, 4, 10, 12]
    # 4x: grid pixel 10 samples original pixel 41.5; the first pixel above lies in (37.5, 41.5].
    assert scale_box([10, 0, 19, 749], (1000, 750), (4000, 3000)) == [40, 0, 80, 2999]


def _blob(cx: float, cy: float, sigma: float, h: int = 7, w: int = 9) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2)).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(cx=st.floats(1, 7), cy=st.floats(1, 5), sigma=st.floats(0.8, 3), width=st.integers(1100, 3200),
       height=st.integers(1100, 2600))
def test_boxes_on_a_capped_grid_are_within_a_grid_step_of_full_resolution(cx, cy, sigma, width, height):
    raw = _blob(cx, cy, sigma)
    full = boxes_from_map(upsample(raw, (height, width)))[0]
    grid = box_grid((width, height), 1024)
    small = scale_box(boxes_from_map(upsample(raw, (grid[1], grid[0])))[0], grid, (width, height))
    step = max(width / grid[0], height / grid[1])
    assert max(abs(a - b) for a, b in zip(full, small)) <= step / 2 + 1.5


# --------------------------------------------------------------------------- decoding


def test_arrays_of_every_layout_and_dtype(tmp_path):
    rgb = (np.arange(24 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 3)
    squash = Resize("squash")
    ref = decode(rgb, squash, (24, 32)).pixels
    assert ref.shape == (24, 32, 3) and np.array_equal(ref, rgb)
    assert np.array_equal(decode(np.moveaxis(rgb, -1, 0), squash, (24, 32)).pixels, rgb)  # C x H x W
    assert np.array_equal(decode(rgb / 255.0, squash, (24, 32)).pixels, rgb)  # floats in [0, 1]
    assert np.array_equal(decode(rgb.astype(np.int16), squash, (24, 32)).pixels, rgb)
    gray = rgb[..., :1]
    assert np.array_equal(decode(gray, squash, (24, 32)).pixels, np.repeat(gray, 3, axis=2))  # H x W x 1
    assert np.array_equal(decode(rgb.astype(np.uint16) * 257, squash, (24, 32)).pixels, rgb)
    for bad, why in [(np.zeros((4, 4, 5), np.uint8), "not an image"), (np.full((4, 4), -3, np.int16), "span"),
                     (np.array([[None]]), "dtype object"), (np.full((4, 4), np.nan), "NaN"),
                     (Image.new("RGB", (0, 0)), "empty")]:
        with pytest.raises(ImageError, match=why):
            decode(bad, squash, (24, 32), name="x")


def test_reduced_jpeg_decoding_reports_the_original_size_and_orientation(tmp_path, photo_dir):
    photo = np.asarray(Image.open(f"{photo_dir}/chelsea.png").convert("RGB"))
    big = cv2.resize(photo, (3608, 2400), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    Image.fromarray(big).save(path, quality=92, exif=exif)
    r = Resize("aspect", 256)
    fast = decode(str(path), r, (224, 224), display=600)
    full = decode(str(path), r, (224, 224), display=600, draft=False)
    assert fast.size == full.size == (2400, 3608)
    assert fast.pixels.shape == full.pixels.shape == (384, 256, 3)
    assert fast.display.shape == (600, 399, 3)
    # Twice the needed resolution kept: the network sees the pixels of a full decode.
    assert np.abs(fast.pixels.astype(float) - full.pixels).mean() < 0.6


def test_reduced_decoding_keeps_classes_and_boxes_on_large_real_photos(tmp_path, lite0):
    photos = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                           "imagenet-samples", "images", "*.JPEG")))[:8]
    if not photos:
        pytest.skip("../shared/data/imagenet-samples is not there")
    paths = []
    for i, p in enumerate(photos):
        a = np.asarray(Image.open(p).convert("RGB"))
        big = cv2.resize(a, (a.shape[1] * 8, a.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(big).save(paths[-1], quality=90)
    recs = {}
    for draft in (True, False):
        pipe = Pipeline(lite0, resize=Resize("aspect", 256), topk=1, draft=draft, backend="torch", progress=False)
        recs[draft] = list(pipe.run(paths))
    moves = []
    for a, b in zip(recs[True], recs[False]):
        assert a.size == b.size and a.classes[0] == b.classes[0]
        rel = np.abs(a.maps[0] - b.maps[0]).max() / np.ptp(b.maps[0])
        assert rel < 0.05
        ba = boxes_from_map(upsample(a.maps[0], (a.size[1] // 4, a.size[0] // 4)))[0]
        bb = boxes_from_map(upsample(b.maps[0], (b.size[1] // 4, b.size[0] // 4)))[0]
        moves.append(max(abs(x - y) for x, y in zip(ba, bb)) * 4 / max(a.size))
    # The 20 % rule is discontinuous, so a box can jump on a near tie; typically it moves by less
    # than 1 % of the image side.
    assert np.median(moves) < 0.01


# --------------------------------------------------------------------------- inputs


def test_iter_paths_streams_folders_in_order_and_keeps_what_needs_a_record(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "dir.jpg").mkdir()  # a folder named like an image is walked, not reported
    for name in ("b/2.png", "a.jpg", "b/1.png", "notes.txt", "dir.jpg/3.png"):
        (tmp_path / name).write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    errors = []
    got = list(iter_paths([str(tmp_path), str(tmp_path / "none.png"), str(tmp_path / "*.nothing")], errors.append))
    assert [os.path.relpath(p, tmp_path) for p in got] == [
        "a.jpg", "b/1.png", "b/2.png", "dangling.png", "dir.jpg/3.png", "loop.png", "pipe.jpg", "none.png"]
    assert errors == [f"{tmp_path / '*.nothing'}: pattern matched no files"]
    assert isinstance(iter_paths([str(tmp_path)]), type(x for x in ()))  # a generator: nothing listed ahead
    res = list(Pipeline(_tiny(), backend="torch", topk=1, progress=False).run(got[3:]))
    reasons = [r.error.split(": ", 1)[1] for r in res]
    assert reasons[0] == "no such file" and "not a regular file" in reasons[3] and reasons[4] == "no such file"
    assert "symbolic links" in reasons[2] and reasons[1].startswith("not an image")


def test_a_pipe_among_the_inputs_is_an_error_record_not_a_hang(tmp_path, tiny_rgb):
    fifo = tmp_path / "stuck.jpg"
    os.mkfifo(fifo)
    good = np.zeros((20, 20, 3), np.uint8)
    done = []
    worker = threading.Thread(target=lambda: done.extend(Pipeline(tiny_rgb, backend="torch", topk=1).run([str(fifo), good])))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive() and len(done) == 2
    assert "not a regular file" in done[0].error and done[1].error is None


# --------------------------------------------------------------------------- the run


class TinyRgb(nn.Module):
    """3-channel input -> 1x1 conv (the channel mean) -> ReLU -> GAP -> linear (classes: +1, -1).

    With preprocessing mean 0 and std 1 the features are ``relu(mean_c x / 255)``, so the map of
    class 0 is that image, and of class 1 its negative."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 3)
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


def _tiny() -> CamNet:
    return CamNet(TinyRgb().eval(), "tiny_rgb", ["bright", "dark"],
                  Preprocessing(shape=(16, 16), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))


@pytest.fixture
def tiny_rgb() -> CamNet:
    return _tiny()


def test_closed_form_maps_and_order_across_shape_buckets(tiny_rgb):
    images = []
    for w, h in [(40, 20), (20, 40), (40, 20), (32, 32), (20, 40)]:
        a = np.zeros((h, w, 3), np.uint8)
        a[:, w // 2 :] = 255  # right half white
        images.append(a)
    pipe = Pipeline(tiny_rgb, resize=Resize("aspect", 32, stride=8), backend="torch", topk=2, batch_size=2,
                    workers=2, progress=False)
    results = list(pipe.run(images))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.input_size for r in results] == [(64, 32), (32, 64), (64, 32), (32, 32), (32, 64)]
    for r, img in zip(results, images):
        assert list(r.classes) == [0, 1]
        expected = cv2.resize(img, r.input_size, interpolation=cv2.INTER_LINEAR).mean(axis=2) / 255.0
        np.testing.assert_allclose(r.maps[0], expected, atol=1e-5)
        np.testing.assert_allclose(r.maps[1], -expected, atol=1e-5)
        np.testing.assert_allclose(r.logits[0], expected.mean(), atol=1e-5)  # S_c = mean M_c + b_c


def test_extra_classes_pooled_features_and_errors_in_place(tiny_rgb, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    white = np.full((16, 16, 3), 255, np.uint8)
    jobs = [Job(white, 0, "w", tag="a", classes=(1,)), Job(str(bad), 1, str(bad), tag="b", classes=(0,)),
            Job(white, 2, "w2", tag="c", classes=(0,))]
    res = list(Pipeline(tiny_rgb, resize=Resize("squash"), backend="torch", topk=1, keep="pooled").run(jobs))
    assert [r.job.tag for r in res] == ["a", "b", "c"]
    assert res[1].error.startswith(str(bad)) and "\n" not in res[1].error
    np.testing.assert_allclose(res[0].extra_maps[0], -np.ones((16, 16)), atol=1e-6)
    np.testing.assert_allclose(res[2].extra_maps[0], np.ones((16, 16)), atol=1e-6)
    np.testing.assert_allclose(res[0].pooled, [1.0], atol=1e-6)


def test_the_input_is_consumed_as_a_stream(tiny_rgb):
    pulled = []

    def endless():
        for i in itertools.count():
            pulled.append(i)
            yield np.full((8, 8, 3), i % 255, np.uint8)

    pipe = Pipeline(tiny_rgb, resize=Resize("squash"), backend="torch", topk=1, batch_size=4, progress=False)
    first = list(itertools.islice(pipe.run(endless()), 5))
    assert [r.index for r in first] == [0, 1, 2, 3, 4]
    assert pipe.default_window() == 64  # 16 batches of 4: nothing but the network's pixels is kept
    assert len(pulled) <= 3 * 64  # at most the windows in flight, never the whole input
    pulled.clear()
    windowed = Pipeline(tiny_rgb, resize=Resize("squash"), backend="torch", topk=1, batch_size=4, progress=False,
                        window=8)
    assert [r.index for r in itertools.islice(windowed.run(endless()), 5)] == [0, 1, 2, 3, 4]
    assert len(pulled) <= 3 * 8


def test_non_finite_scores_are_an_error_record(tiny_rgb):
    with torch.no_grad():
        tiny_rgb.module.fc.bias.fill_(float("nan"))
    res = list(Pipeline(tiny_rgb, resize=Resize("squash"), backend="torch", topk=1).run([np.zeros((8, 8, 3), np.uint8)]))
    assert res[0].error is not None and "not finite" in res[0].error


# --------------------------------------------------------------------------- backends


def test_onnx_graph_is_cached_checked_once_and_rebuilt_when_the_weights_change(tiny_rgb, tmp_path):
    path, built = cached_graph(tiny_rgb, tmp_path)
    assert built and path.is_file()
    again, built_again = cached_graph(tiny_rgb, tmp_path)
    assert again == path and not built_again
    key = graph_key(tiny_rgb)
    with torch.no_grad():
        tiny_rgb.module.fc.weight.mul_(2)
    assert graph_key(tiny_rgb) != key
    changed, rebuilt = cached_graph(tiny_rgb, tmp_path)
    assert rebuilt and changed != path
    # The graph has dynamic height and width: every aspect bucket runs in it, as in PyTorch.
    images = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
              for i, (w, h) in enumerate([(40, 24), (24, 40), (33, 33)])]
    kw = dict(resize=Resize("aspect", 16, stride=8), topk=2, progress=False)
    onnx = list(Pipeline(tiny_rgb, backend="onnxruntime", **kw).run(images))
    eager = list(Pipeline(tiny_rgb, backend="torch", **kw).run(images))
    for a, b in zip(onnx, eager):
        assert a.maps.shape == b.maps.shape
        np.testing.assert_allclose(a.maps, b.maps, atol=1e-5)
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)


def test_onnx_graph_key_follows_the_structure_not_only_the_weights(tiny_rgb, tmp_path):
    path, _ = cached_graph(tiny_rgb, tmp_path)
    key = graph_key(tiny_rgb)
    tiny_rgb.module.conv.stride = (2, 2)  # same weights, a different net: a cached graph would be stale
    assert graph_key(tiny_rgb) != key
    strided, rebuilt = cached_graph(tiny_rgb, tmp_path)
    assert rebuilt and strided != path
    image = np.full((32, 32, 3), 200, np.uint8)
    onnx = next(iter(Pipeline(tiny_rgb, backend="onnxruntime", resize=Resize("aspect", 32, stride=8), topk=1,
                              progress=False).run([image])))
    assert onnx.maps.shape[-2:] == (16, 16)


def test_auto_backend_is_onnxruntime_on_cpu_with_or_without_a_method(tiny_rgb, tmp_path, monkeypatch):
    from camloc.methods import get_method

    monkeypatch.setenv("CAMLOC_CACHE", str(tmp_path))
    assert Pipeline(tiny_rgb).backend_name == "onnxruntime"
    # a map method's forward passes without gradients run there too (its backward passes in PyTorch)
    assert Pipeline(tiny_rgb, method=get_method("gradcam")).backend_name == "onnxruntime"
    assert Pipeline(tiny_rgb, method=get_method("gradcam"), backend="torch").backend_name == "torch"
    with pytest.raises(ValueError, match="unknown backend"):
        Pipeline(tiny_rgb, backend="tensorrt")


# --------------------------------------------------------------------------- records


def test_record_parts_merge_in_input_order_and_nan_is_refused(tmp_path):
    out = tmp_path / "results.jsonl"
    writers = [JsonlWriter(out, r, 2) for r in range(2)]
    for i in range(7):
        writers[i % 2].write(i, {"image": f"{i}.jpg"})
    for w in writers:
        w.finish_part()
    assert writers[0].merge() == 7
    assert [json.loads(line)["image"] for line in out.read_text().splitlines()] == [f"{i}.jpg" for i in range(7)]
    assert sorted(os.listdir(tmp_path)) == ["results.jsonl"]
    with JsonlWriter(tmp_path / "one.jsonl") as w, pytest.raises(ValueError):
        w.write(0, {"score": float("nan")})


def test_localize_api_refuses_what_the_cli_refuses(lite0):
    for kw in ({"topk": 0}, {"threshold": float("nan")}, {"batch_size": 0}, {"threshold": 1.0}):
        with pytest.raises(ValueError):
            camloc.localize(lite0, [np.zeros((8, 8, 3), np.uint8)], **kw)


def test_a_decoder_that_crashes_its_worker_costs_one_image(tmp_path, tiny_rgb):
    from pipeline_helpers import crashing_decoder

    paths = []
    for i in range(6):
        name = "crash.png" if i == 2 else f"{i}.png"
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    pipe = Pipeline(tiny_rgb, resize=Resize("squash"), backend="torch", topk=1, workers=2, isolate=True,
                    decoder=crashing_decoder, progress=False)
    res = list(pipe.run(paths))
    assert [r.index for r in res] == list(range(6))
    assert "decoder crashed" in res[2].error
    assert all(r.error is None for i, r in enumerate(res) if i != 2)
    np.testing.assert_allclose([r.logits[0] for r in res if r.error is None], [40 * i / 255 for i in (0, 1, 3, 4, 5)],
                               atol=1e-5)


def test_default_geometry_is_aspect_for_convnets_and_square_for_attention_nets(tiny_rgb, lite0):
    import torchvision

    from camloc.localize import default_resize

    assert default_resize(tiny_rgb) == Resize("aspect", 32)  # 16-pixel net: at least one stride
    assert default_resize(lite0) == Resize("aspect", 224)  # a 224 net: its own side
    swin = camloc.load_model(torchvision.models.swin_t(weights=None))
    assert default_resize(swin).mode == "squash"  # built for one input size
