"""The reader's annotations in the exports: the SR's TID 1500 groups (ellipse and rectangle
ROIs with area, mean, SD, min and max in UCUM units; angle; arrow as a point with its text;
key image) read back with highdicom, and the PDF's table read back with pypdf."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pypdf import PdfReader

from desktop_app.exports.study_export import ExportRequest, export_study
from desktop_app.review.annotations import (
    ANGLE,
    ARROW,
    ELLIPSE,
    KEY_IMAGE,
    RECTANGLE,
    Annotation,
    ellipse_axes,
    measured,
    rectangle_polyline,
)
from desktop_app.review.state import ReviewState
from tests.helpers.exports import CT_DIR, copy_study, make_result, make_review

SLICE = 20


def ct_review(tmp_path: Path) -> tuple[list[Path], Any, ReviewState, pydicom.Dataset]:
    files = copy_study(CT_DIR, tmp_path / "ct")
    result = make_result(files, {"nodule": (0.8, 17, (70.0, 110.0, 15.0, 16.0))})
    review = make_review(result)
    ds = pydicom.dcmread(files[SLICE])
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    spacing = (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
    key = f"{result.series_instance_uid}#1"
    sop = str(ds.SOPInstanceUID)

    def put(kind: str, points: tuple[tuple[float, float], ...], text: str = "") -> None:
        a = Annotation(f"id-{kind}", kind, key, result.series_instance_uid, sop, 0, SLICE,
                       points, text)  # fmt: skip
        review.put_annotation(measured(a, values, spacing, "CT"), reviewer="Dr Reader")

    put(ELLIPSE, ((60.0, 80.0), (140.0, 120.0)), "cyst?")
    put(RECTANGLE, ((30.0, 30.0), (70.0, 60.0)))
    put(ANGLE, ((150.0, 60.0), (80.0, 60.0), (80.0, 130.0)))
    put(ARROW, ((100.0, 100.0), (160.0, 60.0)), "calcified focus")
    put(KEY_IMAGE, ())
    return files, result, review, ds


def _text_of(item: Any) -> str:
    return str(getattr(item, "TextValue", ""))


def _groups(sr: Any) -> dict[str, Any]:
    """Measurement groups by tracking identifier."""
    out = {}
    for container in sr.ContentSequence:
        if container.ConceptNameCodeSequence[0].CodeValue != "126010":  # Imaging Measurements
            continue
        for group in container.ContentSequence:
            for item in group.ContentSequence:
                if item.ConceptNameCodeSequence[0].CodeValue == "112039":  # Tracking Identifier
                    out[_text_of(item)] = group
    return out


def _comments(group: Any) -> list[str]:
    """The group's DCM 121106 "Comment" TEXT items."""
    return [
        _text_of(i)
        for i in group.ContentSequence
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == "121106"
    ]


def _measurements(group: Any) -> dict[tuple[str, str], tuple[float, str]]:
    """(concept meaning, derivation meaning or "") -> (value, UCUM unit)."""
    out = {}
    for item in group.ContentSequence:
        if item.ValueType != "NUM":
            continue
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        derivation = ""
        for child in getattr(item, "ContentSequence", []):
            if child.ConceptNameCodeSequence[0].CodeValue == "121401":  # Derivation
                derivation = child.ConceptCodeSequence[0].CodeMeaning
        mv = item.MeasuredValueSequence[0]
        out[(name, derivation)] = (
            float(mv.NumericValue),
            mv.MeasurementUnitsCodeSequence[0].CodeValue,
        )
    return out


def _scoord(group: Any) -> tuple[str, np.ndarray, str]:
    for item in group.ContentSequence:
        if item.ValueType == "SCOORD":
            ref = item.ContentSequence[0].ReferencedSOPSequence[0]
            data = np.asarray(item.GraphicData, dtype=np.float64).reshape(-1, 2)
            return item.GraphicType, data, ref.ReferencedSOPInstanceUID
    raise AssertionError("no SCOORD item")


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Any, ReviewState, pydicom.Dataset, Path]:
    files, result, review, ds = ct_review(tmp_path)
    out = export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            results=[result],
            review=review,
            formats=["sr", "pdf"],
        )
    )
    assert out.sr is not None and out.pdf is not None
    return hd.sr.srread(out.sr), review, ds, out.pdf


