"""What runs the methods' forward passes without gradients: eager PyTorch, or ONNX Runtime.

Most map methods spend their time in forward passes that need no graph: CAM, the closed forms of
a GAP + linear head (Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, Grad-CAM element-wise,
Layer-CAM, Eigen-Grad-CAM), Eigen-CAM and KPCA-CAM read one forward pass; Score-CAM, SS-CAM and
IS-CAM run one per channel (and sample) on masked inputs. With ``engine="onnxruntime"``
(``get_method(name, engine=...)``; on the commands, the ONNX Runtime backend, ``--backend auto``
on the CPU) those passes run in ONNX Runtime, which is faster than eager PyTorch there
(``make bench``: methods); the backward passes of the other methods still run in PyTorch on the
same net.

Each pass (the default layer's ``(logits, activations)``, a named layer's, the logits alone) is
exported once per net and input shape (dynamic batch: a shape the model reads in Python stays
right) and checked against PyTorch on its first batch: a difference beyond 1e-3 of the output's
scale, or an export the tracer cannot do, warns in one line and PyTorch runs that pass from then
on. The graphs are kept while the net lives; a change of any weight (in place, or a new tensor)
exports again. Inputs that are not float32 on the CPU, empty batches, and passes that need
gradients run in PyTorch.
"""

from __future__ import annotations

import io
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain
from typing import Any

import torch
from torch import Tensor, nn

ENGINES = ("torch", "onnxruntime")
"""The engines a method's forward passes can run on (``"torch"``: eager PyTorch, the default)."""

_ENGINE: ContextVar[str] = ContextVar("camloc_method_engine", default="torch")
_FAILED = "failed"
_GRAPHS: "weakref.WeakKeyDictionary[Any, dict[Any, tuple[tuple, Any]]]" = weakref.WeakKeyDictionary()
"""Per net (held weakly) and pass: ``(weights fingerprint, session or _FAILED)``."""


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a one-line ``ValueError``."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {str(engine)[:40]!r}; expected one of {', '.join(ENGINES)}")
    if engine == "onnxruntime":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ValueError("engine 'onnxruntime' needs the onnx and onnxruntime packages: "
                             "pip install onnx onnxruntime") from None
    return engine


@contextmanager
def forward_engine(engine: str) -> Iterator[None]:
    """Run the forward passes without gradients of the methods called in the block on ``engine``."""
    token = _ENGINE.set(check_engine(engine))
    try:
        yield
    finally:
        _ENGINE.reset(token)


def current_engine() -> str:
    return _ENGINE.get()


def engine_for(backend: str, device: Any = "cpu") -> str:
    """The engine a command's ``--backend`` (:data:`camloc.defaults.BACKENDS`) gives the methods on
    ``device``: ``"auto"`` is ONNX Runtime on the CPU where it is installed, else PyTorch;
    ``"onnxruntime"`` (the CPU only: a pass on another device runs in PyTorch) and ``"torch"`` are
    themselves."""
    from camloc.defaults import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {str(backend)[:40]!r}; expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return check_engine(backend)
    if torch.device(device).type != "cpu":
        return "torch"
    try:
        return check_engine("onnxruntime")
    except ValueError:
        return "torch"


def fingerprint(modules: tuple[nn.Module | None, ...]) -> tuple:
    """Every parameter's and buffer's storage and in-place version: changes when any weight does."""
    return tuple((t.data_ptr(), t._version, tuple(t.shape)) for m in modules if m is not None
                 for t in chain(m.parameters(), m.buffers()))


def run_pass(owner: Any, key: Any, modules: tuple[nn.Module | None, ...], fn: Callable[[Tensor], tuple[Tensor, ...]],
             x: Tensor) -> tuple[Tensor, ...]:
    """``fn(x)`` (a tuple of tensors, computed without gradients from the weights of ``modules``),
    in ONNX Runtime when the engine in force is ``"onnxruntime"`` and ``x`` allows it, else in
    PyTorch. ``owner`` (the net's module, held weakly) and ``key`` name the pass among its graphs."""
    if _ENGINE.get() != "onnxruntime" or x.device.type != "cpu" or x.dtype != torch.float32 or not len(x):
        return fn(x)  # (an empty batch would check a graph on nothing)
    graphs = _GRAPHS.setdefault(owner, {})
    prints = fingerprint(modules)
    key = (key, tuple(x.shape[1:]))  # one graph per input shape: a shape read in Python stays right
    known = graphs.get(key)
    if known is None or known[0] != prints:
        session = _build(modules, fn, x)
        graphs[key] = known = (prints, session)
    if known[1] is _FAILED:
        return fn(x)
    outputs = known[1].run(None, {"x": x.detach().contiguous().numpy()})
    return tuple(torch.from_numpy(o) for o in outputs)


