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
from camloc import scores
from camloc.calibrate import calibration_path, check_box_fit, collect_logits, load_calibration, model_digest
from camloc.errors import CalibrationError
from camloc.cli import main
from camloc.evaluate import EvalOptions, evaluate
from camloc.models.net import CamNet
from camloc.models.registry import register
from camloc.pipeline import Resize
from camloc.provenance import read_results
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
    # a built-in model: stored only where named, never in the cache
    assert main(["calibrate", "--model", "test_colorcam", *data, "--resize", "aspect:64"]) == 1
    assert not (tmp_path / "cache").exists()
    path = tmp_path / "colorcam.calibration.json"
    assert main(["calibrate", "--model", "test_colorcam", *data, "--resize", "aspect:64", "--out", str(path)]) == 0
    cal = json.loads(path.read_text())
    # every reading finds every box, so the first (minmax) is kept, at its first best threshold
    assert cal["norm"] == "minmax" and cal["MaxBoxAcc"] == 100.0 and cal["views"] == "scales=64"
    assert set(cal["by_norm"]) == {"minmax", "positive", "percentile", "meanstd"} and cal["num_images"] == 6
    assert cal["threshold"] == cal["by_norm"]["minmax"]["threshold"]
    assert cal["model"] == "test_colorcam" and cal["weights_sha256"] == model_digest(colorcam())

    image = split.samples[0].path
    out = tmp_path / "loc"
    common = ["localize", image, "--model", "test_colorcam", "--backend", "torch", "--resize", "aspect:64", "--topk", "1",
              "--no-figures", "--out", str(out), "--overwrite"]
    # not named: not applied (a built-in model has no file beside it)
    assert main(common) == 0
    header, (rec,) = read_results(out / "results.jsonl")
    assert (rec["predictions"][0]["threshold"], rec["predictions"][0]["calibrated"]) == (0.2, False)
    assert header["calibration"] is None and header["temperature"] == 1.0  # no temperature shipped for it
    # a calibration saying percentile at 0.3: localize reads it when named and neither --threshold nor --norm is given
    path.write_text(json.dumps({**cal, "norm": "percentile:20", "threshold": 0.3}))
    assert main([*common, "--calibration", str(path)]) == 0
    header, (rec,) = read_results(out / "results.jsonl")
    jsonschema.validate(rec, RECORD)
    p = rec["predictions"][0]
    assert (p["threshold"], p["norm"], p["calibrated"]) == (0.3, "percentile:20", True)
    assert (header["threshold"], header["norm"], header["calibration"]) == (0.3, "percentile:20", str(path))
    assert p["box"] == list(split.samples[0].boxes[0])  # gray background, red rectangle: its exact box
    assert main([*common, "--calibration", str(path), "--threshold", "0.5"]) == 1  # the threshold belongs to its reading
    assert main([*common, "--threshold", "0.5"]) == 0
    p = read_results(out / "results.jsonl")[1][0]["predictions"][0]
    assert (p["threshold"], p["norm"], p["calibrated"]) == (0.5, "positive", False)  # localize's default reading
    assert main([*common, "--calibration", "none"]) == 0
    p = read_results(out / "results.jsonl")[1][0]["predictions"][0]
    assert (p["threshold"], p["norm"], p["calibrated"]) == (0.2, "positive", False)


def test_a_calibration_of_another_model_or_views_is_refused(tmp_path, capsys):
    net = colorcam()
    good = {"format": 2, "model": "test_colorcam", "weights_sha256": model_digest(net), "views": "scales=64",
            "threshold": 0.3, "norm": "minmax", "temperature": 2.0}
    cases = {
        "model": ({**good, "model": "resnet50"}, "made for model 'resnet50', not 'test_colorcam'"),
        "hash": ({**good, "weights_sha256": "0" * 64}, "made for other weights of 'test_colorcam'"),
        "views": ({**good, "views": "flip,scales=64"}, "made for views flip,scales=64, this run uses scales=64"),
        "format": ({**good, "format": 99}, "calibration format 99, this camloc reads format 2"),
        "old": ({k: v for k, v in good.items() if k not in ("format", "weights_sha256")}, "calibration format None"),
    }
    image = color_split(str(tmp_path / "data"), n_per_class=1, seed=3).samples[0].path
    common = ["localize", image, "--model", "test_colorcam", "--backend", "torch", "--resize", "aspect:64",
              "--topk", "1", "--no-figures", "--out", str(tmp_path / "out"), "--overwrite"]
    for name, (content, words) in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(content))
        capsys.readouterr()
        assert main([*common, "--calibration", str(f)]) == 1, name
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, (name, err)
        if name in ("model", "hash", "views"):
            assert "--calibration-force" in err
            assert main([*common, "--calibration", str(f), "--calibration-force"]) == 0
            header, (rec,) = read_results(tmp_path / "out" / "results.jsonl")
            assert header["temperature"] == 2.0 and rec["predictions"][0]["threshold"] == 0.3
    assert load_calibration(tmp_path / "model.json", net, "scales=64", force=True)["model"] == "resnet50"
    f = tmp_path / "good.json"
    f.write_text(json.dumps(good))
    assert load_calibration(f, net, "scales=64")["threshold"] == 0.3


