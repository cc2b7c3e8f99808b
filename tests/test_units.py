"""Class-specific units: ranking by weight, best images per unit, figure and command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import camloc
from camloc.boxes import boxes_from_map
from camloc.readings import upsample
from camloc.cli import main
from camloc.models.heads import Head
from camloc.models.net import Preprocessing
from camloc.units import class_index, class_units, contributing_units, unit_hits
from camloc.viz.grids import units_figure


class UnitNet(nn.Module):
    """Unit k is the k-th colour channel (1x1 identity conv, ReLU), then GAP and a linear layer
    with class 0 weights ``[0.5, 2, -1]`` and class 1 weights ``[1, 1, 1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[0.5, 2.0, -1.0], [1.0, 1.0, 1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


@pytest.fixture
def net():
    pre = Preprocessing(shape=(8, 8), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return camloc.load_model(UnitNet().eval(), preprocessing=pre, class_names=["zero", "one"])


def _png(path, paint) -> str:
    a = np.zeros((8, 8, 3), np.uint8)
    paint(a)
    Image.fromarray(a).save(path)
    return str(path)


@pytest.fixture
def images(tmp_path):
    a = _png(tmp_path / "a.png", lambda a: a.__setitem__((2, 6, 1), 255))  # green 255 at x=6, y=2
    b = _png(tmp_path / "b.png", lambda a: a.__setitem__((5, 1, 1), 128))  # green 128 at x=1, y=5
    c = _png(tmp_path / "c.png", lambda a: a.__setitem__((slice(None), slice(None), 0), 200))  # red 200
    return a, b, c


def test_units_are_ranked_by_positive_weight(net):
    assert [(u.index, u.weight) for u in class_units(net, 0, 3)] == [(1, 2.0), (0, 0.5)]  # -1 argues against
    assert [u.index for u in class_units(net, 1, 2)] == [0, 1]  # a tie keeps the lower index first
    assert [u.index for u in class_units(net, 0, 1)] == [1]
    with pytest.raises(ValueError, match="at least 1"):
        class_units(net, 0, 0)


def test_hits_are_the_highest_peaks_with_their_place_and_box(net, images, tmp_path):
    a, b, c = images
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    units = class_units(net, 0, 2)
    skipped = unit_hits(net, [a, str(bad), b, c], units, per_unit=2, progress=False)
    assert len(skipped) == 1 and skipped[0].startswith(str(bad))
    green, red = units
    assert [h.image for h in green.hits] == [a, b]
    assert green.hits[0].peak == pytest.approx(1.0) and green.hits[1].peak == pytest.approx(128 / 255)
    assert green.hits[0].point == (6, 2) and green.hits[0].box == [6, 2, 6, 2]
    assert green.hits[1].point == (1, 5) and green.hits[1].box == [1, 5, 1, 5]
    assert [h.image for h in red.hits] == [c, a]  # then a and b tie at 0: input order
    assert red.hits[0].peak == pytest.approx(200 / 255) and red.hits[0].box == [0, 0, 7, 7]
    assert red.hits[1].box is None  # a zero map has no positive part
    d = green.to_dict()
    assert d["unit"] == 1 and d["hits"][0] == {"image": a, "peak": 1.0, "mean": 0.015625, "point": [6, 2],
                                               "box": [6, 2, 6, 2], "width": 8, "height": 8}
    units_figure(units, tmp_path / "u.png", title="t")
    assert (tmp_path / "u.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_units_ranked_by_their_share_of_the_class_score(net, images, tmp_path):
    """Unit 0 (weight 0.5) carries class 0's score on the red image, unit 1 (weight 2) only one
    bright pixel: by contribution unit 0 comes first, the reverse of the weight order; unit 2
    (weight -1) never contributes positively."""
    a, b, c = images
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    units, skipped = contributing_units(net, 0, [a, b, str(bad), c], count=3, progress=False)
    assert len(skipped) == 1 and skipped[0].startswith(str(bad))
    assert [u.index for u in units] == [0, 1]
    assert units[0].contribution == pytest.approx(0.5 * (200 / 255) / 3, rel=1e-5)
    assert units[1].contribution == pytest.approx(2 * (1 / 64 + (128 / 255) / 64) / 3, rel=1e-5)
    # the shares of all units plus the bias are the mean class score over the images
    scores = camloc.cam(net, net.preprocess([a, b, c]), classes=torch.tensor([0])).logits[:, 0]
    all_units, _ = contributing_units(net, 0, [a, b, c], count=3, progress=False)
    assert sum(u.contribution for u in all_units) == pytest.approx(float(scores.mean()), rel=1e-5)
    assert units[0].to_dict()["contribution"] == pytest.approx(0.130719, abs=1e-6)
    with pytest.raises(ValueError, match="no image could be read"):
        contributing_units(net, 0, [str(bad)], progress=False)


def test_class_by_label_or_index(net):
    assert class_index(net, "one") == 1 and class_index(net, "ONE") == 1 and class_index(net, "0") == 0
    with pytest.raises(ValueError, match=r"no class 'onee'; did you mean 'one'"):
        class_index(net, "onee")
    with pytest.raises(ValueError, match="out of range"):
        class_index(net, 5)


def test_cli_on_real_photos(tmp_path, photo_dir, lite0, capsys):
    """On the embedded model: the units are the class's largest weights, every hit's peak and
    mean are those of the features of camloc's one-forward CAM pass, hits are ranked, each box
    is the largest component of the unit's map and each peak lies in one of its components (not
    always the largest: on horse.png unit 314 fires on two parts almost equally)."""
    out = tmp_path / "u"
    names = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png", "horse.png")
    photos = [f"{photo_dir}/{n}" for n in names]
    rc = main(["units", *photos, "--model", "efficientnet_lite0", "--class", "Egyptian cat", "--units", "3",
               "--per-unit", "6", "--out", str(out)])
    assert rc == 0
    rec = json.loads((out / "units.json").read_text())
    assert rec["label"] == "Egyptian cat" and rec["class_index"] == 285 and rec["images"] == 6
    w = lite0.classifier.weight.detach()[285]
    top = torch.topk(w, 3)
    assert [u["unit"] for u in rec["units"]] == top.indices.tolist()
    assert [u["weight"] for u in rec["units"]] == pytest.approx(top.values.tolist(), abs=1e-6)
    features = camloc.cam(lite0, lite0.preprocess(photos), topk=1).features
    for u in rec["units"]:
        hits = u["hits"]
        assert sorted(h["image"] for h in hits) == sorted(photos)
        assert [(-h["peak"], -h["mean"]) for h in hits] == sorted((-h["peak"], -h["mean"]) for h in hits)
        for h in hits:
            f = features[photos.index(h["image"]), u["unit"]]
            assert h["peak"] == pytest.approx(float(f.max()), abs=1e-4)
            assert h["mean"] == pytest.approx(float(f.mean()), abs=1e-4)
            (x, y), box = h["point"], h["box"]
            parts = boxes_from_map(upsample(f.numpy(), (h["height"], h["width"])), 0.2, largest_only=False,
                                   norm="positive")
            if box is None:  # a unit that does not fire on the image
                assert not parts and h["peak"] == 0.0
            else:
                assert box == parts[0] and any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in parts)
    assert (out / "units_Egyptian_cat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "unit" in capsys.readouterr().out
    assert main(["units", *photos, "--model", "efficientnet_lite0", "--class", "285", "--rank", "contribution", "--units", "2",
                 "--out", str(tmp_path / "c")]) == 0
    rec = json.loads((tmp_path / "c" / "units.json").read_text())
    pooled = features.mean(dim=(-2, -1)).mean(dim=0)  # the mean GAP features over the photos
    share = (w * pooled).tolist()
    assert rec["rank"] == "contribution" and [u["unit"] for u in rec["units"]] == torch.topk(w * pooled, 2).indices.tolist()
    assert [u["contribution"] for u in rec["units"]] == pytest.approx([share[u["unit"]] for u in rec["units"]], abs=1e-5)
    capsys.readouterr()
    assert main(["units", *photos, "--class", "Egyptian kat", "--out", str(out)]) == 1
    assert "did you mean 'Egyptian cat'" in capsys.readouterr().err


def test_cli_reports_each_input_that_gives_nothing_and_goes_on(tmp_path, photo_dir, capsys):
    """Inputs stream through the pipeline's discovery: an empty folder or a glob matching
    nothing is one line, a missing file one skipped line, as in the other commands."""
    (tmp_path / "empty").mkdir()
    cat, none, out = f"{photo_dir}/chelsea.png", str(tmp_path / "none.jpg"), tmp_path / "u"
    rc = main(["units", cat, str(tmp_path / "empty"), none, str(tmp_path / "*.gif"), "--class", "Egyptian cat",
               "--units", "1", "--per-unit", "1", "--out", str(out)])
    assert rc == 1
    assert capsys.readouterr().err.splitlines() == [
        f"camloc units: {tmp_path / 'empty'}: folder holds no images",
        f"camloc units: {tmp_path / '*.gif'}: pattern matched no files",
        f"camloc units: skipped {none}: no such file"]
    rec = json.loads((out / "units.json").read_text())
    assert rec["images"] == 2 and rec["skipped"] == [f"{none}: no such file"]
    assert [h["image"] for h in rec["units"][0]["hits"]] == [cat]
    assert main(["units", str(tmp_path / "empty"), "--class", "0", "--out", str(out)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"camloc units: {tmp_path / 'empty'}: folder holds no images",
                                                    "camloc units: error: no images to search"]
