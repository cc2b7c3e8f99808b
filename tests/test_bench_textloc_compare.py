"""``benchmarks/bench_textloc.py --compare OUT`` (quick): the text benchmark's test words written in
the WSOL metadata layout and the probe folded into the backbone's head as a checkpoint, so that
``camloc compare`` scores the probe's ``text`` maps against the words."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import QUICK_ENV  # noqa: E402


@pytest.mark.slow
def test_compare_mode_writes_the_words_and_the_probe_net_and_compares(tmp_path, monkeypatch):
    import camloc
    from benchmarks import bench_textloc
    from camloc.data import open_dataset
    from camloc.experiments.textloc import read_textloc
    from camloc.extract import pool
    from camloc.methods import get_method

    monkeypatch.setenv(QUICK_ENV, "1")
    out = tmp_path / "text"
    assert bench_textloc.main_compare(str(out), ["--methods", "cam,random", "--steps", "2", "--road-images", "0",
                                                 "--sanity-images", "0", "--examples", "1", "--device", "cpu"]) == 0
    # the metadata: the test images with a word, their word boxes, label "text"
    words = [s for s in read_textloc(out / "data", "test").samples if s.boxes]
    split = open_dataset(str(out / "data"), "test", image_root=str(out / "data"))
    assert len(split.samples) == len(words) == 4 and split.classes == ["no_text", "text"]
    for s, w in zip(split.samples, words):
        assert s.path == w.path and s.boxes == w.boxes and s.label == 1
    # the checkpoint: the backbone with the probe as its head gives the probe's scores
    net = camloc.load_model(str(out / "textnet.pt"))
    assert net.class_names == ["no_text", "text"] and net.preprocessing.shape == (224, 224)
    x = net.preprocess([w.path for w in words])
    probe = net.classifier
    backbone = camloc.load_model("efficientnet_lite0")
    backbone.preprocessing = net.preprocessing
    with torch.no_grad():
        features = pool(backbone.module.extract_features(x), "avg")
        torch.testing.assert_close(net(x), probe(features), atol=1e-4, rtol=1e-4)
    # ... and its CAM of "text" is the probe's CAM on the backbone (the probe attached)
    backbone.probe = probe
    cls = torch.ones(len(x), 1, dtype=torch.long)
    torch.testing.assert_close(get_method("cam")(net, x, cls), get_method("cam")(backbone, x, cls), atol=1e-4, rtol=1e-4)
    rows = {r["method"]: r for r in json.loads((out / "compare" / "compare.json").read_text())["rows"]}
    assert rows["cam"]["num_images"] == rows["random"]["num_images"] == 4
    assert 0 <= rows["cam"]["MaxBoxAccV2"] <= 100 and 0 <= rows["cam"]["deletion_auc"] <= 1
