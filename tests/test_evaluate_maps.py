"""``camloc evaluate-maps`` end to end on WSOL-format fixtures: equality with the published
protocol on the same maps and boxes, and every bad-input case."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.protocol_reference import ReferenceBoxEvaluator  # noqa: E402
from camloc.cli import main  # noqa: E402
from camloc.testing import write_wsol_fixture  # noqa: E402
from camloc.metrics.maxboxacc import cam_thresholds, resize_box  # noqa: E402


def write_maps(fx, maps_dir: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A noisy CAM-like map per image: a bump near the first box (scaled to 224) plus noise."""
    rng = np.random.default_rng(seed)
    out = {}
    yy, xx = np.mgrid[0:224, 0:224]
    for s in fx.split.samples:
        x0, y0, x1, y1 = resize_box(s.boxes[0], s.size)
        cx, cy = (x0 + x1) / 2 + rng.normal(0, 8), (y0 + y1) / 2 + rng.normal(0, 8)
        sx, sy = max(x1 - x0, 4) / 2.5, max(y1 - y0, 4) / 2.5
        m = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)) + 0.15 * rng.random((224, 224))
        m = (m - m.min()) / (m.max() - m.min())
        path = maps_dir / (s.image_id + ".npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, m.astype(np.float32))
        out[s.image_id] = np.load(path)
    return out


@pytest.mark.parametrize("multi", [True, False])
def test_metrics_equal_the_published_protocol(tmp_path, capsys, multi):
    fx = write_wsol_fixture(tmp_path / "data", num_classes=3, per_class=3)
    maps = write_maps(fx, tmp_path / "maps")
    out = tmp_path / "out"
    args = ["evaluate-maps", "--maps", str(tmp_path / "maps"), "--metadata", fx.metadata_dir, "--out", str(out)]
    assert main(args + ([] if multi else ["--no-multi-contour"])) == 0
    printed = capsys.readouterr().out
    assert "| MaxBoxAccV2 |" in printed and "metrics.json" in printed
    got = json.loads((out / "metrics.json").read_text())
    ref = ReferenceBoxEvaluator(cam_thresholds(0.01), (30, 50, 70), multi)
    for s in fx.split.samples:  # the protocol reads float maps as float64
        ref.accumulate(maps[s.image_id].astype(np.float64), np.array([resize_box(b, s.size) for b in s.boxes]))
    expected = ref.compute()
    assert [got["MaxBoxAcc@30"], got["MaxBoxAcc@50"], got["MaxBoxAcc@70"]] == expected
    assert got["MaxBoxAccV2"] == float(np.average(expected))
    assert got["num_images"] == 9 and got["multi_contour"] is multi
    assert set(got["best_threshold"]) == {"30", "50", "70"}
    assert (out / "metrics.csv").read_text().startswith("metric,value\n")
    assert (out / "boxacc_vs_threshold.png").stat().st_size > 1000


def test_pxap_on_mask_metadata(tmp_path):
    fx = write_wsol_fixture(tmp_path / "data", masks=True, num_classes=2, per_class=2)
    maps_dir = tmp_path / "maps"
    rng = np.random.default_rng(0)
    for s in fx.split.samples:
        p = maps_dir / (s.image_id + ".npy")
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, rng.random((224, 224)))
    assert main(["evaluate-maps", "--maps", str(maps_dir), "--metadata", fx.metadata_dir, "--out", str(tmp_path / "o")]) == 0
    got = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert got["num_images"] == 4 and 0 <= got["PxAP"] <= 100
    # random scores: the AP is about the foreground fraction of the non-ignored pixels
    from camloc.metrics.pxap import ground_truth

    gts = [ground_truth(s.masks, s.ignore) for s in fx.split.samples]
    frac = sum((g == 1).sum() for g in gts) / sum((g != 255).sum() for g in gts)
    assert abs(got["PxAP"] - 100 * frac) < 5


def run_cli(args):
    return main(["evaluate-maps", *map(str, args)])


@pytest.fixture
def box_fx(tmp_path):
    fx = write_wsol_fixture(tmp_path / "data", num_classes=2, per_class=2)
    write_maps(fx, tmp_path / "maps")
    return fx, tmp_path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_map_names_the_file_and_the_line(box_fx, capsys):
    fx, tmp = box_fx
    victim = fx.split.samples[2].image_id
    os.remove(tmp / "maps" / (victim + ".npy"))
    assert run_cli(["--maps", tmp / "maps", "--metadata", fx.metadata_dir, "--out", tmp / "o"]) == 1
    line = one_error_line(capsys)
    assert f"{victim}.npy: no score map for image id" in line and "image_ids.txt:3" in line


@pytest.mark.parametrize(
    ("value", "shape", "reason"),
    [(np.nan, (224, 224), "NaN"), (np.inf, (224, 224), "inf"), (1.5, (224, 224), "[0, 1]"), (-0.5, (224, 224), "[0, 1]"),
     (0.5, (100, 224), "224x224")],
)
def test_bad_maps_name_the_file(box_fx, capsys, value, shape, reason):
    fx, tmp = box_fx
    victim = tmp / "maps" / (fx.split.samples[1].image_id + ".npy")
    m = np.zeros(shape)
    m[5, 5] = value
    np.save(victim, m)
    assert run_cli(["--maps", tmp / "maps", "--metadata", fx.metadata_dir, "--out", tmp / "o"]) == 1
    line = one_error_line(capsys)
    assert str(victim) in line and reason in line


