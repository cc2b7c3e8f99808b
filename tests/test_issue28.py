"""Defects found by outside checks (issue 28, items 2, 3, 7, 8 and 9), each with the test that
finds it: sizes without a bound, tracebacks, class names that meant different things per command,
a server that waited forever and answered any Host, and small inconsistencies between commands."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import numpy as np
import pytest

import camloc
from camloc.cli import main
from camloc.pixels import geometry
from camloc.pixels.geometry import Resize, parse_resize


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


# --------------------------------------------------------------------------- item 2: sizes
@pytest.mark.parametrize("argv, message", [
    (["localize", "x.png", "--resize", "aspect:6000"], "resize size 6000 is over the maximum side of 2048 pixels"),
    (["localize", "x.png", "--resize", "aspect:99999999999999999999"],
     "--resize size 999999999999... is out of range (at most 2048 pixels)"),
    (["localize", "x.png", "--resize", "crop:2049"], "resize size 2049 is over the maximum side of 2048 pixels"),
    (["localize", "x.png", "--tta", "scales=224,10000000000"], "--tta scale 10000000000 is out of range"),
    (["localize", "x.png", "--tta", "flip,scales=4096"], "TTA scale 4096 is over the maximum side of 2048 pixels"),
    (["calibrate", "--data", "d", "--tta", "scales=100000"], "TTA scale 100000 is over the maximum side of 2048"),
    (["ablate", "--data", "d", "--scales", "256,100000"], "scale 100000 is over the maximum side of 2048 pixels"),
    (["ablate", "--data", "d", "--scales", "256,99999999999999999999"], "scale 999999999999... is out of range"),
])
def test_sizes_over_the_maximum_are_refused_before_any_work(argv, message, capsys, monkeypatch):
    import camloc.commands._common as common

    monkeypatch.setattr(common, "load_net", lambda *a, **k: pytest.fail("the net was loaded"))
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own one-line usage error
        code = exit.code
    assert code != 0
    assert message in capsys.readouterr().err


def test_the_maximum_side_and_pixel_count():
    MAX_SIDE, MAX_PIXELS = geometry.MAX_SIDE, geometry.MAX_PIXELS
    assert parse_resize(f"aspect:{MAX_SIDE}").size == MAX_SIDE  # the maximum itself is allowed
    r = Resize("aspect", MAX_SIDE)
    w, h = r.input_size((10 * MAX_SIDE, MAX_SIDE))  # a panorama: the longer side capped at 3x
    assert w * h <= MAX_PIXELS and (w, h) == (3 * MAX_SIDE, MAX_SIDE)
    with pytest.raises(ValueError, match=f"over the maximum of {MAX_PIXELS} pixels"):
        Resize("aspect", MAX_SIDE, max_ratio=4.0)
    from camloc.tta import TTA

    with pytest.raises(ValueError, match="TTA scale 2080 is over the maximum side"):
        TTA((256, 2080))


# --------------------------------------------------------------------------- item 3: tracebacks
def test_serve_refuses_an_infinite_upload_limit(capsys):
    pytest.importorskip("uvicorn")
    for value in ("inf", "nan", "1e12"):
        assert main(["serve", "--max-upload-mb", value]) != 0
        assert "--max-upload-mb must be more than 0 and at most 1024" in _error_line(capsys)


@pytest.mark.parametrize("shape", [(0, 224), (224, 0), (0, 0)])
def test_evaluate_maps_names_an_empty_map(tmp_path, capsys, shape):
    from camloc.testing import write_wsol_fixture

    fx = write_wsol_fixture(tmp_path / "data", num_classes=2, per_class=2)
    maps = tmp_path / "maps"
    for s in fx.split.samples:
        (maps / s.image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(maps / (s.image_id + ".npy"), np.full((224, 224), 0.5, np.float32))
    victim = maps / (fx.split.samples[1].image_id + ".npy")
    np.save(victim, np.zeros(shape, np.float32))
    assert main(["evaluate-maps", "--maps", str(maps), "--metadata", fx.metadata_dir, "--out", str(tmp_path / "o"),
                 "--no-figures"]) == 1
    line = _error_line(capsys)
    assert str(victim) in line and f"score map is empty (shape {shape[0]}x{shape[1]})" in line


# --------------------------------------------------------------------------- item 7: one class resolver
def test_one_resolver_exact_label_then_hash_index():
    from camloc.classes import ClassError, resolve_class, resolve_classes

    digits = ["3", "7"]
    assert resolve_class("7", digits, "m") == 1 and resolve_class("3", digits, "m") == 0
    assert resolve_class("#1", digits, "m") == 1 and resolve_class("#0", digits, "m") == 0
    with pytest.raises(ClassError, match=r"^--class: m has no class labelled '1' \(its labels are numbers: write #1"):
        resolve_class("1", digits, "m", "--class")
    names = ["tabby", "Egyptian cat", "285"] + [f"c{i}" for i in range(300)]
    assert resolve_class("285", names, "m") == 2  # the label first
    assert resolve_class("#285", names, "m") == 285
    imagenet_like = ["tabby", "Egyptian cat", "espresso"]
    assert resolve_class("2", imagenet_like, "m") == 2  # no numeric label: a bare index still works
    assert resolve_class("egyptian cat", imagenet_like, "m") == 1
    assert resolve_classes("espresso,#0, tabby", imagenet_like, "m") == [2, 0]
    for bad, why in (("²", "has no class '²'"), ("--5", "has no class '--5'"),
                     ("#9", "class index 9 is out of range"), ("-1", "class index -1 is out of range"),
                     ("#99999999999999", "out of range")):
        with pytest.raises(ClassError, match="^class: ") as info:
            resolve_class(bad, imagenet_like, "m")
        assert why in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def digit_probe(tmp_path_factory):
    """A probe whose classes are the folders ``3/`` and ``7/`` (on the test backbone)."""
    from probe_nets import color_split

    root = str(tmp_path_factory.mktemp("digits"))
    color_split(root, 3, classes=("red", "green"), seed=0, name="train")
    os.rename(os.path.join(root, "train", "red"), os.path.join(root, "train", "3"))
    os.rename(os.path.join(root, "train", "green"), os.path.join(root, "train", "7"))
    probe = os.path.join(root, "p.pt")
    assert main(["probe", "fit", "--backbone", "test_colornet", "--data", root, "--out", probe, "--no-cache"]) == 0
    return root, probe


def test_units_and_discover_read_digit_labels_alike(digit_probe, tmp_path, capsys):
    root, probe = digit_probe
    folder = os.path.join(root, "train", "7")
    common = ["--model", "test_colornet", "--probe", probe]
    assert main(["units", folder, "--class", "7", *common, "--out", str(tmp_path / "u"), "--units", "1"]) == 0
    assert json.loads((tmp_path / "u" / "units.json").read_text())["label"] == "7"
    capsys.readouterr()
    assert main(["units", folder, "--class", "1", *common, "--out", str(tmp_path / "u1")]) != 0
    line = _error_line(capsys)
    assert f"--class: probe {probe} (on test_colornet) has no class labelled '1'" in line and "write #1" in line
    assert main(["units", folder, "--class", "#1", *common, "--out", str(tmp_path / "u2"), "--units", "1"]) == 0
    assert json.loads((tmp_path / "u2" / "units.json").read_text())["label"] == "7"
    capsys.readouterr()
    assert main(["discover", folder, "--classes", "7", *common, "--out", str(tmp_path / "d"), "--patterns", "1",
                 "--backend", "torch"]) in (0, 1)
    got = json.loads((tmp_path / "d" / "discover.json").read_text())
    assert [c["label"] for c in got["classes"]] == ["7"]
    capsys.readouterr()
    assert main(["discover", folder, "--classes", "²", *common, "--out", str(tmp_path / "d2")]) != 0
    assert f"--classes: probe {probe} (on test_colornet) has no class '²'" in _error_line(capsys)


# --------------------------------------------------------------------------- item 8: serve
class _Engine:
    def info(self):
        return {"model": "none"}


def _server(app, **config):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    return server, thread, port


def _stalled_upload(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /api/localize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
              b"Content-Length: 100\r\n\r\nabc")
    return s


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_serve_times_out_stalled_uploads_and_checks_the_host():
    pytest.importorskip("uvicorn")
    pytest.importorskip("httpx")
    import httpx

    from camloc.serve.app import create_app, host_names

    app = create_app(_Engine(), read_timeout=0.5, allowed_hosts=host_names("127.0.0.1"))
    server, thread, port = _server(app, limit_concurrency=3)
    try:
        t0 = time.monotonic()
        s = _stalled_upload(port)
        answer = _read_all(s)  # the answer, then the server closes the connection
        s.close()
        assert time.monotonic() - t0 < 8
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'{"error":"upload stalled: no data for 0.5 s after 3 bytes"}' in answer
        url = f"http://127.0.0.1:{port}/api/models"
        assert httpx.get(url).json() == {"model": "none", "max_upload": 20 * 1024 * 1024}
        assert httpx.get(url, headers={"Host": f"localhost:{port}"}).status_code == 200
        evil = httpx.get(url, headers={"Host": "evil.example:8000"})
        assert evil.status_code == 400
        assert evil.json() == {"error": "Host header 'evil.example:8000' is not this server's; start camloc serve "
                                        "with --allowed-host NAME to answer it"}
    finally:
        server.should_exit = True
        thread.join(10)
    # the connection limit: with two uploads stalled, the next request is answered 503
    server, thread, port = _server(create_app(_Engine(), read_timeout=60), limit_concurrency=3)
    try:
        stalled = [_stalled_upload(port) for _ in range(2)]
        deadline = time.monotonic() + 20
        while len(server.server_state.connections) < 2:
            assert time.monotonic() < deadline, "the stalled uploads did not connect"
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/api/models").status_code == 503
        for s in stalled:
            s.close()
    finally:
        server.should_exit = True
        thread.join(10)


def test_serve_passes_its_limits_to_uvicorn(monkeypatch, capsys):
    """The command's options reach the server: the connection limit and the Host check."""
    pytest.importorskip("uvicorn")
    import uvicorn

    import camloc.commands._common as common
    import camloc.serve.engine as engine

    seen = {}
    monkeypatch.setattr(common, "load_net", lambda *a, **k: type("N", (), {"name": "n"})())
    monkeypatch.setattr(engine, "Engine", lambda *a, **k: _Engine())
    import importlib

    calibrate, localize = (importlib.import_module(f"camloc.{m}") for m in ("calibrate", "localize"))
    monkeypatch.setattr(localize, "default_resize", lambda net: None)  # the stand-in net has no module
    monkeypatch.setattr(calibrate, "find_calibration", lambda *a, **k: (None, None))
    monkeypatch.setattr(calibrate, "views_of", lambda *a, **k: "")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    assert main(["serve", "--model", "x", "--max-connections", "7", "--allowed-host", "box.lan"]) == 0
    assert seen["limit_concurrency"] == 8 and seen["host"] == "127.0.0.1"  # uvicorn counts the one it refuses
    from starlette.testclient import TestClient

    client = TestClient(seen["app"], base_url="http://box.lan")
    assert client.get("/api/models").status_code == 200
    assert TestClient(seen["app"], base_url="http://localhost").get("/api/models").status_code == 200
    assert TestClient(seen["app"]).get("/api/models").status_code == 400  # Host: testserver


