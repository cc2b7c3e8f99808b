"""Garbled checkpoints, weights files and probe files: each loads, or gives a one-line
``ModelError``/``ProbeError`` naming the file; no traceback, no code run, no hang."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import camloc
from camloc.models.checkpoint import checkpoint_dict
from _harness import fuzz_settings, run_case

pytestmark = pytest.mark.fuzz

SMALL = {"num_classes": 3, "in_size": 32, "widths": (4, 8)}


@pytest.fixture(scope="module")
def good():
    net = camloc.load_model("fashion_gap", **SMALL)
    return checkpoint_dict(net)


LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 4096), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["fashion_gap", "resnet18", "efficientnet_lite0", "timm:nope", "../x", "", "alexnet_gap"]),
    st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
              st.lists(st.integers(0, 4), max_size=3).map(tuple), st.sampled_from([torch.float32, torch.int64, torch.bool])),
)
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)),
                      max_leaves=8)
KEYS = ["format", "arch", "arch_kwargs", "state_dict", "class_names", "preprocessing"]


@st.composite
def checkpoints(draw, good):
    d = dict(good)
    d["state_dict"] = dict(good["state_dict"])
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["drop", "replace", "kwarg", "tensor", "names", "pre"]))
        key = draw(st.sampled_from(KEYS))
        if what == "drop":
            d.pop(key, None)
        elif what == "replace":
            d[key] = draw(VALUES)
        elif what == "kwarg" and isinstance(d.get("arch_kwargs"), dict):
            d["arch_kwargs"] = {**d["arch_kwargs"], draw(st.sampled_from(["num_classes", "in_size", "widths", "head",
                                                                         "depth", "weights", "pretrained"])): draw(VALUES)}
        elif what == "tensor" and isinstance(d.get("state_dict"), dict) and d["state_dict"]:
            name = draw(st.sampled_from(sorted(d["state_dict"], key=repr)))
            d["state_dict"][name] = draw(VALUES)
        elif what == "names":
            d["class_names"] = draw(st.lists(st.text(max_size=5), max_size=5))
        elif what == "pre" and isinstance(d.get("preprocessing"), dict):
            d["preprocessing"] = {**d["preprocessing"], draw(st.sampled_from(["size", "mean", "std"])): draw(VALUES)}
    return d


@fuzz_settings(scale=4)
@given(data=st.data(), how=st.sampled_from(["checkpoint", "weights", "bytes", "truncated"]))
def test_garbled_model_files(good, tmp_path_factory, data, how):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    obj = data.draw(checkpoints(good)) if how == "checkpoint" else data.draw(VALUES)
    if how == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=300)))
    else:
        torch.save(obj, path)
        if how == "truncated":
            raw = path.read_bytes()
            path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])

    def call():
        if how == "weights":
            return camloc.load_model("fashion_gap", weights=path, **SMALL)
        return camloc.load_model(path)

    def check(net):
        if len(net.class_names) != net.num_classes:
            return f"{len(net.class_names)} class names for {net.num_classes} classes"
        return None

    run_case("model files", call, check, naming=str(path))


@fuzz_settings(scale=2)
@given(obj=st.one_of(VALUES, st.fixed_dictionaries({"format": st.just("camloc-probe/1")},
                                                   optional={k: VALUES for k in ["weight", "bias", "class_names",
                                                                                 "backbone", "feature_dim", "C",
                                                                                 "info", "preprocessing"]})))
def test_garbled_probe_files(tmp_path_factory, obj):
    from camloc.probe.files import load_probe

    path = tmp_path_factory.mktemp("probe") / "p.pt"
    torch.save(obj, path)
    run_case("probe files", lambda: load_probe(path), naming=str(path))
