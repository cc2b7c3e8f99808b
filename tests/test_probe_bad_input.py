"""Bad input to a probe: a single-photo class, splits whose classes differ, features of another
backbone, non-finite features. Each is a one-line error or a documented, tested handling."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from probe_nets import color_split

import camloc
from camloc.probe import (
    Features,
    ProbeError,
    evaluate_probe,
    extract_features,
    feature_key,
    fit_probe,
    fit_probe_on_features,
)


@pytest.fixture(scope="module")
def colors(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("colors"))
    return color_split(root, 6, seed=0, name="train"), color_split(root, 4, seed=1, name="test")


def colornet():
    return camloc.load_model("test_colornet")


def subset(split, keep, classes=None, name=None):
    return type(split)([s for s in split.samples if keep(s)], list(classes or split.classes), name or split.name)


def test_a_class_with_a_single_photo_is_trained_on_but_not_validated(colors):
    """The validation part keeps >= 1 training image per class, so a one-photo class trains on
    its photo, gets no validation image (listed in ``info``) and is still predicted."""
    train, test = colors
    first_red = next(s for s in train.samples if s.label == 0)
    one_red = subset(train, lambda s: s.label != 0 or s is first_red)
    probe = fit_probe(colornet(), one_red, progress=False)
    assert probe.info["classes_without_validation"] == ["red"]
    assert probe.info["n_train"] + probe.info["n_val"] == 13 and probe.info["n_val"] == 2
    res = evaluate_probe(colornet(), probe, test, progress=False)
    assert res["accuracy"] == 1.0  # the four red test images included
    full = fit_probe(colornet(), train, progress=False)
    assert full.info["classes_without_validation"] == []


def test_validation_split_with_classes_the_other_lacks(colors):
    train, test = colors
    no_blue = subset(test, lambda s: s.label < 2, ["red", "green"], "val")
    with pytest.raises(ProbeError) as err:
        fit_probe(colornet(), train, no_blue, progress=False)
    assert str(err.value) == "val: the probe's class 'blue' is not among the data's 2 classes"
    two = subset(train, lambda s: s.label < 2, ["red", "green"], "train")
    with pytest.raises(ProbeError) as err:
        fit_probe(colornet(), two, test, progress=False)
    assert str(err.value) == "test: blue/000.png: class 'blue' is not a class of the probe"
    # a validation split that lists every class but has no image of one is fine: C is chosen
    # on the classes it has
    probe = fit_probe(colornet(), train, subset(test, lambda s: s.label < 2), progress=False)
    assert probe.info["n_val"] == 8 and probe.info["val_accuracy"] == 1.0


def test_features_of_another_backbone(colors, tmp_path):
    """In the cache, another backbone's features live under another key and are never read,
    even when a file is copied over this backbone's entry; at hand, a width the backbone does
    not give is a one-line error."""
    train, _ = colors
    cache = tmp_path / "cache"
    a = camloc.load_model("test_randomnet", seed=0)
    b = camloc.load_model("test_randomnet", seed=1)
    fa = extract_features(a, train, cache_dir=cache, progress=False)
    fb = extract_features(b, train, cache_dir=cache, progress=False)
    assert fa.cache_path != fb.cache_path and not fb.from_cache
    assert not np.allclose(fa.x, fb.x)
    shutil.copyfile(fa.cache_path, fb.cache_path)  # a's features where b's belong
    with pytest.warns(UserWarning, match=r"corrupt feature cache \(written for another backbone or data\); "
                      r"recomputing it$"):
        again = extract_features(b, train, cache_dir=cache, progress=False)
    np.testing.assert_allclose(again.x, fb.x, rtol=1e-6)
    assert feature_key(a, train.samples) != feature_key(b, train.samples)

    y = np.array([s.label for s in train.samples])
    wide = np.zeros((len(y), 1280), np.float32)
    with pytest.raises(ProbeError) as err:
        fit_probe_on_features(colornet(), wide, y, train.classes, what="train", progress=False)
    assert str(err.value) == ("train: features of shape (18, 1280), but backbone 'test_colornet' gives 4 "
                              "(features of another backbone?)")


def _with_nan(real, row: int):
    def extract(net, samples, **kw):
        feats = real(net, samples, **kw)
        x = feats.x.copy()
        x[row, 1] = np.nan
        return Features(x=x, index=feats.index, skipped=feats.skipped)

    return extract


def test_non_finite_features_are_one_line_errors(colors, monkeypatch):
    """A backbone whose output is NaN or infinite for an image never yields a silent probe."""
    import camloc.probe.fit as fit_mod

    train, test = colors
    y = np.array([s.label for s in train.samples])
    x = extract_features(colornet(), train, progress=False).x
    x[3, 0] = np.inf
    with pytest.raises(ProbeError) as err:
        fit_probe_on_features(colornet(), x, y, train.classes, what="train", progress=False)
    assert str(err.value) == ("train: 1 of 18 images have non-finite features (NaN or infinite; first: row 3); "
                              "the backbone's output is unusable for a probe")

    real = fit_mod.extract_features
    monkeypatch.setattr(fit_mod, "extract_features", _with_nan(real, 7))
    with pytest.raises(ProbeError) as err:
        fit_probe(colornet(), train, progress=False)
    assert str(err.value) == (f"train: 1 of 18 images have non-finite features (NaN or infinite; first: "
                              f"{train.samples[7].image_id}); the backbone's output is unusable for a probe")
    monkeypatch.setattr(fit_mod, "extract_features", real)
    probe = fit_probe(colornet(), train, progress=False)
    monkeypatch.setattr(fit_mod, "extract_features", _with_nan(real, 2))
    with pytest.raises(ProbeError, match=rf"^test: 1 of 12 images have non-finite features \(NaN or infinite; "
                       rf"first: {test.samples[2].image_id}\)"):
        evaluate_probe(colornet(), probe, test, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(fit_mod, "extract_features", real)
        assert evaluate_probe(colornet(), probe, test, progress=False)["accuracy"] == 1.0
