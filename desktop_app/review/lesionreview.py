"""The reader's review of a segmentation's lesions on one series (Qt-free, numpy only).

A segmentation model's run (``SeriesResult.lesions`` and ``.mask``) enters the review as one
:class:`SeriesLesions` per series: the editable label volume (uint16 lesion ids, (slices, rows,
cols), stack order, 0 outside) and one :class:`LesionReview` per id, each a pending model
lesion with the model's measurements. The reader accepts or rejects each lesion, edits its
mask with a brush or an eraser on one slice at a time, and draws lesions the model missed
(reader lesions, accepted as drawn). After an edit only the touched lesions are measured again
(``inference.lesions.find_lesions`` on their bounding box, one slice of margin each side so
that the slabs match the whole series'), so an edit costs the same on a 300 x 512 x 512
volume as on a small one.

A lesion split in two by the eraser stays one lesion (the reader's id): its volume is the sum
of its parts, its diameters those of its largest part. A lesion erased wholly is removed.
``reviewed_labels`` is the reader's truth: accepted and reader lesions only.

``LesionReviewMixin`` gives ``ReviewState`` its lesion methods; ``lesionfiles`` saves them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_app.inference.lesions import Lesion, LesionTable, MaskGeometry, find_lesions
from desktop_app.infra.errors import DataError

if TYPE_CHECKING:
    from desktop_app.inference.findings import SeriesResult

MODEL, READER = "model", "reader"
SOURCES = (MODEL, READER)
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
LESION_VERDICTS = (PENDING, ACCEPTED, REJECTED)
MAX_LESION_ID = int(np.iinfo(np.uint16).max)

ValueSource = Callable[[int], "np.ndarray | None"]
"""slice index -> that slice's modality values (HU on CT), (rows, cols), or None if unknown."""


