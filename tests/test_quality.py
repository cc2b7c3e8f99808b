"""Issue 26: the mass-union box rule, ``evaluate`` and ``localize`` counting the same hits (one
box rule), the choice rule of ``python -m benchmarks quality`` and its ``--quick`` run on real val
photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camloc.boxes import BOX_CAP, boxes_from_map, mass_union_box, paper_boxes

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


# ---------------------------------------------------------------- the mass-union box
def test_mass_union_box_keeps_the_heavy_parts_and_drops_specks():
    m = np.zeros((20, 30), np.float32)
    m[2:6, 2:6] = 1.0  # 16 cells of mass 1
    m[10:18, 15:25] = 1.0  # 80 cells
    m[0, 29] = 0.5  # a speck: 0.5 of 96.5
    assert mass_union_box(m, 0.2, 0.1) == [[2, 2, 24, 17]]  # both parts, not the speck
    assert mass_union_box(m, 0.2, 0.5) == [[15, 10, 24, 17]]  # the heavy part alone
    assert mass_union_box(m, 0.2, 0.0) == [[2, 0, 29, 17]]  # every component
    assert mass_union_box(np.zeros((4, 4)), 0.2, 0.1) == []
    with pytest.raises(ValueError, match="share"):
        mass_union_box(m, 0.2, 1.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=48, max_size=48), st.floats(0, 0.9),
       st.sampled_from(["minmax", "positive"]))
def test_mass_union_box_contains_the_largest_component_at_share_zero(values, t, norm):
    m = np.array(values, np.float32).reshape(6, 8)
    union = mass_union_box(m, t, 0.0, norm)
    largest = boxes_from_map(m, t, norm=norm)
    assert (union == []) == (largest == [])
    if union:
        (ux0, uy0, ux1, uy1), (x0, y0, x1, y1) = union[0], largest[0]
        assert ux0 <= x0 and uy0 <= y0 and ux1 >= x1 and uy1 >= y1
        every = boxes_from_map(m, t, largest_only=False, norm=norm)
        assert union[0] == [min(b[0] for b in every), min(b[1] for b in every),
                            max(b[2] for b in every), max(b[3] for b in every)]


# ---------------------------------------------------------------- one box rule for evaluate and localize
def test_evaluate_scores_localizes_box_on_a_large_image():
    """A 1200x900 image: localize finds its box on the 512-px grid; evaluate's paper box is the
    same box (it was the full-size map's before, up to half a grid step away)."""
    from camloc.data.base import Sample
    from camloc.localize import predictions_for
    from camloc.scoring import Scoring, score

    rng = np.random.default_rng(3)
    raw = rng.normal(size=(7, 7)).astype(np.float32)
    size = (1200, 900)
    sample = Sample(path="x.jpg", label=0, image_id="x", boxes=[[100, 100, 700, 600]], size=size)
    out = score(sample, Scoring(box_threshold=0.2, norm="positive"), raw, image_size=size)
    boxes, warning = paper_boxes(raw, size, 0.2, "positive", BOX_CAP)
    assert warning is None and out.box == boxes[0]

    class Net:
        class_names = ["a", "b"]

    pred = predictions_for(Net(), np.array([1.0, 0.0]), np.array([0]), raw[None], size, 0.2, norm="positive",
                           box_cap=BOX_CAP)[0]
    assert pred["box"] == out.box


def test_paper_boxes_reasons():
    assert paper_boxes(np.full((3, 3), -1.0), (30, 30), 0.2, "positive") == ([], "no positive evidence: no box")
    assert paper_boxes(np.ones((3, 3)), (30, 30), 0.2, "minmax") == ([], "constant map: no box")
    boxes, warning = paper_boxes(np.array([[0.0, 1.0]]), (1, 1), 0.2, "minmax")  # varies, but 1 pixel wide
    assert boxes == [[0, 0, 0, 0]] and "whole image" in warning


@pytest.mark.skipif(not (SHARED / "ilsvrc-val-dev" / "metadata").is_dir(), reason="../shared/data not there")
def test_evaluate_and_localize_count_the_same_hits_on_real_photos(lite0):
    """The 20 real val photos of ilsvrc-val-dev, Lite0 at aspect 224, positive reading, 0.2:
    top-1 and top-5 loc from localize's records equal evaluate's."""
    from camloc.boxes import hit
    from camloc.data.wsol import read_wsol
    from camloc.evaluate import EvalOptions, evaluate
    from camloc.localize import iter_localize
    from camloc.pixels.geometry import Resize

    split = read_wsol(SHARED / "ilsvrc-val-dev" / "metadata", SHARED / "ilsvrc-val-dev" / "images")
    geometry = Resize("aspect", 224)
    m = evaluate(lite0, split, EvalOptions(resize=geometry, norm="positive", topk=5, examples=0, progress=False)).metrics
    recs = [r.record for r in iter_localize(lite0, [s.path for s in split.samples], topk=5, threshold=0.2,
                                            norm="positive", resize=geometry, progress=False)]
    ok = [[p["class_index"] == s.label and hit(p["box"], s.boxes) for p in r["predictions"]]
          for s, r in zip(split.samples, recs)]
    n = len(ok)
    assert n == m["num_images"] == 20
    assert m["top1_loc_error"] == pytest.approx(100 * (1 - sum(o[0] for o in ok) / n))
    assert m["top5_loc_error"] == pytest.approx(100 * (1 - sum(any(o) for o in ok) / n))


# ---------------------------------------------------------------- the benchmark's rule and quick run
def _row(name, a, b, gtk_b=0.0, full=(0.0, 0.0), cost=1.0):
    fig = {"top1": a, "gtk": 0.0, "miou": 0.0}
    return {"name": name, "A": fig, "dB": (b, 1.0), "dB_gtk": (gtk_b, 1.0), "dfull": (full[0], 1.0),
            "dfull_gtk": (full[1], 1.0), "cost": cost}


def test_rule_selects_on_a_and_confirms_on_b():
    from benchmarks.bench_quality import apply_rule

    base = _row("default", 50, 0)
    # the best on A within 2x is selected; its gain on B (3 points, SE 1) is beyond 2 SE
    got = apply_rule([base, _row("slow", 70, 9, cost=2.5), _row("good", 60, 3), _row("meh", 55, 5)])
    assert got == {"selected": "good", "adopt": True, "why": "passes every condition"}
    assert not apply_rule([base, _row("noise", 60, 1.5)])["adopt"]  # 1.5 < 2 SE
    lost = apply_rule([base, _row("lossy", 60, 3, full=(-1.6, 0.0))])
    assert not lost["adopt"] and "full-size" in lost["why"]
    assert not apply_rule([base, _row("gtk", 60, 3, gtk_b=-0.3)])["adopt"]
    assert apply_rule([base, _row("slow", 70, 9, cost=2.01)])["selected"] is None


def test_prepare_fuses_nets_each_over_its_max():
    from benchmarks.bench_quality import prepare
    from camloc.data.base import Sample

    s = Sample(path="x", label=1, image_id="val/ILSVRC2012_val_00000001.JPEG", boxes=[[0, 0, 3, 3]], size=(4, 4))
    a = {"logits": np.array([[0.0, 2.0, 1.0]], np.float32), "raw": np.full((1, 4, 4), 1.0, np.float32), "size": (4, 4)}
    b = {"logits": np.array([[0.0, 0.0, 9.0]], np.float32), "raw": np.zeros((1, 4, 4), np.float32), "size": (4, 4)}
    a["raw"][0, 0, 0] = 4.0
    b["raw"][0, 3, 3] = 10.0
    one = prepare([[a]], [s])
    assert one.grid[0][0, 0] == 4.0 and one.top5[0].tolist() == [1, 2, 0] and one.halves.tolist() == ["B"]  # SHA-1 of the name starts with c
    two = prepare([[a], [b]], [s])
    assert two.grid[0][0, 0] == pytest.approx(0.5) and two.grid[0][3, 3] == pytest.approx((0.25 + 1.0) / 2)
    assert two.top5[0, 0] == 2  # the mean softmax: b's confident class 2 wins


@pytest.mark.skipif(not (SHARED / "ilsvrc-val-227" / "metadata").is_dir(), reason="../shared/data not there")
def test_quick_benchmark_matches_localize_on_its_photos(tmp_path):
    """``python -m benchmarks quality --quick``'s default row equals what ``localize`` itself
    writes for those photos (its default net, side, reading and threshold), scored the same way."""
    from benchmarks import bench_quality as q
    from camloc.boxes import hit
    from camloc.data.wsol import read_wsol
    from camloc.defaults import MODEL as LOCALIZE_MODEL, SIDE as LOCALIZE_SIDE
    from camloc.localize import iter_localize
    from camloc.pixels.geometry import Resize
    from camloc.readings import DEFAULT_NORM

    assert q.VIEWS[q.DEFAULT[0]] == (LOCALIZE_MODEL, (LOCALIZE_SIDE,), False)
    assert q.DEFAULT[1:] == (DEFAULT_NORM, 0.2, "largest")
    res = q.run(quick=True, cache=tmp_path, progress=False)
    base = res["rows"][0]
    assert base["name"] == "default" and base["dB"] == (0.0, 0.0) and res["nA"] == res["nB"] == 4
    s227 = sorted((s for s in read_wsol(q.D227 / "metadata", q.D227 / "images").samples if s.boxes),
                  key=lambda s: s.image_id)
    chosen = [s for s in s227 if q.half(s.image_id) == "A"][:4] + [s for s in s227 if q.half(s.image_id) == "B"][:4]
    recs = [r.record for r in iter_localize(q._net(LOCALIZE_MODEL), [s.path for s in chosen], topk=5,
                                            resize=Resize("aspect", LOCALIZE_SIDE), progress=False)]
    top1 = [r["predictions"][0]["class_index"] == s.label and hit(r["predictions"][0]["box"], s.boxes)
            for s, r in zip(chosen, recs)]
    assert base["A"]["top1"] == pytest.approx(100 * np.mean(top1[:4]))
    assert base["B"]["top1"] == pytest.approx(100 * np.mean(top1[4:]))
    assert "| default |" in q.section(res)
