"""Draws the chest phantom's normal anatomy as attenuation (body, lungs, heart, mediastinum,
spine, ribs, clavicles, vessels, texture) and exposes it as 12-bit detector values."""

from __future__ import annotations

import math

import numpy as np

from desktop_app.phantoms.chest_body import (
    Acquisition,
    ChestCanvas,
    FloatArray,
    lung_field,
    lung_window,
    smoothstep,
)

MAX_12BIT = 4095


def draw_anatomy(cv: ChestCanvas, rng: np.random.Generator, acq: Acquisition) -> FloatArray:
    a = cv.anatomy
    body = _draw_body(cv)
    heart_mask, heart_profile = _heart(cv)
    above_dome = smoothstep(np.float32(a.dome_y_left + 0.04) - cv.Y, 0.04)
    heart = heart_profile * above_dome
    cv.layers["heart"] = heart_mask * above_dome
    lungs = _draw_lungs(cv, heart_mask)
    att = body - lungs + np.float32(0.05) * heart + _draw_mediastinum(cv) - _gastric_bubble(cv)
    vessels = _draw_vessels(cv, rng, lungs)
    cv.layers["vessels"] = vessels
    att += vessels
    texture = band_noise((cv.rows, cv.cols), rng, 0.02 * 512 / cv.scale, 0.12 * 512 / cv.scale)
    att += np.float32(0.018 * acq.texture) * texture * (lungs / np.float32(a.lung_strength))
    att += _draw_spine(cv) + _draw_ribs(cv, rng) + _draw_clavicles(cv)
    return att


def expose(att: FloatArray, acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """Attenuation to 12-bit detector values: exposure curve, heel effect, quantum noise."""
    shape = att.shape
    heel = np.float32(1.0) + np.float32(0.035) * _smooth_field(shape, rng)
    norm = np.clip(att * heel / np.float32(1.25), 0.0, 1.2) ** np.float32(acq.gamma)
    value = np.float32(acq.low) + np.float32(acq.high - acq.low) * norm
    # Quantum noise in the log domain grows where fewer photons arrive (bright areas).
    sigma = np.float32(acq.noise) * (np.float32(0.6) + np.float32(0.8) * norm)
    value += sigma * rng.standard_normal(shape, dtype=np.float32)
    return np.clip(np.rint(value), 0, MAX_12BIT).astype(np.uint16)


def _draw_body(cv: ChestCanvas) -> FloatArray:
    a = cv.anatomy
    X, Y = cv.X, cv.Y
    # Neck widening into shoulders at the top; the torso below.
    neck = np.float32(0.27)
    shoulders = smoothstep(Y + np.float32(0.92), 0.16)
    # Shoulders and upper arms make the top of the torso wider than the waist.
    taper = np.float32(0.1) * np.clip(np.float32(0.2) - Y, 0.0, 1.0)
    half = neck + (np.float32(a.body_half_width) + taper - neck) * shoulders
    body = np.sqrt(np.clip(1.0 - (X / half) ** 2, 0.0, 1.0))
    body *= smoothstep(half - np.abs(X), cv.edge * 3.0)
    return body.astype(np.float32)


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
    m = smoothstep((1.0 - e) * a.heart_b, cv.edge * 1.5)
    mask[win] = m
    profile[win] = np.sqrt(np.clip(1.0 - e, 0.0, 1.0)) * m
    return mask, profile


def _draw_mediastinum(cv: ChestCanvas) -> FloatArray:
    """Trachea (air, dark) and main bronchi; hilar shadows (bright)."""
    a = cv.anatomy
    X, Y = cv.X, cv.Y
    out = cv.zeros()
    carina = np.float32(-0.24)
    trachea = smoothstep(np.float32(0.032) - np.abs(X - np.float32(0.005)), cv.edge)
    trachea = trachea * smoothstep(carina - Y, cv.edge * 2)
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
    along = smoothstep(t, 0.05) * smoothstep(np.float32(1.02) - t, 0.04)
    out[win] += np.float32(strength) * (np.float32(0.7) * body + np.float32(0.4) * cortex) * along
    # Anterior part: fainter and thinner, fading into cartilage towards the sternum.
    y_lat = y_spine + drop
    ant_centre = np.float32(y_lat) + np.float32(ant_drop) * (1 - tc) ** 1.3
    d2 = (Y - ant_centre) / np.float32(half * 0.8)
    ant = np.sqrt(np.clip(1.0 - d2 * d2, 0.0, 1.0))
    fade = smoothstep(t - np.float32(0.42), 0.2) * smoothstep(np.float32(1.0) - t, 0.04)
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
        along = smoothstep(f, 0.03) * smoothstep(np.float32(1.0) - f, 0.06)
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


def band_noise(
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
