"""``benchmarks.bench_pipeline --quick``: the forward-only reference built outside camloc, the
stage shares and the batch sizes, on a few photos (the figures themselves are not asserted)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

bench = pytest.importorskip("benchmarks.bench_pipeline")
pytest.importorskip("onnxruntime")


def test_quick_run_reports_the_reference_and_every_stage():
    if not bench.DATA.is_dir():
        pytest.skip("../shared/data/imagenet-samples is not there")
    text = bench.main(quick=True)
    ref = float(re.search(r"Lite0 at 224x224 \*\*(\d+)\*\*", text).group(1))
    assert ref > 0
    rows = [line for line in text.splitlines() if line.startswith("| Lite0 at 224 |")]
    assert len(rows) == 2  # the shared photos and the noisy JPEGs
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        shares = [float(c.rstrip("%")) for c in cells[2:7]]
        assert abs(sum(shares) - 100) <= 3 and all(v >= 0 for v in shares)  # five shares of one whole
        assert shares[1] > 0  # the forward pass took time
        assert float(cells[8]) >= 1  # a mean batch size
    before, after = (float(v) for v in re.search(r"shared photos \(Lite0, aspect 224\): ([\d.]+) images with the former "
                                                 r"window of 4 batches, ([\d.]+)", text).groups())
    assert after >= before >= 1


def test_noisy_jpegs_are_distinct_and_of_the_size_asked(tmp_path):
    from PIL import Image

    if not bench.DATA.is_dir():
        pytest.skip("../shared/data/imagenet-samples is not there")
    photos = sorted(str(p) for p in bench.DATA.iterdir())[:2]
    paths = bench.noisy_12mp(photos, 3, tmp_path, (64, 48))
    assert len({Path(p).read_bytes() for p in paths}) == 3  # the third reuses a photo with other noise
    assert all(Image.open(p).size in ((64, 48), (48, 64)) for p in paths)


def test_step_comparison_counts_shapes_pixels_and_both_halves():
    if not bench.DATA.is_dir() or not bench.LABELS.is_file():
        pytest.skip("../shared/data/imagenet-samples is not there")
    import camloc

    cmp = bench.step_comparison(camloc.load_model("efficientnet_lite0"), rounds=2, limit=8)
    rounded, stepped = (cmp["out"][k] for k in cmp["geos"])
    assert stepped["shapes"] <= rounded["shapes"] and stepped["pixels"] < rounded["pixels"]  # never longer, here shorter
    assert rounded["pixels"] >= 1 and len(rounded["correct"]) == 8 and len(cmp["diffs"]) == 2
    assert all(v > 0 for v in rounded["cpu_ms"] + stepped["cpu_ms"]) and len(rounded["cpu_ms"]) == 2
    text = "\n".join(bench.step_lines(cmp))
    assert "| rounded to 32 |" in text and "| down to a multiple of 64 |" in text and "half 2" in text
