"""The image-folder reader and the format-detecting ``open_dataset``."""

from __future__ import annotations

import os

import pytest

from camloc.data import DataError, detect_format, open_dataset, read_folder
from camloc.testing import (
    write_cub_fixture, write_folder_fixture, write_ilsvrc_fixture, write_wsol_fixture,
)


def test_folder_fixture_reads_back_exactly(tmp_path):
    fx = write_folder_fixture(tmp_path, "val")
    split = read_folder(fx.metadata_dir, name="val")
    assert split.samples == fx.split.samples and split.classes == ["cat", "dog", "fox"]
    assert [(s.image_id, s.label) for s in split.samples[:3]] == [
        ("cat/cat_000.jpg", 0), ("cat/cat_001.png", 0), ("dog/dog_000.jpg", 1)]
    assert all(s.boxes == [] and s.size is None for s in split.samples)


def test_folder_recursive_hidden_empty_and_loose(tmp_path):
    for rel in ("b/x/2.JPG", "b/1.png", "a/z.jpeg", "a/.hidden.jpg", "a/notes.txt", ".git/q.jpg", "loose.jpg"):
        os.makedirs(os.path.dirname(os.path.join(tmp_path, rel)) or tmp_path, exist_ok=True)
        open(os.path.join(tmp_path, rel), "wb").close()
    os.makedirs(tmp_path / "c")
    split = read_folder(tmp_path)
    assert split.classes == ["a", "b", "c"]
    assert [(s.image_id, s.label) for s in split.samples] == [("a/z.jpeg", 0), ("b/1.png", 1), ("b/x/2.JPG", 1)]
    assert split.skipped == [f"{tmp_path}: 1 images outside the class folders ignored",
                             f"{os.path.join(tmp_path, 'c')}: class folder holds no images"]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_folder(tmp_path / "missing")
    with pytest.raises(DataError, match=r"no class subfolders \(expected <root>/<class>/<image>\)"):
        read_folder(tmp_path)
    os.makedirs(tmp_path / "a")
    with pytest.raises(DataError, match=r"no images in its 1 class folders"):
        read_folder(tmp_path)


@pytest.mark.parametrize("writer, kwargs, fixture_split, split, fmt", [
    (write_wsol_fixture, {}, "test", "test", "wsol"),
    (write_cub_fixture, {}, "test", "val", "cub"),  # CUB ships train/test: "val" reads "test"
    (write_cub_fixture, {}, "train", "train", "cub"),
    (write_ilsvrc_fixture, {"annotations": "csv"}, "val", "val", "ilsvrc"),
    (write_ilsvrc_fixture, {"annotations": "csv"}, "train", "train", "ilsvrc"),
    (write_ilsvrc_fixture, {"annotations": "xml", "layout": "kaggle"}, "val", "val", "ilsvrc"),
    (write_ilsvrc_fixture, {"annotations": "xml", "mapping": False}, "val", "val", "ilsvrc"),
    (write_folder_fixture, {}, "val", "val", "folder"),
])
def test_open_dataset_detects_each_fixture(tmp_path, writer, kwargs, fixture_split, split, fmt):
    fx = writer(tmp_path, fixture_split, **kwargs)
    assert detect_format(tmp_path, split)[0] == fmt
    got = open_dataset(tmp_path, split)
    assert got.samples == fx.split.samples and got.classes == fx.split.classes
    assert open_dataset(tmp_path, split, format=fmt).samples == fx.split.samples


def test_open_dataset_wsol_metadata_dir_and_image_root(tmp_path):
    fx = write_wsol_fixture(tmp_path / "meta", "test", image_root=tmp_path / "images")
    got = open_dataset(fx.metadata_dir, image_root=fx.image_root)
    assert got.samples == fx.split.samples
    assert all(os.path.isfile(s.path) for s in got.samples)


def test_open_dataset_cub_val_means_test(tmp_path):
    fx = write_cub_fixture(tmp_path, "test")
    assert open_dataset(tmp_path).samples == fx.split.samples
    assert open_dataset(tmp_path, "train").samples == fx.extra["splits"]["train"].samples


def test_open_dataset_folder_without_split_folder(tmp_path):
    fx = write_folder_fixture(tmp_path, None)
    assert detect_format(tmp_path) == ("folder", str(tmp_path))
    assert open_dataset(tmp_path).samples == fx.split.samples


def test_open_dataset_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path)
    assert str(err.value).startswith(f"{tmp_path}: no dataset found for split 'val'") and "\n" not in str(err.value)
    write_folder_fixture(tmp_path, "train")
    with pytest.raises(DataError, match=r"no val/ folder \(it holds train\)"):
        open_dataset(tmp_path)
    with pytest.raises(DataError, match=r"unknown dataset format 'coco'"):
        open_dataset(tmp_path, format="coco")
    with pytest.raises(DataError, match=r"image_root applies to WSOL metadata only, not to the folder format"):
        open_dataset(tmp_path, "train", image_root="/x")
