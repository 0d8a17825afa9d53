"""What the PDF report says, as plain data (Qt-free, no layout): ``report_pdf`` lays it out.

Sections, in order: a header with the patient and the study (pseudonymised values in a
de-identified export) and who reviewed it (the readers who gave the verdicts), a one-line
summary, key images with their overlays and captions, the findings table (the model's
decision and the reader's verdict in two columns, the decision being the one the verdict was
given on), the findings the reader added because the model missed them, and the model card
summary (name,
version, tensor hash, device, intended use, thresholds, metrics, training data). A segmentation
review adds a lesion table: every lesion with the reader's verdict, volume, longest diameter,
mean/max value and the slices it spans. The notice
and the disclaimer are part of the content so that the layout puts them on every page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.exports.content import (
    DISCLAIMER,
    ExportFinding,
    ModelSummary,
    applicability_lines,
    counts,
)
from desktop_app.exports.sources import StudyHeader
from desktop_app.review.annotations import ANGLE, ARROW, KEY_IMAGE, Annotation

if TYPE_CHECKING:
    from desktop_app.exports.lesion_sr import LesionRecord

_SOURCE_NOTE = {"reader": " (reader)", "user": " (set for the run)"}
FINDING_COLUMNS = (
    "#",
    "Finding",
    "Image",
    "Model decision (p, threshold, call)",
    "Reader's verdict (agreement)",
    "Note",
)
ANNOTATION_COLUMNS = ("#", "Reader's annotation", "Image", "Measurements", "Text")
LESION_COLUMNS = (
    "Lesion",
    "Label",
    "Series",
    "Reader's verdict",
    "Volume",
    "Longest diameter",
    "Mean / max",
    "Slices",
)
_VERDICT_TEXT = {"accepted": "accepted", "rejected": "rejected", "pending": "not reviewed"}
_KIND_TEXT = {
    "ellipse": "Ellipse ROI",
    "rectangle": "Rectangle ROI",
    ANGLE: "Angle",
    ARROW: "Arrow",
    KEY_IMAGE: "Key image",
}
_AGREEMENT_WORDS = {
    "TP": "agrees: true positive",
    "FP": "disagrees: false positive",
    "TN": "agrees: true negative",
    "FN": "disagrees: false negative",
}


@dataclass(frozen=True)
class ReportImage:
    """A key image (uint8 RGB) and its caption."""

    rgb: np.ndarray = field(repr=False)
    caption: str


@dataclass(frozen=True)
class ReportContent:
    title: str
    notice: str
    disclaimer: str
    header: tuple[tuple[str, str], ...]
    summary: str
    images: tuple[ReportImage, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    missed: tuple[str, ...]
    model: tuple[tuple[str, str], ...]
    intended_use: str
    metrics: tuple[str, ...]
    training: tuple[str, ...]
    warnings: tuple[str, ...]
    footer: str
    deidentified: bool = False
    # the reader's annotations: one row each (ANNOTATION_COLUMNS)
    annotation_columns: tuple[str, ...] = ()
    annotation_rows: tuple[tuple[str, ...], ...] = ()
    # the reviewed lesions: one row each (LESION_COLUMNS)
    lesion_columns: tuple[str, ...] = ()
    lesion_rows: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class ReportLesion:
    """A lesion of a series for the lesion table; ``unit``: of its mean/max value (HU on CT)."""

    series_uid: str
    record: LesionRecord
    unit: str = "HU"


def dicom_date(value: str) -> str:
    """``20230505`` → ``2023-05-05`` (PS3.5 DA); anything else as it is, ``—`` when empty."""
    v = value.strip()
    if len(v) == 8 and v.isdigit():
        return f"{v[:4]}-{v[4:6]}-{v[6:]}"
    return v or "—"


def dicom_time(value: str) -> str:
    """``145056.123`` → ``14:50:56`` (PS3.5 TM)."""
    v = value.strip().split(".")[0]
    if len(v) >= 4 and v.isdigit():
        parts = [v[i : i + 2] for i in range(0, min(len(v), 6), 2)]
        return ":".join(parts)
    return v


def person(value: str) -> str:
    """A PN value for reading: ``FAMILY^Given^Middle`` → ``FAMILY, Given Middle``."""
    parts = [p.strip() for p in value.split("^")]
    if len(parts) == 1:
        return parts[0] or "—"
    family, rest = parts[0], " ".join(p for p in parts[1:] if p)
    return f"{family}, {rest}" if family and rest else (family or rest or "—")


def build_report(
    header: StudyHeader,
    findings: Sequence[ExportFinding],
    model: ModelSummary,
    images: Sequence[ReportImage],
    *,
    deidentified: bool = False,
    include_notes: bool = True,
    reviewers: Sequence[str] = (),
    warnings: Sequence[str] = (),
    created: datetime | None = None,
    annotations: Sequence[Annotation] = (),
    lesions: Sequence[ReportLesion] = (),
) -> ReportContent:
    """The report's content for ``findings`` on the study described by ``header``;
    ``reviewers``: the readers who gave the verdicts ("Reviewed by")."""
    when = (created or datetime.now(UTC)).astimezone(UTC)
    numbers = _series_numbers(findings)
    for a in annotations:  # series with annotations only are numbered after the findings'
        numbers.setdefault(a.series_uid, len(numbers) + 1)
    for lesion in lesions:
        numbers.setdefault(lesion.series_uid, len(numbers) + 1)
    return ReportContent(
        title="RadAssist AI findings report",
        notice=RESEARCH_USE_NOTICE,
        disclaimer=DISCLAIMER,
        header=_header_rows(header, ", ".join(reviewers), deidentified),
        summary=_summary(findings),
        images=tuple(images),
        columns=FINDING_COLUMNS,
        rows=_finding_rows(findings, include_notes, numbers),
        missed=_missed_lines(findings, numbers),
        model=_model_rows(model),
        intended_use=model.intended_use or "Not available.",
        metrics=model.metrics_lines or ("Not available.",),
        training=model.training_lines or ("Not available.",),
        warnings=_warnings(model, [*applicability_lines(findings), *warnings]),
        footer=f"Generated by RadAssist {__version__} on {when.strftime('%Y-%m-%d %H:%M')} UTC",
        deidentified=deidentified,
        annotation_columns=ANNOTATION_COLUMNS if annotations else (),
        annotation_rows=annotation_rows(annotations, numbers, include_notes),
        lesion_columns=LESION_COLUMNS if lesions else (),
        lesion_rows=lesion_rows(lesions, numbers),
    )


def lesion_rows(
    lesions: Sequence[ReportLesion], numbers: dict[str, int]
) -> tuple[tuple[str, ...], ...]:
    """One row per lesion (LESION_COLUMNS), by series and lesion id: ``"L1", "nodule",
    "series 1", "accepted", "523 mm³", "11.2 mm", "34 / 120 HU", "18-22"`` (slices 1-based)."""
    ordered = sorted(lesions, key=lambda x: (numbers.get(x.series_uid, 0), x.record.lesion_id))
    rows = []
    for item in ordered:
        r = item.record
        verdict = _VERDICT_TEXT.get(r.verdict, r.verdict)
        if r.source == "reader" and r.verdict != "rejected":
            verdict = "drawn by the reader"
        elif r.verdict == "rejected" and r.reason:
            verdict += f" ({r.reason.replace('_', ' ')})"
        if r.edited and r.source != "reader" and r.verdict == "accepted":
            verdict += ", outline edited"
        values = "—"
        if r.mean_value is not None or r.max_value is not None:
            mean = "—" if r.mean_value is None else f"{r.mean_value:.0f}"
            peak = "—" if r.max_value is None else f"{r.max_value:.0f}"
            values = f"{mean} / {peak} {item.unit}".strip()
        rows.append(
            (
                f"L{r.lesion_id}",
                r.label,
                f"series {numbers.get(item.series_uid, 0)}",
                verdict,
                "—" if r.volume_mm3 is None else f"{r.volume_mm3:.0f} mm³",
                "—" if r.longest_diameter_mm is None else f"{r.longest_diameter_mm:.1f} mm",
                values,
                _span(r.slices),
            )
        )
    return tuple(rows)


def _header_rows(
    header: StudyHeader, reviewer: str, deidentified: bool
) -> tuple[tuple[str, str], ...]:
    time_text = f" {dicom_time(header.study_time)}" if header.study_time.strip() else ""
    rows: list[tuple[str, str]] = [
        ("Patient", person(header.patient_name)),
        ("Patient ID", header.patient_id or "—"),
        ("Birth date", dicom_date(header.birth_date)),
        ("Sex", header.sex or "—"),
        ("Study date", dicom_date(header.study_date) + time_text),
        ("Study", header.study_description or "—"),
        ("Accession", header.accession_number or "—"),
        ("Modality", ", ".join(header.modalities) or "—"),
        ("Reviewed by", reviewer or ("withheld" if deidentified else "—")),
    ]
    if deidentified:
        rows.append(
            (
                "De-identified",
                "yes: PS3.15 Basic Profile; pseudonymised patient, new UIDs; reader notes and "
                "names left out",
            )
        )
    return tuple(rows)


def _summary(findings: Sequence[ExportFinding]) -> str:
    tally = counts(findings)
    text = (
        f"{len(findings)} finding(s), {tally['positive']} positive at the operating threshold; "
        f"reader: {tally['present']} present, {tally['absent']} absent, "
        f"{tally['uncertain']} uncertain, {tally['pending']} not reviewed"
    )
    if tally["present"] + tally["absent"]:
        text += (
            f"; agreement with the model: {tally['TP']} TP, {tally['FP']} FP, "
            f"{tally['TN']} TN, {tally['FN']} FN"
        )
    if tally["added"]:
        text += f"; {tally['added']} finding(s) added by the reader"
    return text + "."


def _order(findings: Sequence[ExportFinding]) -> list[ExportFinding]:
    return sorted(findings, key=lambda f: (f.series_instance_uid, f.part, f.label_index))


def _series_numbers(findings: Sequence[ExportFinding]) -> dict[str, int]:
    """Series numbered from 1 in the table's order."""
    uids = dict.fromkeys(f.series_instance_uid for f in _order(findings))
    return {uid: i + 1 for i, uid in enumerate(uids)}


