"""Cost of CAM on top of the plain forward pass (issue: the spine).

Batch 16 at 224x224 with the embedded EfficientNet-Lite0 on CPU: the plain forward pass against
camloc's one forward pass that also computes the top-5 maps and their boxes (upsampled to
224x224, largest connected component), timed side by side in one process.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.timing import interleaved, machine_line

BATCH, SIZE, TOPK = 16, 224, 5


def _boxes_for(out) -> int:
    from camloc.boxes import boxes_from_map
    from camloc.cam import upsample

    maps = out.maps.float().cpu().numpy()
    n = 0
    for per_image in maps:
        for m in per_image:
            n += len(boxes_from_map(upsample(m, (SIZE, SIZE)), 0.2))
    return n


def _hooked_two_step(net, x):
    """What a stateful hook-based extractor does: forward with a hook kept on the module, then
    compute each image's maps from the stored activation one class at a time."""
    from camloc.boxes import boxes_from_map
    from camloc.cam import upsample

    store = {}
    handle = net.head.feature_module.register_forward_pre_hook(lambda m, a: store.__setitem__("f", a[0]))
    try:
        with torch.no_grad():
            logits = net.module(x)
    finally:
        handle.remove()
    w = net.head.classifier.weight
    for b in range(x.shape[0]):
        for c in logits[b].topk(TOPK).indices.tolist():
            m = torch.nn.functional.relu((w[c][:, None, None] * store["f"][b]).sum(0))
            m = torch.nn.functional.interpolate(m[None, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            boxes_from_map(m[0, 0].detach().numpy(), 0.2)


def main() -> str:
    import camloc

    torch.manual_seed(0)
    net = camloc.load_model()
    x = torch.randn(BATCH, 3, SIZE, SIZE)

    def plain():
        with torch.no_grad():
            net.module(x)

    def camloc_maps_and_boxes():
        out = camloc.cam(net, x, topk=TOPK)
        _boxes_for(out)

    assert _boxes_for(camloc.cam(net, x, topk=TOPK)) == BATCH * TOPK
    machine = machine_line()
    t = interleaved({"plain": plain, "camloc": camloc_maps_and_boxes, "two_step": lambda: _hooked_two_step(net, x)},
                    repeats=15)
    base = t["plain"]

    def row(name: str, label: str) -> str:
        w, c = t[name].wall / base.wall, t[name].cpu / base.cpu
        return f"| {label} | {t[name].wall * 1e3:.0f} | {w:.3f} | {t[name].cpu * 1e3:.0f} | {c:.3f} |"

    over_cpu = (t["camloc"].cpu / base.cpu - 1) * 100
    over_wall = (t["camloc"].wall / base.wall - 1) * 100
    return "\n".join([
        "## CAM overhead on the forward pass",
        "",
        f"EfficientNet-Lite0, batch {BATCH} at {SIZE}x{SIZE}, top-{TOPK} maps and their boxes, CPU ({machine}); "
        "medians of 15 interleaved repetitions. Command: `make bench` (or `.venv/bin/python -m benchmarks cam`).",
        "",
        "| pipeline | wall ms / batch | wall vs plain | CPU ms / batch | CPU vs plain |",
        "|---|---:|---:|---:|---:|",
        row("plain", "plain forward (logits only)"),
        row("camloc", "camloc: one forward, top-5 maps + boxes"),
        row("two_step", "hooked forward, then a per-image, per-class map loop"),
        "",
        f"Goal: at most +3 %. Measured: {over_cpu:+.1f} % in process CPU time, {over_wall:+.1f} % in wall time.",
    ])


if __name__ == "__main__":
    print(main())
