"""Concept localization in weakly labeled images (the paper's section 4, "concept localization"),
on a generated benchmark with known answers.

Images are the scenes of :mod:`benchmarks.bench_scenes` (real backgrounds, two or three pasted
object photos of different categories) with a generated caption that names some of the objects
("a photo of a monkey and a musical instrument"); an object is left unnamed with probability 1/4,
so a caption's absence of a word is a noisy negative, as in weakly labeled web images. Concepts
are mined from the training captions alone (words and bigrams over a minimum count; a word that
occurs only inside a frequent bigram gives way to the bigram); each concept gets its own linear
probe on the embedded backbone's GAP features, fit on caption presence only (features computed
once, cached). On the test images holding the concept's object (ground truth, named or not), its
CAM is scored by the pointing game and box accuracy (IoU >= 0.5) against random places.

    python benchmarks/bench_concepts.py
    .venv/bin/python -m benchmarks concepts      # refreshes its section of BENCHMARKS.md
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import numpy as np
from PIL import Image

WORDS = {"dog": "dog", "bird": "bird", "food": "food", "vehicle": "motor vehicle", "reptile": "reptile",
         "primate": "monkey", "insect": "insect", "fish": "fish", "instrument": "musical instrument"}
STOP = {"a", "an", "photo", "of", "and", "with", "the", "picture", "some", "here", "is", "there"}
TEMPLATES = ("a photo of {}", "a picture of {}", "there is {} here", "{}")
N_TRAIN, N_TEST, SIZE, SEED = 360, 120, 320, 0
NAMED = 0.75  # probability that a present object is named in the caption
THRESHOLDS = (0.2, 0.5)


def caption(rng: np.random.Generator, cats: list[str]) -> str:
    named = [WORDS[c] for c in cats if rng.random() < NAMED] or [WORDS[cats[int(rng.integers(len(cats)))]]]
    phrase = " and ".join(f"{'some' if w == 'food' else 'an' if w[0] in 'aeiou' else 'a'} {w}" for w in named)
    return TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(phrase)


def make_captioned(root: str, n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = SEED, size: int = SIZE):
    """Write the images -> ``({split: [(path, caption, objects)]})``."""
    from benchmarks.bench_scenes import CATEGORIES, category_photos, paste_objects
    from camloc.experiments.textloc import background

    photos = category_photos()
    cats_all = list(CATEGORIES)
    out: dict[str, list] = {}
    for s, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        items = []
        for i in range(n):
            rng = np.random.default_rng([seed, 7, s, i])
            img = background(rng, split, size)
            cats = [cats_all[int(j)] for j in rng.choice(len(cats_all), int(rng.integers(2, 4)), replace=False)]
            objs = paste_objects(rng, img, cats, split, photos, size)
            path = os.path.join(root, split, f"{i:04d}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(img).save(path, compress_level=1)
            items.append((path, caption(rng, cats), objs))
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
    toks = [t for t in caption_text.lower().split() if t not in STOP]
    return concept in toks or concept in {f"{a} {b}" for a, b in zip(toks, toks[1:])}


def run(root: str, n_train: int = N_TRAIN, n_test: int = N_TEST, size: int = SIZE, seed: int = SEED,
        progress: bool = False) -> dict[str, Any]:
    import camloc
    from benchmarks.bench_scenes import _inside
    from camloc.boxes import box_iou
    from camloc.cam import upsample
    from camloc.data.base import Sample, Split
    from camloc.localize import predictions_for
    from camloc.pipeline.geometry import Resize
    from camloc.pipeline.run import Job, Pipeline
    from camloc.probe import attach_probe, fit_probe
    from camloc.probe import Probe

    t0, c0 = time.perf_counter(), time.process_time()
    data = make_captioned(root, n_train, n_test, seed, size)
    concepts = mine_concepts([c for _, c, _ in data["train"]])
    category_of = {w: c for c, w in WORDS.items()}
    net = camloc.load_model()
    pre = net.preprocessing
    net.preprocessing = camloc.Preprocessing(size=(size, size), mean=pre.mean, std=pre.std)
    cache = os.path.join(root, "cache")
    rows_w, rows_b, accs = [], [], {}
    for concept in concepts:
        samples = [Sample(image_id=os.path.basename(p), path=p, label=int(has(c, concept)), boxes=[], size=(size, size))
                   for p, c, _ in data["train"]]
        probe = fit_probe(net, Split(samples, ["other", concept], "train"), classifier="svm", seed=seed,
                          cache_dir=cache, progress=progress)
        rows_w.append(probe.weight[1] - probe.weight[0])
        rows_b.append(probe.bias[1] - probe.bias[0])
        accs[concept] = probe.info["val_accuracy"]
    joint = Probe(net.name, len(rows_w[0]), np.stack(rows_w).astype(np.float32), np.array(rows_b, np.float32),
                  list(concepts), backbone_sha256=probe.backbone_sha256, preprocessing=probe.preprocessing)
    net = attach_probe(net, joint)
    t_fit = time.perf_counter() - t0
    pipe = Pipeline(net, resize=Resize("squash"), backend="torch", topk=0, progress=progress)
    rng = np.random.default_rng(seed)
    per: dict[str, list[dict[str, float]]] = {c: [] for c in concepts}
    wanted = tuple(range(len(concepts)))
    test = data["test"]
    for res in pipe.run(Job(p, i, p, classes=wanted) for i, (p, _, _) in enumerate(test)):
        _, cap, objs = test[res.index]
        for k, concept in enumerate(concepts):
            gt = [o["box"] for o in objs if o["category"] == category_of.get(concept)]
            if not gt:
                continue
            m = upsample(res.extra_maps[k], (size, size))
            y, x = np.unravel_index(int(np.argmax(m)), m.shape)
            row = {"pointing": any(_inside((x, y), b) for b in gt),
                   "random_point": sum((b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in gt) / size ** 2,
                   "center_point": any(_inside((size // 2, size // 2), b) for b in gt),
                   "named": has(cap, concept),
                   "score": float(res.logits[k])}
            for t in THRESHOLDS:
                box = predictions_for(net, res.logits, np.array([k]), res.extra_maps[k:k + 1],
                                      res.size, t)[0]["box"]
                bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
                rand = []
                for _ in range(50):
                    rx, ry = int(rng.integers(0, size - bw + 1)), int(rng.integers(0, size - bh + 1))
                    rand.append(max(box_iou([rx, ry, rx + bw - 1, ry + bh - 1], b) for b in gt) >= 0.5)
                row[f"box@{t}"] = max(box_iou(box, b) for b in gt) >= 0.5
                row[f"random_box@{t}"] = float(np.mean(rand))
            per[concept].append(row)
    try:
        from benchmarks.timing import machine_line

        machine = machine_line()
    except ImportError:
        machine = "this machine"
    table = {c: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"n": len(rows)}
             for c, rows in per.items() if rows}
    everything = [r for rows in per.values() for r in rows]
    mean = {k: float(np.mean([r[k] for r in everything])) for k in everything[0]}
    return {"concepts": concepts, "table": table, "mean": mean, "val_accuracy": accs, "n_train": n_train,
            "n_test": n_test, "size": size, "machine": machine, "wall": time.perf_counter() - t0,
            "cpu": time.process_time() - c0, "wall_fit": t_fit,
            "captions": [c for _, c, _ in data["train"][:3]]}


def markdown(res: dict[str, Any]) -> str:
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    t0, t1 = THRESHOLDS
    lines = [
        "## Concept localization in weakly labeled images (generated benchmark, offline)",
        "",
        f"{res['n_train']} training and {res['n_test']} test images at {res['size']} x {res['size']}: the scenes' "
        "backgrounds with two or three object photos of different categories, each with a generated caption "
        "naming each object with probability 3/4 (e.g. " + "; ".join(f"\"{c}\"" for c in res["captions"]) + "). "
        f"Concepts mined from the training captions (words and bigrams in at least 1 caption of 20, stop "
        f"words dropped): {', '.join(res['concepts'])}. One linear SVM per concept on the embedded "
        "EfficientNet-Lite0's GAP features, from caption presence only. Scored on the test images that hold "
        "the concept's object (named in their caption or not).",
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
    lines += [
        f"| all (per object) | {sum(r['n'] for r in res['table'].values())} | | {pct(m['pointing'])} | "
        f"{pct(m['random_point'])} | {pct(m['center_point'])} | {pct(m[f'box@{t0}'])} | {pct(m[f'box@{t1}'])} | "
        f"{pct(m[f'random_box@{t1}'])} |",
        "",
        f"Time on {res['machine']}: {res['wall']:.0f} s wall / {res['cpu']:.0f} s CPU in all (generation and the "
        f"{len(res['concepts'])} probe fits on cached features: {res['wall_fit']:.0f} s wall). Command: "
        "`.venv/bin/python -m benchmarks concepts`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    from benchmarks.bench_scenes import PHOTOS

    if not os.path.exists(os.path.join(PHOTOS, "labels.csv")):
        return ("## Concept localization in weakly labeled images\n\n"
                "skipped: ../shared/data/imagenet-samples is not there.\n")
    with tempfile.TemporaryDirectory(prefix="camloc-concepts-") as root:
        res = run(root, progress="--progress" in (argv or []))
    return markdown(res)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(main(sys.argv[1:]))
