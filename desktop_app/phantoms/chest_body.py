"""The chest phantom's body and acquisition (seeded, in body units) and the canvas that maps
body coordinates to pixels; the lung-field geometry that anatomy and findings both use.

Coordinates: one body unit is half the image's shorter side (at zoom 1); x grows to the
image's right (the patient's left on a PA view), y grows downwards (towards the feet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class ChestAnatomy:
    """One patient's body, in body units (see the module docstring). Seeded, then drawn."""

    body_half_width: float
    thorax_half_width: float  # inner margin of the rib cage, for the cardiothoracic ratio
    lung_center_x: float  # distance of each lung's centre from the midline
    lung_center_y: float
    lung_half_width: float
    lung_half_height: float
    mediastinum_half_width: float
    dome_y_right: float  # the patient's right hemidiaphragm (image left), usually higher
    dome_y_left: float
    heart_center_x: float
    heart_center_y: float
    heart_a: float  # semi-axis along the heart's long axis
    heart_b: float
    heart_angle: float  # radians, long axis pointing down and to the image right
    rib_top_y: float
    rib_spacing: float
    lung_strength: float  # how dark the lungs are (air)
    bone_strength: float

    @property
    def heart_half_extents(self) -> tuple[float, float]:
        """Horizontal and vertical half extents of the (rotated elliptical) heart."""
        c, s = math.cos(self.heart_angle), math.sin(self.heart_angle)
        hx = math.sqrt((self.heart_a * c) ** 2 + (self.heart_b * s) ** 2)
        hy = math.sqrt((self.heart_a * s) ** 2 + (self.heart_b * c) ** 2)
        return hx, hy

    @property
    def cardiothoracic_ratio(self) -> float:
        """Heart width over the inner thoracic width (normal below 0.5 on a PA view)."""
        return self.heart_half_extents[0] / self.thorax_half_width

    def with_cardiothoracic_ratio(self, ratio: float) -> ChestAnatomy:
        """The same body with the heart scaled to ``ratio``; its base stays on the diaphragm."""
        hx, _ = self.heart_half_extents
        k = ratio * self.thorax_half_width / hx
        a, b = self.heart_a * k, self.heart_b * math.sqrt(k)
        moved = replace(self, heart_a=a, heart_b=b)
        new_hx, new_hy = moved.heart_half_extents
        # About a third of the heart lies right of the midline; its base sits on the left dome.
        return replace(
            moved,
            heart_center_x=new_hx * 0.34,
            # The lower third of the heart lies below the dome, hidden in the abdomen's density,
            # so its border meets the diaphragm at the cardiophrenic angles.
            heart_center_y=self.dome_y_left + 0.1 - 0.75 * new_hy,
        )


def sample_anatomy(rng: np.random.Generator) -> ChestAnatomy:
    """Draw a plausible adult body with a normal heart (CTR 0.39-0.48)."""
    u = rng.uniform
    scale = u(0.92, 1.06)
    thorax = 0.66 * scale * u(0.96, 1.04)
    lung_hw = 0.30 * scale * u(0.93, 1.07)
    dome_right = u(0.26, 0.36) * scale
    anatomy = ChestAnatomy(
        body_half_width=thorax + u(0.12, 0.22),
        thorax_half_width=thorax,
        lung_center_x=thorax - lung_hw * 1.12,
        lung_center_y=u(-0.14, -0.08) * scale,
        lung_half_width=lung_hw,
        lung_half_height=u(0.58, 0.66) * scale,
        mediastinum_half_width=u(0.1, 0.13),
        dome_y_right=dome_right,
        dome_y_left=dome_right + u(0.02, 0.08),
        heart_center_x=0.1,
        heart_center_y=0.2,
        heart_a=0.27 * scale,
        heart_b=0.19 * scale * u(0.9, 1.1),
        heart_angle=math.radians(u(20.0, 38.0)),
        rib_top_y=u(-0.84, -0.76) * scale,
        rib_spacing=u(0.112, 0.128) * scale,
        lung_strength=u(0.6, 0.72),
        bone_strength=u(0.85, 1.15),
    )
    return anatomy.with_cardiothoracic_ratio(u(0.39, 0.48))


@dataclass(frozen=True)
class Acquisition:
    """How the picture was taken: positioning, exposure and noise. Seeded separately from
    the body so that one patient can have several images."""

    rotation_deg: float
    shift_x: float
    shift_y: float
    zoom: float
    low: float  # 12-bit value of no attenuation
    high: float  # 12-bit value of the reference attenuation
    gamma: float
    noise: float  # 12-bit standard deviation at mid grey
    texture: float  # amplitude of fine lung texture


def sample_acquisition(rng: np.random.Generator) -> Acquisition:
    u = rng.uniform
    return Acquisition(
        rotation_deg=u(-4.0, 4.0),
        shift_x=u(-0.04, 0.04),
        shift_y=u(-0.03, 0.05),
        zoom=u(0.95, 1.05),
        low=u(80.0, 420.0),
        high=u(3150.0, 3950.0),
        gamma=u(0.8, 1.25),
        noise=u(10.0, 28.0),
        texture=u(0.6, 1.4),
    )


