"""The WSOL evaluation metadata reader/writer on fixtures written in exactly that layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from camloc.data import DataError, Sample, Split, read_wsol, write_wsol
from camloc.testing import write_wsol_fixture


def _write(folder, **files: str) -> str:
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(folder, f"{name}.txt"), "w") as f:
            f.write(text)
    return str(folder)


GOOD = dict(
    image_ids="b/2.jpg\na/1.jpg\n",
    class_labels="a/1.jpg,0\nb/2.jpg,1\n",
    image_sizes="a/1.jpg,50,40\nb/2.jpg,20,10\n",
    localization="b/2.jpg,0,0,19,9\na/1.jpg,1,2,3,4\na/1.jpg,10,11,49,39\n",
)


def test_reads_hand_written_metadata_in_image_ids_order(tmp_path):
    meta = _write(tmp_path / "test", **GOOD)
    split = read_wsol(meta, image_root="/data/CUB")
    assert split.name == "test"
    assert split.classes == ["class_0", "class_1"]
    assert split.skipped == []
    assert split.samples == [
        Sample("b/2.jpg", os.path.join("/data/CUB", "b/2.jpg"), 1, [[0, 0, 19, 9]], (20, 10)),
        Sample("a/1.jpg", os.path.join("/data/CUB", "a/1.jpg"), 0, [[1, 2, 3, 4], [10, 11, 49, 39]], (50, 40)),
    ]


def test_image_root_defaults_to_metadata_dir_and_class_names_file(tmp_path):
    meta = _write(tmp_path / "val", **GOOD, class_names="albatross\nsparrow\n")
    split = read_wsol(meta)
    assert split.samples[0].path == os.path.join(meta, "b/2.jpg")
    assert split.classes == ["albatross", "sparrow"]


def test_box_fixture_reads_back_exactly(tmp_path):
    fx = write_wsol_fixture(tmp_path, "test", class_names=True)
    split = read_wsol(fx.metadata_dir)
    assert split.samples == fx.split.samples
    assert split.classes == fx.split.classes
    assert [len(s.boxes) for s in split.samples] == [1, 2] * 3
    # the fixture's box is exactly the painted rectangle (inclusive corners)
    s = split.samples[0]
    arr = np.asarray(Image.open(s.path).convert("L"), dtype=np.int32)
    assert arr.shape == (s.size[1], s.size[0])
    x0, y0, x1, y1 = s.boxes[0]
    bright = np.argwhere(arr > 90)
    assert bright[:, 1].min() == x0 and bright[:, 1].max() == x1
    assert bright[:, 0].min() == y0 and bright[:, 0].max() == y1


def test_mask_fixture_reads_masks_and_ignore(tmp_path):
    fx = write_wsol_fixture(tmp_path, "test", masks=True)
    split = read_wsol(fx.metadata_dir)
    assert split.samples == fx.split.samples
    second = split.samples[1]
    assert second.size is None and second.boxes == []
    assert [os.path.basename(m) for m in second.masks] == ["Bird_0_0001_101_m0_0.png", "Bird_0_0001_101_m0_1.png"]
    assert second.mask == second.masks[0]
    assert os.path.basename(second.ignore) == "Bird_0_0001_101_ignore.png"
    assert all(os.path.isfile(m) for m in second.masks)


def test_mask_root_option(tmp_path):
    meta = _write(tmp_path / "m", image_ids="x.jpg\n", class_labels="x.jpg,0\n", localization="x.jpg,x_m.png,\n")
    s = read_wsol(meta, image_root="/imgs", mask_root="/masks").samples[0]
    assert (s.path, s.mask, s.masks, s.ignore) == ("/imgs/x.jpg", "/masks/x_m.png", ["/masks/x_m.png"], None)


def test_optional_files_absent_means_no_sizes_no_boxes(tmp_path):
    meta = _write(tmp_path / "train", image_ids="a.jpg\nb.jpg\n", class_labels="a.jpg,4\nb.jpg,0\n")
    split = read_wsol(meta)
    assert [(s.label, s.boxes, s.size) for s in split.samples] == [(4, [], None), (0, [], None)]
    assert len(split.classes) == 5


def test_crlf_bom_and_trailing_blank_lines(tmp_path):
    meta = _write(tmp_path / "t", image_ids="\ufeffa.jpg\r\nb.jpg\r\n\r\n", class_labels="a.jpg,0\r\nb.jpg,0\r\n")
    assert [s.image_id for s in read_wsol(meta).samples] == ["a.jpg", "b.jpg"]


# ----------------------------------------------------------------------------- bad input

LINE_ERRORS = [
    ("class_labels", "a/1.jpg,0\nb/2.jpg,1,7\n", "class_labels.txt:2: expected 2 fields, got 3"),
    ("class_labels", "a/1.jpg,zero\nb/2.jpg,1\n", "class_labels.txt:1: class index 'zero' is not a number"),
    ("image_sizes", "a/1.jpg,50,40\nb/2.jpg,20.5,10\n", "image_sizes.txt:2: width '20.5' is not an integer"),
    ("localization", "b/2.jpg,0,0,19,9\na/1.jpg,1,2,3\n", "localization.txt:2: expected 3 or 5 fields, got 4"),
    ("localization", "b/2.jpg,0,0,19,9\na/1.jpg,m.png,\n", "localization.txt:2: expected 5 fields like line 1, got 3"),
    ("localization", "b/2.jpg,0,0,19,nan\n", "localization.txt:1: y1 'nan' is not finite"),
    ("image_ids", "a/1.jpg\nb/2.jpg,1\n", "image_ids.txt:2: expected 1 field"),
]


@pytest.mark.parametrize("name, text, message", LINE_ERRORS)
def test_malformed_line_is_a_one_line_error_with_file_and_line(tmp_path, name, text, message):
    meta = _write(tmp_path / "s", **{**GOOD, name: text})
    with pytest.raises(DataError) as err:
        read_wsol(meta)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(os.path.join(meta, ""))


IMAGE_PROBLEMS = [
    ("localization", "b/2.jpg,0,0,19,9\na/1.jpg,5,2,3,4\n", "localization.txt:2: box [5, 2, 3, 4] has x1 < x0"),
    ("localization", "b/2.jpg,0,0,19,9\na/1.jpg,1,5,3,4\n", "localization.txt:2: box [1, 5, 3, 4] has y1 < y0"),
    ("localization", "b/2.jpg,0,0,19,9\na/1.jpg,0,0,50,39\n", "localization.txt:2: box [0, 0, 50, 39] lies outside"),
    ("localization", "b/2.jpg,0,0,19,9\na/1.jpg,-1,0,5,5\n", "localization.txt:2: box [-1, 0, 5, 5] lies outside"),
    ("localization", "b/2.jpg,0,0,19,9\n", "localization.txt: no line for image id 'a/1.jpg' (image_ids.txt:2)"),
    ("class_labels", "b/2.jpg,1\n", "class_labels.txt: no line for image id 'a/1.jpg' (image_ids.txt:2)"),
    ("class_labels", "b/2.jpg,1\na/1.jpg,-2\n", "class_labels.txt:2: class index -2 is negative"),
    ("class_labels", "b/2.jpg,1\na/1.jpg,0\na/1.jpg,1\n", "class_labels.txt:3: second, different class index"),
    ("class_labels", "b/2.jpg,1\na/1.jpg,12345678901234567890\n",  # once a MemoryError (a list of 1e19 names)
     "class_labels.txt:2: class index 12345678901234567890 is beyond 99999, the most without a class_names.txt"),
    ("class_labels", "b/2.jpg,1\na/1.jpg,1e30\n", "class_labels.txt:2: class index 1000000000000000019884624838656 is beyond 99999"),
    ("image_sizes", "b/2.jpg,20,10\n", "image_sizes.txt: no line for image id 'a/1.jpg' (image_ids.txt:2)"),
    ("image_sizes", "b/2.jpg,20,10\na/1.jpg,0,40\n", "image_sizes.txt:2: image size 0x40 is empty"),
]


@pytest.mark.parametrize("name, text, message", IMAGE_PROBLEMS)
def test_per_image_problem_skips_the_image_or_raises_when_strict(tmp_path, name, text, message):
    meta = _write(tmp_path / "s", **{**GOOD, name: text})
    split = read_wsol(meta)
    assert [s.image_id for s in split.samples] == ["b/2.jpg"]
    assert len(split.skipped) == 1 and message in split.skipped[0] and "'a/1.jpg'" in split.skipped[0]
    with pytest.raises(DataError) as err:
        read_wsol(meta, strict=True)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_label_beyond_class_names_is_skipped(tmp_path):
    meta = _write(tmp_path / "s", **GOOD, class_names="only_one\n")
    split = read_wsol(meta)
    assert [s.image_id for s in split.samples] == ["a/1.jpg"]
    assert "class index 1 of 'b/2.jpg' is out of range for 1 classes" in split.skipped[0]
    meta = _write(tmp_path / "t", **{**GOOD, "class_labels": "a/1.jpg,0\nb/2.jpg,99999999999999999999\n"},
                  class_names="only_one\n")
    split = read_wsol(meta)
    assert [s.image_id for s in split.samples] == ["a/1.jpg"] and split.classes == ["only_one"]
    assert "class index 99999999999999999999 of 'b/2.jpg' is out of range for 1 classes" in split.skipped[0]


def test_the_largest_index_without_class_names_makes_the_class_list(tmp_path):
    meta = _write(tmp_path / "s", **{**GOOD, "class_labels": "a/1.jpg,0\nb/2.jpg,99999\n"})
    split = read_wsol(meta)
    assert len(split.classes) == 100_000 and split.classes[-1] == "class_99999" and not split.skipped


def test_lines_for_unknown_ids_and_repeated_ids_are_ignored_and_recorded(tmp_path):
    meta = _write(tmp_path / "s", **{**GOOD, "image_ids": "b/2.jpg\na/1.jpg\nb/2.jpg\n",
                                     "class_labels": "a/1.jpg,0\nb/2.jpg,1\nc/3.jpg,1\n"})
    split = read_wsol(meta)
    assert [s.image_id for s in split.samples] == ["b/2.jpg", "a/1.jpg"]
    assert any("image_ids.txt:3: image id 'b/2.jpg' listed again (first at line 1)" in r for r in split.skipped)
    assert any("class_labels.txt:3: image id 'c/3.jpg' is not in image_ids.txt" in r for r in split.skipped)
    with pytest.raises(DataError, match=r"image_ids.txt:3: image id 'b/2.jpg' listed again"):
        read_wsol(meta, strict=True)


def test_empty_split_is_always_an_error(tmp_path):
    meta = _write(tmp_path / "e", image_ids="\n", class_labels="")
    with pytest.raises(DataError, match=r"image_ids.txt: no usable images \(0 listed\)"):
        read_wsol(meta)
    meta = _write(tmp_path / "f", image_ids="a.jpg\n", class_labels="a.jpg,0\n", image_sizes="a.jpg,5,5\n",
                  localization="a.jpg,0,0,5,5\n")
    with pytest.raises(DataError, match=r"no usable images \(1 listed\); first: skipped 'a.jpg': .*lies outside"):
        read_wsol(meta)


def test_missing_required_file_and_bad_class_names(tmp_path):
    meta = _write(tmp_path / "x", image_ids="a.jpg\n")
    with pytest.raises(DataError, match=r"class_labels.txt: no such file"):
        read_wsol(meta)
    meta = _write(tmp_path / "y", image_ids="a.jpg\n", class_labels="a.jpg,0\n", class_names="a\n\nc\n")
    with pytest.raises(DataError, match=r"class_names.txt:2: empty class name"):
        read_wsol(meta)


def test_not_utf8_names_the_line(tmp_path):
    meta = _write(tmp_path / "u", image_ids="a.jpg\n", class_labels="a.jpg,0\n")
    with open(os.path.join(meta, "image_ids.txt"), "wb") as f:
        f.write(b"a.jpg\n\xff\xfe.jpg\n")
    with pytest.raises(DataError, match=r"image_ids.txt:2: not UTF-8 text"):
        read_wsol(meta)


# ----------------------------------------------------------------------------- writing


def test_write_then_read_round_trips_boxes_and_masks(tmp_path):
    for masks in (False, True):
        fx = write_wsol_fixture(tmp_path / f"src{masks}", masks=masks, class_names=True)
        out = tmp_path / f"copy{masks}"
        written = write_wsol(fx.split, out)
        assert os.path.join(out, "image_ids.txt") in written
        back = read_wsol(out, image_root=fx.image_root)
        assert back.samples == fx.split.samples and back.classes == fx.split.classes
        assert os.path.exists(os.path.join(out, "image_sizes.txt")) is (not masks)


def test_write_matches_published_text_format(tmp_path):
    split = Split([Sample("v/1.JPEG", "/r/v/1.JPEG", 1, [[1, 2, 3, 4], [0, 0, 9, 9]], (10, 10))], ["a", "b"])
    write_wsol(split, tmp_path)
    read = lambda n: (tmp_path / n).read_text()  # noqa: E731
    assert read("image_ids.txt") == "v/1.JPEG\n"
    assert read("class_labels.txt") == "v/1.JPEG,1\n"
    assert read("image_sizes.txt") == "v/1.JPEG,10,10\n"
    assert read("localization.txt") == "v/1.JPEG,1,2,3,4\nv/1.JPEG,0,0,9,9\n"
    assert read("class_names.txt") == "a\nb\n"


@pytest.mark.parametrize("sample, message", [
    (Sample("a,b.jpg", "p", 0, [[0, 0, 1, 1]], (5, 5)), "image id must be non-empty, without commas"),
    (Sample("a.jpg", "p", 3, [[0, 0, 1, 1]], (5, 5)), "label 3 out of range for 2 classes"),
    (Sample("a.jpg", "p", 0, [[0, 0, 5, 1]], (5, 5)), "box [0, 0, 5, 1] lies outside"),
    (Sample("a.jpg", "p", 0, [], (5, 5)), "no box while other samples have boxes"),
    (Sample("a.jpg", "p", 0, [[0, 0, 1, 1]], None), "no image size while other samples have one"),
])
def test_write_rejects_unwritable_samples(tmp_path, sample, message):
    good = Sample("g.jpg", "p", 0, [[0, 0, 1, 1]], (5, 5))
    with pytest.raises(DataError) as err:
        write_wsol(Split([good, sample], ["x", "y"]), tmp_path)
    assert message in str(err.value) and "sample 1" in str(err.value)
    assert not (tmp_path / "image_ids.txt").exists()


def test_write_removes_stale_optional_files(tmp_path):
    write_wsol(Split([Sample("a.jpg", "p", 0, [[0, 0, 1, 1]], (5, 5))], ["x"]), tmp_path)
    write_wsol(Split([Sample("a.jpg", "p", 0)], ["x"]), tmp_path)
    assert not (tmp_path / "localization.txt").exists() and not (tmp_path / "image_sizes.txt").exists()
    assert read_wsol(tmp_path).samples[0].boxes == []


_ids = st.lists(st.text(alphabet="abcXYZ019_-./ ", min_size=1, max_size=12).map(lambda s: f"d/{s.strip()}x.jpg"),
                min_size=1, max_size=6, unique=True)


@st.composite
def splits(draw):
    ids = draw(_ids)
    n_classes = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["none", "boxes", "masks"]))
    with_sizes = kind != "masks" or draw(st.booleans())
    samples = []
    for image_id in ids:
        w, h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
        boxes = []
        if kind == "masks":
            stem = image_id[: -len(".jpg")]
            masks = [f"/root/{stem}_m{j}.png" for j in range(draw(st.integers(1, 3)))]
            ignore = f"/root/{stem}_ignore.png" if draw(st.booleans()) else None
            samples.append(Sample(image_id, f"/root/{image_id}", draw(st.integers(0, n_classes - 1)), [],
                                  (w, h) if with_sizes else None, masks[0], ignore, masks))
            continue
        if kind == "boxes":
            for _ in range(draw(st.integers(1, 3))):
                x0, x1 = sorted(draw(st.lists(st.integers(0, w - 1), min_size=2, max_size=2)))
                y0, y1 = sorted(draw(st.lists(st.integers(0, h - 1), min_size=2, max_size=2)))
                boxes.append([x0, y0, x1, y1])
        samples.append(Sample(image_id, f"/root/{image_id}", draw(st.integers(0, n_classes - 1)), boxes, (w, h)))
    names = [f"c{i} name" for i in range(n_classes)]
    return Split(samples, names, name="meta")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(split=splits())
def test_round_trip_property(tmp_path_factory, split):
    folder = tmp_path_factory.mktemp("meta")
    write_wsol(split, folder)
    back = read_wsol(folder, image_root="/root")
    assert back.samples == split.samples
    assert back.classes == split.classes
    assert back.skipped == []


# --------------------------------------------------------------------------- the published metadata
PUBLISHED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "wsol-metadata")
needs_published = pytest.mark.skipif(not os.path.isdir(PUBLISHED),
                                     reason="the published WSOL metadata (../shared/data/wsol-metadata) is absent")


def _lines(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


@needs_published
@pytest.mark.parametrize("dataset, split, images, classes", [
    ("CUB", "train", 5994, 200), ("CUB", "val", 1000, 200), ("CUB", "test", 5794, 200),
    ("ILSVRC", "val", 10000, 1000), ("ILSVRC", "test", 50000, 1000),
    ("OpenImages", "train", 29819, 100), ("OpenImages", "val", 2500, 100), ("OpenImages", "test", 5000, 100),
])
def test_reads_every_published_split(dataset, split, images, classes):
    meta = os.path.join(PUBLISHED, dataset, split)
    got = read_wsol(meta, strict=True)
    assert len(got.samples) == images == _lines(os.path.join(meta, "image_ids.txt"))
    assert len(got.classes) == classes and got.skipped == []
    loc = _lines(os.path.join(meta, "localization.txt"))
    if dataset == "OpenImages":  # masks, and an empty image_sizes.txt: no sizes
        assert os.path.getsize(os.path.join(meta, "image_sizes.txt")) == 0
        assert all(s.size is None and s.boxes == [] for s in got.samples)
        assert sum(len(s.masks) for s in got.samples) == loc
        assert all(s.ignore is not None and s.masks for s in got.samples) or loc == 0
    else:
        assert all(s.size is not None for s in got.samples)
        assert sum(len(s.boxes) for s in got.samples) == loc
        assert all(0 <= b[0] <= b[2] < s.size[0] and 0 <= b[1] <= b[3] < s.size[1]
                   for s in got.samples for b in s.boxes)


@needs_published
def test_published_ilsvrc_train_without_image_ids_is_a_one_line_error():
    meta = os.path.join(PUBLISHED, "ILSVRC", "train")
    with pytest.raises(DataError, match=r"ILSVRC/train/image_ids\.txt: no such file$"):
        read_wsol(meta)


@needs_published
def test_published_openimages_masks_read_as_ground_truth():
    from camloc.metrics.pxap import PxAPEvaluator, ground_truth

    root = os.path.join(PUBLISHED, "openimages-test-masks", "test_masks")
    split = read_wsol(os.path.join(PUBLISHED, "OpenImages", "val"), mask_root=root)
    have = [s for s in split.samples if all(os.path.isfile(m) for m in s.masks + [s.ignore])]
    on_disk = sum(len(files) for _, _, files in os.walk(root))
    assert len(have) == 5 and sum(len(s.masks) + 1 for s in have) == on_disk == 11
    assert [len(s.masks) for s in have if "3a29f0b33894d4a6" in s.image_id] == [2]
    ev = PxAPEvaluator(0.01)
    for s in have:
        gt = ground_truth(s.masks, s.ignore)
        assert gt.shape == (224, 224) and set(np.unique(gt)) <= {0, 1, 255}
        if "/0bt_c3/" in s.image_id:  # 1-bit masks; the 0by6g ones are RGBA, read gray as the protocol does
            assert (gt == 1).any() and (gt == 0).any()
        ev.accumulate([(gt == 1).astype(np.float64)], [gt])  # the mask itself as the score map
    assert ev.compute()["PxAP"] == pytest.approx(100.0)
