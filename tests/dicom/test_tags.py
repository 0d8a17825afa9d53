"""The tag viewer's rows: flattening (with sequences), value display, bounded output, search."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from desktop_app.dicom.dicomfile import read_header
from desktop_app.dicom.tags import TagRow, as_text, filter_rows, flatten, row_matches
from tests.helpers.dicomfiles import pydicom_test_file


def nested() -> Dataset:
    ds = Dataset()
    ds.PatientName = "PHANTOM^ONE"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    ds.add_new(0x00091001, "OB", b"\x00" * 300)
    return ds


class TestFlatten:
    def test_rows_in_tag_order_with_nesting(self) -> None:
        rows = flatten(nested(), include_meta=False)
        assert [(r.tag, r.keyword, r.depth) for r in rows] == [
            ("(0008,0008)", "ImageType", 0),
            ("(0008,0060)", "Modality", 0),
            ("(0008,2218)", "AnatomicRegionSequence", 0),
            ("", "Item 1", 1),
            ("(0008,0100)", "CodeValue", 2),
            ("(0008,0104)", "CodeMeaning", 2),
            ("(0009,1001)", "", 0),
            ("(0010,0010)", "PatientName", 0),
        ]
        seq = rows[2]
        assert (seq.vr, seq.value, seq.is_container) == ("SQ", "1 item(s)", True)
        assert rows[3].parent == 2 and rows[4].parent == 3

    def test_values(self) -> None:
        rows = {r.keyword or r.tag: r for r in flatten(nested(), include_meta=False)}
        assert rows["ImageType"].value == "ORIGINAL\\PRIMARY"
        assert rows["(0009,1001)"].value == "<binary, 300 bytes>"
        assert rows["(0009,1001)"].name == "Private tag"

    def test_long_values_are_cut(self) -> None:
        ds = Dataset()
        ds.StudyDescription = "x" * 60
        ds.ImageComments = "word " * 100
        row = next(r for r in flatten(ds) if r.keyword == "ImageComments")
        assert len(row.value) == 200 and row.value.endswith("…")

    def test_depth_and_row_limits(self) -> None:
        ds = Dataset()
        inner = ds
        for _ in range(5):
            item = Dataset()
            inner.ReferencedSeriesSequence = Sequence([item])
            inner = item
        rows = flatten(ds, max_depth=4)
        assert rows[-1].value == "nested too deep; not shown"
        many = Dataset()
        for i in range(30):
            many.add_new(0x00091000 + i, "LO", str(i))
        limited = flatten(many, max_rows=10)
        assert len(limited) == 11
        assert limited[-1].value == "more than 10 elements; the rest are not shown"

    def test_real_file_header_mentions_pixel_data_without_reading_it(self) -> None:
        ds = read_header(pydicom_test_file("CT_small.dcm"))
        rows = flatten(ds)
        assert rows[0].tag == "(0002,0000)"  # file meta first
        pixel = [r for r in rows if r.keyword == "PixelData"]
        assert len(pixel) == 1 and pixel[0].value == "<pixel data, 32,768 bytes; not shown>"

    def test_implicit_vr_sequences_are_nested(self) -> None:
        ds = read_header(pydicom_test_file("rtplan.dcm"))
        rows = flatten(ds)
        assert max(r.depth for r in rows) >= 4
        assert any(r.keyword == "BeamSequence" and r.vr == "SQ" for r in rows)


class TestSearch:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("0010,0010", True),
            ("(0010,0010)", True),
            ("00100010", True),
            ("0010", True),
            ("patientname", True),
            ("Patient's Name", True),
            ("phantom", True),
            ("0008,0060", False),
            ("modality", False),
            ("", True),
        ],
    )
    def test_row_matches(self, query: str, expected: bool) -> None:
        row = TagRow("(0010,0010)", "PatientName", "Patient's Name", "PN", "PHANTOM^ONE", 0, -1)
        assert row_matches(row, query) is expected

    def test_match_inside_a_sequence_keeps_its_path(self) -> None:
        rows = flatten(nested(), include_meta=False)
        shown = [rows[i].keyword for i in filter_rows(rows, "chest")]
        assert shown == ["AnatomicRegionSequence", "Item 1", "CodeMeaning"]

    def test_matching_sequence_shows_its_contents(self) -> None:
        rows = flatten(nested(), include_meta=False)
        shown = [rows[i].keyword for i in filter_rows(rows, "anatomicregion")]
        assert shown == ["AnatomicRegionSequence", "Item 1", "CodeValue", "CodeMeaning"]

    def test_empty_query_shows_everything(self) -> None:
        rows = flatten(nested(), include_meta=False)
        assert filter_rows(rows, "  ") == list(range(len(rows)))


def test_as_text_indents() -> None:
    rows = flatten(nested(), include_meta=False)
    text = as_text(rows[2:5])
    assert text.splitlines() == [
        "(0008,2218) AnatomicRegionSequence SQ: 1 item(s)",
        "  Item 1: 2 element(s)",
        "    (0008,0100) CodeValue SH: T-D3000",
    ]