def _where(f: ExportFinding, numbers: dict[str, int]) -> str:
    where = f"series {numbers[f.series_instance_uid]}, slice {f.slice_index + 1}"
    if f.region_elsewhere:
        where += f" (reader's box: slice {f.region_slice_index + 1})"
    return where


def model_cell(f: ExportFinding) -> str:
    """The model's decision: ``"p 0.930 · threshold 0.41 → positive"``, the threshold marked
    when the reader or the run set it, and the threshold in force now when it has moved since
    the verdict."""
    text = (
        f"p {f.probability:.3f} · threshold {f.threshold:.2f}"
        + _SOURCE_NOTE.get(f.threshold_source, "")
        + f" → {f.decision_text}"
        + (" (unreliable)" if f.unreliable else "")
    )
    if f.threshold_moved:
        text += (
            f"\n(at the verdict; threshold now {f.current_threshold:.2f} → "
            f"{'positive' if f.positive_now else 'negative'})"
        )
    return text


def reader_cell(f: ExportFinding) -> str:
    """The reader's verdict: ``"present\nagrees: true positive"``, ``"absent\ndisagrees:
    false positive (False positive – artefact)"``, ``"present, added by the reader\n..."``."""
    text = f.truth_text + (", added by the reader" if f.added else "")
    tag = f.agreement
    if tag is not None:
        text += "\n" + _AGREEMENT_WORDS[tag]
    if f.reason:
        text += f"\n({f.reason_text})"
    return text


