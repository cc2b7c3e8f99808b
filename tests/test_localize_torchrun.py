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
    assert two.returncode != 0 and "rank 0/2: 3 images" in two.stderr and "rank 1/2: 3 images" in two.stderr, two.stderr
    (ha, a), (hb, b) = read_results(tmp_path / "one" / "results.jsonl"), read_results(tmp_path / "two" / "results.jsonl")
    assert ha == hb and ha["model"] == defaults.MODEL  # one header, first, in the merged file too
    assert [r["image"] for r in a] == inputs
    assert [r["image"] for r in b] == inputs and [r["error"] for r in a] == [r["error"] for r in b]
    for ra, rb in zip(a, b):  # other batches, so scores agree to float noise only
        pa, pb = ra.get("predictions", []), rb.get("predictions", [])
        assert [(p["class_index"], p["box"]) for p in pa] == [(p["class_index"], p["box"]) for p in pb]
        assert all(abs(p["logit"] - q["logit"]) < 1e-3 for p, q in zip(pa, pb))
    assert sorted(os.listdir(tmp_path / "two")) == ["results.jsonl"]  # the parts are merged and gone