class _Pass(nn.Module):
    """``fn`` as a module whose parameters are ``modules``' (what the exporter traces)."""

    def __init__(self, modules: tuple[nn.Module | None, ...], fn: Callable[[Tensor], tuple[Tensor, ...]]) -> None:
        super().__init__()
        self.parts = nn.ModuleList([m for m in modules if m is not None])
        self.fn = fn

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.fn(x))


def _build(modules: tuple[nn.Module | None, ...], fn: Callable[[Tensor], tuple[Tensor, ...]], x: Tensor) -> Any:
    """An ONNX Runtime session of ``fn`` (traced on ``x[:1]``, dynamic batch) checked against
    PyTorch on the whole of ``x``, or ``_FAILED`` (after a one-line warning) when the export fails
    or the outputs differ."""
    from camloc.errors import one_line

    example = x[:1].detach().contiguous()
    what = type(next((m for m in modules if m is not None), None)).__name__
    try:
        with torch.no_grad():
            expected = tuple(t.detach() for t in fn(x.detach()))
        names = [f"y{i}" for i in range(len(expected))]
        dynamic = {"x": {0: "batch"}}
        dynamic.update({n: {0: "batch"} for n in names})
        buf = io.BytesIO()
        # The exporter leaves the traced module in the mode it found the wrapper in: keep every
        # submodule's own mode (a net in training mode stays in training mode).
        modes = [(m, m.training) for part in modules if part is not None for m in part.modules()]
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the tracer's notes on hooks and shapes are expected
                torch.onnx.export(_Pass(modules, fn).eval(), (example,), buf, input_names=["x"], output_names=names,
                                  dynamic_axes=dynamic, opset_version=17, dynamo=False)
        finally:
            for m, mode in modes:
                m.training = mode
        session = cpu_session(buf.getvalue(), max(1, torch.get_num_threads()))
        got = session.run(None, {"x": x.detach().contiguous().numpy()})
    except Exception as err:  # an exporter or runtime failure on an unusual model: PyTorch still runs it
        print(f"camloc: {what} cannot run in ONNX Runtime ({type(err).__name__}: {one_line(err, 160)}); "
              "PyTorch runs its forward passes", file=sys.stderr)
        return _FAILED
    for name, e, g in zip(names, expected, got):
        err, scale = _difference(e, torch.from_numpy(g))
        if not err <= 1e-3 * max(scale, 1e-6):
            print(f"camloc: {what} in ONNX Runtime differs from PyTorch (output {name}: {err:.2e} against a scale of "
                  f"{scale:.2e}); PyTorch runs its forward passes", file=sys.stderr)
            return _FAILED
    return session


def cpu_session(model: bytes | str, threads: int = 0) -> Any:
    """An ONNX Runtime session on the CPU for ``model`` (a path or the graph's bytes): ``threads``
    intra-op threads (0: ONNX Runtime's default), warnings only, and idle threads that sleep
    instead of spinning, so decoding threads and the map arithmetic between two runs get the cores
    (what the pipeline's backend and the methods' engine both run)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _difference(e: Tensor, g: Tensor) -> tuple[float, float]:
    """The largest absolute difference of ``g`` from ``e`` (where both are NaN, none: a NaN in the
    input is not the graph's fault) and the scale of ``e``'s finite values."""
    if g.shape != e.shape:
        return float("inf"), 0.0
    d = (g.float() - e.float()).abs()
    d[torch.isnan(e) & torch.isnan(g)] = 0.0
    finite = e[torch.isfinite(e)]
    return (float(d.max()) if d.numel() else 0.0), (float(finite.abs().max()) if finite.numel() else 0.0)


__all__ = ["ENGINES", "check_engine", "cpu_session", "current_engine", "engine_for", "fingerprint", "forward_engine",
           "run_pass"]