def _finding_rows(
    findings: Sequence[ExportFinding], include_notes: bool, numbers: dict[str, int]
) -> tuple[tuple[str, ...], ...]:
    """One row per finding (see FINDING_COLUMNS), by series, part and label."""
    rows = []
    for n, f in enumerate(_order(findings), start=1):
        note = f.note.strip() if include_notes else ("withheld" if f.note.strip() else "")
        if f.box_edited:
            note = ("box edited by the reader. " + note).strip()
        elif f.added:
            note = ("box drawn by the reader. " + note).strip()
        rows.append((str(n), f.label, _where(f, numbers), model_cell(f), reader_cell(f), note))
    return tuple(rows)


def _missed_lines(findings: Sequence[ExportFinding], numbers: dict[str, int]) -> tuple[str, ...]:
    """One line per finding the model missed (the reader says present where the model's call
    was negative: a false negative), with the reader's box when they drew one:
    ``"effusion: series 1, slice 1, reader's box x 100, y 200, 60 × 40 px; model p 0.120 <
    threshold 0.50"``."""
    lines = []
    for f in _order(findings):
        if f.agreement != "FN":
            continue
        where = f"series {numbers[f.series_instance_uid]}, slice {f.region_slice_index + 1}"
        if f.reader_box is not None:
            x, y, w, h = f.reader_box
            where += f", reader's box x {x:.0f}, y {y:.0f}, {w:.0f} × {h:.0f} px"
        else:
            where += ", no box drawn"
        lines.append(
            f"{f.label}: {where}; model p {f.probability:.3f} < threshold {f.threshold:.2f}"
        )
    return tuple(lines)


