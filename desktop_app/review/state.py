"""Review state: a reader's verdicts on a model's findings for one study (Qt-free).

One :class:`ReviewState` per study holds each finding (one per series and label: probability,
the model's operating threshold, slice, box, outline), the reader's verdict on it (accepted,
rejected with a reason code, or pending), an edited box, a free-text note, who decided and
when, and which model (name, version, tensor SHA-256) produced the findings. The per-label
operating thresholds the reader set with the live slider are part of the state: positive or
negative is re-decided from the stored probability (:func:`is_positive`) without running the
model again. ``store`` saves it, ``writer`` saves it in the background.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from desktop_app.inference.findings import SeriesResult

log = logging.getLogger(__name__)

SCHEMA = "radassist-review"
SCHEMA_VERSION = 1
MAX_NOTE_CHARS = 10_000

PENDING = "pending"
ACCEPTED = "accepted"
REJECTED = "rejected"
VERDICTS = (PENDING, ACCEPTED, REJECTED)

REJECT_REASONS: dict[str, str] = {
    "fp_artefact": "False positive – artefact",
    "fp_normal_anatomy": "False positive – normal anatomy",
    "wrong_location": "Wrong location",
    "duplicate": "Duplicate",
    "other": "Other",
}
"""Reason codes for a rejection (a fixed list, so reviews can be counted and fed back)."""

Box = tuple[float, float, float, float]  # x, y, width, height in image pixels
Polygon = list[tuple[float, float]]


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_positive(probability: float, threshold: float) -> bool:
    """A finding is positive when its probability reaches the operating threshold (>=)."""
    return float(probability) >= float(threshold)


def check_threshold(value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`threshold` {value} should be between 0 and 1")
    return value


def check_box(box: Iterable[float]) -> Box:
    values = tuple(float(v) for v in box)
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"`box` {values} should be four finite numbers (x, y, width, height)")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise ValueError(f"`box` width {w} and height {h} should be positive")
    return (x, y, w, h)


@dataclass(frozen=True)
class ModelRef:
    """Which model produced the findings."""

    name: str
    version: str
    sha256: str


@dataclass
class FindingReview:
    """One finding (a label on a series) and the reader's decision about it.

    ``series_key`` names the stack: ``"<Series Instance UID>#<part>"``, part 1-based as
    ``SliceStack.part`` (a series split by geometry has several). ``finding_id`` is
    ``"<series key>:<label>"``, stable across re-runs of the same model on the same stack, so a
    verdict survives re-running inference.
    """

    finding_id: str
    label: str
    series_key: str
    series_uid: str
    probability: float
    model_threshold: float
    slice_index: int = 0
    sop_instance_uid: str = ""
    frame: int = 0
    box: Box | None = None
    outline: list[Polygon] = field(default_factory=list)
    verdict: str = PENDING
    reason: str | None = None
    note: str = ""
    edited_box: Box | None = None
    reviewer: str = ""
    updated: str | None = None

    @property
    def shown_box(self) -> Box | None:
        """The reader's box if they edited it, else the model's."""
        return self.edited_box if self.edited_box is not None else self.box

    def to_dict(self) -> dict[str, Any]:
        # Built by hand, not with dataclasses.asdict: that deep-copies every outline point
        # through Python recursion, which is what the GUI thread pays on each save.
        return {
            "finding_id": self.finding_id,
            "label": self.label,
            "series_key": self.series_key,
            "series_uid": self.series_uid,
            "probability": self.probability,
            "model_threshold": self.model_threshold,
            "slice_index": self.slice_index,
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "box": list(self.box) if self.box is not None else None,
            "outline": [[[float(x), float(y)] for x, y in poly] for poly in self.outline],
            "verdict": self.verdict,
            "reason": self.reason,
            "note": self.note,
            "edited_box": list(self.edited_box) if self.edited_box is not None else None,
            "reviewer": self.reviewer,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FindingReview:
        verdict = str(data.get("verdict", PENDING))
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        reason = data.get("reason")
        if reason is not None and reason not in REJECT_REASONS:
            raise ValueError(f"unknown reason code {reason!r}")
        return cls(
            finding_id=str(data["finding_id"]),
            label=str(data["label"]),
            series_key=str(data.get("series_key", "")),
            series_uid=str(data.get("series_uid", "")),
            probability=float(data["probability"]),
            model_threshold=check_threshold(data["model_threshold"]),
            slice_index=int(data.get("slice_index", 0)),
            sop_instance_uid=str(data.get("sop_instance_uid", "")),
            frame=int(data.get("frame", 0)),
            box=check_box(data["box"]) if data.get("box") is not None else None,
            outline=[[(float(x), float(y)) for x, y in poly] for poly in data.get("outline", [])],
            verdict=verdict,
            reason=reason,
            note=str(data.get("note", ""))[:MAX_NOTE_CHARS],
            edited_box=check_box(data["edited_box"])
            if data.get("edited_box") is not None
            else None,
            reviewer=str(data.get("reviewer", "")),
            updated=data.get("updated"),
        )


@dataclass
class ReviewState:
    """Everything a reader decided about one study's findings."""

    study_uid: str
    model: ModelRef | None = None
    findings: list[FindingReview] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    reviewer: str = ""
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)

    # ------------------------------------------------------------------ lookups
    def find(self, finding_id: str) -> FindingReview:
        for f in self.findings:
            if f.finding_id == finding_id:
                return f
        raise KeyError(f"no finding {finding_id!r} in this review")

    def for_series(self, series_key: str) -> list[FindingReview]:
        return [f for f in self.findings if f.series_key == series_key]

    def threshold(self, label: str) -> float:
        """The operating threshold in force for ``label``: the reader's, else the model's."""
        if label in self.thresholds:
            return self.thresholds[label]
        for f in self.findings:
            if f.label == label:
                return f.model_threshold
        return 0.5

    def positive(self, finding: FindingReview) -> bool:
        return is_positive(finding.probability, self.threshold(finding.label))

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for f in self.findings:
            out[f.verdict] += 1
        return out

    # ------------------------------------------------------------------ changes
    def _touch(self, finding: FindingReview, reviewer: str | None) -> FindingReview:
        now = utc_now()
        finding.updated = now
        finding.reviewer = reviewer if reviewer is not None else self.reviewer
        self.updated = now
        return finding

    def accept(self, finding_id: str, reviewer: str | None = None) -> FindingReview:
        f = self.find(finding_id)
        f.verdict, f.reason = ACCEPTED, None
        return self._touch(f, reviewer)

    def reject(self, finding_id: str, reason: str, reviewer: str | None = None) -> FindingReview:
        if reason not in REJECT_REASONS:
            raise ValueError(f"`reason` {reason!r} should be one of: {', '.join(REJECT_REASONS)}")
        f = self.find(finding_id)
        f.verdict, f.reason = REJECTED, reason
        return self._touch(f, reviewer)

    def clear_verdict(self, finding_id: str, reviewer: str | None = None) -> FindingReview:
        f = self.find(finding_id)
        f.verdict, f.reason = PENDING, None
        return self._touch(f, reviewer)

    def set_note(self, finding_id: str, note: str, reviewer: str | None = None) -> FindingReview:
        if len(note) > MAX_NOTE_CHARS:
            raise ValueError(f"a note is at most {MAX_NOTE_CHARS} characters, not {len(note)}")
        f = self.find(finding_id)
        f.note = note
        return self._touch(f, reviewer)

    def edit_box(
        self, finding_id: str, box: Iterable[float] | None, reviewer: str | None = None
    ) -> FindingReview:
        """Set the reader's box (x, y, width, height), or None to go back to the model's."""
        f = self.find(finding_id)
        f.edited_box = None if box is None else check_box(box)
        return self._touch(f, reviewer)

    def set_threshold(self, label: str, value: float) -> list[str]:
        """Set ``label``'s operating threshold; returns the ids of findings whose
        positive/negative decision changed (no model run: the probabilities are stored)."""
        value = check_threshold(value)
        before = {f.finding_id: self.positive(f) for f in self.findings if f.label == label}
        self.thresholds[label] = value
        self.updated = utc_now()
        return [fid for fid, was in before.items() if self.positive(self.find(fid)) != was]

    def reset_threshold(self, label: str) -> list[str]:
        before = {f.finding_id: self.positive(f) for f in self.findings if f.label == label}
        self.thresholds.pop(label, None)
        self.updated = utc_now()
        return [fid for fid, was in before.items() if self.positive(self.find(fid)) != was]

    def merge_findings(self, new: Iterable[FindingReview], model: ModelRef) -> list[str]:
        """Take a fresh model run's findings for some series.

        A finding the reader already worked on keeps its verdict, reason, note and edited box
        when the same model (same tensor hash) produced it again; the model's numbers are
        refreshed. Findings of other series are kept. A different model starts the study's
        review over (the store keeps the old file aside first; see ``ReviewStore.save``).
        Returns the ids of the findings now in the state for those series.
        """
        new = list(new)
        if self.model is not None and self.model.sha256 != model.sha256:
            self.findings = []
            self.thresholds = {}
        self.model = model
        old = {f.finding_id: f for f in self.findings}
        series = {f.series_key for f in new}
        kept = [f for f in self.findings if f.series_key not in series]
        merged: list[FindingReview] = []
        for f in new:
            prev = old.get(f.finding_id)
            if prev is not None:
                f = replace(
                    f,
                    verdict=prev.verdict,
                    reason=prev.reason,
                    note=prev.note,
                    edited_box=prev.edited_box,
                    reviewer=prev.reviewer,
                    updated=prev.updated,
                )
            merged.append(f)
        self.findings = kept + merged
        self.updated = utc_now()
        return [f.finding_id for f in merged]

    # ------------------------------------------------------------------ (de)serialising
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "study_uid": self.study_uid,
            "reviewer": self.reviewer,
            "created": self.created,
            "updated": self.updated,
            "model": asdict(self.model) if self.model is not None else None,
            "thresholds": dict(self.thresholds),
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReviewState:
        """Parse a saved state; raises ValueError (or KeyError/TypeError) on anything off."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError("not a RadAssist review file")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"review schema version {version} is not supported (want 1)")
        model = data.get("model")
        thresholds = {
            str(k): check_threshold(v) for k, v in dict(data.get("thresholds", {})).items()
        }
        return cls(
            study_uid=str(data["study_uid"]),
            model=ModelRef(str(model["name"]), str(model["version"]), str(model["sha256"]))
            if model
            else None,
            findings=[FindingReview.from_dict(f) for f in data.get("findings", [])],
            thresholds=thresholds,
            reviewer=str(data.get("reviewer", "")),
            created=str(data.get("created", utc_now())),
            updated=str(data.get("updated", utc_now())),
        )


def finding_id(series_key: str, label: str) -> str:
    return f"{series_key}:{label}"


def model_ref(result: SeriesResult) -> ModelRef:
    return ModelRef(result.model.name, result.model.version, result.model.tensor_sha256)


def findings_from_result(
    result: SeriesResult, series_key: str
) -> tuple[list[FindingReview], dict[str, np.ndarray]]:
    """The engine's findings for one stack as reviewable findings, and their heatmaps by
    finding id (only the located ones have a heatmap, a box and an outline)."""
    reviews: list[FindingReview] = []
    heatmaps: dict[str, np.ndarray] = {}
    for f in result.findings:
        fid = finding_id(series_key, f.label)
        reviews.append(
            FindingReview(
                finding_id=fid,
                label=f.label,
                series_key=series_key,
                series_uid=result.series_instance_uid,
                probability=float(f.probability),
                model_threshold=check_threshold(f.threshold),
                slice_index=int(f.slice_index),
                sop_instance_uid=f.sop_instance_uid,
                frame=int(f.frame),
                box=check_box(f.box) if f.box is not None else None,
                outline=[[(float(x), float(y)) for x, y in f.outline]] if f.outline else [],
            )
        )
        if f.heatmap is not None:
            heatmaps[fid] = f.heatmap
    return reviews, heatmaps
