"""The export JSON: versioned, the findings schema's fields per finding plus the verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from desktop_app import RESEARCH_USE_NOTICE
from desktop_app.exports.content import collect_findings, model_summary
from desktop_app.exports.json_export import SCHEMA_NAME, SCHEMA_VERSION, build_json
from desktop_app.exports.study_export import ExportRequest, export_study
from desktop_app.inference.findings import SCHEMA_VERSION as FINDINGS_VERSION
from desktop_app.inference.findings import Finding
from desktop_app.infra.hashedpaths import uid_hash
from tests.helpers.exports import NODULE_BOX, chest_study, fid


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[Any, Any, Any]:
    files, result, review = chest_study(tmp_path)
    review.edit_box(fid(result, "effusion"), (590, 690, 130, 100))
    review.set_threshold("cardiomegaly", 0.15)  # the reader's slider: now positive
    return files, result, review


def _doc(result: Any, review: Any, **kw: Any) -> dict[str, Any]:
    findings = collect_findings([result], review)
    return build_json(
        findings,
        model_summary([result], review),
        study_uid=result.study_instance_uid,
        uid=kw.pop("uid", lambda u: u),
        modalities={result.series_instance_uid: "DX"},
        review=review,
        **kw,
    )


def test_top_level(reviewed: tuple[Any, Any, Any]) -> None:
    _, result, review = reviewed
    doc = _doc(result, review, files={"pdf": "report.pdf"})
    assert (doc["schema"], doc["schema_version"]) == (SCHEMA_NAME, SCHEMA_VERSION)
    assert doc["findings_schema_version"] == FINDINGS_VERSION
    assert doc["notice"] == RESEARCH_USE_NOTICE and doc["deidentified"] is False
    assert doc["study"] == {
        "study_instance_uid": result.study_instance_uid,
        "study_uid_hash": uid_hash(result.study_instance_uid),
        "modalities": ["DX"],
    }
    assert doc["model"]["tensor_sha256"] == "ab" * 32 and doc["model"]["device"] == "cpu"
    assert doc["review"]["reviewer"] == "Dr Reader"
    assert doc["review"]["thresholds"] == {"cardiomegaly": 0.15}
    assert doc["review"]["counts"] == {"pending": 1, "accepted": 1, "rejected": 1, "positive": 3}
    assert doc["files"] == {"pdf": "report.pdf"}
    json.dumps(doc, allow_nan=False)  # plain JSON


def test_findings_carry_verdicts(reviewed: tuple[Any, Any, Any]) -> None:
    _, result, review = reviewed
    [series] = _doc(result, review)["series"]
    assert series["series_instance_uid"] == result.series_instance_uid
    by_label = {f["label"]: f for f in series["findings"]}
    assert list(by_label) == ["nodule", "effusion", "cardiomegaly"]
    nodule = by_label["nodule"]
    assert nodule["box"] == dict(zip(("x", "y", "width", "height"), NODULE_BOX, strict=True))
    assert nodule["review"] == {
        "verdict": "accepted",
        "reason": None,
        "reason_text": None,
        "note": "Round opacity, right lower zone <check> & compare",
        "note_withheld": False,
        "box_edited": False,
        "reviewer": "Dr Reader",
        "updated": nodule["review"]["updated"],
    }
    assert nodule["review"]["updated"]
    effusion = by_label["effusion"]
    assert effusion["review"]["reason"] == "fp_artefact"
    assert effusion["review"]["box_edited"] is True
    assert effusion["box"] == {"x": 590.0, "y": 690.0, "width": 130.0, "height": 100.0}
    assert effusion["model_box"] == {"x": 600.0, "y": 700.0, "width": 120.0, "height": 90.0}
    assert effusion["outline"] is None  # the model's outline no longer matches the box
    cardio = by_label["cardiomegaly"]
    assert (cardio["threshold"], cardio["threshold_source"], cardio["positive"]) == (
        0.15,
        "reader",
        True,
    )


def test_each_finding_reads_as_a_findings_schema_finding(reviewed: tuple[Any, Any, Any]) -> None:
    _, result, review = reviewed
    [series] = _doc(result, review)["series"]
    for entry in series["findings"]:
        finding = Finding.from_json(entry)
        assert finding.label == entry["label"]
        assert finding.positive == entry["positive"]


def test_exported_uids_and_withheld_text(reviewed: tuple[Any, Any, Any]) -> None:
    _, result, review = reviewed
    doc = _doc(
        result, review, uid=lambda u: "2.25.9" + str(len(u)), deidentified=True, include_notes=False
    )
    text = json.dumps(doc)
    assert result.study_instance_uid not in text and result.series_instance_uid not in text
    assert "Round opacity" not in text and "Dr Reader" not in text
    nodule = doc["series"][0]["findings"][0]
    assert nodule["review"]["note"] is None and nodule["review"]["note_withheld"] is True
    assert doc["review"]["reviewer"] is None


def test_written_by_export_study(tmp_path: Path, reviewed: tuple[Any, Any, Any]) -> None:
    files, result, review = reviewed
    out = export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            formats=["json", "sr"],
            results=[result],
            review=review,
        )
    )
    assert out.json is not None and out.json.name == "findings.json"
    doc = json.loads(out.json.read_text("utf-8"))
    assert out.sr is not None
    assert doc["files"] == {"sr": [out.sr.relative_to(out.folder).as_posix()]}
    assert len(doc["series"][0]["findings"]) == 3