def smoothstep(v: np.ndarray | float, width: float) -> Any:
    """0 below -width/2, 1 above +width/2, a smooth S in between (soft, anti-aliased edges)."""
    t = np.asarray(v, dtype=np.float32) * np.float32(1.0 / width) + np.float32(0.5)
    np.clip(t, 0.0, 1.0, out=t)
    out = np.float32(3.0) - np.float32(2.0) * t
    out *= t
    out *= t
    return out


class ChestCanvas:
    """The pixel grid in body coordinates plus the layers drawn so far.

    Renderers read ``X``/``Y`` (through :meth:`window` for speed), the anatomy and the
    named layers (``lung_right``, ``lung_left`` — the air deficit of each lung — and
    ``heart``), and return float32 attenuation maps.
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        anatomy: ChestAnatomy,
        acq: Acquisition,
        pixel_spacing_mm: float,
    ) -> None:
        self.rows, self.cols = rows, cols
        self.pixel_spacing_mm = pixel_spacing_mm
        self.finding_info: dict[str, dict[str, Any]] = {}
        self.anatomy = anatomy
        self.acquisition = acq
        self.scale = min(rows, cols) / 2.0 * acq.zoom  # pixels per body unit
        self.unit_per_px = 1.0 / self.scale
        self.edge = max(1.3 * self.unit_per_px, 0.004)
        theta = math.radians(acq.rotation_deg)
        self._cos, self._sin = math.cos(theta), math.sin(theta)
        xj = (np.arange(cols, dtype=np.float32) + 0.5 - cols / 2.0) / np.float32(self.scale)
        yi = (np.arange(rows, dtype=np.float32) + 0.5 - rows / 2.0) / np.float32(self.scale)
        c, s = np.float32(self._cos), np.float32(self._sin)
        self.X: FloatArray = (c * xj[None, :] + s * yi[:, None]) - np.float32(acq.shift_x)
        self.Y: FloatArray = (-s * xj[None, :] + c * yi[:, None]) - np.float32(acq.shift_y)
        self.layers: dict[str, FloatArray] = {}

    def zeros(self) -> FloatArray:
        return np.zeros((self.rows, self.cols), dtype=np.float32)

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Body coordinates to (column, row) pixel coordinates."""
        bx, by = x + self.acquisition.shift_x, y + self.acquisition.shift_y
        xj = self._cos * bx - self._sin * by
        yi = self._sin * bx + self._cos * by
        return xj * self.scale + self.cols / 2.0 - 0.5, yi * self.scale + self.rows / 2.0 - 0.5

    def window(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
        """Pixel slices covering the body-coordinate rectangle (None when off the image)."""
        corners = [self.to_pixel(x, y) for x in (x0, x1) for y in (y0, y1)]
        cs = [p[0] for p in corners]
        rs = [p[1] for p in corners]
        c0, c1 = max(0, math.floor(min(cs)) - 1), min(self.cols, math.ceil(max(cs)) + 2)
        r0, r1 = max(0, math.floor(min(rs)) - 1), min(self.rows, math.ceil(max(rs)) + 2)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)


def lung_field(
    a: ChestAnatomy, side: int, x: np.ndarray | float, y: np.ndarray | float, edge: float
) -> Any:
    """Membership (0..1) of points in one lung field; ``side`` -1 is the image left.

    The field is an egg-shaped ellipse (wider at the base) cut medially by the mediastinum
    and below by the diaphragm dome, which leaves the costophrenic angle laterally.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    sx = x * np.float32(side)
    dy = (y - np.float32(a.lung_center_y)) / np.float32(a.lung_half_height)
    widen = np.float32(1.0) + np.float32(0.16) * np.clip(dy, -1.0, 1.0)
    dx = (sx - np.float32(a.lung_center_x)) / (np.float32(a.lung_half_width) * widen)
    # Rounded apex, but a steep lateral wall below the hilum down to a sharp costophrenic angle.
    dy2 = dy * dy
    e = dx * dx + np.where(dy < 0, dy2, dy2 * dy2 * dy2)
    dome_y = a.dome_y_right if side < 0 else a.dome_y_left
    dome_x = a.lung_center_x * 0.75
    lateral = a.lung_center_x + a.lung_half_width * 1.16
    k = 0.13 / max(lateral - dome_x, 1e-3) ** 2
    diaphragm = np.float32(dome_y) + np.float32(k) * (sx - np.float32(dome_x)) ** 2
    medial = np.float32(a.mediastinum_half_width)
    if side > 0:  # the aortic knob bulges into the left lung's upper medial border
        medial = medial + np.float32(0.055) * np.exp(-(((y + np.float32(0.33)) / 0.07) ** 2))
    membership = (
        smoothstep((1.0 - e) * a.lung_half_width, edge)
        * smoothstep(diaphragm - y, edge)
        * smoothstep(sx - medial, edge * 2.0)
    )
    return membership, e


def lung_window(cv: ChestCanvas, side: int) -> tuple[slice, slice] | None:
    """Pixel slices that hold one lung field (with a margin)."""
    a = cv.anatomy
    inner, outer = a.mediastinum_half_width - 0.02, a.thorax_half_width + 0.08
    x0, x1 = (-outer, -inner) if side < 0 else (inner, outer)
    top = a.lung_center_y - a.lung_half_height - 0.05
    bottom = max(a.dome_y_left, a.dome_y_right) + 0.25
    return cv.window(x0, x1, top, bottom)
