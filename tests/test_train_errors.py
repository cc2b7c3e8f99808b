"""Bad input to training: each case is one line naming the file, line or key; missing and
unreadable training images are skipped with a count."""

from __future__ import annotations

import os

import pytest

from camloc.cli import main as cli_main
from camloc.data.base import Sample, Split
from camloc.models.checkpoint import save_checkpoint
from camloc.train import build_net, train
from camloc.errors import ConfigError
from camloc.train.config import TrainConfig, load_config
from train_fixture import TINY_NET, make_images


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("colours"), n_per_class=4)


def one_line_cli_error(capsys, argv: list[str]) -> str:
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("camloc train: error: ") and "\n" not in err, err
    return err


def test_missing_and_unreadable_images_are_skipped_with_a_count(images, tmp_path, capsys):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    bad = [Sample("gone.png", str(tmp_path / "gone.png"), 0), Sample("junk.png", str(junk), 1)]
    split = Split(images.samples + bad, images.classes, "train")
    result = train({**TINY_NET, "out": str(tmp_path / "run"), "epochs": 2}, train_split=split)
    assert [r["images"] for r in result.metrics] == [8, 8]
    assert [r["skipped"] for r in result.metrics] == [2, 2]
    assert result.skipped == 4
    err = capsys.readouterr().err
    assert f"skipped: {tmp_path / 'gone.png'}: no such file" in err
    assert f"skipped: {junk}: not an image" in err
    assert err.count("skipped: ") == 2  # each reason once per run


def test_no_readable_training_image_is_an_error(tmp_path):
    split = Split([Sample("a.png", str(tmp_path / "a.png"), 0)], ["x"], "train")
    with pytest.raises(RuntimeError, match=r"no readable training image in split 'train' \(1 skipped; first: .*a\.png: no such file\)"):
        train({**TINY_NET, "out": str(tmp_path / "run"), "epochs": 1}, train_split=split)


def test_unknown_class_id_names_the_image(images, tmp_path):
    bad = Sample("x.png", images.samples[0].path, 7)
    with pytest.raises(ValueError, match=r"0\.png: class id 7 is not one of the 2 classes \(0\.\.1\)"):
        train({**TINY_NET, "out": str(tmp_path / "run")}, train_split=Split(images.samples + [bad], images.classes, "train"))


def test_unknown_class_id_in_dataset_metadata_is_reported_by_the_reader(tmp_path, capsys):
    from camloc import testing as fixtures

    fx = fixtures.write_wsol_fixture(tmp_path / "data", "train", num_classes=2, per_class=2, class_names=True)
    labels = os.path.join(fx.metadata_dir, "class_labels.txt")
    lines = open(labels).read().splitlines()
    lines[0] = lines[0].rsplit(",", 1)[0] + ",9"
    open(labels, "w").write("\n".join(lines) + "\n")
    result = train({**TINY_NET, "data": str(tmp_path / "data"), "out": str(tmp_path / "run"), "epochs": 1})
    assert result.metrics[0]["images"] == 3  # the reader left that image out ...
    assert "class_labels.txt: class index 9" in capsys.readouterr().err  # ... and said why


def test_empty_split_is_an_error(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"split 'train' holds no images"):
        train({**TINY_NET, "out": str(tmp_path / "run")}, train_split=Split([], ["a"], "train"))
    (tmp_path / "data" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "cfg.toml").write_text(f'data = "{tmp_path / "data"}"\nval_split = ""\n')
    err = one_line_cli_error(capsys, ["train", "--config", str(tmp_path / "cfg.toml")])
    assert "no images" in err and str(tmp_path / "data") in err


def test_unknown_config_key_names_file_line_and_key(tmp_path, capsys):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('data = "x"\n\nlrr = 0.1\n')
    with pytest.raises(ConfigError, match=r"cfg\.toml:3: unknown config key 'lrr' \(did you mean 'lr'\?\)"):
        load_config(cfg)
    err = one_line_cli_error(capsys, ["train", "--config", str(cfg)])
    assert "cfg.toml:3: unknown config key 'lrr'" in err


