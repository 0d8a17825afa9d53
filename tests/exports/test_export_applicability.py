"""Exports of a run outside the model's intended input (forced) and out of distribution: the SR's
qualitative evaluations and report lines, the PDF's warning line and finding rows, the export
JSON's input_check; an unflagged run says nothing of it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import highdicom as hd
from pypdf import PdfReader

from desktop_app.exports.study_export import ExportRequest, export_study
from desktop_app.inference.inputcheck import InputCheck
from tests.helpers.exports import chest_study, make_manifest

REASON = "This model is for chest CR/DX radiographs; this series is DX"
FLAGGED = InputCheck(
    applicable=False,
    reasons=(REASON,),
    forced=True,
    in_distribution=False,
    ood_score=12.5,
    ood_threshold=3.25,
)


def _export(tmp_path: Path, check: InputCheck) -> Any:
    files, result, review = chest_study(tmp_path)
    flagged = replace(
        result,
        input_check=check,
        findings=[
            replace(f, ood_score=12.5, out_of_distribution=True, out_of_scope=True,
                    unreliable=True)
            for f in result.findings
        ],
    )  # fmt: skip
    return export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            formats=["sr", "pdf", "json"],
            results=[flagged],
            review=review,
            model_manifest=make_manifest(),
        )
    )


def _walk(ds: Any) -> list[Any]:
    out = []
    for item in getattr(ds, "ContentSequence", []):
        out.append(item)
        out += _walk(item)
    return out


def _meaning(item: Any, attr: str = "ConceptNameCodeSequence") -> str:
    return str(getattr(item, attr)[0].CodeMeaning)


class TestFlagged:
    def test_the_sr_says_out_of_scope_and_out_of_distribution(self, tmp_path: Path) -> None:
        out = _export(tmp_path, FLAGGED)
        items = _walk(hd.sr.srread(out.sr))
        coded = [(_meaning(i), _meaning(i, "ConceptCodeSequence")) for i in items
                 if i.ValueType == "CODE"]  # fmt: skip
        assert (
            coded.count(("Input applicability", "Outside the model's intended input (run anyway)"))
            == 3
        )
        assert coded.count(("Input distribution", "Out of distribution - finding unreliable")) == 3
        scores = [
            float(i.MeasuredValueSequence[0].NumericValue)
            for i in items
            if i.ValueType == "NUM" and _meaning(i) == "Out-of-distribution score"
        ]
        assert scores == [12.5] * 3
        lines = [str(i.TextValue) for i in items
                 if i.ValueType == "TEXT" and _meaning(i) == "Input warning"]  # fmt: skip
        assert len(lines) == 2
        assert lines[0].endswith(f"Outside the model's intended input (run anyway): {REASON}")
        assert "score 12.50 is over the model's threshold 3.25" in lines[1]

    def test_the_pdf_has_a_line_and_marks_the_rows(self, tmp_path: Path) -> None:
        out = _export(tmp_path, FLAGGED)
        text = " ".join(" ".join(p.extract_text() for p in PdfReader(out.pdf).pages).split())
        assert f"Outside the model's intended input (run anyway): {REASON}" in text
        assert "Out of distribution: out-of-distribution score 12.50" in text
        assert "positive(unreliable)" in text.replace(" ", "")  # a table cell wraps

    def test_the_json_carries_input_check(self, tmp_path: Path) -> None:
        out = _export(tmp_path, FLAGGED)
        doc = json.loads(out.json.read_text())
        (series,) = doc["series"]
        assert series["input_check"] == FLAGGED.to_json()
        assert all(f["unreliable"] and f["out_of_scope"] for f in series["findings"])
        assert {f["ood_score"] for f in series["findings"]} == {12.5}


def test_an_unflagged_run_says_nothing(tmp_path: Path) -> None:
    out = _export(tmp_path, InputCheck(applicable=True, in_distribution=True, ood_score=1.0,
                                       ood_threshold=3.25))  # fmt: skip
    items = _walk(hd.sr.srread(out.sr))
    assert not [i for i in items if _meaning(i) in ("Input applicability", "Input warning")]
    doc = json.loads(out.json.read_text())
    assert doc["series"][0]["input_check"]["in_distribution"] is True


class TestFromTheSavedReview:
    """An export from a saved review alone (no engine results) marks the run as it was."""

    def test_the_saved_input_check_marks_the_sr(self, tmp_path: Path) -> None:
        files, _result, review = chest_study(tmp_path)
        for key in {f.series_key for f in review.findings}:
            review.input_checks[key] = FLAGGED.to_json()
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "out",
                formats=["sr"],
                results=[],
                review=review,
                model_manifest=make_manifest(),
            )
        )
        items = _walk(hd.sr.srread(out.sr))
        coded = [(_meaning(i), _meaning(i, "ConceptCodeSequence")) for i in items
                 if i.ValueType == "CODE"]  # fmt: skip
        assert ("Input applicability", "Outside the model's intended input (run anyway)") in coded

    def test_the_review_keeps_the_check_and_drops_it_with_another_model(
        self, tmp_path: Path
    ) -> None:
        from desktop_app.review.state import ModelRef, ReviewState

        _, _, review = chest_study(tmp_path)
        findings = list(review.findings)
        key = findings[0].series_key
        state = ReviewState(review.study_uid)
        state.merge_findings(findings, ModelRef("m", "1", "a" * 64), FLAGGED.to_json())
        again = ReviewState.from_dict(json.loads(json.dumps(state.to_dict())))
        assert InputCheck.from_json(again.input_checks[key]) == FLAGGED
        state.merge_findings(findings, ModelRef("m", "2", "b" * 64))
        assert state.input_checks == {}
