"""Shared helpers for the DICOM-reading tests: small DICOM files made with pydicom in tmp_path, raw
byte builders for malformed files, and the lists of public test corpora (no download).

Import the plain functions with ``from tests.helpers.dicomfiles import ...``; the
``make_image`` fixture that wraps them is in tests/dicom/conftest.py.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.datadict
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

# --------------------------------------------------------------------------- corpora


def pydicom_test_files() -> list[Path]:
    """Every .dcm bundled with pydicom (listed from the package folder; never downloads)."""
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    return sorted(p for p in folder.glob("*.dcm") if p.is_file())


def pydicom_data_files() -> list[Path]:
    """Every file of the pydicom-data wheel's ``data_store/data`` folder ([] if not installed)."""
    spec = importlib.util.find_spec("data_store")
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "data"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def pydicom_test_file(name: str) -> Path:
    """One bundled pydicom test file by name (skips the test if it is missing)."""
    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    if not path.is_file():
        pytest.skip(f"pydicom test file {name} is not bundled")
    return path


def pydicom_data_file(name: str) -> Path:
    """One pydicom-data file by name (skips the test if pydicom-data is not installed)."""
    for path in pydicom_data_files():
        if path.name == name:
            return path
    pytest.skip(f"pydicom-data file {name} is not installed")
    raise AssertionError  # unreachable; pytest.skip raises


# --------------------------------------------------------------------------- datasets


def image_dataset(
    pixels: np.ndarray | None = None,
    *,
    rows: int = 4,
    columns: int = 4,
    frames: int = 1,
    bits_allocated: int = 16,
    bits_stored: int | None = None,
    signed: bool = False,
    photometric: str = "MONOCHROME2",
    samples: int | None = None,
    planar: int = 0,
    modality: str = "OT",
    transfer_syntax: str = ExplicitVRLittleEndian,
    **elements: Any,
) -> Dataset:
    """A small valid image dataset with file meta. ``pixels`` sets the Pixel Data (its shape
    and dtype win over rows/columns/frames/samples; stored little or big endian by the
    syntax); without it a ramp is made. Extra keyword arguments become elements."""
    if pixels is None:
        spp = samples or (3 if photometric in ("RGB", "YBR_FULL") else 1)
        shape: tuple[int, ...] = (rows, columns) if spp == 1 else (rows, columns, 3)
        if frames > 1:
            shape = (frames, *shape)
        dtype = np.dtype(f"{'i' if signed else 'u'}{max(bits_allocated, 8) // 8}")
        count = int(np.prod(shape))
        pixels = (np.arange(count) % (2 ** min(bits_stored or bits_allocated, 15))).astype(dtype)
        pixels = pixels.reshape(shape)
    arr = np.asarray(pixels)
    spp = samples or (3 if arr.ndim == 3 + (frames > 1) else 1)
    if frames > 1:
        frames, rows, columns = arr.shape[0], arr.shape[1], arr.shape[2]
    else:
        rows, columns = arr.shape[0], arr.shape[1]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "Test^Synthetic"
    ds.PatientID = "TEST0001"
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = photometric
    if spp == 3:
        ds.PlanarConfiguration = planar
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed or arr.dtype.kind == "i" else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in elements.items():
        if isinstance(value, bytes):  # raw bytes: stored as they are, even if invalid
            set_raw(
                ds,
                int(pydicom.datadict.tag_for_keyword(key) or 0),
                pydicom.datadict.dictionary_VR(key),
                value,
            )
        else:
            setattr(ds, key, value)
    if spp == 3 and planar == 1:
        arr = np.moveaxis(arr, -1, -3)  # (frames,) samples, rows, cols
    big = transfer_syntax == ExplicitVRBigEndian
    data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder(">" if big else "<"))
    raw = data.tobytes()
    if len(raw) % 2:
        raw += b"\x00"
    ds.PixelData = raw
    ds["PixelData"].VR = "OB" if bits_allocated <= 8 else "OW"
    return ds


def set_raw(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """Put an element with exactly these bytes into ``ds`` (bypasses pydicom's validation),
    e.g. "abc" in a DS element, as a broken file would hold it."""
    if len(value) % 2:
        value += b" "
    ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)


