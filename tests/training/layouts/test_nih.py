"""NIH ChestX-ray14 read as published, against a real slice of Data_Entry_2017_v2020.csv and
BBox_List_2017.csv, with tiny PNGs in the Kaggle release's images_001/images/ folders."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from desktop_app.infra.errors import DataError
from training.data import read_dataset, split_dataset
from training.layouts.common import LayoutOptions
from training.layouts.nih import NIH_LABELS, read_nih

from .public import data_rows, slice_text, write_png, write_slice

ENTRY = "nih_Data_Entry_2017_v2020.csv.gz"
BBOX = "nih_BBox_List_2017.csv.gz"


def entry_rows() -> list[list[str]]:
    return list(csv.reader(io.StringIO(slice_text(ENTRY))))[1:]


def make_nih(root: Path, *, keep: int | None = None, entry_text: str | None = None) -> Path:
    """The Kaggle layout: Data_Entry + BBox_List at the top, images in images_00N/images/."""
    csv_path = write_slice(ENTRY, root / "Data_Entry_2017_v2020.csv", edit=entry_text)
    write_slice(BBOX, root / "BBox_List_2017.csv")
    for i, row in enumerate(entry_rows()[:keep]):
        write_png(root / f"images_{1 + i // 100:03d}" / "images" / row[0], seed=i)
    return csv_path


@pytest.fixture(scope="module")
def nih(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_nih(tmp_path_factory.mktemp("nih"))


class TestReadNih:
    def test_every_row_is_an_image_with_its_findings(self, nih: Path) -> None:
        data = read_nih(nih)
        rows = entry_rows()
        assert data.kind == "nih"
        assert len(data.records) == len(rows) == 300
        occurring = {f for r in rows for f in r[1].split("|")} - {"No Finding"}
        assert data.labels == tuple(lab for lab in NIH_LABELS if lab in occurring)
        for record, row in zip(data.records, rows, strict=True):
            assert record.path.name == row[0]
            assert record.path.parent.name == "images"
            assert record.patient == row[3]
            expected = set(row[1].split("|")) - {"No Finding"}
            assert {lab for lab, v in zip(data.labels, record.labels, strict=True) if v} == expected
        assert any("|" in r[1] for r in rows) and any(r[1] == "No Finding" for r in rows)
        assert data.has_patient_ids and not data.has_split

    def test_boxes_from_bbox_list_all_kept(self, nih: Path) -> None:
        data = read_nih(nih)
        by_name = {r.path.name: r for r in data.records}
        boxes = list(csv.reader(io.StringIO(slice_text(BBOX))))[1:]
        assert sum(len(r.boxes) for r in data.records) == len(boxes)
        three = by_name["00008814_010.png"]
        assert len(three.boxes) == 3
        assert three.box == three.boxes[0][1:]
        for label, *_ in three.boxes:
            assert three.labels[data.labels.index(label)] == 1.0
        infiltrate = [b for b in boxes if b[1] == "Infiltrate"]
        if infiltrate:
            record = by_name[infiltrate[0][0]]
            assert "Infiltration" in {b[0] for b in record.boxes}
        first = boxes[0]
        assert by_name[first[0]].boxes[0][1:] == tuple(float(v) for v in first[2:6])

    def test_the_2017_files_trailing_comma_reads_the_same(self, tmp_path: Path) -> None:
        text = "".join(line + ",\n" for line in slice_text(ENTRY).splitlines())
        a = read_nih(make_nih(tmp_path, entry_text=text))
        b = read_nih(make_nih(tmp_path))
        assert [r.labels for r in a.records] == [r.labels for r in b.records]

    def test_labels_pick_columns(self, nih: Path) -> None:
        data = read_nih(nih, labels=["Effusion", "Hernia"])
        assert data.labels == ("Effusion", "Hernia")
        with pytest.raises(
            DataError, match=r"unknown label 'Pleural Thickening'.*Pleural_Thickening"
        ):
            read_nih(nih, labels=["Pleural Thickening"])


class TestNihSplits:
    def test_test_list_is_the_test_split_and_val_is_carved_by_patient(self, tmp_path: Path) -> None:
        csv_path = make_nih(tmp_path)
        rows = entry_rows()
        patients = sorted({r[3] for r in rows})
        test_patients = set(patients[::4])
        test_names = [r[0] for r in rows if r[3] in test_patients]
        (tmp_path / "test_list.txt").write_text("\n".join(test_names) + "\n")
        data = read_dataset(tmp_path)
        assert data.kind == "nih" and data.has_split
        splits = split_dataset(data, seed=3)
        assert {data.records[i].path.name for i in splits.test} == set(test_names)
        assert "val carved from train by patient" in splits.method
        val_patients = {data.records[i].patient for i in splits.val}
        train_patients = {data.records[i].patient for i in splits.train}
        assert val_patients and not val_patients & train_patients
        assert csv_path.name.startswith("Data_Entry")

    def test_train_val_list_alone_makes_the_rest_test(self, tmp_path: Path) -> None:
        make_nih(tmp_path)
        rows = entry_rows()
        train = [r[0] for r in rows if int(r[3]) % 3]
        (tmp_path / "train_val_list.txt").write_text("\n".join(train))
        data = read_nih(tmp_path / "Data_Entry_2017_v2020.csv")
        assert {r.path.name for r in data.records if r.split == "test"} == {
            r[0] for r in rows if not int(r[3]) % 3
        }

    def test_without_lists_the_split_is_by_patient(self, nih: Path) -> None:
        data = read_nih(nih)
        splits = split_dataset(data, seed=0)
        owner: dict[str, str] = {}
        for name in ("train", "val", "test"):
            for i in getattr(splits, name):
                assert owner.setdefault(data.records[i].patient, name) == name


class TestNihErrors:
    def test_missing_images_are_left_out_with_a_note(self, tmp_path: Path) -> None:
        data = read_nih(make_nih(tmp_path, keep=120))
        assert len(data.records) == 120
        assert any("180 of 300 images" in n and "row 122" in n for n in data.notes)

    def test_missing_images_error_names_the_row(self, tmp_path: Path) -> None:
        csv_path = make_nih(tmp_path, keep=120)
        with pytest.raises(DataError, match=r"row 122: its image is not below .*180 of 300") as err:
            read_nih(csv_path, options=LayoutOptions(missing_images="error"))
        assert err.value.path == csv_path

    def test_no_image_at_all_is_the_wrong_folder(self, tmp_path: Path) -> None:
        csv_path = write_slice(ENTRY, tmp_path / "Data_Entry_2017.csv")
        with pytest.raises(DataError, match="none of the 300 images it lists is below"):
            read_nih(csv_path)

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda t: t.replace("Finding Labels", "Labels", 1), "row 1: expected the columns"),
            (lambda t: t.replace("No Finding", "Normal", 1), r"row \d+: unknown finding 'Normal'"),
            (lambda t: t.replace("No Finding", "", 1), r"row \d+: Finding Labels is empty"),
            (lambda t: t.replace("No Finding", "No Finding|Mass", 1), "together with findings"),
        ],
    )
    def test_bad_files_name_the_row_and_fix(self, tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
        csv_path = make_nih(tmp_path, keep=2, entry_text=edit(slice_text(ENTRY)))
        with pytest.raises(DataError, match=message) as err:
            read_nih(csv_path)
        assert err.value.path == csv_path and err.value.hint

    def test_row_numbers_count_the_header_as_row_1(self, tmp_path: Path) -> None:
        lines = slice_text(ENTRY).splitlines()
        lines[5] = lines[5].replace(lines[5].split(",")[1], "Normal", 1)
        with pytest.raises(DataError, match="row 6: unknown finding"):
            read_nih(make_nih(tmp_path, keep=2, entry_text="\n".join(lines)))


def test_bbox_list_with_a_bad_box_names_its_row(tmp_path: Path) -> None:
    csv_path = make_nih(tmp_path, keep=3)
    lines = slice_text(BBOX).splitlines()
    parts = lines[2].split(",")
    lines[2] = ",".join([*parts[:2], "wide", *parts[3:]])
    (tmp_path / "BBox_List_2017.csv").write_text("\n".join(lines))
    with pytest.raises(DataError, match="row 3: the box is not four numbers"):
        read_nih(csv_path)


def test_slice_rows_have_the_published_eleven_fields() -> None:
    assert {len(r.split(",")) for r in data_rows(slice_text(ENTRY))} == {11}
