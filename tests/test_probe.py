"""Linear probes: exact CAMs from probe weights, fitting, probe files, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from probe_nets import color_split

import camloc
from camloc.boxes import box_iou
from camloc.extract import extract, pool
from camloc.models.net import CamNet
from camloc.probe import (
    Probe,
    ProbeError,
    attach_probe,
    cam_boxes,
    evaluate_probe,
    fit_linear,
    fit_probe,
    load_probe,
    save_probe,
)


@pytest.fixture(scope="module")
def colors(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("colors"))
    return color_split(root, 6, seed=0, name="train"), color_split(root, 4, seed=1, name="test")


def colornet() -> CamNet:
    return camloc.load_model("test_colornet")


def randomnet(seed: int = 0) -> CamNet:
    return camloc.load_model("test_randomnet", seed=seed)


# ----------------------------------------------------------------- linear weights fold exactly


@settings(max_examples=25, deadline=None)
@given(
    n_classes=st.integers(2, 4),
    k=st.integers(1, 6),
    classifier=st.sampled_from(["svm", "logreg"]),
    seed=st.integers(0, 10_000),
    C=st.sampled_from([0.01, 1.0]),
    scaling=st.sampled_from(["global", "channel"]),
)
def test_folded_weights_equal_the_fits_decision(n_classes, k, classifier, seed, C, scaling):
    """``x @ W.T + b`` equals the fit's decision function on scaled features (binary: [-d, d]);
    that the fit is scikit-learn's model is tested in test_probe_solver.py."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), 5)
    x = rng.normal(size=(len(y), k)) * rng.uniform(0.1, 10, size=k) + rng.normal(size=k) * 5 + y[:, None]
    w, b, est = fit_linear(x, y, n_classes, classifier, C, scaling=scaling)
    assert w.shape == (n_classes, k) and b.shape == (n_classes,)
    ours = x @ w.astype(np.float64).T + b
    d = est.decision_function(x)
    if n_classes == 2:
        half = 1.0 if classifier == "svm" else 0.5
        d = np.stack([-half * d, half * d], axis=1)
    np.testing.assert_allclose(ours, d, rtol=1e-4, atol=1e-4 * (1 + np.abs(d).max()))
    if classifier == "logreg":  # softmax of the stored scores is the classifier's probability
        p = torch.from_numpy(ours).softmax(1).numpy()
        np.testing.assert_allclose(p, est.predict_proba(x), atol=1e-4)
    np.testing.assert_array_equal(ours.argmax(1), est.predict(x))


@pytest.mark.parametrize("scaling", ["global", "channel"])
def test_constant_feature_folds_without_nan(scaling):
    x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    w, b, est = fit_linear(x, np.array([0, 0, 1, 1]), 2, "svm", 1.0, scaling=scaling)
    assert np.isfinite(w).all() and np.isfinite(b).all()
    np.testing.assert_allclose((x @ w.T + b)[:, 1], est.decision_function(x), atol=1e-5)
    w0, b0, _ = fit_linear(np.ones((4, 2)), np.array([0, 0, 1, 1]), 2, "svm", 1.0, scaling=scaling)
    assert np.isfinite(w0).all() and np.isfinite(b0).all()  # all features constant


