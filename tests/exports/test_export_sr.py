"""The DICOM SR of an export: built through highdicom, read back with highdicom.sr.srread, and
its content checked item by item against the findings and the review."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ComprehensiveSRStorage

from desktop_app import RESEARCH_USE_NOTICE
from desktop_app.exports.content import ModelSummary, collect_findings
from desktop_app.exports.sr import (
    LOCAL_SCHEME,
    SrInputs,
    build_sr,
    label_code,
    person_name,
    procedure_code,
)
from desktop_app.exports.study_export import ExportRequest, export_study
from desktop_app.infra.errors import ExportError
from tests.helpers.dicomfiles import pydicom_test_file
from tests.helpers.exports import (
    CHEST,
    CT_DIR,
    NODULE_BOX,
    chest_study,
    copy_study,
    fid,
    make_manifest,
    make_result,
    make_review,
    rectangle,
)


def result_key(result: Any) -> str:
    return f"{result.series_instance_uid}#{result.part}"


def _export_sr(tmp_path: Path, **kw: Any) -> tuple[hd.sr.ComprehensiveSR, Path]:
    result = export_study(ExportRequest(out_dir=tmp_path / "out", formats=["sr"], **kw))
    assert result.sr is not None and result.sc == [] and result.pdf is None
    return hd.sr.srread(result.sr), result.sr


def _items(container: Any) -> list[Any]:
    if not isinstance(container, Dataset):  # a highdicom template: a sequence of items
        return list(container)
    return list(getattr(container, "ContentSequence", []))


def _walk(ds: Any) -> list[Any]:
    out = []
    for item in _items(ds):
        out.append(item)
        out += _walk(item)
    return out


def _text_values(ds: Any, meaning: str) -> list[str]:
    return [
        str(i.TextValue)
        for i in _walk(ds)
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeMeaning == meaning
    ]


def _source_of(region: Any) -> Any:
    """The SOP reference of a SCOORD's "selected from" IMAGE child (PS3.3 C.18.3)."""
    [image] = region.ContentSequence
    assert image.RelationshipType == "SELECTED FROM"
    return image.ReferencedSOPSequence[0]


def _evaluations(group: Any) -> dict[str, tuple[str, str, str]]:
    """A measurement group's coded qualitative evaluations: name -> (scheme, value, meaning)."""
    return {
        q.name.meaning: (q.value.scheme_designator, q.value.value, q.value.meaning)
        for q in group.get_qualitative_evaluations()
        if q.name.meaning != "Geometric purpose of region"
    }


def _group_by_finding(sr: hd.sr.ComprehensiveSR) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    content = sr.content
    for g in [
        *content.get_planar_roi_measurement_groups(),
        *content.get_image_measurement_groups(),
    ]:
        groups[g.finding_type.meaning] = g
    return groups


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[hd.sr.ComprehensiveSR, Path, Any, Any]:
    tmp_path = tmp_path_factory.mktemp("chest-sr")
    files, result, review = chest_study(tmp_path)
    sr, path = _export_sr(
        tmp_path,
        study_paths=files,
        results=[result],
        review=review,
        model_manifest=make_manifest(),
    )
    return sr, path, result, pydicom.dcmread(files[0], stop_before_pixels=True)


