"""The ILSVRC 2012 reader on fixtures written exactly as the dataset ships."""

from __future__ import annotations

import os

import pytest

from camloc.data import DataError
from camloc.testing import ILSVRC_SYNSETS, write_ilsvrc_fixture
from camloc.data.ilsvrc import read_ilsvrc, read_val_solution, read_voc_xml

W = [w for w, _ in ILSVRC_SYNSETS]


def _tiny(root, csv: str | None = None, xml: dict[str, str] | None = None, images=("ILSVRC2012_val_00000001.JPEG",),
          mapping: str | None = None) -> str:
    os.makedirs(os.path.join(root, "val"), exist_ok=True)
    for name in images:
        with open(os.path.join(root, "val", name), "wb") as f:
            f.write(b"not decoded by the reader")
    if csv is not None:
        with open(os.path.join(root, "LOC_val_solution.csv"), "w") as f:
            f.write(csv)
    for stem, text in (xml or {}).items():
        os.makedirs(os.path.join(root, "val_xml"), exist_ok=True)
        with open(os.path.join(root, "val_xml", f"{stem}.xml"), "w") as f:
            f.write(text)
    if mapping is not None:
        with open(os.path.join(root, "LOC_synset_mapping.txt"), "w") as f:
            f.write(mapping)
    return str(root)


def test_hand_written_csv_label_is_first_wnid_and_only_its_boxes_are_kept(tmp_path):
    root = _tiny(tmp_path, csv="ImageId,PredictionString\n"
                               "ILSVRC2012_val_00000002,n01443537 1 2 3 4\n"
                               "ILSVRC2012_val_00000001,n01751748 111 108 441 193 n01443537 0 0 9 9 n01751748 5 6 7 8\n",
                 images=("ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"),
                 mapping="n01443537 goldfish, Carassius auratus\nn01751748 sea snake\n")
    split = read_ilsvrc(root, "val")
    assert split.classes == ["goldfish, Carassius auratus", "sea snake"]
    assert [(s.image_id, s.label, s.boxes, s.size) for s in split.samples] == [
        ("val/ILSVRC2012_val_00000001.JPEG", 1, [[111, 108, 441, 193], [5, 6, 7, 8]], None),
        ("val/ILSVRC2012_val_00000002.JPEG", 0, [[1, 2, 3, 4]], None),
    ]
    assert split.samples[0].path == os.path.join(root, "val", "ILSVRC2012_val_00000001.JPEG")


XML = ("<annotation><folder>val</folder><filename>ILSVRC2012_val_00000001</filename>"
       "<size><width>500</width><height>375</height><depth>3</depth></size>"
       "<object><name>n01751748</name><bndbox><xmin>111</xmin><ymin>108</ymin><xmax>441</xmax><ymax>193</ymax>"
       "</bndbox></object></annotation>")


def test_hand_written_xml_gives_size(tmp_path):
    root = _tiny(tmp_path, xml={"ILSVRC2012_val_00000001": XML})
    (s,) = read_ilsvrc(root).samples
    assert (s.label, s.boxes, s.size) == (0, [[111, 108, 441, 193]], (500, 375))
    assert read_ilsvrc(root).classes == ["n01751748"]  # no mapping, no train: the annotations' wnids
    assert read_voc_xml(os.path.join(root, "val_xml", "ILSVRC2012_val_00000001.xml")) == (
        (500, 375), [("n01751748", [111, 108, 441, 193])])


@pytest.mark.parametrize("kw", [
    dict(annotations="csv"), dict(annotations="xml"), dict(annotations="both"),
    dict(annotations="csv", val_folders=True), dict(annotations="xml", layout="kaggle"),
    dict(annotations="csv", mapping=False),
])
def test_fixture_reads_back_exactly(tmp_path, kw):
    fx = write_ilsvrc_fixture(tmp_path, **kw)
    for split in ("train", "val"):
        got = read_ilsvrc(fx.root, split)
        want = fx.extra["splits"][split]
        assert got.samples == want.samples and got.classes == want.classes and got.skipped == []
    val = read_ilsvrc(fx.root, "val")
    # class order = sorted wnids; the mapping has one class without images
    assert len(val.classes) == (4 if kw.get("mapping", True) else 3)
    assert [s.label for s in val.samples] == ([0, 0, 1, 1, 2, 2] if kw.get("val_folders") else [0, 1, 2, 0, 1, 2])
    assert [len(s.boxes) for s in sorted(val.samples, key=lambda s: os.path.basename(s.image_id))] == [1, 1, 2, 1, 1, 2]


def test_annotation_choice(tmp_path):
    fx = write_ilsvrc_fixture(tmp_path, annotations="both")
    assert all(s.size is None for s in read_ilsvrc(fx.root, annotations="csv").samples)
    assert all(s.size is not None for s in read_ilsvrc(fx.root, annotations="xml").samples)
    os.remove(os.path.join(fx.root, "LOC_val_solution.csv"))
    with pytest.raises(DataError, match="LOC_val_solution.csv: no such file"):
        read_ilsvrc(fx.root, annotations="csv")


CSV_ERRORS = [
    ("ImageId,Prediction\n", "LOC_val_solution.csv:1: expected the header 'ImageId,PredictionString'"),
    ("ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3\n",
     "LOC_val_solution.csv:2: prediction string must be 'wnid x0 y0 x1 y1' repeated, got 4 tokens"),
    ("ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 x 4\n", "LOC_val_solution.csv:2: x1 'x' is not a number"),
    ("ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4,5\n", "LOC_val_solution.csv:2: expected 2 fields, got 3"),
    ("ImageId,PredictionString\nILSVRC2012_val_00000001,n0 1 2 3 4\n\nILSVRC2012_val_00000001,n0 1 2 3 4\n",
     "LOC_val_solution.csv:4: image ILSVRC2012_val_00000001 given again (first at line 2)"),
]


