"""Garbled calibration files (issue 28, items 5 and 6): each loads for the model and views it names,
or gives a one-line ``CalibrationError`` naming the file; a file for another model, other weights,
other views or another format is never applied without ``force``."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import camloc
from camloc.calibrate import FORMAT, load_calibration, model_digest
from _harness import fuzz_settings, run_case

pytestmark = pytest.mark.fuzz

SMALL = {"num_classes": 3, "in_size": 32, "widths": (4, 8)}
VIEWS = "scales=32"


@pytest.fixture(scope="module")
def net():
    return camloc.load_model("fashion_gap", **SMALL)


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=10), st.sampled_from(["minmax", "positive", "percentile:20", "meanstd:0",
                                                          "fashion_gap", "resnet50", "scales=32", "flip,scales=32",
                                                          "squash", "0" * 64]))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
KEYS = ["format", "model", "weights_sha256", "views", "threshold", "norm", "clamp_negative", "temperature"]


@fuzz_settings(scale=4)
@given(data=st.data(), raw=st.booleans())
def test_garbled_calibration_files(net, tmp_path_factory, data, raw):
    good = {"format": FORMAT, "model": net.name, "weights_sha256": model_digest(net), "views": VIEWS,
            "threshold": 0.3, "norm": "minmax", "clamp_negative": False, "temperature": 1.5}
    d = dict(good)
    for _ in range(data.draw(st.integers(0, 3))):
        key = data.draw(st.sampled_from(KEYS))
        if data.draw(st.booleans()):
            d.pop(key, None)
        else:
            d[key] = data.draw(VALUES)
    path = tmp_path_factory.mktemp("cal") / "m.calibration.json"
    if raw:
        path.write_bytes(data.draw(st.binary(max_size=200)))
    else:
        path.write_text(json.dumps(d, allow_nan=True))

    def check(rec):
        if raw:
            return None if rec == json.loads(path.read_bytes()) else "a garbled file loaded as something else"
        owner = {k: d.get(k) for k in ("format", "model", "weights_sha256")}
        if owner != {k: good[k] for k in owner}:
            return f"applied to {net.name} though made for {owner}"
        if d.get("views", VIEWS) != VIEWS:
            return f"applied to views {VIEWS} though made for {d.get('views')!r}"
        t = rec.get("temperature")
        if "temperature" in rec and not (isinstance(t, (int, float)) and t > 0 and t == t and t != float("inf")):
            return f"temperature {t!r} accepted"
        return None

    run_case("calibration", lambda: load_calibration(path, net, VIEWS), check, naming=str(path))
