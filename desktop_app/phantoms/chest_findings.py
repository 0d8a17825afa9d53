"""Chest phantom findings: renderers kept in a registry by name, so a new finding is one
function. Built in: ``nodule``, ``effusion``, ``cardiomegaly`` (the demo labels) and
``consolidation``, ``pneumothorax`` (spares for held-out-style experiments)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from desktop_app.infra.errors import ConfigError
from desktop_app.phantoms.chest_anatomy import band_noise
from desktop_app.phantoms.chest_body import (
    ChestAnatomy,
    ChestCanvas,
    FloatArray,
    lung_field,
    smoothstep,
)


@dataclass(frozen=True)
class FindingLayer:
    """What a renderer returns: attenuation to add (or None), the region for its box, and for
    a lesion with an outline (nodule, effusion) its mask: the pixels the finding occupies."""

    attenuation: FloatArray | None
    region: FloatArray
    mask: np.ndarray | None = None


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


def pick_lung_point(
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
    s, x, y = pick_lung_point(cv, rng, radius, None if side is None else int(side))
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
    # The mask is the drawn (lobulated) disc: every pixel whose centre lies inside its edge.
    mask = region > 0
    cv.finding_info["nodule"] = {
        "diameter_mm": diameter_mm,
        "contrast": contrast,
        "side": s,
        "center_px": tuple(float(v) for v in cv.to_pixel(x, y)),  # (column, row)
        "radius_px": float(radius * cv.scale),
    }
    return FindingLayer(region, region, mask)


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
    # Fluid where the lung field and the fluid level both reach half: the meniscus's outline.
    mask = (lung >= 0.5) & (fill >= 0.5)
    cv.finding_info["effusion"] = {"side": side, "height": height}
    return FindingLayer(region, region, mask)


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
    s, x, y = pick_lung_point(cv, rng, radius * 0.6)
    lung = cv.layers["lung_right" if s < 0 else "lung_left"]
    blob = np.exp(
        -((cv.X - np.float32(x)) ** 2 + (cv.Y - np.float32(y)) ** 2) / np.float32(radius**2)
    )
    per_unit = 512.0 / cv.scale  # frequencies in cycles per body unit, whatever the size
    mottle = band_noise((cv.rows, cv.cols), rng, 0.004 * per_unit, 0.022 * per_unit)
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
    upper = smoothstep(np.float32(a.lung_center_y + 0.2) - cv.Y, 0.2)
    region = (membership * rim * upper).astype(np.float32)
    vessels = cv.layers.get("vessels")
    # Remove the markings and thin the tissue: a negative attenuation layer.
    att = -region * np.float32(0.12 * a.lung_strength / 0.75)
    if vessels is not None:
        att -= vessels * region
    line = np.exp(-(((np.sqrt(np.clip(e, 0, None)) - (1.0 - collapse * 2.2)) / 0.006) ** 2))
    att += np.float32(0.05) * line.astype(np.float32) * membership * upper
    return FindingLayer(att.astype(np.float32), region)


@register_finding("line", description="thin faint linear opacity in a lung, 2-4 mm by 35-70 mm")
def _render_line(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """A plate-like band (discoid atelectasis, a fissure): thin and faint, so that it keeps
    few pixels once the image is shrunk to a network's input. Params: ``width_mm``
    (2-4), ``length_mm`` (35-70), ``contrast`` (0.6-1), ``angle_deg`` (-35..35 from
    horizontal)."""
    mm_per_unit = cv.pixel_spacing_mm * cv.scale
    width = float(params.get("width_mm", rng.uniform(2.0, 4.0))) / mm_per_unit
    length = float(params.get("length_mm", rng.uniform(35.0, 70.0))) / mm_per_unit
    contrast = float(params.get("contrast", rng.uniform(0.6, 1.0)))
    angle = math.radians(float(params.get("angle_deg", rng.uniform(-35.0, 35.0))))
    s, x, y = pick_lung_point(cv, rng, length / 2.0)
    win = cv.window(x - length, x + length, y - length, y + length)
    region = cv.zeros()
    if win is not None:
        dx, dy = cv.X[win] - np.float32(x), cv.Y[win] - np.float32(y)
        along = dx * np.float32(math.cos(angle)) + dy * np.float32(math.sin(angle))
        across = -dx * np.float32(math.sin(angle)) + dy * np.float32(math.cos(angle))
        # A soft-edged band, tapering at both ends; at least one pixel wide whatever the size.
        half = np.float32(max(width / 2.0, 0.6 * cv.unit_per_px))
        profile = np.exp(-((across / half) ** 2))
        taper = np.clip(1.0 - (np.abs(along) / np.float32(length / 2.0)) ** 4, 0.0, 1.0)
        region[win] = (profile * taper * np.float32(0.35 * contrast)).astype(np.float32)
    cv.finding_info["line"] = {"side": s, "width_units": width, "length_units": length}
    return FindingLayer(region, region)


@register_finding("faint_nodule", description="small faint nodule, 8-14 mm, low contrast")
def _render_faint_nodule(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """The nodule renderer at the small, faint end of its range (a hard detection task)."""
    drawn = {
        "diameter_mm": float(params.get("diameter_mm", rng.uniform(8.0, 14.0))),
        "contrast": float(params.get("contrast", rng.uniform(0.7, 1.0))),
        **({"side": params["side"]} if "side" in params else {}),
    }
    layer = _render_nodule(cv, rng, drawn)
    cv.finding_info["faint_nodule"] = cv.finding_info.pop("nodule")
    return layer


@register_finding("diffuse", description="large faint haze over most of one or both lungs")
def _render_diffuse(
    cv: ChestCanvas, rng: np.random.Generator, params: Mapping[str, Any]
) -> FindingLayer:
    """Ground-glass-like haze: a smooth, low-density veil over the lower two thirds of one
    lung or both. Params: ``bilateral`` (bool), ``density`` (0.06-0.14)."""
    bilateral = bool(params.get("bilateral", rng.uniform() < 0.5))
    density = float(params.get("density", rng.uniform(0.06, 0.14)))
    side = int(rng.choice([-1, 1]))
    lungs = (
        [cv.layers["lung_right"], cv.layers["lung_left"]]
        if bilateral
        else [cv.layers["lung_right" if side < 0 else "lung_left"]]
    )
    a = cv.anatomy
    top = np.float32(a.lung_center_y - a.lung_half_height * 0.35)
    veil = smoothstep(cv.Y - top, 0.25)
    per_unit = 512.0 / cv.scale
    texture = np.clip(
        0.85 + 0.25 * band_noise((cv.rows, cv.cols), rng, 0.01 * per_unit, 0.05 * per_unit),
        0.0,
        1.2,
    )
    region = sum(lungs) * veil * texture * np.float32(density)
    cv.finding_info["diffuse"] = {"bilateral": bilateral, "density": density}
    return FindingLayer(region.astype(np.float32), region.astype(np.float32))
