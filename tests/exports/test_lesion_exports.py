"""Reviewed lesions as outputs: the SEG of the kept lesions (one segment each), the TID 1500
Comprehensive 3D SR referencing it, the PDF lesion table, and export_study writing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pypdf import PdfReader

from desktop_app.exports import ExportRequest, export_study
from desktop_app.exports.content import ModelSummary
from desktop_app.exports.lesion_sr import (
    LESION_SEG_SERIES_DESCRIPTION,
    LESION_SR_SERIES_DESCRIPTION,
    LesionRecord,
    ReviewedLesions,
    build_lesion_seg,
    build_lesion_sr,
    edited_lesions,
    kept_lesions,
    review_lesions,
    tracking_uid,
)
from desktop_app.exports.sources import StudySources
from desktop_app.infra.errors import ExportError
from desktop_app.phantoms.studies import write_ct_series
from tests.helpers.exports import make_result, make_review

MODEL = ModelSummary(name="ct-nodule-seg", version="1.0", tensor_sha256="cd" * 32)
SLICES, ROWS = 8, 64

# Lesion 1: the model's, accepted; 2: the model's, rejected; 3: drawn by the reader;
# 4: the model's, accepted after the reader edited it; 5: the model's, never reviewed.
LESIONS = (
    LesionRecord(
        1, "nodule", "model", "accepted", None, 512.0, 11.25, 34.5, 120.0, (2, 4), 0.93, "Dr A"
    ),
    LesionRecord(2, "nodule", "model", "rejected", "fp_artefact", 80.0, 5.0, 10.0, 40.0, (5, 5)),
    LesionRecord(3, "nodule", "reader", "accepted", None, 40.0, 4.5, -20.0, 15.0, (6, 6)),
    LesionRecord(
        4, "nodule", "model", "accepted", None, 60.0, 6.0, 5.0, 30.0, (1, 1), 0.7, edited=True
    ),
    LesionRecord(5, "nodule", "model", "pending", None, 30.0, 3.0, 0.0, 9.0, (7, 7), 0.55),
)
KEPT_IDS = [1, 3, 4]


def label_volume() -> np.ndarray:
    labels = np.zeros((SLICES, ROWS, ROWS), dtype=np.uint16)
    labels[2:5, 20:30, 20:30] = 1
    labels[5, 40:46, 40:46] = 2
    labels[6, 10:14, 44:48] = 3
    labels[1, 50:54, 10:14] = 4
    labels[7, 30:33, 30:33] = 5
    return labels


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], StudySources, list[Any]]:
    folder = tmp_path_factory.mktemp("lesionct")
    series = write_ct_series(folder / "ct", 7, slices=SLICES, rows=ROWS)
    files = list(series.paths)
    sources = StudySources(files)
    uid = sources.study.series[0].series_instance_uid
    order = [sources.slice_image(uid, 1, k) for k in range(SLICES)]
    assert all(o is not None for o in order)
    headers = [sources.header(o[0]) for o in order if o is not None]
    return files, sources, headers


@pytest.fixture(scope="module")
def built(ct: tuple[list[Path], StudySources, list[Any]]) -> tuple[Any, Any]:
    _files, _sources, headers = ct
    seg = build_lesion_seg(headers, label_volume(), LESIONS, MODEL)
    sr = build_lesion_sr(headers, seg, MODEL, modality="CT", reviewers=["Dr A"])
    return seg, sr


class TestKept:
    def test_accepted_and_reader_drawn_are_kept(self) -> None:
        assert [r.lesion_id for r in kept_lesions(LESIONS)] == KEPT_IDS

    def test_a_rejected_reader_lesion_is_not_kept(self) -> None:
        assert not LesionRecord(9, source="reader", verdict="rejected").kept

    def test_edited_lesions_are_the_ones_whose_voxels_changed(self) -> None:
        model = label_volume()
        reviewed = model.copy()
        reviewed[2, 30, 20:30] = 1  # the reader grew lesion 1
        reviewed[reviewed == 2] = 0  # rejected: removed
        assert edited_lesions(reviewed, model) == {1, 2}
        assert edited_lesions(reviewed, None) == set()


class TestLesionSeg:
    def test_one_segment_per_kept_lesion(self, built: tuple[Any, Any], tmp_path: Path) -> None:
        seg, _sr = built
        assert seg.segment_of == {1: 1, 3: 2, 4: 3}
        path = tmp_path / "seg.dcm"
        seg.dataset.save_as(path, enforce_file_format=True)
        back = hd.seg.segread(path)
        assert back.SeriesDescription == LESION_SEG_SERIES_DESCRIPTION
        labels = {d.segment_number: d.segment_label for d in back.SegmentSequence}
        assert labels == {1: "L1 nodule", 2: "L3 nodule", 3: "L4 nodule"}
        kinds = {d.segment_number: d.SegmentAlgorithmType for d in back.SegmentSequence}
        assert kinds == {1: "AUTOMATIC", 2: "MANUAL", 3: "SEMIAUTOMATIC"}
        assert back.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == (
            "27925004"
        )

    def test_references_every_image_of_the_series(
        self, ct: tuple[list[Path], StudySources, list[Any]], built: tuple[Any, Any]
    ) -> None:
        _files, _sources, headers = ct
        seg, _sr = built
        refs = seg.dataset.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        assert {r.ReferencedSOPInstanceUID for r in refs} == {h.SOPInstanceUID for h in headers}
        assert len(refs) == SLICES

    def test_only_kept_voxels_on_the_right_slices(
        self, ct: tuple[list[Path], StudySources, list[Any]], built: tuple[Any, Any]
    ) -> None:
        _files, _sources, headers = ct
        seg, _sr = built
        labels = label_volume()
        for lesion_id, number in seg.segment_of.items():
            pixels = seg.dataset.get_pixels_by_source_instance(
                source_sop_instance_uids=[h.SOPInstanceUID for h in headers],
                segment_numbers=[number],
                ignore_spatial_locations=True,
                assert_missing_frames_are_empty=True,
            )[..., 0]
            expected = labels == lesion_id
            assert np.array_equal(pixels.astype(bool), expected), lesion_id

    def test_nothing_kept_is_refused(self, ct: tuple[list[Path], StudySources, list[Any]]) -> None:
        _files, _sources, headers = ct
        only_rejected = [r for r in LESIONS if r.lesion_id == 2]
        with pytest.raises(ExportError, match="no accepted or reader-drawn lesion"):
            build_lesion_seg(headers, label_volume(), only_rejected, MODEL)

    def test_a_kept_lesion_without_voxels_is_reported(
        self, ct: tuple[list[Path], StudySources, list[Any]]
    ) -> None:
        _files, _sources, headers = ct
        labels = label_volume()
        labels[labels == 3] = 0
        seg = build_lesion_seg(headers, labels, LESIONS, MODEL)
        assert seg.empty == (3,) and seg.segment_of == {1: 1, 4: 2}


class TestLesionSr:
    @pytest.fixture
    def groups(self, built: tuple[Any, Any], tmp_path: Path) -> tuple[Any, list[Any]]:
        _seg, sr = built
        path = tmp_path / "sr.dcm"
        sr.save_as(path, enforce_file_format=True)
        back = hd.sr.srread(path)
        return back, list(_groups(back))

    def test_a_comprehensive_3d_sr_in_its_own_series(self, groups: tuple[Any, list[Any]]) -> None:
        back, found = groups
        assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
        assert back.SeriesDescription == LESION_SR_SERIES_DESCRIPTION
        assert len(found) == len(KEPT_IDS)

    def test_each_group_references_its_segment_in_the_seg(
        self, built: tuple[Any, Any], groups: tuple[Any, list[Any]]
    ) -> None:
        seg, _sr = built
        _back, found = groups
        for group, lesion_id in zip(found, KEPT_IDS, strict=True):
            ref = group.referenced_segment
            assert ref.referenced_sop_instance_uid == seg.dataset.SOPInstanceUID
            assert ref.referenced_sop_class_uid == seg.dataset.SOPClassUID
            assert ref.referenced_segment_numbers == [seg.segment_of[lesion_id]]
            assert group.tracking_identifier == f"Lesion L{lesion_id} nodule"
            assert group.tracking_uid == tracking_uid(
                seg.dataset.StudyInstanceUID, seg.dataset.SeriesInstanceUID, lesion_id
            )
            assert group.finding_type.value == "27925004"
            assert [s.value.value for s in group.finding_sites] == [codes.SCT.Lung.value]

    def test_the_measurements_are_the_lesions(self, groups: tuple[Any, list[Any]]) -> None:
        _back, found = groups
        records = {r.lesion_id: r for r in LESIONS}
        for group, lesion_id in zip(found, KEPT_IDS, strict=True):
            r = records[lesion_id]
            got: dict[str, tuple[float, str]] = {}
            for m in group.get_measurements():
                key = m.name.meaning + ("" if m.derivation is None else f" {m.derivation.meaning}")
                got[key] = (float(m.value), m.unit.value)
            assert got["Volume"] == (r.volume_mm3, "mm3")
            assert got["Long axis"] == (r.longest_diameter_mm, "mm")
            assert got["Attenuation Coefficient Mean"] == (r.mean_value, "[hnsf'U]")
            assert got["Attenuation Coefficient Maximum"] == (r.max_value, "[hnsf'U]")
            if r.source == "model":
                assert got["Probability"] == (r.confidence, "1")
            else:
                assert "Probability" not in got

    def test_the_sr_references_the_seg_and_the_series(
        self, ct: tuple[list[Path], StudySources, list[Any]], built: tuple[Any, Any]
    ) -> None:
        _files, _sources, headers = ct
        seg, sr = built
        evidence = {
            i.ReferencedSOPInstanceUID
            for study in sr.CurrentRequestedProcedureEvidenceSequence
            for series in study.ReferencedSeriesSequence
            for i in series.ReferencedSOPSequence
        }
        assert evidence == {h.SOPInstanceUID for h in headers} | {seg.dataset.SOPInstanceUID}
        assert sr.StudyInstanceUID == seg.dataset.StudyInstanceUID == headers[0].StudyInstanceUID

    def test_observers_are_the_reader_and_the_model(self, built: tuple[Any, Any]) -> None:
        _seg, sr = built
        values = _values(sr)
        assert "Dr A^" in values and "ct-nodule-seg 1.0" in values


def _groups(sr: Any) -> list[Any]:
    """The volumetric ROI measurement groups of a read-back SR (highdicom's parsed content)."""
    return list(sr.content.get_volumetric_roi_measurement_groups())


def _values(ds: Any) -> set[str]:
    """Every person name and text value in an SR's content tree."""
    out: set[str] = set()
    for item in ds.get("ContentSequence", []):
        for keyword in ("PersonName", "TextValue"):
            if keyword in item:
                out.add(str(item[keyword].value))
        out |= _values(item)
    return out


def _reviewed_study(
    ct: tuple[list[Path], StudySources, list[Any]],
) -> tuple[list[Path], Any, Any, ReviewedLesions]:
    files, sources, _headers = ct
    uid = sources.study.series[0].series_instance_uid
    ordered = [sources.slice_image(uid, 1, k) for k in range(SLICES)]
    by_sop = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in files}
    stack_files = [by_sop[o[0]] for o in ordered if o is not None]
    result = make_result(stack_files, {"nodule": (0.9, 3, (20.0, 20.0, 10.0, 10.0))})
    review = make_review(result)
    return stack_files, result, review, ReviewedLesions(f"{uid}#1", label_volume(), LESIONS)


