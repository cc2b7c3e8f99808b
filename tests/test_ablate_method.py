"""``camloc ablate --method NAME``: the grid with another map method than CAM (scales and
readings; the mirror and clamping drop out), one view equal to ``evaluate --method``; bad method
input is one line."""

from __future__ import annotations

import json

import pytest
from probe_nets import color_split
from test_calibrate import _wsol, colorcam
from test_sanity_compare import NaNMaps

from camloc.ablation import run_grid
from camloc.cli import main
from camloc.evaluate import EvalOptions, evaluate
from camloc.methods import get_method
from camloc.pipeline import Resize


def test_a_method_grid_drops_flip_and_clamp_and_one_view_is_evaluate(tmp_path):
    net = colorcam()
    split = color_split(str(tmp_path), n_per_class=2, seed=3)
    rows, skipped = run_grid(net, split, scales=(32, 64), norms=("minmax", "positive"), backend="torch", workers=0,
                             progress=False, method=get_method("gradcampp"))
    assert skipped == [] and len(rows) == 3 * 2  # scale sets x readings; flip and clamp are out
    assert {(r["flip"], r["clamp"]) for r in rows} == {(False, False)}
    for norm in ("minmax", "positive"):
        ev = evaluate(net, split, EvalOptions(method="gradcampp", resize=Resize("aspect", 64), backend="torch", workers=0,
                                              topk=1, norm=norm, progress=False, examples=0)).metrics
        row = next(r for r in rows if (r["scales"], r["norm"]) == ("64", norm))
        assert row["top1_loc"] == pytest.approx(100 - ev["top1_loc_error"])
        assert row["gt_known"] == pytest.approx(ev["gt_known_loc_acc"])
        assert row["MaxBoxAccV2"] == pytest.approx(ev["MaxBoxAccV2"], abs=0.01)
    fused = next(r for r in rows if r["scales"] == "32,64")
    assert fused["ms_per_image"] is None and fused["gt_known"] == 100.0  # a colour square: every box found
    assert next(r for r in rows if r["scales"] == "64")["ms_per_image"] > 0


def test_ablate_method_command_and_one_line_refusals(tmp_path, capsys):
    split = color_split(str(tmp_path / "data"), n_per_class=1, seed=4)
    meta = _wsol(str(tmp_path / "data"), split)
    data = ["--model", "test_colorcam", "--data", meta, "--image-root", str(tmp_path / "data"), "--workers", "0"]
    out = tmp_path / "abl"
    assert main(["ablate", *data, "--method", "xgradcam", "--scales", "64", "--norms", "minmax", "--backend", "torch",
                 "--out", str(out)]) == 0
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["method"] == "xgradcam" and len(saved["rows"]) == 1 and saved["rows"][0]["gt_known"] == 100.0
    assert "leaves out the mirror and clamping" in capsys.readouterr().err
    for argv, message in (
        (["--method", "gradcamm"], "did you mean 'gradcam'"),
        (["--method", "all"], "camloc ablate runs one method"),
        (["--method", "sscam", "--method-option", "n"], "expected KEY=VALUE"),
        (["--method", "cam", "--method-option", "n=2"], "cam takes no options"),
    ):
        assert main(["ablate", *data, *argv, "--out", str(tmp_path / "x")]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_a_method_with_nan_maps_scores_misses_and_says_how_many(tmp_path):
    split = color_split(str(tmp_path), n_per_class=1, seed=5)
    rows, _ = run_grid(colorcam(), split, scales=(64,), norms=("minmax", "positive"), backend="torch", workers=0,
                       progress=False, method=NaNMaps())
    assert [(r["num_nonfinite_maps"], r["gt_known"], r["MaxBoxAccV2"]) for r in rows] == [(3, 0.0, 0.0)] * 2
    good, _ = run_grid(colorcam(), split, scales=(64,), norms=("minmax",), backend="torch", workers=0, progress=False)
    assert good[0]["num_nonfinite_maps"] == 0 and good[0]["gt_known"] == 100.0



def test_evaluate_counts_nonfinite_maps_and_scores_them_as_misses(tmp_path, monkeypatch):
    import camloc.methods

    split = color_split(str(tmp_path), n_per_class=1, seed=5)
    opts = dict(resize=Resize("aspect", 64), backend="torch", workers=0, topk=1, progress=False, examples=0)
    good = evaluate(colorcam(), split, EvalOptions(method="gradcam", **opts)).metrics
    assert good["num_nonfinite_maps"] == 0 and good["gt_known_loc_acc"] == 100.0
    monkeypatch.setattr(camloc.methods, "get_method", lambda name, **kw: NaNMaps())
    bad = evaluate(colorcam(), split, EvalOptions(method="gradcam", **opts)).metrics
    assert bad["num_nonfinite_maps"] == 3 and bad["gt_known_loc_acc"] == 0.0 and bad["MaxBoxAccV2"] == 0.0
