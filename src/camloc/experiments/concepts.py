"""Concept localization in weakly labeled images (the paper's section 4, "concept localization"),
on a generated benchmark with known answers.

Images are scenes as in :mod:`camloc.experiments.scenes` (real backgrounds, two or three pasted
object photos of different categories) with a generated caption that names some of the objects
("a photo of a monkey and a musical instrument"); an object is left unnamed with probability 1/4,
so a caption's absence of a word is a noisy negative, as in weakly labeled web images. Concepts
are mined from the training captions alone (words and bigrams over a minimum count; a word that
occurs only inside a frequent bigram gives way to the bigram); each concept gets its own linear
probe on the backbone's GAP features, fit on caption presence only (features computed once,
cached). On the test images holding the concept's object (ground truth, named or not), its CAM is
scored by the pointing game and box accuracy (IoU >= 0.5) against random places.

Deterministic from the seed; offline, CPU, a few minutes (``camloc experiment concepts``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import numpy as np
from PIL import Image

from camloc.experiments.scenes import CATEGORIES, PHOTOS

WORDS = {"dog": "dog", "bird": "bird", "food": "food", "vehicle": "motor vehicle", "reptile": "reptile",
         "primate": "monkey", "insect": "insect", "fish": "fish", "instrument": "musical instrument"}
STOP = {"a", "an", "photo", "of", "and", "with", "the", "picture", "some", "here", "is", "there"}
TEMPLATES = ("a photo of {}", "a picture of {}", "there is {} here", "{}")
N_TRAIN, N_TEST, SIZE, SEED = 360, 120, 320, 0
QUICK = {"n_train": 120, "n_test": 40}
NAMED = 0.75  # probability that a present object is named in the caption
THRESHOLDS = (0.2, 0.5)


def caption(rng: np.random.Generator, cats: list[str], words: dict[str, str] = WORDS) -> str:
    """A caption naming each of ``cats`` with probability ``NAMED`` (at least one)."""
    named = [words[c] for c in cats if rng.random() < NAMED] or [words[cats[int(rng.integers(len(cats)))]]]
    phrase = " and ".join(f"{'some' if w == 'food' else 'an' if w[0] in 'aeiou' else 'a'} {w}" for w in named)
    return TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(phrase)


def make_captioned(root: str, n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = SEED, size: int = SIZE,
                   photos: str = PHOTOS, categories=CATEGORIES, words: dict[str, str] = WORDS):
    """Write the images -> ``({split: [(path, caption, objects)]})``."""
    from camloc.experiments.scenes import category_photos, paste_objects
    from camloc.experiments.textloc import background

    pools = category_photos(photos, categories)
    cats_all = list(categories)
    out: dict[str, list] = {}
    for s, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        items = []
        for i in range(n):
            rng = np.random.default_rng([seed, 7, s, i])
            img = background(rng, split, size)
            cats = [cats_all[int(j)] for j in rng.choice(len(cats_all), int(rng.integers(2, 4)), replace=False)]
            objs = paste_objects(rng, img, cats, split, pools, size)
            path = os.path.join(root, split, f"{i:04d}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(img).save(path, compress_level=1)
            items.append((path, caption(rng, cats, words), objs))
        out[split] = items
    return out


def mine_concepts(captions: list[str], min_count: int | None = None) -> list[str]:
    """Frequent words and bigrams (stop words dropped), seen in at least ``min_count`` captions
    (default: 1 in 20); a word always seen inside one frequent bigram gives way to it."""
    min_count = max(3, len(captions) // 20) if min_count is None else min_count
    words: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    for c in captions:
        toks = [t for t in c.lower().split() if t not in STOP]
        words.update(set(toks))
        bigrams.update({f"{a} {b}" for a, b in zip(toks, toks[1:])})
    frequent_bi = {b for b, n in bigrams.items() if n >= min_count and
                   n >= 0.9 * min(words[b.split()[0]], words[b.split()[1]])}
    covered = {w for b in frequent_bi for w in b.split() if words[w] <= bigrams[b]}
    out = [w for w, n in words.items() if n >= min_count and w not in covered] + sorted(frequent_bi)
    return sorted(out)


def has(caption_text: str, concept: str) -> bool:
    """Whether the caption names the concept (a word or a bigram, stop words dropped)."""
    toks = [t for t in caption_text.lower().split() if t not in STOP]
    return concept in toks or concept in {f"{a} {b}" for a, b in zip(toks, toks[1:])}


def run(root: str, n_train: int = N_TRAIN, n_test: int = N_TEST, size: int = SIZE, seed: int = SEED,
        progress: bool = False, photos: str = PHOTOS, net=None, categories=CATEGORIES,
        words: dict[str, str] = WORDS) -> dict[str, Any]:
    """Generate the captioned images under ``root``, mine the concepts, fit one probe each and
    score each concept's test maps against its object -> the measures and the figure's examples."""
    from camloc.boxes import hit, inside, pointing_hit
    from camloc.readings import upsample
    from camloc.data.base import Sample, Split
    from camloc.experiments.scenes import area, load_backbone, random_box_hits
    from camloc.localize import predictions_for
    from camloc.pixels.geometry import Resize
    from camloc.pipeline.run import Job, Pipeline
    from camloc.probe import Probe, attach_probe, fit_probe

    t0, c0 = time.perf_counter(), time.process_time()
    data = make_captioned(root, n_train, n_test, seed, size, photos, categories, words)
    concepts = mine_concepts([c for _, c, _ in data["train"]])
    category_of = {w: c for c, w in words.items()}
    net = load_backbone(size, net)
    cache = os.path.join(root, "cache")
    rows_w, rows_b, accs = [], [], {}
    probe = None
    for concept in concepts:
        samples = [Sample(image_id=os.path.basename(p), path=p, label=int(has(c, concept)), boxes=[], size=(size, size))
                   for p, c, _ in data["train"]]
        probe = fit_probe(net, Split(samples, ["other", concept], "train"), classifier="svm", seed=seed,
                          cache_dir=cache, progress=progress)
        rows_w.append(probe.weight[1] - probe.weight[0])
        rows_b.append(probe.bias[1] - probe.bias[0])
        accs[concept] = probe.info["val_accuracy"]
    if probe is None:
        raise ValueError(f"concepts: no word or bigram in {min(3, len(data['train']))}+ of the "
                         f"{len(data['train'])} training captions")
    joint = Probe(net.name, len(rows_w[0]), np.stack(rows_w).astype(np.float32), np.array(rows_b, np.float32),
                  list(concepts), backbone_sha256=probe.backbone_sha256, preprocessing=probe.preprocessing)
    net = attach_probe(net, joint)
    t_fit = time.perf_counter() - t0
    pipe = Pipeline(net, resize=Resize("squash"), backend="torch", topk=0, progress=progress)
    rng = np.random.default_rng(seed)
    per: dict[str, list[dict[str, float]]] = {c: [] for c in concepts}
    examples: dict[str, list[dict[str, Any]]] = {c: [] for c in concepts}
    test = data["test"]
    for res in pipe.run(Job(p, i, p, classes=tuple(range(len(concepts)))) for i, (p, _, _) in enumerate(test)):
        path, cap, objs = test[res.index]
        for k, concept in enumerate(concepts):
            gt = [o["box"] for o in objs if o["category"] == category_of.get(concept)]
            if not gt:
                continue
            m = upsample(res.extra_maps[k], (size, size))
            row = {"pointing": pointing_hit(m, gt),
                   "random_point": sum(area(b) for b in gt) / size ** 2,
                   "center_point": any(inside((size // 2, size // 2), b) for b in gt),
                   "named": has(cap, concept),
                   "score": float(res.logits[k])}
            for t in THRESHOLDS:
                box = predictions_for(net, res.logits, np.array([k]), res.extra_maps[k:k + 1],
                                      res.size, t)[0]["box"]
                row[f"box@{t}"] = hit(box, gt)
                row[f"random_box@{t}"] = random_box_hits(rng, box, gt, size)
                if t == THRESHOLDS[-1] and len(examples[concept]) < 2:
                    examples[concept].append({"path": path, "caption": cap, "map": res.extra_maps[k],
                                              "box": box, "target": gt[0], "pointing": row["pointing"]})
            per[concept].append(row)
    table = {c: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"n": len(rows)}
             for c, rows in per.items() if rows}
    everything = [r for rows in per.values() for r in rows]
    mean = {k: float(np.mean([r[k] for r in everything])) for k in everything[0]} if everything else {}
    return {"concepts": concepts, "table": table, "mean": mean, "val_accuracy": accs, "n_train": n_train,
            "n_test": n_test, "size": size, "seed": seed, "wall": time.perf_counter() - t0,
            "cpu": time.process_time() - c0, "wall_fit": t_fit, "examples": examples,
            "captions": [c for _, c, _ in data["train"][:3]]}


def numbers(res: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready numbers of :func:`run`'s result."""
    return {"experiment": "concepts", "seed": res["seed"], "n_train": res["n_train"], "n_test": res["n_test"],
            "size": res["size"], "concepts": res["concepts"], "val_accuracy": res["val_accuracy"],
            "per_concept": res["table"], "all": res["mean"], "wall_s": res["wall"], "cpu_s": res["cpu"]}


