"""Informative objects in scenes (the paper's section 4, "discovering informative objects in the
scenes"), on a generated benchmark with known answers.

Scenes are real backgrounds (crops of scikit-image's bundled photos, disjoint parts for training
and test) holding three pasted objects: central crops of object photos (a folder with
``labels.csv`` (``file,class_index``) and ``images/``, by default the shared ImageNet photos),
grouped by category (dogs, birds, food, ...). A scene class is defined by its informative category
(or two); the two other objects come from shared categories that appear in every class. Training
and test objects are different photos. A linear probe on the backbone's GAP features learns the
scene classes from image labels only; on the test scenes we ask where each class's CAM points
(its maximum, and its box by the paper's rule), against the shared objects and random places, and
whether ``camloc discover`` puts an informative category first among the class's patterns.

Deterministic from the seed; offline, CPU, a few minutes (``camloc experiment scenes``).
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# The shared ImageNet photos next to the checkout (``$CAMLOC_IMAGENET_SAMPLES`` overrides).
PHOTOS = os.environ.get("CAMLOC_IMAGENET_SAMPLES",
                        str(Path(__file__).resolve().parents[4] / "shared" / "data" / "imagenet-samples"))
# ImageNet class-index ranges of each object category.
CATEGORIES: dict[str, tuple[tuple[int, int], ...]] = {
    "dog": ((151, 268),), "bird": ((7, 24), (80, 100), (127, 146)), "food": ((924, 969),),
    "vehicle": tuple((i, i) for i in (407, 436, 468, 511, 555, 569, 573, 575, 609, 627, 654, 656, 661, 705, 717,
                                      734, 751, 757, 779, 803, 817, 864, 867)),
    "reptile": ((33, 68),), "primate": ((365, 384),),
    "insect": ((300, 326),), "fish": ((0, 6), (389, 397)),
    "instrument": tuple((i, i) for i in (401, 402, 420, 432, 486, 494, 513, 546, 558, 566, 579, 593, 594, 641, 642,
                                         683, 684, 687, 776, 822, 875, 881, 889)),
}
SCENES: dict[str, tuple[str, ...]] = {"kennel": ("dog",), "aviary": ("bird",), "kitchen": ("food",),
                                      "street": ("vehicle",), "zoo": ("reptile", "primate")}
SHARED = ("insect", "fish", "instrument")
N_TRAIN, N_TEST, SIZE, SEED = 30, 16, 320, 0  # images per scene class; image side
QUICK = {"n_train": 20, "n_test": 8}
OBJECT_SIDE = (0.27, 0.36)  # object side, fraction of the image side
THRESHOLDS = (0.2, 0.5)  # box thresholds: the paper's, and a tighter one for regions of one object


def check_photos(root: str) -> None:
    """A one-line error when ``root`` is not a photo folder (``labels.csv`` and ``images/``)."""
    if not os.path.isfile(os.path.join(root, "labels.csv")):
        raise FileNotFoundError(f"{os.path.join(root, 'labels.csv')}: no object photos there (a folder with "
                                "labels.csv and images/, e.g. ../shared/data/imagenet-samples; see --photos)")


def category_photos(root: str = PHOTOS, categories: Mapping[str, Sequence[tuple[int, int]]] = CATEGORIES
                    ) -> dict[str, dict[str, list[str]]]:
    """Per category, its photos split in two: ``{"train": even positions, "test": odd}``."""
    check_photos(root)
    with open(os.path.join(root, "labels.csv"), newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["file"])
    out: dict[str, dict[str, list[str]]] = {}
    for cat, ranges in categories.items():
        files = [os.path.join(root, "images", r["file"]) for r in rows
                 if any(a <= int(r["class_index"]) <= b for a, b in ranges)]
        out[cat] = {"train": files[0::2], "test": files[1::2]}
    return out


def object_crop(path: str, side: int) -> np.ndarray:
    """The photo's central square (0.8 of its short side), resized to ``side``."""
    from camloc.pixels.decode import load_image

    img = load_image(path)
    s = int(min(img.size) * 0.8)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    return np.asarray(img.crop((left, top, left + s, top + s)).resize((side, side), Image.BILINEAR))


