"""What the PDF report says, as plain data (Qt-free, no layout): ``report_pdf`` lays it out.

Sections, in order: a header with the patient and the study (pseudonymised values in a
de-identified export), a one-line summary, key images with their overlays and captions, the
findings table with the reader's verdicts and notes, and the model card summary (name,
version, tensor hash, device, intended use, thresholds, metrics, training data). The notice
and the disclaimer are part of the content so that the layout puts them on every page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.exports.content import DISCLAIMER, ExportFinding, ModelSummary, counts
from desktop_app.exports.sources import StudyHeader

_SOURCE_NOTE = {"reader": " (reader)", "user": " (set for the run)"}
FINDING_COLUMNS = (
    "#",
    "Finding",
    "Image",
    "Probability",
    "Threshold",
    "Model call",
    "Reader verdict",
    "Note",
)


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
    model: tuple[tuple[str, str], ...]
    intended_use: str
    metrics: tuple[str, ...]
    training: tuple[str, ...]
    warnings: tuple[str, ...]
    footer: str
    deidentified: bool = False


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
    reviewer: str = "",
    warnings: Sequence[str] = (),
    created: datetime | None = None,
) -> ReportContent:
    """The report's content for ``findings`` on the study described by ``header``."""
    when = (created or datetime.now(UTC)).astimezone(UTC)
    time_text = f" {dicom_time(header.study_time)}" if header.study_time.strip() else ""
    rows_header: list[tuple[str, str]] = [
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
        rows_header.append(
            (
                "De-identified",
                "yes: PS3.15 Basic Profile; pseudonymised patient, new UIDs; reader notes and "
                "names left out",
            )
        )
    tally = counts(findings)
    summary = (
        f"{len(findings)} finding(s), {tally['positive']} positive at the operating threshold; "
        f"reader: {tally['accepted']} accepted, {tally['rejected']} rejected, "
        f"{tally['pending']} not reviewed."
    )
    rows = []
    ordered = sorted(findings, key=lambda f: (f.series_instance_uid, f.part, f.label_index))
    series_numbers = {
        uid: i + 1 for i, uid in enumerate(dict.fromkeys(f.series_instance_uid for f in ordered))
    }
    for n, f in enumerate(ordered, start=1):
        where = f"series {series_numbers[f.series_instance_uid]}, slice {f.slice_index + 1}"
        threshold = f"{f.threshold:.2f}" + _SOURCE_NOTE.get(f.threshold_source, "")
        note = f.note.strip() if include_notes else ("withheld" if f.note.strip() else "")
        if f.box_edited:
            note = ("box edited by the reader. " + note).strip()
        rows.append(
            (
                str(n),
                f.label,
                where,
                f"{f.probability:.3f}",
                threshold,
                f.decision_text,
                f.verdict_text,
                note,
            )
        )
    model_rows: list[tuple[str, str]] = [
        ("Model", f"{model.name} (version {model.version or '—'})"),
        ("Architecture", model.architecture or "—"),
        ("Tensor SHA-256", model.tensor_sha256 or "unknown"),
        ("Device", model.device_text + (f" ({model.backend})" if model.backend else "")),
    ]
    if model.thresholds:
        order = [k for k in model.labels if k in model.thresholds]
        order += [k for k in model.thresholds if k not in order]
        model_rows.append(
            (
                "Operating thresholds",
                ", ".join(f"{k} {float(model.thresholds[k]):.3f}" for k in order),
            )
        )
    if model.threshold_rule:
        model_rows.append(("Threshold rule", model.threshold_rule))
    report_warnings = list(warnings)
    if model.synthetic:
        report_warnings.insert(
            0,
            "This model was trained on synthetic phantoms, for demonstration only: its outputs "
            "say nothing about real patients.",
        )
    if not model.card_available:
        report_warnings.append(
            "The model file was not available when exporting: its intended use and metrics "
            "are not shown. Identify it by the tensor SHA-256 above."
        )
    return ReportContent(
        title="RadAssist AI findings report",
        notice=RESEARCH_USE_NOTICE,
        disclaimer=DISCLAIMER,
        header=tuple(rows_header),
        summary=summary,
        images=tuple(images),
        columns=FINDING_COLUMNS,
        rows=tuple(rows),
        model=tuple(model_rows),
        intended_use=model.intended_use or "Not available.",
        metrics=model.metrics_lines or ("Not available.",),
        training=model.training_lines or ("Not available.",),
        warnings=tuple(report_warnings),
        footer=f"Generated by RadAssist {__version__} on {when.strftime('%Y-%m-%d %H:%M')} UTC",
        deidentified=deidentified,
    )
