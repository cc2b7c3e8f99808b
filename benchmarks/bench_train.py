"""Training throughput of the paper's GAP nets on CPU (issue: weakly supervised training).

For each net, one training epoch over generated 320x240 JPEGs at 224x224 crops (decode, random
crop and flip, forward, backward, SGD step; the trainer's own epoch loop, one process, data
loaded in the training process) is timed side by side with the same number of steps on a
batch already in memory (forward, backward, SGD step only). The ratio is the cost of the data
pipeline and bookkeeping on top of the arithmetic.
"""

from __future__ import annotations

import os
import tempfile

import torch

from benchmarks.timing import interleaved, machine_line

# net, batch, batches per epoch, repetitions (VGG16 is slow on a CPU: one batch, fewer repeats)
NETS = [("alexnet_gap", 16, 2, 3), ("googlenet_gap", 16, 1, 3), ("vgg16_gap", 8, 1, 2)]
SIZE = (320, 240)


def _dataset(root: str, n: int):
    from camloc.data.base import Sample, Split
    from camloc.testing import draw_image

    samples = []
    for i in range(n):
        c = i % 4
        box = [20 + 7 * i % 100, 15 + 5 * i % 80, 180 + 3 * i % 100, 150 + 2 * i % 80]
        path = draw_image(os.path.join(root, f"c{c}", f"{i:04d}.jpg"), SIZE, [box], c, seed=i)
        samples.append(Sample(f"c{c}/{i:04d}.jpg", path, c))
    return Split(samples, [f"c{c}" for c in range(4)], "train")


def _measure(name: str, batch: int, batches: int, repeats: int, split) -> dict[str, float]:
    import torch.nn.functional as F

    from camloc.data.loader import Normalize
    from camloc.train import Dist, TrainConfig, build_net, make_loaders, param_groups, train_epoch

    cfg = TrainConfig(model=name, batch_size=batch, workers=0, progress=False, max_batches=batches, epochs=1)
    torch.manual_seed(0)
    net = build_net(cfg, split.classes)
    module = net.module.train()
    opt = torch.optim.SGD(param_groups(module, cfg), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    device = torch.device("cpu")
    loader, sampler, dataset, _ = make_loaders(cfg, split, None, net.preprocessing, Dist(), device)
    x = torch.randn(batch, 3, cfg.crop, cfg.crop)
    y = torch.arange(batch) % len(split.classes)
    epoch = {"n": 0}

    def one_epoch() -> None:
        sampler.set_epoch(epoch["n"])
        dataset.set_epoch(epoch["n"])
        epoch["n"] += 1
        tally = train_epoch(module, loader, opt, scaler, cfg, Dist(), Normalize(net.preprocessing), False, 0)
        assert tally.n == batch * batches

    def compute_only() -> None:
        for _ in range(batches):
            loss = F.cross_entropy(module(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    t = interleaved({"epoch": one_epoch, "compute": compute_only}, repeats=repeats, warmup=1)
    n = batch * batches
    return {"n": n, "wall": t["epoch"].wall, "cpu": t["epoch"].cpu, "base_wall": t["compute"].wall,
            "base_cpu": t["compute"].cpu}


def main() -> str:
    from benchmarks.timing import pick

    machine = machine_line()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        nets = pick(NETS, [("alexnet_gap", 2, 1, 1)])
        split = _dataset(root, max(b * k for _, b, k, _ in nets))
        for name, batch, batches, repeats in nets:
            sub = type(split)(split.samples[: batch * batches], split.classes, "train")
            m = _measure(name, batch, batches, repeats, sub)
            rows.append(f"| {name} | {batch} | {m['n'] / m['wall']:.2f} | {m['n'] / m['cpu']:.2f} | "
                        f"{m['n'] / m['base_wall']:.2f} | {m['wall'] / m['base_wall']:.3f} | {m['cpu'] / m['base_cpu']:.3f} |")
    return "\n".join([
        "## Training throughput on CPU",
        "",
        f"One training epoch of each paper net (1024-unit head, random init), 224x224 random crops of "
        f"generated {SIZE[0]}x{SIZE[1]} JPEGs, SGD with momentum, one process, data loaded in it; CPU ({machine}); "
        "medians of interleaved repetitions. The baseline is the same number of forward + backward + SGD "
        "steps on a batch already in memory. Command: `make bench` (or `.venv/bin/python -m benchmarks train`).",
        "",
        "| net | batch | epoch images/s (wall) | images per CPU-second | compute-only images/s (wall) "
        "| epoch vs compute-only (wall) | epoch vs compute-only (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "On a GPU the same epoch loop runs with mixed precision and DataLoader workers "
        "(`workers`, default 4) so that decoding overlaps the arithmetic.",
    ])


if __name__ == "__main__":
    print(main())
