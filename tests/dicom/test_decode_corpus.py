"""Every public test file (pydicom's bundled ones and pydicom-data's) is decoded, every frame
with its shape checked and compared with pydicom's own decode, or refused in one line."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from desktop_app.dicom import dicomfile, pixels
from desktop_app.infra.errors import RadAssistError
from tests.helpers.dicomfiles import pydicom_data_files, pydicom_test_files

PYDICOM_FILES = pydicom_test_files()
DATA_FILES = pydicom_data_files()
ALL_FILES = PYDICOM_FILES + DATA_FILES


@functools.cache
def outcome(path: Path) -> tuple[str, str]:
    """("decoded", "") after every frame decoded with the right shape, or ("refused", line)."""
    try:
        ds = dicomfile.read_header(path)
        first = pixels.decode_frame(path, 0, ds=ds)  # refuses non-images in one line
        n = pixels.number_of_frames(ds)
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
        expected = (rows, cols) if samples == 1 else (rows, cols, 3)
        assert first.shape == expected, f"{path.name}: {first.shape} != {expected}"
        for k in range(1, n):
            arr = pixels.decode_frame(path, k, ds=ds)
            assert arr.shape == expected, f"{path.name} frame {k}: {arr.shape} != {expected}"
    except RadAssistError as err:
        return "refused", str(err)
    return "decoded", ""


def _pydicom_reference(path: Path, indices: list[int]) -> list[np.ndarray] | None:
    """pydicom's own decode of frames ``indices``, or None where pydicom can't."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            return list(pydicom.pixels.iter_pixels(ds, indices=indices))
    except Exception:
        return None


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_is_decoded_or_refused_in_one_line(path: Path) -> None:
    status, message = outcome(path)
    if status == "refused":
        assert "\n" not in message
        assert message.startswith(str(path) + ": ")
        assert len(message) > len(str(path)) + 10
        return
    ds = dicomfile.read_header(path)
    n = pixels.number_of_frames(ds)
    indices = sorted({0, n // 2, n - 1})
    reference = _pydicom_reference(path, indices)
    if reference is None:
        return
    for k, expected in zip(indices, reference):
        np.testing.assert_array_equal(pixels.decode_frame(path, k, ds=ds), expected)


def test_at_least_125_files_decode() -> None:
    decoded_pydicom = sum(outcome(p)[0] == "decoded" for p in PYDICOM_FILES)
    decoded_data = sum(outcome(p)[0] == "decoded" for p in DATA_FILES)
    if not DATA_FILES:
        pytest.skip("pydicom-data is not installed")
    assert decoded_pydicom >= 58
    assert decoded_data >= 67
    assert decoded_pydicom + decoded_data >= 125


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MR_truncated.dcm", "element (7FE0,0010) at byte 1500 declares 8192 bytes but only"),
        ("rtplan_truncated.dcm", "declares 976 bytes but only 711 remain"),
        ("no_meta.dcm", "has no 'DICM' marker at byte 128"),
        ("JPEG2000-embedded-sequence-delimiter.dcm", "compressed frame declares 1024x"),
        ("rtplan.dcm", "has no pixel data"),
        ("meta_missing_tsyntax.dcm", "has pixel data but no readable Rows"),
    ],
)
def test_known_refusals_say_why(name: str, reason: str) -> None:
    path = next((p for p in PYDICOM_FILES if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} not bundled")
    status, message = outcome(path)
    assert status == "refused"
    assert reason in message


def test_ct_small_hounsfield_units() -> None:
    path = next(p for p in PYDICOM_FILES if p.name == "CT_small.dcm")
    frame = pixels.load_frame(path)
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array.astype(np.float32)
    expected = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(frame.values, expected)
    assert frame.values.dtype == np.float32
    # Air outside the body and dense tissue inside: a plausible CT range in HU.
    assert frame.values.min() < -800
    assert 500 < frame.values.max() < 3072
    assert frame.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert frame.rescale_note is None
