"""Decoding odd and broken images: each gets a one-line error naming the file, or a correct RGB image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from camloc.data.images import ImageError, expand_paths, load_image


def _save(img: Image.Image, path, **kw) -> str:
    img.save(path, **kw)
    return str(path)


def test_grayscale_rgba_palette_cmyk_become_rgb(tmp_path):
    gray = _save(Image.new("L", (5, 4), 100), tmp_path / "g.png")
    rgba = Image.new("RGBA", (3, 3), (255, 0, 0, 0))  # fully transparent red -> white
    rgba.putpixel((0, 0), (0, 0, 255, 255))  # one opaque blue pixel
    rgba_p = _save(rgba, tmp_path / "a.png")
    pal = _save(Image.new("RGB", (4, 4), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE), tmp_path / "p.png")
    cmyk = _save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), tmp_path / "c.jpg")
    assert np.asarray(load_image(gray)).tolist()[0][0] == [100, 100, 100]
    a = np.asarray(load_image(rgba_p))
    assert a[0, 0].tolist() == [0, 0, 255] and a[1, 1].tolist() == [255, 255, 255]
    assert np.asarray(load_image(pal))[0, 0].tolist() == [10, 200, 30]
    c = np.asarray(load_image(cmyk))
    assert c.shape == (4, 4, 3) and c[0, 0, 0] > 200 and c[0, 0, 1] < 60  # red
    for p in (gray, rgba_p, pal, cmyk):
        assert load_image(p).mode == "RGB"


def test_sixteen_bit_is_rescaled(tmp_path):
    arr = np.array([[0, 65535], [32896, 257]], dtype=np.uint16)
    p = _save(Image.fromarray(arr), tmp_path / "d16.png")
    got = np.asarray(load_image(p))[:, :, 0]
    assert got.tolist() == [[0, 255], [128, 1]]


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = _save(img, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=100)
    out = load_image(p)
    assert out.size == (2, 6)
    arr = np.asarray(out)
    assert arr[0, 1].mean() > 200  # the white corner moved to the top right


def test_one_pixel_image(tmp_path):
    p = _save(Image.new("RGB", (1, 1), (1, 2, 3)), tmp_path / "one.png")
    assert np.asarray(load_image(p)).tolist() == [[[1, 2, 3]]]


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "empty", "directory"])
def test_broken_files_raise_one_line(tmp_path, kind):
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(ImageError) as err:
        load_image(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    p = _save(Image.new("L", (64, 64)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression-bomb"):
        load_image(p)


def test_expand_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    a = _save(Image.new("RGB", (2, 2)), tmp_path / "sub" / "a.png")
    (tmp_path / "sub" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    paths, errors = expand_paths([tmp_path / "sub", str(tmp_path / "sub" / "*.png"), tmp_path / "empty",
                                  tmp_path / "nope.jpg", str(tmp_path / "*.gif")])
    assert paths == [a]
    assert [e.split(": ", 1)[1] for e in errors] == ["folder holds no images", "no such file or folder",
                                                     "pattern matched no files"]