class TestReviewedChestSR:
    def test_is_a_tid1500_comprehensive_sr_in_a_new_series_of_the_study(
        self, exported: tuple[Any, Path, Any, Any]
    ) -> None:
        sr, _, _, source = exported
        assert sr.SOPClassUID == ComprehensiveSRStorage
        assert sr.Modality == "SR"
        assert sr.StudyInstanceUID == source.StudyInstanceUID
        assert sr.SeriesInstanceUID != source.SeriesInstanceUID
        assert sr.PatientID == source.PatientID and sr.PatientName == source.PatientName
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"
        assert (sr.VerificationFlag, sr.PreliminaryFlag) == ("UNVERIFIED", "PRELIMINARY")
        assert sr.CompletionFlag == "PARTIAL"  # cardiomegaly is still pending
        assert "research use only" in sr.SeriesDescription

    def test_references_the_source_instances(self, exported: tuple[Any, Path, Any, Any]) -> None:
        sr, _, _, source = exported
        [study] = sr.CurrentRequestedProcedureEvidenceSequence
        assert study.StudyInstanceUID == source.StudyInstanceUID
        [series] = study.ReferencedSeriesSequence
        assert series.SeriesInstanceUID == source.SeriesInstanceUID
        [ref] = series.ReferencedSOPSequence
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == source.SOPClassUID

    def test_each_finding_is_a_measurement_group(
        self, exported: tuple[Any, Path, Any, Any]
    ) -> None:
        sr, _, _result, _source = exported
        groups = _group_by_finding(sr)
        assert set(groups) == {"Nodule", "Pleural effusion", "Cardiomegaly"}
        assert len(sr.content.get_planar_roi_measurement_groups()) == 2  # the located ones
        nodule = groups["Nodule"]
        values = {m.name.meaning: m.value for m in nodule.get_measurements()}
        assert values == pytest.approx({"Probability": 0.93, "Threshold Value": 0.41})
        assert _evaluations(nodule) == {
            "Model decision at operating threshold": ("DCM", "121053", "Present"),
            "Reader's assessment": ("DCM", "121053", "Present"),
            "Agreement with model decision": (LOCAL_SCHEME, "RA-TP", "True positive"),
            "Region source": (LOCAL_SCHEME, "RA-MODEL-OUTLINE", "Model heatmap region outline"),
        }
        effusion = _evaluations(groups["Pleural effusion"])
        assert effusion["Model decision at operating threshold"][2] == "Present"
        assert effusion["Reader's assessment"] == ("DCM", "121054", "Absent")
        assert effusion["Agreement with model decision"][1] == "RA-FP"
        assert effusion["Reason for disagreement"][:2] == (LOCAL_SCHEME, "RA-FP-ARTEFACT")
        assert _evaluations(groups["Cardiomegaly"]) == {
            "Model decision at operating threshold": ("DCM", "121054", "Absent"),
            "Reader's assessment": (LOCAL_SCHEME, "RA-PENDING", "Not reviewed"),
        }

    def test_region_is_the_outline_on_the_source_image(
        self, exported: tuple[Any, Path, Any, Any]
    ) -> None:
        sr, _, _, source = exported
        nodule = _group_by_finding(sr)["Nodule"]
        region = nodule.roi
        assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        expected = [*rectangle(NODULE_BOX), rectangle(NODULE_BOX)[0]]
        np.testing.assert_allclose(region.value, np.asarray(expected))
        assert _source_of(region).ReferencedSOPInstanceUID == source.SOPInstanceUID

    def test_the_reader_note_and_the_disclaimer_are_text_items(
        self, exported: tuple[Any, Path, Any, Any]
    ) -> None:
        sr, _, _, _ = exported
        nodule = _group_by_finding(sr)["Nodule"]
        assert _text_values(nodule, "Comment") == [
            "Round opacity, right lower zone <check> & compare"
        ]
        [notice] = _text_values(sr, "Research use notice")
        assert RESEARCH_USE_NOTICE in notice

    def test_the_model_is_identified(self, exported: tuple[Any, Path, Any, Any]) -> None:
        sr, _, _, _ = exported
        for group in _group_by_finding(sr).values():
            assert _text_values(group, "Algorithm Name")[0] == "export test model"
            assert _text_values(group, "Algorithm Version")[0] == "3"
            params = _text_values(group, "Algorithm Parameters")
            assert f"tensor_sha256={'ab' * 32}" in params
            assert "device=cpu" in params
        assert "RadAssist" in _text_values(sr, "Device Observer Name")
        assert _text_values(sr, "Device Observer Model Name") == ["export test model 3"]

    def test_the_reader_is_the_person_observer(self, exported: tuple[Any, Path, Any, Any]) -> None:
        sr, _, _, _ = exported
        names = [str(i.PersonName) for i in _walk(sr) if i.ValueType == "PNAME"]
        assert names == ["Dr Reader^"]

    def test_the_local_coding_scheme_is_declared(
        self, exported: tuple[Any, Path, Any, Any]
    ) -> None:
        sr, _, _, _ = exported
        [scheme] = sr.CodingSchemeIdentificationSequence
        assert scheme.CodingSchemeDesignator == LOCAL_SCHEME

    def test_reads_back_through_from_dataset(self, exported: tuple[Any, Path, Any, Any]) -> None:
        _, path, _, _ = exported
        again = hd.sr.ComprehensiveSR.from_dataset(pydicom.dcmread(path))
        assert len(again.content.get_planar_roi_measurement_groups()) == 2


def test_an_edited_box_is_the_region_and_says_so(tmp_path: Path) -> None:
    files, result, review = chest_study(tmp_path)
    review.edit_box(fid(result, "nodule"), (250, 500, 80, 70))
    sr, _ = _export_sr(tmp_path, study_paths=files, results=[result], review=review)
    nodule = _group_by_finding(sr)["Nodule"]
    expected = [*rectangle((250, 500, 80, 70)), rectangle((250, 500, 80, 70))[0]]
    np.testing.assert_allclose(nodule.roi.value, np.asarray(expected))
    assert _evaluations(nodule)["Region source"][2] == "Box edited by reader"


