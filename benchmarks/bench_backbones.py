"""The registered EfficientNet-Lite backbones: ImageNet top-1/top-5 and forward speed on CPU.

Accuracy on ``../shared/data/imagenet-samples`` (one validation-style photo per ImageNet class,
``labels.csv``: ``file,class_index,wnid``) with camloc's default preprocessing: the whole image
squashed to the net's input size, no crop. Speed: forward passes of a batch of 16 at each net's
own input size, medians of interleaved repetitions.

    .venv/bin/python -m benchmarks.bench_backbones      # print the table
    .venv/bin/python -m benchmarks backbones            # and refresh BENCHMARKS.md
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from benchmarks.timing import interleaved, machine_line, pick

NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
DATA = Path(os.environ.get("CAMLOC_IMAGENET_SAMPLES",
                           Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"))
BATCH = 16


def read_samples(root: Path) -> list[tuple[str, int]]:
    """``(image path, class index)`` pairs from ``labels.csv``."""
    with open(root / "labels.csv", newline="") as f:
        return [(str(root / "images" / row["file"]), int(row["class_index"])) for row in csv.DictReader(f)]


def accuracy(net, samples: list[tuple[str, int]]) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of ``net`` on ``samples``."""
    top1 = top5 = 0
    with torch.no_grad():
        for i in range(0, len(samples), BATCH):
            chunk = samples[i:i + BATCH]
            logits = net(net.preprocess([p for p, _ in chunk]))
            best = logits.topk(5, dim=1).indices
            labels = torch.tensor([c for _, c in chunk]).unsqueeze(1)
            top1 += int((best[:, :1] == labels).sum())
            top5 += int((best == labels).any(dim=1).sum())
    return 100 * top1 / len(samples), 100 * top5 / len(samples)


def main() -> str:
    import camloc

    samples = read_samples(DATA)
    samples = samples[: pick(len(samples), 4)]
    nets = {name: camloc.load_model(name) for name in NAMES}
    acc = {name: accuracy(net, samples) for name, net in nets.items()}
    g = torch.Generator().manual_seed(0)
    inputs = {name: torch.randn(BATCH, 3, *net.preprocessing.shape, generator=g) for name, net in nets.items()}

    def forward(name: str):
        with torch.no_grad():
            return nets[name](inputs[name])

    t = interleaved({name: (lambda n=name: forward(n)) for name in NAMES}, repeats=7, warmup=1)
    rows = []
    for name, net in nets.items():
        h, w = net.preprocessing.shape
        rows.append(f"| `{name}` | {h}x{w} | {acc[name][0]:.1f} | {acc[name][1]:.1f} | "
                    f"{BATCH / t[name].wall:.1f} | {t[name].cpu / BATCH * 1e3:.0f} | {t[name].cpu / t[NAMES[0]].cpu:.2f} | {sum(p.numel() for p in net.module.parameters()) / 1e6:.1f} |")
    return "\n".join([
        "## Backbones: EfficientNet-Lite0/1/2 (ImageNet accuracy, speed)",
        "",
        f"Top-1/top-5 accuracy (%) on the {len(samples)} photos of `../shared/data/imagenet-samples` "
        f"({len({c for _, c in samples})} classes), each image squashed whole to the net's input size (camloc's preprocessing, no crop). Speed: "
        f"forward passes of a batch of {BATCH} at that size, medians of 7 interleaved repetitions; on a shared machine the "
        "process CPU time per image is the steadier figure "
        f"({machine_line()}). Command: `.venv/bin/python -m benchmarks backbones`.",
        "",
        "| model | input | top-1 | top-5 | images / s (forward, wall) | CPU ms / image | CPU vs Lite0 | parameters (M) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])


if __name__ == "__main__":
    print(main())
