"""The JSON of an export: the findings schema's fields per finding, plus the reader's verdicts.

Schema ``radassist-export``, version :data:`SCHEMA_VERSION` (docs/exports.md), with the same
versioning rules as ``radassist-findings`` (docs/findings-json-schema.md): a new field raises
the minor version, a removed or changed one the major. Per finding, the fields shared with the
findings schema keep its names, types and coordinates; ``review`` is added. UIDs are the
exported ones (the de-identified UIDs in a de-identified export); no patient name, ID or birth
date is ever written here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.exports.content import DISCLAIMER, ExportFinding, ModelSummary, counts
from desktop_app.inference.findings import SCHEMA_VERSION as FINDINGS_SCHEMA_VERSION
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.review.state import ReviewState

SCHEMA_NAME = "radassist-export"
SCHEMA_VERSION = "1.1"  # 1.1: series[].input_check; findings' ood_score, unreliable, ...


def _box(box: Sequence[float] | None) -> dict[str, float] | None:
    if box is None:
        return None
    return dict(zip(("x", "y", "width", "height"), (float(v) for v in box), strict=True))


def finding_json(
    f: ExportFinding, uid: Callable[[str], str], *, include_notes: bool, include_reviewer: bool
) -> dict[str, Any]:
    """One finding: the findings schema's fields (with exported UIDs) and ``review``."""
    return {
        "label": f.label,
        "probability": float(f.probability),
        "threshold": float(f.threshold),
        "threshold_source": f.threshold_source,
        "positive": bool(f.positive),
        "slice_index": f.slice_index,
        "sop_instance_uid": uid(f.sop_instance_uid),
        "frame": f.frame,
        "box": _box(f.box),
        "model_box": _box(f.model_box),
        "outline": None if f.outline is None else [[float(x), float(y)] for x, y in f.outline],
        "peak": None if f.peak is None else {"x": float(f.peak[0]), "y": float(f.peak[1])},
        "region_level": float(f.region_level),
        "heatmap": None,
        "ood_score": None if f.ood_score is None else float(f.ood_score),
        "out_of_distribution": f.out_of_distribution,
        "out_of_scope": f.out_of_scope,
        "unreliable": f.unreliable,
        "review": {
            "verdict": f.verdict,
            "reason": f.reason,
            "reason_text": f.reason_text or None,
            "note": f.note if include_notes else None,
            "note_withheld": bool(f.note) and not include_notes,
            "box_edited": f.box_edited,
            "reviewer": (f.reviewer or None) if include_reviewer else None,
            "updated": f.reviewed_at,
        },
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