class TestExportStudy:
    def test_writes_the_seg_and_the_lesion_sr(
        self, ct: tuple[list[Path], StudySources, list[Any]], tmp_path: Path
    ) -> None:
        files, result, review, lesions = _reviewed_study(ct)
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "out",
                results=[result],
                review=review,
                formats=["sr", "pdf", "json"],
                lesions=[lesions],
            )
        )
        assert len(out.seg) == len(out.lesion_sr) == 1 and out.lesions == len(KEPT_IDS)
        assert all(p.is_file() for p in out.files)
        assert out.seg[0].parent.name == "seg" and out.lesion_sr[0].parent.name == "sr"
        assert len(out.seg[0].stem) == 16  # named by a hash, never a tag value
        seg = hd.seg.segread(out.seg[0])
        sr = hd.sr.srread(out.lesion_sr[0])
        groups = _groups(sr)
        assert {g.referenced_segment.referenced_sop_instance_uid for g in groups} == {
            seg.SOPInstanceUID
        }
        assert set(out.dicom) == {out.sr, out.seg[0], out.lesion_sr[0]}
        assert out.pdf is not None
        text = "".join(page.extract_text() for page in PdfReader(out.pdf).pages)
        assert "Lesions" in text and "L3" in text and "drawn by the reader" in text
        assert "512 mm³" in text and "11.2 mm" in text and "34 / 120 HU" in text
        assert "rejected (fp artefact)" in text and "not reviewed" in text
        assert "outline edited" in text
        import json

        doc = json.loads(out.json.read_text("utf-8")) if out.json else {}
        assert "seg" in json.dumps(doc)

    def test_no_sr_format_no_seg(
        self, ct: tuple[list[Path], StudySources, list[Any]], tmp_path: Path
    ) -> None:
        files, result, review, lesions = _reviewed_study(ct)
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "out",
                results=[result],
                review=review,
                formats=["pdf"],
                lesions=[lesions],
            )
        )
        assert out.seg == [] and out.lesion_sr == [] and out.pdf is not None
        text = "".join(page.extract_text() for page in PdfReader(out.pdf).pages)
        assert "L1" in text

    def test_a_mask_of_another_length_is_left_out_with_a_warning(
        self, ct: tuple[list[Path], StudySources, list[Any]], tmp_path: Path
    ) -> None:
        files, result, review, lesions = _reviewed_study(ct)
        short = ReviewedLesions(lesions.series_key, lesions.labels[:3], lesions.lesions)
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "out",
                results=[result],
                review=review,
                formats=["sr"],
                lesions=[short],
            )
        )
        assert out.seg == [] and any("3 mask slices for 8 images" in w for w in out.warnings)

    def test_deidentified_export_references_the_new_uids(
        self, ct: tuple[list[Path], StudySources, list[Any]], tmp_path: Path
    ) -> None:
        files, result, review, lesions = _reviewed_study(ct)
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "out",
                results=[result],
                review=review,
                formats=["sr"],
                lesions=[lesions],
                deidentify=True,
            )
        )
        seg = pydicom.dcmread(out.seg[0])
        sr = pydicom.dcmread(out.lesion_sr[0])
        originals = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in files}
        refs = {r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0]
                .ReferencedInstanceSequence}  # fmt: skip
        assert len(refs) == SLICES and not refs & originals
        assert seg.StudyInstanceUID == sr.StudyInstanceUID == out.study_uid
        assert not any("Dr A" in v for v in _values(sr))
        assert seg.get("PatientIdentityRemoved") == "YES"


