"""desktop_app.model.preprocessing and desktop_app.model.imageio: the one preprocessing definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from desktop_app.infra.errors import ConfigError, DataError, DicomReadError
from desktop_app.model.imageio import read_image
from desktop_app.model.preprocessing import (
    Geometry,
    PreprocessSpec,
    geometry_for,
    preprocess_batch,
    preprocess_file,
    preprocess_gray,
    unit_image,
)

SPEC = PreprocessSpec(image_size=64)


def _phantom(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A smooth seeded image with a bright blob, in 12-bit-like values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * rows, rng.uniform(0.3, 0.7) * cols
    blob = np.exp(-(((yy - cy) / (rows / 8)) ** 2 + ((xx - cx) / (cols / 8)) ** 2))
    noise = rng.normal(0, 20, (rows, cols))
    return (800 + 2000 * blob + 300 * xx / cols + noise).astype(np.float32)


def _write_dicom(
    path: Path,
    stored: np.ndarray,
    photometric: str,
    *,
    window: tuple[float, float] | None = None,
    slope: float = 1.0,
    intercept: float = 0.0,
) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
        ds.VOILUTFunction = "LINEAR_EXACT"
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


class TestPreprocessSpec:
    def test_round_trip(self) -> None:
        spec = PreprocessSpec(
            image_size=96,
            normalization="window",
            percentiles=(1.0, 99.0),
            channels=1,
            output_scaling="imagenet",
            pad_value=0.25,
            interpolation="bicubic",
        )
        assert PreprocessSpec.from_dict(spec.to_dict()) == spec

    def test_partial_fills_defaults_only_when_asked(self) -> None:
        assert (
            PreprocessSpec.from_dict({"image_size": 128}, partial=True).normalization
            == "percentile"
        )
        with pytest.raises(ConfigError, match=r"preprocessing key 'normalization' is missing"):
            PreprocessSpec.from_dict({"image_size": 128})

    @pytest.mark.parametrize(
        ("key", "value", "message"),
        [
            ("image_size", 16, r"image_size 16 must be an integer in 32..2048"),
            ("image_size", 224.0, r"image_size 224.0 must be an integer"),
            ("normalization", "zscore", r"normalization 'zscore' is unknown \(choose one of: "),
            ("percentiles", [99.0, 1.0], r"percentiles \(99.0, 1.0\) must satisfy 0 <= low < high"),
            ("percentiles", [1.0], r"percentiles \[1.0\] must be a pair"),
            ("channels", 2, r"channels 2 must be 1 or 3"),
            ("output_scaling", "tf", r"output_scaling 'tf' is unknown"),
            ("pad_value", 2.0, r"pad_value 2.0 must be in \[0, 1\]"),
            ("pad_value", float("nan"), r"pad_value nan must be in \[0, 1\]"),
            ("interpolation", "area", r"interpolation 'area' is unknown"),
        ],
    )
    def test_strict_values(self, key: str, value: object, message: str) -> None:
        data = {**PreprocessSpec().to_dict(), key: value}
        with pytest.raises(ConfigError, match=message):
            PreprocessSpec.from_dict(data)

    def test_unknown_key(self) -> None:
        data = {**PreprocessSpec().to_dict(), "gamma": 2}
        with pytest.raises(ConfigError, match=r"unknown preprocessing key 'gamma' \(known keys: "):
            PreprocessSpec.from_dict(data)


class TestPreprocessGray:
    def test_same_input_same_output(self) -> None:
        img = _phantom(120, 90)
        a, ga = preprocess_gray(img, SPEC)
        b, gb = preprocess_gray(img.copy(), SPEC)
        assert np.array_equal(a, b) and ga == gb
        assert a.shape == (3, 64, 64) and a.dtype == np.float32

    @pytest.mark.parametrize(
        ("normalization", "window"),
        [("percentile", None), ("minmax", None), ("window", (2000.0, 3000.0))],
    )
    def test_monochrome1_and_2_give_the_same_tensor(
        self, normalization: str, window: tuple[float, float] | None
    ) -> None:
        spec = PreprocessSpec(image_size=64, normalization=normalization)
        img = _phantom(100, 70)
        top = 4095.0
        w2 = (window[0], window[1], "LINEAR_EXACT") if window else None
        w1 = (top - window[0], window[1], "LINEAR_EXACT") if window else None
        mono2, _ = preprocess_gray(img, spec, photometric="MONOCHROME2", file_window=w2)
        mono1, _ = preprocess_gray(top - img, spec, photometric="MONOCHROME1", file_window=w1)
        np.testing.assert_allclose(mono1, mono2, atol=1e-4)
        assert np.abs(mono2).max() > 0.5  # not trivially equal

    @pytest.mark.parametrize("shape", [(120, 40), (30, 200), (7, 300), (64, 64), (20, 10)])
    def test_non_square_images_are_padded_centred(self, shape: tuple[int, int]) -> None:
        spec = PreprocessSpec(image_size=64, output_scaling="none", pad_value=0.0)
        img = _phantom(*shape) + 1000  # nothing maps to exactly 0 inside
        out, geo = preprocess_gray(img, spec)
        h, w = geo.resized_shape
        assert max(h, w) == 64
        assert abs(h / w - shape[0] / shape[1]) < 2 / min(h, w) + 1e-6
        top, left = geo.pad
        assert (top, left) == ((64 - h) // 2, (64 - w) // 2)
        inside = np.zeros((64, 64), bool)
        inside[top : top + h, left : left + w] = True
        assert np.all(out[:, ~inside] == 0.0)
        assert out[0][inside].std() > 0.01  # the image is inside

    def test_window_without_a_file_window_falls_back_to_percentile(self) -> None:
        img = _phantom(50, 60)
        by_window, _ = preprocess_gray(img, PreprocessSpec(image_size=64, normalization="window"))
        by_percentile, _ = preprocess_gray(img, PreprocessSpec(image_size=64))
        assert np.array_equal(by_window, by_percentile)

    @pytest.mark.parametrize(
        ("scaling", "channels", "low", "high"),
        [
            ("lite", 3, -127 / 128, 1.0),
            ("none", 1, 0.0, 1.0),
            ("imagenet", 3, -0.485 / 0.229, (1 - 0.406) / 0.225),
        ],
    )
    def test_output_scaling(self, scaling: str, channels: int, low: float, high: float) -> None:
        img = np.zeros((64, 64), np.float32)
        img[:, 32:] = 100.0
        spec = PreprocessSpec(image_size=64, output_scaling=scaling, channels=channels)
        out, _ = preprocess_gray(img, spec)
        assert out.shape == (channels, 64, 64)
        assert out.min() == pytest.approx(low, abs=1e-5)
        assert out.max() == pytest.approx(high, abs=1e-5)

    def test_constant_and_non_finite_images(self) -> None:
        spec = PreprocessSpec(image_size=64, output_scaling="none")
        out, _ = preprocess_gray(np.full((40, 40), 7.0, np.float32), spec)
        assert np.all(out == 0.0)
        img = _phantom(40, 40)
        img[0, :5] = np.nan
        img[1, :5] = np.inf
        out, _ = preprocess_gray(img, spec)
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0

    def test_rejects_non_2d(self) -> None:
        with pytest.raises(ValueError, match=r"a grey image must be 2-D, got shape \(2, 3, 4\)"):
            preprocess_gray(np.zeros((2, 3, 4)), SPEC)


class TestGeometry:
    @pytest.mark.parametrize("shape", [(300, 200), (90, 400), (30, 20)])
    def test_point_round_trip(self, shape: tuple[int, int]) -> None:
        geo = geometry_for(shape, 224)
        for x, y in [(0.0, 0.0), (shape[1] / 2, shape[0] / 3), (shape[1], shape[0])]:
            back = geo.point_to_original(*geo.point_to_model(x, y))
            assert back == pytest.approx((x, y), abs=1e-9)
        box = (10.0, 5.0, shape[1] / 4, shape[0] / 5)
        assert geo.box_to_original(geo.box_to_model(box)) == pytest.approx(box, abs=1e-9)

    @pytest.mark.parametrize("shape", [(300, 200), (90, 400), (30, 20)])
    def test_a_feature_lands_where_it_should(self, shape: tuple[int, int]) -> None:
        """A bright spot's position in the network input maps back onto the original spot."""
        rows, cols = shape
        y0, x0 = rows * 0.37, cols * 0.61
        yy, xx = np.mgrid[0:rows, 0:cols] + 0.5  # pixel centres
        sigma = max(rows, cols) / 20
        img = np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sigma**2)).astype(np.float32)
        spec = PreprocessSpec(image_size=224, output_scaling="none", normalization="minmax")
        out, geo = preprocess_gray(img, spec)
        unit = out[0]
        weights = np.where(unit > 0.5, unit, 0.0)
        my, mx = np.mgrid[0:224, 0:224] + 0.5
        cy = (weights * my).sum() / weights.sum()
        cx = (weights * mx).sum() / weights.sum()
        bx, by = geo.point_to_original(cx, cy)
        assert abs(bx - x0) < 1.0 and abs(by - y0) < 1.0
        # and a heatmap peaked there maps back to a peak at the original spot
        heat = np.exp(-((my - cy) ** 2 + (mx - cx) ** 2) / (2 * 4.0**2))
        back = geo.heatmap_to_original(heat)
        assert back.shape == shape
        py, px = np.unravel_index(np.argmax(back), back.shape)
        assert abs(px + 0.5 - x0) <= 1.0 and abs(py + 0.5 - y0) <= 1.0

    def test_coarse_heatmap_and_box_clipping(self) -> None:
        geo = geometry_for((100, 50), 64)
        back = geo.heatmap_to_original(np.ones((7, 7), np.float32))
        assert back.shape == (100, 50) and np.allclose(back, 1.0)
        assert geo.box_to_original((-10, -10, 200, 200)) == (0.0, 0.0, 50.0, 100.0)

    def test_to_dict(self) -> None:
        geo = Geometry((10, 20), (32, 64), 64, (16, 0))
        assert geo.to_dict() == {
            "original_shape": [10, 20],
            "resized_shape": [32, 64],
            "size": 64,
            "pad": [16, 0],
        }


