"""RLE Lossless through pylibjpeg-rle when the frame's header is sane, pydicom's decoder
otherwise (desktop_app.dicom.pixels.rle.decode_rle_fast): same pixels either way, and a Rust panic
on a damaged segment falls back quietly (nothing on stderr)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from desktop_app.dicom import pixels
from desktop_app.dicom.pixels import rle
from tests.helpers.dicomfiles import image_dataset, pydicom_test_file, save


def _header(*offsets: int) -> bytes:
    return struct.pack("<16L", len(offsets), *offsets, *([0] * (15 - len(offsets))))


class TestRleHeaderOk:
    @pytest.mark.parametrize(
        ("frame", "segments", "ok"),
        [
            (_header(64) + b"\x00\x07", 1, True),
            (_header(64, 66) + b"\x00\x07\x00\x08", 2, True),
            (_header(64) + b"\x00\x07", 2, False),  # count disagrees with the image
            (_header(65) + b"\x00\x07", 1, False),  # first offset not 64
            (_header(64, 64) + b"\x00\x07", 2, False),  # not increasing
            (_header(64, 90) + b"\x00\x07", 2, False),  # past the end
            (_header(64)[:40], 1, False),  # truncated header
            (struct.pack("<16L", 1, 64, 70, *([0] * 13)) + b"\x00\x07", 1, False),  # stray offset
            (_header(64) + b"\x00\x07", 0, False),
        ],
    )
    def test_cases(self, frame: bytes, segments: int, ok: bool) -> None:
        assert rle.rle_header_ok(frame, segments) is ok


def _pydicom_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rle, "decode_rle_fast", lambda *_a, **_k: None)


class TestRleFastPath:
    @pytest.mark.parametrize("bits", [8, 16])
    def test_same_pixels_as_pydicom(
        self, tmp_path: Path, bits: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rng = np.random.default_rng(bits)
        dtype = np.uint8 if bits == 8 else np.uint16
        image = rng.integers(0, 2**bits - 1, size=(37, 29)).astype(dtype)
        image[:10] = 5  # runs as well as literals
        ds = image_dataset(image, bits_allocated=bits)
        ds.compress(RLELossless, encoding_plugin="pydicom")
        path = save(ds, tmp_path / "rle.dcm")
        calls: list[bool] = []
        fast = rle.decode_rle_fast

        def spy(*args: object, **kwargs: object) -> np.ndarray | None:
            out = fast(*args, **kwargs)  # type: ignore[arg-type]
            calls.append(out is not None)
            return out

        monkeypatch.setattr(rle, "decode_rle_fast", spy)
        got = pixels.decode_frame(path)
        assert calls == [True]
        _pydicom_only(monkeypatch)
        np.testing.assert_array_equal(got, pixels.decode_frame(path))
        np.testing.assert_array_equal(got, image)

    @pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm"])
    def test_corpus_files_decode_the_same(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        path = pydicom_test_file(name)
        got = pixels.decode_frame(path)
        _pydicom_only(monkeypatch)
        np.testing.assert_array_equal(got, pixels.decode_frame(path))

    def test_a_panic_falls_back_quietly(
        self,
        tmp_path: Path,
        capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # 16-bit 4x4: the high-byte segment replicates 20 bytes where 16 fit; pylibjpeg-rle
        # indexes past its buffer and panics; pydicom's decoder trims the excess
        frame = _header(64, 66) + bytes([256 - 19, 1]) + bytes([256 - 15, 7])
        ds = image_dataset(np.zeros((4, 4), np.uint16), bits_allocated=16)
        ds.PixelData = encapsulate([frame])
        ds.file_meta.TransferSyntaxUID = RLELossless
        path = save(ds, tmp_path / "overrun.dcm")
        with caplog.at_level(logging.DEBUG, logger="desktop_app.dicom.pixels"):
            got = pixels.decode_frame(path)
        assert "pylibjpeg-rle failed (PanicException)" in caplog.text
        out, err = capfd.readouterr()
        assert err == "" and out == ""
        _pydicom_only(monkeypatch)
        np.testing.assert_array_equal(got, pixels.decode_frame(path))
        np.testing.assert_array_equal(got, np.full((4, 4), 0x0107, np.uint16))