def make_scene(rng: np.random.Generator, scene: str, split: str, photos: dict, size: int = SIZE,
               scenes: Mapping[str, Sequence[str]] = SCENES, shared: Sequence[str] = SHARED
               ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One scene: a real background and three non-overlapping objects, the first from the
    scene's informative categories, two from the shared ones -> (image, objects with boxes)."""
    from camloc.experiments.textloc import background

    img = background(rng, split, size)
    cats = [scenes[scene][int(rng.integers(len(scenes[scene])))]]
    cats += [shared[int(i)] for i in rng.choice(len(shared), 2, replace=False)]
    objects = paste_objects(rng, img, cats, split, photos, size)
    for k, o in enumerate(objects):
        o["informative"] = k == 0
    return img, objects


def paste_objects(rng: np.random.Generator, img: np.ndarray, cats: list[str], split: str, photos: dict,
                  size: int = SIZE) -> list[dict[str, Any]]:
    """Paste one object photo of each category in ``cats`` onto ``img`` (in place), at random
    non-overlapping places -> the objects (category, box, photo)."""
    objects: list[dict[str, Any]] = []
    for cat in cats:
        pool = photos[cat][split]
        if not pool:
            raise ValueError(f"object photos: no {split} photo of category {cat!r}")
        path = pool[int(rng.integers(len(pool)))]
        side = int(rng.uniform(*OBJECT_SIDE) * size)
        for attempt in range(400):
            side = side if attempt % 50 or not attempt else int(side * 0.9)  # crowded: a smaller object
            x, y = int(rng.integers(0, size - side)), int(rng.integers(0, size - side))
            box = [x, y, x + side - 1, y + side - 1]
            if all(box[0] > o["box"][2] + 3 or o["box"][0] > box[2] + 3 or box[1] > o["box"][3] + 3
                   or o["box"][1] > box[3] + 3 for o in objects):
                break
        else:
            raise RuntimeError("no room for an object")
        img[y:y + side, x:x + side] = object_crop(path, side)
        objects.append({"category": cat, "box": box, "photo": os.path.basename(path)})
    return objects


def make_scenes(root: str, n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = SEED, size: int = SIZE,
                photos: str = PHOTOS, scenes: Mapping[str, Sequence[str]] = SCENES, shared: Sequence[str] = SHARED,
                categories: Mapping[str, Sequence[tuple[int, int]]] = CATEGORIES):
    """Write the scenes as PNGs under ``root`` -> ``({split: Split}, {path: objects})``."""
    from camloc.data.base import Sample, Split

    pools = category_photos(photos, categories)
    names = list(scenes)
    splits, objects = {}, {}
    for s, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        samples = []
        for c, scene in enumerate(names):
            for i in range(n):
                rng = np.random.default_rng([seed, s, c, i])
                img, objs = make_scene(rng, scene, split, pools, size, scenes, shared)
                path = os.path.join(root, split, f"{scene}_{i:03d}.png")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                Image.fromarray(img).save(path, compress_level=1)
                samples.append(Sample(image_id=f"{split}/{scene}_{i:03d}.png", path=path, label=c,
                                      boxes=[o["box"] for o in objs if o["informative"]], size=(size, size)))
                objects[path] = objs
        splits[split] = Split(samples, names, split)
    return splits, objects


def area(box: Sequence[int]) -> int:
    return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)


def random_box_hits(rng: np.random.Generator, box: Sequence[int], targets: Sequence[Sequence[int]], size: int,
                    tries: int = 50) -> float:
    """How often the same-size box at a uniform random place has IoU >= 0.5 with a target."""
    from camloc.boxes import hit

    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    hits = 0
    for _ in range(tries):
        rx, ry = int(rng.integers(0, size - bw + 1)), int(rng.integers(0, size - bh + 1))
        hits += hit([rx, ry, rx + bw - 1, ry + bh - 1], targets)
    return hits / tries


def object_of(box: Sequence[int], objs: list[dict]) -> dict | None:
    """The object the region overlaps most (IoU), ``None`` when it overlaps none."""
    from camloc.boxes import box_iou

    ious = [box_iou(box, o["box"]) for o in objs]
    return objs[int(np.argmax(ious))] if max(ious) > 0 else None


BACKBONE = "efficientnet_lite0"


def load_backbone(size: int, net=None):
    """The experiments' backbone, the embedded EfficientNet-Lite0 (or ``net``), its input squashed to
    ``size`` x ``size``: the net their documented figures were made with, not camloc's default net."""
    import copy

    import camloc

    net = camloc.load_model(BACKBONE) if net is None else copy.copy(net)
    pre = net.preprocessing
    net.preprocessing = camloc.Preprocessing(shape=(size, size), mean=pre.mean, std=pre.std)
    return net


