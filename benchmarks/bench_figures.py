"""What the figures of ``camloc localize`` cost: per image, the composed top-k panel against the
same panel drawn with matplotlib (camloc's first version), and against the records-only work.

Eight of scikit-image's bundled photos (several sizes), the embedded EfficientNet-Lite0, top-5:
the work per image of ``camloc localize`` (records: one forward pass per batch, maps, boxes),
then its figures, timed side by side in one process.
"""

from __future__ import annotations

import os
import tempfile


from benchmarks.timing import interleaved, machine_line, pick

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png", "horse.png",
          "retina.jpg", "brick.png")


def main() -> str:
    import skimage

    import camloc
    from benchmarks.figure_reference import matplotlib_topk_figure
    from camloc.localize import iter_localize, normalized_upsampled
    from camloc.viz import overlay_figure, save_png, topk_figure

    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    paths = [os.path.join(folder, n) for n in PHOTOS[: pick(len(PHOTOS), 2)]]
    net = camloc.load_model("efficientnet_lite0")
    items = list(iter_localize(net, paths, topk=5, batch_size=8, progress=False, display=True))
    tmp = tempfile.mkdtemp(prefix="camloc-bench-fig-")

    def panels(kind: str) -> None:
        for k, it in enumerate(items):
            rgb = it.display  # these photos are under the display cap: boxes need no scaling
            maps01 = normalized_upsampled(it.maps, (rgb.shape[1], rgb.shape[0]))
            preds = it.record["predictions"]
            args = (rgb, maps01, [p["box"] for p in preds], [f"{p['rank']}. {p['label'][:22]}" for p in preds])
            if kind == "composed":
                topk_figure(*args, os.path.join(tmp, f"{k}.png"), title=PHOTOS[k])
            else:
                with open(os.path.join(tmp, f"{k}.png"), "wb") as f:
                    f.write(matplotlib_topk_figure(*args, title=PHOTOS[k]))
            top = preds[0]
            save_png(os.path.join(tmp, f"{k}_cam.png"), overlay_figure(rgb, maps01[0], top["box"], top["label"]))

    t = interleaved({
        "records": lambda: list(iter_localize(net, paths, topk=5, batch_size=8, progress=False)),
        "composed": lambda: panels("composed"),
        "matplotlib": lambda: panels("matplotlib"),
    }, repeats=5, warmup=1)
    n = len(paths)
    ms = {k: v.wall / n * 1e3 for k, v in t.items()}
    cpu = {k: v.cpu / n * 1e3 for k, v in t.items()}
    return "\n".join([
        "## Figures of `camloc localize`",
        "",
        f"{n} bundled photos (from 300x451 to 1411x1411 pixels), the embedded EfficientNet-Lite0, top-5; ms per "
        f"image, medians of interleaved runs ({machine_line()}). *Records* is the whole records-only "
        "run (decode, one forward pass per batch of 8, maps, boxes); the figures are both files a run "
        "writes per image (the top-1 overlay and the top-k panel).",
        "",
        "| work per image | wall (ms) | CPU (ms) | vs records (wall) |",
        "| --- | ---: | ---: | ---: |",
        f"| records (`--no-figures`) | {ms['records']:.0f} | {cpu['records']:.0f} | 1.00 |",
        f"| figures, composed panel (camloc) | {ms['composed']:.0f} | {cpu['composed']:.0f} | "
        f"{ms['composed'] / ms['records']:.2f} |",
        f"| figures, the same panel drawn with matplotlib | {ms['matplotlib']:.0f} | {cpu['matplotlib']:.0f} | "
        f"{ms['matplotlib'] / ms['records']:.2f} |",
        "",
        f"The composed panel makes the figures {ms['matplotlib'] / ms['composed']:.1f}x cheaper (wall) than drawing "
        f"it with matplotlib: a run with figures now costs {1 + ms['composed'] / ms['records']:.1f}x a records-only "
        f"run instead of {1 + ms['matplotlib'] / ms['records']:.1f}x. Command: `.venv/bin/python -m benchmarks figures`.",
    ])


if __name__ == "__main__":
    print(main())
