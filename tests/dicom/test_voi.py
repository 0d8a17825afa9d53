"""voi: VOI windows (PS3.3 C.11.2), apply_window, auto window, CT presets."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from desktop_app.dicom import voi
from desktop_app.dicom.voi import Window
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
        assert voi.windows_from_dataset(ds) == (
            Window(40.0, 80.0, "LINEAR", "BRAIN"),
            Window(400.0, 1500.0, "LINEAR", "BONE"),
        )

    def test_one_width_for_several_centres(self) -> None:
        ds = _ds_with(b"40\\60", b"80")
        assert [w.center for w in voi.windows_from_dataset(ds)] == [40.0, 60.0]

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
        found = voi.windows_from_dataset(_ds_with(center, width))
        assert [(w.center, w.width) for w in found] == expected

    def test_linear_exact_allows_narrow_width(self) -> None:
        ds = _ds_with(b"0.5", b"0.5", function=b"LINEAR_EXACT")
        assert voi.windows_from_dataset(ds) == (Window(0.5, 0.5, "LINEAR_EXACT", ""),)

    def test_unknown_function_is_linear(self) -> None:
        ds = _ds_with(b"10", b"20", function=b"CUBIC ")
        assert voi.windows_from_dataset(ds)[0].function == "LINEAR"

    def test_enhanced_frame_voi_group(self) -> None:
        path = pydicom_data_file("eCT_Supplemental.dcm")
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        group = ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
        windows = voi.windows_from_dataset(ds, 1)
        assert windows[0].center == float(group.WindowCenter)
        assert windows[0].width == float(group.WindowWidth)

    def test_per_frame_wins_over_shared(self) -> None:
        ds = Dataset()
        shared, frame0, frame1 = Dataset(), Dataset(), Dataset()
        shared.FrameVOILUTSequence = [_ds_with(b"1", b"10")]
        frame1.FrameVOILUTSequence = [_ds_with(b"2", b"20")]
        ds.SharedFunctionalGroupsSequence = [shared]
        ds.PerFrameFunctionalGroupsSequence = [frame0, frame1]
        assert voi.windows_from_dataset(ds, 0)[0].center == 1.0
        assert voi.windows_from_dataset(ds, 1)[0].center == 2.0


class TestApplyWindow:
    @pytest.mark.parametrize(
        ("x", "expected"),
        [(-1.0, 0.0), (-0.5, 0.0), (49.5, 0.5), (99.5, 1.0), (150.0, 1.0), (24.5, 0.25)],
    )
    def test_linear(self, x: float, expected: float) -> None:
        # C.11.2.1.2.1 with c = 50, w = 101: ((x - 49.5) / 100 + 0.5)
        out = voi.apply_window(np.array([x]), Window(50.0, 101.0))
        assert out[0] == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("x", "expected"), [(-60, 0.0), (-50, 0.0), (0, 0.5), (25, 0.75), (50, 1.0)]
    )
    def test_linear_exact(self, x: float, expected: float) -> None:
        out = voi.apply_window(np.array([x]), Window(0.0, 100.0, "LINEAR_EXACT"))
        assert out[0] == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("x", "expected"), [(0, 0.5), (25, 1 / (1 + np.exp(-1))), (-25, 1 / (1 + np.exp(1)))]
    )
    def test_sigmoid(self, x: float, expected: float) -> None:
        out = voi.apply_window(np.array([x]), Window(0.0, 100.0, "SIGMOID"))
        assert out[0] == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
    @pytest.mark.parametrize("width", [0.0, -10.0, float("inf"), float("nan")])
    def test_degenerate_width_is_a_threshold(self, function: str, width: float) -> None:
        out = voi.apply_window(np.array([-5.0, 5.0]), Window(0.0, width, function))
        np.testing.assert_array_equal(out, [0.0, 1.0])
        assert out.dtype == np.float32

    def test_nan_values_map_to_zero(self) -> None:
        out = voi.apply_window(np.array([np.nan, np.inf, -np.inf]), Window(0.0, 10.0))
        np.testing.assert_array_equal(out, [0.0, 1.0, 0.0])

    def test_extreme_values_stay_in_range(self) -> None:
        out = voi.apply_window(np.array([-3e38, 3e38], np.float32), Window(0.0, 2.0, "SIGMOID"))
        np.testing.assert_allclose(out, [0.0, 1.0], atol=1e-12)


class TestAutoWindow:
    def test_outliers_ignored(self) -> None:
        values = np.concatenate([np.linspace(0, 1000, 100_000), [1e6, -1e6]])
        window = voi.auto_window(values)
        assert 990 < window.high < 1000 and 0 < window.low < 10

    def test_constant_image(self) -> None:
        window = voi.auto_window(np.full((4, 4), 7.0))
        assert window.center == 7.0 and window.width > 0

    def test_all_nan(self) -> None:
        window = voi.auto_window(np.full((2, 2), np.nan))
        assert np.isfinite(window.center) and window.width > 0


class TestPresets:
    def test_ct(self) -> None:
        presets = voi.presets_for_modality("CT")
        assert presets["lung"] == Window(-600.0, 1500.0, "LINEAR", "lung")
        assert presets["mediastinum"].center == 50 and presets["mediastinum"].width == 350
        assert {"lung", "mediastinum", "bone", "brain", "abdomen"} <= set(presets)
        presets.clear()  # a copy: the module's presets are untouched
        assert voi.PRESETS["brain"] == Window(40.0, 80.0, "LINEAR", "brain")

    @pytest.mark.parametrize("modality", ["MR", "DX", "", "ct "])
    def test_others(self, modality: str) -> None:
        expected = voi.PRESETS if modality.strip() == "ct" else {}
        assert voi.presets_for_modality(modality) == expected
