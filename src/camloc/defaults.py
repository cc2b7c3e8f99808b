"""camloc's defaults, in one place: the default net and its geometry, the backends, and the options
every command shares (their declarations, help text and checks).

Standard library only (``camloc --help`` imports this module and must not start NumPy, OpenCV or
torch). The API (:func:`camloc.load_model`, :func:`camloc.localize`) and every command read their
defaults from here.
"""

from __future__ import annotations

import argparse

MODEL = "efficientnet_lite1"
"""The net loaded when none is named (API and every command): of every combination measured within
twice the time per image of Lite0 at 224, the one no worse on any figure (BENCHMARKS.md,
"localize's default")."""
SIDE = 288
"""The shorter side the default net sees (the whole image, aspect kept) when no geometry is named."""
MODEL_LABEL = "the embedded EfficientNet-Lite1"
"""How help text names the default net."""

BACKENDS = ("auto", "torch", "onnxruntime")
"""What runs the forward passes without gradients: ``auto`` (ONNX Runtime on the CPU, else PyTorch),
``torch``, ``onnxruntime``; a map method's backward passes run in PyTorch."""

TOPK = 5
THRESHOLD = 0.2  # the paper's box threshold: 20 % of the (read) map's max
BATCH_SIZE = 16


def model_help(probe: bool = True, geometry: str | None = f"at shorter side {SIDE}") -> str:
    """The ``--model`` help's default clause: the default net, the geometry the command runs it at
    (``None``: the command's own, e.g. the net's square input) and, with ``probe``, what ``--probe``
    changes."""
    return MODEL_LABEL + (f" {geometry}" if geometry else "") + ("; with --probe, the probe's backbone" if probe else "")


def add_device_argument(p: argparse.ArgumentParser, default: str = "cuda if present") -> None:
    """``--device``."""
    p.add_argument("--device", default=None, help=f"cpu, cuda, cuda:1 ... (default: {default})")


def add_batch_size_argument(p: argparse.ArgumentParser, default: int = BATCH_SIZE) -> None:
    """``--batch-size`` (checked by :func:`check_batch_size`)."""
    p.add_argument("--batch-size", type=int, default=default, metavar="N",
                   help=f"images per forward pass (default {default})")


def add_backend_argument(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--backend``, one of :data:`BACKENDS`."""
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help=help or "what runs the forward pass: auto (default: ONNX Runtime on the CPU, its graph "
                   "exported once, checked against PyTorch and cached; PyTorch on a GPU and for a head where CAM is "
                   "refused; a map method's backward passes run in PyTorch), torch or onnxruntime")


WORKERS_HELP = "decode threads, overlapped with the forward pass (default: the cores, at most 4)"


def add_workers_argument(p: argparse.ArgumentParser, default: int | None = None, help: str = WORKERS_HELP) -> None:
    """``--workers`` (checked by :func:`check_workers`): decode threads, unless ``help`` says otherwise."""
    p.add_argument("--workers", type=int, default=default, metavar="N", help=help)


def add_topk_argument(p: argparse.ArgumentParser, help: str = "classes per image") -> None:
    p.add_argument("--topk", type=int, default=TOPK, help=f"{help} (default {TOPK})")


def check_topk(value: int, name: str = "--topk") -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def check_threshold(value: float | None, name: str = "--threshold") -> None:
    """``None`` (the default's) or a number in [0, 1)."""
    if value is not None and not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def check_batch_size(value: int, name: str = "--batch-size") -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def check_workers(value: int | None, name: str = "--workers") -> None:
    """``None`` (the default) or 0 or more."""
    if value is not None and value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")


def check_map_options(args: argparse.Namespace) -> None:
    """One-line errors for whichever of ``--topk``, ``--threshold``, ``--batch-size`` and ``--workers``
    the command has."""
    if hasattr(args, "topk"):
        check_topk(args.topk)
    if hasattr(args, "threshold"):
        check_threshold(args.threshold)
    if hasattr(args, "batch_size"):
        check_batch_size(args.batch_size)
    if hasattr(args, "workers"):
        check_workers(args.workers)
