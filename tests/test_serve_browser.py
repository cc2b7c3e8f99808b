"""camloc serve's page in a real browser: Debian's chromium (headless) driven by Selenium against the
server on 127.0.0.1. Load the page, pick a bundled photo, see the label and the box, move the
threshold slider and see the box follow (computed in the page), pick another class; and the page's
box rule gives Python's boxes for the same maps.

Skipped, saying why, when chromium, its driver or Selenium is missing (``make test`` installs
chromium and chromium-driver with apt when it can). ``CAMLOC_SCREENSHOT=docs/serve.png`` also
saves the page as shown after the photo is localized.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="camloc serve needs the serve extra (starlette)")
uvicorn = pytest.importorskip("uvicorn", reason="camloc serve needs the serve extra (uvicorn)")
pytest.importorskip("selenium", reason="the browser test needs selenium (the test extra)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from camloc.localize import BOX_CAP, iter_localize, predictions_for  # noqa: E402
from camloc.serve.app import create_app  # noqa: E402
from camloc.serve.engine import Engine  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> tuple[str, str]:
    binary = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = shutil.which("chromedriver") or (os.path.exists("/usr/lib/chromium/chromedriver")
                                              and "/usr/lib/chromium/chromedriver") or None
    if binary is None or driver is None:
        pytest.skip("no chromium and chromedriver on this machine: install Debian's chromium and chromium-driver "
                    "(make test does when it can) to run the browser test of camloc serve")
    return binary, driver


@pytest.fixture(scope="module")
def server(lite0):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(Engine(lite0)), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    binary, driver_path = _browser()
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    except Exception as err:  # a driver that does not match the browser, no display libraries, ...
        pytest.skip(f"chromium could not be started by Selenium: {' '.join(str(err).split())[:200]}")
    yield driver
    driver.quit()


def _shown(browser, timeout=60):
    """Wait for the page to finish a request; return the box and label it shows."""
    WebDriverWait(browser, timeout).until(lambda d: d.find_element(By.ID, "box").get_attribute("data-box"))
    el = browser.find_element(By.ID, "box")
    return json.loads(el.get_attribute("data-box")), el.get_attribute("data-label")


def _wait_new(browser, before, timeout=60):
    WebDriverWait(browser, timeout).until(lambda d: (d.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
                                                     or "") != before)


def _slide(browser, element_id, value):
    browser.execute_script("const el = document.getElementById(arguments[0]); el.value = arguments[1];"
                           "el.dispatchEvent(new Event('input', {bubbles: true}));", element_id, str(value))


def test_page_localizes_a_photo_and_follows_the_sliders(browser, downloads, server, lite0, photo_dir):
    path = os.path.join(photo_dir, "chelsea.png")
    browser.get(server + "/")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#samples button[data-sample]"))
    assert "efficientnet_lite0" in browser.find_element(By.ID, "model").text
    browser.find_element(By.CSS_SELECTOR, "#samples button[data-sample='chelsea.png']").click()
    _wait_new(browser, "")
    box, label = _shown(browser)
    want = next(iter_localize(lite0, [path], topk=5, threshold=0.2, progress=False))
    top = want.record["predictions"][0]
    assert (label, box) == (top["label"], top["box"]) == ("Egyptian cat", top["box"])
    items = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#predictions li")]
    assert len(items) == 5 and items[0].startswith("1. Egyptian cat")
    if os.environ.get("CAMLOC_SCREENSHOT"):
        browser.save_screenshot(os.environ["CAMLOC_SCREENSHOT"])

    # The threshold slider: the box follows, computed in the page, and is Python's at that threshold.
    ready = browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
    for t in (0.5, 0.8):
        _slide(browser, "threshold", t)
        moved, _ = _shown(browser)
        at_t = predictions_for(lite0, np.zeros(lite0.num_classes), np.array([top["class_index"]]), want.maps[:1],
                               (want.record["width"], want.record["height"]), t, norm=top["norm"],
                               box_cap=BOX_CAP)[0]["box"]
        assert moved == at_t
    assert moved != box
    # The downloads: the record as localize writes it at the slider's threshold, and the overlay.
    at_08 = next(iter_localize(lite0, [path], topk=5, threshold=0.8, progress=False)).record
    assert browser.execute_script("return currentRecord();") == dict(at_08, image="chelsea.png")
    browser.find_element(By.ID, "download-json").click()
    browser.find_element(By.ID, "download-png").click()
    saved = {"json": downloads / "chelsea_record.json", "png": downloads / "chelsea_overlay.png"}
    WebDriverWait(browser, 30).until(lambda d: all(p.exists() and p.stat().st_size for p in saved.values()))
    assert json.loads(saved["json"].read_text()) == dict(at_08, image="chelsea.png")
    with Image.open(saved["png"]) as png:
        assert (png.format, png.size) == ("PNG", (451, 300))
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == ready  # no round trip
    _slide(browser, "opacity", 0.9)
    assert browser.find_element(By.ID, "opacity-value").text == "0.90"

    # Another class, not among the top 5: a request with `class`.
    _slide(browser, "threshold", 0.2)
    browser.find_element(By.ID, "class").send_keys("goldfish")
    browser.find_element(By.ID, "show-class").click()
    _wait_new(browser, ready)
    box, label = _shown(browser)
    assert label == "goldfish"
    selected = browser.find_element(By.CSS_SELECTOR, "#predictions li.selected")
    assert selected.get_attribute("data-class") == "1"
    # Clicking a listed class switches the map without a request.
    ready = browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
    browser.find_elements(By.CSS_SELECTOR, "#predictions li")[1].click()
    assert _shown(browser) == (want.record["predictions"][1]["box"], want.record["predictions"][1]["label"])
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == ready


def test_page_box_rule_equals_python(browser, server, lite0):
    """The page's box (box.js) against :func:`camloc.localize.predictions_for` on the same raw maps:
    random and smooth maps, both readings, thresholds from 0 to 0.9, images above the 512-pixel
    cap included."""
    if not browser.current_url.startswith(server):
        browser.get(server + "/")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return typeof camlocBox !== 'undefined'"))
    rng = np.random.default_rng(0)
    cases, want = [], []
    zeros = np.zeros(lite0.num_classes)
    for i in range(120):
        h, w = (int(v) for v in rng.integers(2, 14, 2))
        width, height = (int(v) for v in rng.integers(20, 1600, 2))
        m = (rng.standard_normal((h, w)) * rng.uniform(0.1, 20)).astype(np.float32)
        if i % 3 == 0:
            m = np.cumsum(np.cumsum(m, 0), 1).astype(np.float32)
        t = float(rng.choice([0.0, 0.1, 0.2, 0.35, 0.5, 0.9]))
        norm = ("minmax", "positive")[i % 2]
        p = predictions_for(lite0, zeros, np.array([0]), m[None], (width, height), t, norm=norm, box_cap=BOX_CAP)[0]
        cases.append({"shape": [h, w], "data": [float(v) for v in m.ravel()], "width": width, "height": height,
                      "t": t, "norm": norm})
        want.append(p["box"])
    # Ties in area: OpenCV numbers components by 2x2 blocks, not pixel by pixel (the first two
    # cases: the component whose first pixel comes first in raster order loses), and so does the page.
    for shape, points in (((4, 8), [(1, 0), (0, 5)]), ((6, 9), [(3, 1), (2, 7), (5, 4)]),
                          ((300, 400), [(101, x) for x in range(10, 20)] + [(100, x) for x in range(300, 310)])):
        m = np.zeros(shape, np.float32)
        m[tuple(np.array(points).T)] = 1.0
        height, width = shape
        p = predictions_for(lite0, zeros, np.array([0]), m[None], (width, height), 0.5, box_cap=BOX_CAP)[0]
        cases.append({"shape": list(shape), "data": [float(v) for v in m.ravel()], "width": width, "height": height,
                      "t": 0.5, "norm": "minmax"})
        want.append(p["box"])
    assert want[-3:] == [[0, 1, 0, 1], [1, 3, 1, 3], [10, 101, 19, 101]]
    got = browser.execute_script(
        "return arguments[0].map(c => camlocBox.boxFromMap({shape: c.shape, data: c.data}, c.width, c.height, c.t, "
        "c.norm, arguments[1]).box);", cases, BOX_CAP)
    assert got == want


def test_page_file_input_method_picker_and_errors(browser, server, tmp_path, photo_dir):
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#method option"))
    from camloc.method_names import NAMES

    assert [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "method")).options] == \
        list(NAMES)  # every registered map method
    assert len(NAMES) == 23
    browser.find_element(By.ID, "file").send_keys(os.path.join(photo_dir, "coffee.png"))
    _wait_new(browser, "")
    assert _shown(browser)[1] == "espresso"
    ready = browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
    Select(browser.find_element(By.ID, "method")).select_by_value("gradcam")
    _wait_new(browser, ready)
    assert _shown(browser)[1] == "espresso"
    assert browser.find_element(By.ID, "status").text.endswith(", gradcam")
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"not an image at all")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 60).until(lambda d: "415" in d.find_element(By.ID, "status").text)
    status = browser.find_element(By.ID, "status")
    assert status.text == "415: photo.png: not an image (unrecognised format)"
    assert status.get_attribute("class") == "error"
