"""Comparison logic for side-by-side viewing: the prior study's matching series, and which slice
of one stack lies at another stack's slice (by position in mm, else by index).

Positions are Image Position (Patient) projected on the target stack's normal, the cross product
of the row and column cosines of Image Orientation (Patient) (PS3.3 C.7.6.2.1.1). Two studies
of one patient on the same scanner share the table's coordinates closely enough for this; where
they do not, the reader aligns the two stacks by hand and the sync keeps that offset
(``offset_between``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from desktop_app.studies.index import StudyIndex
from desktop_app.studies.series import SeriesAssembly, SliceStack, assemble

log = logging.getLogger(__name__)

MM = "mm"
INDEX = "index"
PARALLEL_COS = 0.985  # normals within ~10 degrees: the same plane, positions comparable


# ---------------------------------------------------------------------- slice positions
@dataclass(frozen=True)
class StackGeometry:
    """Where each slice of a stack lies: ``positions`` (N, 3) in mm, or None when any slice
    lacks Image Position (Patient) or the stack has no orientation."""

    count: int
    positions: np.ndarray | None
    normal: np.ndarray | None

    @classmethod
    def of(cls, stack: SliceStack) -> StackGeometry:
        n = len(stack)
        normal = stack.normal
        if normal is None or n == 0:
            return cls(n, None, None)
        points = [ref.position for ref in stack.slices]
        if any(p is None for p in points):
            return cls(n, None, np.asarray(normal, dtype=np.float64))
        return cls(n, np.asarray(points, dtype=np.float64), np.asarray(normal, dtype=np.float64))

    def along(self, normal: np.ndarray) -> np.ndarray:
        """Each slice's position projected on ``normal`` (mm)."""
        assert self.positions is not None
        return self.positions @ normal


def sync_mode(source: StackGeometry, target: StackGeometry) -> str:
    """``MM`` when both stacks have positions and lie in the same plane, else ``INDEX``."""
    if source.positions is None or target.positions is None:
        return INDEX
    assert source.normal is not None and target.normal is not None
    if abs(float(source.normal @ target.normal)) < PARALLEL_COS:
        return INDEX
    return MM


def _clamp(index: int, count: int) -> int:
    return min(max(int(index), 0), max(count - 1, 0))


def follow(source: StackGeometry, index: int, target: StackGeometry, offset: float = 0.0) -> int:
    """The target slice that matches slice ``index`` of the source: the nearest in position
    (plus ``offset`` mm along the target's normal) in ``MM`` mode, else ``index + offset``;
    clamped to the target's first or last slice when the source lies beyond it."""
    if target.count == 0:
        return 0
    index = _clamp(index, source.count)
    if sync_mode(source, target) == INDEX:
        return _clamp(index + round(offset), target.count)
    assert source.positions is not None and target.normal is not None
    wanted = float(source.positions[index] @ target.normal) + offset
    return int(np.argmin(np.abs(target.along(target.normal) - wanted)))


def offset_between(
    source: StackGeometry, index: int, target: StackGeometry, target_index: int
) -> float:
    """The offset that makes ``follow(source, index, target, offset)`` give ``target_index``:
    mm along the target's normal in ``MM`` mode, else slices."""
    index = _clamp(index, source.count)
    target_index = _clamp(target_index, target.count)
    if sync_mode(source, target) == INDEX:
        return float(target_index - index)
    assert source.positions is not None and target.positions is not None
    normal = target.normal
    assert normal is not None
    return float(target.positions[target_index] @ normal - source.positions[index] @ normal)


# ---------------------------------------------------------------------- prior study
@dataclass(frozen=True)
class StackSummary:
    """What matching a prior needs to know of one stack (a browser row)."""

    key: str  # "<Series Instance UID>#<part, 1-based>", as the browser's
    patient: str  # PatientNode.key: the same patient across studies
    study_uid: str
    study_date: str  # DA, YYYYMMDD (PS3.5 6.2)
    study_time: str
    modality: str
    body_part: str
    description: str
    plane: str
    images: int
    series_number: int | None = None

    @property
    def when(self) -> tuple[str, str]:
        return (self.study_date.strip(), self.study_time.strip())


def stack_key(series_uid: str, part: int) -> str:
    """The key of part ``part`` (0-based) of a series, as the browser and exports name it."""
    return f"{series_uid}#{part + 1}"


def summarize(
    index: StudyIndex, assemblies: Mapping[str, SeriesAssembly] | None = None
) -> dict[str, StackSummary]:
    """Every stack of ``index`` by key; ``assemblies`` (by Series Instance UID) are reused
    where given, any other series is assembled here."""
    assemblies = assemblies or {}
    out: dict[str, StackSummary] = {}
    for patient, study, series in index.iter_series():
        assembly = assemblies.get(series.series_instance_uid) or assemble(series)
        for part, stack in enumerate(assembly.stacks):
            key = stack_key(series.series_instance_uid, part)
            out[key] = StackSummary(
                key=key,
                patient=patient.key,
                study_uid=study.study_instance_uid,
                study_date=study.date,
                study_time=study.time,
                modality=series.modality,
                body_part=series.body_part,
                description=series.description,
                plane=stack.plane,
                images=len(stack),
                series_number=series.series_number,
            )
    return out


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass(frozen=True)
class PriorMatch:
    """The prior's series chosen to compare with, and why it was chosen."""

    summary: StackSummary
    reasons: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.summary.key


@dataclass(frozen=True)
class PriorSearch:
    """The outcome: ``match``, or None and a ``message`` that says what to open."""

    match: PriorMatch | None
    message: str


def _score(current: StackSummary, other: StackSummary) -> tuple[int, list[str]]:
    score, reasons = 0, list[str]()
    if _words(current.description) and _words(current.description) == _words(other.description):
        score, reasons = score + 5, [*reasons, "same description"]
    if current.body_part and current.body_part.upper() == other.body_part.upper():
        score, reasons = score + 2, [*reasons, "same body part"]
    if current.plane and current.plane == other.plane:
        score, reasons = score + 2, [*reasons, f"{other.plane}"]
    return score, reasons


def find_prior(current: StackSummary, candidates: Iterable[StackSummary]) -> PriorSearch:
    """The series to show beside ``current``: in the same patient's most recent study dated
    before it, the series of the same modality that best matches (description 5, body part
    2, plane 2; then the most images). Studies without a date can't be ordered and are left
    out."""
    if not current.study_date.strip():
        return PriorSearch(None, "This study has no Study Date: its prior can't be told apart")
    earlier = [
        c
        for c in candidates
        if c.patient == current.patient
        and c.study_uid != current.study_uid
        and c.study_date.strip()
        and c.when < current.when
    ]
    if not earlier:
        return PriorSearch(
            None, "No earlier study of this patient is open: open the prior study too"
        )
    latest = max(c.when for c in earlier)
    prior = [c for c in earlier if c.when == latest]
    same = [c for c in prior if c.modality == current.modality]
    date = _date_text(latest[0])
    if not same:
        return PriorSearch(
            None, f"The prior study ({date}) has no {current.modality or 'matching'} series"
        )
    ranked = sorted(
        same,
        key=lambda c: (-_score(current, c)[0], -c.images, c.series_number or 0, c.key),
    )
    best = ranked[0]
    reasons = tuple(_score(current, best)[1])
    log.info("prior match: score %d of %d candidates", _score(current, best)[0], len(same))
    return PriorSearch(
        PriorMatch(best, reasons), f"Prior {date}: " + ", ".join(reasons or ("same modality",))
    )


def _date_text(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value
