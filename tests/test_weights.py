"""camloc.models.weights: the one reader of torch files and state dicts, and its one-line errors."""

from __future__ import annotations

import pytest
import torch

import camloc
from camloc.errors import ModelError, ProbeError
from camloc.models.weights import load_torch_file, read_state_dict, state_dict_problem

STATE = {"fc.weight": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "fc.bias": torch.tensor([0.5, -0.5])}


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


@pytest.mark.parametrize("wrap", [None, "state_dict", "model", "model_state_dict"])
def test_state_dict_is_read_plain_or_under_its_usual_keys(tmp_path, wrap):
    path = tmp_path / "w.pth"
    torch.save(STATE if wrap is None else {wrap: STATE, "epoch": 3}, path)
    _same(read_state_dict(path), STATE)


def test_safetensors_file_is_read(tmp_path):
    from safetensors.torch import save_file

    save_file(STATE, str(tmp_path / "w.safetensors"))
    _same(read_state_dict(tmp_path / "w.safetensors"), STATE)
    (tmp_path / "bad.safetensors").write_bytes(b"not a header")
    with pytest.raises(ModelError, match=r"^.*bad\.safetensors: cannot read net weights \(.+\)$"):
        read_state_dict(tmp_path / "bad.safetensors", "net weights")


def test_errors_are_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "gone.pth"
    with pytest.raises(ModelError) as err:
        read_state_dict(missing, "resnet18 weights")
    assert str(err.value) == f"{missing}: no such file (resnet18 weights)"
    with pytest.raises(ModelError) as err:
        read_state_dict(tmp_path, "resnet18 weights")
    assert str(err.value) == f"{tmp_path}: is a directory, not resnet18 weights"
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ModelError) as err:
        read_state_dict(tmp_path / "list.pth")
    assert str(err.value) == f"{tmp_path / 'list.pth'}: not a state dict of tensors (a list, expected a dict of tensors)"
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ModelError, match=r"junk\.pth: cannot read weights \(.+\)$"):
        read_state_dict(tmp_path / "junk.pth")  # a pickle that would run code: test_backbones


def test_torch_file_errors_take_the_callers_class_and_wording(tmp_path):
    with pytest.raises(ProbeError) as err:
        load_torch_file(tmp_path / "p.pt", "a probe file", ProbeError, missing="no such probe file")
    assert str(err.value) == f"{tmp_path / 'p.pt'}: no such probe file"
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ProbeError, match=r"junk\.pt: not a probe file \(.+\)$"):
        load_torch_file(tmp_path / "junk.pt", "a probe file", ProbeError, unreadable="not a probe file ({why})")
    torch.save({"format": "x", "n": 3}, tmp_path / "ok.pt")
    assert load_torch_file(tmp_path / "ok.pt", "a file") == {"format": "x", "n": 3}


def test_state_dict_problem_names_the_first_bad_entry():
    assert state_dict_problem(STATE) is None
    assert state_dict_problem({"a": torch.zeros(1), 3: torch.zeros(1)}) == "key 3 is not a string"
    assert state_dict_problem({"a": torch.zeros(1), "b": [1]}) == "b is list"


def test_torchvision_weights_from_a_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = camloc.load_model("resnet18", num_classes=3)
    save_file(source.module.state_dict(), str(tmp_path / "r18.safetensors"))
    net = camloc.load_model("resnet18", weights=tmp_path / "r18.safetensors")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert net.num_classes == 3  # taken from the file
    torch.testing.assert_close(camloc.cam(net, x).logits, camloc.cam(source, x).logits)


def test_only_models_weights_opens_torch_and_safetensors_files():
    import ast
    from pathlib import Path

    src = Path(camloc.__file__).parent
    callers = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "load_file", "safe_open"):
                callers.add(path.relative_to(src).as_posix())
    assert callers == {"models/weights.py"}