@dataclass(frozen=True)
class LesionReview:
    """One lesion of a series and the reader's verdict on it (the API H3 and H5 read).

    ``lesion_id`` is the lesion's value in the label volume (1-based). ``slices`` is (first,
    last) in stack order. ``confidence`` is the model's mean probability inside its lesion
    (None for a reader lesion). ``box`` is (x, y, width, height) in pixels over all its slices;
    ``diameter_line`` (x0, y0, x1, y1) is on ``diameter_slice``; ``centroid`` is (slice, x,
    y). ``edited``: the reader changed the mask of a model lesion.
    """

    lesion_id: int
    series_key: str
    label: str
    source: str = MODEL
    verdict: str = PENDING
    reason: str | None = None
    volume_mm3: float | None = None
    longest_diameter_mm: float | None = None
    mean_value: float | None = None
    max_value: float | None = None
    slices: tuple[int, int] = (0, 0)
    confidence: float | None = None
    reviewer: str | None = None
    updated_at: str | None = None
    voxels: int = 0
    area_mm2: float | None = None
    short_axis_mm: float | None = None
    diameter_slice: int | None = None
    diameter_line: tuple[float, float, float, float] | None = None
    box: tuple[int, int, int, int] | None = None
    centroid: tuple[float, float, float] | None = None
    edited: bool = False

    @property
    def decided(self) -> bool:
        return self.verdict != PENDING

    @property
    def in_reviewed(self) -> bool:
        """Part of the reader's truth (``reviewed_labels``): accepted, or drawn by the reader
        and not rejected."""
        return self.verdict == ACCEPTED or (self.source == READER and self.verdict != REJECTED)

    @property
    def agreement(self) -> str | None:
        """Lesion-level TP / FP / FN: an accepted model lesion is a true positive, a rejected
        one a false positive, a reader lesion a false negative (None while pending)."""
        if self.source == READER:
            return "FN" if self.verdict != REJECTED else None
        return {ACCEPTED: "TP", REJECTED: "FP"}.get(self.verdict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("slices", "diameter_line", "box", "centroid"):
            value = data[name]
            data[name] = None if value is None else list(value)
        return data

    @classmethod
    def from_dict(cls, data: Any, series_key: str) -> LesionReview:
        if not isinstance(data, dict):
            raise ValueError(f"a lesion should be an object, not {type(data).__name__}")
        lesion_id = int(data["lesion_id"])
        if not 1 <= lesion_id <= MAX_LESION_ID:
            raise ValueError(f"lesion id {lesion_id} should be between 1 and {MAX_LESION_ID}")
        source, verdict = str(data.get("source", MODEL)), str(data.get("verdict", PENDING))
        if source not in SOURCES or verdict not in LESION_VERDICTS:
            raise ValueError(
                f"lesion {lesion_id}: unknown source {source!r} or verdict {verdict!r}"
            )
        first, last = (int(v) for v in _numbers(data.get("slices"), 2) or (0, 0))
        return cls(
            lesion_id=lesion_id,
            series_key=series_key,
            label=str(data.get("label", "")),
            source=source,
            verdict=verdict,
            reason=None if data.get("reason") is None else str(data["reason"]),
            volume_mm3=_opt(data.get("volume_mm3")),
            longest_diameter_mm=_opt(data.get("longest_diameter_mm")),
            mean_value=_opt(data.get("mean_value")),
            max_value=_opt(data.get("max_value")),
            slices=(first, last),
            confidence=_opt(data.get("confidence")),
            reviewer=None if data.get("reviewer") is None else str(data["reviewer"]),
            updated_at=None if data.get("updated_at") is None else str(data["updated_at"]),
            voxels=int(data.get("voxels", 0)),
            area_mm2=_opt(data.get("area_mm2")),
            short_axis_mm=_opt(data.get("short_axis_mm")),
            diameter_slice=None
            if data.get("diameter_slice") is None
            else int(data["diameter_slice"]),
            diameter_line=_numbers(data.get("diameter_line"), 4),  # type: ignore[arg-type]
            box=_ints(data.get("box"), 4),  # type: ignore[arg-type]
            centroid=_numbers(data.get("centroid"), 3),  # type: ignore[arg-type]
            edited=bool(data.get("edited", False)),
        )


def _opt(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _numbers(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != n:
        raise ValueError(f"{value!r} should be a list of {n} numbers")
    return tuple(float(v) for v in value)


def _ints(value: Any, n: int) -> tuple[int, ...] | None:
    numbers = _numbers(value, n)
    return None if numbers is None else tuple(int(v) for v in numbers)


def review_from_lesion(lesion: Lesion, series_key: str, label: str, **fields: Any) -> LesionReview:
    """A pending model lesion with the model's measurements (``fields`` override)."""
    values: dict[str, Any] = {
        "lesion_id": int(lesion.id),
        "series_key": series_key,
        "label": label,
        **_measurements(lesion),
        "confidence": lesion.mean_probability,
    }
    values.update(fields)
    return LesionReview(**values)


def _measurements(lesion: Lesion) -> dict[str, Any]:
    return {
        "volume_mm3": lesion.volume_mm3,
        "longest_diameter_mm": lesion.longest_diameter_mm,
        "mean_value": lesion.mean_value,
        "max_value": lesion.max_value,
        "slices": (int(lesion.first_slice), int(lesion.last_slice)),
        "voxels": int(lesion.voxels),
        "area_mm2": lesion.area_mm2,
        "short_axis_mm": lesion.short_axis_mm,
        "diameter_slice": int(lesion.diameter_slice),
        "diameter_line": tuple(float(v) for v in lesion.diameter_line),
        "box": tuple(int(v) for v in lesion.box),
        "centroid": tuple(float(v) for v in lesion.centroid),
    }


_EMPTY_MEASUREMENTS: dict[str, Any] = {
    "volume_mm3": None,
    "longest_diameter_mm": None,
    "mean_value": None,
    "max_value": None,
    "voxels": 0,
    "area_mm2": None,
    "short_axis_mm": None,
    "diameter_slice": None,
    "diameter_line": None,
    "centroid": None,
}


@dataclass(frozen=True)
class LesionSnapshot:
    """What one stroke changed, to undo it: one slice of the label volume and every lesion's
    record before the stroke (a stroke only ever touches one slice)."""

    series_key: str
    slice_index: int
    labels: np.ndarray = field(repr=False, compare=False)
    lesions: tuple[LesionReview, ...]
    next_id: int


@dataclass
class SeriesLesions:
    """The lesions of one series under review: the edited label volume and each verdict."""

    series_key: str
    series_uid: str
    label: str
    labels: np.ndarray = field(repr=False)
    geometry: MaskGeometry | None = None
    lesions: dict[int, LesionReview] = field(default_factory=dict)
    model_sha256: str = ""
    value_unit: str = ""
    next_id: int = 1
    values: ValueSource | None = field(default=None, repr=False, compare=False)
    # (SOP Instance UID, frame) of each slice in stack order: the images the masks lie on
    slice_refs: tuple[tuple[str, int], ...] = ()
    version: int = 0  # counts mask edits (saving reuses the packed volume while unchanged)
    _packed: tuple[int, bytes] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim == 2:
            labels = labels[None]
        if labels.ndim != 3:
            raise DataError(f"a lesion label volume of shape {labels.shape} should be 3-D")
        if labels.dtype != np.uint16:
            if labels.size and (labels.min() < 0 or labels.max() > MAX_LESION_ID):
                raise DataError(f"lesion ids of {self.series_key} are outside 0..{MAX_LESION_ID}")
            labels = labels.astype(np.uint16)
        elif not labels.flags.writeable:
            labels = labels.copy()
        self.labels = labels
        known = max([*self.lesions, 0])
        self.next_id = max(self.next_id, known + 1)

    @property
    def shape(self) -> tuple[int, int, int]:
        s, r, c = self.labels.shape
        return (int(s), int(r), int(c))

    # ------------------------------------------------------------------ from a run
    @classmethod
    def from_table(
        cls,
        series_key: str,
        series_uid: str,
        label: str,
        table: LesionTable,
        mask: np.ndarray,
        geometry: MaskGeometry | None,
        *,
        model_sha256: str = "",
        values: ValueSource | None = None,
        slice_refs: tuple[tuple[str, int], ...] = (),
    ) -> SeriesLesions:
        """A run's lesions as pending model lesions, over a copy of its label volume."""
        labels = np.array(mask, dtype=np.uint16, copy=True)
        lesions = {
            int(lesion.id): review_from_lesion(lesion, series_key, label)
            for lesion in table.lesions
        }
        return cls(
            series_key=series_key,
            series_uid=series_uid,
            label=label,
            labels=labels,
            geometry=geometry,
            lesions=lesions,
            model_sha256=model_sha256,
            value_unit=table.value_unit,
            values=values,
            slice_refs=slice_refs if len(slice_refs) == labels.shape[0] else (),
        )

    # ------------------------------------------------------------------ lookups
    def get(self, lesion_id: int) -> LesionReview:
        try:
            return self.lesions[int(lesion_id)]
        except KeyError:
            raise KeyError(
                f"no lesion {lesion_id} on this series (lesions: "
                f"{', '.join(str(i) for i in sorted(self.lesions)) or 'none'})"
            ) from None

    def ordered(self) -> list[LesionReview]:
        """Model lesions by id (largest first, as the model numbered them), then the reader's."""
        return sorted(self.lesions.values(), key=lambda r: (r.source != MODEL, r.lesion_id))

    def reviewed_labels(self) -> np.ndarray:
        """The label volume with only accepted and reader lesions kept (ids unchanged): a copy
        with the others cleared inside their bounding boxes."""
        out = self.labels.copy()
        for lesion in self.lesions.values():
            if lesion.in_reviewed:
                continue
            z0, z1, r0, r1, c0, c1 = self._extent(lesion)
            crop = out[z0:z1, r0:r1, c0:c1]
            crop[crop == lesion.lesion_id] = 0
        return out

    def _extent(self, lesion: LesionReview) -> tuple[int, int, int, int, int, int]:
        """(z0, z1, r0, r1, c0, c1): where the lesion's voxels are (the whole volume when its
        box is unknown)."""
        s, rows, cols = self.shape
        if lesion.box is None:
            return (0, s, 0, rows, 0, cols)
        x, y, w, h = lesion.box
        return (lesion.slices[0], lesion.slices[1] + 1, y, y + h, x, x + w)

    def nonzero_extent(self) -> tuple[int, int, int, int, int, int] | None:
        """The bounding box of every lesion's voxels (from their measurements), None if none."""
        if not self.lesions:
            return None
        boxes = np.array([self._extent(lesion) for lesion in self.lesions.values()])
        z0, _, r0, _, c0, _ = (int(v) for v in boxes.min(axis=0))
        _, z1, _, r1, _, c1 = (int(v) for v in boxes.max(axis=0))
        return (z0, z1, r0, r1, c0, c1)

    # ------------------------------------------------------------------ verdicts
    def set_verdict(
        self, lesion_id: int, verdict: str, reason: str | None, reviewer: str, now: str
    ) -> LesionReview:
        if verdict not in LESION_VERDICTS:
            raise ValueError(
                f"`verdict` {verdict!r} should be one of: {', '.join(LESION_VERDICTS)}"
            )
        updated = replace(
            self.get(lesion_id), verdict=verdict, reason=reason, reviewer=reviewer, updated_at=now
        )
        self.lesions[updated.lesion_id] = updated
        return updated

    # ------------------------------------------------------------------ edits
    def snapshot(self, slice_index: int) -> LesionSnapshot:
        """The state a stroke on ``slice_index`` can be undone to."""
        self._check_slice(slice_index)
        return LesionSnapshot(
            self.series_key,
            int(slice_index),
            self.labels[slice_index].copy(),
            tuple(self.lesions.values()),
            self.next_id,
        )

    def restore(self, snap: LesionSnapshot) -> None:
        self._check_slice(snap.slice_index)
        self.labels[snap.slice_index] = snap.labels
        self.lesions = {r.lesion_id: r for r in snap.lesions}
        self.next_id = snap.next_id
        self.version += 1

    def paint(
        self,
        slice_index: int,
        region: np.ndarray,
        lesion_id: int | None,
        *,
        erase: bool,
        reviewer: str,
        now: str,
    ) -> int:
        """Brush ``region`` (bool (rows, cols)) of ``slice_index`` into ``lesion_id`` (over any
        other lesion there), or, with ``erase``, clear it from ``lesion_id`` (None: from every
        lesion). ``lesion_id`` None with a brush draws a new reader lesion. Returns the lesion
        painted (0 when nothing changed on an erase of every lesion)."""
        self._check_slice(slice_index)
        region = np.asarray(region)
        if region.dtype != bool or region.shape != self.labels.shape[1:]:
            raise ValueError(
                f"`region` should be a bool array of shape {self.labels.shape[1:]}, "
                f"not {region.dtype} {region.shape}"
            )
        if lesion_id is not None:
            self.get(lesion_id)
        plane = self.labels[slice_index]
        if not region.any():
            return 0 if lesion_id is None else int(lesion_id)
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        area = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        if erase:
            hit = region & (plane != 0) if lesion_id is None else region & (plane == lesion_id)
            touched = {int(v) for v in np.unique(plane[hit])}
            plane[hit] = 0
            painted = 0 if lesion_id is None else int(lesion_id)
        else:
            touched = {int(v) for v in np.unique(plane[region])} - {0}
            if lesion_id is None:
                lesion_id = self._new_reader_lesion(reviewer, now)
            plane[region] = lesion_id
            touched.add(int(lesion_id))
            painted = int(lesion_id)
        if touched:
            self.version += 1
        for lid in sorted(touched):
            self._remeasure(lid, slice_index, area, reviewer, now)
        return painted

    def _new_reader_lesion(self, reviewer: str, now: str) -> int:
        lesion_id = self.next_id
        if lesion_id > MAX_LESION_ID:
            raise ValueError(f"a series holds at most {MAX_LESION_ID} lesions")
        self.next_id += 1
        self.lesions[lesion_id] = LesionReview(
            lesion_id=lesion_id,
            series_key=self.series_key,
            label=self.label,
            source=READER,
            verdict=ACCEPTED,
            reviewer=reviewer,
            updated_at=now,
        )
        return lesion_id

    def _check_slice(self, slice_index: int) -> None:
        if not 0 <= int(slice_index) < self.labels.shape[0]:
            raise IndexError(
                f"slice {slice_index} is outside this series' {self.labels.shape[0]} slices"
            )

    def _remeasure(
        self,
        lesion_id: int,
        slice_index: int,
        area: tuple[int, int, int, int],
        reviewer: str,
        now: str,
    ) -> None:
        """Measure ``lesion_id`` again over its old bounding box joined with the stroke's."""
        old = self.lesions[lesion_id]
        s = self.shape[0]
        z0, z1 = slice_index, slice_index + 1
        r0, r1, c0, c1 = area
        if old.box is not None:
            x, y, w, h = old.box
            z0, z1 = min(z0, old.slices[0]), max(z1, old.slices[1] + 1)
            r0, r1, c0, c1 = min(r0, y), max(r1, y + h), min(c0, x), max(c1, x + w)
        z0, z1 = max(0, z0 - 1), min(s, z1 + 1)  # one slice of margin: the slabs stay right
        inside = self.labels[z0:z1, r0:r1, c0:c1] == lesion_id
        fields: dict[str, Any] = {"reviewer": reviewer, "updated_at": now}
        if old.source == MODEL:
            fields["edited"] = True
        if not inside.any():
            del self.lesions[lesion_id]
            return
        fields.update(self._measure(inside, (z0, r0, c0)))
        self.lesions[lesion_id] = replace(old, **fields)

    def _crop_values(
        self, z0: int, z1: int, r0: int, r1: int, c0: int, c1: int
    ) -> np.ndarray | None:
        if self.values is None:
            return None
        planes = []
        for k in range(z0, z1):
            plane = self.values(k)
            if plane is None or np.shape(plane) != self.labels.shape[1:]:
                return None
            planes.append(np.asarray(plane, dtype=np.float32)[r0:r1, c0:c1])
        return np.stack(planes)

    def _measure(self, inside: np.ndarray, origin: tuple[int, int, int]) -> dict[str, Any]:
        """The measurements of one lesion's voxels ``inside`` a crop at ``origin``."""
        z0, r0, c0 = origin
        box_rows = np.flatnonzero(inside.any(axis=(0, 2)))
        box_cols = np.flatnonzero(inside.any(axis=(0, 1)))
        box_slices = np.flatnonzero(inside.any(axis=(1, 2)))
        out = dict(_EMPTY_MEASUREMENTS)
        out["voxels"] = int(inside.sum())
        out["slices"] = (z0 + int(box_slices[0]), z0 + int(box_slices[-1]))
        out["box"] = (
            c0 + int(box_cols[0]),
            r0 + int(box_rows[0]),
            int(box_cols[-1] - box_cols[0] + 1),
            int(box_rows[-1] - box_rows[0] + 1),
        )
        if self.geometry is None:
            return out
        geometry = _crop_geometry(self.geometry, z0, z0 + inside.shape[0])
        values = self._crop_values(
            z0, z0 + inside.shape[0], r0, r0 + inside.shape[1], c0, c0 + inside.shape[2]
        )
        flat = self.shape[0] == 1
        try:
            table = find_lesions(
                inside[0] if flat else inside,
                geometry,
                values=None if values is None else (values[0] if flat else values),
                connectivity=26,
            )
        except DataError:
            return out
        parts = [_shifted(lesion, origin) for lesion in table.lesions]
        out.update(_combined(parts))
        return out


def brush_region(
    shape: tuple[int, int], points: Iterable[tuple[float, float]], diameter: float
) -> np.ndarray:
    """The pixels a round brush of ``diameter`` pixels covers along ``points`` ((x, y) image
    coordinates, pixel (r, c) covering [c, c+1) x [r, r+1)): every pixel whose centre lies
    within ``diameter / 2`` of the path (segments between points included). bool (rows, cols)."""
    rows, cols = shape
    radius = max(float(diameter), 1.0) / 2.0
    region = np.zeros((rows, cols), dtype=bool)
    pts = [(float(x), float(y)) for x, y in points]
    if not pts:
        return region
    stamps = [pts[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        n = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / max(radius / 2.0, 0.5)))
        stamps.extend((x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1))
    for x, y in stamps:
        r0, r1 = max(0, math.floor(y - radius)), min(rows, math.ceil(y + radius) + 1)
        c0, c1 = max(0, math.floor(x - radius)), min(cols, math.ceil(x + radius) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        yy = np.arange(r0, r1)[:, None] + 0.5 - y
        xx = np.arange(c0, c1)[None, :] + 0.5 - x
        region[r0:r1, c0:c1] |= yy * yy + xx * xx <= radius * radius
    return region


def _crop_geometry(geometry: MaskGeometry, z0: int, z1: int) -> MaskGeometry:
    positions = geometry.slice_positions
    images = geometry.image_positions
    return replace(
        geometry,
        slice_positions=None if positions is None else tuple(positions[z0:z1]),
        image_positions=None if images is None else tuple(images[z0:z1]),
    )


def _shifted(lesion: Lesion, origin: tuple[int, int, int]) -> Lesion:
    z0, r0, c0 = origin
    x, y, w, h = lesion.box
    x0, y0, x1, y1 = lesion.diameter_line
    cs, cx, cy = lesion.centroid
    return replace(
        lesion,
        first_slice=lesion.first_slice + z0,
        last_slice=lesion.last_slice + z0,
        diameter_slice=lesion.diameter_slice + z0,
        box=(x + c0, y + r0, w, h),
        diameter_line=(x0 + c0, y0 + r0, x1 + c0, y1 + r0),
        centroid=(cs + z0, cx + c0, cy + r0),
    )


def _combined(parts: list[Lesion]) -> dict[str, Any]:
    """One lesion's measurements from its connected parts (largest first): sizes and values
    summed or pooled, diameters those of the largest part."""
    if not parts:
        return {}
    largest = parts[0]
    out = _measurements(largest)
    if len(parts) == 1:
        return out
    voxels = np.array([p.voxels for p in parts], dtype=np.float64)
    total = float(voxels.sum())
    volumes = [p.volume_mm3 for p in parts]
    out["voxels"] = int(total)
    out["volume_mm3"] = None if any(v is None for v in volumes) else float(sum(volumes))  # type: ignore[arg-type]
    out["slices"] = (min(p.first_slice for p in parts), max(p.last_slice for p in parts))
    x0 = min(p.box[0] for p in parts)
    y0 = min(p.box[1] for p in parts)
    x1 = max(p.box[0] + p.box[2] for p in parts)
    y1 = max(p.box[1] + p.box[3] for p in parts)
    out["box"] = (x0, y0, x1 - x0, y1 - y0)
    centroids = np.array([p.centroid for p in parts], dtype=np.float64)
    out["centroid"] = tuple(float(v) for v in (centroids * voxels[:, None]).sum(0) / total)
    if all(p.mean_value is not None for p in parts):
        means = np.array([p.mean_value for p in parts], dtype=np.float64)
        out["mean_value"] = float((means * voxels).sum() / total)
        out["max_value"] = max(float(p.max_value) for p in parts if p.max_value is not None)
    return out


def lesion_counts(series: Mapping[str, SeriesLesions]) -> dict[str, int]:
    """Lesions per verdict over every series (``pending``, ``accepted``, ``rejected``) and
    how many the reader drew (``reader``)."""
    out = dict.fromkeys((*LESION_VERDICTS, READER), 0)
    for item in series.values():
        for lesion in item.lesions.values():
            out[lesion.verdict] += 1
            out[READER] += lesion.source == READER
    return out


def lesions_from_result(
    result: SeriesResult,
    series_key: str,
    geometry: MaskGeometry | None,
    values: ValueSource | None = None,
) -> SeriesLesions | None:
    """A segmentation run's lesions as pending model lesions (None for a run without a
    mask). ``geometry``: the stack's (``MaskGeometry.from_stack``), for measuring edits."""
    table, mask = result.lesions, result.mask
    if table is None or mask is None:
        return None
    return SeriesLesions.from_table(
        series_key,
        result.series_instance_uid,
        result.labels[0] if result.labels else "lesion",
        table,
        mask,
        geometry,
        model_sha256=result.model.tensor_sha256,
        values=values,
        slice_refs=tuple(
            (s.sop_instance_uid, int(s.frame)) for s in sorted(result.slices, key=lambda s: s.index)
        ),
    )


def _now() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LesionReviewMixin:
    """``ReviewState``'s lesion methods (the API the viewer and the exports read): thin
    wrappers over one :class:`SeriesLesions` per series key in ``lesion_sets``."""

    lesion_sets: dict[str, SeriesLesions]
    reviewer: str
    updated: str

    def lesion_set(self, series_key: str) -> SeriesLesions:
        try:
            return self.lesion_sets[series_key]
        except KeyError:
            raise KeyError(f"series {series_key!r} has no lesions under review") from None

    def lesions_for(self, series_key: str) -> list[LesionReview]:
        """The series' lesions (model lesions by id, then the reader's); [] without any."""
        found = self.lesion_sets.get(series_key)
        return [] if found is None else found.ordered()

    def lesion(self, series_key: str, lesion_id: int) -> LesionReview:
        return self.lesion_set(series_key).get(lesion_id)

    def _who(self, reviewer: str | None) -> str:
        return reviewer if reviewer is not None else self.reviewer

    def _stamp(self) -> str:
        now = _now()
        self.updated = now
        return now

    def accept_lesion(
        self, series_key: str, lesion_id: int, reviewer: str | None = None
    ) -> LesionReview:
        """The lesion is real (a true positive when the model found it)."""
        return self.lesion_set(series_key).set_verdict(
            lesion_id, ACCEPTED, None, self._who(reviewer), self._stamp()
        )

    def reject_lesion(
        self, series_key: str, lesion_id: int, reason: str, reviewer: str | None = None
    ) -> LesionReview:
        """The lesion is not real, for ``reason`` (a false-positive code, e.g. ``fp_artefact``)."""
        if reason not in LESION_REJECT_REASONS:
            raise ValueError(
                f"`reason` {reason!r} should be one of: {', '.join(LESION_REJECT_REASONS)}"
            )
        return self.lesion_set(series_key).set_verdict(
            lesion_id, REJECTED, reason, self._who(reviewer), self._stamp()
        )

    def clear_lesion_verdict(
        self, series_key: str, lesion_id: int, reviewer: str | None = None
    ) -> LesionReview:
        """Back to pending (a reader lesion goes back to accepted: the reader drew it)."""
        series = self.lesion_set(series_key)
        verdict = ACCEPTED if series.get(lesion_id).source == READER else PENDING
        return series.set_verdict(lesion_id, verdict, None, self._who(reviewer), self._stamp())

    def paint_lesion(
        self,
        series_key: str,
        slice_index: int,
        region: np.ndarray,
        lesion_id: int | None,
        erase: bool = False,
        reviewer: str | None = None,
    ) -> int:
        """Brush (or erase) ``region`` (bool (rows, cols)) on ``slice_index``; ``lesion_id``
        None with the brush adds a new reader lesion. Returns the lesion painted; the touched
        lesions are measured again."""
        return self.lesion_set(series_key).paint(
            slice_index,
            region,
            lesion_id,
            erase=erase,
            reviewer=self._who(reviewer),
            now=self._stamp(),
        )

    def lesion_labels(self, series_key: str) -> np.ndarray | None:
        """The edited label volume (uint16 (slices, rows, cols), every lesion); None without a
        segmentation. The live array: read it, never write it (use ``paint_lesion``)."""
        found = self.lesion_sets.get(series_key)
        return None if found is None else found.labels

    def reviewed_labels(self, series_key: str) -> np.ndarray | None:
        """The label volume of the reader's truth: accepted and reader lesions only."""
        found = self.lesion_sets.get(series_key)
        return None if found is None else found.reviewed_labels()

    def lesion_snapshot(self, series_key: str, slice_index: int) -> LesionSnapshot:
        """Before a stroke: what :meth:`restore_lesions` undoes it to."""
        return self.lesion_set(series_key).snapshot(slice_index)

    def restore_lesions(self, snapshot: LesionSnapshot) -> LesionSnapshot:
        """Undo (or redo) a stroke; returns the state it replaced (for the other direction)."""
        series = self.lesion_set(snapshot.series_key)
        current = series.snapshot(snapshot.slice_index)
        series.restore(snapshot)
        self._stamp()
        return current

    def attach_lesion_values(self, series_key: str, values: ValueSource | None) -> None:
        """Where the modality values of the series' slices come from (HU for each lesion's
        mean and maximum after an edit); a review read from disk has none until the viewer
        attaches its volume."""
        found = self.lesion_sets.get(series_key)
        if found is not None:
            found.values = values

    def merge_lesions(self, series_key: str, incoming: SeriesLesions | None) -> None:
        """A fresh run's lesions for ``series_key``. The reader's edits and verdicts stand when
        the same model ran again on a series of the same shape; otherwise the run's replace
        them (None: the run had no segmentation)."""
        old = self.lesion_sets.get(series_key)
        if incoming is None:
            self.lesion_sets.pop(series_key, None)
        elif (
            old is not None
            and old.model_sha256 == incoming.model_sha256
            and old.shape == incoming.shape
        ):
            old.values = incoming.values or old.values
            old.geometry = old.geometry or incoming.geometry
        else:
            self.lesion_sets[series_key] = incoming
        self._stamp()


LESION_REJECT_REASONS: dict[str, str] = {
    "fp_artefact": "False positive – artefact",
    "fp_normal_anatomy": "False positive – normal anatomy",
    "wrong_location": "Wrong location",
    "duplicate": "Duplicate",
    "other": "Other",
}
"""Why a lesion the model outlined is not one (``state.FALSE_POSITIVE_REASONS``' codes)."""


__all__ = [
    "ACCEPTED",
    "LESION_REJECT_REASONS",
    "LESION_VERDICTS",
    "MODEL",
    "PENDING",
    "READER",
    "REJECTED",
    "LesionReview",
    "LesionReviewMixin",
    "LesionSnapshot",
    "SeriesLesions",
    "ValueSource",
    "brush_region",
    "lesion_counts",
    "lesions_from_result",
    "review_from_lesion",
]
