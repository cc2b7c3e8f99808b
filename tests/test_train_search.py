"""``camloc search``: a 2-trial study on a tiny Fashion-MNIST localization set (trials kept,
best retrained and tested once with the few-shot baseline), resumed after a SIGKILL (the killed
trial retried with its parameters and its run resumed), refusals before any training (no boxes,
fewer than K per class, another method's study), and a diverged trial recorded as failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from camloc.data.fashion_mnist import FASHION_DIR
from camloc.errors import ConfigError
from camloc.train.fewshot import box_iou, fit_ridge
from camloc.train.search import SearchOptions, box_subset, search

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
needs_fmnist = pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz")),
                                  reason="Debian's dataset-fashion-mnist is not installed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from camloc.experiments.fashion_loc import write_benchmark

    if not os.path.exists(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    root = tmp_path_factory.mktemp("fashion")
    write_benchmark(root, "clean", {"train": 40, "val": 60, "test": 20}, seed=0, progress=False)
    return root


def config(tmp_path, data, **extra) -> str:
    path = tmp_path / "search.toml"
    keys = {"data": str(data), "model": "fashion_gap", "epochs": 1, "batch_size": 20, "resize": 64, "crop": 64,
            "flip": False, "lr": 0.05, "workers": 0, "progress": False, "amp": False, **extra}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items())
    path.write_text(body + "\n[model_args]\nwidths = [8, 16]\nhead_channels = 16\n")
    return str(path)


@needs_fmnist
def test_two_trial_study_keeps_every_trial_and_tests_the_best_once(tmp_path, data):
    out = tmp_path / "s"
    result = search(config(tmp_path, data), SearchOptions(method="adl", trials=2, out=str(out), val_per_class=2))
    assert result["trials"] == 2 and result["failed"] == 0 and result["val_images"] == 20
    trials = json.loads((out / "trials.json").read_text())
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    values = [t["value"] for t in trials]
    assert result["best_val"]["MaxBoxAccV2"] == max(values)
    for t in trials:
        run = out / "trials" / f"{t['number']:04d}"
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["wsol_method"] == "adl" and cfg["lr"] == t["params"]["lr"]
        assert cfg["wsol_args"] == {"drop_rate": t["params"]["drop_rate"], "threshold": t["params"]["threshold"]}
        val = json.loads((run / "val.json").read_text())
        assert val["metrics"]["MaxBoxAccV2"] == t["value"] and val["metrics"]["num_images"] == 20
        assert set(val["curves"]) >= {"IoU 0.5, all contours"} and len(t["user_attrs"]["curves"]) == 1
        assert 0.05 / 10 <= t["params"]["lr"] <= 0.05 * 10
    test = result["test"]
    v2 = [test[f"MaxBoxAccV2@{d}"] for d in (30, 50, 70)]
    assert test["MaxBoxAccV2"] == pytest.approx(sum(v2) / 3) and v2[0] >= v2[1] >= v2[2]
    assert test["num_images"] == 20 and test["fewshot"]["train_images"] == 20
    assert json.loads((out / "result.json").read_text())["best_trial"] == result["best_trial"]
    # another method's search in the same study refuses to mix
    with pytest.raises(ConfigError, match=r"study 'wsol-adl' holds trials of wsol_method 'adl', not 'has'"):
        search(config(tmp_path, data), SearchOptions(method="has", trials=1, out=str(out), study="wsol-adl",
                                                       val_per_class=2))
    # the same search again: nothing left to run, the same best
    again = search(config(tmp_path, data), SearchOptions(method="adl", trials=2, out=str(out), val_per_class=2,
                                                         final=False))
    assert again["trials"] == 2 and again["best_trial"] == result["best_trial"]


@needs_fmnist
def test_sigkilled_search_resumes_and_retries_the_killed_trial(tmp_path, data):
    out = tmp_path / "k"
    cfg = config(tmp_path, data, epochs=3)
    cmd = [sys.executable, "-W", "ignore", "-m", "camloc.cli", "search", "--config", cfg, "--method", "cam",
           "--trials", "1", "--out", str(out), "--val-per-class", "2", "--heartbeat", "1", "--no-final"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = out / "trials" / "0000" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert last.exists()
    time.sleep(3.5)  # three missed heartbeats: the trial counts as killed
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(retrying trial 0)" in done.stderr and "resuming" in done.stderr
    trials = json.loads((out / "trials.json").read_text())
    assert [t["state"] for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1]["params"] == trials[0]["params"]
    rows = (out / "trials" / "0000" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # the killed run's epochs plus the resumed ones, once each


@needs_fmnist
def test_diverged_trial_is_recorded_failed_and_the_search_goes_on(tmp_path, data, monkeypatch):
    from camloc.train import search as search_mod

    real = search_mod._Search._train
    calls = []

    def first_diverges(self, run_dir, lr, args, seed):
        rows = real(self, run_dir, lr, args, seed)
        calls.append(run_dir.name)
        if len(calls) == 1:
            rows = [{**r, "train_loss": float("nan")} for r in rows]
        return rows

    monkeypatch.setattr(search_mod._Search, "_train", first_diverges)
    out = tmp_path / "n"
    result = search(config(tmp_path, data), SearchOptions(method="cam", trials=2, out=str(out), val_per_class=2,
                                                          final=False))
    trials = json.loads((out / "trials.json").read_text())
    assert [t["state"] for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0]["user_attrs"]["diverged"] is True and result["failed"] == 1 and result["trials"] == 1


def test_validation_without_boxes_or_too_few_per_class_is_refused_before_training(tmp_path):
    from camloc import testing as fixtures

    fixtures.write_folder_fixture(tmp_path / "d", "train", classes=("a", "b"), per_class=2)
    fixtures.write_folder_fixture(tmp_path / "d", "val", classes=("a", "b"), per_class=2)
    path = tmp_path / "c.toml"
    path.write_text(f'data = "{tmp_path / "d"}"\nmodel = "alexnet_gap"\nworkers = 0\n')
    with pytest.raises(ValueError, match=r"validation split 'val' has 4 of 4 images without boxes \(first: "):
        search(str(path), SearchOptions(method="cam", trials=1, out=str(tmp_path / "o")))
    assert not (tmp_path / "o" / "trials").exists()
    from camloc.data.base import Sample, Split

    split = Split([Sample(f"{i}", f"{i}.png", i % 2, boxes=[[0, 0, 3, 3]]) for i in range(5)], ["x", "y"], "val")
    assert [s.image_id for s in box_subset(split, 2, "d").samples] == ["0", "2", "1", "3"]
    with pytest.raises(ValueError, match=r"has 2 box-labelled images of class 'y', fewer than val_per_class=3"):
        box_subset(split, 3, "d")
    with pytest.raises(ConfigError, match=r"unknown wsol_method 'cutmx' \(did you mean 'cutmix'"):
        search(str(path), SearchOptions(method="cutmx"))


def test_fewshot_ridge_recovers_a_linear_box_map_and_iou_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    w = rng.normal(size=(5, 4))
    w_fit, b_fit, lam = fit_ridge(x, x @ w + 0.25)
    np.testing.assert_allclose(x @ w_fit + b_fit, x @ w + 0.25, atol=1e-2)
    assert lam == 1e-3  # the least ridge wins on noiseless data
    assert box_iou(np.array([0, 0, 2, 2.0]), np.array([1, 1, 3, 3.0])) == pytest.approx(1 / 7)
    assert box_iou(np.array([0, 0, 1, 1.0]), np.array([2, 2, 3, 3.0])) == 0.0


def test_search_on_the_cvpr_2020_metadata_layout_fixture(tmp_path):
    """The layout CUB-200-2011, ILSVRC and OpenImages take in the benchmark (docs/wsol.md): a
    2-trial ACoL search on its fixture, with a tiny net."""
    from camloc import testing as fixtures
    from train_fixture import TINY_NET

    for split in ("train", "val", "test"):
        fixtures.write_wsol_fixture(tmp_path / "meta", split, num_classes=3, per_class=2)
    cfg = {**TINY_NET, "data": str(tmp_path / "meta"), "format": "wsol", "epochs": 1, "batch_size": 2}
    from camloc.train.config import TrainConfig

    out = tmp_path / "s"
    result = search(TrainConfig(**cfg).check(), SearchOptions(method="acol", trials=2, out=str(out), val_per_class=2))
    assert result["trials"] == 2 and result["val_images"] == 6 and result["test"]["num_images"] == 6
    assert 0 <= result["test"]["MaxBoxAccV2"] <= 100 and result["test"]["fewshot"]["train_images"] == 6
    assert json.loads((out / "trials" / "0001" / "config.json").read_text())["wsol_method"] == "acol"
