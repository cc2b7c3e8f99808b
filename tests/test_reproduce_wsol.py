"""``make reproduce-wsol --quick``: all six methods searched, retrained and tested on a tiny
clean Fashion-MNIST localization set; the report holds every figure and the few-shot row."""

from __future__ import annotations

import json
import os

import pytest

from camloc.data.fashion_mnist import FASHION_DIR
from camloc.experiments.reproduce.wsol import METHODS, main


@pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz")),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_quick_reproduction_reports_six_methods_and_the_fewshot_baseline(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--quick"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    res = report["results"]["clean"]
    assert list(res["methods"]) == list(METHODS)
    for method, r in res["methods"].items():
        s = r["summary"]
        v2 = [s[f"MaxBoxAccV2@{d}"][0] for d in (30, 50, 70)]
        assert v2[0] >= v2[1] >= v2[2] and s["MaxBoxAccV2"][0] == pytest.approx(sum(v2) / 3)
        assert 0 <= s["gt_known"][0] <= 100 and 0 <= s["cls_error"][0] <= 100
        assert 0 < s["PxAP"][0] <= 100  # the benchmark has masks
        assert r["beats_cam"] is None  # one seed: no spread, no verdict
        trials = json.loads((tmp_path / "clean" / method / "search" / "trials.json").read_text())
        assert len(trials) == 1 and trials[0]["user_attrs"]["run_dir"].endswith("trials/0000")
    assert 0 <= res["fewshot"]["BoxAcc@50"][0] <= 100
    text = (tmp_path / "report.md").read_text()
    assert "| spg |" in text and "few-shot box regressor" in text and "n/a (1 seed)" in text and "| PxAP |" in text
    # done work is kept: a second call runs nothing new and reports the same figures
    first = res["methods"]["has"]["summary"]
    assert main(["--out", str(tmp_path), "--quick", "--methods", "cam,has"]) == 0
    again = json.loads((tmp_path / "report.json").read_text())["results"]["clean"]["methods"]
    assert again["has"]["summary"] == first
    assert main(["--out", str(tmp_path), "--quick", "--methods", "cam,gradcam"]) == 1
    assert "unknown method 'gradcam'" in capsys.readouterr().err