def run(root: str, n_train: int = N_TRAIN, n_test: int = N_TEST, size: int = SIZE, seed: int = SEED,
        progress: bool = False, photos: str = PHOTOS, net=None, scenes: Mapping[str, Sequence[str]] = SCENES,
        shared: Sequence[str] = SHARED, categories: Mapping[str, Sequence[tuple[int, int]]] = CATEGORIES,
        discover: bool = True) -> dict[str, Any]:
    """Generate the scenes under ``root``, fit the scene probe, score the test maps (and run
    ``camloc discover``'s steps per class) -> the measures and what the report and figure need."""
    from camloc.boxes import hit, pointing_hit
    from camloc.readings import upsample
    from camloc.localize import predictions_for
    from camloc.pixels.geometry import Resize
    from camloc.pipeline.run import Job, Pipeline
    from camloc.probe import attach_probe, fit_probe

    t0, c0 = time.perf_counter(), time.process_time()
    splits, objects = make_scenes(root, n_train, n_test, seed, size, photos, scenes, shared, categories)
    net = load_backbone(size, net)
    head_names = list(net.class_names)
    probe = fit_probe(net, splits["train"], classifier="svm", seed=seed, cache_dir=os.path.join(root, "cache"),
                      progress=progress)
    net = attach_probe(net, probe)
    test = splits["test"].samples
    pipe = Pipeline(net, resize=Resize("squash"), backend="torch", topk=1, progress=progress)
    rng = np.random.default_rng(seed)
    rows = []
    for res in pipe.run(Job(s.path, i, s.path, classes=(s.label,)) for i, s in enumerate(test)):
        s = test[res.index]
        objs = objects[s.path]
        info = [o["box"] for o in objs if o["informative"]]
        other = [o["box"] for o in objs if not o["informative"]]
        m = upsample(res.extra_maps[0], (size, size))
        row = {
            "correct": int(res.classes[0]) == s.label,
            "point_informative": pointing_hit(m, info),
            "point_shared": pointing_hit(m, other),
            "random_point_informative": sum(area(b) for b in info) / size ** 2,
            "random_point_shared": sum(area(b) for b in other) / size ** 2,
        }
        for t in THRESHOLDS:
            box = predictions_for(net, res.logits, np.array([s.label]), res.extra_maps, res.size, t)[0]["box"]
            best = object_of(box, objs)
            row[f"box_on_informative@{t}"] = best is not None and best["informative"]
            row[f"box_on_shared@{t}"] = best is not None and not best["informative"]
            row[f"box_iou50@{t}"] = hit(box, info)
            row[f"random_box_iou50@{t}"] = random_box_hits(rng, box, info, size)
        rows.append(row)
    measures = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    t_maps, c_maps = time.perf_counter() - t0, time.process_time() - c0
    discovered = {t: discover_scenes(net, probe, test, objects, t, head_names, seed, progress, scenes)
                  for t in THRESHOLDS} if discover else {}
    return {"measures": measures, "discovered": discovered, "probe": probe, "scenes": {k: list(v) for k, v in
                                                                                        scenes.items()},
            "shared": list(shared), "n_train": n_train, "n_test": n_test, "size": size, "seed": seed,
            "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "wall_maps": t_maps, "cpu_maps": c_maps}


def discover_scenes(net, probe, test, objects, threshold: float, head_names, seed: int, progress: bool,
                    scenes: Mapping[str, Sequence[str]] = SCENES) -> dict[str, Any]:
    """``camloc discover``'s steps on each class's test images: its patterns, each with the
    majority category (by ground truth) of its regions."""
    from camloc.discover import cluster_class, embed_regions, find_regions
    from camloc.pixels.geometry import Resize

    per_class = []
    figures = []
    for c, scene in enumerate(probe.class_names):
        paths = [s.path for s in test if s.label == c]
        regions, _, _ = find_regions(net, paths, [c], 1, within=0, threshold=threshold, resize=Resize("squash"),
                                     backend="torch", progress=progress)
        rs = regions[c]
        x_emb, labels = embed_regions(net, rs, backend="torch", progress=progress, head_names=head_names)
        found = cluster_class(c, scene, rs, x_emb, labels, seed=seed)
        figures.append(found)
        box_of = {r.name: r.box for r in rs}
        pats = []
        for p in found.patterns:
            cats = Counter((object_of(box_of[n], objects[n]) or {"category": "background"})["category"]
                           for n in p["images"])
            top, count = cats.most_common(1)[0]
            pats.append({"share": p["share"], "category": top, "purity": count / p["num_images"],
                         "labels": [d["label"] for d in p["labels"][:2]]})
        informative = set(scenes[scene])
        first_info = next((i for i, p in enumerate(pats, 1) if p["category"] in informative), None)
        per_class.append({"scene": scene, "informative": sorted(informative), "patterns": pats,
                          "informative_share": sum(q["share"] for q in pats if q["category"] in informative),
                          "silhouette": found.silhouette, "first_informative_rank": first_info})
    return {"per_class": per_class, "figures": figures}


def numbers(res: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready numbers of :func:`run`'s result."""
    return {"experiment": "scenes", "seed": res["seed"], "n_train_per_class": res["n_train"],
            "n_test_per_class": res["n_test"], "size": res["size"], "classes": res["probe"].class_names,
            "scenes": res["scenes"], "shared": res["shared"], "probe_C": res["probe"].C, "measures": res["measures"],
            "discover": {str(t): d["per_class"] for t, d in res["discovered"].items()},
            "wall_s": res["wall"], "cpu_s": res["cpu"]}


def markdown(res: dict[str, Any], command: str, machine: str = "this machine") -> str:
    """The report: what was measured, the tables, the time and the ``command`` that reproduces it."""
    m = res["measures"]
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    n_classes = len(res["probe"].class_names)
    scenes = ", ".join(f"{k}: {' or '.join(v)}" for k, v in res["scenes"].items())
    lines = [
        "## Informative objects in scenes (generated benchmark, offline)",
        "",
        f"{n_classes} scene classes at {res['size']} x {res['size']}: real backgrounds (crops of scikit-image's "
        "bundled photos) holding three pasted objects (central crops of the object photos): one "
        f"from the class's informative categories ({scenes}), two from categories shared by every class "
        f"({', '.join(res['shared'])}). Test objects are other photos than training objects, on other background "
        f"pixels. A linear SVM on the backbone's GAP features learns the scene classes from {res['n_train']} "
        f"image labels per class (C = {res['probe'].C:g}); each test image ({res['n_test']} per class) is scored "
        "on the CAM of its own class (seed {}).".format(res["seed"]),
        "",
        "| measure (test images) | CAM of the scene class | shared objects | random place |",
        "|---|---:|---:|---:|",
        f"| scene classification accuracy | {pct(m['correct'])} | | {pct(1 / n_classes)} (chance) |",
        f"| map maximum on an informative object | {pct(m['point_informative'])} | "
        f"{pct(m['point_shared'])} (maximum on a shared object) | {pct(m['random_point_informative'])} "
        f"(uniform pixel; {pct(m['random_point_shared'])} on a shared object) |",
    ]
    for t in THRESHOLDS:
        lines += [
            f"| CAM box (threshold {t:g}) overlaps an informative object most | {pct(m[f'box_on_informative@{t}'])} | "
            f"{pct(m[f'box_on_shared@{t}'])} (a shared object most) | |",
            f"| CAM box (threshold {t:g}) IoU >= 0.5 with the informative object | {pct(m[f'box_iou50@{t}'])} | | "
            f"{pct(m[f'random_box_iou50@{t}'])} (same-size box, random place) |",
        ]
    for t, found in res["discovered"].items():
        per = found["per_class"]
        ranked_first = sum(p["first_informative_rank"] == 1 for p in per)
        share = float(np.mean([p["informative_share"] for p in per]))
        lines += [
            "",
            f"`camloc discover --threshold {t:g}` on each class's test images (its CAM regions, clustered, K by "
            f"silhouette): the largest pattern is an informative category for {ranked_first} of {n_classes} "
            f"classes, and {pct(share)} of the regions (mean over classes) lie in patterns of an informative "
            "category; a pattern's category is the one most of its regions overlap most (ground truth).",
            "",
            "| scene class | informative | in informative patterns | patterns: share, category (purity): most "
            "frequent crop labels |",
            "|---|---|---:|---|",
        ]
        for p in per:
            pats = "; ".join(f"{100 * q['share']:.0f} % {q['category']} ({100 * q['purity']:.0f} %): "
                             f"{', '.join(q['labels'])}" for q in p["patterns"])
            lines.append(f"| {p['scene']} | {', '.join(p['informative'])} | {pct(p['informative_share'])} | {pats} |")
    lines += [
        "",
        f"Time on {machine}: {res['wall']:.0f} s wall / {res['cpu']:.0f} s CPU in all (generation, probe "
        f"fit and maps: {res['wall_maps']:.0f} s wall). At the paper's 0.2 a scene class's box spans several "
        "objects, so its crops mix categories; at 0.5 the regions hold one object, which is why 0.5 is "
        f"`camloc discover`'s default threshold. Command: `{command}` (the figure: the patterns at threshold "
        "0.5, one block per scene class).",
    ]
    return "\n".join(lines) + "\n"


def figure(res: dict[str, Any], path: str) -> None:
    """The ``camloc discover`` figures of every scene class (the tighter threshold), one under the other."""
    from camloc.viz.grids import classes_figure

    classes_figure(res["discovered"][THRESHOLDS[-1]]["figures"], path)
