"""dicomfile: sniffing, safe header/dataset reading, the structure walk and its limits."""

from __future__ import annotations

import random
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from desktop_app.dicom import dicomfile, headerscan
from desktop_app.dicom.headerinfo import RAW_TAGS
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.infra.errors import DicomReadError, LimitExceededError, NotDicomError
from desktop_app.phantoms.studies import write_ct_series
from tests.helpers.dicomfiles import (
    UNDEFINED,
    explicit,
    image_elements,
    implicit,
    item,
    pydicom_data_files,
    pydicom_test_file,
    pydicom_test_files,
    raw_file,
    sequence_delimiter,
    us,
)


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
    from tests.helpers.dicomfiles import image_dataset, save

    path = save(image_dataset(transfer_syntax=syntax, Modality="CT"), tmp_path / "x.dcm")
    ds = dicomfile.read_header(path)
    assert ds.Modality == "CT"
    assert dicomfile.pixel_data_info(ds).little_endian == (syntax != ExplicitVRBigEndian)
    assert pydicom.dcmread(path).Modality == "CT"


# --------------------------------------------------------------------------- scan_header


def _outcome(fn: Callable[..., object], path: Path, **kwargs: object) -> object:
    """A scan's ScanResult (path left out) or its error as (type, message)."""
    try:
        result = fn(path, **kwargs)
    except (NotDicomError, DicomReadError, LimitExceededError) as err:
        return type(err).__name__, str(err)
    scan = result[0] if isinstance(result, tuple) else result
    assert isinstance(scan, dicomfile.ScanResult)
    return replace(scan, path=Path("."))


def _top(path: Path, *, quick: bool, limits: ReadLimits = DEFAULT_LIMITS) -> tuple[object, ...]:
    _, top = dicomfile.scan_header(path, limits=limits, wanted=RAW_TAGS, quick=quick)
    return top.meta, top.values, top.command_group