def test_a_calibration_that_learnt_nothing_is_not_stored(tmp_path):
    rows = [{"norm": n, "MaxBoxAcc": 0.0, "MaxBoxAcc_tau": 0.0, "num_images": 4, "MaxBoxAcc_flat": True}
            for n in ("minmax", "positive")]
    with pytest.raises(CalibrationError, match="MaxBoxAcc is 0 for every reading and threshold on 4 images"):
        check_box_fit(rows, rows[0])
    flat = [{**r, "MaxBoxAcc": 50.0} for r in rows]
    with pytest.raises(CalibrationError, match="every threshold scores the same MaxBoxAcc"):
        check_box_fit(flat, flat[0])
    check_box_fit([flat[0], {**flat[1], "MaxBoxAcc_flat": False}], flat[0])  # one reading varies: kept
    # end to end: boxes nowhere near the objects, so no threshold ever matches one
    split = color_split(str(tmp_path / "data"), n_per_class=2, seed=2)
    for s in split.samples:
        s.boxes = [[0, 0, 1, 1]]
    meta = _wsol(str(tmp_path / "data"), split)
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--model", "test_colorcam", "--data", meta, "--image-root", str(tmp_path / "data"),
                 "--backend", "torch", "--workers", "0", "--resize", "aspect:64", "--out", str(out)]) == 1
    assert not out.exists()


def test_calibrate_scores_fits_the_temperature_and_localize_scores_with_it(tmp_path):
    """Class k's logit is k's color detector. Every photo right: the log loss falls forever as T
    shrinks, so the fit is refused (nothing to calibrate against). Two photos of twelve labelled
    wrong: the fitted T is the one of least log loss (checked against a direct fit), localize's
    scores are softmax(logit / T), the ranking and the raw logits unchanged."""
    split = color_split(str(tmp_path / "data"), n_per_class=4, seed=5)
    root = tmp_path / "labelled"
    (root / "images").mkdir(parents=True)
    labels = [s.label for s in split.samples]

    def write_labels() -> None:
        (root / "labels.csv").write_text("file,class_index\n" + "".join(f"{i}.png,{c}\n" for i, c in enumerate(labels)))

    for i, s in enumerate(split.samples):
        os.link(s.path, root / "images" / f"{i}.png")
    write_labels()
    cal = tmp_path / "cal.json"
    args = ["calibrate", "--scores", "--model", "test_colorcam", "--data", str(root), "--backend", "torch",
            "--workers", "0", "--resize", "aspect:64", "--out", str(cal)]
    assert main(args) == 1 and not cal.exists()  # separable: the best temperature is at the end of the range
    labels[1], labels[6] = (labels[1] + 1) % 3, (labels[6] + 2) % 3
    write_labels()
    assert main(args) == 0
    rec = json.loads(cal.read_text())
    net = colorcam()
    logits, got, bad = collect_logits(net, [(str(root / "images" / f"{i}.png"), c) for i, c in enumerate(labels)],
                                      Resize("aspect", 64), backend="torch", workers=0, progress=False)
    assert bad == [] and got.tolist() == labels
    t = scores.fit_temperature(logits, got)
    grid = np.exp(np.linspace(np.log(1e-3), np.log(1e3), 600))
    assert scores.log_loss(logits, got, t) <= min(scores.log_loss(logits, got, g) for g in grid) + 1e-9
    assert rec["temperature"] == pytest.approx(t, rel=1e-4) and rec["views"] == "scales=64"
    assert rec["scores_fit"]["log_loss_after"] < rec["scores_fit"]["log_loss_before"]
    assert "threshold" not in rec and rec["weights_sha256"] == model_digest(net)
    out = tmp_path / "loc"
    image = str(root / "images" / "0.png")
    common = ["localize", image, "--model", "test_colorcam", "--backend", "torch", "--resize", "aspect:64",
              "--topk", "3", "--no-figures", "--out", str(out), "--overwrite"]
    assert main([*common, "--calibration", str(cal)]) == 0
    header, (r,) = read_results(out / "results.jsonl")
    assert header["temperature"] == rec["temperature"] and header["temperature_views"] == "scales=64"
    logit = np.array([p["logit"] for p in r["predictions"]])
    full = logits[0]  # the same photo's logits, all 3 classes
    assert [p["class_index"] for p in r["predictions"]] == list(np.argsort(-full))
    expected = scores.softmax(full, rec["temperature"])[np.argsort(-full)]
    assert [p["score"] for p in r["predictions"]] == pytest.approx(expected, abs=2e-6)
    assert logit == pytest.approx(np.sort(full)[::-1], abs=2e-6)
    assert main([*common, "--calibration", "none"]) == 0  # raw softmax
    header, (r,) = read_results(out / "results.jsonl")
    assert header["temperature"] == 1.0
    assert [p["score"] for p in r["predictions"]] == pytest.approx(np.sort(scores.softmax(full))[::-1], abs=2e-6)
    # the box part, calibrated afterwards into the same file, keeps the temperature
    meta = _wsol(str(tmp_path / "data"), split)
    assert main(["calibrate", "--model", "test_colorcam", "--data", meta, "--image-root", str(tmp_path / "data"),
                 "--backend", "torch", "--workers", "0", "--resize", "aspect:64", "--out", str(cal)]) == 0
    both = json.loads(cal.read_text())
    assert both["temperature"] == rec["temperature"] and both["norm"] == "minmax"


