"""The feature cache: reused when nothing changed, rebuilt when the backbone or data change."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from probe_nets import color_split

import camloc
from camloc.probe import (
    ProbeError,
    compute_features,
    extract_features,
    feature_key,
    fit_probe,
    load_feature_cache,
)


@pytest.fixture()
def split(tmp_path):
    return color_split(str(tmp_path / "data"), 2, seed=3)


def net(seed: int = 0):
    return camloc.load_model("test_randomnet", seed=seed)


def test_second_extraction_reads_the_cache(split, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(net(), split, cache_dir=cache, progress=False)
    assert not first.from_cache and os.path.isfile(first.cache_path)
    assert os.listdir(cache) == [os.path.basename(first.cache_path)]
    second = extract_features(net(), split, cache_dir=cache, progress=False)
    assert second.from_cache and second.cache_path == first.cache_path
    np.testing.assert_array_equal(second.x, first.x)
    np.testing.assert_array_equal(second.index, first.index)
    # the features are the pooled features of one forward pass, in sample order
    x = net().preprocess([s.path for s in split.samples])
    f, _ = camloc.extract(net(), x)
    np.testing.assert_allclose(first.x, f.mean((-2, -1)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_second_fit_with_other_settings_does_not_recompute(split, tmp_path, monkeypatch):
    import camloc.probe.features as probe_mod  # where extract_features looks it up

    calls = []
    real = probe_mod.compute_features

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(probe_mod, "compute_features", counting)
    fit_probe(net(), split, cache_dir=tmp_path, progress=False)
    fit_probe(net(), split, classifier="logreg", Cs=[0.5], cache_dir=tmp_path, progress=False)
    assert len(calls) == 1


def test_cache_key_follows_backbone_weights_and_preprocessing(split):
    base = feature_key(net(0), split.samples)
    assert feature_key(net(0), split.samples) == base
    assert feature_key(net(1), split.samples) != base  # other weights
    other = net(0)
    with torch.no_grad():
        other.module.body[0].bias[0] += 1e-3
    assert feature_key(other, split.samples) != base  # one weight changed
    resized = net(0)
    resized.preprocessing = camloc.Preprocessing(shape=(48, 48), mean=(0, 0, 0), std=(1, 1, 1))
    assert feature_key(resized, split.samples) != base
    renamed = net(0)
    renamed.name = "another"
    assert feature_key(renamed, split.samples) != base
    # the network's own classifier does not change the features, so it does not count
    head = net(0)
    with torch.no_grad():
        head.module.fc.weight.zero_()
    assert feature_key(head, split.samples) == base


def test_cache_key_follows_data(split, tmp_path):
    base = feature_key(net(), split.samples)
    assert feature_key(net(), split.samples[:-1]) != base  # file list
    assert feature_key(net(), list(reversed(split.samples))) != base  # order
    crops = [[0, 0, 9, 9]] + [None] * (len(split) - 1)
    assert feature_key(net(), split.samples, crops) != base
    path = split.samples[0].path
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert feature_key(net(), split.samples) != base  # modification time


def test_changed_image_is_recomputed(split, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(net(), split, cache_dir=cache, progress=False)
    from probe_nets import square_image

    st = os.stat(split.samples[0].path)
    square_image(split.samples[0].path, "blue", (0, 0, 40, 40))
    os.utime(split.samples[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = extract_features(net(), split, cache_dir=cache, progress=False)
    assert not second.from_cache and second.cache_path != first.cache_path
    assert not np.allclose(second.x[0], first.x[0])
    np.testing.assert_allclose(second.x[1:], first.x[1:], rtol=1e-6)
    third = extract_features(net(1), split, cache_dir=cache, progress=False)
    assert not third.from_cache and len(os.listdir(cache)) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other_key", "nan"])
def test_corrupt_cache_is_rebuilt_with_a_one_line_warning(split, tmp_path, damage):
    cache = tmp_path / "cache"
    good = extract_features(net(), split, cache_dir=cache, progress=False)
    path = good.cache_path
    data = open(path, "rb").read()
    if damage == "garbage":
        open(path, "wb").write(b"this is not an npz file")
    elif damage == "truncated":
        open(path, "wb").write(data[: len(data) // 2])
    elif damage == "empty":
        open(path, "wb").write(b"")
    elif damage == "other_key":
        with np.load(path) as z:
            arrays = dict(z)
        arrays["key"] = np.array("0" * 64)
        np.savez(open(path, "wb"), **arrays)
    else:
        with np.load(path) as z:
            arrays = dict(z)
        arrays["x"][0, 0] = np.nan
        np.savez(open(path, "wb"), **arrays)
    key = feature_key(net(), split.samples)
    with pytest.raises(ProbeError) as err:
        load_feature_cache(path, key)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path}: corrupt feature cache (")
    with pytest.warns(UserWarning) as record:
        again = extract_features(net(), split, cache_dir=cache, progress=False)
    msgs = [str(w.message) for w in record if "corrupt feature cache" in str(w.message)]
    assert len(msgs) == 1 and "\n" not in msgs[0] and msgs[0].endswith("; recomputing it")
    assert not again.from_cache
    np.testing.assert_allclose(again.x, good.x, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extract_features(net(), split, cache_dir=cache, progress=False).from_cache  # repaired


def test_unreadable_images_are_recorded_in_the_cache(split, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    samples = list(split.samples) + [type(split.samples[0])("bad.jpg", str(bad), 0)]
    feats = extract_features(net(), samples, cache_dir=tmp_path / "c", progress=False)
    assert feats.index.tolist() == list(range(len(split))) and len(feats.skipped) == 1
    assert feats.skipped[0].startswith(f"{bad}: ")
    again = extract_features(net(), samples, cache_dir=tmp_path / "c", progress=False)
    assert again.from_cache and again.skipped == feats.skipped


def test_batches_give_the_same_features(split):
    one = compute_features(net(), split.samples, batch_size=1, progress=False)
    many = compute_features(net(), split.samples, batch_size=4, progress=False)
    np.testing.assert_allclose(one.x, many.x, rtol=1e-5, atol=1e-6)


def test_crops_are_inclusive_boxes(split, tmp_path):
    """Cropping to a sample's own box gives the features of the pre-cut crop."""
    from PIL import Image

    s = split.samples[0]
    x0, y0, x1, y1 = s.boxes[0]
    cut = tmp_path / "cut.png"
    Image.open(s.path).crop((x0, y0, x1 + 1, y1 + 1)).save(cut)
    a = compute_features(net(), [s], crops=[s.boxes[0]], progress=False)
    b = compute_features(net(), [type(s)("cut", str(cut), 0)], progress=False)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-6)
