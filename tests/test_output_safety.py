"""Output that never destroys what it replaces (issue 28, items 1 and 4): a symlink is written
through to its target, a device or FIFO is streamed to, anything else that is not a regular file is
refused in one line; a second ``localize`` into the same ``--out`` keeps the first run's records
(refused, resumed or replaced only once complete)."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading

import numpy as np
import pytest
from PIL import Image

import camloc
from camloc.cli import main
from camloc.errors import OutputError
from camloc.io import atomic_write_bytes, atomic_write_json
from camloc.pipeline.records import JsonlWriter


# --------------------------------------------------------------------------- item 1: the writers
def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "real" / "cal.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_json(link, {"a": 1})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(os.listdir(target.parent)) == ["cal.json"]  # no temporary file left beside it
    chain = tmp_path / "chain.json"  # a link to a link, and a dangling link (its file is created)
    chain.symlink_to(link)
    atomic_write_bytes(chain, b"xyz")
    assert chain.is_symlink() and link.is_symlink() and target.read_bytes() == b"xyz"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "real" / "new.json")
    atomic_write_bytes(dangling, b"new")
    assert dangling.is_symlink() and (tmp_path / "real" / "new.json").read_bytes() == b"new"


def test_a_fifo_is_streamed_to_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    atomic_write_bytes(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]


def _char_device(tmp_path):
    """A character device of our own (the null device's numbers) when we may make one, else a
    symlink to /dev/null (the writer follows it; /dev/null itself is never the path given)."""
    dev = tmp_path / "mynull"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        dev.symlink_to("/dev/null")
    return dev


def test_a_character_device_is_streamed_to_not_replaced(tmp_path):
    dev = _char_device(tmp_path)
    before = os.stat("/dev/null")
    atomic_write_bytes(dev, b"x" * 696)
    atomic_write_json(dev, {"a": 1})
    assert stat.S_ISCHR(os.stat(dev).st_mode)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert os.listdir(tmp_path) == ["mynull"]


def test_a_full_device_is_one_line_naming_the_path(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    link = tmp_path / "full.onnx"
    link.symlink_to("/dev/full")
    with pytest.raises(OutputError, match=r"full\.onnx: cannot write \(No space left on device\)$"):
        atomic_write_bytes(link, b"data")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_folder_or_socket_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    with pytest.raises(OutputError, match=r"dir: cannot write \(it is a folder; give a file path\)$"):
        atomic_write_bytes(folder, b"x")
    import socket

    sock_path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(sock_path)
        with pytest.raises(OutputError, match=r"cannot write \(it is a socket; give a file path\)$"):
            atomic_write_bytes(sock_path, b"x")
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    afile = tmp_path / "afile"
    afile.write_text("keep")
    from camloc.io import output_folder

    with pytest.raises(OutputError, match=r"afile: cannot create folder \(a file stands there"):
        output_folder(afile)
    assert afile.read_text() == "keep"


# --------------------------------------------------------------------------- through the commands
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    camloc.save_checkpoint(camloc.load_model("fashion_gap", num_classes=3, in_size=32, widths=(4, 8)), path)
    return str(path)


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _localize(model, *args):
    return main(["localize", "--model", model, "--backend", "torch", "--topk", "1", *map(str, args)])


def _records(path):
    """The records of a results file (its header line, the run's provenance, left out)."""
    return [r for r in (json.loads(line) for line in open(path, encoding="utf-8").read().splitlines())
            if "camloc_run" not in r]


def test_localize_and_export_write_through_links_and_devices(tmp_path, images, tiny_model):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "kept" / "results.jsonl"
    target.parent.mkdir()
    (out / "results.jsonl").symlink_to(target)
    (out / "figures").mkdir()
    fig_target = tmp_path / "kept" / "0_cam.png"
    (out / "figures" / "0_cam.png").symlink_to(fig_target)
    assert _localize(tiny_model, images, "--out", out) == 0
    assert (out / "results.jsonl").is_symlink() and len(_records(target)) == 4
    assert (out / "figures" / "0_cam.png").is_symlink() and Image.open(fig_target).size == (40, 30)
    dev = _char_device(tmp_path)  # records streamed into a device: nothing replaced
    out2 = tmp_path / "out2"
    out2.mkdir()
    (out2 / "results.jsonl").symlink_to(dev)
    assert _localize(tiny_model, images, "--out", out2, "--no-figures") == 0
    assert stat.S_ISCHR(os.stat(out2 / "results.jsonl").st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    pytest.importorskip("onnx")
    assert main(["export", "--model", tiny_model, "--out", str(dev), "--topk", "1"]) == 0
    assert stat.S_ISCHR(os.stat(dev).st_mode)


def test_a_torchrun_merge_writes_through_a_link(tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    link = tmp_path / "results.jsonl"
    link.symlink_to(target)
    parts = [JsonlWriter(link, r, 2) for r in range(2)]
    for i in range(5):
        parts[i % 2].write(i, {"image": f"{i}.png", "error": None})
    for p in parts:
        p.finish_part()
    assert parts[0].merge() == 5
    assert link.is_symlink() and [r["image"] for r in _records(target)] == [f"{i}.png" for i in range(5)]


# --------------------------------------------------------------------------- item 4: a second run
def test_a_second_run_is_refused_and_the_records_kept(tmp_path, images, tiny_model, capsys):
    out = tmp_path / "out"
    assert _localize(tiny_model, images, "--out", out, "--no-figures") == 0
    first = (out / "results.jsonl").read_bytes()
    capsys.readouterr()
    assert _localize(tiny_model, images, "--out", out, "--no-figures") == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"camloc localize: error: {out / 'results.jsonl'} holds 4 records of an earlier run; give --resume "
                   "to skip their inputs and append, --overwrite to replace them, or another --out")
    assert (out / "results.jsonl").read_bytes() == first


def test_resume_skips_recorded_inputs_and_appends(tmp_path, images, tiny_model, capsys):
    out = tmp_path / "out"
    paths = sorted(str(p) for p in images.iterdir())
    assert _localize(tiny_model, *paths[:2], "--out", out) == 0
    first = (out / "results.jsonl").read_bytes()
    other = images / "sub"  # another 0.png: its figures must not replace the first run's
    other.mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(other / "0.png")
    before = (out / "figures" / "0_cam.png").read_bytes()
    with open(out / "results.jsonl", "ab") as f:  # a kill in the middle of a line
        f.write(b'{"image": "half')
    assert _localize(tiny_model, *paths, str(other / "0.png"), "--out", out, "--resume") == 0
    assert "2 inputs already recorded" in capsys.readouterr().err
    data = (out / "results.jsonl").read_bytes()
    assert data.startswith(first)
    assert [r["image"] for r in _records(out / "results.jsonl")] == paths + [str(other / "0.png")]
    assert (out / "figures" / "0_cam.png").read_bytes() == before and (out / "figures" / "0_2_cam.png").is_file()
    assert _localize(tiny_model, *paths, "--out", out, "--no-figures", "--resume") == 0  # nothing left: exit 0
    assert (out / "results.jsonl").read_bytes() == data


def test_recorded_inputs_names_a_bad_line(tmp_path):
    from camloc.pipeline.records import recorded_inputs

    path = tmp_path / "results.jsonl"
    path.write_text('{"image": "a.png", "error": null}\nnot json\n')
    with pytest.raises(ValueError, match=r"results\.jsonl:2: not a results record; cannot resume"):
        recorded_inputs(path)


def test_overwrite_keeps_the_old_file_until_the_new_one_is_complete(tmp_path, images, tiny_model, monkeypatch):
    out = tmp_path / "out"
    assert _localize(tiny_model, images, "--out", out, "--no-figures") == 0
    first = (out / "results.jsonl").read_bytes()
    import importlib

    loc = importlib.import_module("camloc.localize")  # the module (camloc.localize is also the function)
    real = loc.iter_localize

    def killed_after_two(*args, **kwargs):  # the run dies after two records
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 2:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(loc, "iter_localize", killed_after_two)
    assert _localize(tiny_model, images, "--out", out, "--no-figures", "--overwrite", "--topk", "2") != 0
    assert (out / "results.jsonl").read_bytes() == first  # the old records are still there
    assert len(_records(out / "results.jsonl.partial")) == 2  # the new run's so far, beside them
    monkeypatch.setattr(loc, "iter_localize", real)
    assert _localize(tiny_model, images, "--out", out, "--no-figures", "--overwrite", "--topk", "2") == 0
    recs = _records(out / "results.jsonl")
    assert len(recs) == 4 and all(len(r["predictions"]) == 2 for r in recs)
    assert not (out / "results.jsonl.partial").exists()


def test_help_documents_resume_and_overwrite(capsys):
    with pytest.raises(SystemExit):
        main(["localize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--resume" in text and "--overwrite" in text and "--strict" in text


if sys.platform != "linux":  # mknod, /dev/full and FIFOs as Linux has them
    pytestmark = pytest.mark.skip(reason="Linux file types")


def test_overwrite_through_a_link_stages_beside_the_target(tmp_path):
    """The new file is staged beside the link's target (a rename across file systems would fail)."""
    target = tmp_path / "disk2" / "results.jsonl"
    target.parent.mkdir()
    target.write_text('{"image": "old", "error": null}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").symlink_to(target)
    w = JsonlWriter(out / "results.jsonl", mode="replace")
    w.write(0, {"image": "new", "error": None})
    assert (tmp_path / "disk2" / "results.jsonl.partial").is_file() and "old" in target.read_text()
    w.finish_part()
    assert (out / "results.jsonl").is_symlink() and [r["image"] for r in _records(target)] == ["new"]
    assert sorted(os.listdir(target.parent)) == ["results.jsonl"]
