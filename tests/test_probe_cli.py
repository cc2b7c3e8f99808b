"""``camloc probe fit|eval`` and ``camloc localize --probe`` end to end on a tiny backbone."""

from __future__ import annotations

import os

import pytest
from probe_nets import color_split

from camloc.cli import main
from camloc.provenance import read_results
from camloc.probe import load_probe


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``root/train/<color>/*.png`` and ``root/test/<color>/*.png``: the folder layout."""
    root = str(tmp_path_factory.mktemp("colors"))
    color_split(root, 6, seed=0, name="train")
    color_split(root, 3, seed=1, name="test")
    return root


def test_fit_then_eval_then_localize(data, tmp_path, capsys):
    out, cache = tmp_path / "p.pt", tmp_path / "cache"
    rc = main(["probe", "fit", "--backbone", "test_colornet", "--data", data, "--test-split", "test",
               "--out", str(out), "--cache", str(cache)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "backbone test_colornet: 4 features; 3 classes; 15 training + 3 validation images" in text
    assert "chosen C=0.001" in text and "test: accuracy 100.00 % on 9 images" in text
    probe = load_probe(out)
    assert probe.class_names == ["blue", "green", "red"]  # the folder reader sorts class folders
    assert probe.info["test_accuracy"] == 1.0 and probe.info["data"] == os.path.abspath(data)
    n_cached = len(os.listdir(cache))
    assert n_cached == 2  # train and test features

    # a second fit with other settings reads the cached features
    rc = main(["probe", "fit", "--backbone", "test_colornet", "--data", data, "--classifier", "logreg",
               "--C", "0.5,2", "--scaling", "channel", "--out", str(tmp_path / "q.pt"), "--cache", str(cache)])
    text = capsys.readouterr().out
    assert rc == 0 and "C=0.5: 100.0 %, C=2: 100.0 %; chosen C=0.5" in text
    assert len(os.listdir(cache)) == n_cached
    q = load_probe(tmp_path / "q.pt")
    assert (q.classifier, q.C, q.info["scaling"]) == ("logreg", 0.5, "channel")

    rc = main(["probe", "eval", "--probe", str(out), "--data", data, "--split", "test", "--no-cache"])
    assert rc == 0 and "test: accuracy 100.00 % on 9 images (3 classes, skipped 0)" in capsys.readouterr().out

    # localize with the probe: the probe's classes, boxes on the colored rectangles
    image = os.path.join(data, "test", "green", "001.png")
    rc = main(["localize", "--model", "test_colornet", "--probe", str(out), image, "--out", str(tmp_path / "loc"),
               "--no-figures", "--topk", "1", "--resize", "squash"])  # squash: the geometry of _pooled
    assert rc == 0
    rec = read_results(tmp_path / "loc" / "results.jsonl")[1][0]
    top = rec["predictions"][0]
    assert top["label"] == "green" and top["class_index"] == 1
    assert top["logit"] == pytest.approx(max(probe.decision(_pooled(image))[0]), abs=1e-4)


def _pooled(path):
    import camloc

    net = camloc.load_model("test_colornet")
    f, _ = camloc.extract(net, net.preprocess([path]))
    return f.mean((-2, -1)).detach().numpy()


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_cli_errors_are_one_line(data, tmp_path, capsys):
    probe = tmp_path / "p.pt"
    assert main(["probe", "fit", "--backbone", "test_colornet", "--data", data, "--out", str(probe),
                 "--no-cache"]) == 0
    capsys.readouterr()
    # a probe file for another backbone
    assert main(["localize", "--model", "test_randomnet", "--probe", str(probe), data, "--out",
                 str(tmp_path / "o"), "--no-figures"]) == 1
    assert _error(capsys) == (f"camloc localize: error: {probe}: fit on backbone 'test_colornet', "
                              "not on 'test_randomnet'")
    assert main(["probe", "eval", "--probe", str(probe), "--backbone", "test_randomnet", "--data", data,
                 "--no-cache"]) == 1
    assert "fit on backbone 'test_colornet', not on 'test_randomnet'" in _error(capsys)
    # not a probe file
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    assert main(["probe", "eval", "--probe", str(junk), "--data", data]) == 1
    assert _error(capsys).startswith(f"camloc probe: error: {junk}: not a probe file (")
    # a missing dataset
    assert main(["probe", "fit", "--backbone", "test_colornet", "--data", str(tmp_path / "nowhere")]) == 1
    assert _error(capsys) == f"camloc probe: error: {tmp_path / 'nowhere'}: no such folder"
    # an empty class folder
    root = tmp_path / "empty"
    color_split(str(root), 2, classes=("red", "green"), name="train")
    os.makedirs(root / "train" / "violet")
    assert main(["probe", "fit", "--backbone", "test_colornet", "--data", str(root), "--no-cache"]) == 1
    assert _error(capsys) == "camloc probe: error: train: class 'violet' has no images"
    # a class in the probe that the data lacks
    assert main(["probe", "eval", "--probe", str(probe), "--data", str(root), "--split", "train",
                 "--no-cache"]) == 1
    assert _error(capsys) == "camloc probe: error: train: the probe's class 'blue' is not among the data's 3 classes"
    # a corrupt feature cache: one warning line, rebuilt, same result
    cache = tmp_path / "cache"
    args = ["probe", "fit", "--backbone", "test_colornet", "--data", data, "--out", str(tmp_path / "r.pt"),
            "--cache", str(cache)]
    assert main(args) == 0
    for name in os.listdir(cache):
        (cache / name).write_bytes(b"garbage")
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"camloc probe: warning: {cache}")
    assert err[0].endswith("corrupt feature cache (not an npz archive); recomputing it")
    # bad option values
    assert main(["probe", "fit", "--data", data, "--val-fraction", "1.5"]) == 1
    assert _error(capsys) == "camloc probe: error: --val-fraction must be in (0, 1), got 1.5"
    with pytest.raises(SystemExit):
        main(["probe", "fit", "--data", data, "--C", "0,-1"])