def test_global_scaling_keeps_relative_weights():
    """One scale for all channels: the folded weights are the classifier's on centered features
    divided by one number, so their ratios are the classifier's."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = np.stack([y + rng.normal(size=40) * 0.3, 100 + rng.normal(size=40) * 5], axis=1)
    w, b, fit = fit_linear(x, y, 2, "logreg", 1.0, scaling="global")
    np.testing.assert_allclose(w[1] / w[1, 0], fit.coef[0] / fit.coef[0, 0], rtol=1e-5)
    with pytest.raises(ProbeError, match="unknown scaling 'none'"):
        fit_linear(x, y, 2, "svm", scaling="none")


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_probe_cam_is_exact(colors, classifier, n_classes):
    """``mean(M_c) + b_c`` equals the probe's decision value on the pooled features."""
    train, test = colors
    train_n = type(train)([s for s in train.samples if s.label < n_classes], train.classes[:n_classes], "train")
    net = randomnet()
    from camloc.probe import extract_features

    feats = extract_features(net, train_n, progress=False)
    y = np.array([train_n.samples[i].label for i in feats.index])
    w, b, est = fit_linear(feats.x, y, n_classes, classifier, 1.0)
    probe = Probe("test_randomnet", 8, w, b, train_n.classes, classifier)
    attach_probe(net, probe, strict=False)
    x = net.preprocess([s.path for s in test.samples])
    out = camloc.cam(net, x, classes=torch.arange(n_classes))
    recon = out.maps.double().mean((-2, -1)) + out.bias.double()[:n_classes]
    with torch.inference_mode():
        f, _ = extract(net, x)
    d = est.decision_function(pool(f).double().numpy())
    if n_classes == 2:
        half = 1.0 if classifier == "svm" else 0.5
        d = np.stack([-half * d, half * d], axis=1)
    np.testing.assert_allclose(recon.numpy(), d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.logits.double().numpy(), d, rtol=1e-4, atol=1e-4)
    assert camloc.check_exact(net, x).exact


# ----------------------------------------------------------------- fitting on a new task


def test_fit_probe_learns_colors_and_localizes_them(colors, tmp_path):
    train, test = colors
    net = colornet()
    probe = fit_probe(net, train, cache_dir=tmp_path, progress=False)
    assert probe.class_names == ["red", "green", "blue"]
    assert probe.weight.shape == (3, 4) and probe.feature_dim == 4
    assert probe.info["n_train"] + probe.info["n_val"] == 18 and probe.info["n_val"] == 3
    assert probe.info["val_accuracy"] == 1.0
    assert set(probe.info["val_accuracy_by_C"]) == {"0.001", "0.01", "0.1", "1"}
    res = evaluate_probe(net, probe, test, cache_dir=tmp_path, progress=False)
    assert res["accuracy"] == 1.0 and res["n"] == 12
    np.testing.assert_array_equal(res["predictions"], [s.label for s in test.samples])
    # the probe's CAM of each image's class boxes the colored rectangle
    attach_probe(net, probe)
    found, skipped = cam_boxes(net, test.samples, [s.label for s in test.samples], progress=False)
    assert skipped == []
    ious = [box_iou(f.box, s.boxes[0]) for f, s in zip(found, test.samples)]
    assert min(ious) >= 0.7, ious
    for f, s in zip(found, test.samples):
        x0, y0, x1, y1 = s.boxes[0]
        assert x0 - 2 <= f.peak[0] <= x1 + 2 and y0 - 2 <= f.peak[1] <= y1 + 2


def test_explicit_validation_split_and_tie_goes_to_smaller_C(colors):
    train, test = colors
    probe = fit_probe(colornet(), train, test, Cs=[1.0, 0.1], progress=False)
    assert probe.info["validation"] == "given split"
    assert probe.info["n_val"] == 12 and probe.info["n_train"] == 18
    assert probe.info["val_accuracy_by_C"] == {"0.1": 1.0, "1": 1.0}
    assert probe.C == 0.1


def test_attach_sets_probe_and_class_names(colors, tmp_path):
    train, _ = colors
    net = colornet()
    probe = fit_probe(net, train, progress=False)
    save_probe(probe, tmp_path / "p.pt")
    assert attach_probe(net, tmp_path / "p.pt") is net
    assert net.class_names == ["red", "green", "blue"]
    assert isinstance(net.probe, torch.nn.Linear) and net.probe.weight.shape == (3, 4)
    np.testing.assert_array_equal(net.probe.weight.detach().numpy(), probe.weight)
    np.testing.assert_array_equal(net.probe.bias.detach().numpy(), probe.bias)
    assert net.num_classes == 3


