"""VinDr-CXR / VinBigData read as published, against a real slice of VinBigData's train.csv (one
row per box per reader, "No finding" rows without boxes), with tiny DICOMs as train/<id>.dicom."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import pytest

from desktop_app.infra.errors import DataError
from training.data import read_dataset, split_dataset
from training.layouts.common import LayoutOptions
from training.layouts.vindr import fuse_boxes, iou, label_name, read_vindr

from .public import slice_text, write_dicom, write_slice

TRAIN = "vinbigdata_train.csv.gz"


def rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(slice_text(TRAIN))))


def make_vindr(root: Path, text: str | None = None) -> Path:
    csv_path = write_slice(TRAIN, root / "train.csv", edit=text)
    for i, image_id in enumerate(sorted({r["image_id"] for r in rows()})):
        write_dicom(root / "train" / f"{image_id}.dicom", i)
    return csv_path


@pytest.fixture(scope="module")
def vindr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_vindr(tmp_path_factory.mktemp("vindr"))


def expected_labels(rule: str) -> dict[str, set[str]]:
    readers: dict[str, set[str]] = defaultdict(set)
    marked: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows():
        readers[r["image_id"]].add(r["rad_id"])
        if r["class_name"] != "No finding":
            marked[(r["image_id"], label_name(r["class_name"]))].add(r["rad_id"])
    out: dict[str, set[str]] = defaultdict(set)
    for (image_id, label), who in marked.items():
        if rule == "any" or len(who) > len(readers[image_id]) / 2:
            out[image_id].add(label)
    return out


class TestFuseBoxes:
    def test_overlapping_boxes_of_different_readers_average(self) -> None:
        clusters = fuse_boxes([("R1", (0, 0, 10, 10)), ("R2", (1, 1, 11, 11))])
        assert len(clusters) == 1 and clusters[0].readers == ["R1", "R2"]
        assert clusters[0].box == (0.5, 0.5, 10.5, 10.5)

    def test_one_readers_two_boxes_stay_two_findings(self) -> None:
        assert len(fuse_boxes([("R1", (0, 0, 10, 10)), ("R1", (1, 1, 11, 11))])) == 2

    def test_far_apart_boxes_stay_apart(self) -> None:
        assert len(fuse_boxes([("R1", (0, 0, 10, 10)), ("R2", (50, 50, 60, 60))])) == 2

    def test_order_of_rows_does_not_matter(self) -> None:
        marks = [("R2", (1.0, 1, 11, 11)), ("R3", (30.0, 30, 40, 40)), ("R1", (0.0, 0, 10, 10))]
        a = [(c.readers, c.box) for c in fuse_boxes(marks)]
        assert a == [(c.readers, c.box) for c in fuse_boxes(list(reversed(marks)))]

    def test_iou(self) -> None:
        assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
        assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


class TestReadVindr:
    @pytest.mark.parametrize("rule", ["majority", "any"])
    def test_labels_by_rule(self, vindr: Path, rule: str) -> None:
        data = read_vindr(vindr, options=LayoutOptions(label_rule=rule))
        truth = expected_labels(rule)
        assert data.kind == "vindr" and len(data.records) == len({r["image_id"] for r in rows()})
        for record in data.records:
            present = {lab for lab, v in zip(data.labels, record.labels, strict=True) if v}
            assert present == truth.get(record.path.stem, set())
            assert {b[0] for b in record.boxes} <= present
            assert {b[0] for b in record.boxes} == present
        assert record.path.suffix == ".dicom"

    def test_default_is_majority_and_any_finds_more(self, vindr: Path) -> None:
        default = read_vindr(vindr)
        anyone = read_vindr(vindr, options=LayoutOptions(label_rule="any"))
        assert default.label_matrix().sum() < anyone.label_matrix().sum()
        assert (
            default.label_matrix().sum()
            == read_vindr(vindr, options=LayoutOptions(label_rule="majority")).label_matrix().sum()
        )

    def test_label_names_are_usable(self, vindr: Path) -> None:
        data = read_vindr(vindr)
        assert "Nodule/Mass" not in data.labels
        names = {label_name(r["class_name"]) for r in rows()} - {"No finding"}
        assert set(data.labels) == names
        assert label_name("Nodule/Mass") == "Nodule-Mass"

    def test_boxes_are_xywh_in_pixels_and_fused(self, vindr: Path) -> None:
        data = read_vindr(vindr)
        raw = [r for r in rows() if r["class_name"] == "Cardiomegaly"]
        image_id = max(
            {r["image_id"] for r in raw}, key=lambda i: sum(r["image_id"] == i for r in raw)
        )
        marks = [r for r in raw if r["image_id"] == image_id]
        record = next(r for r in data.records if r.path.stem == image_id)
        boxes = [b for b in record.boxes if b[0] == "Cardiomegaly"]
        assert len(boxes) < len(marks) or len(marks) == 1
        _, x, y, w, h = boxes[0]
        xs = [float(r["x_min"]) for r in marks]
        ys = [float(r["y_min"]) for r in marks]
        assert min(xs) <= x <= max(xs) and min(ys) <= y <= max(ys) and w > 0 and h > 0

    def test_detected_from_the_folder(self, vindr: Path) -> None:
        assert read_dataset(vindr.parent).kind == "vindr"


def test_physionet_layout_with_its_test_annotations(tmp_path: Path) -> None:
    all_rows = rows()
    ids = sorted({r["image_id"] for r in all_rows})
    test_ids = set(ids[::5])
    columns = ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"]
    for name, wanted, folder in (
        ("annotations_train.csv", lambda i: i not in test_ids, "train"),
        ("annotations_test.csv", lambda i: i in test_ids, "test"),
    ):
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for r in all_rows if wanted(r["image_id"]))
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / name).write_text(out.getvalue())
        for k, image_id in enumerate(i for i in ids if wanted(i)):
            write_dicom(tmp_path / folder / f"{image_id}.dicom", k)
    data = read_dataset(tmp_path)
    assert data.kind == "vindr" and data.has_split
    splits = split_dataset(data, seed=0)
    assert {data.records[i].path.stem for i in splits.test} == test_ids


class TestVindrErrors:
    def test_an_inverted_box_names_its_row(self, tmp_path: Path) -> None:
        lines = slice_text(TRAIN).splitlines()
        k = next(i for i, line in enumerate(lines) if i and not line.endswith(",,,,"))
        parts = lines[k].split(",")
        parts[4], parts[6] = parts[6], parts[4]
        lines[k] = ",".join(parts)
        with pytest.raises(DataError, match=rf"row {k + 1}: the box has x_max < x_min"):
            read_vindr(make_vindr(tmp_path, "\n".join(lines)))

    def test_a_header_without_boxes(self, tmp_path: Path) -> None:
        text = slice_text(TRAIN).replace("x_max", "xmax", 1)
        with pytest.raises(DataError, match="row 1: expected the columns image_id,class_name"):
            read_vindr(make_vindr(tmp_path, text))

    def test_unknown_rule(self) -> None:
        with pytest.raises(Exception, match="label_rule 'all' is not one of majority, any"):
            LayoutOptions(label_rule="all")
