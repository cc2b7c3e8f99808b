"""The same ``camloc train`` command under ``torchrun`` with 2 CPU processes (gloo) takes the
same steps as 1 process with the same global batch: the weights agree to float tolerance."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from camloc import testing as fixtures
from camloc.train import build_net, seed_everything, train
from camloc.train.config import load_config

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    fixtures.write_folder_fixture(tmp_path / "data", "train", classes=("a", "b"), per_class=4)
    fixtures.write_folder_fixture(tmp_path / "data", "val", classes=("a", "b"), per_class=1)
    config = tmp_path / "ddp.toml"
    # AlexNet-GAP has no batch norm and no dropout: per-process batches give the same gradient.
    config.write_text(f'data = "{tmp_path / "data"}"\nmodel = "alexnet_gap"\nepochs = 2\nbatch_size = 4\n'
                      'resize = 72\ncrop = 64\nlr = 0.01\nworkers = 0\nprogress = false\n'
                      "[model_args]\nwidth = 8\n")
    one = train(config, overrides=[f"out={tmp_path / 'one'}"])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "camloc.cli", "train", "--config", str(config), f"out={tmp_path / 'two'}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2 processes, cpu)" in proc.stderr
    assert proc.stdout.count("2 epochs; best") == 1  # only the first process reports

    a = torch.load(one.last, weights_only=True)
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert a["arch"] == b["arch"] == "alexnet_gap"
    seed_everything(0)  # the run's initial weights, to see that training moved them
    init = build_net(load_config(config), ["a", "b"]).module.state_dict()
    moved = 0.0
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-4, atol=1e-6)
        moved = max(moved, float((v - init[k]).abs().max()))
    assert moved > 1e-3
    rows_a, rows_b = a["train_state"]["metrics"], b["train_state"]["metrics"]
    assert [r["images"] for r in rows_b] == [8, 8]
    for ra, rb in zip(rows_a, rows_b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-5)
        assert rb["val_top1_error"] == pytest.approx(ra["val_top1_error"])
