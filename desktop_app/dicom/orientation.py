"""Orientation letters for an image's edges, and how rotating and flipping the view move them.

Patient directions (PS3.3 C.7.6.1.1.1, C.7.6.2.1.1): the patient coordinate system is LPS,
so +x points to the patient's Left, +y to Posterior and +z to Head; the opposite letters are
R, A and F. An image's row direction (its +x, toward the right of the stored image) and
column direction (its +y, downward) come from Image Orientation (Patient) (0020,0037) as
direction cosines, or for a projection radiograph from Patient Orientation (0020,0020), whose
two values name them in letters ("L\\F": rows run toward the patient's left, columns toward
the feet; PS3.3 C.7.6.1.1.1 allows combinations such as "LF" for oblique directions).

A direction gets up to three letters, the largest component first; components under
``OBLIQUE_THRESHOLD`` are left out, so a stack tilted by a few degrees still reads "L", and a
45-degree in-plane rotation reads "LA" or "RP".

The view (:class:`ViewTransform`) is an element of the square's symmetry group, an integer
2x2 matrix from image axes to screen axes (x right, y down). Rotating and flipping act on the
screen: ``flipped_h`` mirrors left-right on screen whatever the rotation, and ``rotated(90)``
turns what is on screen clockwise. The letters on each screen edge follow from the matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from desktop_app.infra.errors import DataError

OBLIQUE_THRESHOLD = 0.25
"""A direction component smaller than this (about 14.5 degrees off the plane) gets no letter."""

MAX_LETTERS = 3

# +x, +y, +z of the patient coordinate system (LPS) and their opposites.
_POSITIVE = ("L", "P", "H")
_NEGATIVE = ("R", "A", "F")
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
_ALIASES = {"S": "H", "I": "F"}  # superior / inferior, as some devices write them
EDGES = ("top", "right", "bottom", "left")


def direction_letters(vector: Sequence[float], threshold: float = OBLIQUE_THRESHOLD) -> str:
    """Letters for a direction in patient coordinates: ``(1, 0, 0)`` -> "L",
    ``(0.7, -0.7, 0)`` -> "LA" (ties keep x, y, z order), ``(0, 0, 0)`` -> ""."""
    if len(vector) != 3:
        raise DataError(f"a direction needs 3 components, got {len(vector)}: {tuple(vector)}")
    values = [float(v) for v in vector]
    if not all(math.isfinite(v) for v in values):
        return ""
    norm = math.sqrt(sum(v * v for v in values))
    if norm < 1e-9:
        return ""
    unit = [v / norm for v in values]
    order = sorted(range(3), key=lambda k: -abs(unit[k]))
    letters = [
        (_POSITIVE if unit[k] > 0 else _NEGATIVE)[k] for k in order if abs(unit[k]) >= threshold
    ]
    return "".join(letters[:MAX_LETTERS])


def opposite(letters: str) -> str:
    """The opposite direction's letters: "LA" -> "RP" ("" stays "")."""
    return "".join(_OPPOSITE.get(c, "") for c in letters)


def patient_orientation_letters(values: Sequence[str]) -> tuple[str, str] | None:
    """(row, column) directions from Patient Orientation (0020,0020), normalised to
    R/L/A/P/H/F (S and I read as H and F); None unless there are two valid values."""
    if len(values) != 2:
        return None
    out = []
    for value in values:
        text = "".join(_ALIASES.get(c, c) for c in str(value).strip().upper())
        if not text or any(c not in _OPPOSITE for c in text):
            return None
        out.append(text[:MAX_LETTERS])
    return out[0], out[1]


def image_axes_letters(orientation: Sequence[float]) -> tuple[str, str]:
    """(row, column) letters from Image Orientation (Patient)'s six direction cosines."""
    if len(orientation) != 6:
        raise DataError(
            f"Image Orientation (Patient) needs 6 values, got {len(orientation)}: "
            f"{tuple(orientation)}"
        )
    return direction_letters(orientation[:3]), direction_letters(orientation[3:])


@dataclass(frozen=True)
class ViewTransform:
    """Image axes -> screen axes, as ``screen = M @ image`` with ``M = ((a, b), (c, d))``;
    entries are 0 or +-1. The identity shows the image as stored."""

    a: int = 1
    b: int = 0
    c: int = 0
    d: int = 1

    def _times(self, a: int, b: int, c: int, d: int) -> ViewTransform:
        """``N @ self``: the screen operation N applied after this view."""
        return ViewTransform(
            a * self.a + b * self.c,
            a * self.b + b * self.d,
            c * self.a + d * self.c,
            c * self.b + d * self.d,
        )

    def rotated(self, degrees: int) -> ViewTransform:
        """Turn what is on screen clockwise by ``degrees`` (a multiple of 90)."""
        if degrees % 90:
            raise DataError(f"the view turns in steps of 90 degrees, not {degrees}")
        out = self
        for _ in range((degrees // 90) % 4):
            out = out._times(0, -1, 1, 0)  # screen right -> down (y points down)
        return out

    def flipped_h(self) -> ViewTransform:
        """Mirror left-right on screen."""
        return self._times(-1, 0, 0, 1)

    def flipped_v(self) -> ViewTransform:
        """Mirror up-down on screen."""
        return self._times(1, 0, 0, -1)

    @property
    def mirrored(self) -> bool:
        """Whether the view shows the image mirrored (an odd number of flips)."""
        return self.a * self.d - self.b * self.c < 0

    @property
    def swaps_axes(self) -> bool:
        """Whether image rows run up-down on screen (a quarter turn)."""
        return self.a == 0

    @property
    def rotation(self) -> int:
        """Degrees clockwise (0, 90, 180, 270) of the rotation R in ``M = F @ R``, where F is
        a left-right mirror when the view is mirrored and the identity otherwise."""
        m = self.flipped_h() if self.mirrored else self
        # R(theta) maps image +x to screen (cos, sin) with y down: clockwise on screen.
        return {(1, 0): 0, (0, 1): 90, (-1, 0): 180, (0, -1): 270}[(m.a, m.c)]

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        return self.a * x + self.b * y, self.c * x + self.d * y

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        """The inverse (M is orthogonal, so its transpose)."""
        return self.a * x + self.c * y, self.b * x + self.d * y

    def edge_letters(self, row: str, column: str) -> dict[str, str]:
        """The letters at each screen edge ("top", "right", "bottom", "left") for an image
        whose +x points ``row`` and +y points ``column`` (letters; "" where unknown)."""
        image_dirs = {
            (1, 0): row,
            (-1, 0): opposite(row),
            (0, 1): column,
            (0, -1): opposite(column),
        }
        screen_dirs = {"top": (0, -1), "right": (1, 0), "bottom": (0, 1), "left": (-1, 0)}
        out: dict[str, str] = {}
        for edge, (sx, sy) in screen_dirs.items():
            ix, iy = self.to_image(sx, sy)
            out[edge] = image_dirs[(round(ix), round(iy))]
        return out
