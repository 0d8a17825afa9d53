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
    assert doc["review"]["reviewers"] == ["Dr Reader"]
    assert doc["review"]["thresholds"] == {"cardiomegaly": 0.15}
    assert doc["review"]["counts"] == {
        "pending": 1,
        "present": 1,
        "absent": 1,
        "uncertain": 0,
        "TP": 1,
        "FP": 1,
        "TN": 0,
        "FN": 0,
        "positive": 3,
        "added": 0,
    }
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
    assert nodule["reader"] == {
        "truth": "present",
        "agreement": "TP",
        "agreement_now": "TP",
        "reason": None,
        "reason_text": None,
        "note": "Round opacity, right lower zone <check> & compare",
        "note_withheld": False,
        "box": None,
        "box_edited": False,
        "added": False,
        "box_image": None,
        "verdict_probability": pytest.approx(0.93),
        "verdict_threshold": 0.41,
        "reviewer": "Dr Reader",
        "updated": nodule["reader"]["updated"],
    }
    assert nodule["reader"]["updated"]
    effusion = by_label["effusion"]
    assert effusion["reader"]["truth"] == "absent" and effusion["reader"]["agreement"] == "FP"
    assert effusion["reader"]["reason"] == "fp_artefact"
    assert effusion["reader"]["box_edited"] is True
    assert effusion["reader"]["box"] == {"x": 590.0, "y": 690.0, "width": 130.0, "height": 100.0}
    assert effusion["box"] == {"x": 600.0, "y": 700.0, "width": 120.0, "height": 90.0}  # model's
    assert effusion["outline"] is not None  # the model's, kept beside the reader's box
    cardio = by_label["cardiomegaly"]
    assert (cardio["threshold"], cardio["threshold_source"], cardio["positive"]) == (
        0.15,
        "reader",
        True,
    )
    assert cardio["reader"]["truth"] == "pending" and cardio["reader"]["agreement"] is None


def test_a_threshold_moved_after_the_verdict_keeps_the_recorded_decision(
    reviewed: tuple[Any, Any, Any],
) -> None:
    _, result, review = reviewed
    review.set_truth(fid(result, "cardiomegaly"), "absent")  # at 0.15: p 0.2 is positive, FP
    review.set_threshold("cardiomegaly", 0.5)  # now negative
    [series] = _doc(result, review)["series"]
    cardio = {f["label"]: f for f in series["findings"]}["cardiomegaly"]
    assert (cardio["threshold"], cardio["threshold_source"], cardio["positive"]) == (
        0.15,
        "reader",
        True,
    )
    assert (cardio["threshold_now"], cardio["positive_now"]) == (0.5, False)
    reader = cardio["reader"]
    assert (reader["truth"], reader["agreement"], reader["agreement_now"]) == ("absent", "FP", "TN")
    assert reader["verdict_threshold"] == 0.15
    assert reader["verdict_probability"] == pytest.approx(0.2)


def test_a_missed_finding_is_a_false_negative_with_the_readers_box(
    reviewed: tuple[Any, Any, Any],
) -> None:
    _, result, review = reviewed
    review.reset_threshold("cardiomegaly")  # 0.6: p 0.2 is negative
    key = f"{result.series_instance_uid}#{result.part}"
    review.add_missed(key, "cardiomegaly", (100, 600, 300, 200), slice_index=0)
    doc = _doc(result, review)
    cardio = {f["label"]: f for f in doc["series"][0]["findings"]}["cardiomegaly"]
    assert cardio["positive"] is False and cardio["box"] is None  # the model located nothing
    reader = cardio["reader"]
    assert (reader["truth"], reader["agreement"], reader["added"]) == ("present", "FN", True)
    assert reader["box"] == {"x": 100.0, "y": 600.0, "width": 300.0, "height": 200.0}
    assert reader["box_edited"] is False and reader["reviewer"] == "Dr Reader"
    assert doc["review"]["counts"]["FN"] == 1 and doc["review"]["counts"]["added"] == 1


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
    assert nodule["reader"]["note"] is None and nodule["reader"]["note_withheld"] is True
    assert nodule["reader"]["reviewer"] is None
    assert doc["review"]["reviewer"] is None and doc["review"]["reviewers"] == []


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
