"""``torchrun -m camloc.cli localize``: inputs sharded across processes, one results.jsonl in input
order with the same records as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from camloc import defaults
from camloc.provenance import read_results

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_two_cpu_processes_write_the_records_of_one(tmp_path, photo_dir):
    photos = [os.path.join(photo_dir, n) for n in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png",
                                                    "motorcycle_left.png")]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    inputs = photos[:2] + [str(bad)] + photos[2:]
    common = ["localize", *inputs, "--topk", "2", "--no-figures", "--backend", "torch"]
    one = _run([sys.executable, "-m", "camloc.cli", *common, "--out", str(tmp_path / "one")], tmp_path)
    assert one.returncode == 1, one.stderr  # the bad file fails, the rest go on
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    two = _run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "camloc.cli", *common,
                "--out", str(tmp_path / "two")], tmp_path)
    # under torchrun a failed image is not a crash: exit 0, the summary and the error record say it
    assert two.returncode == 0 and "rank 0/2: 3 images" in two.stderr and "rank 1/2: 3 images" in two.stderr, two.stderr
    assert "5 localized, 1 failed" in two.stdout and "ChildFailedError" not in two.stderr
    (ha, a), (hb, b) = read_results(tmp_path / "one" / "results.jsonl"), read_results(tmp_path / "two" / "results.jsonl")
    assert ha == hb and ha["model"] == defaults.MODEL  # one header, first, in the merged file too
    assert [r["image"] for r in a] == inputs
    assert [r["image"] for r in b] == inputs and [r["error"] for r in a] == [r["error"] for r in b]
    for ra, rb in zip(a, b):  # other batches, so scores agree to float noise only
        pa, pb = ra.get("predictions", []), rb.get("predictions", [])
        assert [(p["class_index"], p["box"]) for p in pa] == [(p["class_index"], p["box"]) for p in pb]
        assert all(abs(p["logit"] - q["logit"]) < 1e-3 for p, q in zip(pa, pb))
    assert sorted(os.listdir(tmp_path / "two")) == ["results.jsonl"]  # the parts are merged and gone


def test_strict_makes_a_failed_image_fail_the_torchrun_run(tmp_path):
    """``--strict``: the ranks exit 1 when an image failed (the output is still complete)."""
    import numpy as np
    from PIL import Image

    import camloc

    model = tmp_path / "tiny.pt"
    camloc.save_checkpoint(camloc.load_model("fashion_gap", num_classes=3, in_size=32, widths=(4, 8)), model)
    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    run = _run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "camloc.cli", "localize", str(good), str(bad),
                "--model", str(model), "--no-figures", "--backend", "torch", "--out", str(tmp_path / "o"), "--strict"],
               tmp_path)
    assert run.returncode != 0 and "1 localized, 1 failed" in run.stdout, run.stderr
    recs = read_results(tmp_path / "o" / "results.jsonl")[1]
    assert [r["error"] is None for r in recs] == [True, False]
