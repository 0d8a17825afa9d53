"""Seeded frontal (PA) chest-radiograph phantoms with optional findings and their boxes.

``make_chest_xr(seed)`` returns ``(image, annotations)`` the way MONAI's
``create_test_image_2d`` does: the same seed always gives the same pixels. The image is a
12-bit ``uint16`` array in MONOCHROME2 sense (bright = more attenuation, PS3.3 C.7.6.3.1.2),
built from analytic shapes in normalised body coordinates: body outline and soft tissue, two
lungs, heart and mediastinum, trachea, spine, posterior and anterior ribs, clavicles,
diaphragm domes, pulmonary vessels, smooth exposure variation and signal-dependent noise.

Findings are drawn by renderers kept in a registry by name (:func:`register_finding`), so a
new finding is one function. Built in: ``nodule``, ``effusion``, ``cardiomegaly`` (the demo
labels) and ``consolidation``, ``pneumothorax`` (spares for held-out-style experiments).
Each finding comes with a ground-truth box in pixels.

Coordinates: one body unit is half the image's shorter side (at zoom 1); x grows to the
image's right (the patient's left on a PA view), y grows downwards (towards the feet).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from desktop_app.infra.errors import ConfigError

log = logging.getLogger(__name__)

MAX_12BIT = 4095
DEFAULT_SIZE = 512
DEFAULT_FOV_MM = 430.0  # a 17-inch detector; at 2560 px this is 0.168 mm per pixel
DEMO_FINDINGS: tuple[str, ...] = ("nodule", "effusion", "cardiomegaly")

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


# ----------------------------------------------------------------------------- seeds and boxes


def derive_rng(seed: int, *purpose: str | int) -> np.random.Generator:
    """A random generator for one named purpose of one seed.

    Each purpose (anatomy, acquisition, noise, each finding) draws from its own stream, so
    adding a finding or drawing more numbers for one part never shifts another part.
    """
    if not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise ConfigError(f"seed {seed!r} must be a non-negative integer")
    value = int(seed)
    words = [value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF]
    for part in purpose:
        digest = hashlib.sha256(str(part).encode("utf-8")).digest()
        words.append(int.from_bytes(digest[:4], "little"))
    return np.random.default_rng(np.random.SeedSequence(words))


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


# ------------------------------------------------------------------------------------ anatomy


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


# ------------------------------------------------------------------------------------- canvas


def _smoothstep(v: np.ndarray | float, width: float) -> Any:
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


# ---------------------------------------------------------------------------- anatomy drawing


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
        _smoothstep((1.0 - e) * a.lung_half_width, edge)
        * _smoothstep(diaphragm - y, edge)
        * _smoothstep(sx - medial, edge * 2.0)
    )
    return membership, e


def _draw_body(cv: ChestCanvas) -> FloatArray:
    a = cv.anatomy
    X, Y = cv.X, cv.Y
    # Neck widening into shoulders at the top; the torso below.
    neck = np.float32(0.27)
    shoulders = _smoothstep(Y + np.float32(0.92), 0.16)
    # Shoulders and upper arms make the top of the torso wider than the waist.
    taper = np.float32(0.1) * np.clip(np.float32(0.2) - Y, 0.0, 1.0)
    half = neck + (np.float32(a.body_half_width) + taper - neck) * shoulders
    body = np.sqrt(np.clip(1.0 - (X / half) ** 2, 0.0, 1.0))
    body *= _smoothstep(half - np.abs(X), cv.edge * 3.0)
    return body.astype(np.float32)


def lung_window(cv: ChestCanvas, side: int) -> tuple[slice, slice] | None:
    """Pixel slices that hold one lung field (with a margin)."""
    a = cv.anatomy
    inner, outer = a.mediastinum_half_width - 0.02, a.thorax_half_width + 0.08
    x0, x1 = (-outer, -inner) if side < 0 else (inner, outer)
    top = a.lung_center_y - a.lung_half_height - 0.05
    bottom = max(a.dome_y_left, a.dome_y_right) + 0.25
    return cv.window(x0, x1, top, bottom)


def _draw_lungs(cv: ChestCanvas, heart_mask: FloatArray) -> FloatArray:
    a = cv.anatomy
    total = cv.zeros()
    for side, name in ((-1, "lung_right"), (1, "lung_left")):
        deficit = cv.zeros()
        win = lung_window(cv, side)
        if win is not None:
            membership, e = lung_field(a, side, cv.X[win], cv.Y[win], cv.edge)
            depth = np.float32(0.55) + np.float32(0.45) * np.sqrt(np.clip(1.0 - e, 0.0, 1.0))
            shadow = np.float32(1.0) - np.float32(0.9) * heart_mask[win]
            deficit[win] = np.float32(a.lung_strength) * membership * depth * shadow
        cv.layers[name] = deficit
        total += deficit
    return total


def _heart(cv: ChestCanvas) -> tuple[FloatArray, FloatArray]:
    a = cv.anatomy
    mask, profile = cv.zeros(), cv.zeros()
    hx, hy = a.heart_half_extents
    pad = 0.03
    win = cv.window(
        a.heart_center_x - hx - pad,
        a.heart_center_x + hx + pad,
        a.heart_center_y - hy - pad,
        a.heart_center_y + hy + pad,
    )
    if win is None:
        return mask, profile
    c, s = np.float32(math.cos(a.heart_angle)), np.float32(math.sin(a.heart_angle))
    dx = cv.X[win] - np.float32(a.heart_center_x)
    dy = cv.Y[win] - np.float32(a.heart_center_y)
    u = (c * dx + s * dy) / np.float32(a.heart_a)
    v = (-s * dx + c * dy) / np.float32(a.heart_b)
    e = u * u + v * v
    m = _smoothstep((1.0 - e) * a.heart_b, cv.edge * 1.5)
    mask[win] = m
    profile[win] = np.sqrt(np.clip(1.0 - e, 0.0, 1.0)) * m
    return mask, profile


def _draw_mediastinum(cv: ChestCanvas) -> FloatArray:
    """Trachea (air, dark) and main bronchi; hilar shadows (bright)."""
    a = cv.anatomy
    X, Y = cv.X, cv.Y
    out = cv.zeros()
    carina = np.float32(-0.24)
    trachea = _smoothstep(np.float32(0.032) - np.abs(X - np.float32(0.005)), cv.edge)
    trachea = trachea * _smoothstep(carina - Y, cv.edge * 2)
    out -= np.float32(0.22) * trachea
    for side in (-1, 1):
        hx, hy = side * (a.lung_center_x * 0.45 + 0.02), -0.05
        r = (X - np.float32(hx)) ** 2 / np.float32(0.07**2) + (
            Y - np.float32(hy)
        ) ** 2 / np.float32(0.11**2)
        out += np.float32(0.12) * np.exp(-r * 1.5).astype(np.float32)
        _segment(cv, out, 0.005, float(carina), hx * 0.7, hy - 0.02, 0.02, -0.14)
    return out


def _segment(
    cv: ChestCanvas,
    out: FloatArray,
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    width: float,
    amplitude: float,
    gate: FloatArray | None = None,
) -> None:
    """Add a soft tube from (x0, y0) to (x1, y1) with the given half-width, in place."""
    pad = width * 2.5
    win = cv.window(min(x0, x1) - pad, max(x0, x1) + pad, min(y0, y1) - pad, max(y0, y1) + pad)
    if win is None:
        return
    X, Y = cv.X[win], cv.Y[win]
    vx, vy = x1 - x0, y1 - y0
    length2 = max(vx * vx + vy * vy, 1e-12)
    t = np.clip(((X - np.float32(x0)) * vx + (Y - np.float32(y0)) * vy) / np.float32(length2), 0, 1)
    dx = X - (np.float32(x0) + t * np.float32(vx))
    dy = Y - (np.float32(y0) + t * np.float32(vy))
    d2 = (dx * dx + dy * dy) / np.float32(width * width)
    tube = np.sqrt(np.clip(1.0 - d2, 0.0, 1.0)) * np.float32(amplitude)
    if gate is not None:
        tube *= gate[win]
    # Overlapping pieces of one structure must not add up into bright knots.
    np.maximum(out[win], tube, out=out[win])


def _draw_spine(cv: ChestCanvas) -> FloatArray:
    a = cv.anatomy
    half = np.float32(0.058)
    profile = np.sqrt(np.clip(1.0 - (cv.X / half) ** 2, 0.0, 1.0))
    phase = (cv.Y - np.float32(a.rib_top_y)) / np.float32(a.rib_spacing) * np.float32(2 * math.pi)
    vertebrae = np.float32(0.78) + np.float32(0.22) * np.cos(phase)
    return (np.float32(0.16 * a.bone_strength) * profile * vertebrae).astype(np.float32)


def _draw_ribs(cv: ChestCanvas, rng: np.random.Generator) -> FloatArray:
    """Posterior ribs (bright arcs from the spine) and fainter anterior ribs, both sides."""
    a = cv.anatomy
    out = cv.zeros()
    strength = 0.15 * a.bone_strength
    reach = a.thorax_half_width + 0.03
    for i in range(11):
        y_spine = a.rib_top_y + i * a.rib_spacing
        half = 0.018 + 0.0015 * i
        for side in (-1, 1):
            jitter = rng.normal(0.0, 0.006)
            _rib_arc(cv, out, side, y_spine + jitter, half, reach, strength)
    return out


def _rib_arc(
    cv: ChestCanvas,
    out: FloatArray,
    side: int,
    y_spine: float,
    half: float,
    reach: float,
    strength: float,
) -> None:
    x_start = 0.035
    span = reach - x_start
    # Posterior rib: rises a little from the spine, then curves down at the lateral wall.
    lift, drop = 0.05, 0.2
    # Anterior rib: from the lateral wall back towards the sternum, sloping down.
    ant_drop = 0.23
    lo_y, hi_y = y_spine - lift - 0.06, y_spine + drop + ant_drop + 0.06
    win = cv.window(
        min(side * x_start, side * (reach + 0.05)),
        max(side * x_start, side * (reach + 0.05)),
        lo_y,
        hi_y,
    )
    if win is None:
        return
    X, Y = cv.X[win], cv.Y[win]
    t = (X * np.float32(side) - np.float32(x_start)) / np.float32(span)  # 0 at spine, 1 lateral
    tc = np.clip(t, 0.0, 1.0)
    centre = np.float32(y_spine) - np.float32(lift * 4) * tc * (1 - tc) + np.float32(drop) * tc**3
    h = np.float32(half) * (np.float32(1.0) + np.float32(0.35) * tc)
    d = (Y - centre) / h
    body = np.sqrt(np.clip(1.0 - d * d, 0.0, 1.0))
    cortex = np.exp(-(((np.abs(d) - np.float32(0.85)) / np.float32(0.18)) ** 2))
    along = _smoothstep(t, 0.05) * _smoothstep(np.float32(1.02) - t, 0.04)
    out[win] += np.float32(strength) * (np.float32(0.7) * body + np.float32(0.4) * cortex) * along
    # Anterior part: fainter and thinner, fading into cartilage towards the sternum.
    y_lat = y_spine + drop
    ant_centre = np.float32(y_lat) + np.float32(ant_drop) * (1 - tc) ** 1.3
    d2 = (Y - ant_centre) / np.float32(half * 0.8)
    ant = np.sqrt(np.clip(1.0 - d2 * d2, 0.0, 1.0))
    fade = _smoothstep(t - np.float32(0.42), 0.2) * _smoothstep(np.float32(1.0) - t, 0.04)
    out[win] += np.float32(strength * 0.45) * ant * fade


def _draw_clavicles(cv: ChestCanvas) -> FloatArray:
    """Clavicles: gently S-shaped bands from the sternum up and out to the shoulders."""
    a = cv.anatomy
    out = cv.zeros()
    x0, x1 = 0.06, a.thorax_half_width * 0.9
    y0, y1 = a.rib_top_y + 0.1, a.rib_top_y - 0.02
    for side in (-1, 1):
        win = cv.window(min(side * x0, side * x1), max(side * x0, side * x1), y1 - 0.08, y0 + 0.08)
        if win is None:
            continue
        X, Y = cv.X[win], cv.Y[win]
        f = (X * np.float32(side) - np.float32(x0)) / np.float32(x1 - x0)
        fc = np.clip(f, 0.0, 1.0)
        centre = (
            np.float32(y0)
            + np.float32(y1 - y0) * fc
            + np.float32(0.022) * np.sin(np.float32(2 * math.pi) * fc)
        )
        half = np.float32(0.02) * (np.float32(1.15) - np.float32(0.3) * fc)
        d = (Y - centre) / half
        band = np.sqrt(np.clip(1.0 - d * d, 0.0, 1.0))
        along = _smoothstep(f, 0.03) * _smoothstep(np.float32(1.0) - f, 0.06)
        out[win] += np.float32(0.2 * a.bone_strength) * band * along
    return out


def _gastric_bubble(cv: ChestCanvas) -> FloatArray:
    """Air in the stomach under the left hemidiaphragm (image right)."""
    a = cv.anatomy
    out = cv.zeros()
    cx, cy = a.lung_center_x * 0.9, a.dome_y_left + 0.12
    win = cv.window(cx - 0.12, cx + 0.12, cy - 0.08, cy + 0.08)
    if win is not None:
        e = ((cv.X[win] - np.float32(cx)) / np.float32(0.09)) ** 2 + (
            (cv.Y[win] - np.float32(cy)) / np.float32(0.05)
        ) ** 2
        out[win] = np.float32(0.18) * np.sqrt(np.clip(1.0 - e, 0.0, 1.0))
    return out


def _draw_vessels(cv: ChestCanvas, rng: np.random.Generator, lungs: FloatArray) -> FloatArray:
    """Bronchovascular markings: tapered branches fanning out from each hilum."""
    a = cv.anatomy
    out = cv.zeros()
    gate = np.clip(lungs / np.float32(max(a.lung_strength * 0.5, 1e-3)), 0.0, 1.0)
    for side in (-1, 1):
        hx, hy = side * (a.lung_center_x * 0.5 + 0.02), -0.05
        for _ in range(11):
            angle = rng.uniform(-1.35, 1.45)  # radians from lateral, + is downwards
            _branch(cv, out, rng, side, hx, hy, angle, rng.uniform(0.14, 0.24), 0.011, 3, gate)
    return out


def _branch(
    cv: ChestCanvas,
    out: FloatArray,
    rng: np.random.Generator,
    side: int,
    x: float,
    y: float,
    angle: float,
    length: float,
    width: float,
    depth: int,
    gate: FloatArray,
) -> None:
    x1 = x + side * math.cos(angle) * length
    y1 = y + math.sin(angle) * length
    _segment(cv, out, x, y, x1, y1, width, 0.07, gate)
    if depth > 1:
        for turn in (-1, 1):
            child = angle + turn * rng.uniform(0.25, 0.6)
            _branch(
                cv,
                out,
                rng,
                side,
                x1,
                y1,
                child,
                length * rng.uniform(0.55, 0.8),
                width * 0.7,
                depth - 1,
                gate,
            )


def _band_noise(
    shape: tuple[int, int], rng: np.random.Generator, low: float, high: float
) -> FloatArray:
    """Zero-mean, unit-std noise with its power between ``low`` and ``high`` cycles/pixel."""
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    f2 = fx * fx + fy * fy
    keep = (f2 >= np.float32(low * low)) & (f2 <= np.float32(high * high))
    # White noise has a spectrum of independent complex Gaussians: draw it directly and
    # save the forward transform.
    spectrum = np.zeros(f2.shape, dtype=np.complex64)
    count = int(keep.sum())
    parts = rng.standard_normal((2, count), dtype=np.float32)
    spectrum[keep] = parts[0] + 1j * parts[1]
    out = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    std = float(out.std())
    return out / np.float32(std if std > 0 else 1.0)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, nodes: int = 4) -> FloatArray:
    """A smooth random field (std about 1): a few Gaussian bumps on a coarse grid."""
    rows, cols = shape
    grid = rng.standard_normal((nodes, nodes)).astype(np.float32)
    centres = (np.arange(nodes, dtype=np.float32) + 0.5) / nodes
    sigma = np.float32(0.7 / nodes)
    ry = np.exp(
        -((((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None] - centres) ** 2)
        / (2 * sigma**2)
    )
    rx = np.exp(
        -((((np.arange(cols, dtype=np.float32) + 0.5) / cols)[:, None] - centres) ** 2)
        / (2 * sigma**2)
    )
    ry /= ry.sum(axis=1, keepdims=True)
    rx /= rx.sum(axis=1, keepdims=True)
    # Broadcast sums, no BLAS: a matmul here would wake a BLAS thread pool in every worker
    # process of the demo-data generator, which then spins against its siblings.
    left = (ry[:, :, None] * grid[None, :, :]).sum(axis=1)  # (rows, nodes)
    field_ = left[:, 0:1] * rx[:, 0][None, :]
    for k in range(1, nodes):
        field_ += left[:, k : k + 1] * rx[:, k][None, :]
    std = float(field_.std())
    return (field_ / np.float32(std if std > 0 else 1.0)).astype(np.float32)


# ----------------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class FindingLayer:
    """What a renderer returns: attenuation to add (or None) and the region for its box."""

    attenuation: FloatArray | None
    region: FloatArray


Renderer = Callable[[ChestCanvas, np.random.Generator, Mapping[str, Any]], FindingLayer]
AnatomyAdjuster = Callable[[ChestAnatomy, np.random.Generator, Mapping[str, Any]], ChestAnatomy]


@dataclass(frozen=True)
class FindingSpec:
    name: str
    render: Renderer
    adjust_anatomy: AnatomyAdjuster | None = None
    description: str = ""


_REGISTRY: dict[str, FindingSpec] = {}


def register_finding(
    name: str, *, adjust_anatomy: AnatomyAdjuster | None = None, description: str = ""
) -> Callable[[Renderer], Renderer]:
    """Decorator: register ``render(canvas, rng, params) -> FindingLayer`` under ``name``.

    ``adjust_anatomy(anatomy, rng, params)`` runs before the body is drawn, for findings that
    change normal anatomy (cardiomegaly scales the heart) rather than add to it.
    """
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ConfigError(f"finding name {name!r} must be lower-case letters, digits or '_'")

    def decorate(render: Renderer) -> Renderer:
        _REGISTRY[name] = FindingSpec(name, render, adjust_anatomy, description)
        return render

    return decorate


def available_findings() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def finding_spec(name: str) -> FindingSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown finding {name!r}",
            hint=f"available: {', '.join(_REGISTRY)}; add one with register_finding()",
        ) from None


def _pick_lung_point(
    cv: ChestCanvas,
    rng: np.random.Generator,
    radius: float,
    side: int | None = None,
    y_range: tuple[float, float] = (-1.0, 1.0),
) -> tuple[int, float, float]:
    """A point whose disc of ``radius`` lies inside a lung field, clear of the heart."""
    a = cv.anatomy
    for _ in range(400):
        s = side if side is not None else int(rng.choice([-1, 1]))
        x = s * (a.mediastinum_half_width + rng.uniform(0.0, a.lung_center_x + a.lung_half_width))
        y = rng.uniform(
            max(y_range[0], a.lung_center_y - a.lung_half_height),
            min(y_range[1], max(a.dome_y_left, a.dome_y_right) + 0.1),
        )
        ring = np.linspace(0.0, 2 * math.pi, 12, endpoint=False)
        px = np.concatenate([[x], x + 1.25 * radius * np.cos(ring)])
        py = np.concatenate([[y], y + 1.25 * radius * np.sin(ring)])
        inside, _ = lung_field(a, s, px, py, 1e-4)
        c, sn = math.cos(a.heart_angle), math.sin(a.heart_angle)
        dx, dy = px - a.heart_center_x, py - a.heart_center_y
        he = ((c * dx + sn * dy) / a.heart_a) ** 2 + ((-sn * dx + c * dy) / a.heart_b) ** 2
        if np.all(inside > 0.99) and np.all(he > 1.1):
            return s, float(x), float(y)
    raise ConfigError(f"no room for a lesion of radius {radius:.3f} body units in the lungs")


@register_finding("nodule", description="round soft-tissue opacity, 8-25 mm, inside a lung")
def _render_nodule(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """Params: ``diameter_mm`` (8-25), ``contrast`` (0.55-1.15), ``side`` (-1 image left)."""
    mm_per_unit = cv.pixel_spacing_mm * cv.scale
    diameter_mm = float(params.get("diameter_mm", rng.uniform(8.0, 25.0)))
    contrast = float(params.get("contrast", rng.uniform(0.55, 1.15)))
    radius = diameter_mm / 2.0 / mm_per_unit
    side = params.get("side")
    s, x, y = _pick_lung_point(cv, rng, radius, None if side is None else int(side))
    lobes = rng.uniform(0.0, 0.12, size=3)
    phases = rng.uniform(0.0, 2 * math.pi, size=3)
    win = cv.window(x - 1.3 * radius, x + 1.3 * radius, y - 1.3 * radius, y + 1.3 * radius)
    region = cv.zeros()
    if win is not None:
        dx, dy = cv.X[win] - np.float32(x), cv.Y[win] - np.float32(y)
        ang = np.arctan2(dy, dx)
        r_edge = np.float32(radius) * (
            1.0 + sum(np.float32(lobes[k]) * np.cos((k + 2) * ang + phases[k]) for k in range(3))
        )
        rho2 = (dx * dx + dy * dy) / (r_edge * r_edge)
        sphere = np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
        # A sphere's projected thickness grows with its diameter: small nodules are fainter.
        strength = 0.16 + 0.2 * (diameter_mm - 8.0) / 17.0
        region[win] = (sphere * np.float32(strength * contrast)).astype(np.float32)
    cv.finding_info["nodule"] = {"diameter_mm": diameter_mm, "contrast": contrast, "side": s}
    return FindingLayer(region, region)


@register_finding("effusion", description="meniscus-shaped fluid filling one costophrenic angle")
def _render_effusion(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """Params: ``side`` (-1 image left), ``height`` (0.08-0.26 body units), ``density``."""
    a = cv.anatomy
    side = int(params.get("side", rng.choice([-1, 1])))
    height = float(params.get("height", rng.uniform(0.08, 0.26)))
    density = float(params.get("density", rng.uniform(0.85, 1.05)))
    lung = cv.layers["lung_right" if side < 0 else "lung_left"]
    dome = a.dome_y_right if side < 0 else a.dome_y_left
    medial = a.mediastinum_half_width
    lateral = a.lung_center_x + a.lung_half_width * 1.16
    cp_y = dome + 0.13  # depth of the costophrenic recess
    sx = cv.X * np.float32(side)
    frac = np.clip((sx - np.float32(medial)) / np.float32(lateral - medial), 0.0, 1.0)
    # Meniscus: the fluid climbs the lateral chest wall.
    level = np.float32(cp_y - height) - np.float32(height * 0.9) * frac**2
    fill = np.clip((cv.Y - level) / np.float32(0.025 + height * 0.2), 0.0, 1.0)
    region = (lung * fill * np.float32(density)).astype(np.float32)
    cv.finding_info["effusion"] = {"side": side, "height": height}
    return FindingLayer(region, region)


def _adjust_cardiomegaly(
    a: ChestAnatomy, rng: np.random.Generator, params: Mapping[str, Any]
) -> ChestAnatomy:
    return a.with_cardiothoracic_ratio(float(params.get("ctr", rng.uniform(0.55, 0.66))))


@register_finding(
    "cardiomegaly",
    adjust_anatomy=_adjust_cardiomegaly,
    description="enlarged heart, cardiothoracic ratio 0.55-0.66 (normal 0.39-0.48)",
)
def _render_cardiomegaly(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """Params: ``ctr`` (0.55-0.66). The heart is already drawn; its region is the box."""
    return FindingLayer(None, cv.layers["heart"])


@register_finding("consolidation", description="patchy airspace opacity in part of one lung")
def _render_consolidation(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """Air replaced by fluid in a patch of one lung: a fuzzy, mottled opacity."""
    radius = float(params.get("radius", rng.uniform(0.09, 0.18)))
    density = float(params.get("density", rng.uniform(0.45, 0.8)))
    s, x, y = _pick_lung_point(cv, rng, radius * 0.6)
    lung = cv.layers["lung_right" if s < 0 else "lung_left"]
    blob = np.exp(
        -((cv.X - np.float32(x)) ** 2 + (cv.Y - np.float32(y)) ** 2) / np.float32(radius**2)
    )
    per_unit = 512.0 / cv.scale  # frequencies in cycles per body unit, whatever the size
    mottle = _band_noise((cv.rows, cv.cols), rng, 0.004 * per_unit, 0.022 * per_unit)
    patchy = np.clip(0.8 + 0.3 * mottle, 0.0, 1.0)
    region = lung * np.clip(blob * 1.6 - 0.25, 0.0, 1.0) * patchy * np.float32(density)
    cv.finding_info["consolidation"] = {"side": s, "radius": radius, "density": density}
    return FindingLayer(region.astype(np.float32), region.astype(np.float32))


@register_finding("pneumothorax", description="air outside a collapsed lung at its apex")
def _render_pneumothorax(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """Air between the chest wall and a lung edge: darker, without vessel markings."""
    a = cv.anatomy
    side = int(params.get("side", rng.choice([-1, 1])))
    collapse = float(params.get("collapse", rng.uniform(0.06, 0.16)))
    membership, e = lung_field(a, side, cv.X, cv.Y, cv.edge)
    # The rim of the field within `collapse` of its edge, mostly apical and lateral.
    rim = np.clip((np.sqrt(np.clip(e, 0, None)) - (1.0 - collapse * 2.2)) / 0.02, 0.0, 1.0)
    upper = _smoothstep(np.float32(a.lung_center_y + 0.2) - cv.Y, 0.2)
    region = (membership * rim * upper).astype(np.float32)
    vessels = cv.layers.get("vessels")
    # Remove the markings and thin the tissue: a negative attenuation layer.
    att = -region * np.float32(0.12 * a.lung_strength / 0.75)
    if vessels is not None:
        att -= vessels * region
    line = np.exp(-(((np.sqrt(np.clip(e, 0, None)) - (1.0 - collapse * 2.2)) / 0.006) ** 2))
    att += np.float32(0.05) * line.astype(np.float32) * membership * upper
    return FindingLayer(att.astype(np.float32), region)


# ------------------------------------------------------------------------------------ phantom


@dataclass(frozen=True)
class ChestAnnotations:
    """Ground truth for one phantom: boxes in pixels, one per present finding."""

    seed: int
    acquisition_seed: int
    rows: int
    cols: int
    pixel_spacing_mm: float
    cardiothoracic_ratio: float
    boxes: dict[str, Box]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(self.boxes)

    def labels(self, names: Iterable[str] = DEMO_FINDINGS) -> dict[str, int]:
        """0/1 per finding name, for a manifest row."""
        return {n: int(n in self.boxes) for n in names}


def make_chest_xr(
    seed: int,
    *,
    rows: int = DEFAULT_SIZE,
    cols: int | None = None,
    findings: Iterable[str] = (),
    acquisition_seed: int | None = None,
    fov_mm: float = DEFAULT_FOV_MM,
    finding_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[np.ndarray, ChestAnnotations]:
    """A frontal chest radiograph phantom and its ground truth.

    ``seed`` fixes the patient (body and finding placement); ``acquisition_seed`` (default:
    ``seed``) fixes positioning, exposure and noise, so one patient can be imaged twice.
    ``rows`` x ``cols`` may be non-square; ``fov_mm`` is the field across the shorter side,
    so the pixel spacing is ``fov_mm / min(rows, cols)`` and finding sizes in mm stay true.
    Returns a ``uint16`` array with values in 0..4095 (MONOCHROME2) and the annotations.
    """
    cols = rows if cols is None else cols
    for label, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int | np.integer) or not 32 <= int(value) <= 8192:
            raise ConfigError(f"`{label}` {value!r} should be an integer between 32 and 8192")
    if not fov_mm > 0:
        raise ConfigError(f"`fov_mm` {fov_mm!r} should be positive")
    names = list(dict.fromkeys(findings))
    specs = [finding_spec(n) for n in names]
    params = dict(finding_params or {})
    for key in params:
        if key not in names:
            raise ConfigError(f"finding_params names {key!r}, which is not in findings {names}")
    acq_seed = seed if acquisition_seed is None else acquisition_seed
    anatomy = sample_anatomy(derive_rng(seed, "anatomy"))
    finding_rngs = {spec.name: derive_rng(seed, "finding", spec.name) for spec in specs}
    for spec in specs:
        if spec.adjust_anatomy is not None:
            anatomy = spec.adjust_anatomy(
                anatomy, finding_rngs[spec.name], params.get(spec.name, {})
            )
    acq = sample_acquisition(derive_rng(acq_seed, "acquisition"))
    cv = ChestCanvas(int(rows), int(cols), anatomy, acq, fov_mm / min(rows, cols))

    attenuation = _draw_anatomy(cv, derive_rng(seed, "texture"), acq)
    boxes: dict[str, Box] = {}
    for spec in specs:
        layer = spec.render(cv, finding_rngs[spec.name], params.get(spec.name, {}))
        if layer.attenuation is not None:
            attenuation += layer.attenuation
        box = box_of(np.abs(layer.region))
        if box is None:
            raise ConfigError(f"finding {spec.name!r} drew nothing inside the image")
        boxes[spec.name] = box
    image = _expose(attenuation, acq, derive_rng(acq_seed, "noise"))
    notes = (
        {"cardiomegaly": {"ctr": anatomy.cardiothoracic_ratio}} if "cardiomegaly" in boxes else {}
    )
    details = {**cv.finding_info, **notes}
    ann = ChestAnnotations(
        seed=int(seed),
        acquisition_seed=int(acq_seed),
        rows=int(rows),
        cols=int(cols),
        pixel_spacing_mm=float(cv.pixel_spacing_mm),
        cardiothoracic_ratio=anatomy.cardiothoracic_ratio,
        boxes=boxes,
        details=details,
    )
    return image, ann


def _draw_anatomy(cv: ChestCanvas, rng: np.random.Generator, acq: Acquisition) -> FloatArray:
    a = cv.anatomy
    body = _draw_body(cv)
    heart_mask, heart_profile = _heart(cv)
    above_dome = _smoothstep(np.float32(a.dome_y_left + 0.04) - cv.Y, 0.04)
    heart = heart_profile * above_dome
    cv.layers["heart"] = heart_mask * above_dome
    lungs = _draw_lungs(cv, heart_mask)
    att = body - lungs + np.float32(0.05) * heart + _draw_mediastinum(cv) - _gastric_bubble(cv)
    vessels = _draw_vessels(cv, rng, lungs)
    cv.layers["vessels"] = vessels
    att += vessels
    texture = _band_noise((cv.rows, cv.cols), rng, 0.02 * 512 / cv.scale, 0.12 * 512 / cv.scale)
    att += np.float32(0.018 * acq.texture) * texture * (lungs / np.float32(a.lung_strength))
    att += _draw_spine(cv) + _draw_ribs(cv, rng) + _draw_clavicles(cv)
    return att


def _expose(att: FloatArray, acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """Attenuation to 12-bit detector values: exposure curve, heel effect, quantum noise."""
    shape = att.shape
    heel = np.float32(1.0) + np.float32(0.035) * _smooth_field(shape, rng)
    norm = np.clip(att * heel / np.float32(1.25), 0.0, 1.2) ** np.float32(acq.gamma)
    value = np.float32(acq.low) + np.float32(acq.high - acq.low) * norm
    # Quantum noise in the log domain grows where fewer photons arrive (bright areas).
    sigma = np.float32(acq.noise) * (np.float32(0.6) + np.float32(0.8) * norm)
    value += sigma * rng.standard_normal(shape, dtype=np.float32)
    return np.clip(np.rint(value), 0, MAX_12BIT).astype(np.uint16)