@pytest.mark.parametrize("csv, message", CSV_ERRORS)
def test_malformed_csv(tmp_path, csv, message):
    root = _tiny(tmp_path, csv=csv)
    with pytest.raises(DataError) as err:
        read_ilsvrc(root)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError):
        read_val_solution(os.path.join(root, "LOC_val_solution.csv"))


HEADER = "ImageId,PredictionString\nILSVRC2012_val_00000002,n01751748 1 2 3 4\n"
TWO = ("ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG")


@pytest.mark.parametrize("csv, xml, message", [
    (HEADER, None, "LOC_val_solution.csv: no row for image ILSVRC2012_val_00000001"),
    (HEADER + "ILSVRC2012_val_00000001,n01751748 5 2 3 4\n", None, "LOC_val_solution.csv:3: box [5, 2, 3, 4] has x1 < x0"),
    (None, {"ILSVRC2012_val_00000002": XML, "ILSVRC2012_val_00000001": XML.replace("441", "500")},
     "ILSVRC2012_val_00000001.xml: box [111, 108, 500, 193] lies outside the 500x375 image"),
    (None, {"ILSVRC2012_val_00000002": XML, "ILSVRC2012_val_00000001": XML.replace("</annotation>", "")},
     "ILSVRC2012_val_00000001.xml:1: not well-formed XML"),
    (None, {"ILSVRC2012_val_00000002": XML, "ILSVRC2012_val_00000001": XML.replace("<xmin>111", "<xmin>1.5")},
     "ILSVRC2012_val_00000001.xml: <xmin> '1.5' is not an integer"),
    (None, {"ILSVRC2012_val_00000002": XML, "ILSVRC2012_val_00000001": XML.replace("<ymax>193</ymax>", "")},
     "ILSVRC2012_val_00000001.xml: missing <ymax>"),
    (None, {"ILSVRC2012_val_00000002": XML}, "ILSVRC2012_val_00000001.xml: no such file"),
])
def test_per_image_problems_skip_or_raise_when_strict(tmp_path, csv, xml, message):
    root = _tiny(tmp_path, csv=csv, xml=xml, images=TWO)
    split = read_ilsvrc(root)
    assert [s.image_id for s in split.samples] == ["val/ILSVRC2012_val_00000002.JPEG"]
    assert len(split.skipped) == 1 and split.skipped[0].startswith("skipped val/ILSVRC2012_val_00000001.JPEG: ")
    assert message in split.skipped[0]
    with pytest.raises(DataError) as err:
        read_ilsvrc(root, strict=True)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_foldered_val_mismatch_and_unknown_folder(tmp_path):
    fx = write_ilsvrc_fixture(tmp_path, annotations="csv", val_folders=True)
    # move one image into the wrong class folder, and add a folder that is no class
    src = os.path.join(fx.root, "val", W[0], "ILSVRC2012_val_00000001.JPEG")
    os.rename(src, os.path.join(fx.root, "val", W[1], "ILSVRC2012_val_00000001.JPEG"))
    os.makedirs(os.path.join(fx.root, "val", "n99999999"))
    split = read_ilsvrc(fx.root)
    assert len(split) == 5
    assert any(f"no box of class {W[1]} (the image's folder) for image ILSVRC2012_val_00000001" in r
               for r in split.skipped)
    assert any("folder n99999999 is not a known wnid" in r for r in split.skipped)


def test_csv_rows_without_images_are_counted_once(tmp_path):
    fx = write_ilsvrc_fixture(tmp_path, annotations="csv")
    os.remove(os.path.join(fx.root, "val", "ILSVRC2012_val_00000006.JPEG"))
    split = read_ilsvrc(fx.root)
    assert len(split) == 5
    assert split.skipped == [f"{os.path.join(fx.root, 'LOC_val_solution.csv')}: 1 annotated images not found under "
                             f"{os.path.join(fx.root, 'val')}; ignored"]


def test_train_labels_follow_sorted_wnids_without_boxes(tmp_path):
    fx = write_ilsvrc_fixture(tmp_path, mapping=False)
    train = read_ilsvrc(fx.root, "train")
    assert [(s.image_id, s.label, s.boxes) for s in train.samples][:3] == [
        (f"train/{W[0]}/{W[0]}_1000.JPEG", 0, []), (f"train/{W[0]}/{W[0]}_1037.JPEG", 0, []),
        (f"train/{W[1]}/{W[1]}_1000.JPEG", 1, [])]
    assert train.classes == W[:3]


def test_missing_folders_and_labels(tmp_path):
    with pytest.raises(DataError, match=r"no val/ image folder"):
        read_ilsvrc(tmp_path)
    root = _tiny(tmp_path / "a")
    with pytest.raises(DataError, match=r"flat val/ needs labels: LOC_val_solution.csv or an XML folder"):
        read_ilsvrc(root)
    with pytest.raises(DataError, match=r"ILSVRC split must be one of train, val, got 'test'"):
        read_ilsvrc(root, "test")
    root = _tiny(tmp_path / "b", csv="ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4\n",
                 mapping="n01440764 tench\n")
    with pytest.raises(DataError, match=r"no usable images \(1 found\); first: .*wnid n01751748 is not a known class"):
        read_ilsvrc(root)
