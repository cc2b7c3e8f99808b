"""Training from image labels: the loss goes down, outputs are complete, every dataset format
trains, resume after a kill ends with the same weights, the CLI runs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F

import camloc
from camloc.cli import main as cli_main
from camloc import testing as fixtures
from camloc.data.base import Split
from camloc.data.loader import Normalize, SplitDataset, eval_transform
from camloc.train import METRIC_COLUMNS, build_net, train
from camloc.provenance import read_results
from camloc.train.config import TrainConfig
from train_fixture import TINY_NET, make_images


class NoBoxes(list):
    """A boxes list that fails the test if anything reads it."""

    def _fail(self, *args):
        raise AssertionError("training read a box")

    __iter__ = __len__ = __getitem__ = __bool__ = _fail


def mean_loss(net: camloc.CamNet, split: Split) -> float:
    ds = SplitDataset(split, eval_transform(net.preprocessing))
    x = Normalize(net.preprocessing)(torch.stack([ds[i][0] for i in range(len(ds))]))
    torch.testing.assert_close(x[0], net.preprocess([split.samples[0].path])[0])  # = what localization sees
    y = torch.tensor([s.label for s in split.samples])
    net.module.eval()
    with torch.no_grad():
        return float(F.cross_entropy(net.module(x), y))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("colours"), n_per_class=8)


def test_a_few_steps_lower_the_loss_and_write_a_complete_run(images, tmp_path):
    for s in images.samples:
        s.boxes = NoBoxes()  # labels only: a box read would fail
    cfg = {**TINY_NET, "out": str(tmp_path / "run"), "epochs": 4}
    before = mean_loss(build_net(TrainConfig(**{**cfg, "model_args": {}}), images.classes), images)
    result = train(cfg, train_split=images)
    assert len(result.metrics) == 4 and [r["epoch"] for r in result.metrics] == [1, 2, 3, 4]
    assert all(r["images"] == 16 and r["skipped"] == 0 for r in result.metrics)
    net = camloc.load_model(str(result.last))  # a camloc checkpoint: weights, architecture, classes
    after = mean_loss(net, images)
    assert after < before - 0.1, (before, after)
    assert net.name == "test_tiny_gap" and net.class_names == ["c0", "c1"]
    assert net.preprocessing.shape == (32, 32)
    assert camloc.check_exact(net).exact
    with open(result.run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == METRIC_COLUMNS and len(rows) == 4
    assert float(rows[-1]["train_loss"]) == pytest.approx(result.metrics[-1]["train_loss"])
    assert rows[0]["val_top1_error"] == ""  # no validation split in this run
    assert json.loads((result.run_dir / "config.json").read_text())["model"] == "test_tiny_gap"
    best = torch.load(result.best, weights_only=True)
    losses = [r["train_loss"] for r in result.metrics]
    assert best["epoch"] == 1 + losses.index(min(losses))


def test_validation_errors_and_best_checkpoint(images, tmp_path):
    result = train({**TINY_NET, "out": str(tmp_path / "run"), "epochs": 5}, train_split=images, val_split=images)
    errs = [r["val_top1_error"] for r in result.metrics]
    assert all(0 <= e <= 100 for e in errs) and errs[-1] < 50
    counts = [(r["val_top1_error"], len(images.samples)) for r in result.metrics]
    counts += [(r["train_top1_error"], r["images"]) for r in result.metrics]
    for e, n in counts:  # percents of n images (k / n as a fraction would give k / 100 here)
        assert abs(e * n / 100 - round(e * n / 100)) < 1e-6, counts
    assert all(r["val_top5_error"] == 0.0 for r in result.metrics)  # 2 classes: the top-5 always holds the label
    best = torch.load(result.best, weights_only=True)
    assert best["metrics"]["val_top1_error"] == min(errs)
    keys = [(r["val_top1_error"], r["val_loss"]) for r in result.metrics]  # ties go to the lower loss
    assert best["epoch"] == 1 + keys.index(min(keys)) == result.best_epoch


def test_new_layer_lr_multiplier_makes_two_groups(images, tmp_path):
    from camloc.train import param_groups

    net = build_net(TrainConfig(model="test_tiny_gap"), images.classes)
    groups = param_groups(net.module, TrainConfig(lr=0.01, new_layer_lr_mult=10))
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.1)]
    new = {id(p) for p in groups[1]["params"]}
    assert new == {id(p) for p in [*net.module.extra.parameters(), *net.module.fc.parameters()]}


@pytest.mark.parametrize("fmt", ["folder", "wsol", "cub", "ilsvrc"])
def test_every_dataset_format_trains(fmt, tmp_path):
    root = tmp_path / "data"
    if fmt == "folder":
        fixtures.write_folder_fixture(root, "train", per_class=2)
        fixtures.write_folder_fixture(root, "val", per_class=1)
        n_train, n_val = 6, 3
    elif fmt == "wsol":
        fixtures.write_wsol_fixture(root, "train", num_classes=2, per_class=3)
        fixtures.write_wsol_fixture(root, "val", num_classes=2, per_class=1)
        n_train, n_val = 6, 2
    elif fmt == "cub":
        fx = fixtures.write_cub_fixture(root, "train", num_classes=2, per_class=4)
        n_train, n_val = len(fx.extra["splits"]["train"]), len(fx.extra["splits"]["test"])
        root = fx.root
    else:
        fx = fixtures.write_ilsvrc_fixture(root, "train")
        n_train, n_val = len(fx.extra["splits"]["train"]), len(fx.extra["splits"]["val"])
    result = train({**TINY_NET, "val_split": "val", "data": str(root), "out": str(tmp_path / "run"), "epochs": 1})
    row = result.metrics[0]
    assert row["images"] == n_train and row["skipped"] == 0
    assert row["val_top1_error"] is not None
    wrong = row["val_top1_error"] / 100 * n_val  # a percent of the whole validation split: a count of images
    assert abs(wrong - round(wrong)) < 1e-6
    net = camloc.load_model(str(result.best))
    assert len(net.class_names) == net.num_classes >= 2


def test_resume_after_a_kill_ends_with_the_same_weights(images, tmp_path, monkeypatch):
    cfg = {**TINY_NET, "epochs": 3, "model_args": {"dropout": 0.3}}  # dropout: the random state must resume too
    whole = train({**cfg, "out": str(tmp_path / "whole")}, train_split=images, val_split=images)

    calls = {"n": 0}
    original = SplitDataset.__getitem__

    def dies_in_epoch_2(self, index):
        calls["n"] += 1
        if calls["n"] > 16 + 16 + 6:  # epoch 1 (16 train + 16 val items), then 6 items into epoch 2
            raise KeyboardInterrupt
        return original(self, index)

    monkeypatch.setattr(SplitDataset, "__getitem__", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train({**cfg, "out": str(tmp_path / "killed")}, train_split=images, val_split=images)
    monkeypatch.setattr(SplitDataset, "__getitem__", original)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["train_state"]["epoch"] == 1

    resumed = train(resume=tmp_path / "killed", train_split=images, val_split=images)
    a = torch.load(whole.last, weights_only=True)
    b = torch.load(resumed.last, weights_only=True)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    momentum = lambda d: [s["momentum_buffer"] for s in d["train_state"]["optimizer"]["state"].values()]  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(momentum(a), momentum(b)))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(whole.metrics)


def test_resume_can_extend_a_finished_run(images, tmp_path):
    run = tmp_path / "run"
    train({**TINY_NET, "out": str(run), "epochs": 1}, train_split=images)
    more = train(resume=run, overrides=["epochs=2"], train_split=images)
    assert [r["epoch"] for r in more.metrics] == [1, 2]
    assert json.loads((run / "config.json").read_text())["epochs"] == 1  # the original config stays


def test_cli_trains_resumes_and_checkpoint_localizes(tmp_path, capsys):
    fx = fixtures.write_folder_fixture(tmp_path / "data", "train", per_class=2)
    fixtures.write_folder_fixture(tmp_path / "data", "val", per_class=1)
    config = tmp_path / "run.toml"
    config.write_text(f'data = "{tmp_path / "data"}"\nmodel = "alexnet_gap"\nepochs = 1\nbatch_size = 3\n'
                      f'resize = 72\ncrop = 64\nworkers = 0\nprogress = false\nout = "{tmp_path / "run"}"\n'
                      "[model_args]\nwidth = 8\n")
    assert cli_main(["train", "--config", str(config), "lr=0.01"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'run'}: 1 epochs; best {tmp_path / 'run' / 'best.pt'}" in out
    assert cli_main(["train", "--resume", str(tmp_path / "run"), "epochs=2"]) == 0
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    net = camloc.load_model(str(tmp_path / "run" / "last.pt"))
    assert net.name == "alexnet_gap" and net.class_names == fx.split.classes
    assert net.arch_kwargs["width"] == 8
    out = camloc.cam(net, net.preprocess([fx.split.samples[0].path]), topk=2)
    assert out.maps.shape == (1, 2, 3, 3)  # AlexNet-GAP at 64x64: 3x3 maps
    loc = tmp_path / "loc"
    assert cli_main(["localize", "--model", str(tmp_path / "run" / "best.pt"), str(tmp_path / "data" / "val"),
                     "--out", str(loc), "--topk", "2", "--no-figures"]) == 0
    records = read_results(loc / "results.jsonl")[1]
    assert len(records) == 3
    assert all({p["label"] for p in r["predictions"]} <= set(fx.split.classes) for r in records)
