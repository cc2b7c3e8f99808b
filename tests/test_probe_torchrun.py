"""Probe feature extraction under ``torchrun``: two CPU processes share the images and both end
with the features of one process, in sample order."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import sys, numpy as np, torch.distributed as dist
import camloc
from camloc.data.base import Sample
from camloc.pipeline.distributed import init_distributed
from camloc.probe.features import compute_features
rank, world = init_distributed() if len(sys.argv) > 2 else (0, 1)
import torch
torch.manual_seed(0)  # the same random weights in every process and run
net = camloc.load_model("fashion_gap", num_classes=3)
paths = sys.argv[1].split(",")
samples = [Sample(image_id=p, path=p, label=0) for p in paths]
f = compute_features(net, samples, progress=False, backend="torch")
if rank == 0:
    np.savez(sys.argv[-1], x=f.x, index=f.index, skipped=np.array(f.skipped))
"""


def test_two_processes_extract_the_features_of_one(tmp_path):
    paths = []
    for i in range(7):
        p = tmp_path / f"{i}.png"
        from PIL import Image

        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no")
    paths.insert(3, str(bad))
    script = tmp_path / "extract.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    one = subprocess.run([sys.executable, str(script), ",".join(paths), str(tmp_path / "one.npz")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(script), ",".join(paths), "dist",
                          str(tmp_path / "two.npz")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert list(a["index"]) == list(b["index"]) == [0, 1, 2, 4, 5, 6, 7]
    np.testing.assert_allclose(a["x"], b["x"], atol=1e-5)
    assert list(a["skipped"]) == list(b["skipped"]) and str(bad) in a["skipped"][0]
