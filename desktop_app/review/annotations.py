"""Reader annotations (ROIs with statistics, angles, arrows with text, key-image flags): the
dataclasses, their JSON, the measurements over a slice's modality values, and an undo history
(Qt-free).

Coordinates are original-image pixels, pixel (r, c) covering [c, c+1) x [r, r+1) (the SCOORD
convention of PS3.3 C.18.6.1.2), so exports write them as they are. Each annotation names its
image by SOP Instance UID and frame (the stack's order may change; ``slice_index`` is the
position it was drawn at, a fallback for images without a UID).

Statistics are computed over the modality values (the Modality LUT applied: HU on CT, PS3.3
C.11.1) of the pixels whose centres lie inside the ellipse or the rectangle; the area is the
shape's geometric area in mm² from Pixel Spacing (PS3.3 10.7.1.3, row then column spacing),
else in px². They are stored with the annotation, so exports report what the reader saw
without decoding pixels again. Angles are measured in mm space when the spacing is known
(anisotropic pixels would otherwise distort them).

The review file (``state``, schema 3) holds the list; ``History`` keeps snapshots of it for
undo and redo (annotations are frozen, so a snapshot is a tuple of references).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

ELLIPSE = "ellipse"
RECTANGLE = "rectangle"
ANGLE = "angle"
ARROW = "arrow"
KEY_IMAGE = "key_image"
KINDS = (ELLIPSE, RECTANGLE, ANGLE, ARROW, KEY_IMAGE)
ROI_KINDS = (ELLIPSE, RECTANGLE)
POINTS_PER_KIND = {ELLIPSE: 2, RECTANGLE: 2, ANGLE: 3, ARROW: 2, KEY_IMAGE: 0}
"""Ellipse and rectangle: two opposite corners of the (axis-aligned) bounding box; angle: one
arm's end, the vertex, the other arm's end; arrow: the tip (the point shown), then the tail
(where the text sits); a key-image flag has none."""

MAX_TEXT_CHARS = 1_000
MIN_ROI_SIDE = 1.0  # px: a smaller ROI is a click, not a drawing

Point = tuple[float, float]


@dataclass(frozen=True)
class RoiStats:
    """An ROI's measurements: ``area`` in ``area_unit`` ("mm2" or "px2"); ``pixels``: how many
    pixel centres are inside; ``mean``/``sd``/``minimum``/``maximum`` of their modality values
    in ``value_unit`` ("HU" on CT, "" otherwise; all None for colour images or an ROI with no
    pixel inside). ``sd`` is the population standard deviation (ddof 0)."""

    area: float
    area_unit: str
    pixels: int
    mean: float | None = None
    sd: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    value_unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "area_unit": self.area_unit,
            "pixels": self.pixels,
            "mean": self.mean,
            "sd": self.sd,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "value_unit": self.value_unit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoiStats:
        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else _finite(value, key)

        unit = str(data.get("area_unit", "px2"))
        if unit not in ("mm2", "px2"):
            raise ValueError(f"`area_unit` {unit!r} should be mm2 or px2")
        return cls(
            area=_finite(data["area"], "area"),
            area_unit=unit,
            pixels=int(data.get("pixels", 0)),
            mean=opt("mean"),
            sd=opt("sd"),
            minimum=opt("minimum"),
            maximum=opt("maximum"),
            value_unit=str(data.get("value_unit", "")),
        )

    def lines(self) -> list[str]:
        """The label under an ROI: area, then mean ± SD, then min/max."""
        out = [f"Area {format_area(self.area, self.area_unit)}"]
        if self.mean is not None and self.sd is not None:
            out.append(f"Mean {_value(self.mean, self.value_unit)}  SD {self.sd:.1f}")
        if self.minimum is not None and self.maximum is not None:
            out.append(
                f"Min {_value(self.minimum, self.value_unit)}  "
                f"Max {_value(self.maximum, self.value_unit)}"
            )
        return out


@dataclass(frozen=True)
class Annotation:
    """One reader annotation on one image of a stack (``series_key`` as the review's)."""

    id: str
    kind: str
    series_key: str
    series_uid: str
    sop_instance_uid: str
    frame: int
    slice_index: int
    points: tuple[Point, ...] = ()
    text: str = ""
    stats: RoiStats | None = None
    angle: float | None = None  # degrees, for an angle
    reviewer: str = ""
    created: str | None = None
    updated: str | None = None

    @property
    def is_roi(self) -> bool:
        return self.kind in ROI_KINDS

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the points (an ROI's box, sorted)."""
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return (min(xs), min(ys), max(xs), max(ys))

    def on_image(self, sop_instance_uid: str, frame: int, slice_index: int) -> bool:
        """Whether this annotation belongs on that image: by SOP Instance UID and frame, or by
        position when it was drawn on an image without a UID."""
        if self.sop_instance_uid:
            return self.sop_instance_uid == sop_instance_uid and self.frame == frame
        return self.slice_index == slice_index

    def label_lines(self) -> list[str]:
        """What is written beside it on the image (and in the PDF's table)."""
        lines: list[str] = []
        if self.stats is not None:
            lines += self.stats.lines()
        if self.kind == ANGLE and self.angle is not None:
            lines.append(f"{self.angle:.1f}°")
        if self.text:
            lines.insert(0, self.text)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "series_key": self.series_key,
            "series_uid": self.series_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "slice_index": self.slice_index,
            "points": [[float(x), float(y)] for x, y in self.points],
            "text": self.text,
            "stats": self.stats.to_dict() if self.stats is not None else None,
            "angle": self.angle,
            "reviewer": self.reviewer,
            "created": self.created,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Annotation:
        """Parse one annotation of a review file; raises ValueError (or KeyError/TypeError)."""
        kind = str(data["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown annotation kind {kind!r} (want one of {', '.join(KINDS)})")
        points = check_points(kind, data.get("points", []))
        stats = data.get("stats")
        angle = data.get("angle")
        return cls(
            id=str(data["id"]),
            kind=kind,
            series_key=str(data.get("series_key", "")),
            series_uid=str(data.get("series_uid", "")),
            sop_instance_uid=str(data.get("sop_instance_uid", "")),
            frame=int(data.get("frame", 0)),
            slice_index=int(data.get("slice_index", 0)),
            points=points,
            text=str(data.get("text", ""))[:MAX_TEXT_CHARS],
            stats=RoiStats.from_dict(stats) if isinstance(stats, dict) else None,
            angle=_finite(angle, "angle") if angle is not None else None,
            reviewer=str(data.get("reviewer", "")),
            created=data.get("created"),
            updated=data.get("updated"),
        )


def _finite(value: Any, name: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"`{name}` {value!r} should be a finite number")
    return number


def _value(value: float, unit: str) -> str:
    return f"{value:.1f} {unit}" if unit else f"{value:.1f}"


def format_area(area: float, unit: str) -> str:
    """``123.4 mm²``, ``1.23 cm²`` from 1000 mm², ``56 px²``."""
    if unit == "mm2":
        return f"{area / 100:.2f} cm²" if area >= 1000 else f"{area:.1f} mm²"
    return f"{area:.0f} px²"


def new_id() -> str:
    return uuid.uuid4().hex


def check_points(kind: str, points: Iterable[Iterable[float]]) -> tuple[Point, ...]:
    """The points of a ``kind`` annotation as (x, y) floats; ValueError when their number is
    wrong, one is not finite, or an ROI has no extent."""
    out: list[Point] = []
    for p in points:
        xy = tuple(float(v) for v in p)
        if len(xy) != 2 or not all(math.isfinite(v) for v in xy):
            raise ValueError(f"an annotation point {xy} should be two finite numbers (x, y)")
        out.append((xy[0], xy[1]))
    want = POINTS_PER_KIND[kind]
    if len(out) != want:
        raise ValueError(f"a {kind} annotation has {want} point(s), not {len(out)}")
    if kind in ROI_KINDS:
        (x0, y0), (x1, y1) = out
        if abs(x1 - x0) < MIN_ROI_SIDE or abs(y1 - y0) < MIN_ROI_SIDE:
            raise ValueError(
                f"a {kind} ROI should be at least {MIN_ROI_SIDE:g} px wide and high, not "
                f"{abs(x1 - x0):.2f} x {abs(y1 - y0):.2f}"
            )
    return tuple(out)


def check_text(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"an annotation's text is at most {MAX_TEXT_CHARS} characters")
    return text.strip()


# ---------------------------------------------------------------------- measurements
def roi_mask(
    kind: str, points: Sequence[Point], shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The pixels of an ``shape`` (rows, cols) image whose centres lie inside the ROI: a
    boolean mask over the ROI's bounding window of the image, and that window (row and column
    slices). Pixels outside the image are not counted."""
    if kind not in ROI_KINDS:
        raise ValueError(f"`kind` {kind!r} is not an ROI (want {' or '.join(ROI_KINDS)})")
    (ax, ay), (bx, by) = points
    x0, x1 = sorted((ax, bx))
    y0, y1 = sorted((ay, by))
    rows, cols = shape
    c0, c1 = max(math.floor(x0 - 0.5), 0), min(math.ceil(x1 - 0.5) + 1, cols)
    r0, r1 = max(math.floor(y0 - 0.5), 0), min(math.ceil(y1 - 0.5) + 1, rows)
    window = (slice(r0, max(r0, r1)), slice(c0, max(c0, c1)))
    yc = np.arange(r0, max(r0, r1), dtype=np.float64)[:, None] + 0.5
    xc = np.arange(c0, max(c0, c1), dtype=np.float64)[None, :] + 0.5
    if kind == RECTANGLE:
        mask = (xc >= x0) & (xc < x1) & (yc >= y0) & (yc < y1)
    else:
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        mask = ((xc - cx) / rx) ** 2 + ((yc - cy) / ry) ** 2 <= 1.0
    return np.asarray(mask, dtype=bool), window


def roi_area(kind: str, points: Sequence[Point], spacing: tuple[float, float] | None) -> float:
    """The geometric area: π·a·b for an ellipse, w·h for a rectangle, in mm² when
    ``spacing`` (row, column mm) is given, else in px²."""
    (ax, ay), (bx, by) = points
    w, h = abs(bx - ax), abs(by - ay)
    if spacing is not None:
        w, h = w * spacing[1], h * spacing[0]
    return math.pi * w * h / 4 if kind == ELLIPSE else w * h


def roi_stats(
    kind: str,
    points: Sequence[Point],
    values: np.ndarray,
    spacing: tuple[float, float] | None,
    modality: str = "",
) -> RoiStats:
    """Area and the statistics of ``values`` (the slice's modality values, rows x cols; a
    colour image, rows x cols x 3, gets the area only) inside the ROI."""
    checked = check_points(kind, points)
    area = roi_area(kind, checked, spacing)
    unit = "mm2" if spacing is not None else "px2"
    mask, window = roi_mask(kind, checked, (int(values.shape[0]), int(values.shape[1])))
    count = int(mask.sum())
    if values.ndim != 2 or count == 0:
        return RoiStats(area, unit, count)
    inside = np.asarray(values[window], dtype=np.float64)[mask]
    return RoiStats(
        area=area,
        area_unit=unit,
        pixels=count,
        mean=float(inside.mean()),
        sd=float(inside.std()),
        minimum=float(inside.min()),
        maximum=float(inside.max()),
        value_unit="HU" if modality.upper() == "CT" else "",
    )


def angle_degrees(points: Sequence[Point], spacing: tuple[float, float] | None = None) -> float:
    """The angle at ``points[1]`` between the arms to ``points[0]`` and ``points[2]``, 0–180°,
    in mm space when ``spacing`` (row, column mm) is given."""
    sy, sx = spacing if spacing is not None else (1.0, 1.0)
    (ax, ay), (vx, vy), (bx, by) = points
    u = ((ax - vx) * sx, (ay - vy) * sy)
    v = ((bx - vx) * sx, (by - vy) * sy)
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return 0.0
    cos = (u[0] * v[0] + u[1] * v[1]) / (nu * nv)
    return math.degrees(math.acos(min(max(cos, -1.0), 1.0)))


def measured(
    annotation: Annotation,
    values: np.ndarray | None,
    spacing: tuple[float, float] | None,
    modality: str = "",
) -> Annotation:
    """``annotation`` with its measurements recomputed from its points (after a draw, move or
    edit): ROI statistics over ``values``, or the angle."""
    if annotation.is_roi and values is not None:
        stats = roi_stats(annotation.kind, annotation.points, values, spacing, modality)
        return replace(annotation, stats=stats)
    if annotation.kind == ANGLE:
        return replace(annotation, angle=angle_degrees(annotation.points, spacing))
    return annotation


def moved(annotation: Annotation, dx: float, dy: float) -> Annotation:
    """The annotation shifted by (dx, dy) pixels (measurements not yet recomputed)."""
    return replace(annotation, points=tuple((x + dx, y + dy) for x, y in annotation.points))


def with_point(annotation: Annotation, index: int, point: Point) -> Annotation:
    """The annotation with point ``index`` moved to ``point`` (a handle dragged)."""
    points = list(annotation.points)
    points[index] = (float(point[0]), float(point[1]))
    return replace(annotation, points=tuple(points))


def ellipse_axes(points: Sequence[Point]) -> tuple[Point, Point, Point, Point]:
    """The four SCOORD ELLIPSE points of an axis-aligned ellipse in its box: the major axis's
    ends, then the minor axis's (PS3.3 C.18.6.1.2)."""
    (ax, ay), (bx, by) = points
    x0, x1 = sorted((ax, bx))
    y0, y1 = sorted((ay, by))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    horizontal = ((x0, cy), (x1, cy))
    vertical = ((cx, y0), (cx, y1))
    if x1 - x0 >= y1 - y0:
        return (*horizontal, *vertical)
    return (*vertical, *horizontal)


def rectangle_polyline(points: Sequence[Point]) -> tuple[Point, ...]:
    """The rectangle as a closed SCOORD POLYLINE: four corners and the first again."""
    (ax, ay), (bx, by) = points
    x0, x1 = sorted((ax, bx))
    y0, y1 = sorted((ay, by))
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))


# ---------------------------------------------------------------------- undo
class History:
    """Undo and redo over snapshots of a review's annotation list (at most ``limit`` steps)."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._undo: list[tuple[Annotation, ...]] = []
        self._redo: list[tuple[Annotation, ...]] = []

    def record(self, before: Sequence[Annotation]) -> None:
        """Call before a change with the list as it was; a new change drops the redo steps."""
        self._undo.append(tuple(before))
        del self._undo[: max(0, len(self._undo) - self.limit)]
        self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self, current: Sequence[Annotation]) -> list[Annotation] | None:
        """The list before the last change (None: nothing to undo)."""
        if not self._undo:
            return None
        self._redo.append(tuple(current))
        return list(self._undo.pop())

    def redo(self, current: Sequence[Annotation]) -> list[Annotation] | None:
        if not self._redo:
            return None
        self._undo.append(tuple(current))
        return list(self._redo.pop())
