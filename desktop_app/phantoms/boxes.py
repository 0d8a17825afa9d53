"""Ground-truth boxes in pixels, shared by the chest and CT phantoms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: top-left corner ``(x, y)`` (column, row) and size."""

    x: int
    y: int
    width: int
    height: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices that cut the box out of an image array."""
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


def box_of(region: np.ndarray, fraction: float = 0.1) -> Box | None:
    """The bounding box of the pixels where ``region`` exceeds ``fraction`` of its maximum."""
    peak = float(region.max()) if region.size else 0.0
    if peak <= 0.0:
        return None
    mask = region > peak * fraction
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(
        int(cols[0]),
        int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
    )
