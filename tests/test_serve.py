"""camloc serve's API through Starlette's TestClient, with the embedded model: the record is the one
``camloc localize`` writes, the maps are the pipeline's, bad uploads are refused with one-line JSON
errors, and concurrent requests all succeed."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="camloc serve needs the serve extra (starlette)")
pytest.importorskip("multipart", reason="camloc serve needs the serve extra (python-multipart)")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from camloc.localize import iter_localize  # noqa: E402
from camloc.serve.app import STATIC, create_app  # noqa: E402
from camloc.serve.engine import Engine  # noqa: E402


@pytest.fixture(scope="module")
def engine(lite0):
    return Engine(lite0)


@pytest.fixture(scope="module")
def client(engine):
    return TestClient(create_app(engine))


@pytest.fixture(scope="module")
def chelsea(photo_dir):
    path = os.path.join(photo_dir, "chelsea.png")
    with open(path, "rb") as f:
        return path, f.read()


def post(client, data: bytes, name: str = "chelsea.png", ctype: str = "image/png", **fields):
    return client.post("/api/localize", files={"file": (name, data, ctype)}, data={k: str(v) for k, v in fields.items()})


def test_record_and_maps_are_those_of_localize(client, lite0, chelsea):
    path, data = chelsea
    got = post(client, data, topk=3, threshold=0.3)
    assert got.status_code == 200, got.text
    out = got.json()
    item = next(iter_localize(lite0, [path], topk=3, threshold=0.3, progress=False))
    want = dict(item.record, image="chelsea.png")
    assert out["record"] == want
    assert out["record"]["predictions"][0]["label"] == "Egyptian cat"
    assert out["method"] == "cam"
    assert [m["class_index"] for m in out["maps"]] == [p["class_index"] for p in want["predictions"]]
    for m, raw in zip(out["maps"], item.maps):  # the raw float32 maps, exactly
        assert m["shape"] == list(raw.shape)
        np.testing.assert_array_equal(np.asarray(m["data"], np.float32).reshape(raw.shape), raw)


def test_content_is_sniffed_not_the_name(client, chelsea):
    _, data = chelsea
    got = post(client, data, name="notes.txt", ctype="text/plain", topk=1)
    assert got.status_code == 200
    assert got.json()["record"]["image"] == "notes.txt"
    assert got.json()["record"]["predictions"][0]["label"] == "Egyptian cat"


def test_a_class_outside_the_topk(client, chelsea):
    _, data = chelsea
    top = post(client, data, topk=20).json()["record"]["predictions"]
    tenth = top[9]
    out = post(client, data, topk=2, **{"class": tenth["label"]}).json()
    assert out["selected"] == tenth  # its prediction as the top-20 record gives it, rank 10 included
    assert out["selected_map"]["class_index"] == tenth["class_index"]
    assert len(out["selected_map"]["data"]) == np.prod(out["maps"][0]["shape"])
    by_index = post(client, data, topk=2, **{"class": str(tenth["class_index"])}).json()["selected"]
    assert by_index == tenth
    far = post(client, data, topk=1, **{"class": "goldfish"}).json()["selected"]
    assert far["label"] == "goldfish" and far["class_index"] == 1 and far["rank"] > 20
    inside = post(client, data, topk=3, **{"class": "tiger cat"}).json()
    assert inside["selected"] == inside["record"]["predictions"][1]


def test_gradient_methods(client, chelsea):
    _, data = chelsea
    cam = post(client, data, topk=2).json()
    for method in ("gradcam", "gradcampp", "ablationcam"):  # ablationcam: the exact pooled-vector path
        out = post(client, data, topk=2, method=method).json()
        assert out["method"] == method
        assert [p["class_index"] for p in out["record"]["predictions"]] == [p["class_index"] for p in cam["record"]["predictions"]]
        assert len(out["maps"]) == 2 and all(np.isfinite(m["data"]).all() for m in out["maps"])


def test_concurrent_requests_all_succeed(client, chelsea, photo_dir):
    _, data = chelsea
    with open(os.path.join(photo_dir, "coffee.png"), "rb") as f:
        coffee = f.read()
    jobs = [(data, "chelsea.png"), (coffee, "coffee.png")] * 3

    def one(job):
        r = post(client, job[0], name=job[1], topk=2)
        return r.status_code, r.json()["record"]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, jobs))
    assert [s for s, _ in results] == [200] * 6
    assert results[0][1] == results[2][1] == results[4][1]
    assert results[1][1] == results[3][1] == results[5][1]
    assert results[1][1]["predictions"][0]["label"] == "espresso"


def test_models_and_samples(client):
    info = client.get("/api/models").json()
    assert info["model"] == "efficientnet_lite0" and info["num_classes"] == 1000
    assert info["class_names"][285] == "Egyptian cat"
    from camloc.method_names import NAMES

    assert info["methods"] == list(NAMES)  # every registered method (CAM: this head is exact)
    assert info["max_upload"] == 20 * 1024 * 1024 and info["box_cap"] == 512
    samples = client.get("/api/samples").json()["samples"]
    assert "chelsea.png" in samples
    assert Image.open(io.BytesIO(client.get("/api/samples/chelsea.png").content)).size == (451, 300)
    assert client.get("/api/samples/..%2F..%2Fsetup.py").status_code == 404


def _error(resp, status):
    assert resp.status_code == status, resp.text
    reason = resp.json()["error"]
    assert reason and "\n" not in reason
    return reason


def test_bad_requests_are_one_line_json_4xx(client, chelsea, tmp_path):
    _, data = chelsea
    marker = tmp_path / "unpickled"

    class Payload:  # unpickling this would create the marker file
        def __reduce__(self):
            return (open, (str(marker), "w"))

    blob = pickle.dumps(Payload())
    assert "not an image" in _error(post(client, blob, name="x.png"), 415)
    assert "not an image" in _error(post(client, blob, name="x.pkl", ctype="application/octet-stream"), 415)
    npy = io.BytesIO()
    np.save(npy, np.zeros((4, 4)))
    assert "not an image" in _error(post(client, npy.getvalue(), name="x.npy"), 415)
    assert not marker.exists()
    assert "empty upload" in _error(post(client, b""), 400)
    assert _error(post(client, data[: len(data) // 2], name="half.png"), 422).startswith("half.png: ")
    assert "'topk'" in _error(post(client, data, topk=0), 400)
    assert "'topk'" in _error(post(client, data, topk="many"), 400)
    assert "'threshold'" in _error(post(client, data, threshold=1.5), 400)
    assert "unknown map method" in _error(post(client, data, method="magic"), 400)
    assert "has no class 'not a class'" in _error(post(client, data, **{"class": "not a class"}), 400)
    assert "out of range" in _error(post(client, data, **{"class": "1000"}), 400)
    assert "field 'file'" in _error(client.post("/api/localize", data={"topk": "1"}, files={"x": ("a", b"b")}), 400)
    assert "multipart" in _error(client.post("/api/localize", content=data, headers={"content-type": "image/png"}), 415)
    assert _error(client.get("/api/nothing"), 404)
    assert _error(client.get("/api/localize"), 405)


def test_upload_limit_and_decompression_bomb(engine, chelsea, monkeypatch):
    _, data = chelsea
    small = TestClient(create_app(engine, max_upload=len(data) // 2))
    assert "over the limit" in _error(post(small, data), 413)

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b"x" * len(data)

    resp = small.post("/api/localize", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert "over the limit" in _error(resp, 413)
    client = TestClient(create_app(engine))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    assert "decompression-bomb" in _error(post(client, data), 413)


def test_every_asset_is_served_by_camloc(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    names = sorted(os.listdir(STATIC))
    assert names == ["app.js", "box.js", "index.html", "style.css"]
    for name in names:
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
        assert client.get(f"/static/{name}").status_code == 200
    assert 'src="/static/box.js"' in page.text and 'src="/static/app.js"' in page.text


def test_serve_command_options_without_torch(tmp_path):
    code = ("import sys, json\nfrom camloc.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "print(json.dumps([rc, 'torch' in sys.modules]))")
    for argv, want in ((["serve", "--help"], 0), (["serve", "--port", "70000"], 1)):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
        rc, torch_loaded = json.loads(proc.stdout.strip().splitlines()[-1])
        assert (rc, torch_loaded) == (want, False), proc.stderr
    assert "--port must be in 0..65535, got 70000" in proc.stderr


def test_an_unexpected_failure_is_json_too(engine, chelsea, monkeypatch):
    _, data = chelsea

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\non two lines")

    monkeypatch.setattr(engine, "localize", broken)
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    assert _error(post(client, data), 500) == "internal error (RuntimeError: a bug on two lines)"


def test_serve_command_listens_on_loopback(tmp_path):
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "camloc.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/models", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "camloc serve did not start"
                time.sleep(0.2)
        assert info["model"] == "efficientnet_lite1" and info["resize"] == "aspect:288"  # localize's defaults
        assert httpx.get(f"http://127.0.0.1:{port}/").text.startswith("<!doctype html>")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert f"camloc serve: efficientnet_lite1 on http://127.0.0.1:{port}/" in err


def test_scores_use_the_temperature_localize_uses(lite0, chelsea):
    """The page's scores are localize's: the shipped temperature of the embedded net by default, a
    calibration file's when serve is given one (here 2.0: flatter), and the logits stay raw."""
    from camloc.localize import score_temperature
    from camloc.serve.engine import Options

    path, data = chelsea
    shipped = Engine(lite0)
    assert shipped.temperature == score_temperature(lite0, shipped.resize)[0] != 1.0
    assert shipped.info()["temperature"] == shipped.temperature
    warm = Engine(lite0, temperature=2.0)
    opts = Options(topk=2)
    a = shipped.localize(data, "chelsea.png", opts)
    b = warm.localize(data, "chelsea.png", opts)
    pa, pb = a["record"]["predictions"], b["record"]["predictions"]
    assert [p["logit"] for p in pa] == [p["logit"] for p in pb]
    assert pb[0]["score"] < pa[0]["score"]
    want = next(iter_localize(lite0, [path], topk=2, progress=False, temperature=2.0)).record["predictions"]
    assert [p["score"] for p in pb] == [p["score"] for p in want]
    logits = np.array([p["logit"] for p in pb])
    assert pb[0]["score"] / pb[1]["score"] == pytest.approx(float(np.exp((logits[0] - logits[1]) / 2.0)), rel=1e-4)


