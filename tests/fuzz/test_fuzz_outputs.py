"""Issue 28's surfaces, fuzzed: what stands at an output path (a file, links, a dangling link, a
FIFO, a character device, a folder, a socket) under every writer; a results file a killed run
left (garbage, half lines) under ``--resume``; option texts for sizes, TTA, ablation scales and
classes; saved maps of any shape; ``Host`` headers through serve's app; probe files cut short.

Each case ends in a result or a one-line error; in addition, a writer never turns a symlink,
device, FIFO or socket into a regular file, an accepted size is within
``camloc.pixels.geometry.MAX_SIDE``, a resumed file keeps every complete line it had, and serve
answers a foreign ``Host`` with a one-line JSON 400."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _harness import fuzz_settings, one_line, run_case

pytestmark = pytest.mark.fuzz

KINDS = ["missing", "file", "link", "chain", "dangling", "fifo", "device", "dev_null_link", "folder", "socket"]
WRITERS = ["bytes", "json", "jsonl_new", "jsonl_append", "jsonl_replace", "merge"]


def _make(kind: str, path: str, tmp: str):
    """Put a ``kind`` at ``path``; returns what must still stand there afterwards (a checker)."""
    real = os.path.join(tmp, "real.bin")
    if kind == "file":
        open(path, "wb").write(b"old")
    elif kind in ("link", "chain"):
        open(real, "wb").write(b"old")
        if kind == "chain":
            os.symlink(real, path + ".mid")
            os.symlink(path + ".mid", path)
        else:
            os.symlink(real, path)
    elif kind == "dangling":
        os.symlink(real, path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except OSError:
            os.symlink("/dev/null", path)
    elif kind == "dev_null_link":
        os.symlink("/dev/null", path)
    elif kind == "folder":
        os.mkdir(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        return s
    return None


def _kept(kind: str, path: str) -> str | None:
    """Why what stands at ``path`` was destroyed, or ``None``."""
    mode = os.lstat(path).st_mode
    want = {"link": stat.S_ISLNK, "chain": stat.S_ISLNK, "dangling": stat.S_ISLNK, "dev_null_link": stat.S_ISLNK,
            "fifo": stat.S_ISFIFO, "folder": stat.S_ISDIR, "socket": stat.S_ISSOCK}.get(kind)
    if kind == "device":
        want = stat.S_ISLNK if os.path.islink(path) else stat.S_ISCHR
    if want is not None and not want(mode):
        return f"{kind} at the path was replaced (mode {oct(mode)})"
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        return "/dev/null is no longer a device"
    return None


def _write(writer: str, path: str, payload: list[dict]):
    from camloc.io import atomic_write_bytes, atomic_write_json
    from camloc.pipeline.records import JsonlWriter

    if writer == "bytes":
        atomic_write_bytes(path, json.dumps(payload).encode())
    elif writer == "json":
        atomic_write_json(path, payload)
    elif writer == "merge":
        parts = [JsonlWriter(path, r, 2) for r in range(2)]
        for i, rec in enumerate(payload):
            parts[i % 2].write(i, rec)
        for p in parts:
            p.finish_part()
        parts[0].merge()
    else:
        with JsonlWriter(path, mode=writer.split("_")[1]) as w:
            for i, rec in enumerate(payload):
                w.write(i, rec)
    return True


@fuzz_settings(scale=1.0)
@given(kind=st.sampled_from(KINDS), writer=st.sampled_from(WRITERS),
       payload=st.lists(st.fixed_dictionaries({"image": st.text(max_size=8), "error": st.none()}), max_size=3))
def test_writers_never_replace_what_stands_at_the_path(tmp_path_factory, kind, writer, payload):
    tmp = str(tmp_path_factory.mktemp("out"))
    path = os.path.join(tmp, "target")
    held = _make(kind, path, tmp)
    reader = None
    if kind == "fifo":  # a reader, so that the stream has somewhere to go
        def drain():
            with open(path, "rb") as f:
                f.read()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
    try:
        run_case("outputs: " + kind, lambda: _write(writer, path, payload), failed=lambda r: False,
                 naming=os.path.basename(path))
    finally:
        if held is not None:
            held.close()
        if reader is not None:
            if reader.is_alive():  # the writer refused before opening: let the reader go
                with open(path, "wb"):
                    pass
            reader.join(5)
    problem = _kept(kind, path)
    assert problem is None, f"{writer} into {kind}: {problem}"


LINE = st.one_of(
    st.builds(lambda s: json.dumps({"image": s, "error": None}), st.text(max_size=10)),
    st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s),
    st.just('{"image": 3}'), st.just("[]"), st.just(""),
)


@fuzz_settings(scale=1.0)
@given(lines=st.lists(LINE, max_size=5), tail=st.binary(max_size=12).filter(lambda b: b"\n" not in b))
def test_resume_reads_any_results_file(tmp_path_factory, lines, tail):
    from camloc.pipeline.records import recorded_inputs

    path = os.path.join(str(tmp_path_factory.mktemp("res")), "results.jsonl")
    complete = "".join(line + "\n" for line in lines).encode()
    with open(path, "wb") as f:
        f.write(complete + tail)
    seen = run_case("resume: results file", lambda: recorded_inputs(path), failed=lambda r: False,
                    naming="results.jsonl")
    data = open(path, "rb").read()
    assert data.startswith(complete) and len(data) in (len(complete), len(complete) + len(tail))
    if seen is not None:
        assert data == complete  # the half line is gone, every whole line kept
        assert seen == {str(json.loads(line)["image"]) for line in lines if line.strip()}


OPTION_TEXT = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(0, 5000), st.integers(-5, 10 ** 20)).map(str), min_size=1, max_size=3).map(",".join),
    st.builds(lambda m, n: f"{m}:{n}", st.sampled_from(["aspect", "crop", "squash", "ASPECT", "x"]),
              st.one_of(st.integers(0, 5000).map(str), st.integers(-10, 10 ** 25).map(str), st.text(max_size=6))),
    st.builds(lambda f, ns: ("flip," if f else "") + "scales=" + ",".join(ns), st.booleans(),
              st.lists(st.one_of(st.integers(0, 5000).map(str), st.integers(-5, 10 ** 12).map(str),
                                 st.sampled_from(["", "²", "1e3", "0x40"])),
                       max_size=3)),
)


def _side_problem(result) -> str | None:
    from camloc.pixels.geometry import MAX_SIDE

    sizes = list(getattr(result, "scales", None) or []) + ([result.size] if hasattr(result, "size") else [])
    if isinstance(result, list):
        sizes = result
    big = [s for s in sizes if s > MAX_SIDE]
    return f"accepted a size over {MAX_SIDE}: {big}" if big else None


@fuzz_settings(scale=1.0)
@given(text=OPTION_TEXT, which=st.sampled_from(["resize", "tta", "scales"]))
def test_size_options_are_bounded_or_refused(text, which):
    import argparse

    from camloc.commands.ablate import _ints
    from camloc.pixels.geometry import parse_resize
    from camloc.tta import parse_tta

    def call():
        if which == "scales":
            try:
                return _ints(text)
            except argparse.ArgumentTypeError as err:  # argparse prints it as one usage line
                return ("refused", str(err))
        return parse_resize(text) if which == "resize" else parse_tta(text)

    def check(result):
        if isinstance(result, tuple):
            return None if one_line(result[1]) else f"multi-line option error: {result[1]!r}"
        return None if result is None else _side_problem(result)

    run_case(f"options: {which}", call, check=check, failed=lambda r: isinstance(r, tuple))


@fuzz_settings(scale=1.0)
@given(text=st.one_of(st.text(max_size=8), st.integers(-3, 5).map(lambda i: f"#{i}"), st.integers(-3, 12).map(str),
                      st.sampled_from(["²", "--5", "#", "# 1", "+1", "٣", "7 ", " 3"])),
       labels=st.sampled_from([["3", "7"], ["cat", "dog", "285"], ["a", "b", "c", "d"]]))
def test_class_names_resolve_or_name_the_model(text, labels):
    from camloc.classes import resolve_class

    def check(i):
        if not 0 <= i < len(labels):
            return f"index {i} out of range"
        if text in labels and labels[i] != text:
            return f"{text!r} is a label but resolved to {labels[i]!r}"
        return None

    run_case("classes", lambda: resolve_class(text, labels, "probe p.pt"), check=check, failed=lambda r: False,
             naming="probe p.pt")


@fuzz_settings(scale=1.0)
@given(shape=st.one_of(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(0, 2)),
                       st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
                       st.sampled_from([(0, 224), (224, 0), (224, 224)])),
       fill=st.sampled_from([0.0, 0.5, 1.0, 2.0, np.nan]))
def test_saved_maps_of_any_shape(tmp_path_factory, shape, fill):
    from camloc.scoring.saved import load_map

    maps = str(tmp_path_factory.mktemp("maps"))
    np.save(os.path.join(maps, "a.npy"), np.full(shape, fill, np.float32))
    run_case("saved maps", lambda: load_map(maps, "a", "image_ids.txt:1"), failed=lambda r: False, naming="a.npy")


@fuzz_settings(scale=1.0)
@given(host=st.one_of(st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s and s.isascii()),
                      st.sampled_from(["127.0.0.1", "localhost:8000", "[::1]:80", "LOCALHOST", "evil.example",
                                       "127.0.0.1.evil", "::1", "", " localhost"])))
def test_serve_answers_its_own_host_only(host):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from camloc.serve.app import _host_of, create_app, host_names

    class Engine:
        def info(self):
            return {"model": "none"}

    allowed = host_names("127.0.0.1")
    client = TestClient(create_app(Engine(), allowed_hosts=allowed))

    def call():
        try:
            resp = client.get("/api/models", headers={"Host": host})
        except Exception as err:  # httpx refuses some header values itself: not the server's business
            return ("client", str(err))
        return resp.status_code, resp.text

    def check(result):
        if result[0] == "client":
            return None
        status, text = result
        ok = _host_of(host) in allowed
        if ok and status != 200:
            return f"Host {host!r} refused: {status} {text[:200]}"
        if not ok and (status != 400 or "\n" in text or "error" not in json.loads(text)):
            return f"Host {host!r} answered {status}: {text[:200]}"
        return None

    run_case("serve: Host", call, check=check)


@pytest.fixture(scope="module")
def probe_bytes(tmp_path_factory):
    from camloc.probe.files import save_probe
    from camloc.probe.linear import Probe

    path = tmp_path_factory.mktemp("probe") / "p.pt"
    save_probe(Probe(backbone="b", feature_dim=4, weight=np.ones((2, 4), np.float32), bias=np.zeros(2, np.float32),
                     class_names=["3", "7"], classifier="svm", C=1.0, backbone_sha256="", info={},
                     preprocessing=None), path)
    return path.read_bytes()


@fuzz_settings(scale=1.0)
@given(cut=st.floats(0, 1), flip=st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_cut_or_flipped_probe_files_are_one_short_line(tmp_path_factory, probe_bytes, cut, flip):
    """A probe file cut short (a full disk, a kill while copying) or with a byte flipped: a short
    line naming the file, never ``[Errno 22]`` nor PyTorch's weights-only explanation."""
    from camloc.probe import load_probe

    data = bytearray(probe_bytes[: int(cut * len(probe_bytes))])
    if flip is not None and data:
        data[flip % len(data)] ^= 0xFF
    path = tmp_path_factory.mktemp("cut") / "p.pt"
    path.write_bytes(bytes(data))

    def call():
        try:
            return load_probe(path)
        except ValueError as err:
            return err

    def check(result):
        if not isinstance(result, Exception):
            return None
        text = str(result)
        if not text.startswith(str(path)) or len(text) > len(str(path)) + 160 or "Errno" in text or \
                "weights_only" in text or not one_line(text):
            return f"not a short line naming the file: {text[:300]!r}"
        return None

    run_case("probe files: cut or flipped", call, check=check, failed=lambda r: isinstance(r, Exception))