class TestReviewLesions:
    def test_a_review_without_the_lesion_api_has_none(self) -> None:
        assert review_lesions(object()) == []

    def test_records_from_a_review(self) -> None:
        class Review:
            findings: list[Any] = []

            def lesions_for(self, key: str) -> list[LesionRecord]:
                return list(LESIONS) if key == "1.2.3#1" else []

            def reviewed_labels(self, key: str) -> np.ndarray | None:
                return label_volume() if key == "1.2.3#1" else None

        class Result:
            series_instance_uid, part = "1.2.3", 1
            mask = label_volume()

        model_mask = label_volume()
        model_mask[1, 50, 10] = 0  # the reader added a voxel to lesion 4
        Result.mask = model_mask
        found = review_lesions(Review(), [Result()])
        assert [s.series_key for s in found] == ["1.2.3#1"]
        edited = {r.lesion_id for r in found[0].lesions if r.edited}
        assert 4 in edited and 1 not in edited


def _segmented_review(
    ct: tuple[list[Path], StudySources, list[Any]],
) -> tuple[list[Path], Any, Any, str]:
    """A segmentation run over the CT (lesions 1-5 of ``label_volume``, re-numbered by size)
    in a real ReviewState: the largest accepted, the second rejected, one lesion drawn."""
    from desktop_app.inference.lesions import MaskGeometry, find_lesions
    from desktop_app.review.state import lesions_from_result

    files, result, review, lesions = _reviewed_study(ct)
    geometry = MaskGeometry(pixel_spacing=(0.7, 0.7), slice_spacing=2.5)
    values = np.full(label_volume().shape, 40.0)
    table = find_lesions(label_volume(), geometry, values=values, value_unit="HU", with_labels=True)
    result.lesions, result.mask = table, table.labels
    key = lesions.series_key
    review.merge_lesions(key, lesions_from_result(result, key, geometry))
    review.accept_lesion(key, 1, reviewer="Dr B")
    review.reject_lesion(key, 2, "fp_artefact", reviewer="Dr B")
    region = np.zeros((ROWS, ROWS), dtype=bool)
    region[56:60, 56:60] = True
    review.paint_lesion(key, 0, region, None, reviewer="Dr B")
    return files, result, review, key