@pytest.mark.parametrize("content, words", [
    ("{not json", "not JSON"),
    ("[1, 2]", "a JSON object is expected"),
    ('{"format": 2, "threshold": 1.5, "norm": "minmax"}', "threshold must be a number in [0, 1), got 1.5"),
    ('{"format": 2, "threshold": true, "norm": "minmax"}', "threshold must be a number"),
    ('{"format": 2, "threshold": 0.2, "norm": "median"}', "unknown map normalization 'median'"),
    ('{"format": 2, "threshold": 0.2, "norm": "minmax", "clamp_negative": "yes"}', "clamp_negative must be true or false"),
    ('{"format": 2, "temperature": 0}', "temperature must be a positive number, got 0"),
    ('{"format": 2, "temperature": NaN}', "temperature must be a positive number"),
    ('{"format": 2}', "holds neither a box threshold nor a temperature"),
    ('{"threshold": 0.2, "norm": "minmax"}', "calibration format None, this camloc reads format 2"),
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
    assert calibration_path(str(ckpt), None, None) == tmp_path / "m.pt.calibration.json"
    assert calibration_path(str(ckpt), str(probe), None) == tmp_path / "p.probe.calibration.json"
    assert calibration_path("resnet50", None, str(ckpt)) == tmp_path / "m.pt.calibration.json"
    assert calibration_path("resnet50", None, None) is None  # a built-in model: none, not a cache file


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


def test_a_calibration_beside_your_checkpoint_applies_without_naming_it(tmp_path):
    """calibrate --scores on a checkpoint with no --out writes <ckpt>.calibration.json; localize on
    that checkpoint then scores with its temperature and says so in the header; the file does not
    apply to the same architecture under its registered name."""
    import camloc

    split = color_split(str(tmp_path / "data"), n_per_class=3, seed=7)
    folders = tmp_path / "folders"
    labels = [s.label for s in split.samples]
    labels[0] = (labels[0] + 1) % 3  # one photo labelled wrong: a finite temperature
    for i, (s, c) in enumerate(zip(split.samples, labels)):
        (folders / "val" / ["red", "green", "blue"][c]).mkdir(parents=True, exist_ok=True)
        os.link(s.path, folders / "val" / ["red", "green", "blue"][c] / f"{i}.png")
    ckpt = tmp_path / "m.pt"
    camloc.save_checkpoint(colorcam(), ckpt)
    assert main(["calibrate", "--scores", "--model", str(ckpt), "--data", str(folders), "--backend", "torch",
                 "--workers", "0", "--resize", "aspect:64"]) == 0
    beside = tmp_path / "m.pt.calibration.json"
    t = json.loads(beside.read_text())["temperature"]
    out = tmp_path / "loc"
    common = [split.samples[1].path, "--backend", "torch", "--resize", "aspect:64", "--no-figures", "--out", str(out),
              "--overwrite"]
    assert main(["localize", "--model", str(ckpt), *common]) == 0
    header = read_results(out / "results.jsonl")[0]
    assert (header["temperature"], header["calibration"]) == (t, str(beside))
    assert main(["localize", "--model", "test_colorcam", *common]) == 0
    header = read_results(out / "results.jsonl")[0]
    assert (header["temperature"], header["calibration"]) == (1.0, None)


def test_find_calibration_applies_only_what_is_named_or_beside_your_file(tmp_path, monkeypatch):
    from camloc.calibrate import find_calibration

    monkeypatch.setenv("CAMLOC_CACHE", str(tmp_path / "cache"))
    net = colorcam()
    rec = {"format": 2, "model": net.name, "weights_sha256": model_digest(net), "views": "scales=64", "temperature": 3.0}
    (tmp_path / "cache" / "calibration").mkdir(parents=True)
    (tmp_path / "cache" / "calibration" / "test_colorcam.json").write_text(json.dumps(rec))  # the old cache place
    assert find_calibration(net, "scales=64", "test_colorcam", None, None) == (None, None)
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    assert find_calibration(net, "scales=64", str(ckpt), None, None) == (None, None)  # nothing beside it yet
    (tmp_path / "m.pt.calibration.json").write_text(json.dumps(rec))
    cal, path = find_calibration(net, "scales=64", str(ckpt), None, None)
    assert cal["temperature"] == 3.0 and path == str(tmp_path / "m.pt.calibration.json")
    assert find_calibration(net, "scales=64", str(ckpt), None, None, named="none") == (None, None)
    named, where = find_calibration(net, "scales=64", "test_colorcam", None, None, named=path)
    assert named["temperature"] == 3.0 and where == path
    with pytest.raises(CalibrationError, match="made for views scales=64, this run uses squash"):
        find_calibration(net, "squash", str(ckpt), None, None)
