"""Viewer arithmetic with no Qt: window/level dragging, distances in mm, pixel readouts.

The GUI feeds mouse deltas and image coordinates in and shows what comes out, so the rules
are testable without a screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from desktop_app.dicom.voi import Window


@dataclass(frozen=True)
class ValueRange:
    """The span of the values being windowed; drag sensitivity scales with it."""

    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray) -> ValueRange:
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if finite.size == 0:
            return cls(0.0, 1.0)
        return cls(float(finite.min()), float(finite.max()))

    @property
    def span(self) -> float:
        return max(self.high - self.low, 1.0)


def drag_window(window: Window, dx: float, dy: float, value_range: ValueRange) -> Window:
    """Right-drag window/level, as in most PACS viewers.

    Horizontal motion changes the width (right = wider), vertical motion the level
    (down = higher level, so the image darkens). One screen pixel moves about 1/500 of the
    value range, so a 12-bit radiograph and a CT in HU feel the same. The width never drops
    below 1 (PS3.3 C.11.2.1.2.1 requires Window Width >= 1 for LINEAR).
    """
    step = value_range.span / 500.0
    width = max(window.width + dx * step, 1.0)
    center = window.center + dy * step
    return Window(center=center, width=width, function=window.function, explanation="manual")


def distance_mm(
    start: tuple[float, float],
    end: tuple[float, float],
    pixel_spacing: tuple[float, float] | None,
) -> tuple[float, str]:
    """Length of a ruler from (x, y) image coordinates.

    Pixel Spacing is (row spacing, column spacing) in mm (PS3.3 C.7.6.2.1.1): the row
    spacing scales y, the column spacing scales x. Without spacing the length is in pixels.
    Returns (value, unit) with unit "mm" or "px".
    """
    dx = end[0] - start[0]
    dy = end[1] - start[1]
    if pixel_spacing is None:
        return math.hypot(dx, dy), "px"
    row_mm, col_mm = pixel_spacing
    return math.hypot(dx * col_mm, dy * row_mm), "mm"


def format_distance(value: float, unit: str) -> str:
    if unit == "mm" and value >= 100:
        return f"{value / 10:.1f} cm"
    return f"{value:.1f} {unit}"


def pixel_readout(
    values: np.ndarray, x: float, y: float, *, modality: str = "", is_color: bool = False
) -> str | None:
    """The text for the cursor readout at image coordinates (x, y), or None off the image.

    On CT the modality-LUT output is in Hounsfield units (PS3.3 C.8.2.1.1.5 Rescale Type HU).
    """
    col, row = math.floor(x), math.floor(y)
    if row < 0 or col < 0 or row >= values.shape[0] or col >= values.shape[1]:
        return None
    where = f"x {col}  y {row}"
    if is_color or values.ndim == 3:
        r, g, b = (int(v) for v in values[row, col][:3])
        return f"{where}   RGB {r},{g},{b}"
    value = float(values[row, col])
    if modality.upper() == "CT":
        return f"{where}   {value:.0f} HU"
    text = f"{value:.0f}" if abs(value - round(value)) < 1e-6 else f"{value:.3g}"
    return f"{where}   value {text}"
