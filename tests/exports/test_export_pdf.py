"""The PDF report: its content (report_model, no layout) and the rendered PDF read back with
pypdf (text per page, embedded images)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pypdf import PdfReader

from desktop_app import RESEARCH_USE_NOTICE
from desktop_app.exports.content import ExportFinding, ModelSummary, model_summary
from desktop_app.exports.report_model import (
    ReportImage,
    build_report,
    dicom_date,
    dicom_time,
    person,
)
from desktop_app.exports.report_pdf import render_pdf
from desktop_app.exports.sources import StudyHeader
from desktop_app.exports.study_export import ExportRequest, export_study
from tests.helpers.exports import chest_study, make_manifest

HEADER = StudyHeader(
    patient_name="Testperson^Jolene",
    patient_id="MRN-77123",
    birth_date="19700314",
    sex="F",
    study_date="20230505",
    study_time="145056",
    study_description="CHEST PA",
    accession_number="ACC1",
    modalities=("DX",),
    study_instance_uid="1.2.3",
)
SHA = "ef" * 32


def _finding(n: int, **kw: Any) -> ExportFinding:
    fields: dict[str, Any] = dict(
        finding_id=f"s#1:l{n}",
        label=f"label{n}",
        label_index=n,
        series_instance_uid="s",
        part=1,
        probability=0.5 + n / 1000,
        threshold=0.4,
        threshold_source="model",
        positive=True,
        slice_index=n,
        sop_instance_uid=f"sop{n}",
        frame=0,
    )
    fields.update(kw)
    return ExportFinding(**fields)


def _text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _flat(pages: list[str]) -> str:
    """All pages' text with every run of whitespace (line breaks in table cells) as a space."""
    return " ".join(" ".join(pages).split())


def _model(**kw: Any) -> ModelSummary:
    return model_summary([], None, make_manifest(tensor_sha256=SHA, **kw), device="cpu")


class TestContent:
    def test_header_summary_and_rows(self) -> None:
        findings = [
            _finding(1, truth="present", note="real one", reviewer="Dr Reader"),
            _finding(2, truth="absent", reason="fp_artefact", threshold_source="reader"),
            _finding(3, positive=False, reader_box=(1.0, 2.0, 3.0, 4.0)),
        ]
        content = build_report(HEADER, findings, _model(), [], reviewers=["Dr Reader"])
        header = dict(content.header)
        assert header["Patient"] == "Testperson, Jolene"
        assert header["Birth date"] == "1970-03-14"
        assert header["Study date"] == "2023-05-05 14:50:56"
        assert header["Reviewed by"] == "Dr Reader"
        assert "De-identified" not in header
        assert content.summary.startswith("3 finding(s), 2 positive")
        assert "1 present, 1 absent, 0 uncertain, 1 not reviewed" in content.summary
        assert "agreement with the model: 1 TP, 1 FP, 0 TN, 0 FN" in content.summary
        assert content.columns[3:5] == (
            "Model decision (p, threshold, call)",
            "Reader's verdict (agreement)",
        )
        rows = {row[1]: row for row in content.rows}
        assert rows["label1"][3] == "p 0.501 · threshold 0.40 → positive"
        assert rows["label1"][4:] == ("present\nagrees: true positive", "real one")
        assert rows["label2"][3] == "p 0.502 · threshold 0.40 (reader) → positive"
        assert rows["label2"][4] == (
            "absent\ndisagrees: false positive\n(False positive – artefact)"
        )
        assert rows["label3"][3].endswith("→ negative")
        assert rows["label3"][4] == "not reviewed"
        assert rows["label3"][5] == "box edited by the reader."
        assert content.missed == ()

    def test_a_threshold_moved_after_the_verdict_is_shown_beside_the_recorded_one(self) -> None:
        finding = _finding(1, truth="absent", positive=False, threshold=0.6, threshold_now=0.0)
        [row] = build_report(HEADER, [finding], _model(), []).rows
        assert row[3] == (
            "p 0.501 · threshold 0.60 → negative\n(at the verdict; threshold now 0.00 → positive)"
        )
        assert row[4] == "absent\nagrees: true negative"

    def test_missed_findings_are_listed(self) -> None:
        missed = _finding(
            4,
            positive=False,
            probability=0.12,
            threshold=0.5,
            truth="present",
            reason="fn_subtle",
            reader_box=(100.0, 200.0, 60.0, 40.0),
            added=True,
        )
        unboxed = _finding(5, positive=False, probability=0.3, truth="present")
        content = build_report(HEADER, [missed, unboxed], _model(), [])
        rows = {row[1]: row for row in content.rows}
        assert rows["label4"][4] == (
            "present, added by the reader\ndisagrees: false negative\n(Missed – subtle finding)"
        )
        assert rows["label4"][5] == "box drawn by the reader."
        assert content.missed == (
            "label4: series 1, slice 5, reader's box x 100, y 200, 60 × 40 px; "
            "model p 0.120 < threshold 0.50",
            "label5: series 1, slice 6, no box drawn; model p 0.300 < threshold 0.40",
        )
        assert "2 FN" in content.summary and "1 finding(s) added by the reader" in content.summary

    def test_model_card_summary(self) -> None:
        content = build_report(HEADER, [_finding(1)], _model(), [])
        model = dict(content.model)
        assert model["Tensor SHA-256"] == SHA
        assert model["Operating thresholds"] == "nodule 0.410, effusion 0.500, cardiomegaly 0.600"
        assert content.intended_use.startswith("Research only")
        assert content.metrics == (
            "test · nodule: auroc 0.930 (95% CI 0.900–0.960); sensitivity 0.880",
        )
        assert any("synthetic phantoms" in w for w in content.warnings)

    def test_without_the_model_file_says_what_is_missing(self) -> None:
        summary = ModelSummary(name="m", version="2", tensor_sha256=SHA)
        content = build_report(HEADER, [_finding(1)], summary, [])
        assert any("model file was not available" in w for w in content.warnings)
        assert content.metrics == ("Not available.",)
        assert dict(content.model)["Device"] == "not recorded"

    def test_deidentified_withholds_notes_and_reviewer(self) -> None:
        content = build_report(
            HEADER,
            [_finding(1, note="Mrs Testperson, see prior")],
            _model(),
            [],
            deidentified=True,
            include_notes=False,
        )
        header = dict(content.header)
        assert header["Reviewed by"] == "withheld"
        assert header["De-identified"].startswith("yes")
        assert content.rows[0][5] == "withheld"


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (dicom_date, "20230505", "2023-05-05"),
        (dicom_date, "", "—"),
        (dicom_date, "2023", "2023"),
        (dicom_time, "145056.123", "14:50:56"),
        (dicom_time, "0930", "09:30"),
        (person, "DOE^JANE^Q", "DOE, JANE Q"),
        (person, "RA-1234ABCD", "RA-1234ABCD"),
        (person, "", "—"),
        (person, "^Jane", "Jane"),
    ],
)
def test_formatting(fn: Any, value: str, expected: str) -> None:
    assert fn(value) == expected


