"""The methods benchmark's smoke run (``python -m benchmarks.bench_methods --quick``): camloc and
the peers map the same classes in one process and the table reports each."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def test_bench_methods_quick():
    pytest.importorskip("pytorch_grad_cam")
    pytest.importorskip("torchcam")
    from benchmarks import bench_methods

    text = bench_methods.main(quick=True)
    rows = [line for line in text.splitlines() if line.startswith("| gradcam | resnet18") or line.startswith("| ablationcam |")]
    assert len(rows) == 2
    gradcam = [c.strip() for c in rows[0].split("|")]
    assert all(float(gradcam[i]) > 0 for i in (5, 6, 7, 8))  # camloc (PyTorch, ONNX Runtime), grad-cam, torchcam ms per image
    assert gradcam[9].endswith("x") and gradcam[10].endswith("x") and float(gradcam[11]) > 0  # speed-ups, build s
    ablation = [c.strip() for c in rows[1].split("|")]
    assert ablation[8] == "-" and float(ablation[7]) > 0 and ablation[9].endswith("x")  # no TorchCAM Ablation-CAM
    # Score-CAM with the constant channels' shared pass against every channel's own, on a real photo
    constant = [line for line in text.splitlines() if line.startswith("| chelsea.png |")]
    assert len(constant) == 1 and constant[0].rstrip(" |").endswith("x")
    # localize --method with the pipeline's forward given to the method, against its own
    pipeline = [line for line in text.splitlines() if line.startswith("| gradcam | 2 |")]
    assert len(pipeline) == 1 and pipeline[0].rstrip(" |").endswith("x")
    # localize --method on PyTorch and on ONNX Runtime, two halves of the shared photos (when here)
    backends = [line for line in text.splitlines() if line.startswith("| gradcam | first half |")]
    assert len(backends) == 1 or "not here" in text


def test_allocator_rows():
    from benchmarks import bench_methods

    text = bench_methods.allocator("resnet18", 32, 2, 1)
    rows = [line.split("|") for line in text.splitlines() if line.startswith(("| default", "| trim", "| mmap+trim"))]
    assert len(rows) == 3 and all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)