def test_ellipse_roi_with_hu_statistics(exported: Any) -> None:
    sr, review, ds, _ = exported
    group = _groups(sr)["Reader ellipse ROI 1"]
    roi = review.annotation("id-ellipse")
    kind, data, sop = _scoord(group)
    assert kind == "ELLIPSE" and sop == ds.SOPInstanceUID
    assert data == pytest.approx(np.asarray(ellipse_axes(roi.points)))
    got = _measurements(group)
    stats = roi.stats
    assert stats is not None and stats.value_unit == "HU"
    assert got[("Area", "")] == (pytest.approx(stats.area), "mm2")
    assert got[("Attenuation Coefficient", "Mean")] == (pytest.approx(stats.mean), "[hnsf'U]")
    assert got[("Attenuation Coefficient", "Standard Deviation")][0] == pytest.approx(stats.sd)
    assert got[("Attenuation Coefficient", "Minimum")][0] == pytest.approx(stats.minimum)
    assert got[("Attenuation Coefficient", "Maximum")][0] == pytest.approx(stats.maximum)
    assert _comments(group) == ["cyst?"]


def test_rectangle_roi_is_a_closed_polyline(exported: Any) -> None:
    sr, review, _, _ = exported
    group = _groups(sr)["Reader rectangle ROI 1"]
    kind, data, _ = _scoord(group)
    points = review.annotation("id-rectangle").points
    assert kind == "POLYLINE"
    assert data == pytest.approx(np.asarray(rectangle_polyline(points)))
    assert ("Area", "") in _measurements(group)


def test_angle_arrow_and_key_image(exported: Any) -> None:
    sr, review, ds, _ = exported
    groups = _groups(sr)
    angle = _measurements(groups["Reader angle 1"])[("Angle", "")]
    assert angle == (pytest.approx(review.annotation("id-angle").angle), "deg")
    assert angle[0] == pytest.approx(90.0)
    kind, data, sop = _scoord(groups["Reader arrow 1"])
    assert kind == "POINT" and data.tolist() == [[100.0, 100.0]] and sop == ds.SOPInstanceUID
    assert _comments(groups["Reader arrow 1"]) == ["calcified focus"]
    key = groups["Reader key image 1"]
    finding_types = [
        i.ConceptCodeSequence[0].CodeMeaning
        for i in key.ContentSequence
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "121071"
    ]
    assert finding_types == ["Key Images"]
    images = [i for i in key.ContentSequence if i.ValueType == "IMAGE"]
    assert images[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    # the model's finding is still there, and highdicom finds the ROI groups by type
    assert "nodule (slice 18)" in groups
    planar = sr.content.get_planar_roi_measurement_groups()
    assert len(planar) == 4  # the nodule's box, the two ROIs and the arrow
    assert {g.tracking_identifier for g in planar} >= {"Reader ellipse ROI 1", "Reader arrow 1"}


def test_the_pdf_lists_the_readers_measurements(exported: Any) -> None:
    _, review, _, pdf = exported
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    flat = " ".join(text.split())
    assert "Reader's measurements and annotations" in flat
    assert "Ellipse ROI" in flat and "Rectangle ROI" in flat and "Key image" in flat
    stats = review.annotation("id-ellipse").stats
    assert f"Mean {stats.mean:.1f} HU" in flat
    assert "90.0°" in flat and "calcified focus" in flat
    assert "series 1, slice 21" in flat


def test_a_deidentified_export_keeps_the_measurements_and_leaves_the_text_out(
    tmp_path: Path,
) -> None:
    files, result, review, ds = ct_review(tmp_path)
    out = export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            results=[result],
            review=review,
            formats=["sr", "pdf"],
            deidentify=True,
        )
    )
    assert out.sr is not None and out.pdf is not None
    sr = hd.sr.srread(out.sr)
    groups = _groups(sr)
    assert (
        _comments(groups["Reader arrow 1"]) == []
        and _comments(groups["Reader ellipse ROI 1"]) == []
    )
    _, _, sop = _scoord(groups["Reader ellipse ROI 1"])
    assert sop != ds.SOPInstanceUID  # the de-identified image's new UID
    assert ("Area", "") in _measurements(groups["Reader ellipse ROI 1"])
    text = " ".join(
        " ".join(
            p.extract_text() for p in PdfReader(io.BytesIO(out.pdf.read_bytes())).pages
        ).split()
    )
    assert "calcified focus" not in text and "withheld" in text
