"""desktop_app.inference.colormaps: matplotlib's colour maps as tables, heatmaps as RGBA."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from desktop_app.inference.colormaps import COLORMAPS, heatmap_rgba, lut
from desktop_app.settings.schema import COLORMAPS as SETTING_CHOICES


def test_settings_offer_exactly_these() -> None:
    assert SETTING_CHOICES == COLORMAPS


class TestLut:
    @pytest.mark.parametrize("name", COLORMAPS)
    def test_is_matplotlibs_map(self, name: str) -> None:
        table = lut(name)
        assert table.shape == (256, 3) and table.dtype == np.uint8
        expected = np.rint(matplotlib.colormaps[name](np.arange(256) / 255.0)[:, :3] * 255)
        assert (table == expected).all()

    def test_turbo_runs_from_blue_to_red(self) -> None:
        low, mid, high = (tuple(int(v) for v in lut("turbo")[i]) for i in (38, 128, 242))
        assert low[2] > low[0]  # blue end
        assert mid[1] > mid[2]  # green-yellow middle
        assert high[0] > high[1] and high[0] > high[2]  # red end

    def test_unknown_map(self) -> None:
        with pytest.raises(ValueError, match="unknown colour map 'rainbow'; choose one of: turbo"):
            lut("rainbow")


class TestHeatmapRgba:
    @pytest.mark.parametrize("name", COLORMAPS)
    def test_colour_is_the_maps_at_the_rounded_level(self, name: str) -> None:
        h = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
        rgba = heatmap_rgba(h, name)
        assert rgba.shape == (8, 8, 4) and rgba.dtype == np.uint8
        assert (rgba[..., :3] == lut(name)[np.rint(h * 255).astype(int)]).all()

    def test_turbo_is_the_default(self) -> None:
        h = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
        assert (heatmap_rgba(h) == heatmap_rgba(h, "turbo")).all()

    def test_alpha_is_zero_below_the_floor_and_opacity_at_the_peak(self) -> None:
        h = np.linspace(0.0, 1.0, 101, dtype=np.float32)[None, :]
        alpha = heatmap_rgba(h, opacity=0.6, floor=0.2)[0, :, 3].astype(int)
        assert (alpha[:21] == 0).all()
        assert alpha[-1] == round(0.6 * 255)
        assert (np.diff(alpha) >= 0).all() and alpha[50] > 0

    @pytest.mark.parametrize("name", COLORMAPS)
    def test_every_map_has_the_same_alpha(self, name: str) -> None:
        h = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
        assert (heatmap_rgba(h, name)[..., 3] == heatmap_rgba(h, "turbo")[..., 3]).all()

    def test_nan_and_out_of_range_values(self) -> None:
        rgba = heatmap_rgba(np.array([[np.nan, -1.0, 7.0, np.inf]], np.float32))
        assert rgba[0, :, 3].tolist() == [0, 0, 255, 255]

    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"opacity": 1.5}, "opacity 1.5 must be in"),
        ({"floor": 1.0}, "floor 1.0 must be in"),
    ])  # fmt: skip
    def test_bad_arguments(self, kwargs: dict[str, float], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            heatmap_rgba(np.zeros((2, 2), np.float32), **kwargs)

    def test_heatmap_must_be_2d(self) -> None:
        with pytest.raises(ValueError, match="a heatmap must be 2-D"):
            heatmap_rgba(np.zeros((2, 2, 2), np.float32))
