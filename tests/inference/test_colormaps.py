"""Heatmap colour maps for the viewer."""

from __future__ import annotations

import numpy as np
import pytest

from desktop_app.inference import overlays
from desktop_app.inference.colormaps import COLORMAPS, heatmap_rgba, lut
from desktop_app.settings.schema import COLORMAPS as SETTING_CHOICES


def test_settings_offer_exactly_these() -> None:
    assert SETTING_CHOICES == COLORMAPS


@pytest.mark.parametrize("name", COLORMAPS)
def test_luts(name: str) -> None:
    table = lut(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert (table[0] != table[255]).any()


def test_turbo_matches_the_export_overlays() -> None:
    h = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    assert (heatmap_rgba(h, "turbo") == overlays.heatmap_rgba(h, opacity=1.0)).all()


def test_other_maps_keep_the_alpha() -> None:
    h = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    hot = heatmap_rgba(h, "hot")
    assert (hot[..., 3] == overlays.heatmap_rgba(h, opacity=1.0)[..., 3]).all()
    assert (hot[-1, -1, :3] == lut("hot")[255]).all()


def test_unknown_map() -> None:
    with pytest.raises(ValueError, match="unknown colour map 'rainbow'; choose one of: turbo"):
        lut("rainbow")
