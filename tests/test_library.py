"""camloc as a library: its version, entry points and typing, its dependency declaration, the
one-line messages of missing extras, and camloc.overlay."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import camloc
from camloc.errors import MissingExtraError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "camloc"


def test_version_is_one_string_everywhere() -> None:
    version = camloc.__version__
    major, minor, patch = (int(p) for p in version.split("."))  # semantic: three numbers
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "camloc._version.__version__"}
    out = subprocess.run([sys.executable, "-m", "camloc", "--version"], capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout.strip()) == (0, f"camloc {version}")


def test_python_m_camloc_is_the_command() -> None:
    out = subprocess.run([sys.executable, "-m", "camloc", "localize", "--topk", "0", "x.jpg"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and out.stderr.startswith("camloc localize: error:") and "topk" in out.stderr


def test_dependencies_are_ranges_and_the_lock_is_exact() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = {d.split(">")[0].split("=")[0].split("<")[0].strip(): d for d in project["dependencies"]}
    for name in ("torch", "torchvision", "onnxruntime"):
        assert "==" not in deps[name] and ">=" in deps[name], deps[name]
    for heavy in ("numba", "scikit-image", "scikit-learn", "timm", "starlette"):
        assert heavy not in deps, f"{heavy} should be an extra"
    extras = project["optional-dependencies"]
    assert {"fast", "demo", "discover", "timm", "serve", "docs", "test"} <= set(extras)
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert {"torch", "torchvision", "onnxruntime", "numba", "mkdocs"} <= set(pins)
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text() or "-c $(CONSTRAINTS)" in (ROOT / "Makefile").read_text()


def test_typing_sees_every_lazy_export() -> None:
    """py.typed ships, and the TYPE_CHECKING imports of camloc/__init__.py name exactly the lazy
    exports, each from its module."""
    assert (SRC / "py.typed").is_file()
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            seen[alias.asname or alias.name] = node.module if node.module != "camloc" else f"camloc.{alias.name}"
    assert seen == camloc._EXPORTS


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path, capsys) -> None:
    from camloc.cli import main
    from camloc.extras import require

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert main(["discover", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("camloc discover: error: camloc discover's clustering: scikit-learn is not installed "
                   "(pip install 'camloc[discover]')")
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage -> ImportError
    with pytest.raises(MissingExtraError, match=r"scikit-image is not installed \(pip install 'camloc\[demo\]'\)"):
        require("skimage", "demo", "the photos")
    assert isinstance(MissingExtraError("x"), ImportError) and isinstance(MissingExtraError("x"), ValueError)


def test_without_numba_maxboxacc_is_the_same_and_says_so_once(monkeypatch) -> None:
    from camloc.metrics import _levels, maxboxacc

    rng = np.random.default_rng(0)
    m = rng.random((24, 32)).astype(np.float32)
    m[4:12, 6:20] += 2.0
    gt = np.array([[6, 4, 19, 11]])
    thresholds = np.linspace(0, 1, 21)
    fast = maxboxacc.best_ious(m, gt, thresholds)
    monkeypatch.setattr(_levels, "HAVE_NUMBA", False)
    maxboxacc._note_no_numba.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slow = maxboxacc.best_ious(m, gt, thresholds)
        maxboxacc.best_ious(m, gt, thresholds)
    notes = [w for w in caught if "numba is not installed" in str(w.message)]
    assert len(notes) == 1 and "camloc[fast]" in str(notes[0].message)
    for rule in fast:
        np.testing.assert_array_equal(fast[rule], slow[rule])


def test_overlay_blends_the_read_map_over_the_image() -> None:
    rgb = np.full((30, 40, 3), 200, np.uint8)
    m = np.zeros((3, 4)); m[1, 2] = 5.0; m[0, 0] = -5.0  # signed, at a coarser grid
    for alpha in (0.0, 0.3, 1.0):
        out = camloc.overlay(Image.fromarray(rgb), m, alpha=alpha, colormap="viridis")
        assert isinstance(out, Image.Image) and out.size == (40, 30) and out.mode == "RGB"
        a = np.asarray(out).astype(int)
        if alpha == 0.0:
            assert (a == 200).all()
    full = np.zeros((30, 40)); full[10:20, 20:30] = 5.0; full[:5, :5] = -5.0  # at the image's size
    heat = np.asarray(camloc.overlay(rgb, full, alpha=1.0, colormap="jet", norm="positive")).astype(int)
    # the peak is dark red in jet; zero and the negative corner read as 0 (dark blue) under "positive"
    assert heat[15, 25].tolist() == [128, 0, 0] and heat[0, 0].tolist() == heat[25, 35].tolist() == [0, 0, 128]
    mixed = np.asarray(camloc.overlay(rgb, full, alpha=0.25, colormap="jet", norm="positive")).astype(int)
    assert np.abs(mixed[15, 25] - (0.75 * 200 + 0.25 * np.array([128, 0, 0]))).max() <= 1
    gray = camloc.overlay(rgb[..., 0], m)  # a gray image comes back RGB
    assert gray.mode == "RGB"
    with pytest.raises(ValueError, match="alpha must be in"):
        camloc.overlay(rgb, m, alpha=1.5)
    with pytest.raises(ValueError, match="unknown colormap 'rainbowz'"):
        camloc.overlay(rgb, m, colormap="rainbowz")
    with pytest.raises(ValueError, match="map must be 2-D"):
        camloc.overlay(rgb, np.zeros((2, 3, 4)))
