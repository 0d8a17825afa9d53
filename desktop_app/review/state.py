"""Review state: the reader's truth per label for one study, beside the model's call (Qt-free).

One :class:`ReviewState` per study holds each finding (one per series and label: probability,
the model's operating threshold, slice, box, outline) and the reader's verdict on that label:
present / absent / uncertain (or none yet), a reason code when it disagrees with the model, the
reader's own box (edited, or drawn for a finding the model missed), a free-text note, who
decided and when, and the model's probability and the threshold in force at that moment. Which
model (name, version, tensor SHA-256) produced the findings is kept too.

The verdict is the reader's truth and nothing else: agreement with the model (TP / FP / TN /
FN, :func:`agreement`) is derived from it and the model's decision, never stored. The per-label
operating thresholds the reader sets with the live slider are part of the state; moving one
re-decides positive/negative from the stored probability (:func:`is_positive`) and so
re-derives agreement, but never touches a verdict. Files of schema 1 (accepted / rejected /
pending on the model's call) are upgraded on load by ``migrate``. ``store`` saves the state,
``writer`` saves it in the background.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from desktop_app.review.annotations import Annotation, check_text
from desktop_app.review.lesionfiles import series_from_dict, series_to_dict, unpack_labels
from desktop_app.review.lesionreview import LesionReviewMixin, SeriesLesions
from desktop_app.review.lesionreview import (  # re-exported: a run's lesions, like its findings
    lesions_from_result as lesions_from_result,
)

if TYPE_CHECKING:
    import numpy as np

    from desktop_app.inference.findings import SeriesResult
    from desktop_app.inference.inputcheck import InputCheck

log = logging.getLogger(__name__)

SCHEMA = "radassist-review"
SCHEMA_VERSION = 4  # 3: reader annotations (``annotations``); 4: lesions (``lesions``)
MAX_NOTE_CHARS = 10_000

# The reader's truth per label (PENDING: no verdict yet).
PENDING = "pending"
PRESENT = "present"
ABSENT = "absent"
UNCERTAIN = "uncertain"
TRUTHS = (PENDING, PRESENT, ABSENT, UNCERTAIN)

# Agreement of a verdict with the model's decision: derived, never stored.
TRUE_POSITIVE, FALSE_POSITIVE, TRUE_NEGATIVE, FALSE_NEGATIVE = "TP", "FP", "TN", "FN"

# Schema 1's verdicts on the model's call; still the words of :attr:`FindingReview.verdict`.
ACCEPTED = "accepted"
REJECTED = "rejected"
VERDICTS = (PENDING, ACCEPTED, REJECTED)

FALSE_POSITIVE_REASONS: dict[str, str] = {
    "fp_artefact": "False positive – artefact",
    "fp_normal_anatomy": "False positive – normal anatomy",
    "wrong_location": "Wrong location",
    "duplicate": "Duplicate",
    "other": "Other",
}
"""Why a label the model called positive is absent (or elsewhere)."""

FALSE_NEGATIVE_REASONS: dict[str, str] = {
    "fn_subtle": "Missed – subtle finding",
    "fn_small": "Missed – small finding",
    "fn_obscured": "Missed – hidden by overlapping structures",
    "fn_image_quality": "Missed – image quality",
    "other": "Other",
}
"""Why a label the model called negative is present."""

REJECT_REASONS: dict[str, str] = {**FALSE_POSITIVE_REASONS, **FALSE_NEGATIVE_REASONS}
"""Every reason code (a fixed list, so reviews can be counted and fed back)."""


def reasons_for(model_positive: bool) -> dict[str, str]:
    """The reason codes that fit a disagreement with a positive call (false-positive reasons)
    or with a negative one (false-negative reasons)."""
    return FALSE_POSITIVE_REASONS if model_positive else FALSE_NEGATIVE_REASONS


def agreement(truth: str, model_positive: bool) -> str | None:
    """TP / FP / TN / FN from the reader's truth and the model's decision; None while the
    verdict is pending or uncertain."""
    if truth == PRESENT:
        return TRUE_POSITIVE if model_positive else FALSE_NEGATIVE
    if truth == ABSENT:
        return FALSE_POSITIVE if model_positive else TRUE_NEGATIVE
    return None


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
    """One finding (a label on a series) and the reader's verdict on it.

    ``series_key`` names the stack: ``"<Series Instance UID>#<part>"``, part 1-based as
    ``SliceStack.part`` (a series split by geometry has several). ``finding_id`` is
    ``"<series key>:<label>"``, stable across re-runs of the same model on the same stack, so a
    verdict survives re-running inference.

    ``truth`` is the reader's verdict (``PRESENT`` / ``ABSENT`` / ``UNCERTAIN``, or
    ``PENDING``); ``verdict_probability`` and ``verdict_threshold`` are the model's probability
    and the operating threshold in force when it was given. ``edited_box`` is the reader's box:
    the model's box edited, or, when ``added``, one drawn for a finding the model missed (then
    the model's box and outline are not the finding's); ``box_slice_index`` (with its SOP
    Instance UID and frame) is the image it was drawn on when that is not the model's.
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
    truth: str = PENDING
    reason: str | None = None
    note: str = ""
    edited_box: Box | None = None
    added: bool = False
    box_slice_index: int | None = None
    box_sop_instance_uid: str = ""
    box_frame: int = 0
    verdict_probability: float | None = None
    verdict_threshold: float | None = None
    reviewer: str = ""
    updated: str | None = None

    @property
    def shown_box(self) -> Box | None:
        """The reader's box if there is one, else the model's (never for an added finding)."""
        if self.edited_box is not None or self.added:
            return self.edited_box
        return self.box

    @property
    def shown_outline(self) -> list[Polygon]:
        """The model's outline while the box is the model's."""
        return self.outline if self.edited_box is None and not self.added else []

    @property
    def shown_slice_index(self) -> int:
        """The image the shown box is on: the reader's when they drew it elsewhere."""
        return self.box_slice_index if self.box_slice_index is not None else self.slice_index

    @property
    def decided(self) -> bool:
        return self.truth != PENDING

    @property
    def model_positive_at_verdict(self) -> bool | None:
        """The model's decision when the verdict was given (None without a verdict)."""
        if self.verdict_probability is None or self.verdict_threshold is None:
            return None
        return is_positive(self.verdict_probability, self.verdict_threshold)

    @property
    def verdict(self) -> str:
        """Schema 1's words for the verdict, against the model's decision *when it was given*
        (so a threshold moved later never changes them): ``accepted`` (the reader agreed),
        ``rejected``, ``uncertain`` or ``pending``. For readers of the old format (exports)."""
        if self.truth in (PENDING, UNCERTAIN):
            return self.truth
        decision = self.model_positive_at_verdict
        if decision is None:
            return PENDING
        return ACCEPTED if (self.truth == PRESENT) == decision else REJECTED

    def agreement_at_verdict(self) -> str | None:
        """TP / FP / TN / FN against the model's decision when the verdict was given."""
        decision = self.model_positive_at_verdict
        return None if decision is None else agreement(self.truth, decision)

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
            "truth": self.truth,
            "reason": self.reason,
            "note": self.note,
            "edited_box": list(self.edited_box) if self.edited_box is not None else None,
            "added": self.added,
            "box_slice_index": self.box_slice_index,
            "box_sop_instance_uid": self.box_sop_instance_uid,
            "box_frame": self.box_frame,
            "verdict_probability": self.verdict_probability,
            "verdict_threshold": self.verdict_threshold,
            "reviewer": self.reviewer,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FindingReview:
        """Parse one finding of a schema-2 file (``migrate`` upgrades schema 1 first)."""
        truth = str(data.get("truth", PENDING))
        if truth not in TRUTHS:
            raise ValueError(f"unknown verdict {truth!r} (want one of {', '.join(TRUTHS)})")
        reason = data.get("reason")
        if reason is not None and reason not in REJECT_REASONS:
            raise ValueError(f"unknown reason code {reason!r}")
        at_p, at_t = data.get("verdict_probability"), data.get("verdict_threshold")
        box_slice = data.get("box_slice_index")
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
            truth=truth,
            reason=reason,
            note=str(data.get("note", ""))[:MAX_NOTE_CHARS],
            edited_box=check_box(data["edited_box"])
            if data.get("edited_box") is not None
            else None,
            added=bool(data.get("added", False)),
            box_slice_index=int(box_slice) if box_slice is not None else None,
            box_sop_instance_uid=str(data.get("box_sop_instance_uid", "")),
            box_frame=int(data.get("box_frame", 0)),
            verdict_probability=float(at_p) if at_p is not None else None,
            verdict_threshold=check_threshold(at_t) if at_t is not None else None,
            reviewer=str(data.get("reviewer", "")),
            updated=data.get("updated"),
        )