class TestRenderedPdf:
    def test_every_page_carries_the_notice_and_the_disclaimer(self) -> None:
        findings = [_finding(n, note=f"note number {n} " * 3) for n in range(60)]  # several pages
        created = datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
        pdf = render_pdf(build_report(HEADER, findings, _model(), [], created=created))
        pages = _text(pdf)
        assert len(pages) >= 3
        for n, text in enumerate(pages, start=1):
            assert f"⚠ {RESEARCH_USE_NOTICE}" in text
            assert "not a medical device" in text
            assert "Generated by RadAssist" in text and "2024-01-02 03:04 UTC" in text
            assert f"Page {n}" in text
        everything = "\n".join(pages)
        for n in range(60):
            assert f"label{n}\n" in everything or f"label{n} " in everything
        assert SHA in everything
        assert "Model card summary" in everything

    def test_key_images_are_embedded_with_their_captions(self) -> None:
        images = [
            ReportImage(np.full((300, 200, 3), 90, np.uint8), "slice 1: nodule 0.93 (accepted)"),
            ReportImage(
                np.full((2048, 2048, 3), 30, np.uint8), "slice 7: mass 0.61 (not reviewed)"
            ),
        ]
        pdf = render_pdf(build_report(HEADER, [_finding(1)], _model(), images))
        reader = PdfReader(io.BytesIO(pdf))
        embedded = [img for page in reader.pages for img in page.images]
        assert len(embedded) == 2
        assert max(max(img.image.size) for img in embedded) == 1024  # downscaled
        text = "\n".join(page.extract_text() for page in reader.pages)
        assert "slice 1: nodule 0.93 (accepted)" in text

    def test_markup_in_notes_is_shown_as_text(self) -> None:
        findings = [_finding(1, note="<b>bold?</b> & <font>")]
        text = _flat(_text(render_pdf(build_report(HEADER, findings, _model(), []))))
        assert "<b>bold?</b> & <font>" in text

    def test_no_key_image_says_so(self) -> None:
        pdf = render_pdf(build_report(HEADER, [_finding(1, positive=False)], _model(), []))
        assert "No key image" in "\n".join(_text(pdf))


def test_exported_report_of_a_reviewed_study(tmp_path: Path) -> None:
    files, result, review = chest_study(tmp_path)
    key = f"{result.series_instance_uid}#{result.part}"
    review.add_missed(key, "cardiomegaly", (100, 600, 300, 200), slice_index=0)
    out = export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            formats=["pdf"],
            results=[result],
            review=review,
            model_manifest=make_manifest(),
        )
    )
    assert out.pdf is not None and out.sr is None and out.json is None
    reader = PdfReader(out.pdf)
    text = _flat([page.extract_text() for page in reader.pages])
    assert "Testperson, Jolene" in text and "MRN-77123" in text
    assert "Model decision (p, threshold, call)" in text
    assert "Reader's verdict (agreement)" in text
    assert "p 0.930 · threshold 0.41 → positive present agrees: true positive" in text
    assert "absent disagrees: false positive (False positive – artefact)" in text
    assert "p 0.200 · threshold 0.60 → negative present, added by the reader" in text
    assert "disagrees: false negative" in text
    assert "Findings the model missed (added by the reader)" in text
    assert "cardiomegaly: series 1, slice 1, reader's box x 100, y 600, 300 × 200 px" in text
    assert "Round opacity, right lower zone <check> & compare" in text
    assert "Reviewed by Dr Reader" in text
    assert sum(len(page.images) for page in reader.pages) == 1  # one radiograph: one key image