def markdown(res: dict[str, Any], command: str, machine: str = "this machine") -> str:
    """The report: what was measured, the table, the time and the ``command`` that reproduces it."""
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    t0, t1 = THRESHOLDS
    lines = [
        "## Concept localization in weakly labeled images (generated benchmark, offline)",
        "",
        f"{res['n_train']} training and {res['n_test']} test images at {res['size']} x {res['size']}: the scenes' "
        "backgrounds with two or three object photos of different categories, each with a generated caption "
        "naming each object with probability 3/4 (e.g. " + "; ".join(f"\"{c}\"" for c in res["captions"]) + "). "
        f"Concepts mined from the training captions (words and bigrams in at least 1 caption of 20, stop "
        f"words dropped): {', '.join(res['concepts'])}. One linear SVM per concept on the backbone's GAP "
        "features, from caption presence only. Scored on the test images that hold the concept's object "
        f"(named in their caption or not); seed {res['seed']}.",
        "",
        f"| concept | test images | validation accuracy (caption presence) | pointing game | random pixel | "
        f"center pixel | box IoU >= 0.5 at {t0:g} | at {t1:g} | same-size random box at {t1:g} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, r in res["table"].items():
        lines.append(f"| {c} | {r['n']} | {pct(res['val_accuracy'][c])} | {pct(r['pointing'])} | "
                     f"{pct(r['random_point'])} | {pct(r['center_point'])} | {pct(r[f'box@{t0}'])} | "
                     f"{pct(r[f'box@{t1}'])} | {pct(r[f'random_box@{t1}'])} |")
    m = res["mean"]
    if m:
        lines.append(
            f"| all (per object) | {sum(r['n'] for r in res['table'].values())} | | {pct(m['pointing'])} | "
            f"{pct(m['random_point'])} | {pct(m['center_point'])} | {pct(m[f'box@{t0}'])} | {pct(m[f'box@{t1}'])} | "
            f"{pct(m[f'random_box@{t1}'])} |")
    lines += [
        "",
        f"Time on {machine}: {res['wall']:.0f} s wall / {res['cpu']:.0f} s CPU in all (generation and the "
        f"{len(res['concepts'])} probe fits on cached features: {res['wall_fit']:.0f} s wall). Command: "
        f"`{command}` (the figure: per concept, test images with the concept's map and its box at threshold "
        f"{t1:g}, the object's true box in red, the map's box in green).",
    ]
    return "\n".join(lines) + "\n"


def figure(res: dict[str, Any], path: str) -> None:
    """The paper's concept figure: per concept a test image, its caption, the concept's map and
    box (threshold 0.5) with the object's true box; two concepts a row."""
    from camloc.readings import normalize_map
    from camloc.viz.grids import examples_figure

    examples_figure([{"image": e["path"], "target": e["target"], "map": normalize_map(e["map"]), "box": e["box"],
                      "label": concept, "title": f"\"{e['caption']}\""}
                     for concept, exs in res["examples"].items() if exs for e in exs[:1]], path)
