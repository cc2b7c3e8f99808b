"""The generated experiments (scenes, concepts, VQA) on tiny cases with known answers: solid-color
object "photos" and a hand-built color detector as the backbone, so what each class or answer
depends on is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import camloc
import probe_nets  # noqa: F401  (registers test_colornet)

# Category -> (ImageNet-style class index, color). The color detector's channels 0, 1, 2 fire on
# red, green and blue; navy fires on blue more weakly.
PHOTO_COLORS = {"red": (1, (230, 20, 20)), "green": (2, (20, 230, 20)), "blue": (3, (20, 20, 230)),
                "navy": (4, (20, 20, 140))}
CATEGORIES = {c: ((i, i),) for c, (i, _) in PHOTO_COLORS.items()}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A photo folder in the shared photos' format: four photos a category (two per split)."""
    root = tmp_path_factory.mktemp("photos")
    (root / "images").mkdir()
    lines = ["file,class_index"]
    for cat, (index, color) in PHOTO_COLORS.items():
        for k in range(4):
            name = f"{cat}_{k}.png"
            Image.fromarray(np.full((40, 50, 3), color, np.uint8)).save(root / "images" / name)
            lines.append(f"{name},{index}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return str(root)


@pytest.fixture()
def gray_backgrounds(monkeypatch):
    """Plain gray backgrounds: the color detector then sees only the objects."""
    import camloc.experiments.textloc as textloc

    monkeypatch.setattr(textloc, "background", lambda rng, split, size: np.full((size, size, 3), 128, np.uint8))


def test_category_photos_split_even_and_odd(photos):
    from camloc.experiments.scenes import category_photos

    got = category_photos(photos, CATEGORIES)
    assert [p.rsplit("/", 1)[1] for p in got["red"]["train"]] == ["red_0.png", "red_2.png"]
    assert [p.rsplit("/", 1)[1] for p in got["red"]["test"]] == ["red_1.png", "red_3.png"]


def test_missing_photos_are_one_line(tmp_path, capsys):
    from camloc.cli import main

    assert main(["experiment", "scenes", "--photos", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path}/labels.csv: no object photos there" in err


def test_scene_objects_do_not_overlap_and_are_pasted(photos, gray_backgrounds):
    from camloc.experiments.scenes import category_photos, make_scene

    pools = category_photos(photos, CATEGORIES)
    for i in range(5):
        img, objs = make_scene(np.random.default_rng(i), "r", "train", pools, 64, {"r": ("red",)}, ("blue", "navy"))
        assert [o["category"] for o in objs][0] == "red" and sorted(o["category"] for o in objs[1:]) == ["blue", "navy"]
        assert [o["informative"] for o in objs] == [True, False, False]
        for o in objs:
            x0, y0, x1, y1 = o["box"]
            np.testing.assert_array_equal(img[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3).min(0),
                                          PHOTO_COLORS[o["category"]][1])
        b = [o["box"] for o in objs]
        assert all(p[2] < q[0] or q[2] < p[0] or p[3] < q[1] or q[3] < p[1] for k, p in enumerate(b) for q in b[k + 1:])


def test_scenes_the_informative_color_decides_and_the_maps_point_at_it(photos, gray_backgrounds, tmp_path):
    from camloc.experiments.scenes import numbers, run

    res = run(str(tmp_path), n_train=6, n_test=4, size=64, seed=0, photos=photos,
              net=camloc.load_model("test_colornet"), scenes={"reds": ("red",), "greens": ("green",)},
              shared=("blue", "navy"), categories=CATEGORIES, discover=False)
    m = res["measures"]
    assert m["correct"] == 1.0  # red vs green: one channel each
    assert m["point_informative"] == 1.0 and m["point_shared"] == 0.0
    assert m["box_on_informative@0.5"] == 1.0 and m["box_iou50@0.5"] == 1.0
    assert 0 < m["random_point_informative"] < 0.2  # one object of side 0.27-0.36 of the image
    out = numbers(res)
    assert out["classes"] == ["reds", "greens"] and json.loads(json.dumps(out))["measures"] == m


def test_concepts_are_mined_from_captions():
    from camloc.experiments.concepts import has, mine_concepts

    caps = ["a photo of a dog"] * 4 + ["a musical instrument"] * 4 + ["a dog and a musical instrument", "some food"]
    assert mine_concepts(caps, min_count=3) == ["dog", "musical instrument"]
    assert has("there is a motor vehicle here", "motor vehicle") and not has("a dog", "motor vehicle")


def test_concepts_color_words_point_at_their_objects(photos, gray_backgrounds, tmp_path):
    from camloc.experiments.concepts import figure, run

    words = {c: c for c in PHOTO_COLORS}
    res = run(str(tmp_path), n_train=40, n_test=12, size=64, seed=0, photos=photos,
              net=camloc.load_model("test_colornet"), categories=CATEGORIES, words=words)
    assert res["concepts"] == ["blue", "green", "navy", "red"]
    for c in ("red", "green", "blue"):  # a pure channel each: the map's maximum is on the object
        assert res["table"][c]["pointing"] == 1.0, (c, res["table"][c])
    figure(res, str(tmp_path / "concepts.png"))  # a panel per concept, two a row
    assert Image.open(tmp_path / "concepts.png").size[1] > Image.open(tmp_path / "concepts.png").size[0] / 2


def test_vqa_maps_are_exact_and_color_questions_are_answered(photos, gray_backgrounds, tmp_path):
    from camloc.experiments.vqa_scenes import figure, run

    res = run(str(tmp_path), n_train=100, n_test=12, size=64, seed=0, photos=photos,
              net=camloc.load_model("test_colornet"), categories=CATEGORIES, animals=("red", "green"),
              things=("blue", "navy"))
    assert res["model"].regions == 2 and res["worst_gap"] < 1e-9  # map mean + question bias == score
    assert res["n_pairs"] == 2 * 5 * 100  # five questions an image, each image also mirrored
    # every answer follows from the colors, "what is on the left?" from the left half's colors
    assert {k: r["correct"] for k, r in res["table"].items()} == {
        "what animal": 1.0, "what thing": 1.0, "what is on the left": 1.0, "is there (yes)": 1.0,
        "is there (no)": 1.0, "all (about an object)": 1.0}
    assert res["table"]["what animal"]["pointing"] == 1.0  # red or green: the animal's own channel
    figure(res, str(tmp_path / "vqa.png"))
    assert Image.open(tmp_path / "vqa.png").mode == "P"  # a palette PNG


def test_help_and_a_missing_photo_folder_load_no_torch(tmp_path):
    from test_startup import run_cli

    got, proc = run_cli(tmp_path, "experiment", "--help")
    assert got == {"rc": 0, "loaded": []} and "--photos DIR" in proc.stdout
    got, proc = run_cli(tmp_path, "experiment", "vqa", "--photos", str(tmp_path))
    assert got == {"rc": 1, "loaded": []} and "labels.csv: no object photos there" in proc.stderr


@pytest.mark.parametrize("name, figure", [("scenes", "docs/scenes_discover.png"),
                                          ("concepts", "docs/concepts_examples.png"),
                                          ("vqa", "docs/vqa_examples.png")])
def test_benchmark_wrappers_add_the_figure_to_the_commands_report(monkeypatch, photos, name, figure):
    import importlib
    from pathlib import Path

    import camloc.experiments.common as common
    import camloc.experiments.scenes as scenes

    calls = []
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the benchmarks package
    monkeypatch.setattr(scenes, "PHOTOS", photos)
    monkeypatch.setattr(common, "drive", lambda n, out, progress, figure, quick=False, sizes=None: calls.append((n, figure)) or "## report\n")
    section = importlib.import_module(f"benchmarks.bench_{name}").main([])
    assert calls[0][0] == name and calls[0][1].endswith(figure)
    assert section.startswith("## report\n\n![") and section.endswith(f"]({figure})\n")
