"""One options object for localize, one record builder for the plain and the views paths."""

from __future__ import annotations

import numpy as np
import pytest

from camloc.localize import LocalizeOptions, iter_localize
from camloc.pixels.geometry import Resize
from camloc.tta import TTA
from test_pipeline import _tiny  # tests/ is on the path under pytest


def _images():
    out = []
    for w, h in [(40, 24), (24, 40), (32, 32)]:
        a = np.zeros((h, w, 3), np.uint8)
        a[:, w // 2:] = 255  # the right half bright: class "bright"'s map lies there
        out.append(a)
    return out


@pytest.mark.parametrize("bad, message", [
    ({"topk": 0}, "topk"), ({"threshold": 1.0}, "threshold"), ({"norm": "nope"}, "normalization"),
    ({"tta": TTA((32,)), "method": object()}, "gradient method"),
])
def test_options_refuse_bad_values_in_one_line(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        LocalizeOptions(**bad)
    assert "\n" not in str(err.value)


def test_options_object_and_named_fields_give_the_same_records():
    net = _tiny()
    kw = dict(backend="torch", resize=Resize("aspect", 32, stride=8), workers=0, progress=False)
    opts = LocalizeOptions(topk=2, threshold=0.3, norm="minmax", all_boxes=True, calibrated=True)
    a = [r.record for r in iter_localize(net, _images(), opts, **kw)]
    b = [r.record for r in iter_localize(net, _images(), topk=2, threshold=0.3, norm="minmax", all_boxes=True,
                                         calibrated=True, **kw)]
    c = [r.record for r in iter_localize(net, _images(), LocalizeOptions(topk=5), topk=2, threshold=0.3,
                                         norm="minmax", all_boxes=True, calibrated=True, **kw)]
    assert a == b == c
    top = a[0]["predictions"][0]
    assert top["label"] == "bright" and top["threshold"] == 0.3 and top["norm"] == "minmax" and top["calibrated"]
    assert top["boxes"][0] == top["box"] and top["box"][0] >= 16  # the bright right half of a 40-wide image
    assert list(a[0]) == ["image", "width", "height", "model", "predictions", "error"]


def test_one_view_through_the_views_stage_is_the_plain_record_plus_its_views():
    """TTA at one scale, no flip: the views stage's result is built into the same record as the
    plain pipeline's, with ``tta`` before ``predictions``."""
    net = _tiny()
    kw = dict(backend="torch", workers=0, progress=False)
    plain = [r.record for r in iter_localize(net, _images(), topk=2, resize=Resize("aspect", 32), **kw)]
    views = [r.record for r in iter_localize(net, _images(), topk=2, tta=TTA((32,)), **kw)]
    for p, v in zip(plain, views):
        assert list(v) == ["image", "width", "height", "model", "tta", "predictions", "error"]
        assert v.pop("tta") == "scales=32"
        assert [q["box"] for q in v["predictions"]] == [q["box"] for q in p["predictions"]]
        assert [q["class_index"] for q in v["predictions"]] == [q["class_index"] for q in p["predictions"]]
