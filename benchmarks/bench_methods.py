"""Map methods: time per image, camloc against pytorch-grad-cam and TorchCAM in the same process.

    python -m benchmarks methods            # the recorded configuration
    python -m benchmarks.bench_methods --small   # smaller nets and inputs (a shared 2-core machine)
    python -m benchmarks.bench_methods --quick   # a smoke run (what the test runs)

For every method a peer shares, the three libraries map the same top-1 classes of the same
random-weight torchvision net (seeded) at its last block (``layer4``), calls interleaved, the
median of ``repeats`` runs after a warm-up (:func:`benchmarks.timing.interleaved`). Gradient and
decomposition methods run at batch ``GRAD_BATCH`` on ResNet-50; the perturbation methods (one
forward pass per channel and sample) at batch 1 and ``PERT_BATCH`` on ResNet-18 at ``PERT_SIDE``
pixels, with SS-CAM and IS-CAM at ``n = PERT_N`` samples in every library. Peers get the same
chunk of masked inputs as camloc's cap gives (their ``batch_size``). Memory: the peak resident
memory above the start of a call (sampled every 2 ms), camloc at batch 1 and at the larger batch.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # the peers' progress bars

import torch  # noqa: E402

from benchmarks.timing import interleaved, load_average, machine_line, paired  # noqa: E402

GRADIENT = {  # camloc name: (pytorch-grad-cam class, TorchCAM class)
    "gradcam": ("GradCAM", "GradCAM"), "gradcampp": ("GradCAMPlusPlus", "GradCAMpp"),
    "xgradcam": ("XGradCAM", "XGradCAM"), "hirescam": ("HiResCAM", None),
    "gradcam_elementwise": ("GradCAMElementWise", None), "layercam": ("LayerCAM", "LayerCAM"),
    "eigencam": ("EigenCAM", None), "eigengradcam": ("EigenGradCAM", None),
}
PERTURBATION = {"scorecam": ("ScoreCAM", "ScoreCAM"), "ablationcam": ("AblationCAM", None),
                "sscam": (None, "SSCAM"), "iscam": (None, "ISCAM")}
FULL = {"grad_nets": (("resnet50", 224, 16), ("efficientnet_lite1", 224, 16)), "pert_arch": "resnet18", "pert_side": 112,
        "pert_batches": (1, 4), "pert_n": 2, "repeats": 5, "gradient": tuple(GRADIENT), "perturbation": tuple(PERTURBATION),
        "constant": ("efficientnet_lite0", 224, 2, 3), "pipeline": (64, ("gradcam", "gradcampp", "eigencam"), 3),
        "backends": (128, ("gradcampp",), 8)}
QUICK = {"grad_nets": (("resnet18", 32, 2),), "pert_arch": "resnet18", "pert_side": 32,
         "pert_batches": (1,), "pert_n": 1, "repeats": 1, "gradient": ("gradcam",), "perturbation": ("ablationcam",),
         "constant": ("efficientnet_lite0", 32, 1, 1), "pipeline": (2, ("gradcam",), 1), "backends": (4, ("gradcam",), 2)}
SMALL = {"grad_nets": (("resnet18", 112, 4),), "pert_arch": "resnet18", "pert_side": 64,
         "pert_batches": (1, 2), "pert_n": 1, "repeats": 3, "gradient": tuple(GRADIENT), "perturbation": tuple(PERTURBATION),
         "constant": ("efficientnet_lite0", 224, 1, 2), "pipeline": (32, ("gradcam", "gradcampp", "eigencam"), 3),
         "backends": (32, ("gradcampp",), 8)}
"""What a shared 2-core machine can run in minutes (``--small``): the same methods, smaller nets and inputs.
``grad_nets`` = (net, side, batch) of the gradient and decomposition rows (a torchvision name: random
weights; an embedded name: its ImageNet weights, the peers at its last convolution's normalization).
The perturbation side is 64 or more: at 32 pixels ResNet's last block is one cell, every channel is
constant, and Score-CAM's shared pass for constant channels would time one forward pass instead of K.
``constant`` = (net, side, photos, repeats) of the real-weight Score-CAM rows against the peers;
``pipeline`` = (photos, methods, repeats) of ``localize --method`` with and without the pipeline's
forward given to the method; ``backends`` = (photos, methods, chunk) of ``localize --method`` on
each backend (:func:`method_backends`)."""
MAX_MB = 256.0


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb(fn: Callable[[], object]) -> float:
    """Peak resident memory above the start while ``fn`` runs (sampled every 2 ms)."""
    start, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return max(0.0, peak[0] - start)


def _net(arch: str) -> tuple[torch.nn.Module, str]:
    """The net and the peers' target layer: a torchvision net with random weights (seed 0) at
    ``layer4``, or an embedded net with its ImageNet weights at ``_bn1`` (its CAM features are
    that layer's output after a ReLU6 module the net also runs at its stem, which the peers' hooks
    cannot tell apart; camloc reads the features)."""
    import torchvision

    if arch.startswith("efficientnet_lite"):
        import camloc

        return camloc.load_model(arch).module.eval(), "_bn1"
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)(num_classes=1000).eval(), "layer4"


def _options(name: str, n: int) -> dict[str, Any]:
    if name in ("sscam", "iscam"):
        return {"n": n}
    return {}


def _runners(name: str, net: torch.nn.Module, layer: str, x: torch.Tensor, classes: torch.Tensor, n: int, chunk: int,
             peers: tuple[str | None, str | None]) -> dict[str, Callable[[], object]]:
    """camloc on PyTorch, camloc on ONNX Runtime (its graph built in the warm-up), and the peers."""
    from camloc.methods import get_method

    out: dict[str, Callable[[], object]] = {}
    opts = {**_options(name, n), **({"max_mb": MAX_MB} if name in PERTURBATION else {})}
    method, fast = get_method(name, **opts), get_method(name, engine="onnxruntime", **opts)
    out["camloc"] = lambda: method(net, x, classes[:, None])
    out["camloc-ort"] = lambda: fast(net, x, classes[:, None])
    gc_name, tc_name = peers
    module = dict(net.named_modules())[layer]
    if gc_name:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        kwargs = {"batch_size": chunk} if gc_name == "AblationCAM" else {}
        cam = getattr(pytorch_grad_cam, gc_name)(model=net, target_layers=[module], **kwargs)
        if gc_name == "ScoreCAM":
            cam.batch_size = chunk
        targets = [ClassifierOutputTarget(int(c)) for c in classes]
        out["grad-cam"] = lambda: cam(input_tensor=x, targets=targets)
    if tc_name:
        import torchcam.methods as tcm

        kwargs = {"batch_size": chunk} if name in PERTURBATION else {}
        if name in ("sscam", "iscam"):
            kwargs["num_samples"] = n
        ext = getattr(tcm, tc_name)(net, target_layer=layer, input_shape=tuple(x.shape[1:]), **kwargs)
        idx = [int(c) for c in classes]

        def torchcam_run() -> object:
            with torch.set_grad_enabled(name not in PERTURBATION):
                scores = net(x)
                return ext(class_idx=idx, scores=scores)

        out["torchcam"] = torchcam_run
    return out


def _build_s(fn: Callable[[], object]) -> float:
    """Seconds of the first call (camloc on ONNX Runtime: the export and the check of its graphs)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _row(name: str, family: str, arch: str, side: int, b: int, fns: dict[str, Callable[[], object]], repeats: int,
         scale: float) -> dict[str, Any]:
    load = load_average()
    build = _build_s(fns["camloc-ort"])
    t = interleaved(fns, repeats=repeats, warmup=1)
    row = {"method": name, "family": family, "net": arch, "side": side, "batch": b, "load": load, "ort_build_s": build,
           **{f"{k}_ms": 1000 * v.wall / scale for k, v in t.items()}}
    peer = [row[f"{k}_ms"] for k in ("grad-cam", "torchcam") if f"{k}_ms" in row]
    row["speedup"] = min(peer) / row["camloc_ms"] if peer else None
    row["speedup_ort"] = min(peer) / row["camloc-ort_ms"] if peer else None
    return row


def _rows(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    import warnings

    from camloc.methods.perturbation import chunk_size

    warnings.filterwarnings("ignore")
    logging_off()
    rows = []
    groups = [("gradient", arch, side, (b,), cfg["gradient"]) for arch, side, b in cfg["grad_nets"]]
    groups.append(("perturbation", cfg["pert_arch"], cfg["pert_side"], cfg["pert_batches"], cfg["perturbation"]))
    for family, arch, side, batches, names in groups:
        net, layer = _net(arch)
        for b in batches:
            x = torch.randn(b, 3, side, side, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                classes = net(x).argmax(1)
            chunk = chunk_size(net, x[:1], MAX_MB)
            for name in names:
                peers = (GRADIENT | PERTURBATION)[name]
                fns = _runners(name, net, layer, x, classes, cfg["pert_n"], chunk, peers)
                row = _row(name, family, arch, side, b, fns, cfg["repeats"], b)
                if family == "perturbation":
                    row["camloc_peak_mb"] = peak_mb(fns["camloc"])
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    return rows


def constant_channels(cfg: dict[str, Any]) -> str:
    """Score-CAM on an embedded net with its real weights, on real photos, against the peers: the
    constant (dead) channels' share, camloc (their one shared pass; PyTorch and ONNX Runtime),
    camloc with every channel its own pass (what the peers run) and the peers, interleaved in one
    process. The peers read ``_bn1`` (see :func:`_net`): the same number of passes of the same net."""
    import camloc
    from camloc.methods.base import scores_and_activations
    from camloc.methods.perturbation import chunk_size
    from camloc.methods.scorecam import ScoreCAM
    from camloc.photos import demo_photo_paths

    name, side, photos, repeats = cfg["constant"]
    net = camloc.load_model(name)
    paths = [p for p in demo_photo_paths() if os.path.basename(p) in ("chelsea.png", "coffee.png", "astronaut.png")]
    lines = ["| photo | constant channels | camloc s | camloc onnxruntime s | every channel s | grad-cam s | torchcam s | "
             "faster peer / camloc | faster peer / camloc onnxruntime |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for path in paths[:photos]:
        from PIL import Image

        x = net.preprocess([Image.open(path).convert("RGB")])  # the net's own input size
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
        with torch.no_grad():
            logits, a = scores_and_activations(net, x, None, grad=False)
        flat = a[0].flatten(1)
        share = float((flat.amax(1) == flat.amin(1)).float().mean())
        cls = logits.argmax(1)
        every = ScoreCAM(max_mb=MAX_MB)
        every.shares_constant_channels = False
        fns = _runners("scorecam", net.module, "_bn1", x, cls, 1, chunk_size(net.module, x, MAX_MB), PERTURBATION["scorecam"])
        fns = {"camloc": lambda: ScoreCAM(max_mb=MAX_MB)(net, x, cls[:, None]), "camloc-ort": fns["camloc-ort"],
               "every": lambda: every(net, x, cls[:, None]), "grad-cam": fns["grad-cam"], "torchcam": fns["torchcam"]}
        fns["camloc-ort"]()  # builds its graphs
        t = interleaved(fns, repeats=repeats, warmup=0)
        shared = ScoreCAM(max_mb=MAX_MB)(net, x, cls[:, None])
        assert torch.allclose(shared, every(net, x, cls[:, None]), rtol=1e-4, atol=1e-6)
        peer = min(t["grad-cam"].wall, t["torchcam"].wall)
        lines.append(f"| {os.path.basename(path)} | {share:.1%} of {flat.shape[0]} | {t['camloc'].wall:.2f} | "
                     f"{t['camloc-ort'].wall:.2f} | {t['every'].wall:.2f} | {t['grad-cam'].wall:.2f} | "
                     f"{t['torchcam'].wall:.2f} | {peer / t['camloc'].wall:.2f}x | {peer / t['camloc-ort'].wall:.2f}x |")
    return "\n".join([f"Score-CAM on {name} with its own ImageNet weights, real photos at {side}x{side}, top-1 class, "
                      f"median of {repeats} interleaved runs after a warm-up (camloc's maps with the constant channels' "
                      "shared pass equal to every channel's own, checked; the peers at `_bn1`):", "", *lines])


def pipeline_forward(cfg: dict[str, Any]) -> str:
    """``localize --method M`` through the pipeline (the default net, the shared ImageNet photos or
    the demo photos): the pipeline's own forward given to the method (one forward per batch)
    against the method running its own (two), interleaved; the records' maps are equal."""
    import numpy as np

    import camloc
    import camloc.methods.base as base
    from camloc.localize import LocalizeOptions, iter_localize
    from camloc.methods import get_method

    photos, names, repeats = cfg["pipeline"]
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenet-samples", "images")
    if os.path.isdir(folder):
        paths = sorted(os.path.join(folder, f) for f in os.listdir(folder))[:photos]
    else:
        from camloc.photos import demo_photo_paths

        paths = demo_photo_paths()[:photos]
    net = camloc.load_model()
    share = base.share_forward
    lines = ["| method | photos | shared forward s | own forward s | own / shared |", "|---|---:|---:|---:|---:|"]
    for name in names:
        method = get_method(name)
        maps: dict[str, list] = {}

        def run(mode: str) -> None:
            base.share_forward = share if mode == "shared" else (lambda *a, **k: False)
            try:
                maps[mode] = [item.maps for item in iter_localize(net, paths, LocalizeOptions(topk=5, method=method),
                                                                  backend="torch")]
            finally:
                base.share_forward = share

        t = interleaved({"shared": lambda: run("shared"), "own": lambda: run("own")}, repeats=repeats, warmup=1)
        assert all(np.array_equal(a, b) for a, b in zip(maps["shared"], maps["own"]))
        lines.append(f"| {name} | {len(paths)} | {t['shared'].wall:.2f} | {t['own'].wall:.2f} | "
                     f"{t['own'].wall / t['shared'].wall:.2f}x |")
    return "\n".join([f"`localize --method` through the pipeline, the default net ({net.name}), top-5, median of "
                      f"{repeats} interleaved runs after a warm-up (maps equal, checked):", "", *lines])


def method_backends(photos: int = 64, names: tuple[str, ...] = ("gradcampp",), chunk: int = 8) -> str:
    """The pipeline's backend for ``localize --method`` (the default choice): PyTorch against ONNX
    Runtime (each method's forward passes without gradients there, its backward passes in PyTorch),
    on the shared ImageNet photos split into two halves (first / second by file name). Each chunk of
    ``chunk`` photos runs on both backends, interleaved, after every graph is built; the gain is the
    mean paired difference of seconds per photo with its standard error over the chunks."""
    import camloc
    from camloc.localize import LocalizeOptions, iter_localize
    from camloc.methods import get_method

    folder = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenet-samples", "images")
    if not os.path.isdir(folder):
        return "The shared ImageNet photos are not here: the backend comparison did not run."
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder))[:photos]
    halves = {"first half": paths[: len(paths) // 2], "second half": paths[len(paths) // 2:]}
    net = camloc.load_model()
    lines = ["| method | half | photos | chunks | torch s/photo | onnxruntime s/photo | gain s/photo (± s.e.) | "
             "torch / onnxruntime |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        method = get_method(name)

        def run(part: list[str], backend: str) -> None:
            for _ in iter_localize(net, part, LocalizeOptions(topk=5, method=method), backend=backend, progress=False):
                pass

        run(paths[:2], "onnxruntime")  # builds the graphs
        for half, part in halves.items():
            pairs = []
            for start in range(0, len(part), chunk):
                piece = part[start:start + chunk]
                t = interleaved({"torch": lambda: run(piece, "torch"), "onnxruntime": lambda: run(piece, "onnxruntime")},
                                repeats=1, warmup=0)
                pairs.append((t["torch"].wall / len(piece), t["onnxruntime"].wall / len(piece)))
            ta, tb, gain, se = paired(pairs)
            lines.append(f"| {name} | {half} | {len(part)} | {len(pairs)} | {ta:.3f} | {tb:.3f} | "
                         f"{gain:.3f} ± {se:.3f} | {ta / tb:.2f}x |")
    return "\n".join([f"`localize --method` on each backend ({net.name}, top-5, chunks of {chunk} shared ImageNet photos "
                      "interleaved, graphs built first):", "", *lines])


_ALLOCATOR_CHILD = """
import ctypes, statistics, sys, time
import torch, torchvision
arch, side, batch, threads, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if mode != "default":
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-1, ctypes.c_int(2**30))  # M_TRIM_THRESHOLD
    if mode == "mmap+trim":
        libc.mallopt(-3, ctypes.c_int(32 * 2**20))  # M_MMAP_THRESHOLD (glibc's largest)
torch.set_num_threads(threads)
torch.manual_seed(0)
if arch.startswith("efficientnet_lite"):
    import camloc
    net = camloc.load_model(arch).module.eval()
else:
    net = getattr(torchvision.models, arch)(num_classes=1000).eval()
x = torch.randn(batch, 3, side, side)
def timed(grad):
    with torch.set_grad_enabled(grad):
        net(x)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        with torch.set_grad_enabled(grad):
            net(x)
        ts.append(time.perf_counter() - t0)
    return 1000 * statistics.median(ts) / batch
print(timed(False), timed(True))
"""


def allocator(arch: str = "resnet50", side: int = 224, batch: int = 16, threads: int = 2) -> str:
    """PyTorch's CPU forward under glibc's allocator settings: the defaults, the trim threshold
    raised, and the trim and mmap thresholds raised (``mallopt``), each in its own process (the
    settings cannot be undone), median of 5 after a warm-up, without and with gradients."""
    import subprocess

    lines = ["| allocator | forward without gradients ms/img | forward with gradients ms/img |", "|---|---:|---:|"]
    for mode in ("default", "trim", "mmap+trim"):
        out = subprocess.run([sys.executable, "-c", _ALLOCATOR_CHILD, arch, str(side), str(batch), str(threads), mode],
                             capture_output=True, text=True, check=True).stdout.split()
        lines.append(f"| {mode} | {float(out[0]):.1f} | {float(out[1]):.1f} |")
    weights = "its ImageNet weights" if arch.startswith("efficientnet_lite") else "random weights"
    return "\n".join([f"PyTorch's forward of {arch} ({weights}) at {side}², batch {batch}, {threads} threads, one "
                      "process per allocator setting (`python -m benchmarks.bench_methods --allocator`):", "", *lines])


def logging_off() -> None:
    import logging

    logging.getLogger().setLevel(logging.ERROR)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | net | side | batch | camloc ms/img | camloc onnxruntime ms/img | grad-cam ms/img | torchcam ms/img | "
             "faster peer / camloc | faster peer / camloc onnxruntime | onnxruntime first call s | camloc peak MB | load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def f(v: Any, fmt: str = "{:.1f}") -> str:
        return "-" if v is None else fmt.format(v)

    for r in rows:
        lines.append(f"| {r['method']} | {r['net']} | {r['side']} | {r['batch']} | {f(r['camloc_ms'])} | "
                     f"{f(r['camloc-ort_ms'])} | {f(r.get('grad-cam_ms'))} | {f(r.get('torchcam_ms'))} | "
                     f"{f(r['speedup'], '{:.2f}x')} | {f(r['speedup_ort'], '{:.2f}x')} | {f(r['ort_build_s'], '{:.2f}')} | "
                     f"{f(r.get('camloc_peak_mb'), '{:.0f}')} | {r['load']:.1f} |")
    return "\n".join(lines)


def main(quick: bool | None = None, small: bool = False) -> str:
    from benchmarks.timing import quick as quick_run

    quick = quick_run() if quick is None else quick
    cfg = QUICK if quick else SMALL if small else FULL
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: on a shared, oversubscribed machine two threads spin (10x slower)
    try:
        machine = machine_line()  # with the thread count the rows run at
        rows = _rows(cfg)
        constant = constant_channels(cfg)
        pipeline = pipeline_forward(cfg)
        backends = method_backends(*cfg["backends"])
    finally:
        torch.set_num_threads(threads)
    return "\n".join([
        "## Map methods against pytorch-grad-cam and TorchCAM (time per image, same process)", "",
        f"`python -m benchmarks.bench_methods{' --quick' if quick else ' --small' if small else ''}`: {machine}; torchvision "
        "nets with random weights (seed 0, target `layer4`), the embedded nets with their ImageNet weights (camloc at "
        "its CAM features, the peers at `_bn1`), top-1 class, median of "
        f"{cfg['repeats']} interleaved runs after a warm-up; camloc on PyTorch and on ONNX Runtime (`engine=\"onnxruntime\"`, "
        "its graphs built once per net and input shape, in its first call, before the timed runs: the first-call column, the whole batch). "
        "Gradient/decomposition: " + "; ".join(f"{a} at {sd}², batch {b}" for a, sd, b in cfg["grad_nets"]) + ". Perturbation: "
        f"{cfg['pert_arch']} at {cfg['pert_side']}², batch {' and '.join(map(str, cfg['pert_batches']))}, SS-CAM/IS-CAM "
        f"n = {cfg['pert_n']}, chunks under {MAX_MB:.0f} MB (peers get the same chunk). 'faster peer / camloc' > 1 means "
        "camloc is faster.", "", table(rows), "",
        "", constant, "", pipeline, "", backends, "", f"Load average at the end: {load_average():.1f}.",
    ])


if __name__ == "__main__":
    if "--allocator" in sys.argv[1:]:
        print(allocator())
        print()
        print(allocator("efficientnet_lite1", 224, 16, 1))
    else:
        print(main(quick="--quick" in sys.argv[1:], small="--small" in sys.argv[1:]))