def save(ds: Dataset, path: Path, *, implicit: bool | None = None) -> Path:
    """Write ``ds`` as a DICOM file (with preamble and meta) and return the path."""
    ts = ds.file_meta.TransferSyntaxUID
    if implicit is None:
        implicit = ts == ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True, implicit_vr=None if ts else implicit)
    return path


# --------------------------------------------------------------------------- raw bytes

_VR32 = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
UNDEFINED = 0xFFFFFFFF


def _pad(value: bytes, vr: str | None) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "UN", None) else b" "
    return value


def explicit(
    tag: int, vr: str, value: bytes = b"", *, length: int | None = None, little: bool = True
) -> bytes:
    """One explicit VR element (PS3.5 7.1.2). ``length`` overrides the declared length."""
    e = "<" if little else ">"
    value = _pad(value, vr) if length is None else value
    declared = len(value) if length is None else length
    head = struct.pack(f"{e}HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    if vr in _VR32:
        return head + struct.pack(f"{e}HL", 0, declared) + value
    return head + struct.pack(f"{e}H", declared) + value


def implicit(tag: int, value: bytes = b"", *, length: int | None = None) -> bytes:
    """One implicit VR little endian element (PS3.5 7.1.3)."""
    value = _pad(value, None) if length is None else value
    declared = len(value) if length is None else length
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, declared) + value


def item(value: bytes = b"", *, undefined: bool = False, little: bool = True) -> bytes:
    """A sequence item (FFFE,E000), with an Item Delimitation Item when undefined length."""
    e = "<" if little else ">"
    if undefined:
        return (
            struct.pack(f"{e}HHL", 0xFFFE, 0xE000, UNDEFINED)
            + value
            + struct.pack(f"{e}HHL", 0xFFFE, 0xE00D, 0)
        )
    return struct.pack(f"{e}HHL", 0xFFFE, 0xE000, len(value)) + value


def sequence_delimiter(little: bool = True) -> bytes:
    """The Sequence Delimitation Item (FFFE,E0DD)."""
    return struct.pack("<HHL" if little else ">HHL", 0xFFFE, 0xE0DD, 0)


def us(value: int, little: bool = True) -> bytes:
    """An unsigned short value."""
    return struct.pack("<H" if little else ">H", value)


def meta_header(transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """Preamble, 'DICM' and a minimal File Meta Information group (PS3.10 7.1)."""
    ts = transfer_syntax.encode("ascii")
    body = (
        explicit(0x00020001, "OB", b"\x00\x01")
        + explicit(0x00020002, "UI", SecondaryCaptureImageStorage.encode())
        + explicit(0x00020003, "UI", b"1.2.3.4")
        + explicit(0x00020010, "UI", ts)
    )
    group_length = explicit(0x00020000, "UL", struct.pack("<L", len(body)))
    return b"\x00" * 128 + b"DICM" + group_length + body


def image_elements(
    rows: int = 2,
    columns: int = 2,
    *,
    bits_allocated: int = 8,
    bits_stored: int | None = None,
    samples: int = 1,
    photometric: bytes = b"MONOCHROME2",
    frames: bytes | None = None,
    little: bool = True,
) -> bytes:
    """Group 0028 Image Pixel elements in explicit VR (values as given, even invalid ones)."""
    out = explicit(0x00280002, "US", us(samples, little), little=little)
    out += explicit(0x00280004, "CS", photometric, little=little)
    if frames is not None:
        out += explicit(0x00280008, "IS", frames, little=little)
    out += explicit(0x00280010, "US", us(rows, little), little=little)
    out += explicit(0x00280011, "US", us(columns, little), little=little)
    out += explicit(0x00280100, "US", us(bits_allocated, little), little=little)
    stored = bits_allocated if bits_stored is None else bits_stored
    out += explicit(0x00280101, "US", us(stored, little), little=little)
    out += explicit(0x00280102, "US", us(max(stored - 1, 0), little), little=little)
    out += explicit(0x00280103, "US", us(0, little), little=little)
    return out


def raw_file(path: Path, body: bytes, transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    """Write preamble + meta + ``body`` to ``path``."""
    path.write_bytes(meta_header(transfer_syntax) + body)
    return path
