"""dicomfile: sniffing, safe header/dataset reading, the structure walk and its limits."""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from desktop_app.core import dicomfile
from desktop_app.core.errors import DicomReadError, LimitExceededError, NotDicomError
from desktop_app.core.limits import DEFAULT_LIMITS, ReadLimits
from tests.core.conftest import explicit, pydicom_test_file, raw_file


class TestSniffDicom:
    @pytest.mark.parametrize(
        "name",
        [
            "CT_small.dcm",
            "ExplVR_LitEndNoMeta.dcm",
            "ExplVR_BigEndNoMeta.dcm",
            "MR_small_implicit.dcm",
        ],
    )
    def test_dicom(self, name: str) -> None:
        assert dicomfile.sniff_dicom(pydicom_test_file(name))

    @pytest.mark.parametrize(
        "content",
        [b"", b"x", b"\x89PNG\r\n\x1a\n" + b"\x00" * 300, b"hello world\n" * 20, b"%PDF-1.7\n"],
    )
    def test_not_dicom(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "f.dcm"
        path.write_bytes(content)
        assert not dicomfile.sniff_dicom(path)

    def test_folder_and_missing(self, tmp_path: Path) -> None:
        assert not dicomfile.sniff_dicom(tmp_path)
        assert not dicomfile.sniff_dicom(tmp_path / "missing")


class TestReadHeader:
    def test_stops_before_pixels_but_knows_where_they_are(
        self, make_image: Callable[..., Path]
    ) -> None:
        values = np.arange(16, dtype=np.uint16).reshape(4, 4)
        path = make_image(pixels=values)
        ds = dicomfile.read_header(path)
        assert "PixelData" not in ds
        info = dicomfile.pixel_data_info(ds)
        assert info is not None and not info.encapsulated
        assert info.length == 32 and info.keyword == "PixelData" and info.vr == "OW"
        raw = path.read_bytes()[info.value_offset : info.value_offset + info.length]
        np.testing.assert_array_equal(np.frombuffer(raw, "<u2").reshape(4, 4), values)
        assert info.transfer_syntax == ExplicitVRLittleEndian

    @pytest.mark.parametrize(
        ("name", "syntax", "implicit"),
        [
            ("ExplVR_LitEndNoMeta.dcm", ExplicitVRLittleEndian, False),
            ("ExplVR_BigEndNoMeta.dcm", ExplicitVRBigEndian, False),
        ],
    )
    def test_files_without_meta(self, name: str, syntax: str, implicit: bool) -> None:
        ds = dicomfile.read_header(pydicom_test_file(name))
        assert ds.Modality == "RTPLAN"
        scan = dicomfile.scan_file(pydicom_test_file(name))
        assert scan.transfer_syntax == syntax and scan.implicit_vr == implicit
        assert not scan.has_meta

    def test_encapsulated_info(self) -> None:
        ds = dicomfile.read_header(pydicom_test_file("SC_rgb_rle_2frame.dcm"))
        info = dicomfile.pixel_data_info(ds)
        assert info is not None and info.encapsulated
        assert info.fragments == 2 and len(info.fragment_items) == 2
        assert info.bot_valid

    def test_read_dataset_has_pixels(self) -> None:
        path = pydicom_test_file("MR_small.dcm")
        ds = dicomfile.read_dataset(path)
        assert len(ds.PixelData) == 64 * 64 * 2
        assert dicomfile.pixel_data_info(ds).length == 64 * 64 * 2

    def test_big_values_deferred(self, tmp_path: Path) -> None:
        body = explicit(0x00091010, "OB", b"\x01" * (2 << 20))
        path = raw_file(tmp_path / "big.dcm", body)
        ds = dicomfile.read_header(path)
        assert ds.get_item(0x00091010, keep_deferred=True).value is None  # still in the file
        assert len(ds[0x00091010].value) == 2 << 20  # read on use

    def test_no_warnings_escape(self) -> None:
        # SC_rgb_jpeg.dcm declares explicit VR but is implicit: pydicom warns; we don't.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = dicomfile.read_header(pydicom_test_file("SC_rgb_jpeg.dcm"))
        assert "unlike its transfer syntax" in " ".join(dicomfile.scan_notes(ds))

    def test_threads(self) -> None:
        paths = [pydicom_test_file(n) for n in ("CT_small.dcm", "MR_small.dcm", "SC_rgb_jpeg.dcm")]
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    for p in paths:
                        dicomfile.read_header(p)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []

    def test_corrupt_vr_becomes_un_instead_of_raising(self, tmp_path: Path) -> None:
        body = explicit(0x00080060, "CS", b"CT") + b"\x09\x00\x01\x10DW\x04\x00abcd"
        path = raw_file(tmp_path / "vr.dcm", body)
        ds = dicomfile.read_header(path)
        elements = list(ds.iterall())  # would raise NotImplementedError without the hook
        assert ds[0x00091001].VR == "UN" and ds[0x00091001].value == b"abcd"
        assert len(elements) == 2


class TestLimits:
    def test_defaults(self) -> None:
        assert DEFAULT_LIMITS.max_object_bytes == 2 * 1024**3
        assert DEFAULT_LIMITS.max_sequence_depth == 16

    @pytest.mark.parametrize("value", [0, -1, 1.5, True])
    def test_invalid(self, value: object) -> None:
        with pytest.raises(ValueError, match="should be a positive integer"):
            ReadLimits(max_elements=value)  # type: ignore[arg-type]

    def test_header_bytes(self, tmp_path: Path) -> None:
        path = raw_file(tmp_path / "h.dcm", explicit(0x00091010, "OB", b"\x00" * 5000))
        with pytest.raises(LimitExceededError, match="header values exceed 4096 bytes"):
            dicomfile.read_header(path, limits=ReadLimits(max_header_bytes=4096))

    def test_depth_limit_configurable(self, tmp_path: Path) -> None:
        inner = explicit(0x0040A160, "UT", b"x")
        for _ in range(3):
            inner = explicit(
                0x0040A730, "SQ", b"\xfe\xff\x00\xe0" + len(inner).to_bytes(4, "little") + inner
            )
        path = raw_file(tmp_path / "d.dcm", inner)
        dicomfile.read_header(path, limits=ReadLimits(max_sequence_depth=3))
        with pytest.raises(LimitExceededError, match="nested deeper than 2 levels"):
            dicomfile.read_header(path, limits=ReadLimits(max_sequence_depth=2))


class TestErrors:
    def test_messages_are_one_line_with_path_and_hint(self, tmp_path: Path) -> None:
        path = tmp_path / "note.txt"
        path.write_text("not an image\n")
        with pytest.raises(NotDicomError) as info:
            dicomfile.read_header(path)
        assert str(info.value) == (
            f"{path}: has no 'DICM' marker at byte 128 and does not start with a DICOM "
            "element (this does not look like a DICOM file)"
        )
        assert info.value.path == path

    @pytest.mark.parametrize(
        ("raised", "reason"),
        [
            (RecursionError("too deep"), "can't be read safely (RecursionError)"),
            (MemoryError(), "can't be read safely (MemoryError)"),
            (ValueError("bad\nvalue"), "can't be read as DICOM: bad value"),
            (type("PanicException", (BaseException,), {})("rust panic"), "rust panic"),
        ],
    )
    def test_pydicom_failure_is_wrapped(
        self, monkeypatch: pytest.MonkeyPatch, raised: BaseException, reason: str
    ) -> None:
        path = pydicom_test_file("CT_small.dcm")

        def fail(*args: object, **kwargs: object) -> None:
            raise raised

        monkeypatch.setattr(pydicom, "dcmread", fail)
        with pytest.raises(DicomReadError, match=re.escape(reason)) as info:
            dicomfile.read_header(path)
        assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_round_trip_syntaxes(tmp_path: Path, syntax: str) -> None:
    from tests.core.conftest import image_dataset, save

    path = save(image_dataset(transfer_syntax=syntax, Modality="CT"), tmp_path / "x.dcm")
    ds = dicomfile.read_header(path)
    assert ds.Modality == "CT"
    assert dicomfile.pixel_data_info(ds).little_endian == (syntax != ExplicitVRBigEndian)
    assert pydicom.dcmread(path).Modality == "CT"