def test_attach_gives_the_net_the_probes_preprocessing(colors):
    net = colornet()
    net.preprocessing = camloc.Preprocessing(shape=(40, 24), mean=(0, 0, 0), std=(1, 1, 1))
    probe = fit_probe(net, colors[0], progress=False)
    fresh = colornet()
    assert fresh.preprocessing.shape == (32, 32)
    attach_probe(fresh, probe)
    assert fresh.preprocessing.shape == (40, 24)
    x = fresh.preprocess([colors[1].samples[0].path])
    assert tuple(x.shape) == (1, 3, 40, 24)  # size is (height, width)


def test_probe_file_round_trip(colors, tmp_path):
    probe = fit_probe(colornet(), colors[0], classifier="logreg", progress=False)
    save_probe(probe, tmp_path / "sub" / "p.pt")
    back = load_probe(tmp_path / "sub" / "p.pt")
    assert probe.preprocessing == {"size": [32, 32], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    for name in ("backbone", "feature_dim", "class_names", "classifier", "C", "backbone_sha256", "info",
                 "preprocessing"):
        assert getattr(back, name) == getattr(probe, name), name
    np.testing.assert_array_equal(back.weight, probe.weight)
    np.testing.assert_array_equal(back.bias, probe.bias)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["p.pt"]  # no temporary left behind


# ----------------------------------------------------------------- bad input: one-line errors


def _one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_probe_for_another_backbone_is_refused(colors, tmp_path):
    probe = fit_probe(colornet(), colors[0], progress=False)
    save_probe(probe, tmp_path / "p.pt")
    with pytest.raises(ProbeError) as err:
        attach_probe(randomnet(), tmp_path / "p.pt")
    assert _one_line(err.value) == f"{tmp_path / 'p.pt'}: fit on backbone 'test_colornet', not on 'test_randomnet'"


def test_probe_for_another_width_or_weights_is_refused(colors):
    net = randomnet(0)
    probe = Probe("test_randomnet", 5, np.zeros((2, 5), np.float32), np.zeros(2, np.float32), ["a", "b"])
    with pytest.raises(ProbeError, match="fit on 5 features, 'test_randomnet' gives 8"):
        attach_probe(net, probe)
    probe = fit_probe(randomnet(1), colors[0], progress=False)
    with pytest.raises(ProbeError, match="fit on other weights of 'test_randomnet'"):
        attach_probe(net, probe)
    with pytest.warns(UserWarning, match="weights hash differs"):
        attach_probe(net, probe, strict=False)
    assert net.class_names == ["red", "green", "blue"]


def test_unreadable_probe_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    torch.save({"format": "camloc-probe/1", "backbone": "x"}, tmp_path / "partial.pt")
    ok = Probe("x", 3, np.zeros((2, 3), np.float32), np.zeros(2, np.float32), ["a", "b"])
    save_probe(ok, tmp_path / "ok.pt")
    d = torch.load(tmp_path / "ok.pt", weights_only=True)
    d["weight"] = torch.zeros(2, 4)
    torch.save(d, tmp_path / "shape.pt")
    cases = {
        "missing.pt": "no such probe file",
        "junk.pt": "not a probe file",
        "other.pt": "no 'camloc-probe/1' format tag",
        "partial.pt": "probe file lacks or garbles",
        "shape.pt": "do not match 2 classes x 3 features",
    }
    for name, reason in cases.items():
        with pytest.raises(ProbeError) as err:
            load_probe(tmp_path / name)
        assert _one_line(err.value).startswith(f"{tmp_path / name}: ") and reason in str(err.value), str(err.value)


def test_class_in_probe_that_the_data_lacks(colors):
    train, test = colors
    net = colornet()
    probe = fit_probe(net, train, progress=False)
    probe.class_names = ["red", "green", "purple"]
    with pytest.raises(ProbeError) as err:
        evaluate_probe(net, probe, test, progress=False)
    assert _one_line(err.value) == "test: the probe's class 'purple' is not among the data's 3 classes"


def test_data_class_the_probe_lacks(colors):
    train, test = colors
    net = colornet()
    two = type(train)([s for s in train.samples if s.label < 2], ["red", "green"], "train2")
    probe = fit_probe(net, two, progress=False)
    with pytest.raises(ProbeError, match=r"test: blue/000.png: class 'blue' is not a class of the probe"):
        evaluate_probe(net, probe, test, progress=False)


def test_empty_class_and_too_few_classes(colors):
    train, _ = colors
    net = colornet()
    with_empty = type(train)(list(train.samples), ["red", "green", "blue", "violet"], "train")
    with pytest.raises(ProbeError) as err:
        fit_probe(net, with_empty, progress=False)
    assert _one_line(err.value) == "train: class 'violet' has no images"
    one = type(train)([s for s in train.samples if s.label == 0], ["red"], "reds")
    with pytest.raises(ProbeError, match="reds: a probe needs at least 2 classes, the data has 1"):
        fit_probe(net, one, progress=False)
    with pytest.raises(ProbeError, match="unknown classifier 'tree'"):
        fit_probe(net, train, classifier="tree", progress=False)


def test_class_whose_images_are_all_unreadable(colors, tmp_path):
    train, _ = colors
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    samples = [s for s in train.samples if s.label < 2]
    samples.append(type(samples[0])("blue/broken.png", str(bad), 2))
    split = type(train)(samples, ["red", "green", "blue"], "train")
    with pytest.raises(ProbeError) as err:
        fit_probe(colornet(), split, progress=False)
    assert _one_line(err.value) == "train: class 'blue' has no readable images"


def test_unreadable_image_is_skipped_and_counted(colors, tmp_path):
    train, _ = colors
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    split = type(train)(list(train.samples) + [type(train.samples[0])("red/broken.png", str(bad), 0)],
                        train.classes, "train")
    probe = fit_probe(colornet(), split, progress=False)
    assert probe.info["skipped"] == 1
    assert probe.info["n_train"] + probe.info["n_val"] == 18


# ----------------------------------------------------------------- the embedded default, end to end


@pytest.mark.slow
def test_embedded_backbone_probe_is_exact_end_to_end(colors, tmp_path):
    """EfficientNet-Lite0 features -> SVM probe -> file -> attach -> exact CAMs, one forward."""
    train, test = colors
    net = camloc.load_model("efficientnet_lite0")
    small = type(train)([s for s in train.samples if s.label == 0][:3] + [s for s in train.samples if s.label == 1][:3],
                        ["red", "green"], "train")
    probe = fit_probe(net, small, Cs=[0.1], cache_dir=tmp_path / "cache", batch_size=6, progress=False)
    assert probe.backbone == "efficientnet_lite0" and probe.weight.shape == (2, 1280)
    save_probe(probe, tmp_path / "p.pt")
    net = attach_probe(camloc.load_model("efficientnet_lite0"), tmp_path / "p.pt")
    x = net.preprocess([s.path for s in test.samples[:4]])
    out = camloc.cam(net, x, topk=2)
    with torch.inference_mode():
        f, _ = extract(net, x)
    d = probe.decision(pool(f).numpy())
    np.testing.assert_allclose(out.logits.numpy(), d, rtol=1e-4, atol=1e-3)
    recon = out.maps.double().mean((-2, -1)) + out.bias.double()[out.classes]
    np.testing.assert_allclose(recon.numpy(), np.take_along_axis(d, out.classes.numpy(), 1), rtol=1e-4, atol=1e-3)
    assert os.path.getsize(tmp_path / "p.pt") < 100_000


def test_localize_api_with_a_probe(colors):
    """``camloc.localize`` on a net with a probe: the probe's classes, scores and boxes."""
    train, test = colors
    net = colornet()
    probe = fit_probe(net, train, progress=False)
    attach_probe(net, probe)
    records = camloc.localize(net, [s.path for s in test.samples], topk=2)
    for rec, s in zip(records, test.samples):
        top = rec["predictions"][0]
        assert rec["error"] is None and len(rec["predictions"]) == 2
        assert top["label"] == train.classes[s.label] and top["class_index"] == s.label
        assert box_iou(top["box"], s.boxes[0]) >= 0.7
