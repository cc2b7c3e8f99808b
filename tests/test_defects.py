"""Defects found by outside checks (issue 14), each with the test that found it."""

from __future__ import annotations

import json
import os

from PIL import Image

from camloc.cli import main
from camloc.provenance import read_results


def test_odd_file_names_do_not_abort_localize_with_figures(tmp_path, photo_dir):
    """A newline in a file name, or a name too long once ``_topk.png`` is added, used to end the
    whole run ("can't measure length of multiline text", "File name too long")."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    photo = Image.open(f"{photo_dir}/chelsea.png").convert("RGB").resize((96, 64))
    names = ["new\nline.png", "x" * 250 + ".png", "é" * 125 + ".png"]  # 254 bytes each for the long ones
    for name in names:
        photo.save(folder / name)
    out = tmp_path / "out"
    assert main(["localize", str(folder), "--out", str(out), "--topk", "2", "--backend", "torch"]) == 0
    recs = read_results(out / "results.jsonl")[1]
    assert sorted(os.path.basename(r["image"]) for r in recs) == sorted(names)
    assert all(r["error"] is None for r in recs)
    stems = ["new_line", "x" * 200, "é" * 100]  # cut to 200 bytes of UTF-8, whole characters kept
    expected = {f"{s}_{kind}.png" for s in stems for kind in ("cam", "topk")}
    assert set(os.listdir(out / "figures")) == expected
    for s in stems:
        assert Image.open(out / "figures" / f"{s}_cam.png").size == (96, 64)
        assert Image.open(out / "figures" / f"{s}_topk.png").size[0] > 3 * 96  # photo + two panels


def test_printable_escapes_control_characters():
    from camloc.viz import printable

    assert printable("a\nb\tc\x1bd é") == "a\\nb\\tc\\x1bd é"


# --------------------------------------------------------------------------- non-finite scores (item 6)
def _strict_json(line: str) -> dict:
    def refuse(name: str):
        raise AssertionError(f"not JSON: {name} in {line!r}")

    return json.loads(line, parse_constant=refuse)


def test_cam_raises_on_nan_input_and_names_the_images(tiny_gap):
    import pytest
    import torch

    import camloc

    net = camloc.load_model(tiny_gap)
    x = torch.ones(3, 1, 2, 2)
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^non-finite scores for images \[1\] of the batch \(NaN or inf in the input"):
        camloc.cam(net, x, topk=1)
    out = camloc.cam(net, x[[0, 2]], topk=1)  # the finite images alone are fine
    assert out.classes.tolist() == [[0], [0]] and out.logits[0].tolist() == pytest.approx([2.1, 0.8])
    with torch.no_grad():
        tiny_gap.fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"images \[0, 1\] of the batch"):
        camloc.cam(net, x[[0, 2]], topk=1)


def test_predictions_for_refuses_non_finite_scores(tiny_gap):
    import numpy as np
    import pytest

    import camloc
    from camloc.localize import predictions_for

    net = camloc.load_model(tiny_gap)
    maps = np.ones((1, 2, 2), np.float32)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match=r"^non-finite scores: 1 of 2 logits are NaN or infinite"):
            predictions_for(net, np.array([bad, 1.0]), np.array([1]), maps, (4, 4), 0.2)
    preds = predictions_for(net, np.array([0.0, 1.0]), np.array([1]), maps, (4, 4), 0.2)
    assert preds[0]["score"] == round(float(np.e / (1 + np.e)), 6) and preds[0]["logit"] == 1.0


def test_json_writers_refuse_nan_naming_the_file(tmp_path):
    import pytest

    from camloc.io import atomic_write_json, atomic_write_jsonl

    for write, obj in ((atomic_write_jsonl, [{"score": 0.5}, {"score": float("nan")}]),
                       (atomic_write_json, {"x": float("inf")})):
        path = tmp_path / "r.json"
        with pytest.raises(ValueError, match=r"r\.json: cannot write JSON \(Out of range float values"):
            write(path, obj)
        assert not path.exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_nan_weights_through_the_cli_give_an_error_not_nan(tmp_path, photo_dir, capsys):
    import torch
    import torchvision

    import camloc

    module = torchvision.models.resnet18(weights=None, num_classes=3)
    with torch.no_grad():
        module.fc.weight[1, 0] = float("nan")
    net = camloc.load_model(module, class_names=["ant", "bee", "cow"])
    net.name, net.arch_kwargs = "resnet18", {"num_classes": 3}
    camloc.save_checkpoint(net, tmp_path / "nan.pt")
    out = tmp_path / "o"
    code = main(["localize", f"{photo_dir}/chelsea.png", "--model", str(tmp_path / "nan.pt"), "--out", str(out),
                 "--no-figures", "--backend", "torch"])
    err = capsys.readouterr().err
    assert code == 1
    assert any("finite" in line and "NaN" in line for line in err.splitlines())
    results = out / "results.jsonl"
    if results.exists():  # the streamed writer: one error record for the image
        recs = [_strict_json(line) for line in results.read_text().splitlines()[1:]]  # after the header line
        assert len(recs) == 1 and "finite" in recs[0]["error"] and "\n" not in recs[0]["error"]
        assert "predictions" not in recs[0] or not recs[0]["predictions"]


# --------------------------------------------------------------------------- bad checkpoints and weights (item 9)
def _bad_checkpoints(tmp_path):
    """(file, what the one-line error must say) for checkpoints whose fields are garbled."""
    import torch

    import camloc
    from camloc.models.checkpoint import checkpoint_dict

    net = camloc.load_model("fashion_gap", num_classes=3, in_size=32)
    good = checkpoint_dict(net)
    cases = {
        "kwargs.pt": ({"arch_kwargs": {**good["arch_kwargs"], "depth": 7}}, r"arch_kwargs do not fit 'fashion_gap' \(.*depth"),
        "kwargs_type.pt": ({"arch_kwargs": [1, 2]}, r"arch_kwargs is list, expected a dict"),
        "kwargs_file.pt": ({"arch_kwargs": {"weights": "/etc/passwd"}}, r"arch_kwargs name a weights file \('weights'\)"),
        "kwargs_n.pt": ({"arch_kwargs": {**good["arch_kwargs"], "num_classes": 10**9}},
                        r"arch_kwargs num_classes 1000000000 differs from its 3 class_names"),
        "short_names.pt": ({"class_names": ["a", "b"]}, r"arch_kwargs num_classes 3 differs from its 2 class_names"),
        "names_str.pt": ({"class_names": "abc"}, r"class_names is str, expected a list of strings"),
        "names_int.pt": ({"class_names": [1, 2, 3]}, r"class_names is not a list of strings"),
        "pre_list.pt": ({"preprocessing": [224, 224]}, r"preprocessing is list, expected a dict"),
        "pre_size.pt": ({"preprocessing": {**good["preprocessing"], "size": [0]}}, r"preprocessing: size must be two positive integers"),
        "pre_std.pt": ({"preprocessing": {**good["preprocessing"], "std": [1, 0, 1]}}, r"preprocessing: std must be three positive numbers"),
        "pre_keys.pt": ({"preprocessing": {"size": [32, 32]}}, r"preprocessing lacks mean, std"),
        "arch.pt": ({"arch": 5}, r"arch is int, expected a name"),
        "state.pt": ({"state_dict": {"fc.weight": 5}}, r"state_dict is not a dict of tensors"),
    }
    for file, (change, message) in cases.items():
        torch.save({**good, **change}, tmp_path / file)
    return {tmp_path / f: m for f, (_, m) in cases.items()}


def test_garbled_checkpoints_give_one_line_model_errors_naming_the_file(tmp_path):
    import re

    import pytest

    import camloc

    for path, message in _bad_checkpoints(tmp_path).items():
        with pytest.raises(camloc.ModelError, match=f"^{re.escape(str(path))}: (camloc checkpoint )?{message}") as err:
            camloc.load_model(path)
        assert "\n" not in str(err.value)


def test_garbled_weights_files_give_one_line_model_errors_naming_the_file(tmp_path, capsys, photo_dir):
    import re

    import pytest
    import torch

    import camloc

    files = {"list.pth": [torch.zeros(2)], "tensor.pth": torch.zeros(3, 3), "int.pth": {"fc.weight": 5},
             "keys.pth": {0: torch.zeros(1)}, "nested.pth": {"state_dict": {"fc.weight": "x"}}}
    for file, obj in files.items():
        torch.save(obj, tmp_path / file)
        for spec in ("resnet18", "fashion_gap", "efficientnet_lite0"):
            with pytest.raises(camloc.ModelError, match=f"^{re.escape(str(tmp_path / file))}: ") as err:
                camloc.load_model(spec, weights=tmp_path / file)
            assert "\n" not in str(err.value)
    code = main(["localize", f"{photo_dir}/chelsea.png", "--model", "resnet18", "--weights", str(tmp_path / "int.pth"),
                 "--out", str(tmp_path / "o"), "--no-figures"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"camloc localize: error: {tmp_path / 'int.pth'}: not a state dict of tensors "
                                 "(fc.weight is int)"]


# --------------------------------------------------------------------------- full disks, names, paths (item 10)
def test_full_disk_under_localize_names_the_results_file(tmp_path, photo_dir, capsys):
    """results.jsonl linked to /dev/full: every write fails with ENOSPC, as on a full disk."""
    import pytest

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").symlink_to("/dev/full")
    code = main(["localize", f"{photo_dir}/chelsea.png", "--out", str(out), "--no-figures", "--backend", "torch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == f"camloc localize: error: {out / 'results.jsonl'}: cannot write (No space left on device)"


def test_atomic_writers_name_the_file_they_cannot_write(tmp_path, monkeypatch):
    import errno

    import pytest

    from camloc.errors import OutputError
    from camloc.io import atomic_write_json, atomic_write_text

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"^.*/file/sub/m\.json: cannot write \(Not a directory\)$"):
        atomic_write_json(tmp_path / "file" / "sub" / "m.json", {"a": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    (tmp_path / "r.md").write_text("old")
    with pytest.raises(OSError, match=r"r\.md: cannot write \(No space left on device\)$") as err:
        atomic_write_text(tmp_path / "r.md", "new")
    assert err.value.errno == errno.ENOSPC
    assert (tmp_path / "r.md").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["file", "r.md"]


def test_control_characters_in_names_are_escaped_on_the_terminal(tmp_path, photo_dir, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    photo = Image.open(f"{photo_dir}/chelsea.png").convert("RGB").resize((64, 48))
    photo.save(folder / "red\x1b[31mcat.png")
    photo.save(folder / "new\nline.png")
    (folder / "bad\rname.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code = main(["localize", str(folder), str(tmp_path / "gone\x07.png"), "--out", str(tmp_path / "o"),
                 "--no-figures", "--topk", "1", "--backend", "torch"])
    captured = capsys.readouterr()
    assert code == 1
    for stream in (captured.out, captured.err):
        assert not any(not c.isprintable() and c != "\n" for c in stream), repr(stream)
    rows = captured.out.splitlines()
    assert rows[0].startswith("image ") and rows[-1].startswith("2 localized, 2 failed")
    assert sorted(r.split("  ")[0].strip() for r in rows[1:3]) == ["new\\nline.png", "red\\x1b[31mcat.png"]
    errors = [line for line in captured.err.splitlines() if line.startswith("camloc localize: ")]
    assert any("bad\\rname.png: " in line for line in errors) and any("gone\\x07.png: no such file" in line for line in errors)


# --------------------------------------------------------------------------- code review (item 11)
class _TrainModeNet:
    """A 3-channel net with BatchNorm and Dropout (what train mode changes), built in train mode
    with one submodule deliberately frozen in eval mode."""

    @staticmethod
    def make():
        import torch
        from torch import nn

        from camloc.models.heads import Head

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                torch.manual_seed(0)
                self.conv = nn.Conv2d(3, 4, 3, padding=1)
                self.bn = nn.BatchNorm2d(4)
                self.frozen_bn = nn.BatchNorm2d(4)
                self.drop = nn.Dropout(0.5)
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                f = torch.relu(self.frozen_bn(self.bn(self.conv(x))))
                return self.fc(self.drop(torch.flatten(self.pool(f), 1)))

            def camloc_head(self) -> Head:
                return Head(self.pool, self.fc, "input")

        net = Net().train()
        net.frozen_bn.eval()
        return net


def _modes(module):
    return {name: m.training for name, m in module.named_modules()}


def test_api_calls_restore_the_callers_training_flags(tmp_path, monkeypatch):
    """camloc.load_model, cam, check_exact, localize (torch and ONNX Runtime backends) and the
    pipeline ran the caller's module in eval mode and left it there (BatchNorm statistics and
    dropout of the caller's later training silently changed)."""
    import numpy as np
    import torch

    import camloc
    from camloc.pipeline import Pipeline, Resize

    monkeypatch.setenv("CAMLOC_CACHE", str(tmp_path))  # the ONNX graph of this throwaway net
    module = _TrainModeNet.make()
    modes = _modes(module)
    assert modes[""] and not modes["frozen_bn"]
    stats = module.bn.running_mean.clone()
    net = camloc.load_model(module, class_names=["a", "b", "c"])
    assert _modes(module) == modes
    x = torch.rand(2, 3, 16, 16)
    out = camloc.cam(net, x, topk=2)
    assert _modes(module) == modes
    module.eval()
    expected = module(x)
    module.train()
    module.frozen_bn.eval()
    assert torch.allclose(out.logits, expected, atol=1e-6)  # computed in eval mode all the same
    assert torch.allclose(net(x), expected, atol=1e-6) and _modes(module) == modes
    assert torch.allclose(camloc.extract(net, x)[1], expected, atol=1e-6) and _modes(module) == modes
    assert camloc.check_exact(net).exact and _modes(module) == modes
    image = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    for backend in ("torch", "onnxruntime"):
        pipe = Pipeline(net, Resize("squash"), backend=backend, topk=1, workers=0)
        (res,) = list(pipe.run([image]))
        assert res.error is None and _modes(module) == modes, backend
        rec = camloc.localize(net, [image], topk=1, backend=backend)[0]
        assert rec["error"] is None and _modes(module) == modes, backend
    from camloc.methods import get_method

    expected = camloc.localize(net, [image], topk=2, backend="torch")[0]["predictions"]
    got = camloc.localize(net, [image], topk=2, method=get_method("gradcam"))[0]["predictions"]
    assert [p["class_index"] for p in got] == [p["class_index"] for p in expected]  # eval-mode scores
    assert _modes(module) == modes
    assert torch.equal(module.bn.running_mean, stats)


def test_complex_arrays_are_refused_not_cast(recwarn):
    """Found by the fuzz suite: a complex array lost its imaginary part with a ComplexWarning."""
    import numpy as np

    from camloc.errors import ImageError
    from camloc.pixels.decode import decode
    from camloc.pixels.geometry import Resize

    import pytest

    with pytest.raises(ImageError, match=r"^<image 0>: array of dtype complex64 is not an image$"):
        decode(np.ones((4, 4, 3), np.complex64), Resize("squash"), (8, 8))
    assert not recwarn.list


def test_weights_file_errors_stay_on_one_line_whatever_the_keys(tmp_path):
    """Found by the fuzz suite: a key holding a newline made the error two lines."""
    import pytest
    import torch

    import camloc

    torch.save({"fc.weight\nx": None}, tmp_path / "w.pth")
    with pytest.raises(camloc.ModelError, match=r"w\.pth: not a state dict of tensors \(fc\.weight\\nx is NoneType\)$") as err:
        camloc.load_model("fashion_gap", weights=tmp_path / "w.pth")
    assert "\n" not in str(err.value)
