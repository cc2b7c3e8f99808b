"""The randomisation sanity check (camloc.sanity, camloc sanity) and the comparison harness
(camloc.compare, camloc compare) on tiny nets and a WSOL fixture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision

from camloc.cli import main
from camloc.compare import compare, markdown, winners
from camloc.methods import MapMethod, get_method
from camloc.models.net import CamNet, Preprocessing
from camloc.sanity import blocks, randomize, sanity, spearman


def small_net(classes: int = 3) -> CamNet:
    torch.manual_seed(0)
    return CamNet(torchvision.models.resnet18(num_classes=classes).eval(), "resnet18-random", [f"c{i}" for i in range(classes)],
                  Preprocessing(shape=(64, 64)))


def test_blocks_top_down_and_randomize_is_seeded():
    net = torchvision.models.resnet18(num_classes=3)
    names = [n for n, _ in blocks(net)]
    assert names[:4] == ["fc", "layer4.1", "layer4.0", "layer3.1"]
    assert names[-2:] == ["bn1", "conv1"]
    a, b = torchvision.models.resnet18(num_classes=3), torchvision.models.resnet18(num_classes=3)
    randomize(a.fc, 7)
    randomize(b.fc, 7)
    assert torch.equal(a.fc.weight, b.fc.weight)
    before = a.layer4[1].bn2.running_mean.clone().fill_(3.0)
    a.layer4[1].bn2.running_mean.copy_(before)
    randomize(a.layer4, 1)
    assert torch.all(a.layer4[1].bn2.running_mean == 0)


def test_spearman_values():
    a = np.arange(12.0).reshape(3, 4)
    assert spearman(a, a ** 3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.ones_like(a)) == 0.0  # a constant map has no ranks


def test_sanity_flags_a_map_that_ignores_the_weights_and_passes_cam():
    net = small_net()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    center = sanity(net, get_method("center"), x, depth=2)
    assert center.flagged and center.steps[0]["mean"] == pytest.approx(1.0)
    cam = sanity(net, get_method("cam"), x, depth=2)
    assert [s["block"] for s in cam.steps] == ["fc", "layer4.1"]
    assert not cam.flagged and cam.top_block_correlation < 0.5
    # the original net is untouched
    assert torch.equal(get_method("cam")(net, x, torch.tensor([0])), get_method("cam")(net, x, torch.tensor([0])))
    assert "FLAGGED" in center.markdown() and "passes" in cam.markdown()


class SignFlip:
    """A map that ignores the weights but for its sign: the centre prior, negated once the
    classifier is no longer the original one (as an SVD's arbitrary sign can flip Eigen-CAM)."""

    name = "signflip"

    def __init__(self, original_fc: torch.Tensor) -> None:
        self.original_fc = original_fc.clone()

    def __call__(self, net, x, classes):
        maps = get_method("center")(net, x, classes)
        return maps if torch.equal(net.module.fc.weight, self.original_fc) else -maps


def test_sanity_flags_a_map_that_only_flips_its_sign():
    """Mean r is -1 (it would pass on the signed mean, and rank first in compare's column); the
    absolute correlation is 1: the structure did not change, so it is flagged."""
    net = small_net()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    r = sanity(net, SignFlip(net.module.fc.weight), x, depth=2)
    assert r.top_block_correlation == pytest.approx(-1.0)
    assert r.top_block_abs_correlation == pytest.approx(1.0) and r.flagged


@pytest.fixture(scope="module")
def wsol(tmp_path_factory):
    from camloc.testing.formats import write_wsol_fixture

    root = tmp_path_factory.mktemp("wsol")
    write_wsol_fixture(root, "test", num_classes=3, per_class=2)
    return root


def test_compare_rows_counts_and_table(wsol):
    from camloc.data import open_dataset

    net = small_net()
    split = open_dataset(str(wsol), "test")
    methods = {n: get_method(n) for n in ("cam", "gradcam", "center", "ablationcam")}
    rows, figure = compare(net, split.samples, methods, subset=2, steps=4, sanity_images=2, examples=2, road_images=2,
                           road_fractions=(0.5,), progress=False)
    by = {r["method"]: r for r in rows}
    for r in rows:  # ROAD on the first two photos: probabilities, and the gap is LeRF - MoRF
        assert r["num_road_images"] == 2 and 0 <= r["road_morf"] <= 1 and 0 <= r["road_lerf"] <= 1
        assert r["road_gap"] == pytest.approx(r["road_lerf"] - r["road_morf"])
    # the shared passes change no map: the same rows without them (times aside)
    two = {n: methods[n] for n in ("gradcam", "cam")}
    kw = {"limit": 2, "steps": 2, "sanity_images": 0, "examples": 0, "road_images": 1, "road_fractions": (0.5,),
          "progress": False}
    alone, _ = compare(net, split.samples, two, share=False, **kw)
    together, _ = compare(net, split.samples, two, **kw)
    for r, t in zip(alone, together):
        for key in ("MaxBoxAccV2", "deletion_auc", "insertion_auc", "pointing_game", "road_morf", "road_lerf"):
            assert r[key] == pytest.approx(t[key], abs=1e-9), (r["method"], key)
    assert by["cam"]["num_images"] == 6 and by["ablationcam"]["num_images"] == 2  # the stated subset
    for r in rows:
        assert 0 <= r["MaxBoxAccV2@50"] <= 100 and 0 <= r["deletion_auc"] <= 1 and r["ms_per_image"] > 0
        assert r["MaxBoxAccV2@30"] >= r["MaxBoxAccV2@50"] >= r["MaxBoxAccV2@70"]
    # Grad-CAM at the GAP + linear feature layer is ReLU(CAM) / (h w): the same boxes (min-max of a
    # positive part differs from the CAM's only where the CAM is negative), and the same pointing game
    assert by["gradcam"]["pointing_game"] == by["cam"]["pointing_game"]
    assert by["center"]["sanity_flagged"] and not by["cam"]["sanity_flagged"]
    table = markdown(rows)
    assert table.count("\n") == 2 + len(rows) and "| ablationcam | 2 |" in table
    assert "ROAD MoRF" in table and "ROAD LeRF" in table
    assert all(" over " in w for w in winners(rows))
    assert len(figure["images"]) == 2 and len(figure["maps"]["ablationcam"]) == 2


def test_compare_and_sanity_commands(wsol, tmp_path, monkeypatch, capsys):
    import camloc.commands._common as common

    monkeypatch.setattr(common, "load_net", lambda *a, **k: small_net())
    out = tmp_path / "cmp"
    rc = main(["compare", "--data", str(wsol), "--split", "test", "--methods", "cam,center,ablationcam", "--subset", "1",
               "--steps", "2", "--sanity-images", "1", "--examples", "2", "--road-images", "1", "--road-fractions", "0.5",
               "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "compare.json").read_text())
    assert [r["method"] for r in data["rows"]] == ["cam", "center", "ablationcam"]
    assert data["rows"][2]["num_images"] == 1 and data["rows"][0]["num_images"] == 6
    assert data["road_fractions"] == [0.5] and data["rows"][0]["num_road_images"] == 1 and data["shared_passes"]
    assert (out / "compare.png").stat().st_size > 0 and "| ablationcam | 1 |" in (out / "compare.md").read_text()
    photos = [json.loads(line) for line in (out / "photos.jsonl").read_text().splitlines()]
    assert len(photos) == 6 and not (out / "photos.jsonl.partial").exists()
    assert [sorted(p["methods"]) for p in photos] == [["ablationcam", "cam", "center"]] + [["cam", "center"]] * 5
    for r in data["rows"]:  # the table's means are the streamed photos' means
        per = [p["methods"][r["method"]] for p in photos if r["method"] in p["methods"]]
        for key in ("deletion_auc", "insertion_auc", "average_drop"):
            assert np.mean([v[key] for v in per]) == pytest.approx(r[key], abs=1e-12), (r["method"], key)
        assert [v["road_morf"] for v in per if "road_morf" in v] == pytest.approx([r["road_morf"]])
        assert all(v["finite"] and v["ms"] > 0 and (v["box"] is None or len(v["box"]) == 4) for v in per)
    assert any(p["methods"]["center"]["box"] for p in photos)  # the centre map always has a box
    rc = main(["sanity", "--data", str(wsol), "--split", "test", "--method", "center", "--limit", "2", "--depth", "1",
               "--out", str(tmp_path / "s")])
    assert rc == 0
    assert "| center | 1.000 | 1.000 | 1.000 | yes |" in capsys.readouterr().out
    for bad in ("0.5,0.5", "1.5", "x", ""):
        assert main(["compare", "--data", str(wsol), "--methods", "cam", "--road-fractions", bad]) in (1, 2)
        assert "--road-fractions" in capsys.readouterr().err
    assert main(["compare", "--data", str(wsol), "--methods", "scorecamm"]) == 1
    assert "did you mean 'scorecam'" in capsys.readouterr().err


def test_compare_says_which_methods_were_refused(wsol, tmp_path, monkeypatch, capsys):
    """LeGrad cannot map a CNN: its row is empty and the table and stderr say why, once."""
    import camloc.commands._common as common

    monkeypatch.setattr(common, "load_net", lambda *a, **k: small_net())
    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(wsol), "--split", "test", "--methods", "center,legrad", "--limit", "2",
                 "--steps", "2", "--sanity-images", "0", "--examples", "1", "--road-images", "0", "--out", str(out)]) == 0
    md, err = (out / "compare.md").read_text(), capsys.readouterr().err
    assert "| legrad | 0 |" in md and "| center | 2 |" in md
    line = "legrad: refused on every photo (2): legrad: ResNet is not a timm vision transformer"
    assert f"- not scored: {line}" in md and f"camloc compare: {line}" in err and md.count("not scored") == 1


def test_compare_refuses_a_net_with_a_probe_attached(wsol):
    """compare scores the backbone's own classifier; with a probe attached it would explain the
    backbone's classes without a word: refused in one line."""
    from camloc.data import open_dataset

    net = small_net()
    net.probe = torch.nn.Linear(512, 2)
    split = open_dataset(str(wsol), "test")
    with pytest.raises(ValueError, match="has a probe attached") as err:
        compare(net, split.samples, {"cam": get_method("cam")}, progress=False)
    assert "\n" not in str(err.value)


def test_compare_refuses_a_split_without_boxes(wsol):
    from dataclasses import replace

    from camloc.data import open_dataset

    samples = [replace(s, boxes=[]) for s in open_dataset(str(wsol), "test").samples]
    with pytest.raises(ValueError, match="no boxes or masks"):
        compare(small_net(), samples, {"center": get_method("center")}, progress=False)


class NaNMaps(MapMethod):
    """Ones with one NaN cell per map: a method whose maps are not finite (compare, ablate and
    evaluate must score them as misses and say how many)."""

    name = "nan"

    def maps(self, net, x, classes):
        m = torch.ones(x.shape[0], classes.shape[1], 7, 7)
        m[:, :, 3, 3] = float("nan")
        return m


def test_compare_says_which_maps_were_not_finite_and_scores_them_as_misses(wsol):
    from camloc.data import open_dataset

    rows, figure = compare(small_net(), open_dataset(str(wsol), "test").samples[:2], {"nan": NaNMaps()}, steps=2,
                           sanity_images=0, examples=1, road_images=1, road_fractions=(0.5,), progress=False)
    (row,) = rows
    assert row["num_nonfinite_maps"] == 2 and "2 of 2 maps not finite" in row["warning"]
    assert row["MaxBoxAccV2"] == 0.0 and row["gt_known"] == 0.0 and row["pointing_game"] == 0.0
    assert np.isfinite(row["deletion_auc"]) and np.isfinite(row["road_morf"])
    assert "\n" not in row["warning"]


def test_compare_on_onnx_runtime_gives_pytorchs_rows(wsol):
    """The maps' and the curves' forward passes on ONNX Runtime: the same rows as PyTorch (to the
    graph's check tolerance), and PyTorch runs no forward of the net once the graphs exist."""
    from camloc.data import open_dataset

    net = small_net()
    samples = open_dataset(str(wsol), "test").samples[:3]
    methods = {n: get_method(n) for n in ("cam", "gradcampp", "eigencam", "scorecam")}
    kw = {"steps": 4, "sanity_images": 0, "examples": 0, "road_images": 1, "road_fractions": (0.5,), "progress": False}
    torch_rows, _ = compare(net, samples, methods, backend="torch", **kw)
    ort_rows, _ = compare(net, samples, methods, backend="onnxruntime", **kw)
    calls = []
    hook = net.module.register_forward_hook(lambda *a: calls.append(1))
    try:
        again, _ = compare(net, samples, methods, backend="auto", **kw)
    finally:
        hook.remove()
    assert not calls  # the graphs built by the run before serve every forward pass
    for t, o, a in zip(torch_rows, ort_rows, again):
        assert (t["engine"], o["engine"], a["engine"]) == ("torch", "onnxruntime", "onnxruntime")
        for key in ("MaxBoxAccV2", "gt_known", "pointing_game", "deletion_auc", "insertion_auc", "average_drop",
                    "road_morf", "road_lerf"):
            assert o[key] == pytest.approx(t[key], abs=2e-3), (t["method"], key)
            assert a[key] == o[key], (t["method"], key)
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        compare(net, samples, methods, backend="gpu", **kw)


def test_a_killed_compare_keeps_the_photos_it_finished(wsol, tmp_path, monkeypatch):
    """photos.jsonl streams: a run stopped at the third photo leaves the first two in
    photos.jsonl.partial, and the photos.jsonl of an earlier run untouched."""
    import camloc.commands._common as common

    class Stop(MapMethod):
        name = "stop"

        def __init__(self):
            self.calls = 0

        def maps(self, net, x, classes):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return torch.ones(len(x), classes.shape[1], 2, 2)

    monkeypatch.setattr(common, "load_net", lambda *a, **k: small_net())
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "photos.jsonl").write_text("older\n")
    stop = Stop()
    monkeypatch.setattr("camloc.methods.get_method", lambda name, **k: stop)
    monkeypatch.setattr("camloc.commands._method_args.method_list", lambda text: ["cam"])
    assert main(["compare", "--data", str(wsol), "--split", "test", "--methods", "cam", "--steps", "2",
                 "--sanity-images", "0", "--road-images", "0", "--out", str(out)]) == 130  # interrupted
    kept = [json.loads(line) for line in (out / "photos.jsonl.partial").read_text().splitlines()]
    assert len(kept) == 2 and all("deletion_auc" in k["methods"]["cam"] for k in kept)
    assert (out / "photos.jsonl").read_text() == "older\n"
    stop.calls = 2  # stopped at the first photo: nothing kept, and no empty partial file left
    (out / "photos.jsonl.partial").unlink()
    assert main(["compare", "--data", str(wsol), "--split", "test", "--methods", "cam", "--steps", "2",
                 "--sanity-images", "0", "--road-images", "0", "--out", str(out)]) == 130
    assert not (out / "photos.jsonl.partial").exists() and (out / "photos.jsonl").read_text() == "older\n"


