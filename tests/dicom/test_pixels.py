"""pixels: geometry checks, lazy one-frame decoding, Modality LUT, colour and palettes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless

from desktop_app.dicom import dicomfile, pixels
from desktop_app.dicom.limits import ReadLimits
from desktop_app.infra.errors import LimitExceededError, PixelDecodeError
from tests.helpers.dicomfiles import (
    image_dataset,
    pydicom_data_file,
    pydicom_test_file,
    save,
    set_raw,
)


class TestHasPixelData:
    def test_image(self, make_image: Callable[..., Path]) -> None:
        assert pixels.has_pixel_data(dicomfile.read_header(make_image()))

    def test_report(self) -> None:
        assert not pixels.has_pixel_data(dicomfile.read_header(pydicom_test_file("test-SR.dcm")))

    def test_dataset_built_in_memory(self) -> None:
        assert pixels.has_pixel_data(image_dataset())
        assert not pixels.has_pixel_data(Dataset())


class TestNumberOfFrames:
    @pytest.mark.parametrize(
        ("value", "expected"), [(None, 1), ("", 1), ("0", 1), ("7", 7), ("abc", 1)]
    )
    def test_values(self, value: str | None, expected: int) -> None:
        ds = Dataset()
        if value is not None:
            set_raw(ds, 0x00280008, "IS", value.encode())
        assert pixels.number_of_frames(ds) == expected


class TestCheckPixelLimits:
    def test_cap_is_applied_to_the_declared_size(self) -> None:
        ds = image_dataset(rows=4, columns=4)
        ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 10
        with pytest.raises(LimitExceededError, match="over the limit of 2147483648"):
            pixels.pixel_geometry(ds, "x.dcm")

    def test_small_cap(self) -> None:
        ds = image_dataset(rows=16, columns=16)
        with pytest.raises(LimitExceededError, match="= 1024 bytes, over the limit of 1000"):
            pixels.pixel_geometry(ds, "x.dcm", ReadLimits(max_object_bytes=1000))

    def test_within_limits(self) -> None:
        pixels.pixel_geometry(image_dataset(rows=16, columns=16), "x.dcm")

    def test_short_native_data_in_a_dataset_read_elsewhere(self) -> None:
        ds = image_dataset(rows=8, columns=8)
        ds.PixelData = ds.PixelData[:-2]
        with pytest.raises(PixelDecodeError, match="PixelData holds 126 bytes but 8x8 pixels"):
            pixels.pixel_geometry(ds, "x.dcm")

    def test_no_rows(self) -> None:
        ds = image_dataset()
        del ds.Rows
        with pytest.raises(PixelDecodeError, match=r"^x.dcm: has pixel data but no readable Rows"):
            pixels.pixel_geometry(ds, "x.dcm")


class TestDecodeFrame:
    @pytest.mark.parametrize(
        ("dtype", "bits_stored"),
        [("u1", 8), ("u2", 12), ("i2", 16), ("i2", 12), ("u4", 32), ("i4", 32)],
    )
    def test_native_integer_types(
        self, make_image: Callable[..., Path], dtype: str, bits_stored: int
    ) -> None:
        rng = np.random.default_rng(1)
        info = np.iinfo(np.dtype(dtype))
        lo = max(info.min, -(2 ** (bits_stored - 1))) if info.min < 0 else 0
        hi = min(info.max, 2 ** (bits_stored - (1 if info.min < 0 else 0)) - 1)
        values = rng.integers(lo, hi, size=(5, 7), endpoint=True).astype(dtype)
        path = make_image(
            pixels=values, bits_allocated=values.itemsize * 8, bits_stored=bits_stored
        )
        out = pixels.decode_frame(path)
        assert out.dtype == values.dtype
        np.testing.assert_array_equal(out, values)

    def test_unused_high_bits_are_cleared(self, make_image: Callable[..., Path]) -> None:
        values = np.array([[0xF001, 0x0FFF]], dtype=np.uint16)  # overlay bits set above bit 11
        path = make_image(pixels=values, bits_stored=12)
        np.testing.assert_array_equal(pixels.decode_frame(path), [[1, 4095]])

    def test_signed_12_bit_is_sign_extended(self, make_image: Callable[..., Path]) -> None:
        stored = np.array([[0x0800, 0x07FF, 0x0FFF]], dtype=np.uint16).view(np.int16)
        path = make_image(pixels=stored, bits_stored=12, signed=True)
        np.testing.assert_array_equal(pixels.decode_frame(path), [[-2048, 2047, -1]])

    @pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
    def test_other_native_syntaxes(self, tmp_path: Path, syntax: str) -> None:
        values = np.arange(12, dtype=np.int16).reshape(3, 4) - 6
        path = save(image_dataset(values, transfer_syntax=syntax), tmp_path / "x.dcm")
        np.testing.assert_array_equal(pixels.decode_frame(path), values)

    def test_one_bit(self, tmp_path: Path) -> None:
        bits = np.array([[1, 0, 1, 1, 0, 0, 0, 1], [0, 1, 0, 0, 1, 1, 1, 0]], dtype=np.uint8)
        ds = image_dataset(rows=2, columns=8, bits_allocated=8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
        ds.PixelData = pydicom.pixels.pack_bits(bits)
        path = save(ds, tmp_path / "bits.dcm")
        np.testing.assert_array_equal(pixels.decode_frame(path), bits)

    @pytest.mark.parametrize(
        ("keyword", "dtype"), [("FloatPixelData", "<f4"), ("DoubleFloatPixelData", "<f8")]
    )
    def test_float_pixel_data(self, tmp_path: Path, keyword: str, dtype: str) -> None:
        values = np.array([[-1.5, 0.25], [3.0e5, np.pi]], dtype=dtype)
        ds = image_dataset(rows=2, columns=2)
        del ds.PixelData
        del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
        ds.BitsAllocated = values.itemsize * 8
        setattr(ds, keyword, values.tobytes())
        path = save(ds, tmp_path / "float.dcm")
        out = pixels.decode_frame(path)
        assert out.dtype == np.dtype(dtype).newbyteorder("=")
        np.testing.assert_array_equal(out, values)

    def test_multi_frame_native_reads_only_the_frame_asked(self, tmp_path: Path) -> None:
        stack = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
        path = save(image_dataset(stack, frames=3), tmp_path / "mf.dcm")
        ds = dicomfile.read_header(path)
        info = dicomfile.pixel_data_info(ds)
        # Scribble over frames 0 and 2 in the file: frame 1 still reads back intact.
        data = bytearray(path.read_bytes())
        frame_bytes = 4 * 5 * 2
        data[info.value_offset : info.value_offset + frame_bytes] = b"\xee" * frame_bytes
        path.write_bytes(bytes(data))
        np.testing.assert_array_equal(pixels.decode_frame(path, 1, ds=ds), stack[1])
        assert not np.array_equal(pixels.decode_frame(path, 0, ds=ds), stack[0])

    def test_multi_frame_rle(self, tmp_path: Path) -> None:
        stack = np.random.default_rng(3).integers(0, 255, size=(4, 6, 6), dtype=np.uint8)
        ds = image_dataset(stack, frames=4, bits_allocated=8)
        ds.compress(RLELossless, encoding_plugin="pydicom")
        path = save(ds, tmp_path / "rle.dcm")
        for k in (3, 0, 2):
            np.testing.assert_array_equal(pixels.decode_frame(path, k), stack[k])

    @pytest.mark.parametrize("has_bot", [False, True])
    def test_frames_split_over_fragments(self, tmp_path: Path, has_bot: bool) -> None:
        from PIL import Image

        levels = (10, 90, 170)
        jpegs = []
        for level in levels:
            buffer = io.BytesIO()
            Image.fromarray(np.full((16, 16), level, np.uint8)).save(buffer, "JPEG", quality=100)
            jpegs.append(buffer.getvalue())
        ds = image_dataset(
            np.zeros((3, 16, 16), np.uint8),
            frames=3,
            bits_allocated=8,
            transfer_syntax=JPEGBaseline8Bit,
        )
        ds.PixelData = encapsulate(jpegs, fragments_per_frame=2, has_bot=has_bot)
        path = save(ds, tmp_path / "split.dcm")
        info = dicomfile.pixel_data_info(dicomfile.read_header(path))
        assert info.fragments == 6 and bool(info.bot_entries) == has_bot
        for k in (2, 0, 1):
            frame = pixels.decode_frame(path, k)
            assert abs(float(frame.mean()) - levels[k]) < 2

    @pytest.mark.parametrize("index", [-1, 3, 100])
    def test_frame_out_of_range(self, tmp_path: Path, index: int) -> None:
        stack = np.zeros((3, 2, 2), np.uint8)
        path = save(image_dataset(stack, frames=3, bits_allocated=8), tmp_path / "x.dcm")
        with pytest.raises(
            PixelDecodeError, match=rf"frame {index} asked for, but the object has 3"
        ):
            pixels.decode_frame(path, index)

    def test_works_from_worker_threads(self, tmp_path: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        stack = np.arange(6 * 8 * 8, dtype=np.uint16).reshape(6, 8, 8)
        path = save(image_dataset(stack, frames=6), tmp_path / "mf.dcm")
        ds = dicomfile.read_header(path)
        with ThreadPoolExecutor(4) as pool:
            frames = list(pool.map(lambda k: pixels.decode_frame(path, k, ds=ds), range(6)))
        np.testing.assert_array_equal(np.stack(frames), stack)

    def test_deflated(self) -> None:
        path = pydicom_test_file("image_dfl.dcm")
        reference = pydicom.dcmread(path).pixel_array
        np.testing.assert_array_equal(pixels.decode_frame(path), reference)


class TestColour:
    @pytest.mark.parametrize(
        ("name", "mean_tol", "max_tol"),
        [
            ("SC_rgb_rle.dcm", 0, 0),
            ("SC_rgb_jpeg_gdcm.dcm", 0, 0),
            ("SC_rgb_jpeg_dcmtk.dcm", 1.5, 8),  # lossy, YBR_FULL_422 JPEG
            ("SC_ybr_full_422_uncompressed.dcm", 1.5, 8),
            ("SC_rgb_dcmtk_+eb+cy+s2.dcm", 1.5, 8),
        ],
    )
    def test_matches_plain_rgb(self, name: str, mean_tol: float, max_tol: float) -> None:
        reference = pixels.load_frame(pydicom_data_file("SC_rgb.dcm"))
        frame = pixels.load_frame(pydicom_test_file(name))
        assert frame.is_color and frame.values.shape == (100, 100, 3)
        diff = np.abs(frame.values.astype(float) - reference.values.astype(float))
        assert diff.mean() <= mean_tol
        assert diff.max() <= max_tol
        # The reference is a known test card: pure red in the top left corner.
        np.testing.assert_array_equal(reference.values[0, 0], [255, 0, 0])

    def test_planar_configuration(self) -> None:
        planar = pixels.decode_frame(pydicom_data_file("color-pl.dcm"))
        interleaved = pixels.decode_frame(pydicom_data_file("color-px.dcm"))
        np.testing.assert_array_equal(planar, interleaved)

    def test_synthetic_planar(self, tmp_path: Path) -> None:
        rgb = np.random.default_rng(5).integers(0, 255, size=(3, 4, 3), dtype=np.uint8)
        path = save(
            image_dataset(rgb, photometric="RGB", planar=1, bits_allocated=8), tmp_path / "p.dcm"
        )
        np.testing.assert_array_equal(pixels.decode_frame(path), rgb)

    @pytest.mark.parametrize("name", ["examples_palette.dcm"])
    def test_palette_colour_is_mapped_to_rgb(self, name: str) -> None:
        path = pydicom_test_file(name)
        frame = pixels.load_frame(path)
        ds = pydicom.dcmread(path)
        expected = pydicom.pixels.apply_color_lut(ds.pixel_array, ds)
        assert frame.is_color and frame.photometric == "PALETTE COLOR"
        assert frame.values.shape == (*ds.pixel_array.shape, 3)
        np.testing.assert_array_equal(frame.values, expected)

    def test_grayscale_luma(self) -> None:
        frame = pixels.Frame(
            values=np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]]], np.uint8),
            photometric="RGB",
            is_color=True,
            windows=(),
            pixel_spacing=None,
            rescale_note=None,
        )
        np.testing.assert_allclose(
            pixels.grayscale(frame), [[0.299 * 255, 0.587 * 255, 0.114 * 255, 10]], rtol=1e-6
        )


class TestModalityLut:
    def test_rescale(self) -> None:
        ds = image_dataset(RescaleSlope="2", RescaleIntercept="-1024")
        out = pixels.apply_modality_lut(np.array([[0, 10]], np.int16), ds)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, [[-1024, -1004]])

    @pytest.mark.parametrize(
        ("slope", "note"),
        [
            ("0", "Rescale Slope 0 ignored"),
            ("abc", "Rescale Slope unreadable, ignored"),
            (None, None),
        ],
    )
    def test_bad_slope_is_identity_with_a_note(
        self, make_image: Callable[..., Path], slope: str | None, note: str | None
    ) -> None:
        values = np.array([[1, 2], [3, 4]], np.uint16)
        extra = {"RescaleIntercept": b"10"}
        if slope is not None:
            extra["RescaleSlope"] = slope.encode()
        frame = pixels.load_frame(make_image(pixels=values, **extra))
        assert frame.rescale_note == note
        np.testing.assert_array_equal(frame.values, values + 10)

    def test_modality_lut_sequence(self) -> None:
        path = pydicom_data_file("mlut_18.dcm")
        ds = pydicom.dcmread(path)
        expected = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
        frame = pixels.load_frame(path)
        np.testing.assert_allclose(frame.values, expected)

    def test_per_frame_functional_groups(self) -> None:
        ds = image_dataset(np.zeros((2, 2, 2), np.uint16), frames=2)
        groups = []
        for slope, intercept in ((1, -1000), (2, 5)):
            transform = Dataset()
            transform.RescaleSlope = str(slope)
            transform.RescaleIntercept = str(intercept)
            group = Dataset()
            group.PixelValueTransformationSequence = [transform]
            groups.append(group)
        ds.PerFrameFunctionalGroupsSequence = groups
        stored = np.array([[0, 1], [2, 3]], np.uint16)
        np.testing.assert_array_equal(pixels.apply_modality_lut(stored, ds, 0), stored - 1000.0)
        np.testing.assert_array_equal(pixels.apply_modality_lut(stored, ds, 1), stored * 2 + 5.0)

    def test_shared_functional_group(self) -> None:
        ds = image_dataset()
        transform = Dataset()
        transform.RescaleSlope = "0.5"
        transform.RescaleIntercept = "0"
        shared = Dataset()
        shared.PixelValueTransformationSequence = [transform]
        ds.SharedFunctionalGroupsSequence = [shared]
        out = pixels.apply_modality_lut(np.array([[4, 8]], np.uint16), ds, 3)
        np.testing.assert_array_equal(out, [[2, 4]])


class TestLoadFrame:
    def test_monochrome1_kept_and_flagged(self, make_image: Callable[..., Path]) -> None:
        frame = pixels.load_frame(make_image(photometric="MONOCHROME1"))
        assert frame.photometric == "MONOCHROME1" and not frame.is_color

    @pytest.mark.parametrize(
        ("elements", "spacing"),
        [
            ({"PixelSpacing": [0.5, 0.25]}, (0.5, 0.25)),
            ({"ImagerPixelSpacing": [0.1, 0.1]}, (0.1, 0.1)),
            ({"PixelSpacing": [0.5, 0.25], "ImagerPixelSpacing": [0.1, 0.1]}, (0.5, 0.25)),
            ({"PixelSpacing": ["0", "1"]}, None),
            ({}, None),
        ],
    )
    def test_pixel_spacing(
        self, make_image: Callable[..., Path], elements: dict, spacing: tuple | None
    ) -> None:
        assert pixels.load_frame(make_image(**elements)).pixel_spacing == spacing

    def test_enhanced_multiframe_spacing_and_windows(self) -> None:
        path = pydicom_data_file("eCT_Supplemental.dcm")
        ds = pydicom.dcmread(path)
        frame = pixels.load_frame(path, 1)
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        assert frame.pixel_spacing == pytest.approx(tuple(float(v) for v in measures.PixelSpacing))
        assert frame.windows, "the enhanced CT carries a Frame VOI LUT functional group"