@dataclass(frozen=True)
class LabelTruth:
    """One label's verdict as exports and calibration read it: the reader's truth beside the
    model's decision, both as they stood when the verdict was given, and the agreement now."""

    label: str
    finding_id: str
    truth: str
    probability: float
    threshold_at_verdict: float | None
    model_positive_at_verdict: bool | None
    threshold_now: float
    model_positive_now: bool
    agreement_now: str | None
    reason: str | None
    reader_box: Box | None
    added: bool
    reviewer: str
    updated: str | None


LabelsReader = Callable[[str, dict[str, Any]], bytes]
"""(series key, that series' saved lesion entry) -> its packed label volume (``store``)."""
LABELS_NPZ = "labels_npz"  # a saved lesion entry's packed label volume, before the store files it


@dataclass
class ReviewState(LesionReviewMixin):
    """Everything a reader decided about one study's findings (and, for a segmentation, its
    lesions: ``lesion_sets``, one ``lesionreview.SeriesLesions`` per series key)."""

    study_uid: str
    model: ModelRef | None = None
    findings: list[FindingReview] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    reviewer: str = ""
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)
    # series key -> the run's check against the model's intended input and its
    # out-of-distribution verdict (findings.json's ``input_check``), so that an export from the
    # saved review marks an out-of-scope or out-of-distribution run as the run itself did
    input_checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the reader's own ROIs, angles, arrows and key-image flags (``annotations``), kept
    # whatever model ran: they are the reader's, not the model's
    annotations: list[Annotation] = field(default_factory=list)
    lesion_sets: dict[str, SeriesLesions] = field(default_factory=dict)
    # saved lesion entries whose label volume could not be read: kept as they were (saved
    # again unchanged, so nothing is lost) and reported once in ``lesion_problems``
    unreadable_lesions: dict[str, dict[str, Any]] = field(default_factory=dict)
    lesion_problems: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ lookups
    def find(self, finding_id: str) -> FindingReview:
        for f in self.findings:
            if f.finding_id == finding_id:
                return f
        raise KeyError(f"no finding {finding_id!r} in this review")

    def for_series(self, series_key: str) -> list[FindingReview]:
        return [f for f in self.findings if f.series_key == series_key]

    def resolve_slices(self, series_key: str, index_of: Callable[[str, int], int | None]) -> bool:
        """Point each finding's ``slice_index`` (and ``box_slice_index``) of ``series_key`` at
        the stack position of the image it names (``index_of(sop_instance_uid, frame)``, e.g.
        ``SliceStack.index_of``). A review saved when the stack was ordered otherwise (axial
        CT was feet first before reading order became head first) then still opens on the
        finding's own image. True when something moved."""
        moved = False
        for f in self.for_series(series_key):
            if f.sop_instance_uid:
                i = index_of(f.sop_instance_uid, f.frame)
                if i is not None and i != f.slice_index:
                    f.slice_index, moved = i, True
            if f.box_slice_index is not None and f.box_sop_instance_uid:
                i = index_of(f.box_sop_instance_uid, f.box_frame)
                if i is not None and i != f.box_slice_index:
                    f.box_slice_index, moved = i, True
        return moved

    def input_check(self, series_key: str | None) -> InputCheck | None:
        """The saved run's check against the model's intended input and its
        out-of-distribution verdict (None: none saved, or unreadable)."""
        from desktop_app.inference.inputcheck import InputCheck

        data = self.input_checks.get(series_key or "")
        if data is None:
            return None
        try:
            return InputCheck.from_json(data)
        except (ValueError, TypeError, KeyError):
            return None

    def threshold(self, label: str) -> float:
        """The operating threshold in force for ``label``: the reader's, else the model's."""
        if label in self.thresholds:
            return self.thresholds[label]
        for f in self.findings:
            if f.label == label:
                return f.model_threshold
        return 0.5

    def positive(self, finding: FindingReview) -> bool:
        """The model's decision now, at the threshold in force."""
        return is_positive(finding.probability, self.threshold(finding.label))

    def agreement(self, finding: FindingReview) -> str | None:
        """TP / FP / TN / FN of the reader's verdict against the model's decision at the
        threshold in force now (re-derived when a threshold moves; None: no verdict)."""
        return agreement(finding.truth, self.positive(finding))

    def counts(self) -> dict[str, int]:
        """Findings per verdict (``pending``, ``present``, ``absent``, ``uncertain``)."""
        out = dict.fromkeys(TRUTHS, 0)
        for f in self.findings:
            out[f.truth] += 1
        return out

    def label_truths(self, series_key: str) -> list[LabelTruth]:
        """Each label of ``series_key`` with the reader's truth and the model's decision (for
        exports: the SR's reader verdict and model decision, the PDF's two columns)."""
        out = []
        for f in self.for_series(series_key):
            now = self.threshold(f.label)
            out.append(
                LabelTruth(
                    label=f.label,
                    finding_id=f.finding_id,
                    truth=f.truth,
                    probability=f.probability,
                    threshold_at_verdict=f.verdict_threshold,
                    model_positive_at_verdict=f.model_positive_at_verdict,
                    threshold_now=now,
                    model_positive_now=is_positive(f.probability, now),
                    agreement_now=self.agreement(f),
                    reason=f.reason,
                    reader_box=f.edited_box,
                    added=f.added,
                    reviewer=f.reviewer,
                    updated=f.updated,
                )
            )
        return out

    # ------------------------------------------------------------------ changes
    def _touch(self, finding: FindingReview, reviewer: str | None) -> FindingReview:
        now = utc_now()
        finding.updated = now
        finding.reviewer = reviewer if reviewer is not None else self.reviewer
        self.updated = now
        return finding

    def set_truth(
        self,
        finding_id: str,
        truth: str,
        reason: str | None = None,
        reviewer: str | None = None,
    ) -> FindingReview:
        """Record the reader's verdict on a label, with the model's probability and the
        threshold in force now. ``reason``: why the reader disagrees with the model (a code
        of :data:`REJECT_REASONS`; the GUI offers :func:`reasons_for` the model's call)."""
        if truth not in (PRESENT, ABSENT, UNCERTAIN):
            raise ValueError(
                f"`truth` {truth!r} should be one of: {PRESENT}, {ABSENT}, {UNCERTAIN}"
            )
        if reason is not None and reason not in REJECT_REASONS:
            raise ValueError(f"`reason` {reason!r} should be one of: {', '.join(REJECT_REASONS)}")
        f = self.find(finding_id)
        f.truth, f.reason = truth, reason
        f.verdict_probability = f.probability
        f.verdict_threshold = self.threshold(f.label)
        if truth != PRESENT and f.added:  # a drawn box only means something on a present label
            f.added, f.edited_box, f.box_slice_index = False, None, None
        return self._touch(f, reviewer)

    def accept(self, finding_id: str, reviewer: str | None = None) -> FindingReview:
        """Agree with the model's call now: present when positive, absent when negative."""
        f = self.find(finding_id)
        return self.set_truth(finding_id, PRESENT if self.positive(f) else ABSENT, None, reviewer)

    def reject(self, finding_id: str, reason: str, reviewer: str | None = None) -> FindingReview:
        """Disagree with the model's call now (absent on a positive, present on a negative),
        for ``reason``."""
        if reason not in REJECT_REASONS:
            raise ValueError(f"`reason` {reason!r} should be one of: {', '.join(REJECT_REASONS)}")
        f = self.find(finding_id)
        return self.set_truth(finding_id, ABSENT if self.positive(f) else PRESENT, reason, reviewer)

    def clear_verdict(self, finding_id: str, reviewer: str | None = None) -> FindingReview:
        """Back to no verdict (a box drawn for a missed finding goes with it)."""
        f = self.find(finding_id)
        f.truth, f.reason = PENDING, None
        f.verdict_probability = f.verdict_threshold = None
        if f.added:
            f.added, f.edited_box, f.box_slice_index = False, None, None
            f.box_sop_instance_uid, f.box_frame = "", 0
        return self._touch(f, reviewer)

    def add_missed(
        self,
        series_key: str,
        label: str,
        box: Iterable[float],
        *,
        slice_index: int,
        sop_instance_uid: str = "",
        frame: int = 0,
        reviewer: str | None = None,
    ) -> FindingReview:
        """A finding the model missed: ``label`` is present on ``series_key`` at the reader's
        ``box`` on image ``slice_index``; the model's box is not used. It counts as a false
        negative while the model calls the label negative."""
        checked = check_box(box)
        f = self.find(finding_id(series_key, label))
        f.edited_box, f.added = checked, True
        f.box_slice_index = int(slice_index)
        f.box_sop_instance_uid, f.box_frame = str(sop_instance_uid), int(frame)
        return self.set_truth(f.finding_id, PRESENT, f.reason, reviewer)

    def mark_remaining_absent(self, series_key: str, reviewer: str | None = None) -> list[str]:
        """A normal study: every label of ``series_key`` still without a verdict is absent.
        Returns the ids marked."""
        marked = []
        for f in self.for_series(series_key):
            if f.truth == PENDING:
                self.set_truth(f.finding_id, ABSENT, None, reviewer)
                marked.append(f.finding_id)
        return marked

    def set_note(self, finding_id: str, note: str, reviewer: str | None = None) -> FindingReview:
        if len(note) > MAX_NOTE_CHARS:
            raise ValueError(f"a note is at most {MAX_NOTE_CHARS} characters, not {len(note)}")
        f = self.find(finding_id)
        f.note = note
        return self._touch(f, reviewer)

    def edit_box(
        self, finding_id: str, box: Iterable[float] | None, reviewer: str | None = None
    ) -> FindingReview:
        """Set the reader's box (x, y, width, height), or None to go back to the model's
        (on an added finding, None removes the drawn box; the verdict stays)."""
        f = self.find(finding_id)
        f.edited_box = None if box is None else check_box(box)
        if box is None and f.added:
            f.added, f.box_slice_index, f.box_sop_instance_uid, f.box_frame = False, None, "", 0
        return self._touch(f, reviewer)

    def set_threshold(self, label: str, value: float) -> list[str]:
        """Set ``label``'s operating threshold; returns the ids of findings whose
        positive/negative decision changed (no model run: the probabilities are stored).
        Verdicts are not touched: only the agreement derived from them changes."""
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

    def merge_findings(
        self,
        new: Iterable[FindingReview],
        model: ModelRef,
        input_check: dict[str, Any] | None = None,
    ) -> list[str]:
        """Take a fresh model run's findings for some series.

        A finding the reader already worked on keeps its verdict (with the probability and
        threshold it was given at), reason, note and boxes when the same model (same tensor
        hash) produced it again; the model's numbers are refreshed. Findings of other series
        are kept. A different model starts the study's review over (the store keeps the old
        file aside first; see ``ReviewStore.save``). Returns the ids of the findings now in
        the state for those series. ``input_check``: the run's (``InputCheck.to_json()``),
        kept for those series.
        """
        new = list(new)
        if self.model is not None and self.model.sha256 != model.sha256:
            self.findings = []
            self.thresholds = {}
            self.input_checks = {}
            self.lesion_sets = {}
            self.unreadable_lesions = {}
        self.model = model
        old = {f.finding_id: f for f in self.findings}
        series = {f.series_key for f in new}
        kept = [f for f in self.findings if f.series_key not in series]
        merged: list[FindingReview] = []
        for f in new:
            prev = old.get(f.finding_id)
            if prev is not None:
                f = replace(f, **{name: getattr(prev, name) for name in _READER_FIELDS})
            merged.append(f)
        self.findings = kept + merged
        for key in series:
            if input_check is None:
                self.input_checks.pop(key, None)
            else:
                self.input_checks[key] = dict(input_check)
        self.updated = utc_now()
        return [f.finding_id for f in merged]

    # ------------------------------------------------------------------ annotations
    def annotation(self, annotation_id: str) -> Annotation:
        for a in self.annotations:
            if a.id == annotation_id:
                return a
        raise KeyError(f"no annotation {annotation_id!r} in this review")

    def annotations_on(
        self, series_key: str, sop_instance_uid: str, frame: int, slice_index: int
    ) -> list[Annotation]:
        """The annotations drawn on one image of ``series_key``, oldest first."""
        return [
            a
            for a in self.annotations
            if a.series_key == series_key and a.on_image(sop_instance_uid, frame, slice_index)
        ]

    def put_annotation(self, annotation: Annotation, reviewer: str | None = None) -> Annotation:
        """Add ``annotation``, or replace the one with its id (a move or an edit); stamps who
        and when."""
        now = utc_now()
        who = reviewer if reviewer is not None else self.reviewer
        stamped = replace(
            annotation,
            text=check_text(annotation.text),
            reviewer=who,
            created=annotation.created or now,
            updated=now,
        )
        for i, a in enumerate(self.annotations):
            if a.id == annotation.id:
                self.annotations[i] = stamped
                break
        else:
            self.annotations.append(stamped)
        self.updated = now
        return stamped

    def remove_annotation(self, annotation_id: str) -> Annotation:
        found = self.annotation(annotation_id)
        self.annotations = [a for a in self.annotations if a.id != annotation_id]
        self.updated = utc_now()
        return found

    def set_annotations(self, annotations: Iterable[Annotation]) -> None:
        """Replace the whole list (undo and redo)."""
        self.annotations = list(annotations)
        self.updated = utc_now()

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
            "input_checks": {k: dict(v) for k, v in self.input_checks.items()},
            "annotations": [a.to_dict() for a in self.annotations],
            "lesions": self._lesions_to_dict(),
        }

    def _lesions_to_dict(self) -> dict[str, Any]:
        """Each series' lesions, its label volume packed (bytes) under ``labels_npz``: the
        store writes those beside the JSON (``ReviewStore.save_data``)."""
        from desktop_app.review.lesionfiles import pack_labels

        out: dict[str, Any] = {k: dict(v) for k, v in self.unreadable_lesions.items()}
        for key, series in self.lesion_sets.items():
            out[key] = {**series_to_dict(series), LABELS_NPZ: pack_labels(series)}
        return out

    @classmethod
    def from_dict(cls, data: Any, read_labels: LabelsReader | None = None) -> ReviewState:
        """Parse a saved state (schema 1 is upgraded first, ``migrate.upgrade``); raises
        ValueError (or KeyError/TypeError) on anything off. Lesion label volumes come from
        the entry itself (``to_dict``) or from ``read_labels`` (the store's files); one that
        can't be read is kept aside in ``unreadable_lesions`` and named in
        ``lesion_problems`` (without ``read_labels``, saved entries are kept there unread)."""
        from desktop_app.review.migrate import upgrade

        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError("not a RadAssist review file")
        data = upgrade(data)
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
            input_checks={
                str(k): dict(v)
                for k, v in dict(data.get("input_checks", {})).items()
                if isinstance(v, dict)
            },
            annotations=[Annotation.from_dict(a) for a in data.get("annotations", [])],
        )._read_lesions(data.get("lesions") or {}, read_labels)

    def _read_lesions(self, saved: Any, read_labels: LabelsReader | None) -> ReviewState:
        from desktop_app.infra.errors import ReviewStateError

        if not isinstance(saved, dict):
            raise ValueError("`lesions` should be an object of series keys")
        for key, entry in saved.items():
            if not isinstance(entry, dict):
                raise ValueError(f"lesions of {key!r} should be an object")
            ids = [int(item["lesion_id"]) for item in entry.get("lesions", [])]
            try:
                packed = entry.get(LABELS_NPZ)
                if packed is None and read_labels is None:  # verdicts only: kept as saved
                    self.unreadable_lesions[str(key)] = dict(entry)
                    continue
                if packed is None:
                    assert read_labels is not None
                    packed = read_labels(str(key), entry)
                labels = unpack_labels(packed, entry.get("shape", ()), ids)
            except ReviewStateError as err:
                self.unreadable_lesions[str(key)] = {
                    k: v for k, v in entry.items() if k != LABELS_NPZ
                }
                self.lesion_problems.append(err.one_line())
                log.warning("lesions of one series not read: %s", err.reason)
                continue
            self.lesion_sets[str(key)] = series_from_dict(str(key), entry, labels)
        return self


# What a re-run of the same model keeps of a finding: everything the reader gave.
_READER_FIELDS = (
    "truth", "reason", "note", "edited_box", "added", "box_slice_index", "box_sop_instance_uid",
    "box_frame", "verdict_probability", "verdict_threshold", "reviewer", "updated",
)  # fmt: skip


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
