"""Malformed and hostile files are refused in one line naming the path, quickly and without
allocating what they declare; odd-but-valid files still decode.

Each case is small: a nesting bomb is a few tens of kilobytes, a size bomb declares gigabytes
in a header of a few hundred bytes.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from desktop_app.dicom import dicomfile, display, pixels
from desktop_app.dicom.limits import ReadLimits
from desktop_app.infra.errors import (
    DicomReadError,
    LimitExceededError,
    NotDicomError,
    PixelDecodeError,
    RadAssistError,
)
from tests.helpers.dicomfiles import (
    UNDEFINED,
    explicit,
    image_dataset,
    image_elements,
    implicit,
    item,
    meta_header,
    raw_file,
    save,
    sequence_delimiter,
    us,
)


def refuse(path: Path, error: type[RadAssistError], reason: str) -> str:
    """Run the inspect path (header, then every frame) and check the one-line refusal."""
    with pytest.raises(error, match=re.escape(reason)) as info:
        ds = dicomfile.read_header(path)
        for k in range(pixels.number_of_frames(ds)):
            pixels.load_frame(path, k, ds=ds)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def pixel_element(data: bytes, vr: str = "OB") -> bytes:
    return explicit(0x7FE00010, vr, data)


# --------------------------------------------------------------------------- not DICOM


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty (0 bytes)"),
        (b"\x00", "has no 'DICM' marker at byte 128"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "has no 'DICM' marker at byte 128"),
        (b"Patient notes: nothing to see here.\n" * 10, "has no 'DICM' marker"),
        (b"\x00" * 131, "has no 'DICM' marker"),
        (b"\x00" * 128 + b"DIC", "has no 'DICM' marker"),
    ],
    ids=["empty", "one-byte", "png", "text", "131-zeros", "cut-marker"],
)
def test_not_dicom_is_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(content)
    refuse(path, NotDicomError, reason)
    assert not dicomfile.sniff_dicom(path)


def test_folder_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotDicomError, match="is a folder"):
        dicomfile.read_header(tmp_path)
    with pytest.raises(DicomReadError, match="can't be opened"):
        dicomfile.read_header(tmp_path / "missing.dcm")


# --------------------------------------------------------------------------- lengths


def test_truncated_meta_header(tmp_path: Path) -> None:
    data = meta_header()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) - 10])
    refuse(path, DicomReadError, "declares 20 bytes but only 10 remain")


def test_huge_declared_element_length(tmp_path: Path) -> None:
    body = explicit(0x00081030, "UT", b"x" * 8, length=0xFFFFFFF0)
    path = raw_file(tmp_path / "huge.dcm", body)
    refuse(
        path,
        DicomReadError,
        "element (0008,1030) at byte 248 declares 4294967280 bytes but only 8 remain",
    )


def test_truncated_pixel_data(tmp_path: Path) -> None:
    ds = image_dataset(rows=16, columns=16)
    path = save(ds, tmp_path / "full.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:-100])
    refuse(cut, DicomReadError, "declares 512 bytes but only 412 remain")


def test_pixel_data_shorter_than_declared(tmp_path: Path) -> None:
    body = image_elements(rows=64, columns=64) + pixel_element(b"\x00" * 100)
    path = raw_file(tmp_path / "short.dcm", body)
    refuse(path, PixelDecodeError, "PixelData holds 100 bytes but 64x64 pixels x 1 frames")


def test_huge_rows_columns_frames_refused_before_allocating(tmp_path: Path) -> None:
    body = image_elements(rows=65535, columns=65535, frames=b"1000 ", bits_allocated=16)
    body += pixel_element(b"\x00" * 64, "OW")
    path = raw_file(tmp_path / "bomb.dcm", body)
    refuse(path, LimitExceededError, "over the limit of 2147483648")


def test_frames_over_limit(tmp_path: Path) -> None:
    body = image_elements(rows=1, columns=1, frames=b"999999999 ") + pixel_element(b"\x00" * 2)
    path = raw_file(tmp_path / "frames.dcm", body)
    refuse(path, LimitExceededError, "declares 999999999 frames, over the limit of 100000")


def test_configurable_cap(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    path = make_image(rows=64, columns=64, bits_allocated=16)
    small = ReadLimits(max_object_bytes=4096)
    with pytest.raises(LimitExceededError, match="8192 bytes, over the limit of 4096"):
        pixels.decode_frame(path, limits=small)
    assert pixels.decode_frame(path).shape == (64, 64)


# --------------------------------------------------------------------------- pixel module


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"bits_allocated": 0}, "Bits Allocated 0 is not supported"),
        ({"bits_allocated": 3}, "Bits Allocated 3 is not supported"),
        ({"bits_allocated": 64}, "Bits Allocated 64 is not supported for PixelData"),
        ({"samples": 0}, "Samples per Pixel 0 is not supported"),
        ({"samples": 4, "photometric": b"CMYK"}, "Samples per Pixel 4 is not supported"),
        ({"bits_allocated": 8, "bits_stored": 12}, "Bits Stored 12 does not fit Bits Allocated 8"),
        ({"rows": 0}, "declares Rows 0 and Columns 2"),
        ({"samples": 3}, "Photometric Interpretation MONOCHROME2 does not fit Samples per Pixel 3"),
        ({"photometric": b"HSV "}, "Photometric Interpretation 'HSV' is not supported"),
        ({"frames": b"-1"}, "Number of Frames -1 is invalid"),
    ],
)
def test_bad_image_pixel_module(tmp_path: Path, kwargs: dict, reason: str) -> None:
    body = image_elements(**kwargs) + pixel_element(b"\x00" * 64)
    path = raw_file(tmp_path / "bad.dcm", body)
    refuse(path, PixelDecodeError, reason)


def test_unreadable_bits_allocated(tmp_path: Path) -> None:
    body = image_elements().replace(
        explicit(0x00280100, "US", us(8)), explicit(0x00280100, "IS", b"8x")
    ) + pixel_element(b"\x00" * 4)
    path = raw_file(tmp_path / "bits.dcm", body)
    refuse(path, PixelDecodeError, "Bits Allocated is unreadable")


def test_dicomdir_without_pixels(tmp_path: Path) -> None:
    body = explicit(0x00041130, "CS", b"FILESET") + explicit(0x00041220, "SQ", b"", length=0)
    path = raw_file(tmp_path / "DICOMDIR", body)
    ds = dicomfile.read_header(path)
    assert not pixels.has_pixel_data(ds)
    with pytest.raises(PixelDecodeError, match="has no pixel data"):
        pixels.decode_frame(path, ds=ds)


# --------------------------------------------------------------------------- nesting


def _nested_undefined(depth: int) -> bytes:
    """``depth`` undefined-length sequences inside each other (PS3.5 7.5.2)."""
    head = (
        struct.pack("<HH", 0x0040, 0xA730)
        + b"SQ"
        + struct.pack("<HL", 0, UNDEFINED)
        + struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED)
    )
    tail = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + sequence_delimiter()
    return head * depth + explicit(0x0040A160, "UT", b"leaf") + tail * depth


def _nested_defined(depth: int) -> bytes:
    inner = explicit(0x0040A160, "UT", b"leaf")
    for _ in range(depth):
        inner = explicit(0x0040A730, "SQ", item(inner))
    return inner


@pytest.mark.parametrize(
    "build", [_nested_undefined, _nested_defined], ids=["undefined", "defined"]
)
def test_ten_thousand_nested_sequences(tmp_path: Path, build: Callable[[int], bytes]) -> None:
    path = raw_file(tmp_path / "deep.dcm", build(10_000))
    refuse(path, LimitExceededError, "sequences nested deeper than 16 levels")


@pytest.mark.parametrize(
    "build", [_nested_undefined, _nested_defined], ids=["undefined", "defined"]
)
def test_moderate_nesting_reads(tmp_path: Path, build: Callable[[int], bytes]) -> None:
    path = raw_file(tmp_path / "ok.dcm", build(10))
    ds = dicomfile.read_header(path)
    node = ds
    for _ in range(10):
        node = node.ContentSequence[0]
    assert node.TextValue == "leaf"


def test_undefined_length_item_never_closed(tmp_path: Path) -> None:
    body = (
        struct.pack("<HH", 0x0040, 0xA730)
        + b"SQ"
        + struct.pack("<HL", 0, UNDEFINED)
        + struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED)
        + explicit(0x0040A160, "UT", b"x")
    )
    path = raw_file(tmp_path / "open.dcm", body)
    refuse(path, DicomReadError, "is never closed")


def test_undefined_length_sequence_never_closed(tmp_path: Path) -> None:
    body = (
        struct.pack("<HH", 0x0040, 0xA730)
        + b"SQ"
        + struct.pack("<HL", 0, UNDEFINED)
        + item(explicit(0x0040A160, "UT", b"x"))
    )
    path = raw_file(tmp_path / "open.dcm", body)
    refuse(path, DicomReadError, "sequence starting at byte")


def test_too_many_elements(tmp_path: Path) -> None:
    body = explicit(0x00091010, "LO", b"ab") * 2000
    path = raw_file(tmp_path / "many.dcm", body)
    with pytest.raises(LimitExceededError, match="more than 1000 data elements"):
        dicomfile.read_header(path, limits=ReadLimits(max_elements=1000))


def test_deflate_bomb(tmp_path: Path) -> None:
    # A private OB element of 4 MiB of zeros deflates to a few kilobytes.
    inner = explicit(0x00091010, "OB", b"\x00" * (4 << 20))
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = packer.compress(inner) + packer.flush()
    path = raw_file(tmp_path / "bomb.dcm", body, DeflatedExplicitVRLittleEndian)
    limits = ReadLimits(max_object_bytes=1 << 20, max_header_bytes=1 << 20)
    refuse_limits = pytest.raises(LimitExceededError, match="inflates to more than 2097152 bytes")
    with refuse_limits:
        dicomfile.read_header(path, limits=limits)


# --------------------------------------------------------------------------- odd values


def test_bad_window_and_rescale_values_are_tolerated(tmp_path: Path) -> None:
    body = (
        image_elements(rows=2, columns=2)
        + explicit(0x00281050, "DS", b"NaN\\-40\\abc")
        + explicit(0x00281051, "DS", b"400\\-5\\80")
        + explicit(0x00281052, "DS", b"-1024")
        + explicit(0x00281053, "DS", b"abc")
        + pixel_element(bytes([0, 10, 20, 30]))
    )
    path = raw_file(tmp_path / "odd.dcm", body)
    frame = pixels.load_frame(path)
    assert frame.windows == ()  # NaN centre, negative width, "abc": none usable
    assert frame.rescale_note == "Rescale Slope unreadable, ignored"
    np.testing.assert_array_equal(frame.values, [[-1024, -1014], [-1004, -994]])
    image = display.render(frame)
    assert image.shape == (2, 2) and image.dtype == np.uint8


def test_odd_length_pixel_data_decodes(tmp_path: Path) -> None:
    values = np.arange(9, dtype=np.uint8).reshape(3, 3)
    body = image_elements(rows=3, columns=3) + explicit(
        0x7FE00010, "OB", values.tobytes(), length=9
    )
    path = raw_file(tmp_path / "odd.dcm", body)
    np.testing.assert_array_equal(pixels.decode_frame(path), values)


def test_trailing_garbage_shorter_than_an_element_is_ignored(tmp_path: Path) -> None:
    values = np.arange(4, dtype=np.uint8).reshape(2, 2)
    body = image_elements() + pixel_element(values.tobytes()) + b"\x01\x02\x03"
    path = raw_file(tmp_path / "tail.dcm", body)
    np.testing.assert_array_equal(pixels.decode_frame(path), values)


def test_implicit_vr_file_without_meta(tmp_path: Path) -> None:
    body = (
        implicit(0x00080060, b"OT")
        + implicit(0x00280002, us(1))
        + implicit(0x00280004, b"MONOCHROME2 ")
        + implicit(0x00280010, us(2))
        + implicit(0x00280011, us(2))
        + implicit(0x00280100, us(8))
        + implicit(0x00280101, us(8))
        + implicit(0x00280103, us(0))
        + implicit(0x7FE00010, bytes([1, 2, 3, 4]))
    )
    path = tmp_path / "nometa.dcm"
    path.write_bytes(body)
    assert dicomfile.sniff_dicom(path)
    ds = dicomfile.read_header(path)
    assert dicomfile.pixel_data_info(ds).transfer_syntax == ImplicitVRLittleEndian
    np.testing.assert_array_equal(pixels.decode_frame(path), [[1, 2], [3, 4]])


# --------------------------------------------------------------------------- encapsulated


def _rle_file(tmp_path: Path, frames: int = 3) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    stack = rng.integers(0, 4000, size=(frames, 8, 8), dtype=np.uint16)
    ds = image_dataset(stack, frames=frames, bits_stored=12)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    return save(ds, tmp_path / "rle.dcm"), stack


def test_broken_basic_offset_table_falls_back_to_fragments(tmp_path: Path) -> None:
    path, stack = _rle_file(tmp_path)
    data = bytearray(path.read_bytes())
    info = dicomfile.pixel_data_info(dicomfile.read_header(path))
    bot_start = info.value_offset + 8
    # Offsets that point far past the data, out of order.
    struct.pack_into("<3L", data, bot_start, 0, 0x7FFFFFF0, 16)
    if struct.unpack_from("<L", data, info.value_offset + 4)[0] != 12:
        pytest.skip("encoder wrote no offset table")
    path.write_bytes(bytes(data))
    ds = dicomfile.read_header(path)
    assert not dicomfile.pixel_data_info(ds).bot_valid
    for k in range(3):
        np.testing.assert_array_equal(pixels.decode_frame(path, k, ds=ds), stack[k])


def test_one_frame_decoded_without_touching_the_others(tmp_path: Path) -> None:
    path, stack = _rle_file(tmp_path)
    ds = dicomfile.read_header(path)
    info = dicomfile.pixel_data_info(ds)
    data = bytearray(path.read_bytes())
    # Wreck frame 0's RLE data (all 0xFF): only frame 0 becomes undecodable.
    _, offset0, length0 = info.fragment_items[0]
    data[offset0 : offset0 + length0] = b"\xff" * length0
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(pixels.decode_frame(path, 1, ds=ds), stack[1])
    np.testing.assert_array_equal(pixels.decode_frame(path, 2, ds=ds), stack[2])
    with pytest.raises(PixelDecodeError, match="pixel data can't be decoded"):
        pixels.decode_frame(path, 0, ds=ds)


def test_fewer_fragments_than_frames(tmp_path: Path) -> None:
    frag = b"\xff\xd8\xff\xd9"
    encapsulated = item(b"") + item(frag) + sequence_delimiter()
    body = image_elements(rows=2, columns=2, frames=b"3 ") + (
        struct.pack("<HH", 0x7FE0, 0x0010) + b"OB" + struct.pack("<HL", 0, UNDEFINED) + encapsulated
    )
    path = raw_file(tmp_path / "few.dcm", body, JPEGBaseline8Bit)
    refuse(path, PixelDecodeError, "has 1 fragments for 3 frames")


def test_jpeg_declaring_more_pixels_than_rows_columns(tmp_path: Path) -> None:
    # SOI, then SOF0 declaring 60000 x 60000 x 3 samples.
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 60000, 60000, 3) + b"\x01\x11\x00" * 3
    frag = b"\xff\xd8" + sof + b"\xff\xd9"
    encapsulated = item(b"") + item(frag) + sequence_delimiter()
    body = image_elements(rows=2, columns=2) + (
        struct.pack("<HH", 0x7FE0, 0x0010) + b"OB" + struct.pack("<HL", 0, UNDEFINED) + encapsulated
    )
    path = raw_file(tmp_path / "jpegbomb.dcm", body, JPEGBaseline8Bit)
    refuse(path, PixelDecodeError, "compressed frame declares 60000x60000 pixels")


def test_encapsulated_item_cut_off(tmp_path: Path) -> None:
    body = image_elements() + (
        struct.pack("<HH", 0x7FE0, 0x0010)
        + b"OB"
        + struct.pack("<HL", 0, UNDEFINED)
        + item(b"")
        + struct.pack("<HHL", 0xFFFE, 0xE000, 1000)
        + b"\xff\xd8"
    )
    path = raw_file(tmp_path / "cut.dcm", body, JPEGBaseline8Bit)
    refuse(path, DicomReadError, "declares 1000 bytes but only 2 remain")


def test_garbage_inside_encapsulated_data(tmp_path: Path) -> None:
    body = image_elements() + (
        struct.pack("<HH", 0x7FE0, 0x0010)
        + b"OB"
        + struct.pack("<HL", 0, UNDEFINED)
        + item(b"")
        + b"garbage!" * 4
    )
    path = raw_file(tmp_path / "junk.dcm", body, JPEGBaseline8Bit)
    refuse(path, DicomReadError, "encapsulated PixelData is malformed: expected an item")


def test_undecodable_jpeg_is_refused_in_one_line(tmp_path: Path) -> None:
    body = image_elements() + (
        struct.pack("<HH", 0x7FE0, 0x0010)
        + b"OB"
        + struct.pack("<HL", 0, UNDEFINED)
        + item(b"")
        + item(b"\xff\xd8not a jpeg\xff\xd9")
        + sequence_delimiter()
    )
    path = raw_file(tmp_path / "notjpeg.dcm", body, JPEGBaseline8Bit)
    refuse(path, PixelDecodeError, "pixel data can't be decoded")


def test_explicit_le_syntax_declared_but_body_implicit(tmp_path: Path) -> None:
    body = (
        implicit(0x00280002, us(1))
        + implicit(0x00280004, b"MONOCHROME2 ")
        + implicit(0x00280010, us(2))
        + implicit(0x00280011, us(2))
        + implicit(0x00280100, us(8))
        + implicit(0x00280101, us(8))
        + implicit(0x00280103, us(0))
        + implicit(0x7FE00010, bytes([5, 6, 7, 8]))
    )
    path = raw_file(tmp_path / "mixed.dcm", body, ExplicitVRLittleEndian)
    ds = dicomfile.read_header(path)
    assert "unlike its transfer syntax" in " ".join(dicomfile.scan_notes(ds))
    np.testing.assert_array_equal(pixels.decode_frame(path), [[5, 6], [7, 8]])


# --------------------------------------------------------------------------- seeded mutations


@pytest.mark.parametrize("seed", range(4))
def test_mutated_corpus_files_never_escape(tmp_path: Path, seed: int) -> None:
    """Bytes overwritten, lengths set to 0xFFFFFFFF, files cut: only the project's errors."""
    import random

    from tests.helpers.dicomfiles import pydicom_test_file

    rng = random.Random(seed)
    names = ["CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm"]
    sources = [pydicom_test_file(name).read_bytes() for name in names]
    patterns = [b"\xff\xff\xff\xff", b"\xfe\xff\x00\xe0", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00"]
    path = tmp_path / "m.dcm"
    for _ in range(25):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(min(len(data) - 4, 3000))
            data[at : at + 4] = rng.choice(patterns)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        try:
            ds = dicomfile.read_header(path)
            for k in range(min(pixels.number_of_frames(ds), 2)):
                display.render(pixels.load_frame(path, k, ds=ds))
            list(ds.iterall())
        except RadAssistError as err:
            assert "\n" not in str(err) and str(path) in str(err)
