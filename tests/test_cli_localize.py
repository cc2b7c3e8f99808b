"""``camloc localize`` end to end: outputs, bad inputs, models from names, files and checkpoints."""

from __future__ import annotations

import json
import os

import jsonschema
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import camloc
from camloc.cli import main
from camloc.schema import HEADER, RECORD


def _records(out) -> list[dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    jsonschema.validate(json.loads(lines[0]), HEADER)  # the run's header line first
    recs = [json.loads(line) for line in lines[1:]]
    for r in recs:
        jsonschema.validate(r, RECORD)
    return recs


def test_good_and_bad_images_in_one_run(tmp_path, photo_dir, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.open(f"{photo_dir}/chelsea.png").convert("L").save(folder / "gray.png")
    Image.open(f"{photo_dir}/coffee.png").convert("CMYK").save(folder / "cmyk.jpg")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one.png")
    (folder / "text.jpg").write_text("not an image")
    Image.open(f"{photo_dir}/rocket.jpg").save(folder / "trunc.jpg")
    raw = (folder / "trunc.jpg").read_bytes()
    (folder / "trunc.jpg").write_bytes(raw[: len(raw) // 3])
    out = tmp_path / "out"
    code = main(["localize", str(folder), "--out", str(out), "--topk", "3", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 1  # some images failed
    recs = {os.path.basename(r["image"]): r for r in _records(out)}
    assert set(recs) == {"gray.png", "cmyk.jpg", "one.png", "text.jpg", "trunc.jpg"}
    assert recs["text.jpg"]["error"] and recs["trunc.jpg"]["error"]
    for name in ("gray.png", "cmyk.jpg", "one.png"):
        assert recs[name]["error"] is None and len(recs[name]["predictions"]) == 3
        assert (out / "figures" / f"{os.path.splitext(name)[0]}_cam.png").exists()
        assert (out / "figures" / f"{os.path.splitext(name)[0]}_topk.png").exists()
    assert recs["one.png"]["predictions"][0]["box"] == [0, 0, 0, 0]
    error_lines = [line for line in err.splitlines() if line.startswith("camloc localize:")]
    assert any("text.jpg" in line for line in error_lines) and any("trunc.jpg" in line for line in error_lines)
    overlay = np.asarray(Image.open(out / "figures" / "gray_cam.png"))
    assert overlay.shape == (300, 451, 3)
    assert not list(out.rglob(".tmp-*"))


def test_all_good_exit_zero_and_summary(tmp_path, photo_dir, capsys):
    out = tmp_path / "o"
    code = main(["localize", f"{photo_dir}/chelsea.png", "--out", str(out), "--topk", "2", "--no-figures"])
    text = capsys.readouterr().out
    assert code == 0 and "1 localized, 0 failed" in text and "chelsea.png" in text
    assert not (out / "figures").exists()
    assert _records(out)[0]["predictions"][0]["class_index"] in range(281, 286)


def test_default_localizer_is_lite1_at_288_and_a_named_net_keeps_its_own_side(tmp_path, photo_dir, capsys):
    from camloc.localize import default_resize
    from camloc.pixels.geometry import Resize

    assert default_resize(camloc.load_model()) == Resize("aspect", 288)  # camloc.defaults: the API's and commands'
    assert default_resize(camloc.load_model("efficientnet_lite0")) == Resize("aspect", 224)  # a named net's own side
    path = f"{photo_dir}/chelsea.png"
    recs = {}
    for name, extra in (("default", []), ("lite0", ["--model", "efficientnet_lite0"])):
        assert main(["localize", path, "--out", str(tmp_path / name), "--topk", "1", "--no-figures", *extra]) == 0
        recs[name] = _records(tmp_path / name)[0]
    assert recs["default"]["model"] == "efficientnet_lite1" and recs["lite0"]["model"] == "efficientnet_lite0"
    for rec in recs.values():
        assert rec["predictions"][0]["class_index"] in range(281, 286)
    net = camloc.load_model("efficientnet_lite1")  # the default's box is Lite1's at shorter side 288
    again = camloc.localize(net, [path], topk=1, resize=Resize("aspect", 288))[0]
    assert again["predictions"][0]["box"] == recs["default"]["predictions"][0]["box"]
    other = camloc.localize(net, [path], topk=1)[0]  # Lite1 named: its own side, 256
    assert other["predictions"][0]["logit"] != pytest.approx(recs["default"]["predictions"][0]["logit"], abs=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "no_such_net"], "unknown model 'no_such_net'"),
        (["--model", "vgg11"], "CAM is not exact"),
        (["--model", "mobilenet_v3_small"], "two-layer head"),
        (["--topk", "0"], "--topk must be at least 1"),
    ],
)
def test_bad_models_and_options_one_line(tmp_path, photo_dir, capsys, args, message):
    code = main(["localize", f"{photo_dir}/chelsea.png", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and message in err[0] and err[0].startswith("camloc localize: error:")


def test_not_a_checkpoint(tmp_path, photo_dir, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"definitely not a checkpoint")
    code = main(["localize", f"{photo_dir}/chelsea.png", "--model", str(fake), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and f"{fake}: not a camloc checkpoint" in err
    other = tmp_path / "sd.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    assert main(["localize", f"{photo_dir}/chelsea.png", "--model", str(other), "--out", str(tmp_path / "o")]) == 1
    assert "format tag" in capsys.readouterr().err


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["localize", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "folder holds no images" in err


def test_checkpoint_round_trip_and_torchvision_weights(tmp_path, photo_dir):
    module = torchvision.models.resnet18(weights=None, num_classes=3)
    net = camloc.load_model(module, class_names=["ant", "bee", "cow"])
    net.name, net.arch_kwargs = "resnet18", {"num_classes": 3}
    ckpt = tmp_path / "r18.pt"
    camloc.save_checkpoint(net, ckpt)
    again = camloc.load_model(ckpt)
    assert again.class_names == ["ant", "bee", "cow"] and again.num_classes == 3
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x), again(x), atol=1e-6)
    out = tmp_path / "o"
    assert main(["localize", f"{photo_dir}/chelsea.png", "--model", str(ckpt), "--out", str(out), "--topk", "3",
                 "--no-figures"]) == 0
    assert {p["label"] for p in _records(out)[0]["predictions"]} == {"ant", "bee", "cow"}
    # A plain torchvision state dict: the class count comes from its classifier.
    sd = tmp_path / "r18_7.pth"
    torch.save(torchvision.models.resnet18(weights=None, num_classes=7).state_dict(), sd)
    assert camloc.load_model("resnet18", weights=sd).num_classes == 7
    # A checkpoint whose weights do not fit its architecture.
    bad = torch.load(ckpt, weights_only=True)
    bad["arch_kwargs"], bad["class_names"] = {"num_classes": 5}, list("abcde")
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(camloc.ModelError, match="do not fit architecture 'resnet18'"):
        camloc.load_model(tmp_path / "bad.pt")


def test_outputs_are_atomic(tmp_path, monkeypatch):
    from camloc import io

    target = tmp_path / "results.jsonl"
    io.atomic_write_text(target, "old\n")

    def dying_write(f):
        f.write(b"half a rec")
        raise KeyboardInterrupt  # a kill in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write_with(target, dying_write)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # as a plain open() would make it


def test_gradient_method_runs_where_cam_is_refused(tmp_path, photo_dir):
    out = tmp_path / "o"
    assert main(["localize", f"{photo_dir}/chelsea.png", "--model", "vgg11", "--method", "gradcam",
                 "--out", str(out), "--topk", "2", "--no-figures"]) == 0
    rec = _records(out)[0]
    assert rec["model"] == "vgg11" and len(rec["predictions"]) == 2
    assert all(p["box"] is not None or p["warning"] for p in rec["predictions"])


def test_gradcam_on_the_default_model_agrees_with_cam_on_the_cat(lite0, photo_dir):
    from camloc.methods import get_method

    path = f"{photo_dir}/chelsea.png"
    cam_rec = camloc.localize(lite0, [path], topk=1)[0]["predictions"][0]
    grad_rec = camloc.localize(lite0, [path], topk=1, method=get_method("gradcam"))[0]["predictions"][0]
    assert cam_rec["class_index"] == grad_rec["class_index"]
    # For a GAP + linear head Grad-CAM's channel weights are w_k^c / (h w): the same map up to
    # scale, and a ReLU. The boxes overlap strongly.
    assert camloc.box_iou(cam_rec["box"], grad_rec["box"]) > 0.6


def test_norm_option_reaches_the_records(tmp_path, photo_dir, capsys):
    out = tmp_path / "o"
    assert main(["localize", f"{photo_dir}/chelsea.png", "--topk", "2", "--norm", "positive",
                 "--out", str(out)]) == 0
    recs = _records(out)
    assert [p["norm"] for p in recs[0]["predictions"]] == ["positive", "positive"]
    assert (out / "figures" / "chelsea_cam.png").stat().st_size > 1000
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["localize", f"{photo_dir}/chelsea.png", "--norm", "max"])
    assert "unknown map normalization 'max'" in capsys.readouterr().err
