"""Decoding odd and broken images: each gets a one-line error naming the file, or a correct RGB image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from camloc.pixels.decode import load_image
from camloc.errors import ImageError


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


# --------------------------------------------------------------------------- 32-bit and float grayscale
def _gray(path) -> list[list[int]]:
    rgb = np.asarray(load_image(path))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    return rgb[..., 0].tolist()


@pytest.mark.parametrize("mode, values, expected", [
    # float: the finite range is stretched to 0..255; +inf white, -inf and NaN black
    ("F", [[0.0, 0.5, 1.0], [np.inf, -np.inf, np.nan]], [[0, 128, 255], [255, 0, 0]]),
    ("F", [[-3.0, -2.0], [-1.0, np.inf]], [[0, 128], [255, 255]]),
    ("F", [[7.5, 7.5], [7.5, 7.5]], [[128, 128], [128, 128]]),  # no range: mid-gray, documented
    # 32-bit integers: 8-bit values as they are, 16-bit values / 257, anything else by its range
    ("I", [[0, 10], [255, 200]], [[0, 10], [255, 200]]),
    ("I", [[0, 257], [65535, 32896]], [[0, 1], [255, 128]]),
    ("I", [[-10, -5], [0, -10]], [[0, 128], [255, 0]]),
    ("I", [[-2000000, -1000000], [-3000000, -3000000]], [[128, 255], [0, 0]]),
    ("I", [[-4, -4], [-4, -4]], [[128, 128], [128, 128]]),
])
def test_float_and_int_tiffs_keep_their_contrast_without_noise(tmp_path, capfd, mode, values, expected):
    arr = np.array(values, dtype=np.float32 if mode == "F" else np.int32)
    p = _save(Image.fromarray(arr, mode), tmp_path / "g.tif")
    assert Image.open(p).mode == mode
    assert _gray(p) == expected
    assert capfd.readouterr().err == ""


def test_float_tiff_without_a_finite_value_is_a_one_line_error(tmp_path, capfd):
    p = _save(Image.fromarray(np.full((3, 4), np.inf, np.float32), "F"), tmp_path / "inf.tif")
    with pytest.raises(ImageError) as err:
        load_image(p)
    assert str(err.value) == f"{p}: cannot decode (no finite pixel values in a 4x3 F image)"
    assert capfd.readouterr().err == ""


def test_libtiff_messages_go_into_the_one_line_error_not_stderr(tmp_path, capfd):
    from camloc.pixels import formats as images

    images._install_tiff_handler()
    if not images._tiff_handler:
        pytest.skip("this Pillow has no bundled libtiff whose messages camloc can take over")
    p = _save(Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64), "F"),
              tmp_path / "lzw.tif", compression="tiff_lzw")
    start, count = Image.open(p).tag_v2[273][0], Image.open(p).tag_v2[279][0]
    raw = bytearray(open(p, "rb").read())
    raw[start + count // 2 : start + count] = bytes(count - count // 2)  # the strip loses its end code
    open(p, "wb").write(raw)
    with pytest.raises(ImageError) as err:
        load_image(p)
    assert str(err.value) == f"{p}: cannot decode (decoder error -2; LZWDecode: Strip 0 not terminated with EOI code)"
    assert capfd.readouterr().err == ""