def annotation_rows(
    annotations: Sequence[Annotation], numbers: dict[str, int], include_text: bool = True
) -> tuple[tuple[str, ...], ...]:
    """One row per reader annotation (ANNOTATION_COLUMNS), by series and slice: ``"Ellipse
    ROI", "series 1, slice 20", "Area 1.23 cm²\nMean 35.2 HU  SD 4.1\n…"``. The reader's
    text is withheld in a de-identified report (free text may name the patient)."""
    ordered = sorted(annotations, key=lambda a: (numbers.get(a.series_uid, 0), a.slice_index))
    rows = []
    for n, a in enumerate(ordered, start=1):
        measures = a.stats.lines() if a.stats is not None else []
        if a.kind == ANGLE and a.angle is not None:
            measures.append(f"{a.angle:.1f}°")
        text = a.text.strip()
        if text and not include_text:
            text = "withheld"
        where = f"series {numbers.get(a.series_uid, 0)}, slice {a.slice_index + 1}"
        rows.append((str(n), _KIND_TEXT.get(a.kind, a.kind), where, "\n".join(measures), text))
    return tuple(rows)


def _span(slices: tuple[int, int]) -> str:
    """0-based (first, last) as 1-based slice numbers: ``"18-22"``, or ``"6"`` for one."""
    first, last = slices[0] + 1, slices[1] + 1
    return str(first) if first == last else f"{first}-{last}"


def _model_rows(model: ModelSummary) -> tuple[tuple[str, str], ...]:
    rows: list[tuple[str, str]] = [
        ("Model", f"{model.name} (version {model.version or '—'})"),
        ("Architecture", model.architecture or "—"),
        ("Tensor SHA-256", model.tensor_sha256 or "unknown"),
        ("Device", model.device_text + (f" ({model.backend})" if model.backend else "")),
    ]
    if model.thresholds:
        order = [k for k in model.labels if k in model.thresholds]
        order += [k for k in model.thresholds if k not in order]
        rows.append(
            (
                "Operating thresholds",
                ", ".join(f"{k} {float(model.thresholds[k]):.3f}" for k in order),
            )
        )
    if model.threshold_rule:
        rows.append(("Threshold rule", model.threshold_rule))
    return tuple(rows)


def _warnings(model: ModelSummary, warnings: Sequence[str]) -> tuple[str, ...]:
    """The caller's warnings, with the model's own (synthetic training data first, a missing
    model card last)."""
    out = list(warnings)
    if model.synthetic:
        out.insert(
            0,
            "This model was trained on synthetic phantoms, for demonstration only: its outputs "
            "say nothing about real patients.",
        )
    if not model.card_available:
        out.append(
            "The model file was not available when exporting: its intended use and metrics "
            "are not shown. Identify it by the tensor SHA-256 above."
        )
    return tuple(out)
