"""The ablation grid and calibration: one pass scores every switch; a single view matches evaluate;
calibrate stores the best reading and threshold where localize finds them."""

from __future__ import annotations

import json
import os

import jsonschema
import numpy as np
import pytest
import torch
from probe_nets import PLAIN, ColorNet, color_split

from camloc.ablation import markdown, run_grid, scale_sets
from camloc.calibrate import calibration_path, load_calibration
from camloc.errors import CalibrationError
from camloc.cli import main
from camloc.evaluate import EvalOptions, evaluate
from camloc.models.net import CamNet
from camloc.models.registry import register
from camloc.pipeline import Resize
from camloc.schema import RECORD


@register("test_colorcam", "test only: a color detector whose class k is color k, with a negative vote")
def colorcam() -> CamNet:
    """Class k's map is color detector k minus half of detector k+1: a closed-form CAM with negative weights."""
    m = ColorNet(3)
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor([[1.0, -0.5, 0, 0], [0, 1.0, -0.5, 0], [-0.5, 0, 1.0, 0]]))
        m.fc.bias.zero_()
    return CamNet(module=m.eval(), name="test_colorcam", class_names=["red", "green", "blue"], preprocessing=PLAIN)


def _wsol(root, split) -> str:
    """``split`` written as WSOL metadata (the CVPR 2020 layout) under ``root``."""
    meta = os.path.join(root, "meta")
    os.makedirs(meta, exist_ok=True)
    rel = [os.path.relpath(s.path, root) for s in split.samples]
    with open(os.path.join(meta, "image_ids.txt"), "w") as f:
        f.writelines(f"{r}\n" for r in rel)
    with open(os.path.join(meta, "class_labels.txt"), "w") as f:
        f.writelines(f"{r},{s.label}\n" for r, s in zip(rel, split.samples))
    with open(os.path.join(meta, "image_sizes.txt"), "w") as f:
        f.writelines(f"{r},{s.size[0]},{s.size[1]}\n" for r, s in zip(rel, split.samples))
    with open(os.path.join(meta, "localization.txt"), "w") as f:
        f.writelines(f"{r},{','.join(map(str, b))}\n" for r, s in zip(rel, split.samples) for b in s.boxes)
    return meta


def test_scale_sets():
    assert scale_sets([256]) == [(256,)]
    assert scale_sets([256, 320]) == [(256,), (320,), (256, 320)]
    assert scale_sets([1, 2, 3], all_subsets=True) == [(1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)]


def test_a_single_view_of_the_grid_is_evaluate_in_the_aspect_geometry(tmp_path):
    net = colorcam()
    split = color_split(str(tmp_path), n_per_class=3, seed=1)
    rows, skipped = run_grid(net, split, scales=(32, 64), flips=(False, True), clamps=(False, True),
                             norms=("minmax", "percentile"), backend="torch", workers=0, progress=False)
    assert skipped == []
    assert len(rows) == 3 * 2 * 2 * 2  # scale sets x flips x clamps x readings
    assert {r["num_images"] for r in rows} == {9}
    for norm in ("minmax", "percentile"):
        for clamp in (False, True):
            ev = evaluate(net, split, EvalOptions(resize=Resize("aspect", 64), backend="torch", workers=0, topk=1,
                                                  norm=norm, clamp_negative=clamp, progress=False, examples=0)).metrics
            row = next(r for r in rows if (r["scales"], r["flip"], r["clamp"], r["norm"]) == ("64", False, clamp, norm))
            assert row["top1_loc"] == pytest.approx(100 - ev["top1_loc_error"])
            assert row["gt_known"] == pytest.approx(ev["gt_known_loc_acc"])
            assert row["MaxBoxAcc"] == pytest.approx(ev["MaxBoxAcc"])
            assert row["MaxBoxAccV2"] == pytest.approx(ev["MaxBoxAccV2"], abs=0.01)
            assert row["MaxBoxAcc_tau"] == ev["MaxBoxAcc_threshold"]
    # a color rectangle on gray: every combination finds every box
    assert {r["gt_known"] for r in rows} == {100.0} and {r["MaxBoxAcc"] for r in rows} == {100.0}
    table = markdown(rows[:2])
    assert table.splitlines()[0].startswith("| scales | flip | clamp | norm | top1_loc")
    assert "| 32 | no | no | minmax | 100.0 |" in table


