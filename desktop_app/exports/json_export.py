"""The JSON of an export: the model's findings (the findings schema's fields) and, beside each,
the reader's verdict.

Schema ``radassist-export``, version :data:`SCHEMA_VERSION` (docs/exports.md), with the same
versioning rules as ``radassist-findings`` (docs/findings-json-schema.md): a new field raises
the minor version, a removed or changed one the major. Per finding, the fields shared with the
findings schema keep its names, types and coordinates and are the model's (its box, outline,
and its decision at the threshold the verdict was given at); ``reader`` holds the reader's
truth, box, agreement and the model's numbers at verdict time. UIDs are the exported ones (the
de-identified UIDs in a de-identified export); no patient name, ID or birth date is ever
written here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.exports.content import (
    DISCLAIMER,
    ExportFinding,
    ModelSummary,
    counts,
    reviewers,
)
from desktop_app.inference.findings import SCHEMA_VERSION as FINDINGS_SCHEMA_VERSION
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.review.state import ReviewState

SCHEMA_NAME = "radassist-export"
# 1.1: series[].input_check; findings' ood_score, unreliable, ...
# 2.0: per finding `reader` (the reader's truth, box, agreement, the model's p and threshold at
#      verdict time) replaces `review`; `threshold`/`positive` are the decision at verdict time
#      (`threshold_now`/`positive_now`: at export); `box`/`outline` are the model's (no
#      `model_box`); review.counts by truth and agreement; review.reviewers
SCHEMA_VERSION = "2.0"


def _box(box: Sequence[float] | None) -> dict[str, float] | None:
    if box is None:
        return None
    return dict(zip(("x", "y", "width", "height"), (float(v) for v in box), strict=True))


def _point(point: Sequence[float] | None) -> dict[str, float] | None:
    return None if point is None else {"x": float(point[0]), "y": float(point[1])}


def reader_json(
    f: ExportFinding, uid: Callable[[str], str], *, include_notes: bool, include_reviewer: bool
) -> dict[str, Any]:
    """The reader's side of one finding: truth, agreement, reason, note, box, who and when,
    and the model's probability and threshold when the verdict was given."""
    box_image = None
    if f.reader_box is not None and f.region_elsewhere:
        box_image = {
            "slice_index": f.region_slice_index,
            "sop_instance_uid": uid(f.region_sop_instance_uid),
            "frame": f.region_frame,
        }
    return {
        "truth": f.truth,
        "agreement": f.agreement,
        "agreement_now": f.agreement_now,
        "reason": f.reason,
        "reason_text": f.reason_text or None,
        "note": f.note if include_notes else None,
        "note_withheld": bool(f.note) and not include_notes,
        "box": _box(f.reader_box),
        "box_edited": f.box_edited,
        "added": f.added,
        "box_image": box_image,
        "verdict_probability": f.verdict_probability,
        "verdict_threshold": f.verdict_threshold,
        "reviewer": (f.reviewer or None) if include_reviewer else None,
        "updated": f.reviewed_at,
    }


def finding_json(
    f: ExportFinding, uid: Callable[[str], str], *, include_notes: bool, include_reviewer: bool
) -> dict[str, Any]:
    """One finding: the findings schema's fields (the model's, with exported UIDs), the
    decision at export, and ``reader``."""
    return {
        "label": f.label,
        "probability": float(f.probability),
        "threshold": float(f.threshold),
        "threshold_source": f.threshold_source,
        "positive": bool(f.positive),
        "threshold_now": float(f.current_threshold),
        "positive_now": bool(f.positive_now),
        "slice_index": f.slice_index,
        "sop_instance_uid": uid(f.sop_instance_uid),
        "frame": f.frame,
        "box": _box(f.model_box),
        "outline": None if f.outline is None else [[float(x), float(y)] for x, y in f.outline],
        "peak": _point(f.peak),
        "region_level": float(f.region_level),
        "heatmap": None,
        "ood_score": None if f.ood_score is None else float(f.ood_score),
        "out_of_distribution": f.out_of_distribution,
        "out_of_scope": f.out_of_scope,
        "unreliable": f.unreliable,
        "reader": reader_json(
            f, uid, include_notes=include_notes, include_reviewer=include_reviewer
        ),
    }


def build_json(
    findings: Sequence[ExportFinding],
    model: ModelSummary,
    *,
    study_uid: str,
    uid: Callable[[str], str],
    modalities: Mapping[str, str],
    review: ReviewState | None = None,
    deidentified: bool = False,
    include_notes: bool = True,
    files: Mapping[str, Any] | None = None,
    created: datetime | None = None,
    uid_replacements: Callable[[], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The export document. ``uid`` maps an original UID to the exported one; ``modalities``
    gives each (original) series UID's modality; ``files`` names what else was exported;
    ``uid_replacements`` (called once every UID has been mapped) lists the source's invalid
    UIDs that were replaced (``dicom.uids.UidRepairs.records``: by hash, never the value)."""
    include_reviewer = not deidentified
    series: dict[tuple[str, int], list[ExportFinding]] = {}
    for f in findings:
        series.setdefault((f.series_instance_uid, f.part), []).append(f)
    series_docs = []
    for (series_uid, part), items in series.items():
        exported = uid(series_uid)
        series_docs.append(
            {
                "series_instance_uid": exported,
                "series_uid_hash": uid_hash(exported) if exported else "",
                "part": part,
                "modality": modalities.get(series_uid, ""),
                "input_check": next(
                    (f.input_check.to_json() for f in items if f.input_check is not None), None
                ),
                "findings": [
                    finding_json(
                        f,
                        uid,
                        include_notes=include_notes,
                        include_reviewer=include_reviewer,
                    )
                    for f in sorted(items, key=lambda f: f.label_index)
                ],
            }
        )
    review_doc: dict[str, Any] | None = None
    if review is not None:
        review_doc = {
            "reviewer": (review.reviewer or None) if include_reviewer else None,
            "reviewers": list(reviewers(findings, review.reviewer)) if include_reviewer else [],
            "created": review.created,
            "updated": review.updated,
            "thresholds": {k: float(v) for k, v in review.thresholds.items()},
            "counts": counts(findings),
        }
    exported_study = uid(study_uid)
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "findings_schema_version": FINDINGS_SCHEMA_VERSION,
        "radassist_version": __version__,
        "notice": RESEARCH_USE_NOTICE,
        "disclaimer": DISCLAIMER,
        "created": (created or datetime.now(UTC))
        .astimezone(UTC)
        .replace(microsecond=0)
        .isoformat(),
        "deidentified": deidentified,
        "study": {
            "study_instance_uid": exported_study,
            "study_uid_hash": uid_hash(exported_study) if exported_study else "",
            "modalities": sorted({m for m in modalities.values() if m}),
        },
        "model": {
            "name": model.name,
            "version": model.version,
            "architecture": model.architecture,
            "tensor_sha256": model.tensor_sha256,
            "labels": list(model.labels),
            "file_name": model.file_name,
            "device": model.device,
            "backend": model.backend,
        },
        "review": review_doc,
        "series": series_docs,
        "files": dict(files or {}),
        "uid_replacements": uid_replacements() if uid_replacements is not None else [],
    }
