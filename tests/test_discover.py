"""``camloc discover`` on a generated set whose answer is known: scenes holding one real object
(a cat or a coffee cup, cut from scikit-image's bundled photos) on a plain background of a random
color. A tiny probe ("object" against "plain", the difference of the mean pooled features of
object scenes and of empty ones) maps where the object is; its regions must split into the two
kinds, with the embedded ImageNet backbone naming each kind's crops."""

from __future__ import annotations

import json
from collections import Counter

import jsonschema
import numpy as np
import pytest
from PIL import Image

from camloc.cli import main
from camloc.discover import choose_k, parse_classes
from camloc.schema import DISCOVERY

N_PER_KIND = 5
KINDS = ("cat", "cup")


def _objects() -> dict[str, np.ndarray]:
    import skimage.data

    return {"cat": skimage.data.chelsea()[20:290, 100:400], "cup": skimage.data.coffee()[20:380, 100:480]}


def scene(obj: np.ndarray | None, rng: np.random.Generator, side: int = 224) -> np.ndarray:
    """A plain background of a random color, with ``obj`` (half the side wide) pasted at a random place."""
    out = np.full((side, side, 3), rng.integers(60, 200, 3), np.uint8)
    if obj is not None:
        w = side // 2
        o = np.asarray(Image.fromarray(obj).resize((w, round(w * obj.shape[0] / obj.shape[1]))))
        y, x = rng.integers(0, side - o.shape[0]), rng.integers(0, side - o.shape[1])
        out[y:y + o.shape[0], x:x + o.shape[1]] = o
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The image folder with its probe file, and the embedded backbone (no probe attached)."""
    import camloc
    from camloc.pixels.geometry import Resize
    from camloc.pipeline.run import Pipeline
    from camloc.probe.files import save_probe
    from camloc.probe import Probe

    root = tmp_path_factory.mktemp("discover")
    rng = np.random.default_rng(0)
    objs = _objects()
    folder = root / "images"
    folder.mkdir()
    for i in range(N_PER_KIND):
        for kind in KINDS:
            Image.fromarray(scene(objs[kind], rng)).save(folder / f"{kind}_{i}.png")
    (folder / "zz_broken.png").write_bytes(b"not a png")
    net = camloc.load_model("efficientnet_lite0")
    fit_on = [scene(objs[k], rng) for k in KINDS] + [scene(None, rng) for _ in range(2)]
    pipe = Pipeline(net, resize=Resize("squash"), backend="torch", topk=0, keep="pooled", workers=0, progress=False)
    f = np.stack([r.pooled for r in pipe.run(fit_on)])
    w = f[:2].mean(axis=0) - f[2:].mean(axis=0)
    probe = Probe(net.name, f.shape[1], np.stack([w, -w]).astype(np.float32), np.zeros(2, np.float32),
                  ["object", "plain"])
    save_probe(probe, root / "object.probe")
    return root, net


@pytest.fixture(scope="module")
def ran(made):
    root, _ = made
    out = root / "out"
    rc = main([
        "discover", str(root / "images"), "--probe", str(root / "object.probe"), "--classes", "object",
        "--out", str(out), "--backend", "torch", "--workers", "0", "--resize", "squash", "--exemplars", "3",
        "--within", "0",
    ])
    return rc, json.loads((out / "discover.json").read_text()), out


def kind_of(name: str) -> str:
    return name.rsplit("/", 1)[-1].split("_")[0]


def test_patterns_separate_the_two_kinds(ran):
    rc, doc, _ = ran
    assert rc == 1  # the broken file
    (cls,) = doc["classes"]
    assert cls["label"] == "object" and cls["num_images"] == 2 * N_PER_KIND
    assert cls["k_choice"] == "silhouette" and len(cls["patterns"]) == 2
    kinds = [Counter(kind_of(n) for n in p["images"]) for p in cls["patterns"]]
    assert {k.most_common(1)[0][0] for k in kinds} == set(KINDS)
    purity = sum(k.most_common(1)[0][1] for k in kinds) / (2 * N_PER_KIND)
    assert purity == 1.0
    assert sum(p["share"] for p in cls["patterns"]) == pytest.approx(1.0, abs=1e-5)
    assert [p["share"] for p in cls["patterns"]] == [0.5, 0.5]  # five of each kind


def test_crops_are_named_by_the_backbone_and_exemplars_belong_to_their_pattern(ran):
    _, doc, _ = ran
    for p in doc["classes"][0]["patterns"]:
        kind = Counter(kind_of(n) for n in p["images"]).most_common(1)[0][0]
        top = p["labels"][0]["label"]
        assert top in ({"tabby", "tiger cat", "Egyptian cat"} if kind == "cat" else {"espresso", "cup", "coffee mug"})
        assert len(p["exemplars"]) == 3
        assert all(e["image"] in p["images"] for e in p["exemplars"])
        d = [e["distance"] for e in p["exemplars"]]
        assert d == sorted(d)
        for e in p["exemplars"]:
            x0, y0, x1, y1 = e["box"]
            assert 0 <= x0 <= x1 < 224 and 0 <= y0 <= y1 < 224


def test_json_validates_and_the_figure_has_a_row_per_pattern(ran):
    _, doc, out = ran
    jsonschema.validate(doc, DISCOVERY)
    assert doc["num_images"] == 2 * N_PER_KIND + 1 and doc["model"] == "efficientnet_lite0"
    (error,) = doc["errors"]
    assert error.endswith("zz_broken.png: not an image (unrecognised format)") and doc["num_errors"] == 1
    fig = np.asarray(Image.open(out / doc["classes"][0]["figure"]))
    assert fig.ndim == 3 and fig.shape[0] > 2 * 112 and fig.shape[1] >= 3 * 112


def test_most_predicted_classes_without_a_probe(made):
    from camloc.discover import discover
    from camloc.pixels.geometry import Resize

    root, net = made
    paths = sorted(str(p) for p in (root / "images").iterdir() if "broken" not in p.name)
    results, errors, seen = discover(net, paths, topk_classes=2, patterns=1, resize=Resize("squash"),
                                     backend="torch", workers=0, crops=False)
    assert errors == [] and seen == len(paths)
    by_label = {r.label: r for r in results}
    assert set(by_label) == {"Egyptian cat", "espresso"}
    for label, kind in (("Egyptian cat", "cat"), ("espresso", "cup")):
        (p,) = by_label[label].patterns
        assert p["share"] == 1.0 and by_label[label].k_choice == "fixed"
        assert {kind_of(n) for n in p["images"]} == {kind}


def test_choose_k_finds_separated_blobs():
    rng = np.random.default_rng(1)
    centers = np.eye(8)[:3] * 5
    x = np.concatenate([c + rng.normal(0, 0.1, (10, 8)) for c in centers])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels, cents, how, sil = choose_k(x)
    assert how == "silhouette" and len(cents) == 3 and sil > 0.9
    assert all(len(set(labels[i * 10:(i + 1) * 10])) == 1 for i in range(3))
    assert len(choose_k(x, patterns=2)[1]) == 2 and choose_k(x, patterns=2)[2] == "fixed"
    assert choose_k(x[:2])[2] == "single"
    assert len(choose_k(np.repeat(x[:1], 5, axis=0), patterns=4)[1]) == 1  # capped at the distinct rows


def test_parse_classes():
    names = ["tabby", "Egyptian cat", "espresso"]
    assert parse_classes("espresso, egyptian cat,0,2", names) == [2, 1, 0]
    with pytest.raises(ValueError, match="^--classes: the model has no class 'teapot'"):
        parse_classes("teapot", names)
    with pytest.raises(ValueError, match="^--classes: class index 3 is out of range"):
        parse_classes("3", names)
    with pytest.raises(ValueError, match="^--classes: empty class name"):
        parse_classes("tabby,,espresso", names)


@pytest.mark.parametrize("argv, message", [
    (["--patterns", "0"], "--patterns must be at least 1, got 0"),
    (["--topk-classes", "0"], "--topk-classes must be at least 1, got 0"),
    (["--within", "0"], "--within must be at least 1 (0 only with --classes), got 0"),
    (["--classes", " , "], "--classes: no class given"),
    (["--threshold", "1"], "--threshold must be in [0, 1), got 1.0"),
    (["--exemplars", "0"], "--exemplars must be at least 1, got 0"),
])
def test_bad_options_are_one_line_errors(capsys, argv, message):
    assert main(["discover", "x.jpg", *argv]) == 1
    assert capsys.readouterr().err == f"camloc discover: error: {message}\n"


def test_folder_without_images_is_an_error_before_the_net_loads(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["discover", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"camloc discover: {tmp_path / 'empty'}: folder holds no images",
                   "camloc discover: error: no images to process"]
