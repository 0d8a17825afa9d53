"""Heatmap colour maps for the viewer: a [0, 1] heatmap -> straight-alpha RGBA (Qt-free).

Turbo is the one ``overlays`` uses for PNGs and exports (so the default GUI overlay looks like
them); the others are matplotlib's, sampled into 256-entry tables once. The alpha channel is
``overlays.heatmap_rgba``'s (0 below its floor, rising to full at the peak); the viewer scales
it by the opacity slider when painting, so moving the slider never recolours anything.
"""

from __future__ import annotations

import functools

import numpy as np

from desktop_app.inference import overlays

COLORMAPS = ("turbo", "jet", "inferno", "hot", "viridis")


@functools.cache
def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 table for colour map ``name`` (one of :data:`COLORMAPS`)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose one of: {', '.join(COLORMAPS)}")
    if name == "turbo":
        return overlays.TURBO_LUT
    import matplotlib

    table = matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    out = np.clip(np.rint(table * 255.0), 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def heatmap_rgba(heatmap: np.ndarray, colormap: str = "turbo") -> np.ndarray:
    """[0, 1] heatmap (H, W) -> uint8 RGBA (H, W, 4): colour from ``colormap``, alpha from
    ``overlays.heatmap_rgba`` at full opacity."""
    out = overlays.heatmap_rgba(heatmap, opacity=1.0)
    if colormap != "turbo":
        idx = np.rint(np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0, 1) * 255)
        out[..., :3] = lut(colormap)[idx.astype(np.uint8)]
    return out