def test_bad_values_and_overrides(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('data = "x"\nepochs = "ten"\n')
    with pytest.raises(ConfigError, match=r"cfg\.toml:2: config key 'epochs' must be an integer, got 'ten'"):
        load_config(cfg)
    cfg.write_text('data = "x"\n')
    with pytest.raises(ConfigError, match=r"override 'epoch=3': unknown config key 'epoch' \(did you mean 'epochs'\?\)"):
        load_config(cfg, ["epoch=3"])
    with pytest.raises(ConfigError, match=r"override 'epochs': expected key=value"):
        load_config(cfg, ["epochs"])
    with pytest.raises(ConfigError, match=r"config key 'lr_schedule' must be 'step', 'cosine' or 'constant'"):
        load_config(cfg, ["lr_schedule=poly"])
    assert load_config(cfg, ["lr=1e-2", "flip=false", "out=runs/x y", "model_args.width=8"]) == TrainConfig(
        data="x", lr=0.01, flip=False, out="runs/x y", model_args={"width": 8})
    cfg.write_text("data = [\n")
    with pytest.raises(ConfigError, match=r"cfg\.toml: not valid TOML"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r"nothing\.toml: cannot read config"):
        load_config(tmp_path / "nothing.toml")


def test_unknown_model_option_names_its_line(tmp_path, images):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('model = "alexnet_gap"\n[model_args]\nwidht = 8\n')
    with pytest.raises(ConfigError, match=r"cfg\.toml:3: model 'alexnet_gap' has no option 'widht' \(options: .*width"):
        train(cfg, train_split=images)
    with pytest.raises(ConfigError, match=r"model 'alexnet_gap' cannot be built with width='8' \("):
        train({**TINY_NET, "model": "alexnet_gap", "model_args": {"width": "8"}}, train_split=images)
    with pytest.raises(ConfigError, match=r"unknown model 'alexnet_gapp'"):
        train({**TINY_NET, "model": "alexnet_gapp"}, train_split=images)


def test_checkpoint_of_another_architecture(images, tmp_path, capsys):
    other = build_net(TrainConfig(model="alexnet_gap", model_args={"width": 4}), images.classes)
    path = tmp_path / "alexnet.pt"
    save_checkpoint(other, path)
    with pytest.raises(ConfigError, match=r"alexnet\.pt: checkpoint is architecture 'alexnet_gap', not 'test_tiny_gap'"):
        train({**TINY_NET, "init_from": str(path), "out": str(tmp_path / "a")}, train_split=images)
    # a run whose config was edited to another model refuses its own last.pt
    run = tmp_path / "run"
    train({**TINY_NET, "out": str(run), "epochs": 1}, train_split=images)
    cfg = (run / "config.json").read_text().replace('"test_tiny_gap"', '"alexnet_gap"')
    (run / "config.json").write_text(cfg)
    with pytest.raises(ConfigError, match=r"last\.pt: checkpoint is architecture 'test_tiny_gap', the run's config says 'alexnet_gap'"):
        train(resume=run, overrides=["epochs=2"], train_split=images)


def test_init_from_a_checkpoint_of_the_same_architecture(images, tmp_path):
    first = train({**TINY_NET, "out": str(tmp_path / "a"), "epochs": 1}, train_split=images)
    net = build_net(TrainConfig(model="test_tiny_gap", init_from=str(first.last)), ["x", "y", "z"])  # 3 classes
    import torch

    saved = torch.load(first.last, weights_only=True)["state_dict"]
    assert torch.equal(net.module.state_dict()["extra.0.weight"], saved["extra.0.weight"])
    assert net.module.fc.weight.shape == (3, 16)  # the classifier of another size stays fresh


def test_resume_and_run_directory_mistakes(images, tmp_path, capsys):
    run = tmp_path / "run"
    train({**TINY_NET, "out": str(run), "epochs": 1}, train_split=images)
    with pytest.raises(ConfigError, match=r"run: already holds a run \(last\.pt\); continue it with --resume"):
        train({**TINY_NET, "out": str(run), "epochs": 1}, train_split=images)
    with pytest.raises(ConfigError, match=r"nowhere: not a run directory \(no config\.json\)"):
        train(resume=tmp_path / "nowhere")
    capsys.readouterr()
    err = one_line_cli_error(capsys, ["train"])
    assert "give exactly one of --config FILE.toml or --resume RUN_DIR" in err


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(os.path.dirname(__file__), "..", "configs"))))
def test_example_configs_are_valid(name):
    from camloc.train import check_model

    path = os.path.join(os.path.dirname(__file__), "..", "configs", name)
    cfg = load_config(path)
    check_model(cfg, path)
    assert cfg.data and cfg.out
