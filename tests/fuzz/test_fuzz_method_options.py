"""Generated method names and options (``--method`` / ``--method-option``, ``get_method``): every
case ends in maps of the right shape or a clean one-line error, never a crash or a hang."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camloc.method_names import BASELINES, DECOMPOSITION, GRADIENT, parse_method_options
from camloc.methods import get_method
from _harness import fuzz_settings, run_case, tiny_net

pytestmark = pytest.mark.fuzz

NAMES = ("gradcam", "gradcampp", *GRADIENT, *DECOMPOSITION, *BASELINES)
KEYS = ("layer", "layers", "n", "sigma", "seed", "gamma", "alpha", "references", "compare", "base", "kernel", "blocks",
        "stride", "target", "closed_form", "bogus")
VALUES = st.one_of(st.integers(-3, 10**20), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.sampled_from(["conv", "relu", "fc", "", "conv,relu", "gradcam", "rbf", "class", "contrast", "x.y"]),
                   st.lists(st.sampled_from(["conv", "relu", "pool", 0, 7]), max_size=3), st.none())


@pytest.fixture(scope="module")
def net():
    return tiny_net()


GOOD = {"layer": st.sampled_from(["conv", "relu", None]), "layers": st.sampled_from([["conv", "relu"], "conv,relu", None]),
        "n": st.integers(1, 6), "sigma": st.floats(0.01, 2), "seed": st.integers(0, 2**40), "gamma": st.floats(0.1, 5),
        "alpha": st.floats(0, 2), "references": st.integers(1, 4), "kernel": st.sampled_from(["sigmoid", "rbf", "linear"]),
        "stride": st.integers(1, 40), "closed_form": st.booleans(), "base": st.sampled_from(["gradcam", "layercam"])}


@fuzz_settings(scale=3)
@given(data=st.data(), name=st.one_of(st.sampled_from(NAMES), st.text(max_size=12)),
       classes=st.lists(st.integers(0, 2), min_size=1, max_size=2))
def test_method_options(net, data, name, classes):
    from camloc.methods import METHODS, method_options

    keys = list(method_options(METHODS[name])) if name in METHODS else []
    good = [k for k in keys if k in GOOD]
    options = {}
    if good:  # mostly sensible values for the method's own options, sometimes odd ones
        options = data.draw(st.fixed_dictionaries({}, optional={k: GOOD[k] for k in good}))
    options.update(data.draw(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=2 if data.draw(st.booleans()) else 0)))
    if data.draw(st.booleans()):  # every method takes an engine
        options["engine"] = data.draw(st.one_of(st.sampled_from(["torch", "onnxruntime", None, "tensorrt", ""]), VALUES))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def call():
        return get_method(name, **options)(net, x, torch.tensor(classes))

    def check(maps):
        if tuple(maps.shape[:2]) != (2, len(classes)) or maps.dim() != 4:
            return f"maps shaped {tuple(maps.shape)} for 2 images and {len(classes)} classes"
        return None

    run_case("method options", call, check)


@fuzz_settings()
@given(items=st.lists(st.text(max_size=20), max_size=4))
def test_method_option_text(items):
    run_case("--method-option text", lambda: parse_method_options(items))
