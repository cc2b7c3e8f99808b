"""The aspect geometry's longer-side step (``Resize.long_step``, ``--resize aspect:S:N``): the
longer side taken down to a multiple of ``N``, fewer input shapes."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camloc.pipeline import Pipeline, Resize, parse_resize
from camloc.schema import HEADER


def test_the_longer_side_goes_down_to_a_multiple_of_the_step():
    r = Resize("aspect", 224, long_step=64)
    assert r.input_size((500, 375)) == (256, 224)  # 298.7 -> 256 (rounded to 32: 288)
    assert r.input_size((375, 500)) == (224, 256)
    assert r.input_size((500, 333)) == (320, 224)  # 336.3 -> 320
    assert r.input_size((300, 300)) == (224, 224)
    assert r.input_size((250, 240)) == (224, 224)  # 233.3: never below the shorter side
    assert r.input_size((4000, 400)) == (640, 224)  # ratio 10 capped at 3: 672 -> 640
    assert Resize("aspect", 256, long_step=64).input_size((1024, 512)) == (512, 256)  # an exact multiple stays
    assert Resize("aspect", 224).input_size((500, 375)) == (288, 224)  # no step: rounded to the stride, as before
    assert Resize("aspect", 224, long_step=0) == Resize("aspect", 224)


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), side=st.sampled_from([224, 256, 288]),
       step=st.sampled_from([32, 64, 96, 128]))
def test_the_stepped_side_is_the_largest_multiple_not_above_the_exact_one(w, h, side, step):
    r = Resize("aspect", side, long_step=step)
    iw, ih = r.input_size((w, h))
    short, long = min(iw, ih), max(iw, ih)
    assert short == side and (iw == ih or (iw > ih) == (w > h))
    exact = side * min(max(w, h) / min(w, h), 3.0)
    assert long % step == 0 or long == side
    assert long == side or long <= exact + 1e-6
    assert long > exact - step or long == side  # the largest such multiple
    assert long <= Resize("aspect", side).input_size((w, h))[0 if w >= h else 1] + 32  # never longer than rounding


def test_parse_resize_reads_the_step_and_refuses_it_elsewhere():
    assert parse_resize("aspect:224:64") == Resize("aspect", 224, long_step=64)
    assert parse_resize("aspect::64", default_side=288) == Resize("aspect", 288, long_step=64)
    assert parse_resize("aspect:224") == Resize("aspect", 224)
    assert "multiple of 64" in parse_resize("aspect:224:64").describe()
    for bad, words in (("crop:224:64", "only aspect"), ("aspect:224:48", "multiple of the stride"),
                       ("aspect:224:x", "must be an integer"), ("aspect:224:-64", "long_step")):
        with pytest.raises(ValueError, match=words):
            parse_resize(bad)


def test_the_pipeline_and_the_command_run_the_stepped_geometry(lite0, photo_dir, tmp_path):
    from camloc.cli import main

    chelsea = f"{photo_dir}/chelsea.png"  # 451 x 300: 336.8 -> 352 rounded to 32, 320 down to 64
    sizes = {step: next(Pipeline(lite0, resize=Resize("aspect", 224, long_step=step), backend="torch", topk=1,
                                 workers=0, progress=False).run([chelsea])).input_size for step in (0, 64)}
    assert sizes == {0: (352, 224), 64: (320, 224)}
    out = tmp_path / "o"
    assert main(["localize", chelsea, "--model", "efficientnet_lite0", "--resize", "aspect:224:64", "--backend",
                 "torch", "--topk", "1", "--no-figures", "--out", str(out)]) == 0
    header, record = (json.loads(line) for line in (out / "results.jsonl").read_text().splitlines())
    jsonschema.validate(header, HEADER)
    assert header["camloc_run"]["geometry"] == {"mode": "aspect", "side": 224, "views": "scales=224", "long_step": 64}
    assert record["error"] is None and record["width"] == 451
    assert not math.isnan(record["predictions"][0]["score"])


def test_evaluate_names_the_stepped_geometry():
    from types import SimpleNamespace

    from camloc.evaluate.options import EvalOptions
    from camloc.evaluate.readout import result_of

    counted = SimpleNamespace(state=lambda: {"count": [1]}, compute=lambda: {"top1_cls_error": 0.0})
    nothing = SimpleNamespace(loc=SimpleNamespace(state=lambda: {"count": [0]}), pxap=None)
    for resize, name in ((Resize("aspect", 224, long_step=64), "aspect:224:64"), (Resize("aspect", 224), "aspect:224")):
        metrics = result_of(EvalOptions(resize=resize), counted, nothing, None, None, [], []).metrics
        assert metrics["resize"] == name and metrics["top1_cls_error"] == 0.0
