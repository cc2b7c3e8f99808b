"""The CUB-200-2011 reader on fixtures written exactly as the dataset ships."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from camloc.data import DataError
from camloc.data.cub import cub_box, read_cub
from camloc.testing import write_cub_fixture


def _cub(folder, **files: str) -> str:
    base = {
        "classes": "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n",
        "images": "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg\n"
                  "2 001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg\n"
                  "3 002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg\n",
        "image_class_labels": "1 1\n2 1\n3 2\n",
        "train_test_split": "1 0\n2 0\n3 1\n",
        "bounding_boxes": "1 60.0 27.0 325.0 304.0\n2 139.0 30.0 153.0 264.0\n3 14.0 112.0 388.0 186.0\n",
    }
    base.update(files)
    os.makedirs(folder, exist_ok=True)
    for name, text in base.items():
        with open(os.path.join(folder, f"{name}.txt"), "w") as f:
            f.write(text)
    return str(folder)


def test_box_conversion_matches_the_published_metadata():
    # bounding_boxes.txt line 1 of CUB-200-2011 and the same image's line in the CVPR 2020 metadata
    assert cub_box(60.0, 27.0, 325.0, 304.0) == [60, 27, 385, 331]
    assert cub_box(14.0, 112.0, 388.0, 186.0) == [14, 112, 402, 298]
    assert cub_box(0.4, 0.5, 10.2, 0.0) == [0, 1, 11, 1]  # r(v) = floor(v + 0.5)


def test_hand_written_files_labels_boxes_order(tmp_path):
    root = _cub(tmp_path / "CUB_200_2011")
    test = read_cub(tmp_path, "test")  # the parent of CUB_200_2011/ works too
    assert test.name == "test"
    assert test.classes == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    assert [(s.image_id, s.label, s.boxes, s.size) for s in test.samples] == [
        ("001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg", 0, [[60, 27, 385, 331]], None),
        ("001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg", 0, [[139, 30, 292, 294]], None),
    ]
    assert test.samples[0].path == os.path.join(root, "images", test.samples[0].image_id)
    train = read_cub(root, "train")
    assert [(s.label, s.boxes) for s in train.samples] == [(1, [[14, 112, 402, 298]])]
    assert len(read_cub(root, "all")) == 3


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_fixture_reads_back_exactly(tmp_path, split):
    fx = write_cub_fixture(tmp_path, split)
    got = read_cub(fx.root, split)
    assert got.samples == fx.split.samples and got.classes == fx.split.classes and got.skipped == []


def test_fixture_box_is_the_painted_rectangle(tmp_path):
    fx = write_cub_fixture(tmp_path, num_classes=1, per_class=2)
    for s in read_cub(fx.root, "all").samples:
        arr = np.asarray(Image.open(s.path).convert("L"))
        ys, xs = np.nonzero(arr > 60)
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == s.boxes[0]


LINE_ERRORS = [
    ("bounding_boxes", "1 60.0 27.0 325.0\n", "bounding_boxes.txt:1: expected 5 fields, got 4"),
    ("bounding_boxes", "1 60.0 27.0 325.0 304.0\n2 a 30.0 153.0 264.0\n", "bounding_boxes.txt:2: x 'a' is not a number"),
    ("image_class_labels", "1 1\n2 one\n3 2\n", "image_class_labels.txt:2: class id 'one' is not a number"),
    ("images", "1 a.jpg\nx b.jpg\n", "images.txt:2: image id 'x' is not a number"),
    ("classes", "1 a\n3 b\n", "classes.txt: class ids must run 1..N"),
    ("classes", "1 a\n1 b\n", "classes.txt:2: class id 1 given twice"),
]


@pytest.mark.parametrize("name, text, message", LINE_ERRORS)
def test_malformed_lines(tmp_path, name, text, message):
    root = _cub(tmp_path / "c", **{name: text})
    with pytest.raises(DataError) as err:
        read_cub(root, "all")
    assert message in str(err.value) and "\n" not in str(err.value)


IMAGE_PROBLEMS = [
    ("bounding_boxes", "1 60.0 27.0 325.0 304.0\n3 14.0 112.0 388.0 186.0\n", "bounding_boxes.txt: no line for image id 2"),
    ("bounding_boxes", "1 60 27 325 304\n2 139 30 -1 264\n3 14 112 388 186\n", "bounding_boxes.txt:2: box x=139.0"),
    ("image_class_labels", "1 1\n2 7\n3 2\n", "image_class_labels.txt:2: class id 7 is not in classes.txt"),
    ("train_test_split", "1 0\n2 2\n3 1\n", "train_test_split.txt:2: split flag 2 is not 0 or 1"),
    ("train_test_split", "1 0\n3 1\n", "train_test_split.txt: no line for image id 2"),
    ("image_class_labels", "1 1\n2 1\n2 1\n3 2\n", "image_class_labels.txt:3: image id 2 given twice"),
]


@pytest.mark.parametrize("name, text, message", IMAGE_PROBLEMS)
def test_per_image_problems_skip_or_raise_when_strict(tmp_path, name, text, message):
    root = _cub(tmp_path / "c", **{name: text})
    split = read_cub(root, "test")
    assert [s.image_id for s in split.samples] == ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"]
    assert len(split.skipped) == 1 and message in split.skipped[0] and split.skipped[0].startswith("skipped image 2 ")
    assert len(read_cub(root, "train")) == 1
    with pytest.raises(DataError) as err:
        read_cub(root, "test", strict=True)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_skipped_image_reason_and_empty_split(tmp_path):
    root = _cub(tmp_path / "c", train_test_split="1 1\n2 1\n3 0\n", bounding_boxes="1 60 27 325 304\n3 14 112 388 186\n")
    train = read_cub(root, "train")
    assert [s.image_id for s in train.samples] == ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"]
    assert train.skipped == [f"skipped image 2 (001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg): "
                             f"{os.path.join(root, 'bounding_boxes.txt')}: no line for image id 2 "
                             f"(001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg)"]
    root2 = _cub(tmp_path / "d", train_test_split="1 0\n2 0\n3 0\n")
    with pytest.raises(DataError, match=r"images.txt: no usable images in split 'train' \(3 listed\)"):
        read_cub(root2, "train")


def test_unknown_split_and_missing_file(tmp_path):
    root = _cub(tmp_path / "c")
    with pytest.raises(DataError, match="CUB split must be one of train, test, all"):
        read_cub(root, "val")
    os.remove(os.path.join(root, "bounding_boxes.txt"))
    with pytest.raises(DataError, match=r"bounding_boxes.txt: no such file"):
        read_cub(root)