class TestFromTheReview:
    def test_the_reviews_lesions_are_exported(
        self, ct: tuple[list[Path], StudySources, list[Any]], tmp_path: Path
    ) -> None:
        files, result, review, key = _segmented_review(ct)
        kept = [r for r in review.lesions_for(key) if r.verdict == "accepted"]
        assert {r.source for r in kept} == {"model", "reader"}
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "out",
                results=[result],
                review=review,
                formats=["sr", "pdf"],
            )
        )
        assert len(out.seg) == 1 and out.lesions == len(kept)
        seg = hd.seg.segread(out.seg[0])
        labels = sorted(d.segment_label for d in seg.SegmentSequence)
        assert labels == sorted(f"L{r.lesion_id} {r.label}" for r in kept)
        groups = _groups(hd.sr.srread(out.lesion_sr[0]))
        by_id = {r.lesion_id: r for r in kept}
        for group in groups:
            lesion_id = int(group.tracking_identifier.split()[1][1:])
            volume = next(m for m in group.get_measurements() if m.name.meaning == "Volume")
            assert float(volume.value) == pytest.approx(by_id[lesion_id].volume_mm3)
        assert out.pdf is not None
        text = "".join(page.extract_text() for page in PdfReader(out.pdf).pages)
        assert "rejected (fp artefact)" in text and "40 / 40 HU" in text


class TestExportCommand:
    def test_the_saved_reviews_lesions_are_written(
        self,
        ct: tuple[list[Path], StudySources, list[Any]],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from desktop_app.cli import main
        from desktop_app.review.store import ReviewStore

        files, _result, review, _key = _segmented_review(ct)
        ReviewStore(tmp_path / "reviews").save(review)
        argv = [files[0].parent, "--out", tmp_path / "out", "--sr", "--quiet"]
        code = main(["export", *map(str, argv), "--reviews", str(tmp_path / "reviews")])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "2 reviewed lesion(s) in 1 DICOM SEG(s) with their measurements in an SR" in err
        listed = sorted(line.strip().split("/")[0] for line in out.splitlines()[1:])
        assert listed == ["seg", "sr", "sr"]