def test_compare_runs_the_perturbation_methods_sanity_on_its_backend(wsol, monkeypatch):
    """The sanity check of a perturbation method runs its masked passes on ONNX Runtime (graphs of
    the randomised nets built), a one-forward method's stays in PyTorch (no graph built), and the
    correlations are PyTorch's."""
    from camloc.data import open_dataset
    from camloc.methods import engine

    net = small_net()
    samples = open_dataset(str(wsol), "test").samples[:2]
    kw = {"limit": 1, "steps": 1, "examples": 0, "road_images": 0, "progress": False}
    built = []
    build = engine._build
    monkeypatch.setattr(engine, "_build", lambda *a: built.append(1) or build(*a))
    for name, graphs in (("cam", 0), ("scorecam", 1)):
        method = {name: get_method(name, **({"layer": "layer1"} if name == "scorecam" else {}))}  # 64 channels
        compare(net, samples, method, sanity_images=0, backend="onnxruntime", **kw)  # the net's own graphs
        built.clear()
        [ort] = compare(net, samples, method, sanity_images=1, backend="onnxruntime", **kw)[0]
        assert (len(built) > 0) == bool(graphs), name
        [pt] = compare(net, samples, method, sanity_images=1, backend="torch", **kw)[0]
        assert ort["sanity_r"] == pytest.approx(pt["sanity_r"], abs=1e-3) and "sanity_error" not in ort


def test_winners_say_when_two_rows_are_not_of_the_same_photos():
    rows = [{"method": "cam", "num_images": 630, "deletion_auc": 0.21, "deletion_auc_se": 0.008},
            {"method": "scorecam", "num_images": 100, "deletion_auc": 0.18, "deletion_auc_se": 0.02},
            {"method": "gradcam", "num_images": 630, "deletion_auc": 0.226, "deletion_auc_se": 0.008}]
    [line] = winners(rows)
    assert line == "deletion: scorecam (0.18) over cam (0.21) by 0.03, 1.5 s.e. (on 100 and 630 photos: not the same photos)"
    [line] = winners([rows[0], rows[2]])
    assert line == "deletion: cam (0.21) over gradcam (0.226) by 0.016, 2.0 s.e."
