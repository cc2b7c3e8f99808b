"""A real kill: ``camloc train`` is SIGKILLed as soon as its first checkpoint exists, then
``camloc train --resume`` finishes the run; the weights equal an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from camloc import testing as fixtures
from camloc.train import train

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    fixtures.write_folder_fixture(tmp_path / "data", "train", classes=("a", "b"), per_class=4)
    fixtures.write_folder_fixture(tmp_path / "data", "val", classes=("a", "b"), per_class=1)
    config = tmp_path / "kill.toml"
    config.write_text(f'data = "{tmp_path / "data"}"\nmodel = "alexnet_gap"\nepochs = 6\nbatch_size = 4\n'
                      'resize = 72\ncrop = 64\nlr = 0.01\nworkers = 0\nprogress = false\n'
                      "[model_args]\nwidth = 8\ndropout = 0.2\n")
    whole = train(config, overrides=[f"out={tmp_path / 'whole'}"])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    run = tmp_path / "killed"
    cli = [sys.executable, "-m", "camloc.cli", "train"]
    proc = subprocess.Popen([*cli, "--config", str(config), f"out={run}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (run / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done = torch.load(run / "last.pt", weights_only=True)["train_state"]["epoch"]
    resumed = subprocess.run([*cli, "--resume", str(run)], env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert 1 <= done < 6  # killed mid-run (the first checkpoint comes after epoch 1 of 6)
    assert f"after epoch {done}" in resumed.stderr
    a = torch.load(whole.last, weights_only=True)["state_dict"]
    b = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not [p for p in os.listdir(run) if p.startswith(".tmp-")]  # no half-written file left behind
