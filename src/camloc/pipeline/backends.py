"""What runs the one forward pass of a batch: ``pixels -> (features, logits)``.

A batch arrives as the decoded pixels, ``(B, H, W, 3)`` uint8, and each backend normalizes it
itself (:func:`normalize`): in PyTorch on the net's device (a quarter of the bytes to move to a
GPU), inside the graph for ONNX Runtime (no float copy in Python at all).

- :class:`TorchBackend`: eager PyTorch (any device).
- :class:`OnnxBackend`: ONNX Runtime on the CPU, running the net's feature graph exported once
  with dynamic batch, height and width (so the aspect-mode buckets all fit one graph), cached on
  disk under a key of the weights, the head, camloc's and PyTorch's versions, checked against
  PyTorch once when built and reused by later runs; changed weights give a new key, hence a new
  graph.

The class maps are not the backend's business: :func:`camloc.cam.class_maps` turns the features
of any backend into maps, for the top-k classes or any others asked for.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from camloc.defaults import BACKENDS
from camloc.errors import one_line
from camloc.models.net import CamNet, evaluating

OPSET = 17
GRAPH_FORMAT = 2  # bumped whenever the exported graph's inputs or outputs change


def normalize(net: CamNet, pixels: Tensor) -> Tensor:
    """``(B, H, W, 3)`` uint8 pixels -> the net's ``(B, 3, H, W)`` float input:
    ``(x / 255 - mean) / std`` per channel (:class:`~camloc.models.net.Preprocessing`)."""
    pre = net.preprocessing
    mean = torch.tensor(pre.mean, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1) * 255.0
    inv = 1.0 / (torch.tensor(pre.std, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1) * 255.0)
    return (pixels.permute(0, 3, 1, 2).float() - mean) * inv


def as_input(net: CamNet, pixels: np.ndarray | Tensor) -> Tensor:
    """A pixel batch (array or tensor) -> the normalized input on the net's device."""
    t = torch.from_numpy(pixels) if isinstance(pixels, np.ndarray) else pixels
    return normalize(net, t.to(net.device)).contiguous()


