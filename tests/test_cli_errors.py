"""How ``camloc`` reports errors: camloc's own errors (bad input, options, files) and OSErrors
are one line and exit 1; a bug (an error raised inside numpy or PyTorch, or by Python itself)
keeps its traceback; ``--debug`` shows the traceback of every error."""

from __future__ import annotations

import numpy as np
import pytest

import camloc.commands.localize as localize_cmd
from camloc.cli import main


def _bug_in_torch(args):
    import torch

    return torch.zeros(2, 3) @ torch.zeros(2, 3)  # a shape bug: RuntimeError raised by PyTorch


def _bug_in_numpy(args):
    return np.zeros(6).reshape(4, 4)  # ValueError raised by numpy


def _bug_in_python(args):
    first, second = [1, 2, 3]  # ValueError raised by Python itself in camloc's code
    return first + second


@pytest.mark.parametrize(("bug", "kind"), [(_bug_in_torch, RuntimeError), (_bug_in_numpy, ValueError),
                                           (_bug_in_python, ValueError)])
def test_bugs_keep_their_traceback(monkeypatch, bug, kind):
    monkeypatch.setattr(localize_cmd, "run", bug)
    with pytest.raises(kind):
        main(["localize", "x.png"])


def test_camloc_errors_and_os_errors_are_one_line(tmp_path, capsys):
    code = main(["localize", "x.png", "--model", "no_such_model"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [err[0]] and err[0].startswith("camloc localize: error: unknown model 'no_such_model'")
    code = main(["localize", "x.png", "--topk", "0"])  # an option: a plain ValueError from check()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--topk" in err[0]
    (tmp_path / "f").write_text("")
    code = main(["evaluate-maps", "--maps", str(tmp_path), "--metadata", str(tmp_path / "f")])  # NotADirectoryError
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("camloc evaluate-maps: error: ") and str(tmp_path / "f") in err[0]


def test_camloc_error_classes_share_one_base():
    from camloc import errors
    from camloc.errors import CamlocError, OutputError

    classes = (errors.DataError, errors.ImageError, errors.HeadError, errors.ModelError, errors.ProbeError,
               errors.ConfigError, errors.IdxError, errors.TextlocError, errors.CalibrationError, errors.ServeError,
               errors.MissingExtraError, errors.MethodError, OutputError)
    for cls in classes:
        assert issubclass(cls, CamlocError) and issubclass(cls, ValueError)  # old `except ValueError` still works
    assert issubclass(OutputError, OSError)  # a failed write, as before
    err = OutputError("out/x.json", OSError(28, "No space left on device"))
    assert (str(err), err.errno) == ("out/x.json: cannot write (No space left on device)", 28)
    found = {name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, CamlocError)}
    assert found == {"CamlocError", *(cls.__name__ for cls in classes)}


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(capsys, where):
    args = ["localize", "x.png", "--model", "no_such_model"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ModelError: unknown model 'no_such_model'" in err
    assert err.strip().splitlines()[-1].startswith("camloc localize: error: unknown model")