@pytest.fixture
def quick_walks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files that the quick walk accepted during the test."""
    accepted: list[Path] = []
    walk = headerscan._quick_walk

    def counting(buf: object, size: int, p: Path, *args: object) -> object:
        result = walk(buf, size, p, *args)  # type: ignore[arg-type]
        accepted.append(p)
        return result

    monkeypatch.setattr(headerscan, "_quick_walk", counting)
    return accepted


CORPUS = pydicom_test_files() + pydicom_data_files()


class TestScanHeader:
    """scan_header: the same checks, errors and ScanResult as scan_file, faster."""

    @pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
    def test_corpus_file_same_as_scan_file(self, path: Path) -> None:
        assert _outcome(dicomfile.scan_header, path) == _outcome(dicomfile.scan_file, path)
        if not isinstance(_outcome(dicomfile.scan_file, path), tuple):
            assert _top(path, quick=True) == _top(path, quick=False)

    def test_most_corpus_files_take_the_quick_walk(self, quick_walks: list[Path]) -> None:
        for path in CORPUS:
            _outcome(dicomfile.scan_header, path)
        # 122 of 147 today: all but big endian, deflated, no meta, odd structure.
        assert len(quick_walks) >= (100 if len(CORPUS) > 100 else len(CORPUS) // 2)

    def test_synthetic_ct_slice(self, tmp_path: Path, quick_walks: list[Path]) -> None:
        (path, *_) = write_ct_series(tmp_path, 0, slices=2, rows=16).paths
        scan, top = dicomfile.scan_header(path, wanted={0x00100010, 0x00280010})
        assert scan == dicomfile.scan_file(path) and quick_walks == [path]
        assert top.values == {0x00100010: (b"PN", b"PHANTOM^0000"), 0x00280010: (b"US", us(16))}
        assert scan.pixel is not None and scan.pixel.length == 16 * 16 * 2

    @pytest.mark.parametrize("private_bytes", [20_000, 1_100_000], ids=["grows", "maps"])
    def test_header_longer_than_the_first_read(
        self, tmp_path: Path, quick_walks: list[Path], private_bytes: int
    ) -> None:
        body = (
            explicit(0x00090010, "LO", b"PRIVATE")
            + explicit(0x00091001, "OB", b"\x01" * private_bytes)
            + explicit(0x00100010, "PN", b"After^Private")
            + image_elements()
            + explicit(0x7FE00010, "OB", b"\x00" * 4)
        )
        path = raw_file(tmp_path / "long.dcm", body)
        assert _outcome(dicomfile.scan_header, path) == _outcome(dicomfile.scan_file, path)
        assert _top(path, quick=True) == _top(path, quick=False)
        assert quick_walks  # read on (or mapped), not handed to the full walk
        assert dicomfile.scan_header(path, wanted={0x00100010})[1].values[0x00100010] == (
            b"PN",
            b"After^Private ",  # padded to even length
        )

    @pytest.mark.parametrize(
        "limits",
        [
            ReadLimits(max_elements=12),
            ReadLimits(max_header_bytes=64),
            ReadLimits(max_sequence_depth=1),
            ReadLimits(max_object_bytes=3),
        ],
        ids=["elements", "header-bytes", "depth", "object-bytes"],
    )
    @pytest.mark.parametrize("sequences", [True, False], ids=["sequences", "flat"])
    def test_limits_give_the_same_errors(
        self, tmp_path: Path, limits: ReadLimits, sequences: bool
    ) -> None:
        nested = item(explicit(0x00081150, "UI", b"1.2.3"))
        inner = explicit(0x00081150, "UI", b"1.2.3") + explicit(0x00081140, "SQ", nested)
        body = (
            (explicit(0x00081140, "SQ", item(inner) + item(inner, undefined=True)) * sequences)
            + explicit(0x00100010, "PN", b"A^B" * 30)
            + image_elements()
            + explicit(0x7FE00010, "OB", b"\x00" * 4)
        )
        path = raw_file(tmp_path / "limits.dcm", body)
        assert not isinstance(_outcome(dicomfile.scan_file, path), tuple)
        refused = _outcome(dicomfile.scan_file, path, limits=limits)
        if not sequences and limits.max_sequence_depth == 1:
            assert not isinstance(refused, tuple)  # nothing nested to refuse
        else:
            assert isinstance(refused, tuple) and refused[0] == "LimitExceededError"
        assert _outcome(dicomfile.scan_header, path, limits=limits) == refused

    @pytest.mark.parametrize("seed", range(3))
    def test_mutated_files_same_as_scan_file(self, tmp_path: Path, seed: int) -> None:
        """Bytes overwritten, lengths changed, bytes inserted, files cut: the quick walk gives
        the full walk's result, error and top-level values, case by case."""
        rng = random.Random(seed)
        names = ["CT_small.dcm", "MR_small_implicit.dcm", "SC_rgb_rle_2frame.dcm", "rtplan.dcm"]
        sources = [pydicom_test_file(name).read_bytes() for name in names]
        patterns = [b"\xff\xff\xff\xff", b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0", b"SQ\x00\x00"]
        patterns += [b"UN\x00\x00", b"\x00\x00\x00\x00", b"\x10\x00\x00\x00"]
        limits = [DEFAULT_LIMITS, ReadLimits(max_elements=60), ReadLimits(max_sequence_depth=1)]
        path = tmp_path / "m.dcm"
        for _ in range(120):
            data = bytearray(rng.choice(sources))
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(min(len(data), 3000))
                if rng.random() < 0.5:
                    data[at] = rng.randrange(256)
                elif rng.random() < 0.7:
                    data[at : at + 4] = rng.choice(patterns)
                else:
                    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
            if rng.random() < 0.2:
                data = data[: rng.randrange(1, len(data))]
            path.write_bytes(bytes(data))
            limit = rng.choice(limits)
            full = _outcome(dicomfile.scan_file, path, limits=limit)
            assert _outcome(dicomfile.scan_header, path, limits=limit) == full
            if not isinstance(full, tuple):
                assert _top(path, quick=True, limits=limit) == _top(path, quick=False, limits=limit)

    def test_read_header_gets_the_same_dataset(self) -> None:
        path = pydicom_test_file("CT_small.dcm")
        scan, _ = dicomfile.scan_header(path)
        ds = dicomfile.read_scanned_header(scan)
        assert ds == pydicom.dcmread(path, stop_before_pixels=True)
        assert dicomfile.pixel_data_info(ds) == scan.pixel


_PIXELS = explicit(0x7FE00010, "OB", b"\x00" * 4)
_ITEM_TAG = b"\xfe\xff\x00\xe0"


def _implicit_file(path: Path, body: bytes) -> Path:
    return raw_file(path, body + implicit(0x7FE00010, b"\x00" * 4), ImplicitVRLittleEndian)


STRUCTURES: dict[str, Callable[[Path], Path]] = {
    "implicit SQ by dictionary, no item": lambda p: _implicit_file(
        p, implicit(0x00081140, b"\x08\x00\x50\x11" + b"\x04\x00\x00\x001.2\x00")
    ),
    "implicit SQ by dictionary, items": lambda p: _implicit_file(
        p, implicit(0x00081140, item(implicit(0x00081150, b"1.2.3")))
    ),
    "implicit private value starting with an item": lambda p: _implicit_file(
        p, implicit(0x00091010, item(implicit(0x00081150, b"1.2")))
    ),
    "implicit undefined-length value, not a sequence": lambda p: _implicit_file(
        p, implicit(0x00091010, item(b"\x01\x02") + sequence_delimiter(), length=UNDEFINED)
    ),
    "implicit short value of a SQ tag": lambda p: _implicit_file(
        p, implicit(0x00081140, b"\x01\x02\x03\x04")
    ),
    "UN holding a sequence": lambda p: raw_file(
        p, explicit(0x00091010, "UN", item(implicit(0x00081150, b"1.2"))) + _PIXELS
    ),
    "UN undefined length": lambda p: raw_file(
        p,
        explicit(0x00091010, "UN", item(implicit(0x00081150, b"1.2")) + sequence_delimiter())[:8]
        + b"\x00\x00\xff\xff\xff\xff"
        + item(implicit(0x00081150, b"1.2"))
        + sequence_delimiter()
        + _PIXELS,
    ),
    "UN plain bytes": lambda p: raw_file(p, explicit(0x00091010, "UN", b"\x01" * 12) + _PIXELS),
    "empty SQ": lambda p: raw_file(p, explicit(0x00081140, "SQ", b"") + _PIXELS),
    "SQ with a non-item inside": lambda p: raw_file(
        p, explicit(0x00081140, "SQ", explicit(0x00081150, "UI", b"1.2")) + _PIXELS
    ),
    "SQ shorter than an item": lambda p: raw_file(
        p, explicit(0x00081140, "SQ", b"\x01\x02\x03\x04") + _PIXELS
    ),
    "trailing bytes": lambda p: raw_file(p, image_elements() + _PIXELS + b"\x01\x02\x03"),
    "padding after the pixels": lambda p: raw_file(
        p, image_elements() + _PIXELS + explicit(0xFFFCFFFC, "OB", b"\x00" * 6)
    ),
    "float then plain pixel data": lambda p: raw_file(
        p, explicit(0x7FE00008, "OF", b"\x00" * 16) + _PIXELS
    ),
    "duplicate tag": lambda p: raw_file(
        p, explicit(0x00100010, "PN", b"A") + explicit(0x00100010, "PN", b"B") + _PIXELS
    ),
    "tags out of order": lambda p: raw_file(
        p, explicit(0x00100020, "LO", b"ID") + explicit(0x00100010, "PN", b"A") + _PIXELS
    ),
    "item delimiter at the top level": lambda p: raw_file(
        p, explicit(0x00100010, "PN", b"A") + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + _PIXELS
    ),
    "item at the top level": lambda p: raw_file(p, item(b"") + _PIXELS),
    "implicit data under an explicit syntax": lambda p: raw_file(
        p, implicit(0x00100010, b"A^B") + implicit(0x7FE00010, b"\x00" * 4)
    ),
    "explicit data under the implicit syntax": lambda p: raw_file(
        p, explicit(0x00100010, "PN", b"A^B") + _PIXELS, ImplicitVRLittleEndian
    ),
    "invalid VR": lambda p: raw_file(p, explicit(0x00100010, "pn", b"A^B") + _PIXELS),
    "unknown capital VR": lambda p: raw_file(p, explicit(0x00100010, "XX", b"A^B") + _PIXELS),
    "undefined-length pixel data, no delimiter": lambda p: raw_file(
        p, explicit(0x7FE00010, "OB", item(b"") + item(b"\x01\x02"), length=UNDEFINED)
    ),
    "pixel data past the end": lambda p: raw_file(
        p, explicit(0x7FE00010, "OB", b"\x00" * 4, length=100)
    ),
    "element past the end": lambda p: raw_file(p, explicit(0x00100010, "PN", b"A^B", length=99)),
    "no pixel data": lambda p: raw_file(p, explicit(0x00100010, "PN", b"A^B")),
    "implicit item delimiter at the top level": lambda p: _implicit_file(
        p, implicit(0x00100010, b"A") + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    ),
    "implicit item at the top level": lambda p: _implicit_file(p, item(b"")),
    "implicit item delimiter at the end": lambda p: raw_file(
        p, implicit(0x00100010, b"A") + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00", ImplicitVRLittleEndian
    ),
    "implicit data that reads as explicit": lambda p: _implicit_file(
        p,
        # the length 0x4F4C is "LO" read as a VR: pydicom (and the walk) switch to explicit
        b"\x09\x00\x10\x00"
        + (0x4F4C).to_bytes(4, "little")
        + explicit(0x00100010, "PN", b"A^B")
        + explicit(0x00091001, "OB", b"\x00" * (0x4F4C - 12 - 12)),
    ),
    "UN holding explicit items": lambda p: raw_file(
        p, explicit(0x00091010, "UN", item(explicit(0x00081150, "UI", b"1.2.3"))) + _PIXELS
    ),
    "command group": lambda p: raw_file(
        p, implicit(0x00000002, b"1.2") + explicit(0x00100010, "PN", b"A") + _PIXELS
    ),
}


@pytest.mark.parametrize("build", STRUCTURES.values(), ids=STRUCTURES.keys())
def test_structure_edge_cases_same_as_scan_file(
    tmp_path: Path, build: Callable[[Path], Path]
) -> None:
    path = build(tmp_path / "s.dcm")
    assert _outcome(dicomfile.scan_header, path) == _outcome(dicomfile.scan_file, path)
    if not isinstance(_outcome(dicomfile.scan_file, path), tuple):
        assert _top(path, quick=True) == _top(path, quick=False)
