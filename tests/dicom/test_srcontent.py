"""SR content as a tree (PS3.3 C.17.3, C.18): value types as text, regions on the images they
were selected from, and bounds on hostile trees (depth, item count)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from desktop_app.dicom import srcontent
from desktop_app.dicom.srcontent import read_sr
from desktop_app.exports.study_export import ExportRequest, export_study
from tests.helpers.dicomfiles import pydicom_test_file
from tests.helpers.exports import NODULE_BOX, chest_study
from tests.helpers.presentation import mr_image, tid1500_sr


def _item(value_type: str, name: str, relationship: str = "CONTAINS", **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "1", "99TEST", name
    item.ConceptNameCodeSequence = [code]
    for key, value in values.items():
        setattr(item, key, value)
    return item


class TestReadSr:
    def test_a_highdicom_tid1500_report(self) -> None:
        image = mr_image(overlay=False)
        doc = read_sr(tid1500_sr(image, [(1.0, 2.0), (9.0, 2.0), (9.0, 8.0)]))
        assert doc.title == "Imaging Measurement Report" and doc.template == "TID 1500"
        lines = {n.line() for n in doc.nodes()}
        assert {"Finding: Nodule", "Area: 42.5 mm2", "Tracking Identifier: lesion 1"} <= lines
        [region] = doc.regions
        assert region.label == "Nodule" and region.image.sop_instance_uid == image.SOPInstanceUID
        assert region.graphic.kind == "POLYLINE" and region.graphic.closed
        assert doc.regions_on(str(image.SOPInstanceUID)) == [region]
        assert doc.regions_on("1.2.3") == []

    def test_pydicom_sample_all_value_types(self) -> None:
        doc = read_sr(pydicom.dcmread(pydicom_test_file("test-SR.dcm")))
        lines = doc.text_lines()
        assert lines[0] == "Diagnosis"
        assert "    [CONTAINS] Diameter: 3 cm" in lines
        assert any("→ see item 1.3.2" in line for line in lines)  # by-reference
        assert any("(time range)" in line for line in lines)  # TCOORD
        assert any(line.endswith("frame 5, 2") for line in lines)  # IMAGE with frames
        assert doc.regions == []  # its SCOORD has no "selected from" image

    def test_the_apps_own_export(self, tmp_path: Path) -> None:
        files, result, review = chest_study(tmp_path)
        out = export_study(
            ExportRequest(
                study_paths=files, out_dir=tmp_path / "out", formats=["sr"],
                results=[result], review=review,
            )
        )  # fmt: skip
        doc = read_sr(pydicom.dcmread(out.sr))
        x, y, w, h = NODULE_BOX
        bounds = [r.graphic.bounds() for r in doc.regions]
        assert (x, y, x + w, y + h) in bounds
        assert any(n.name == "Probability" and n.value.startswith("0.93") for n in doc.nodes())

    def test_num_without_value_and_units(self) -> None:
        ds = _item("CONTAINER", "Report", "")
        num = _item("NUM", "Density")
        qualifier = Dataset()
        qualifier.CodeValue, qualifier.CodingSchemeDesignator = "114006", "DCM"
        qualifier.CodeMeaning = "Measurement failure"
        num.NumericValueQualifierCodeSequence = [qualifier]
        hu = _item("NUM", "Mean")
        measured, unit = Dataset(), Dataset()
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = (
            "[hnsf'U]",
            "UCUM",
            "Hounsfield unit",
        )
        measured.NumericValue = "-12.5"
        measured.MeasurementUnitsCodeSequence = [unit]
        hu.MeasuredValueSequence = [measured]
        ds.ContentSequence = [num, hu]
        values = [n.value for n in read_sr(ds).nodes()][1:]
        assert values == ["Measurement failure", "-12.5 Hounsfield unit"]

    def test_depth_is_bounded_without_recursion(self) -> None:
        root = _item("CONTAINER", "Root", "")
        node = root
        for _ in range(2000):  # far deeper than Python's recursion limit would allow
            child = _item("CONTAINER", "Deeper")
            node.ContentSequence = [child]
            node = child
        doc = read_sr(root)
        assert doc.truncated and max(n.depth for n in doc.nodes()) == srcontent.MAX_DEPTH

    def test_item_count_is_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(srcontent, "MAX_NODES", 50)
        root = _item("CONTAINER", "Root", "")
        root.ContentSequence = [_item("TEXT", "Line", TextValue=str(k)) for k in range(200)]
        doc = read_sr(root)
        assert doc.truncated and doc.node_count == 50 and len(list(doc.nodes())) == 50
        assert doc.text_lines()[-1].startswith("… cut at 50 items")

    def test_broken_items_become_rows_not_errors(self) -> None:
        root = _item("CONTAINER", "Root", "")
        bad = Dataset()  # no value type, no concept name
        scoord = _item("SCOORD", "Region", GraphicType="CIRCLE", GraphicData=[1.0])
        root.ContentSequence = [bad, scoord]
        doc = read_sr(root)
        assert [n.line() for n in doc.nodes()][1:] == ["", "Region: CIRCLE (invalid graphic data)"]
        assert doc.regions == []