def test_a_threshold_moved_after_the_verdict_changes_nothing_recorded(tmp_path: Path) -> None:
    """Issue 14: an accepted negative must not become "Present at threshold 0.0"."""
    files, result, review = chest_study(tmp_path)
    review.set_truth(fid(result, "cardiomegaly"), "absent")  # p 0.2 < 0.6: a true negative
    review.set_threshold("cardiomegaly", 0.0)  # the slider, moved afterwards
    review.set_threshold("nodule", 0.99)  # the accepted nodule is now "negative" too
    sr, _ = _export_sr(tmp_path, study_paths=files, results=[result], review=review)
    groups = _group_by_finding(sr)
    cardio = groups["Cardiomegaly"]
    assert _evaluations(cardio) == {
        "Model decision at operating threshold": ("DCM", "121054", "Absent"),
        "Reader's assessment": ("DCM", "121054", "Absent"),
        "Agreement with model decision": (LOCAL_SCHEME, "RA-TN", "True negative"),
    }
    values = {m.name.meaning: m.value for m in cardio.get_measurements()}
    assert values == pytest.approx({"Probability": 0.2, "Threshold Value": 0.6})
    nodule = groups["Nodule"]
    assert _evaluations(nodule)["Model decision at operating threshold"][2] == "Present"
    assert _evaluations(nodule)["Agreement with model decision"][1] == "RA-TP"
    values = {m.name.meaning: m.value for m in nodule.get_measurements()}
    assert values["Threshold Value"] == pytest.approx(0.41)
    assert nodule.roi is not None  # still the model's region: it was positive when accepted


def test_a_pending_finding_is_decided_at_the_threshold_in_force(tmp_path: Path) -> None:
    files, result, review = chest_study(tmp_path)
    review.set_threshold("cardiomegaly", 0.15)  # pending, so the slider decides
    sr, _ = _export_sr(tmp_path, study_paths=files, results=[result], review=review)
    cardio = _group_by_finding(sr)["Cardiomegaly"]
    assert _evaluations(cardio)["Model decision at operating threshold"][2] == "Present"
    values = {m.name.meaning: m.value for m in cardio.get_measurements()}
    assert values["Threshold Value"] == pytest.approx(0.15)


def test_a_missed_finding_is_the_readers_with_their_box_and_no_model_region(
    tmp_path: Path,
) -> None:
    files, result, review = chest_study(tmp_path)
    drawn = (100.0, 600.0, 300.0, 200.0)
    review.add_missed(result_key(result), "cardiomegaly", drawn, slice_index=0)
    sr, _ = _export_sr(tmp_path, study_paths=files, results=[result], review=review)
    cardio = _group_by_finding(sr)["Cardiomegaly"]
    assert _evaluations(cardio) == {
        "Model decision at operating threshold": ("DCM", "121054", "Absent"),
        "Reader's assessment": ("DCM", "121053", "Present"),
        "Agreement with model decision": (LOCAL_SCHEME, "RA-FN", "False negative"),
        "Region source": (
            LOCAL_SCHEME,
            "RA-READER-ADDED",
            "Box drawn by reader (finding added by reader)",
        ),
    }
    np.testing.assert_allclose(cardio.roi.value, np.asarray([*rectangle(drawn), drawn[:2]]))
    assert sr.CompletionFlag == "COMPLETE"  # every label now has a verdict


def test_a_missed_finding_on_another_slice_references_that_slice(tmp_path: Path) -> None:
    files = copy_study(CT_DIR, tmp_path / "ct")
    result = make_result(files, {"nodule": (0.8, 17, (70.0, 110.0, 15.0, 16.0))})
    review = make_review(result)
    slice25 = pydicom.dcmread(files[25], stop_before_pixels=True)
    review.add_missed(
        result_key(result),
        "effusion",
        (20, 30, 40, 50),
        slice_index=25,
        sop_instance_uid=str(slice25.SOPInstanceUID),
    )
    sr, _ = _export_sr(tmp_path, study_paths=[tmp_path / "ct"], results=[result], review=review)
    effusion = _group_by_finding(sr)["Pleural effusion"]
    assert _source_of(effusion.roi).ReferencedSOPInstanceUID == slice25.SOPInstanceUID
    assert effusion.tracking_identifier == "effusion (slice 26)"
    assert _evaluations(effusion)["Agreement with model decision"][1] == "RA-FN"