def test_host_names_of_a_bound_address():
    from camloc.serve.app import _host_of, host_names

    assert host_names("127.0.0.1") == host_names("::1") == ("127.0.0.1", "localhost", "::1")
    assert host_names("192.168.1.5") == ("192.168.1.5",) and host_names("0.0.0.0") is None
    assert [_host_of(h) for h in ("[::1]:8000", "a.b:80", "A.B", "::1")] == ["::1", "a.b", "a.b", "::1"]


def test_serve_options_are_checked(capsys):
    for argv, message in ((["--read-timeout", "0"], "--read-timeout must be more than 0"),
                          (["--max-connections", "0"], "--max-connections must be in 1..10000")):
        assert main(["serve", *argv]) != 0
        assert message in _error_line(capsys)


# --------------------------------------------------------------------------- item 9: small inconsistencies
@pytest.mark.parametrize("argv, message", [
    (["calibrate", "--data", "d", "--workers", "-3"], "--workers must be 0 or more, got -3"),
    (["ablate", "--data", "d", "--workers", "-1"], "--workers must be 0 or more, got -1"),
    (["localize", "x.png", "--workers", "-1"], "--workers must be 0 or more, got -1"),
    (["localize", "x.png", "--tta", ""], "--tta is empty; give flip, scales=S1,S2,... or none"),
    (["calibrate", "--data", "d", "--tta", " "], "--tta is empty; give flip, scales=S1,S2,... or none"),
])
def test_option_checks_shared_by_the_commands(argv, message, capsys):
    assert main(argv) != 0
    assert message in _error_line(capsys)


