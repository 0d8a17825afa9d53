"""display: VOI windows (PS3.3 C.11.2), VOI LUTs, auto window, rendering, presets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from desktop_app.dicom import display, pixels
from desktop_app.dicom.display import Window
from tests.helpers.dicomfiles import pydicom_data_file, set_raw


def _ds_with(center: bytes, width: bytes, **extra: bytes) -> Dataset:
    ds = Dataset()
    set_raw(ds, 0x00281050, "DS", center)
    set_raw(ds, 0x00281051, "DS", width)
    tags = {"explanation": (0x00281055, "LO"), "function": (0x00281056, "CS")}
    for key, value in extra.items():
        set_raw(ds, tags[key][0], tags[key][1], value)
    return ds


class TestWindowsFromDataset:
    def test_multi_valued(self) -> None:
        ds = _ds_with(b"40\\400", b"80\\1500", explanation=b"BRAIN\\BONE")
        assert display.windows_from_dataset(ds) == (
            Window(40.0, 80.0, "LINEAR", "BRAIN"),
            Window(400.0, 1500.0, "LINEAR", "BONE"),
        )

    def test_one_width_for_several_centres(self) -> None:
        ds = _ds_with(b"40\\60", b"80")
        assert [w.center for w in display.windows_from_dataset(ds)] == [40.0, 60.0]

    @pytest.mark.parametrize(
        ("center", "width", "expected"),
        [
            (b"40\\50\\60", b"0\\-5\\100", [(60.0, 100.0)]),
            (b"NaN\\10", b"100\\100", [(10.0, 100.0)]),
            (b"inf", b"100", []),
            (b"abc", b"100", []),
            (b"40", b"", []),
            (b"40", b"0.5", []),  # LINEAR needs a width of at least 1 (C.11.2.1.2)
        ],
    )
    def test_invalid_windows_dropped(self, center: bytes, width: bytes, expected: list) -> None:
        found = display.windows_from_dataset(_ds_with(center, width))
        assert [(w.center, w.width) for w in found] == expected

    def test_linear_exact_allows_narrow_width(self) -> None:
        ds = _ds_with(b"0.5", b"0.5", function=b"LINEAR_EXACT")
        assert display.windows_from_dataset(ds) == (Window(0.5, 0.5, "LINEAR_EXACT", ""),)

    def test_unknown_function_is_linear(self) -> None:
        ds = _ds_with(b"10", b"20", function=b"CUBIC ")
        assert display.windows_from_dataset(ds)[0].function == "LINEAR"

    def test_enhanced_frame_voi_group(self) -> None:
        path = pydicom_data_file("eCT_Supplemental.dcm")
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        voi = ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
        windows = display.windows_from_dataset(ds, 1)
        assert windows[0].center == float(voi.WindowCenter)
        assert windows[0].width == float(voi.WindowWidth)

    def test_per_frame_wins_over_shared(self) -> None:
        ds = Dataset()
        shared, frame0, frame1 = Dataset(), Dataset(), Dataset()
        shared.FrameVOILUTSequence = [_ds_with(b"1", b"10")]
        frame1.FrameVOILUTSequence = [_ds_with(b"2", b"20")]
        ds.SharedFunctionalGroupsSequence = [shared]
        ds.PerFrameFunctionalGroupsSequence = [frame0, frame1]
        assert display.windows_from_dataset(ds, 0)[0].center == 1.0
        assert display.windows_from_dataset(ds, 1)[0].center == 2.0


class TestApplyWindow:
    @pytest.mark.parametrize(
        ("x", "expected"),
        [(-1.0, 0.0), (-0.5, 0.0), (49.5, 0.5), (99.5, 1.0), (150.0, 1.0), (24.5, 0.25)],
    )
    def test_linear(self, x: float, expected: float) -> None:
        # C.11.2.1.2.1 with c = 50, w = 101: ((x - 49.5) / 100 + 0.5)
        out = display.apply_window(np.array([x]), Window(50.0, 101.0))
        assert out[0] == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("x", "expected"), [(-60, 0.0), (-50, 0.0), (0, 0.5), (25, 0.75), (50, 1.0)]
    )
    def test_linear_exact(self, x: float, expected: float) -> None:
        out = display.apply_window(np.array([x]), Window(0.0, 100.0, "LINEAR_EXACT"))
        assert out[0] == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("x", "expected"), [(0, 0.5), (25, 1 / (1 + np.exp(-1))), (-25, 1 / (1 + np.exp(1)))]
    )
    def test_sigmoid(self, x: float, expected: float) -> None:
        out = display.apply_window(np.array([x]), Window(0.0, 100.0, "SIGMOID"))
        assert out[0] == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
    @pytest.mark.parametrize("width", [0.0, -10.0, float("inf"), float("nan")])
    def test_degenerate_width_is_a_threshold(self, function: str, width: float) -> None:
        out = display.apply_window(np.array([-5.0, 5.0]), Window(0.0, width, function))
        np.testing.assert_array_equal(out, [0.0, 1.0])
        assert out.dtype == np.float32

    def test_nan_values_map_to_zero(self) -> None:
        out = display.apply_window(np.array([np.nan, np.inf, -np.inf]), Window(0.0, 10.0))
        np.testing.assert_array_equal(out, [0.0, 1.0, 0.0])

    def test_extreme_values_stay_in_range(self) -> None:
        out = display.apply_window(np.array([-3e38, 3e38], np.float32), Window(0.0, 2.0, "SIGMOID"))
        np.testing.assert_allclose(out, [0.0, 1.0], atol=1e-12)


class TestAutoWindow:
    def test_outliers_ignored(self) -> None:
        values = np.concatenate([np.linspace(0, 1000, 100_000), [1e6, -1e6]])
        window = display.auto_window(values)
        assert 990 < window.high < 1000 and 0 < window.low < 10

    def test_constant_image(self) -> None:
        window = display.auto_window(np.full((4, 4), 7.0))
        assert window.center == 7.0 and window.width > 0

    def test_all_nan(self) -> None:
        window = display.auto_window(np.full((2, 2), np.nan))
        assert np.isfinite(window.center) and window.width > 0


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


class TestPresets:
    def test_ct(self) -> None:
        presets = display.presets_for_modality("CT")
        assert presets["lung"] == Window(-600.0, 1500.0, "LINEAR", "lung")
        assert presets["mediastinum"].center == 50 and presets["mediastinum"].width == 350
        assert {"lung", "mediastinum", "bone", "brain", "abdomen"} <= set(presets)
        presets.clear()  # a copy: the module's presets are untouched
        assert display.PRESETS["brain"] == Window(40.0, 80.0, "LINEAR", "brain")

    @pytest.mark.parametrize("modality", ["MR", "DX", "", "ct "])
    def test_others(self, modality: str) -> None:
        expected = display.PRESETS if modality.strip() == "ct" else {}
        assert display.presets_for_modality(modality) == expected
