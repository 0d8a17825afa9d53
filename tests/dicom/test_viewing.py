"""Viewer arithmetic without Qt: window/level drags, ruler lengths, cursor readouts."""

from __future__ import annotations

import numpy as np
import pytest

from desktop_app.dicom.viewing import (
    ValueRange,
    distance_mm,
    drag_window,
    format_distance,
    pixel_readout,
)
from desktop_app.dicom.voi import Window, presets_for_modality


class TestValueRange:
    def test_of_ignores_non_finite(self) -> None:
        values = np.array([[np.nan, -5.0], [np.inf, 20.0]], dtype=np.float32)
        assert ValueRange.of(values) == ValueRange(-5.0, 20.0)

    def test_empty_and_flat(self) -> None:
        assert ValueRange.of(np.array([np.nan], dtype=np.float32)) == ValueRange(0.0, 1.0)
        assert ValueRange(3.0, 3.0).span == 1.0


class TestDragWindow:
    def test_right_widens_down_raises_level(self) -> None:
        start = Window(40.0, 400.0)
        out = drag_window(start, 10.0, 5.0, ValueRange(-1000.0, 1500.0))  # 5 units per pixel
        assert (out.center, out.width, out.explanation) == (65.0, 450.0, "manual")

    def test_width_never_below_one(self) -> None:
        out = drag_window(Window(0.0, 10.0), -1000.0, 0.0, ValueRange(0.0, 500.0))
        assert out.width == 1.0

    def test_same_feel_for_12_bit_and_hu(self) -> None:
        xr = drag_window(Window(2048, 4096), 50, 0, ValueRange(0, 4095))
        ct = drag_window(Window(40, 400), 50, 0, ValueRange(-1024, 3071))
        assert xr.width - 4096 == pytest.approx(ct.width - 400)


class TestDistance:
    @pytest.mark.parametrize(
        ("start", "end", "spacing", "expected"),
        [
            ((0, 0), (3, 4), None, (5.0, "px")),
            ((0, 0), (10, 0), (0.5, 2.0), (20.0, "mm")),  # x scales by column spacing
            ((0, 0), (0, 10), (0.5, 2.0), (5.0, "mm")),  # y scales by row spacing
        ],
    )
    def test_table(self, start, end, spacing, expected) -> None:
        value, unit = distance_mm(start, end, spacing)
        assert (pytest.approx(value), unit) == expected

    @pytest.mark.parametrize(
        ("value", "unit", "text"),
        [(12.34, "mm", "12.3 mm"), (123.4, "mm", "12.3 cm"), (250.0, "px", "250.0 px")],
    )
    def test_format(self, value: float, unit: str, text: str) -> None:
        assert format_distance(value, unit) == text


class TestReadout:
    values = np.array([[-1000.0, 40.5], [3.0, 7.25]], dtype=np.float32)

    @pytest.mark.parametrize(
        ("x", "y", "modality", "text"),
        [
            (0.2, 0.9, "CT", "x 0  y 0   -1000 HU"),
            (1.5, 0.0, "CT", "x 1  y 0   40 HU"),
            (0.0, 1.0, "DX", "x 0  y 1   value 3"),
            (1.0, 1.0, "MR", "x 1  y 1   value 7.25"),
        ],
    )
    def test_grey(self, x: float, y: float, modality: str, text: str) -> None:
        assert pixel_readout(self.values, x, y, modality=modality) == text

    @pytest.mark.parametrize(("x", "y"), [(-0.1, 0), (2.0, 0), (0, 2.0), (0, -3)])
    def test_off_image(self, x: float, y: float) -> None:
        assert pixel_readout(self.values, x, y) is None

    def test_colour(self) -> None:
        rgb = np.zeros((2, 2, 3), dtype=np.uint8)
        rgb[1, 0] = (10, 20, 30)
        assert pixel_readout(rgb, 0, 1, is_color=True) == "x 0  y 1   RGB 10,20,30"


class TestPresets:
    def test_ct_has_the_five_presets(self) -> None:
        assert list(presets_for_modality("ct")) == [
            "lung",
            "mediastinum",
            "bone",
            "brain",
            "abdomen",
        ]

    @pytest.mark.parametrize("modality", ["DX", "CR", "MR", ""])
    def test_others_use_auto(self, modality: str) -> None:
        assert presets_for_modality(modality) == {}
