"""``reproduce_wsol --rescore``: a quick run made without masks (as an earlier camloc made it)
gains PxAP from its checkpoints without retraining, equal to what a direct evaluation gives."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from camloc.data.fashion_mnist import FASHION_DIR


@pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz")),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_rescore_adds_pxap_to_a_finished_quick_run(tmp_path, monkeypatch, capsys):
    import camloc.experiments.fashion_loc as fashion_loc
    from camloc.data.wsol import read_wsol
    from camloc.experiments.reproduce.wsol import QUICK, main
    from camloc.train.search import evaluate_run

    # The run as an earlier camloc made it: a benchmark without masks, test.json without PxAP.
    data = tmp_path / "data" / "clean"
    fashion_loc.write_benchmark(data, "clean", {"train": QUICK.train, "val": QUICK.val, "test": QUICK.test}, seed=0,
                                progress=False, masks=False)
    with monkeypatch.context() as m:
        m.setattr(fashion_loc, "has_masks", lambda folder: True)  # the earlier camloc never added masks
        assert main(["--out", str(tmp_path), "--quick", "--methods", "cam"]) == 0
    seed0 = tmp_path / "clean" / "cam" / "seed0"
    before = json.loads((seed0 / "test.json").read_text())["metrics"]
    assert "PxAP" not in before and "PxAP" not in (tmp_path / "report.md").read_text()
    report = json.loads((tmp_path / "report.json").read_text())
    assert "PxAP" not in report["results"]["clean"]["methods"]["cam"]["summary"]

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    kept = {p: digest(p) for p in tmp_path.rglob("*.pt")}
    assert "training fashion_gap" in capsys.readouterr().err  # what a training run says
    assert main(["--out", str(tmp_path), "--rescore"]) == 0
    assert "training fashion_gap" not in capsys.readouterr().err  # nothing retrained
    assert {p: digest(p) for p in tmp_path.rglob("*.pt")} == kept  # checkpoints untouched, none added

    after = json.loads((seed0 / "test.json").read_text())["metrics"]
    assert {k: v for k, v in after.items() if k != "PxAP"} == before  # the other figures are kept
    direct, _ = evaluate_run(seed0 / "last.pt", read_wsol(data / "test"))
    assert after["PxAP"] == direct["PxAP"] and 0 < direct["PxAP"] <= 100
    assert direct["MaxBoxAccV2"] == before["MaxBoxAccV2"]  # the checkpoint tested is the one rescored
    again = json.loads((tmp_path / "report.json").read_text())
    cam = again["results"]["clean"]["methods"]["cam"]
    assert cam["summary"]["PxAP"] == [direct["PxAP"], 0.0]
    assert cam["summary"]["MaxBoxAccV2"] == report["results"]["clean"]["methods"]["cam"]["summary"]["MaxBoxAccV2"]
    assert again["plan"] == report["plan"] and again["minutes"] == report["minutes"]
    assert cam["minutes"] == report["results"]["clean"]["methods"]["cam"]["minutes"]
    # the report's floor: the PxAP of a constant map on the test masks
    import numpy as np

    from camloc.metrics.pxap import PxAPEvaluator, ground_truth

    ev = PxAPEvaluator()
    gts = [ground_truth(s.masks, s.ignore) for s in read_wsol(data / "test").samples]
    ev.accumulate([np.full((224, 224), 0.5, np.float32)] * len(gts), gts)
    assert again["results"]["clean"]["pxap_constant_map"] == pytest.approx(ev.compute()["PxAP"])
    assert report["results"]["clean"]["pxap_constant_map"] is None  # the run without masks had none
    text = (tmp_path / "report.md").read_text()
    assert "| PxAP |" in text and f"| {direct['PxAP']:.1f} ± 0.0 |" in text
    # a second rescore finds nothing missing and reports the same
    assert main(["--out", str(tmp_path), "--rescore"]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["results"] == again["results"]
    assert main(["--out", str(tmp_path / "nothing"), "--rescore"]) == 1
    assert "no benchmark under data/ to rescore" in capsys.readouterr().err


def test_rescore_refuses_a_benchmark_that_is_not_the_regenerated_one(tmp_path, capsys):
    import cv2

    from camloc.data.wsol import read_wsol
    from camloc.experiments.fashion_loc import has_masks, write_benchmark
    from camloc.experiments.reproduce.wsol import main
    from test_fashion_loc_masks import _fake_source

    src = _fake_source(tmp_path / "src")
    data = tmp_path / "out" / "data" / "clean"
    write_benchmark(data, "clean", {"train": 4, "val": 2, "test": 3}, seed=0, root=src, progress=False, masks=False)
    path = read_wsol(data / "val").samples[0].path
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(path, 255 - image)
    assert main(["--out", str(tmp_path / "out"), "--rescore"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"reproduce-wsol: error: {path}: differs from the regenerated image (regenerated with seed 0, " \
                      "regime 'clean'; no mask written)"
    assert not has_masks(data) and not any(data.rglob("masks.txt"))