def test_calibrate_stores_the_best_reading_and_localize_uses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMLOC_CACHE", str(tmp_path / "cache"))
    split = color_split(str(tmp_path / "data"), n_per_class=2, seed=2)
    meta = _wsol(str(tmp_path / "data"), split)
    data = ["--data", meta, "--image-root", str(tmp_path / "data"), "--backend", "torch", "--workers", "0"]
    assert main(["calibrate", "--model", "test_colorcam", *data, "--resize", "aspect:64"]) == 0
    path = calibration_path("test_colorcam", None, None, "test_colorcam")
    assert path == tmp_path / "cache" / "calibration" / "test_colorcam.json"
    cal = json.loads(path.read_text())
    # every reading finds every box, so the first (minmax) is kept, at its first best threshold
    assert cal["norm"] == "minmax" and cal["MaxBoxAcc"] == 100.0 and cal["views"] == "scales=64"
    assert set(cal["by_norm"]) == {"minmax", "positive", "percentile", "meanstd"} and cal["num_images"] == 6
    assert cal["threshold"] == cal["by_norm"]["minmax"]["threshold"]

    image = split.samples[0].path
    out = tmp_path / "loc"
    common = ["localize", image, "--model", "test_colorcam", "--backend", "torch", "--resize", "aspect:64", "--topk", "1",
              "--no-figures", "--out", str(out), "--overwrite"]
    # a calibration saying percentile at 0.3: localize reads it when neither --threshold nor --norm is given
    path.write_text(json.dumps({**cal, "norm": "percentile:20", "threshold": 0.3}))
    assert main(common) == 0
    rec = json.loads((out / "results.jsonl").read_text())
    jsonschema.validate(rec, RECORD)
    p = rec["predictions"][0]
    assert (p["threshold"], p["norm"], p["calibrated"]) == (0.3, "percentile:20", True)
    assert p["box"] == list(split.samples[0].boxes[0])  # gray background, red rectangle: its exact box
    assert main([*common, "--threshold", "0.5"]) == 0
    p = json.loads((out / "results.jsonl").read_text())["predictions"][0]
    assert (p["threshold"], p["norm"], p["calibrated"]) == (0.5, "positive", False)  # localize's default reading
    assert main([*common, "--calibration", "none"]) == 0
    p = json.loads((out / "results.jsonl").read_text())["predictions"][0]
    assert (p["threshold"], p["norm"], p["calibrated"]) == (0.2, "positive", False)


@pytest.mark.parametrize("content, words", [
    ("{not json", "not JSON"),
    ("[1, 2]", "a JSON object is expected"),
    ('{"threshold": 1.5, "norm": "minmax"}', "threshold must be a number in [0, 1), got 1.5"),
    ('{"threshold": true, "norm": "minmax"}', "threshold must be a number"),
    ('{"threshold": 0.2, "norm": "median"}', "unknown map normalization 'median'"),
    ('{"threshold": 0.2, "norm": "minmax", "clamp_negative": "yes"}', "clamp_negative must be true or false"),
])
def test_a_bad_calibration_file_is_one_line_naming_it(tmp_path, content, words):
    f = tmp_path / "m.calibration.json"
    f.write_text(content)
    with pytest.raises(CalibrationError) as err:
        load_calibration(f)
    assert str(err.value).startswith(f"{f}: ") and words in str(err.value) and "\n" not in str(err.value)


def test_calibration_lives_beside_the_probe_or_checkpoint(tmp_path):
    ckpt, probe = tmp_path / "m.pt", tmp_path / "p.probe"
    ckpt.write_bytes(b"x")
    probe.write_bytes(b"x")
    assert calibration_path(str(ckpt), None, None, "m") == tmp_path / "m.pt.calibration.json"
    assert calibration_path(str(ckpt), str(probe), None, "m") == tmp_path / "p.probe.calibration.json"
    assert calibration_path("resnet50", None, str(ckpt), "resnet50") == tmp_path / "m.pt.calibration.json"


def test_clamping_removes_the_negative_vote_from_the_map(tmp_path):
    """Class 0 = red - green/2: a green patch beside the red one is negative evidence; clamped, it is 0."""
    net = colorcam()
    img = np.full((32, 64, 3), 128, np.uint8)
    img[4:20, 4:24] = (230, 20, 20)
    img[4:20, 40:60] = (20, 230, 20)
    from camloc.pipeline import Pipeline

    kw = dict(resize=Resize("aspect", 32), backend="torch", topk=3, workers=0, progress=False)
    plain = next(Pipeline(net, **kw).run([img]))
    clamped = next(Pipeline(net, clamp_negative=True, **kw).run([img]))
    m0 = plain.maps[list(plain.classes).index(0)]
    c0 = clamped.maps[list(clamped.classes).index(0)]
    assert m0[12, 50] < -0.3 and c0[12, 50] == 0.0  # the green patch
    assert m0[12, 12] == pytest.approx(c0[12, 12]) and c0[12, 12] > 0.3  # the red one