class TestBatch:
    def test_batch_equals_one_by_one(self) -> None:
        images = [
            _phantom(80, 60, 1),
            _phantom(80, 60, 2),
            _phantom(50, 90, 3),
            _phantom(80, 60, 4),
        ]
        batch, geos = preprocess_batch(images, SPEC, photometric="MONOCHROME1")
        assert batch.shape == (4, 3, 64, 64)
        for img, row, geo in zip(images, batch, geos, strict=True):
            single, g = preprocess_gray(img, SPEC, photometric="MONOCHROME1")
            assert np.array_equal(row, single) and g == geo

    def test_stack_array_and_empty(self) -> None:
        stack = np.stack([_phantom(40, 40, s) for s in range(3)])
        batch, _ = preprocess_batch(stack, SPEC)
        assert np.array_equal(batch[1], preprocess_gray(stack[1], SPEC)[0])
        empty, geos = preprocess_batch([], SPEC)
        assert empty.shape == (0, 3, 64, 64) and geos == []


class TestFiles:
    def test_dicom_monochrome1_and_2_files_give_the_same_tensor(self, tmp_path: Path) -> None:
        stored = np.clip(_phantom(90, 70), 0, 4095).astype(np.uint16)
        mono2 = _write_dicom(tmp_path / "m2.dcm", stored, "MONOCHROME2")
        mono1 = _write_dicom(tmp_path / "m1.dcm", 4095 - stored, "MONOCHROME1")
        a, ga = preprocess_file(mono2, SPEC)
        b, gb = preprocess_file(mono1, SPEC)
        np.testing.assert_allclose(a, b, atol=1e-4)
        assert ga == gb == geometry_for((90, 70), 64)

    def test_dicom_goes_through_the_modality_lut_and_window(self, tmp_path: Path) -> None:
        stored = np.clip(_phantom(60, 60), 0, 4095).astype(np.uint16)
        path = _write_dicom(
            tmp_path / "ct.dcm",
            stored,
            "MONOCHROME2",
            window=(1000.0, 2000.0),
            slope=2.0,
            intercept=-1024,
        )
        image = read_image(path)
        np.testing.assert_allclose(image.values, stored * 2.0 - 1024)
        assert image.photometric == "MONOCHROME2"
        spec = PreprocessSpec(image_size=64, normalization="window")
        expected, _ = preprocess_gray(
            stored * 2.0 - 1024, spec, file_window=(1000.0, 2000.0, "LINEAR_EXACT")
        )
        assert np.array_equal(preprocess_file(path, spec)[0], expected)

    @pytest.mark.parametrize("mode", ["L", "I;16", "RGB"])
    def test_png(self, tmp_path: Path, mode: str) -> None:
        rng = np.random.default_rng(5)
        if mode == "RGB":
            arr = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
            expected = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
        elif mode == "L":
            arr = rng.integers(0, 256, (40, 30), dtype=np.uint8)
            expected = arr
        else:
            arr = rng.integers(0, 65536, (40, 30), dtype=np.uint16)
            expected = arr
        path = tmp_path / "img.png"
        Image.fromarray(arr).save(path)
        image = read_image(path)
        np.testing.assert_allclose(image.values, expected, atol=1e-3)
        assert image.photometric == "MONOCHROME2" and image.file_window is None
        np.testing.assert_allclose(
            preprocess_file(path, SPEC)[0],
            preprocess_gray(expected.astype(np.float32), SPEC)[0],
            atol=1e-5,
        )

    def test_jpeg(self, tmp_path: Path) -> None:
        arr = (np.linspace(0, 255, 50 * 40).reshape(50, 40)).astype(np.uint8)
        path = tmp_path / "img.jpg"
        Image.fromarray(arr).save(path, quality=95)
        image = read_image(path)
        assert image.values.shape == (50, 40)
        assert np.abs(image.values - arr).mean() < 3

    def test_png_frame_out_of_range(self, tmp_path: Path) -> None:
        path = tmp_path / "img.png"
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
        with pytest.raises(DataError, match=r"frame 2 asked for, the image has 1"):
            read_image(path, 2)

    def test_damaged_png(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
        with pytest.raises(DataError, match=r"bad.png: can't be read as an image"):
            read_image(path)

    def test_not_an_image(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("hello, this is not an image at all")
        with pytest.raises(DataError, match=r"notes.txt: is not a DICOM, PNG or JPEG image"):
            preprocess_file(path, SPEC)

    def test_broken_dicom_raises_the_core_error(self, tmp_path: Path) -> None:
        path = tmp_path / "broken.dcm"
        path.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
        with pytest.raises(DicomReadError, match=r"broken.dcm: "):
            preprocess_file(path, SPEC)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match=r"missing.png: can't be opened"):
            read_image(tmp_path / "missing.png")


def test_unit_image_is_in_unit_range() -> None:
    unit, geo = unit_image(_phantom(70, 50), PreprocessSpec(image_size=64, interpolation="bicubic"))
    assert unit.shape == (64, 64) and unit.min() >= 0.0 and unit.max() <= 1.0
    assert geo.resized_shape == (64, 46)
