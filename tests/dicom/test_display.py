"""display.render: VOI, then MONOCHROME1 inverted, to uint8; colour scaled or windowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom

from desktop_app.dicom import display, pixels
from desktop_app.dicom.voi import Window
from tests.helpers.dicomfiles import pydicom_data_file


def _frame(values: np.ndarray, photometric: str = "MONOCHROME2", **kw: object) -> pixels.Frame:
    return pixels.Frame(
        values=values,
        photometric=photometric,
        is_color=values.ndim == 3,
        windows=kw.pop("windows", ()),  # type: ignore[arg-type]
        pixel_spacing=None,
        rescale_note=None,
        **kw,  # type: ignore[arg-type]
    )


class TestRender:
    values = np.array([[0.0, 50.0], [100.0, 200.0]], np.float32)

    def test_grey_with_window(self) -> None:
        out = display.render(_frame(self.values), Window(100.0, 200.0, "LINEAR_EXACT"))
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, [[0, 64], [128, 255]])

    def test_monochrome1_is_inverted(self) -> None:
        window = Window(100.0, 200.0, "LINEAR_EXACT")
        mono2 = display.render(_frame(self.values), window)
        mono1 = display.render(_frame(self.values, "MONOCHROME1"), window)
        np.testing.assert_array_equal(mono1, 255 - mono2)
        # and the user's invert toggle flips it back
        np.testing.assert_array_equal(
            display.render(_frame(self.values, "MONOCHROME1"), window, invert=True), mono2
        )

    def test_monochrome1_file(self, make_image: Callable[..., Path]) -> None:
        ramp = np.arange(16, dtype=np.uint16).reshape(4, 4) * 100
        m1 = display.render(pixels.load_frame(make_image("a.dcm", ramp, photometric="MONOCHROME1")))
        m2 = display.render(pixels.load_frame(make_image("b.dcm", ramp)))
        np.testing.assert_array_equal(m1, 255 - m2)
        assert m1[0, 0] == 255  # lowest value shown white (PS3.3 C.7.6.3.1.2)

    def test_file_window_used_by_default(self) -> None:
        frame = _frame(self.values, windows=(Window(60.0, 1.0),))  # threshold at 59.5
        np.testing.assert_array_equal(display.render(frame), [[0, 0], [255, 255]])

    def test_auto_window_without_voi(self) -> None:
        out = display.render(_frame(np.linspace(0, 4095, 10_000).reshape(100, 100)))
        assert out.min() == 0 and out.max() == 255

    def test_colour_passthrough(self) -> None:
        rgb = np.random.default_rng(0).integers(0, 255, size=(3, 3, 3), dtype=np.uint8)
        np.testing.assert_array_equal(display.render(_frame(rgb, "RGB")), rgb)
        np.testing.assert_array_equal(display.render(_frame(rgb, "RGB"), invert=True), 255 - rgb)

    def test_16_bit_colour_scaled(self) -> None:
        rgb = np.full((1, 1, 3), 65535, np.uint16)
        out = display.render(_frame(rgb, "RGB", bits_stored=16))
        np.testing.assert_array_equal(out, np.full((1, 1, 3), 255, np.uint8))

    def test_voi_lut_sequence(self) -> None:
        path = pydicom_data_file("vlut_04.dcm")
        ds = pydicom.dcmread(path)
        expected_lut = pydicom.pixels.apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        expected = np.rint(np.clip(expected_lut / (2**bits - 1), 0, 1) * 255).astype(np.uint8)
        frame = pixels.load_frame(path)
        assert len(frame.voi_luts) == 1 and not frame.windows
        np.testing.assert_array_equal(display.render(frame), expected)
