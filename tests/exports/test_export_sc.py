"""Secondary Capture images of an export: which images become key images, what is burned in,
and the attributes that mark them as derived, AI-generated images of the source study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage

from desktop_app.exports.content import (
    ExportFinding,
    ModelSummary,
    collect_findings,
    model_summary,
)
from desktop_app.exports.secondary_capture import (
    KeyImage,
    key_images,
    marks_for,
    patient_orientation,
    render_key_image,
    scale_factor,
)
from desktop_app.exports.sources import StudySources
from desktop_app.exports.study_export import ExportRequest, export_study
from desktop_app.inference.overlays import label_colour
from tests.helpers.dicomfiles import pydicom_test_file
from tests.helpers.exports import (
    CT_DIR,
    chest_study,
    copy_study,
    fid,
    make_result,
)

MODEL = ModelSummary(name="m", version="1", tensor_sha256="cd" * 32)


def _finding(
    label: str,
    sop: str,
    *,
    positive: bool = True,
    truth: str = "pending",
    probability: float = 0.9,
    index: int = 0,
    **kw: Any,
) -> ExportFinding:
    return ExportFinding(
        finding_id=f"s#1:{label}",
        label=label,
        label_index=index,
        series_instance_uid="s",
        part=1,
        probability=probability,
        threshold=0.5,
        threshold_source="model",
        positive=positive,
        slice_index=int(sop[-1]),
        sop_instance_uid=sop,
        frame=0,
        box=(1.0, 1.0, 4.0, 4.0),
        model_box=(1.0, 1.0, 4.0, 4.0),
        truth=truth,
        **kw,
    )


class TestKeyImages:
    def test_positive_findings_not_marked_absent_one_image_each(self) -> None:
        findings = [
            _finding("nodule", "sop1", probability=0.7),
            _finding("effusion", "sop1", probability=0.8, index=1),
            _finding("mass", "sop2", probability=0.95, truth="present", index=2),
            _finding("cardio", "sop3", positive=False, index=3),
            _finding("other", "sop4", truth="absent", index=4),
            _finding("unsure", "sop5", truth="uncertain", probability=0.6, index=5),
        ]
        keys = key_images(findings)
        assert [k.sop_instance_uid for k in keys] == ["sop2", "sop1", "sop5"]  # most probable
        assert [f.label for f in keys[1].findings] == ["nodule", "effusion"]  # label order

    def test_none_without_positives(self) -> None:
        assert key_images([_finding("n", "sop1", positive=False)]) == []
        # the reader says present but drew nothing: there is nothing to show
        assert key_images([_finding("n", "sop1", positive=False, truth="present")]) == []

    def test_a_missed_finding_is_shown_on_the_image_its_box_was_drawn_on(self) -> None:
        missed = _finding(
            "effusion",
            "sop1",
            positive=False,
            truth="present",
            probability=0.1,
            reader_box=(5.0, 6.0, 7.0, 8.0),
            added=True,
            reader_sop_instance_uid="sop7",
            reader_slice_index=7,
            heatmap=np.ones((16, 16), np.float32),
        )
        [key] = key_images([missed])
        assert (key.sop_instance_uid, key.slice_index) == ("sop7", 7)
        assert "present, missed by the model (FN)" in key.caption
        [mark] = marks_for(key.findings)
        assert mark.box == (5.0, 6.0, 7.0, 8.0)
        assert mark.heatmap is None and mark.outline is None  # the model's: not this finding's

    def test_a_negative_draws_neither_box_nor_heatmap(self) -> None:
        quiet = _finding("n", "sop1", positive=False, heatmap=np.ones((4, 4), np.float32))
        [mark] = marks_for([quiet])
        assert mark.box is None and mark.heatmap is None


@pytest.fixture(scope="module")
def chest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("chest-sc")
    files, result, review = chest_study(tmp_path)
    # the effusion is rejected: the only key image is the nodule's
    out = export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            formats=["sc"],
            results=[result],
            review=review,
        )
    )
    [sc_path] = out.sc
    return {
        "sc": pydicom.dcmread(sc_path),
        "source": pydicom.dcmread(files[0]),
        "findings": collect_findings([result], review),
        "files": files,
        "engine_result": result,
        "review": review,
    }


class TestChestSecondaryCapture:
    def test_rgb_secondary_capture_in_a_new_series_of_the_study(
        self, chest: dict[str, Any]
    ) -> None:
        sc, source = chest["sc"], chest["source"]
        assert sc.SOPClassUID == SecondaryCaptureImageStorage
        assert sc.StudyInstanceUID == source.StudyInstanceUID
        assert sc.SeriesInstanceUID != source.SeriesInstanceUID
        assert (sc.PatientName, sc.PatientID) == (source.PatientName, source.PatientID)
        assert (sc.PhotometricInterpretation, sc.SamplesPerPixel, sc.BitsAllocated) == (
            "RGB",
            3,
            8,
        )
        assert (sc.Rows, sc.Columns) == (source.Rows, source.Columns)
        assert [float(v) for v in sc.PixelSpacing] == [float(v) for v in source.PixelSpacing]
        assert list(sc.PatientOrientation) == ["L", "F"]

    def test_marked_as_derived_and_ai_generated(self, chest: dict[str, Any]) -> None:
        sc = chest["sc"]
        assert list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert sc.BurnedInAnnotation == "YES"
        assert sc.ConversionType == "WSD"
        assert sc.SeriesDescription == "RadAssist AI overlay - research use only"
        assert "AI overlay" in sc.DerivationDescription
        assert "not for diagnosis" in sc.DerivationDescription
        assert "AI-generated" in sc.ImageComments

    def test_references_its_source_image(self, chest: dict[str, Any]) -> None:
        [ref] = chest["sc"].SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == chest["source"].SOPInstanceUID
        assert ref.ReferencedSOPClassUID == chest["source"].SOPClassUID
        assert "ReferencedFrameNumber" not in ref  # single-frame source
        assert ref.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"

    def test_pixels_are_the_rendered_key_image(self, chest: dict[str, Any]) -> None:
        sources = StudySources(chest["files"])
        [key] = key_images(chest["findings"])
        image = sources.render(key.sop_instance_uid, key.frame)
        model = model_summary([chest["engine_result"]], chest["review"])  # as export_study does
        expected = render_key_image(image, key, model)
        np.testing.assert_array_equal(chest["sc"].pixel_array, expected)


def test_the_overlay_box_outline_and_notice_are_burned_in() -> None:
    image = np.full((600, 600), 60, dtype=np.uint8)
    finding = ExportFinding(
        finding_id="s#1:nodule",
        label="nodule",
        label_index=0,
        series_instance_uid="s",
        part=1,
        probability=0.93,
        threshold=0.41,
        threshold_source="model",
        positive=True,
        slice_index=0,
        sop_instance_uid="sop",
        frame=0,
        box=(150.0, 200.0, 60.0, 50.0),
        truth="present",
    )
    rgb = render_key_image(image, KeyImage("s", "sop", 0, 0, (finding,)), MODEL)
    cyan = np.array(label_colour(0), dtype=np.uint8)
    assert (rgb[200, 150:210] == cyan).all()  # the box's top edge in the label's colour
    assert (rgb[0:6, 0:60] != 60).any()  # the notice's plate at the top left
    assert (rgb[-6:, 0:60] != 60).any()  # the model line at the bottom left
    assert (rgb[300:380, 250:380] == 60).all()  # far from the marks: untouched


def test_small_images_are_enlarged_with_their_marks() -> None:
    image = np.full((128, 100), 60, dtype=np.uint8)  # shorter side 100: enlarged 6x
    finding = ExportFinding(
        finding_id="s#1:nodule",
        label="nodule",
        label_index=0,
        series_instance_uid="s",
        part=1,
        probability=0.93,
        threshold=0.41,
        threshold_source="model",
        positive=True,
        slice_index=0,
        sop_instance_uid="sop",
        frame=0,
        box=(20.0, 40.0, 10.0, 8.0),
        heatmap=np.ones((128, 100), np.float32),
    )
    assert scale_factor(image.shape) == 6 and scale_factor((64, 64)) == 8
    assert scale_factor((1024, 1024)) == 1
    rgb = render_key_image(image, KeyImage("s", "sop", 0, 0, (finding,)), MODEL)
    assert rgb.shape == (768, 600, 3)
    cyan = np.array(label_colour(0), dtype=np.uint8)
    assert (rgb[240, 120:180] == cyan).all()  # the box's top edge, six times further out


def test_an_edited_box_replaces_the_outline_and_absent_findings_are_left_out(
    tmp_path: Path,
) -> None:
    _files, result, review = chest_study(tmp_path)
    review.edit_box(fid(result, "nodule"), (250, 500, 80, 70))
    findings = collect_findings([result], review)
    [key] = key_images(findings)
    assert [f.label for f in key.findings] == ["nodule"]
    [nodule] = key.findings
    assert nodule.box == (250, 500, 80, 70) and nodule.box_edited
    assert nodule.region_source == "edited"
    [mark] = marks_for(key.findings)
    assert mark.box == (250, 500, 80, 70) and mark.outline is None


def test_a_ct_slice_becomes_a_secondary_capture_with_orientation_from_iop(tmp_path: Path) -> None:
    files = copy_study(CT_DIR, tmp_path / "ct")
    result = make_result(files, {"nodule": (0.8, 17, (70.0, 110.0, 15.0, 16.0))})
    out = export_study(
        ExportRequest(
            study_paths=[tmp_path / "ct"],
            out_dir=tmp_path / "out",
            formats=["sc"],
            results=[result],
        )
    )
    [path] = out.sc
    sc = pydicom.dcmread(path)
    source = pydicom.dcmread(files[17], stop_before_pixels=True)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert list(sc.PatientOrientation) == ["L", "P"]  # rows run to the left, columns back
    assert (sc.Rows, sc.Columns) == (512, 512)  # 256² enlarged twice, for legible text
    assert [float(v) for v in sc.PixelSpacing] == [float(v) / 2 for v in source.PixelSpacing]


def test_a_multiframe_colour_source_references_its_frame(tmp_path: Path) -> None:
    [copy] = copy_study(pydicom_test_file("SC_rgb_rle_2frame.dcm"), tmp_path / "mf")
    result = make_result([copy], {"nodule": (0.9, 1, (10.0, 12.0, 20.0, 18.0))}, frame=0)
    out = export_study(
        ExportRequest(
            study_paths=[copy], out_dir=tmp_path / "out", formats=["sc"], results=[result]
        )
    )
    sc = pydicom.dcmread(out.sc[0])
    assert int(sc.SourceImageSequence[0].ReferencedFrameNumber) == 2
    assert sc.PatientOrientation == ""  # unknown for this source (Type 2C, empty)


def test_no_positive_finding_gives_no_secondary_capture_and_says_so(tmp_path: Path) -> None:
    files, result, review = chest_study(tmp_path)
    review.reject(fid(result, "nodule"), "fp_normal_anatomy")
    out = export_study(
        ExportRequest(study_paths=files, out_dir=tmp_path / "out", formats=["sc"], review=review)
    )
    assert out.sc == [] and out.key_images == 0
    assert any("no key image and no secondary capture" in w for w in out.warnings)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"PatientOrientation": ["A", "F"]}, ("A", "F")),
        ({"ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}, ("L", "P")),
        ({"ImageOrientationPatient": [0, 1, 0, 0, 0, -1]}, ("P", "F")),
        ({"ImageOrientationPatient": [-0.9, 0.1, 0, 0, 0.2, -0.98]}, ("R", "F")),
        ({"PatientOrientation": ["LP", "F"]}, None),
        ({}, None),
    ],
)
def test_patient_orientation(values: dict[str, Any], expected: tuple[str, str] | None) -> None:
    ds = Dataset()
    for key, value in values.items():
        setattr(ds, key, value)
    assert patient_orientation(ds) == expected