class TorchBackend:
    """Eager PyTorch: :func:`camloc.extract.extract` under ``inference_mode``."""

    name = "torch"

    def __init__(self, net: CamNet) -> None:
        self.net = net

    def __call__(self, pixels: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
        from camloc.extract import extract

        with evaluating(self.net.module), torch.inference_mode():
            return extract(self.net, as_input(self.net, pixels))


class _FeatureGraph(nn.Module):
    """``pixels (B, H, W, 3) uint8 -> (features, logits)``: :func:`normalize` then
    :func:`camloc.extract.extract` (what gets exported)."""

    def __init__(self, net: CamNet) -> None:
        super().__init__()
        self.module = net.module  # registered, so the tracer sees its parameters
        self.probe = net.probe
        self._net = [net]  # a list, so the CamNet is not a second path to the same submodules

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        from camloc.extract import extract

        return extract(self._net[0], normalize(self._net[0], pixels))


class OnnxBackend:
    """ONNX Runtime (CPU) on the cached feature graph of ``net``; see :func:`cached_graph`."""

    name = "onnxruntime"

    def __init__(self, net: CamNet, cache_dir: str | os.PathLike | None = None, threads: int = 0) -> None:
        from camloc.methods.engine import cpu_session

        self.net = net
        self.path, self.built = cached_graph(net, cache_dir)
        self.session = cpu_session(os.fspath(self.path), threads)

    def __call__(self, pixels: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
        arr = pixels.cpu().numpy() if isinstance(pixels, Tensor) else pixels
        features, logits = self.session.run(None, {"pixels": np.ascontiguousarray(arr, dtype=np.uint8)})
        return torch.from_numpy(features), torch.from_numpy(logits)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where exported graphs live: ``cache_dir``, else ``$CAMLOC_CACHE``, else
    ``$XDG_CACHE_HOME/camloc`` (``~/.cache/camloc``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("CAMLOC_CACHE"):
        return Path(os.environ["CAMLOC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "camloc"


def graph_key(net: CamNet) -> str:
    """A digest of everything the exported graph depends on: every parameter and buffer (names,
    shapes and bytes) of the net and its probe, the module's structure (its printed form: strides,
    dilations, paddings), the head's reading, camloc's and PyTorch's versions and the opset."""
    from camloc._version import __version__

    h = hashlib.sha256()
    head = net.head
    post = getattr(head.post, "__qualname__", repr(head.post)) if head.post is not None else ""
    h.update(json.dumps([GRAPH_FORMAT, __version__, torch.__version__, OPSET, net.preprocessing.to_dict(), net.name, type(net.module).__name__,
                         head.capture, head.pooling, post, net.num_classes, repr(net.module)]).encode())
    for prefix, module in (("m.", net.module), ("p.", net.probe)):
        if module is None:
            continue
        for name, t in module.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{prefix}{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cached_graph(net: CamNet, cache_dir: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """The path of ``net``'s feature graph in the cache, exporting and checking it first when it
    is not there. Returns ``(path, built)``: ``built`` says whether this call made it.

    Raises:
        ValueError: the graph's outputs differ from PyTorch's (one line; nothing is cached).
    """
    _require()
    key = graph_key(net)
    folder = cache_root(cache_dir) / "onnx"
    path = folder / f"{net.name}-{key[:20]}.onnx"
    if path.is_file():
        return path, False
    data = export_features(net)
    check_graph(net, data)
    from camloc.io import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError as err:  # an unwritable cache: use a private copy for this run
        print(f"camloc: cannot cache the ONNX graph in {folder} ({one_line(err)}); "
              "it will be rebuilt next run", file=sys.stderr)
        import tempfile

        fd, tmp = tempfile.mkstemp(suffix=".onnx")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return Path(tmp), True
    return path, True


def export_features(net: CamNet) -> bytes:
    """The ONNX graph ``pixels (B, H, W, 3) uint8 -> features (B, K, h, w), logits (B, C)`` with
    dynamic batch, height and width (the normalization inside)."""
    h, w = net.preprocessing.shape
    graph = _FeatureGraph(net)
    example = torch.zeros(1, h, w, 3, dtype=torch.uint8, device=net.device)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), evaluating(graph):
        warnings.simplefilter("ignore")  # the tracer's notes on hooks are expected
        torch.onnx.export(graph, (example,), buf, input_names=["pixels"], output_names=["features", "logits"],
                          dynamic_axes={"pixels": {0: "batch", 1: "height", 2: "width"},
                                        "features": {0: "batch", 2: "fh", 3: "fw"}, "logits": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def check_graph(net: CamNet, data: bytes, rtol: float = 1e-3) -> None:
    """Run the graph and PyTorch on the same random batch at two input shapes (the net's own
    and a wider, non-square one); the logits and features must agree to ``rtol`` of their scale.

    Raises:
        ValueError: one line saying which output differs and by how much.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    torch_backend = TorchBackend(net)
    h, w = net.preprocessing.shape
    g = torch.Generator().manual_seed(0)
    for shape in ((2, h, w, 3), (1, h + 32, w + 96, 3)):
        x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
        f_ref, l_ref = (t.float().cpu() for t in torch_backend(x))
        f_onnx, l_onnx = session.run(None, {"pixels": x.numpy()})
        for what, ref, got in (("features", f_ref, f_onnx), ("logits", l_ref, l_onnx)):
            got_t = torch.from_numpy(got)
            if got_t.shape != ref.shape:
                raise ValueError(f"{net.name}: the ONNX graph gives {what} of shape {tuple(got_t.shape)} at input "
                                 f"{shape[1]}x{shape[2]}, PyTorch {tuple(ref.shape)}")
            err = float((got_t - ref).abs().max())
            scale = float(ref.abs().max()) or 1.0
            if not err <= rtol * scale + 1e-5:
                raise ValueError(f"{net.name}: the ONNX graph's {what} differ from PyTorch's by {err:.3g} "
                                 f"(scale {scale:.3g}) at input {shape[1]}x{shape[2]}")


def _require() -> None:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        raise RuntimeError("the onnxruntime backend needs onnx and onnxruntime: pip install 'camloc[onnx]'") from None


def make_backend(net: CamNet, backend: str = "auto", cache_dir: str | os.PathLike | None = None):
    """The backend for ``net``: ``"torch"``, ``"onnxruntime"`` or ``"auto"`` (ONNX Runtime on the
    CPU when it is installed and its graph checks out, else PyTorch; always PyTorch on a GPU and
    for a head where CAM is refused). With a map method, the backend runs the batch's forward pass
    and, as the method's engine (:mod:`camloc.methods.engine`), the method's other forward passes
    without gradients; the method's backward passes run in PyTorch on the same net.

    Raises:
        ValueError: an unknown name, or ``"onnxruntime"`` on a refused head.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    refused = getattr(net, "cam_refused", False)
    if backend == "onnxruntime":
        if refused:
            raise ValueError(f"{net.name}: CAM is refused for this head, and the onnxruntime backend runs the CAM "
                             "head's graph: use --backend torch or auto (auto picks torch)")
        return OnnxBackend(net, cache_dir)
    if backend == "torch" or refused or net.device.type != "cpu":
        return TorchBackend(net)
    try:
        return OnnxBackend(net, cache_dir)
    except (ImportError, RuntimeError, ValueError) as err:
        print(f"camloc: using PyTorch ({one_line(err)})", file=sys.stderr)
        return TorchBackend(net)
    except Exception as err:  # an exporter failure on an unusual model: PyTorch still works
        print(f"camloc: the model cannot be exported for ONNX Runtime, using PyTorch "
              f"({type(err).__name__}: {one_line(err, 200)})", file=sys.stderr)
        return TorchBackend(net)
