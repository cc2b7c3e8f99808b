"""End to end on real photos with the embedded ImageNet model, and the localize API."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from PIL import Image

import camloc
from camloc.boxes import box_iou
from camloc.schema import RECORD

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
# The cat in chelsea.png (451x300), drawn by hand: its head and shoulders fill the frame.
CHELSEA_CAT = [30, 0, 420, 299]
CHELSEA_FACE_POINTS = [(165, 115), (305, 120), (245, 190)]  # eyes and nose


def test_chelsea_is_a_cat_and_its_box_covers_the_cat(lite0, photo_dir):
    rec = camloc.localize(lite0, [f"{photo_dir}/chelsea.png"], topk=5)[0]
    jsonschema.validate(rec, RECORD)
    assert (rec["width"], rec["height"]) == (451, 300) and rec["error"] is None
    top = rec["predictions"][0]
    # The whole photo at its aspect splits the cat's probability among the cat breeds.
    assert top["class_index"] in CAT_CLASSES
    assert sum(p["score"] for p in rec["predictions"] if p["class_index"] in CAT_CLASSES) > 0.5
    x0, y0, x1, y1 = top["box"]
    assert box_iou(top["box"], CHELSEA_CAT) >= 0.7
    for px, py in CHELSEA_FACE_POINTS:
        assert x0 <= px <= x1 and y0 <= py <= y1
    assert [p["rank"] for p in rec["predictions"]] == [1, 2, 3, 4, 5]
    scores = [p["score"] for p in rec["predictions"]]
    assert scores == sorted(scores, reverse=True)


def test_coffee_cup_box_is_centred_on_the_cup(lite0, photo_dir):
    rec = camloc.localize(lite0, [f"{photo_dir}/coffee.png"], topk=1)[0]
    top = rec["predictions"][0]
    assert top["label"] in ("espresso", "cup", "coffee mug")
    x0, y0, x1, y1 = top["box"]
    # The cup sits in the middle of the 600x400 photo; the box must hold its center.
    assert x0 <= 300 <= x1 and y0 <= 200 <= y1
    assert (x1 - x0 + 1) * (y1 - y0 + 1) < 0.9 * 600 * 400


def test_batching_does_not_change_results(lite0, photo_dir):
    paths = [f"{photo_dir}/{n}" for n in ("chelsea.png", "coffee.png", "rocket.jpg")]
    one = camloc.localize(lite0, paths, topk=3, batch_size=1)
    three = camloc.localize(lite0, paths, topk=3, batch_size=3)
    for a, b in zip(one, three):
        assert [p["class_index"] for p in a["predictions"]] == [p["class_index"] for p in b["predictions"]]
        assert [p["box"] for p in a["predictions"]] == [p["box"] for p in b["predictions"]]
        assert np.allclose([p["logit"] for p in a["predictions"]], [p["logit"] for p in b["predictions"]], atol=1e-3)


def test_mixed_inputs_errors_do_not_stop_the_run(lite0, photo_dir, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    arr = np.asarray(Image.open(f"{photo_dir}/chelsea.png").convert("RGB"))
    recs = camloc.localize(lite0, [str(bad), arr, Image.fromarray(arr), "/no/such.png"], topk=1)
    for r in recs:
        jsonschema.validate(r, RECORD)
    assert recs[0]["error"].startswith(str(bad)) and recs[3]["error"].startswith("/no/such.png")
    assert recs[1]["predictions"][0]["box"] == recs[2]["predictions"][0]["box"]
    assert recs[1]["image"] == "<image 1>"


def test_constant_map_gives_no_box_and_says_so(tiny_gap):
    net = camloc.load_model(tiny_gap, class_names=["a", "b"])
    net.preprocessing = camloc.Preprocessing(shape=(4, 4), mean=(0.0,) * 3, std=(1.0,) * 3)
    net.module.conv = __import__("torch").nn.Conv2d(3, 2, 1, bias=False)
    with __import__("torch").no_grad():
        net.module.conv.weight.fill_(1.0)
    flat = np.full((4, 4, 3), 128, np.uint8)
    rec = camloc.localize(net, [flat], topk=2, norm="minmax")[0]
    jsonschema.validate(rec, RECORD)
    assert all(p["box"] is None and p["warning"].startswith("constant map") for p in rec["predictions"])
    # the default reading (positive part over its max): a constant positive map is all object, a
    # map with nothing above 0 has no box
    preds = camloc.localize(net, [flat], topk=2)[0]["predictions"]
    assert [p["box"] for p in preds] == [[0, 0, 3, 3], None] and preds[1]["warning"].startswith("no positive")


def test_results_are_json_serializable(lite0, photo_dir):
    rec = camloc.localize(lite0, [f"{photo_dir}/rocket.jpg"], topk=2, all_boxes=True)[0]
    again = json.loads(json.dumps(rec))
    jsonschema.validate(again, RECORD)
    assert again["predictions"][0]["boxes"][0] == again["predictions"][0]["box"]


@pytest.mark.parametrize("threshold", [0.1, 0.5])
def test_threshold_shrinks_boxes(lite0, photo_dir, threshold):
    lo = camloc.localize(lite0, [f"{photo_dir}/chelsea.png"], topk=1, threshold=0.05)[0]["predictions"][0]["box"]
    hi = camloc.localize(lite0, [f"{photo_dir}/chelsea.png"], topk=1, threshold=threshold)[0]["predictions"][0]["box"]
    area = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)  # noqa: E731
    assert area(hi) <= area(lo)


def test_positive_reading_on_real_photos(lite0, photo_dir):
    """``norm="positive"`` keeps only positive evidence (on these photos the top class's map is
    positive almost everywhere, so its 20 % cut lies below the min-max one and the box can only
    grow); the cat's box still covers the cat, and the record says which reading made it."""
    paths = [f"{photo_dir}/{n}" for n in ("chelsea.png", "coffee.png")]
    mm = camloc.localize(lite0, paths, topk=1, norm="minmax")
    pos = camloc.localize(lite0, paths, topk=1, norm="positive")
    assert camloc.localize(lite0, paths, topk=1) == pos  # the default reading (BENCHMARKS.md, switches)
    area = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)  # noqa: E731
    for a, b in zip(mm, pos):
        jsonschema.validate(b, RECORD)
        pa, pb = a["predictions"][0], b["predictions"][0]
        assert pa["norm"] == "minmax" and pb["norm"] == "positive"
        assert pa["class_index"] == pb["class_index"]
        assert area(pb["box"]) >= area(pa["box"])
    assert box_iou(pos[0]["predictions"][0]["box"], CHELSEA_CAT) >= 0.7
    x0, y0, x1, y1 = pos[0]["predictions"][0]["box"]
    for px, py in CHELSEA_FACE_POINTS:
        assert x0 <= px <= x1 and y0 <= py <= y1
    with pytest.raises(ValueError, match="unknown map normalization"):
        camloc.localize(lite0, paths, topk=1, norm="max")
