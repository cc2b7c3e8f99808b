"""Each WSOL method trains one epoch on the train fixture under ``torchrun`` with 2 CPU processes
(gloo), and resumes: 1 epoch, then ``resume`` to 2, ends with the weights (and the method's own
layers) of an uninterrupted 2-epoch run. One torchrun launch runs all six methods."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from camloc.train.wsol import METHODS
from train_fixture import make_images

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

SCRIPT = """
import json, sys
import torch.distributed as dist
sys.path.insert(0, {here!r})
from train_fixture import TINY_NET
from camloc.train import train

dist.init_process_group("gloo")  # one group for the six runs (each run joins it)
root, out = sys.argv[1], sys.argv[2]
report = {{}}
for method in {methods!r}:
    cfg = {{**TINY_NET, "data": root, "epochs": 2, "wsol_method": method}}
    whole = train({{**cfg, "out": f"{{out}}/{{method}}-whole"}})
    train({{**cfg, "out": f"{{out}}/{{method}}-cut", "epochs": 1}})
    resumed = train(resume=f"{{out}}/{{method}}-cut", overrides=["epochs=2"])
    report[method] = [[r["train_loss"], r["images"]] for r in whole.metrics] + \\
        [[r["train_loss"], r["images"]] for r in resumed.metrics]
if dist.get_rank() == 0:
    print("REPORT " + json.dumps(report))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_every_method_under_torchrun_with_two_gloo_processes_resumes(tmp_path):
    make_images(tmp_path / "data" / "train", n_per_class=4, classes=2, size=40)
    script = tmp_path / "run_all.py"
    script.write_text(SCRIPT.format(here=HERE, methods=list(METHODS)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path / "data"), str(tmp_path / "runs")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("(2 processes, cpu)") == 3 * len(METHODS)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line[len("REPORT "):])
    assert sorted(report) == sorted(METHODS)
    for method, rows in report.items():
        whole, resumed = rows[:2], rows[2:]
        assert [n for _, n in whole] == [8, 8], method  # both processes' images counted
        assert all(math.isfinite(loss) for loss, _ in whole), method
        assert resumed == whole, method
        a = torch.load(tmp_path / "runs" / f"{method}-whole" / "last.pt", weights_only=True)
        b = torch.load(tmp_path / "runs" / f"{method}-cut" / "last.pt", weights_only=True)
        assert b["train_state"]["epoch"] == 2
        for k, v in a["state_dict"].items():
            assert torch.equal(v, b["state_dict"][k]), (method, k)
        for k, v in a["train_state"]["wsol"].items():
            assert torch.equal(v, b["train_state"]["wsol"][k]), (method, k)
        cfg = json.loads((tmp_path / "runs" / f"{method}-cut" / "config.json").read_text())
        assert cfg["wsol_method"] == method