def test_every_reader_who_gave_a_verdict_is_a_person_observer(tmp_path: Path) -> None:
    files, result, review = chest_study(tmp_path)
    review.set_truth(fid(result, "cardiomegaly"), "uncertain", reviewer="Second Reader")
    sr, _ = _export_sr(tmp_path, study_paths=files, results=[result], review=review)
    names = [str(i.PersonName) for i in _walk(sr) if i.ValueType == "PNAME"]
    assert names == ["Dr Reader^", "Second Reader^"]
    observers = [
        i.ConceptCodeSequence[0].CodeMeaning
        for i in _walk(sr)
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeMeaning == "Observer Type"
    ]
    assert observers == ["Person", "Person", "Device"]
    cardio = _group_by_finding(sr)["Cardiomegaly"]
    assert _evaluations(cardio)["Reader's assessment"] == ("SCT", "82334004", "Indeterminate")
    assert "Agreement with model decision" not in _evaluations(cardio)


def test_without_a_reader_name_there_is_no_person_observer(tmp_path: Path) -> None:
    files = copy_study(CHEST, tmp_path / "study")
    result = make_result(files, {"nodule": (0.93, 0, NODULE_BOX)})
    review = make_review(result, reviewer="")
    review.accept(fid(result, "nodule"))
    sr, _ = _export_sr(tmp_path, study_paths=files, review=review)
    assert not [i for i in _walk(sr) if i.ValueType == "PNAME"]


def test_a_ct_finding_references_its_slice_and_every_slice_is_evidence(tmp_path: Path) -> None:
    files = copy_study(CT_DIR, tmp_path / "ct")
    result = make_result(files, {"nodule": (0.8, 17, (70.0, 110.0, 15.0, 16.0))})
    sr, _ = _export_sr(tmp_path, study_paths=[tmp_path / "ct"], results=[result])
    [series] = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert len(series.ReferencedSOPSequence) == 40
    nodule = _group_by_finding(sr)["Nodule"]
    slice17 = pydicom.dcmread(files[17], stop_before_pixels=True)
    assert _source_of(nodule.roi).ReferencedSOPInstanceUID == slice17.SOPInstanceUID
    assert sr.CompletionFlag == "PARTIAL"  # nothing reviewed
    procedure = [
        i
        for i in _walk(sr)
        if i.ValueType == "CODE" and i.ConceptCodeSequence[0].CodeValue == "25045-6"
    ]
    assert procedure  # "CT unspecified body region"


def test_a_multiframe_source_is_referenced_by_frame_number(tmp_path: Path) -> None:
    source = pydicom_test_file("SC_rgb_rle_2frame.dcm")
    [copy] = copy_study(source, tmp_path / "mf")
    result = make_result([copy], {"nodule": (0.9, 1, (10.0, 12.0, 20.0, 18.0))}, frame=0)
    sr, _ = _export_sr(tmp_path, study_paths=[copy], results=[result])
    nodule = _group_by_finding(sr)["Nodule"]
    assert int(_source_of(nodule.roi).ReferencedFrameNumber) == 2


@pytest.mark.parametrize(
    ("label", "scheme", "value"),
    [
        ("nodule", "SCT", "27925004"),
        ("Effusion", "SCT", "60046008"),
        ("cardiomegaly", "SCT", "287272002"),
        ("pneumothorax", LOCAL_SCHEME, "pneumothorax"),
        ("ground glass opacity left", LOCAL_SCHEME, "ground glas~"),
    ],
)
def test_label_codes(label: str, scheme: str, value: str) -> None:
    code = label_code(label)
    assert code.scheme_designator == scheme
    assert code.value.startswith(value) and len(code.value) <= 16


@pytest.mark.parametrize(
    ("modality", "code"), [("CT", "25045-6"), ("MR", "25056-3"), ("DX", "43468-8"), ("", "43468-8")]
)
def test_procedure_codes(modality: str, code: str) -> None:
    assert procedure_code(modality).value == code


@pytest.mark.parametrize(
    ("text", "pn"), [("Jane Doe", "Jane Doe^"), ("Doe^Jane", "Doe^Jane"), (" a  b ", "a b^")]
)
def test_person_name(text: str, pn: str) -> None:
    assert person_name(text) == pn


def test_no_findings_is_refused() -> None:
    inputs = SrInputs(evidence=[], image_of={}, library=[], modality="DX")
    with pytest.raises(ExportError, match="no findings to put in a structured report"):
        build_sr([], ModelSummary("m", "1", ""), inputs)


def test_a_review_made_without_results_still_gives_a_valid_sr(tmp_path: Path) -> None:
    files, _result, review = chest_study(tmp_path)
    sr, _ = _export_sr(tmp_path, study_paths=files, review=review, device="cuda:0")
    groups = _group_by_finding(sr)
    assert "device=cuda:0" in _text_values(groups["Nodule"], "Algorithm Parameters")
    assert len(collect_findings([], review)) == 3
    assert next(m.name for m in groups["Nodule"].get_measurements()) == codes.DCM.Probability
