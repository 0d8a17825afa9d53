"""The Image Pixel module of one object: its attributes checked and sized (PS3.3 C.7.6.3).

Everything here is decided from the header, before any pixel is read or allocated: Rows,
Columns, Samples per Pixel, Photometric Interpretation, Bits Allocated/Stored, Number of
Frames against :class:`ReadLimits`, and the stored size against what they declare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from desktop_app.dicom import dsvalues
from desktop_app.dicom.dicomfile import PIXEL_KEYWORDS, PixelDataInfo, pixel_data_info
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.structure import hint_limit
from desktop_app.infra.errors import DicomReadError, LimitExceededError, PathLike, PixelDecodeError

PIXEL_TAGS = tuple(PIXEL_KEYWORDS)
_MONO = ("MONOCHROME1", "MONOCHROME2")
_ONE_SAMPLE = (*_MONO, "PALETTE COLOR")
_THREE_SAMPLES = (
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "YBR_PARTIAL_420",
    "YBR_PARTIAL_422",
)
_BITS_ALLOCATED = {
    "PixelData": (1, 8, 16, 32),
    "FloatPixelData": (32,),
    "DoubleFloatPixelData": (64,),
}
HINT_DECODE = "the pixel data is damaged or not supported; re-export the image"


def has_pixel_data(ds: Dataset) -> bool:
    """Whether the object holds Pixel Data, Float or Double Float Pixel Data (PS3.3 C.7.6.3)."""
    if pixel_data_info(ds) is not None:
        return True
    try:
        return any(tag in ds for tag in PIXEL_TAGS)
    except Exception:  # a broken dataset holds nothing we can decode
        return False


def number_of_frames(ds: Dataset) -> int:
    """Number of Frames (0028,0008); 1 when absent, empty, zero or unreadable (PS3.3 C.7.6.6)."""
    n = dsvalues.first_int(ds, "NumberOfFrames")
    return n if n is not None and n >= 1 else 1


@dataclass(frozen=True)
class PixelGeometry:
    """The checked Image Pixel attributes of one object (PS3.3 C.7.6.3.1)."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    planar_configuration: int
    keyword: str  # PixelData, FloatPixelData or DoubleFloatPixelData

    @property
    def decoded_frame_bytes(self) -> int:
        """Bytes of one decoded frame (1-bit data is unpacked to one byte per pixel)."""
        return self.rows * self.columns * self.samples * max(1, self.bits_allocated // 8)

    @property
    def native_frame_bits(self) -> int:
        """Bits one frame takes when stored natively (PS3.5 8.1.1; YBR_FULL_422 is 2 samples)."""
        samples = 2 if self.photometric == "YBR_FULL_422" and self.samples == 3 else self.samples
        return self.rows * self.columns * samples * self.bits_allocated

    @property
    def native_bytes(self) -> int:
        """Bytes the whole native pixel data needs (without the padding byte)."""
        return (self.native_frame_bits * self.frames + 7) // 8


def pixel_geometry(
    ds: Dataset,
    path: PathLike | None,
    limits: ReadLimits = DEFAULT_LIMITS,
    file_size: int | None = None,
) -> PixelGeometry:
    """Refuse pixel data that can't be decoded safely, before anything is allocated; return
    the checked attributes.

    Declared Rows x Columns over ``limits.max_frame_pixels``, one decoded frame over
    ``limits.max_frame_bytes``, or Rows x Columns x Number of Frames x Samples x Bits
    Allocated over ``limits.max_object_bytes`` raises LimitExceededError. Zero or missing Rows/Columns,
    Samples per Pixel other than 1 or 3 (PS3.3 C.7.6.3.1.1), Bits Allocated other than 1, 8,
    16, 32 (64 for Double Float Pixel Data), Bits Stored over Bits Allocated, a Photometric
    Interpretation that does not fit the samples (C.7.6.3.1.2), native pixel data shorter
    than declared, and fewer fragments than frames raise PixelDecodeError.
    """
    p = Path(path) if path is not None else None
    if not has_pixel_data(ds):
        raise PixelDecodeError("has no pixel data (not an image: e.g. a report or DICOMDIR)", p)
    info = pixel_data_info(ds)
    keyword = info.keyword if info is not None else _keyword_in(ds)
    # The checks run in this order so that a file with several faults names the first one.
    rows, columns = _rows_and_columns(ds, p)
    samples, photometric = _samples_and_photometric(ds, p)
    bits_allocated, bits_stored = _bits(ds, keyword, p)
    representation = _int_or(ds, "PixelRepresentation", 0, p)
    if representation not in (0, 1):
        raise PixelDecodeError(f"Pixel Representation {representation} is not 0 or 1", p)
    planar = _int_or(ds, "PlanarConfiguration", 0, p) if samples == 3 else 0
    if planar not in (0, 1):
        raise PixelDecodeError(f"Planar Configuration {planar} is not 0 or 1", p)
    geometry = PixelGeometry(
        rows=rows,
        columns=columns,
        frames=_frames(ds, limits, p),
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=representation,
        photometric=photometric,
        planar_configuration=planar,
        keyword=keyword,
    )
    _check_decoded_size(geometry, limits, p)
    if info is not None:
        _check_stored_size(info, geometry, p, file_size)
    else:
        _check_in_memory_size(ds, geometry, p)
    return geometry


def _rows_and_columns(ds: Dataset, p: Path | None) -> tuple[int, int]:
    rows = dsvalues.first_int(ds, "Rows")
    cols = dsvalues.first_int(ds, "Columns")
    if rows is None or cols is None:
        raise PixelDecodeError(
            "has pixel data but no readable Rows (0028,0010) or Columns (0028,0011)",
            p,
            HINT_DECODE,
        )
    if rows < 1 or cols < 1:
        raise PixelDecodeError(f"declares Rows {rows} and Columns {cols}", p, HINT_DECODE)
    return rows, cols


def _samples_and_photometric(ds: Dataset, p: Path | None) -> tuple[int, str]:
    """Samples per Pixel (PS3.3 C.7.6.3.1.1) and a Photometric Interpretation that fits them
    (C.7.6.3.1.2)."""
    samples = _int_or(ds, "SamplesPerPixel", 1, p)
    if samples not in (1, 3):
        raise PixelDecodeError(
            f"Samples per Pixel {samples} is not supported (PS3.3 C.7.6.3.1.1 allows 1 or 3)",
            p,
        )
    default_pi = "MONOCHROME2" if samples == 1 else "RGB"
    photometric = dsvalues.text(ds, "PhotometricInterpretation", default_pi).upper()
    if (photometric in _ONE_SAMPLE and samples != 1) or (
        photometric in _THREE_SAMPLES and samples != 3
    ):
        raise PixelDecodeError(
            f"Photometric Interpretation {photometric} does not fit Samples per Pixel {samples}",
            p,
            HINT_DECODE,
        )
    if photometric not in _ONE_SAMPLE + _THREE_SAMPLES:
        raise PixelDecodeError(f"Photometric Interpretation {photometric!r} is not supported", p)
    return samples, photometric


def _bits(ds: Dataset, keyword: str, p: Path | None) -> tuple[int, int]:
    """Bits Allocated (PS3.5 8.1.1, by pixel data keyword) and Bits Stored."""
    bits_allocated = _int_or(ds, "BitsAllocated", 0, p)
    allowed = _BITS_ALLOCATED[keyword]
    if bits_allocated not in allowed:
        raise PixelDecodeError(
            f"Bits Allocated {bits_allocated} is not supported for {keyword} "
            f"(PS3.5 8.1.1: {', '.join(map(str, allowed))})",
            p,
            HINT_DECODE,
        )
    bits_stored = _int_or(ds, "BitsStored", bits_allocated, p)
    if bits_stored < 1 or bits_stored > bits_allocated:
        raise PixelDecodeError(
            f"Bits Stored {bits_stored} does not fit Bits Allocated {bits_allocated}",
            p,
            HINT_DECODE,
        )
    return bits_allocated, bits_stored


def _frames(ds: Dataset, limits: ReadLimits, p: Path | None) -> int:
    frames_value = dsvalues.first_float(ds, "NumberOfFrames")
    if frames_value is not None and (frames_value < 0 or frames_value != int(frames_value)):
        raise PixelDecodeError(f"Number of Frames {frames_value:g} is invalid", p, HINT_DECODE)
    frames = number_of_frames(ds)
    if frames > limits.max_frames:
        raise LimitExceededError(
            f"declares {frames} frames, over the limit of {limits.max_frames}",
            p,
            hint_limit("max_frames"),
        )
    return frames


def _check_decoded_size(geometry: PixelGeometry, limits: ReadLimits, p: Path | None) -> None:
    """The decode budget, from the header alone: bytes of the whole object, then pixels and
    bytes of one frame. A frame is also held as float32 modality values, so that size counts."""
    g = geometry
    pixels = g.rows * g.columns
    frame_float = pixels * g.samples * 4
    total = g.decoded_frame_bytes * g.frames
    if total > limits.max_object_bytes or frame_float > limits.max_object_bytes:
        raise LimitExceededError(
            f"declares {g.rows}x{g.columns} pixels x {g.frames} frames x {g.samples} samples x "
            f"{g.bits_allocated} bits = {max(total, frame_float)} bytes, over the limit of "
            f"{limits.max_object_bytes}",
            p,
            hint_limit("max_object_bytes"),
        )
    if pixels > limits.max_frame_pixels:
        raise LimitExceededError(
            f"declares frames of {g.rows}x{g.columns} = {pixels} pixels, over the limit of "
            f"{limits.max_frame_pixels} pixels per frame",
            p,
            hint_limit("max_frame_pixels"),
        )
    frame = max(g.decoded_frame_bytes, frame_float)
    if frame > limits.max_frame_bytes:
        raise LimitExceededError(
            f"declares frames of {g.rows}x{g.columns} pixels x {g.samples} samples = {frame} "
            f"bytes decoded, over the limit of {limits.max_frame_bytes} bytes per frame",
            p,
            hint_limit("max_frame_bytes"),
        )


def _check_in_memory_size(ds: Dataset, geometry: PixelGeometry, p: Path | None) -> None:
    """For a dataset read elsewhere (no walk info): native pixel data shorter than declared."""
    syntax = ""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        syntax = dsvalues.text(meta, "TransferSyntaxUID")
    ts = known_syntax(syntax)
    if ts is not None and ts.is_compressed and not ts.is_deflated:
        return
    try:
        element = ds.get_item(Tag(geometry.keyword), keep_deferred=True)
        value = getattr(element, "value", None)
    except Exception:
        return
    if isinstance(value, (bytes, bytearray)) and len(value) < geometry.native_bytes:
        raise _too_short(geometry.keyword, len(value), geometry, p)


def _check_stored_size(
    info: PixelDataInfo, geometry: PixelGeometry, p: Path | None, file_size: int | None
) -> None:
    if file_size is not None and not info.deflated:
        end = info.value_offset + (info.length or info.fragments_bytes)
        if end > file_size:
            raise DicomReadError(
                f"pixel data runs to byte {end}, past the end of the file ({file_size} bytes)",
                p,
                "the file is truncated",
            )
    if info.length is not None:
        if is_native(info) and info.length < geometry.native_bytes:
            raise _too_short(info.keyword, info.length, geometry, p)
    elif info.fragments < geometry.frames:
        raise PixelDecodeError(
            f"encapsulated {info.keyword} has {info.fragments} fragments for "
            f"{geometry.frames} frames",
            p,
            HINT_DECODE,
        )


def _too_short(keyword: str, held: int, g: PixelGeometry, p: Path | None) -> PixelDecodeError:
    return PixelDecodeError(
        f"{keyword} holds {held} bytes but {g.rows}x{g.columns} pixels x {g.frames} frames x "
        f"{g.samples} samples x {g.bits_allocated} bits need {g.native_bytes}",
        p,
        "the file is truncated",
    )


def _keyword_in(ds: Dataset) -> str:
    for tag, keyword in PIXEL_KEYWORDS.items():
        try:
            if tag in ds:
                return keyword
        except Exception:
            break
    return "PixelData"


def _int_or(ds: Dataset, key: str, default: int, p: Path | None) -> int:
    """An integer attribute, ``default`` when absent; refused when present but unreadable."""
    value = dsvalues.first_int(ds, key)
    if value is None:
        if dsvalues.raw_value(ds, key) not in (None, "", b""):
            label = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key)
            raise PixelDecodeError(f"{label} is unreadable", p, HINT_DECODE)
        return default
    return value


def known_syntax(ts: str) -> UID | None:
    """``ts`` as a UID when it is a transfer syntax pydicom knows (PS3.6 Annex A), else None."""
    try:
        uid = UID(ts)
        return uid if ts and uid.is_transfer_syntax else None
    except Exception:
        return None


def is_native(info: PixelDataInfo) -> bool:
    """Whether the pixel data is stored natively (PS3.5 A.1-A.3, A.5), not encapsulated."""
    if info.length is None:
        return False
    ts = known_syntax(info.transfer_syntax)
    if ts is None:
        return True  # unknown or private syntax with a defined length: treat as native
    return not ts.is_compressed or ts.is_deflated