def test_serve_method_is_the_default_of_the_page_and_of_requests_without_one(lite0, chelsea):
    """``serve --method``: /api/models names it, a request without a method field gets it (the same
    record and maps as asking for it), and its options build the method the page uses."""
    _, data = chelsea
    engine = Engine(lite0, method="gradcampp")
    client = TestClient(create_app(engine))
    assert client.get("/api/models").json()["default_method"] == "gradcampp"
    plain, named = post(client, data, topk=1).json(), post(client, data, topk=1, method="gradcampp").json()
    assert plain["method"] == "gradcampp" and plain["record"] == named["record"]
    assert plain["maps"] != post(client, data, topk=1, method="cam").json()["maps"]  # not CAM's map
    assert Engine(lite0).default_method == "cam"
    smooth = Engine(lite0, method="smoothgradcampp", method_options={"n": 3})
    assert smooth._method("smoothgradcampp").n == 3
    with pytest.raises(ValueError, match="unknown map method"):
        Engine(lite0, method="nope")


def test_serve_command_checks_its_method_in_one_line():
    import argparse

    from camloc.commands import serve
    from camloc.errors import MethodError

    def args(**kw):
        p = argparse.ArgumentParser()
        serve.add_arguments(p)
        return p.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])

    with pytest.raises(MethodError, match="gradcamm"):
        serve.check(args(method="gradcamm"))
    serve.check(args(method="gradcam", backend="onnxruntime"))  # its forward on ONNX Runtime, its backward in PyTorch
    ok = args(method="layercam", method_option="layers=_blocks.15")
    serve.check(ok)
    assert ok.method_options == {"layers": ["_blocks.15"]} or ok.method_options == {"layers": "_blocks.15"}