def test_resize_aspect_without_a_size_is_the_nets_own_side(monkeypatch, tmp_path):
    """``--resize aspect`` meant 256 for every net; it is now the side the net localizes at."""
    from camloc.commands._common import resize_option
    from camloc.models.net import Preprocessing

    net = camloc.load_model("fashion_gap", num_classes=3, in_size=32, widths=(4, 8))
    net.preprocessing = Preprocessing(shape=(288, 288))
    assert resize_option("aspect", net) == Resize("aspect", 288)
    assert resize_option("aspect", net, Resize("aspect", 320)) == Resize("aspect", 320)  # the default's side
    assert resize_option("aspect", net, Resize("squash")) == Resize("aspect", 288)
    assert resize_option("aspect:224", net) == Resize("aspect", 224)
    import camloc.commands.calibrate as cal

    args = type("A", (), {"tta": None, "resize": "aspect"})()
    assert cal._views(args, 288) == ((288,), False)


def test_ablate_out_on_a_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "existing_file"
    f.write_text("keep")
    assert main(["ablate", "--data", str(tmp_path), "--out", str(f)]) != 0
    line = _error_line(capsys)
    assert f"--out {f}: a file stands there; give a folder for the output" in line and "Errno" not in line
    assert f.read_text() == "keep"


def test_probe_fit_without_validation_images_says_so(tmp_path, capsys):
    from probe_nets import color_split

    root = str(tmp_path / "one")
    color_split(root, 1, classes=("red", "green"), seed=0, name="train")
    probe = tmp_path / "p.pt"
    assert main(["probe", "fit", "--backbone", "test_colornet", "--data", root, "--out", str(probe), "--no-cache"]) == 0
    captured = capsys.readouterr()
    assert "2 training + 0 validation images (none: C not chosen on data)" in captured.out
    assert "warning: no validation images" in captured.err and "was not chosen on data" in captured.err
    from camloc.probe import load_probe

    assert load_probe(probe).info["C_choice"] == "no validation images: the smallest C"


def test_truncated_probe_files_are_one_short_line(tmp_path, digit_probe):
    from camloc.errors import ProbeError
    from camloc.probe import load_probe

    data = open(digit_probe[1], "rb").read()
    for cut, why in ((0, "the file is empty"), (3, "truncated: not a complete torch archive"),
                     (len(data) // 2, "truncated: not a complete torch archive"),
                     (len(data) - 30, "truncated: not a complete torch archive")):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(ProbeError) as info:
            load_probe(path)
        assert str(info.value) == f"{path}: not a probe file ({why})"
    path = tmp_path / "text.pt"
    path.write_bytes(b"hello\n")
    with pytest.raises(ProbeError, match=r"text\.pt: not a probe file \(not a torch file\)$"):
        load_probe(path)
