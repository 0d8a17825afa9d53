"""Graphic Data of presentation states and SR SCOORDs: checked point lists and drawable outlines.

Both a GSPS Graphic Object (PS3.3 C.10.5.1.2) and an SR spatial coordinate (SCOORD, PS3.3
C.18.6.1.1) give image-relative points as column\\row pairs with sub-pixel resolution: the
top-left corner of the top-left pixel is 0.0\\0.0 and the bottom-right corner of that pixel is
1.0\\1.0, the same convention as the viewer's image coordinates (x right, y down). The
graphic types say how to read the points:

- POINT: one point; MULTIPOINT (SR only): several unconnected points;
- POLYLINE: connected points, closed when the last equals the first;
- INTERPOLATED (GSPS only): points a smooth curve goes through (drawn through them);
- CIRCLE: the centre, then one point on the circumference;
- ELLIPSE: the two ends of the major axis, then the two ends of the minor axis.

A file can hold anything, so :func:`make_graphic` refuses a wrong point count, drops
non-finite values and caps the number of points; nothing here raises on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

GRAPHIC_TYPES = ("POINT", "MULTIPOINT", "POLYLINE", "INTERPOLATED", "CIRCLE", "ELLIPSE")
MAX_GRAPHIC_POINTS = 20_000
"""Points one graphic may have; a longer Graphic Data is refused (no outline needs more)."""
MAX_COORDINATE = 1.0e6
"""Coordinates further than this from the image (in pixels) are refused as nonsense."""
CURVE_SEGMENTS = 72

Point = tuple[float, float]


@dataclass(frozen=True)
class Graphic:
    """One graphic in image pixel coordinates (x = column, y = row, see the module docstring).

    ``closed``: the outline returns to its start (a closed POLYLINE, a CIRCLE or an ELLIPSE);
    ``filled``: Graphic Filled (0070,0024) is Y.
    """

    kind: str
    points: tuple[Point, ...]
    filled: bool = False

    @property
    def closed(self) -> bool:
        if self.kind in ("CIRCLE", "ELLIPSE"):
            return True
        return (
            self.kind == "POLYLINE" and len(self.points) > 2 and self.points[0] == self.points[-1]
        )

    @property
    def is_points(self) -> bool:
        """Drawn as markers, not as a line (POINT, MULTIPOINT)."""
        return self.kind in ("POINT", "MULTIPOINT")

    def outline(self, segments: int = CURVE_SEGMENTS) -> np.ndarray:
        """The line to draw, (N, 2) as (x, y): the points themselves, or a circle or ellipse
        sampled at ``segments`` points (closed: the first point repeated at the end)."""
        pts = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if self.kind == "CIRCLE":
            centre, edge = pts[0], pts[1]
            radius = float(np.hypot(*(edge - centre)))
            return _ellipse(centre, np.array([radius, 0.0]), np.array([0.0, radius]), segments)
        if self.kind == "ELLIPSE":
            centre = (pts[0] + pts[1]) / 2
            major = (pts[1] - pts[0]) / 2
            minor_len = float(np.hypot(*(pts[3] - pts[2]))) / 2
            major_len = float(np.hypot(*major))
            if major_len > 0:
                minor = np.array([-major[1], major[0]]) / major_len * minor_len
            else:
                minor = (pts[3] - pts[2]) / 2
            return _ellipse(centre, major, minor, segments)
        return pts

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the outline."""
        line = self.outline()
        return (
            float(line[:, 0].min()),
            float(line[:, 1].min()),
            float(line[:, 0].max()),
            float(line[:, 1].max()),
        )


def _ellipse(centre: np.ndarray, a: np.ndarray, b: np.ndarray, segments: int) -> np.ndarray:
    angles = np.linspace(0.0, 2 * math.pi, max(8, segments) + 1)
    return centre + np.outer(np.cos(angles), a) + np.outer(np.sin(angles), b)


_COUNTS = {"POINT": (1, 1), "CIRCLE": (2, 2), "ELLIPSE": (4, 4)}


def make_graphic(kind: object, data: object, filled: bool = False) -> Graphic | None:
    """A :class:`Graphic` from a Graphic Type and Graphic Data (flat column, row, column,
    row, …), or None when the type is unknown, the count is wrong for the type, or a value is
    not a finite number within :data:`MAX_COORDINATE` of the image."""
    name = str(kind or "").strip().upper()
    if name not in GRAPHIC_TYPES:
        return None
    values = _floats(data)
    if values is None or len(values) % 2 or not values:
        return None
    points = tuple(zip(values[0::2], values[1::2], strict=True))
    low, high = _COUNTS.get(name, (2 if name in ("POLYLINE", "INTERPOLATED") else 1, None))
    if len(points) < low or (high is not None and len(points) > high):
        return None
    return Graphic(name, points, bool(filled) and name not in ("POINT", "MULTIPOINT"))


def _floats(data: object) -> list[float] | None:
    if data is None:
        return None
    if isinstance(data, int | float):
        items: Iterable[object] = [data]
    elif isinstance(data, bytes | str):
        return None
    else:
        try:
            items = list(data)  # type: ignore[call-overload]
        except TypeError:
            return None
    out: list[float] = []
    for value in items:
        if len(out) >= 2 * MAX_GRAPHIC_POINTS:
            return None
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return None
        if not math.isfinite(number) or abs(number) > MAX_COORDINATE:
            return None
        out.append(number)
    return out


__all__ = ["GRAPHIC_TYPES", "MAX_GRAPHIC_POINTS", "Graphic", "Point", "make_graphic"]