def test_bad_box_lines_are_counted_skips_or_strict_errors(box_fx, capsys):
    fx, tmp = box_fx
    loc = Path(fx.metadata_dir) / "localization.txt"
    lines = loc.read_text().splitlines()
    first = lines[0].split(",")
    lines[0] = ",".join([first[0], "30", first[2], "10", first[4]])  # x1 < x0
    loc.write_text("\n".join(lines) + "\n")
    assert run_cli(["--maps", tmp / "maps", "--metadata", fx.metadata_dir, "--out", tmp / "o"]) == 0
    got = json.loads((tmp / "o" / "metrics.json").read_text())
    assert got["num_images"] == 3 and got["num_skipped"] == 1
    assert "localization.txt:1" in got["skipped"][0]
    capsys.readouterr()
    assert run_cli(["--maps", tmp / "maps", "--metadata", fx.metadata_dir, "--out", tmp / "o", "--strict"]) == 1
    assert "localization.txt:1" in one_error_line(capsys)


def test_box_outside_the_image_and_id_missing_from_a_file(box_fx, capsys):
    fx, tmp = box_fx
    sizes = Path(fx.metadata_dir) / "image_sizes.txt"
    rows = sizes.read_text().splitlines()
    sizes.write_text("\n".join(rows[1:]) + "\n")  # first image: no size line
    loc = Path(fx.metadata_dir) / "localization.txt"
    rows = loc.read_text().splitlines()
    last = rows[-1].split(",")
    rows[-1] = ",".join([last[0], last[1], last[2], "5000", last[4]])  # outside the image
    loc.write_text("\n".join(rows) + "\n")
    assert run_cli(["--maps", tmp / "maps", "--metadata", fx.metadata_dir, "--out", tmp / "o"]) == 0
    got = json.loads((tmp / "o" / "metrics.json").read_text())
    assert got["num_images"] == 2 and got["num_skipped"] == 2
    text = " ".join(got["skipped"])
    assert "image_sizes.txt" in text and f"localization.txt:{len(rows)}" in text


def test_empty_split_is_an_error(tmp_path, capsys):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "image_ids.txt").write_text("")
    (meta / "class_labels.txt").write_text("")
    (tmp_path / "maps").mkdir()
    assert run_cli(["--maps", tmp_path / "maps", "--metadata", meta, "--out", tmp_path / "o"]) == 1
    assert "no usable images" in one_error_line(capsys)


@pytest.mark.slow
def test_worker_processes_give_the_single_process_numbers(tmp_path, capsys):
    """Chunks scored in two spawned processes add up to exactly the single-process metrics; an
    error in a worker still ends the run with the one line naming the file."""
    fx = write_wsol_fixture(tmp_path / "data", num_classes=4, per_class=10)
    write_maps(fx, tmp_path / "maps", seed=3)
    common = ["--maps", tmp_path / "maps", "--metadata", fx.metadata_dir, "--no-figures"]
    assert run_cli([*common, "--out", tmp_path / "one", "--workers", "1"]) == 0
    assert run_cli([*common, "--out", tmp_path / "two", "--workers", "2"]) == 0
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert one["num_images"] == 40 and one == two
    capsys.readouterr()
    victim = fx.split.samples[37].image_id  # in the second chunk
    os.remove(tmp_path / "maps" / (victim + ".npy"))
    assert run_cli([*common, "--out", tmp_path / "three", "--workers", "2"]) == 1
    assert f"{victim}.npy: no score map for image id" in one_error_line(capsys)
    assert run_cli([*common, "--out", tmp_path / "four", "--workers", "-1"]) == 1
    assert "--workers must be 0 (auto) or more" in one_error_line(capsys)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_ids_that_point_outside_the_maps_folder_are_refused(box_fx, capsys, kind):
    """An id like ``../secret/x`` (or an absolute path) must not make evaluate-maps read a file
    outside ``--maps``, even when a valid map waits there."""
    fx, tmp = box_fx
    victim = fx.split.samples[1].image_id
    outside = tmp / "secret" / "x"
    bad_id = "../secret/x" if kind == "relative" else str(outside)
    outside.parent.mkdir()
    np.save(str(outside) + ".npy", np.load(tmp / "maps" / (victim + ".npy")))
    for path in Path(fx.metadata_dir).glob("*.txt"):
        path.write_text(path.read_text().replace(victim, bad_id))
    assert run_cli(["--maps", tmp / "maps", "--metadata", fx.metadata_dir, "--out", tmp / "o"]) == 1
    line = one_error_line(capsys)
    assert f"image_ids.txt:2: image id {bad_id!r} names a file outside the maps folder" in line
    assert not (tmp / "o" / "metrics.json").exists()
