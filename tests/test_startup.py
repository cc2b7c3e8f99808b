"""Start-up cost: ``camloc --help``, an option error and ``evaluate-maps`` import neither torch nor
torchvision, and ``import camloc`` does not import torchvision. Each case runs in a fresh
interpreter and reads ``sys.modules`` at its end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from camloc.testing import write_wsol_fixture

HEAVY = ("torch", "torchvision")

# Runs the command line in this interpreter, then reports the exit code and the heavy modules loaded.
_CLI = """
import json, sys
from camloc.cli import main
try:
    rc = main(sys.argv[2:])
except SystemExit as e:
    rc = e.code
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "loaded": [m for m in %r if m in sys.modules]}, f)
""" % (HEAVY,)


def run_cli(tmp_path: Path, *argv: str) -> tuple[dict, subprocess.CompletedProcess]:
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-c", _CLI, str(report), *argv], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert report.exists(), proc.stderr
    return json.loads(report.read_text()), proc


def test_help_loads_no_torch(tmp_path):
    got, proc = run_cli(tmp_path, "--help")
    assert got == {"rc": 0, "loaded": []}
    assert "evaluate-maps" in proc.stdout and "localize" in proc.stdout


@pytest.mark.parametrize("command", ["localize", "evaluate", "units", "evaluate-maps", "probe", "finegrained",
                                     "discover"])
def test_each_command_help_loads_no_torch(tmp_path, command):
    argv = [command, "fit", "--help"] if command == "probe" else [command, "--help"]
    got, proc = run_cli(tmp_path, *argv)
    assert got == {"rc": 0, "loaded": []}
    assert "usage: camloc" in proc.stdout


@pytest.mark.parametrize("argv, message", [
    (["localize", "--topk", "0", "x.jpg"], "camloc localize: error: --topk must be at least 1, got 0"),
    (["localize", "--threshold", "1.5", "x.jpg"], "camloc localize: error: --threshold must be in [0, 1), got 1.5"),
    (["evaluate", "--data", "d", "--batch-size", "0"], "camloc evaluate: error: --batch-size must be at least 1, got 0"),
    (["units", "--class", "1", "--units", "0", "x.jpg"], "camloc units: error: --units and --per-unit must be at "
     "least 1"),
    (["probe", "fit", "--data", "d", "--val-fraction", "1"], "camloc probe: error: --val-fraction must be in (0, 1), got 1.0"),
    (["finegrained", "--data", "d", "--threshold", "-1"], "camloc finegrained: error: --threshold must be in [0, 1), "
     "got -1.0"),
    (["evaluate-maps", "--maps", "nowhere", "--metadata", "m"], "camloc evaluate-maps: error: nowhere: no such folder "
     "of maps"),
])
def test_option_errors_are_one_line_without_torch(tmp_path, argv, message):
    got, proc = run_cli(tmp_path, *argv)
    assert got == {"rc": 1, "loaded": []}
    assert proc.stderr == message + "\n"


def test_argparse_errors_load_no_torch(tmp_path):
    got, proc = run_cli(tmp_path, "localize", "--topk", "many", "x.jpg")
    assert got == {"rc": 2, "loaded": []}
    assert "argument --topk: invalid int value: 'many'" in proc.stderr


@pytest.mark.parametrize("masks", [False, True])
def test_evaluate_maps_loads_no_torch(tmp_path, masks):
    fx = write_wsol_fixture(tmp_path / "data", masks=masks, num_classes=2, per_class=2)
    rng = np.random.default_rng(0)
    for s in fx.split.samples:
        p = tmp_path / "maps" / (s.image_id + ".npy")
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, rng.random((224, 224)).astype(np.float32))
    got, proc = run_cli(tmp_path, "evaluate-maps", "--maps", str(tmp_path / "maps"), "--metadata", fx.metadata_dir,
                        "--out", str(tmp_path / "out"))
    assert got == {"rc": 0, "loaded": []}, proc.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["num_images"] == 4
    assert ("PxAP" in metrics) is masks and ("MaxBoxAccV2" in metrics) is not masks
    assert (tmp_path / "out" / "metrics.csv").exists()


def test_import_camloc_is_lazy_and_the_api_still_resolves(tmp_path):
    code = """
import json, sys, types
import camloc
first = [m for m in ("torch", "torchvision") if m in sys.modules]
import camloc.cam  # the submodule must not hide the function camloc.cam
from camloc.cam import class_maps
import camloc.methods.gradcam, camloc.evaluate.harness  # nor camloc.evaluate; camloc.methods IS the package
names = {n: callable(getattr(camloc, n)) or n == "methods" for n in camloc.__all__}
print(json.dumps({"first": first, "cam": camloc.cam.__module__, "extract": camloc.extract.__module__,
                  "localize": camloc.localize.__module__, "evaluate": camloc.evaluate.__module__,
                  "methods": camloc.methods.__name__, "get_method": camloc.get_method.__module__,
                  "names": names, "dir": set(camloc.__all__) <= set(dir(camloc))}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    got = json.loads(proc.stdout)
    assert got["first"] == []
    assert (got["cam"], got["extract"], got["localize"]) == ("camloc.extract", "camloc.extract", "camloc.localize")
    assert (got["evaluate"], got["methods"], got["get_method"]) == ("camloc.evaluate.api", "camloc.methods", "camloc.methods")
    assert all(got["names"].values()) and got["dir"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import camloc

        camloc.nope  # noqa: B018
