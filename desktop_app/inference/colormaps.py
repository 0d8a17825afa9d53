"""Heatmap colours: a [0, 1] heatmap -> straight-alpha RGBA through one of matplotlib's maps.

The one home of heatmap colours: the viewer, ``radassist predict``'s overlay PNGs and the
exports all call :func:`heatmap_rgba`. Each map is matplotlib's, sampled into a 256-entry table
(stored in ``colortables``: no matplotlib import); Turbo is the default, so the GUI's default overlay looks like the PNGs and exports. The
alpha is 0 up to ``floor``, then rises to ``opacity`` at the peak: the viewer asks for full
opacity and scales the alpha by its opacity slider when painting, so moving the slider never
recolours anything. Pure array code (numpy, no Qt): it runs in any thread.
"""

from __future__ import annotations

import base64
import functools

import numpy as np

from desktop_app.inference.colortables import TABLES

COLORMAPS = ("turbo", "jet", "inferno", "hot", "viridis")


@functools.cache
def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 table (read-only) for colour map ``name`` (one of :data:`COLORMAPS`):
    index = round(value * 255)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose one of: {', '.join(COLORMAPS)}")
    out = np.frombuffer(base64.b64decode(TABLES[name]), dtype=np.uint8).reshape(256, 3).copy()
    out.flags.writeable = False
    return out


def unit_heatmap(heatmap: np.ndarray) -> np.ndarray:
    """A 2-D heatmap as float32 in [0, 1]: NaN and -inf count as 0, +inf as 1."""
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2:
        raise ValueError(f"a heatmap must be 2-D, got shape {h.shape}")
    return np.clip(np.nan_to_num(h, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _alpha(opacity: float, floor: float) -> np.ndarray:
    """(256,) uint8 alpha per level: 0 up to ``floor``, then a square root (so the middle of
    the range is already visible) up to ``opacity`` at 1.0."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity {opacity} must be in [0, 1]")
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor {floor} must be in [0, 1)")
    ramp = np.clip((np.arange(256) / 255.0 - floor) / (1.0 - floor), 0.0, 1.0)
    return np.rint(np.sqrt(ramp) * (opacity * 255.0)).astype(np.uint8)


def _packed_lut(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(256,) little-endian uint32 entries R | G << 8 | B << 16 | A << 24: one gather per pixel
    gives RGBA bytes in order (several times faster than gathering rows of a (256, 3) table)."""
    table = rgb.astype(np.uint32)
    packed = table[:, 0] | (table[:, 1] << 8) | (table[:, 2] << 16)
    return (packed | (alpha.astype(np.uint32) << 24)).astype("<u4")


def heatmap_rgba(
    heatmap: np.ndarray, colormap: str = "turbo", *, opacity: float = 1.0, floor: float = 0.2
) -> np.ndarray:
    """[0, 1] heatmap (H, W) -> uint8 RGBA (H, W, 4) to lay over the image.

    Colour: ``colormap`` (one of :data:`COLORMAPS`). Alpha: 0 up to ``floor``, then rising
    (square root) to ``opacity`` at 1.0. NaN counts as 0.
    """
    packed = _packed_lut(lut(colormap), _alpha(opacity, floor))
    levels = np.rint(unit_heatmap(heatmap) * np.float32(255.0)).astype(np.uint8)
    return packed[levels].view(np.uint8).reshape(*levels.shape, 4)
