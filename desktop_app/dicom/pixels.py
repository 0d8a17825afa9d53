"""Pixel data: limits, lazy one-frame decoding, Modality LUT and colour (Qt-free).

PS3.3 C.7.6.3 (Image Pixel module), PS3.5 8 and A.4 (native and encapsulated pixel data),
PS3.3 C.11.1 (Modality LUT). The Image Pixel attributes are checked and the decoded size is
bounded *before* anything is allocated; one frame is read from the file at a time (native
data by offset, encapsulated data by its fragments), so a multi-frame object is never
decoded whole to show one frame. Every failure is raised as the project's own exception
(:class:`PixelDecodeError`, :class:`LimitExceededError`) with the path and a one-line reason.
Functions here are thread-safe: each call opens its own file handle.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import re
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom.pixels
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, RLELossless

from desktop_app.dicom import dsvalues
from desktop_app.dicom.dicomfile import (
    PIXEL_KEYWORDS,
    PixelDataInfo,
    pixel_data_info,
    quiet_pydicom,
    read_dataset,
    read_header,
)
from desktop_app.dicom.display import (
    VoiLut,
    Window,
    apply_lut,
    voi_luts_from_dataset,
    windows_from_dataset,
)
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.infra.errors import DicomReadError, LimitExceededError, PixelDecodeError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

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
_HINT_DECODE = "the pixel data is damaged or not supported; re-export the image"


def _limit_hint(name: str) -> str:
    return f"raise ReadLimits.{name} only if the file is trusted"


# --------------------------------------------------------------------------- geometry


def has_pixel_data(ds: Dataset) -> bool:
    """Whether the object holds Pixel Data, Float or Double Float Pixel Data (PS3.3 C.7.6.3)."""
    if pixel_data_info(ds) is not None:
        return True
    try:
        return any(tag in ds for tag in PIXEL_TAGS)
    except Exception:
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
    """Check the Image Pixel attributes and sizes; return them (see check_pixel_limits)."""
    p = Path(path) if path is not None else None
    info = pixel_data_info(ds)
    if not has_pixel_data(ds):
        raise PixelDecodeError("has no pixel data (not an image: e.g. a report or DICOMDIR)", p)
    keyword = info.keyword if info is not None else _keyword_in(ds)
    rows = dsvalues.first_int(ds, "Rows")
    cols = dsvalues.first_int(ds, "Columns")
    if rows is None or cols is None:
        raise PixelDecodeError(
            "has pixel data but no readable Rows (0028,0010) or Columns (0028,0011)",
            p,
            _HINT_DECODE,
        )
    if rows < 1 or cols < 1:
        raise PixelDecodeError(f"declares Rows {rows} and Columns {cols}", p, _HINT_DECODE)
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
            _HINT_DECODE,
        )
    if photometric not in _ONE_SAMPLE + _THREE_SAMPLES:
        raise PixelDecodeError(
            f"Photometric Interpretation {photometric!r} is not supported",
            p,
        )
    bits_allocated = _int_or(ds, "BitsAllocated", 0, p)
    allowed = {"PixelData": (1, 8, 16, 32), "FloatPixelData": (32,), "DoubleFloatPixelData": (64,)}
    if bits_allocated not in allowed[keyword]:
        raise PixelDecodeError(
            f"Bits Allocated {bits_allocated} is not supported for {keyword} "
            f"(PS3.5 8.1.1: {', '.join(map(str, allowed[keyword]))})",
            p,
            _HINT_DECODE,
        )
    bits_stored = _int_or(ds, "BitsStored", bits_allocated, p)
    if bits_stored < 1 or bits_stored > bits_allocated:
        raise PixelDecodeError(
            f"Bits Stored {bits_stored} does not fit Bits Allocated {bits_allocated}",
            p,
            _HINT_DECODE,
        )
    representation = _int_or(ds, "PixelRepresentation", 0, p)
    if representation not in (0, 1):
        raise PixelDecodeError(f"Pixel Representation {representation} is not 0 or 1", p)
    planar = _int_or(ds, "PlanarConfiguration", 0, p) if samples == 3 else 0
    if planar not in (0, 1):
        raise PixelDecodeError(f"Planar Configuration {planar} is not 0 or 1", p)
    frames_value = dsvalues.first_float(ds, "NumberOfFrames")
    if frames_value is not None and (frames_value < 0 or frames_value != int(frames_value)):
        raise PixelDecodeError(f"Number of Frames {frames_value:g} is invalid", p, _HINT_DECODE)
    frames = number_of_frames(ds)
    if frames > limits.max_frames:
        raise LimitExceededError(
            f"declares {frames} frames, over the limit of {limits.max_frames}",
            p,
            _limit_hint("max_frames"),
        )
    geometry = PixelGeometry(
        rows=rows,
        columns=cols,
        frames=frames,
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=representation,
        photometric=photometric,
        planar_configuration=planar,
        keyword=keyword,
    )
    total = geometry.decoded_frame_bytes * frames
    # A frame is also converted to float32 (modality values), hence the second bound.
    frame_float = rows * cols * samples * 4
    if total > limits.max_object_bytes or frame_float > limits.max_object_bytes:
        raise LimitExceededError(
            f"declares {rows}x{cols} pixels x {frames} frames x {samples} samples x "
            f"{bits_allocated} bits = {max(total, frame_float)} bytes, over the limit of "
            f"{limits.max_object_bytes}",
            p,
            _limit_hint("max_object_bytes"),
        )
    if info is not None:
        _check_stored_size(info, geometry, p, file_size)
    else:
        _check_in_memory_size(ds, geometry, p)
    return geometry


def _check_in_memory_size(ds: Dataset, geometry: PixelGeometry, p: Path | None) -> None:
    """For a dataset read elsewhere (no walk info): native pixel data shorter than declared."""
    syntax = ""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        syntax = dsvalues.text(meta, "TransferSyntaxUID")
    ts = _known_syntax(syntax)
    if ts is not None and ts.is_compressed and not ts.is_deflated:
        return
    try:
        element = ds.get_item(Tag(geometry.keyword), keep_deferred=True)
        value = getattr(element, "value", None)
    except Exception:
        return
    if isinstance(value, (bytes, bytearray)) and len(value) < geometry.native_bytes:
        raise PixelDecodeError(
            f"{geometry.keyword} holds {len(value)} bytes but {geometry.rows}x"
            f"{geometry.columns} pixels x {geometry.frames} frames x {geometry.samples} "
            f"samples x {geometry.bits_allocated} bits need {geometry.native_bytes}",
            p,
            "the file is truncated",
        )


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
        if _is_native(info) and info.length < geometry.native_bytes:
            raise PixelDecodeError(
                f"{info.keyword} holds {info.length} bytes but {geometry.rows}x"
                f"{geometry.columns} pixels x {geometry.frames} frames x {geometry.samples} "
                f"samples x {geometry.bits_allocated} bits need {geometry.native_bytes}",
                p,
                "the file is truncated",
            )
    elif info.fragments < geometry.frames:
        raise PixelDecodeError(
            f"encapsulated {info.keyword} has {info.fragments} fragments for "
            f"{geometry.frames} frames",
            p,
            _HINT_DECODE,
        )


def check_pixel_limits(
    ds: Dataset,
    path: PathLike | None,
    limits: ReadLimits = DEFAULT_LIMITS,
    file_size: int | None = None,
) -> None:
    """Refuse pixel data that can't be decoded safely, before anything is allocated.

    Declared Rows x Columns x Number of Frames x Samples x Bits Allocated over
    ``limits.max_object_bytes`` raises LimitExceededError. Zero or missing Rows/Columns,
    Samples per Pixel other than 1 or 3 (PS3.3 C.7.6.3.1.1), Bits Allocated other than 1, 8,
    16, 32 (64 for Double Float Pixel Data), Bits Stored over Bits Allocated, a Photometric
    Interpretation that does not fit the samples (C.7.6.3.1.2), native pixel data shorter
    than declared, and fewer fragments than frames raise PixelDecodeError.
    """
    pixel_geometry(ds, path, limits, file_size)


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
            raise PixelDecodeError(f"{label} is unreadable", p, _HINT_DECODE)
        return default
    return value


def _known_syntax(ts: str) -> UID | None:
    """``ts`` as a UID when it is a transfer syntax pydicom knows (PS3.6 Annex A), else None."""
    try:
        uid = UID(ts)
        return uid if ts and uid.is_transfer_syntax else None
    except Exception:
        return None


def _is_native(info: PixelDataInfo) -> bool:
    """Whether the pixel data is stored natively (PS3.5 A.1-A.3, A.5), not encapsulated."""
    if info.length is None:
        return False
    ts = _known_syntax(info.transfer_syntax)
    if ts is None:
        return True  # unknown or private syntax with a defined length: treat as native
    return not ts.is_compressed or ts.is_deflated


# --------------------------------------------------------------------------- decoding


def decode_frame(
    path: PathLike,
    index: int = 0,
    *,
    ds: Dataset | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> np.ndarray:
    """Decode frame ``index``'s stored values, reading only that frame from the file.

    Shape (rows, cols) for one sample, (rows, cols, 3) for colour; YBR_FULL and
    YBR_FULL_422 are converted to RGB (PS3.3 C.7.6.3.1.2) and planar configuration is
    undone. Signed, float and 1/8/16/32-bit data keep their stored values (no Modality LUT).
    ``ds`` is a dataset from :func:`read_header` (saves re-reading the header). Raises
    PixelDecodeError or LimitExceededError naming the path; never a pydicom or numpy error.
    """
    p = Path(path)
    if ds is None or (pixel_data_info(ds) is None and not _holds_pixel_value(ds)):
        ds = read_header(p, limits=limits)
    geometry = pixel_geometry(ds, p, limits)
    if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < geometry.frames:
        raise PixelDecodeError(
            f"frame {index} asked for, but the object has {geometry.frames} frame(s)", p
        )
    index = int(index)
    info = pixel_data_info(ds)
    try:
        with quiet_pydicom():
            if info is None:
                arr = _decode_from_dataset(ds, geometry, index, None)
            elif info.deflated:
                full = read_dataset(p, limits=limits)
                arr = _decode_from_dataset(full, geometry, index, info.transfer_syntax)
            elif info.length is not None:
                arr = _decode_native(p, info, geometry, index)
            else:
                arr = _decode_encapsulated(p, info, geometry, index)
    except DicomReadError as err:
        if err.path is None:
            raise type(err)(err.reason, p, err.hint) from None
        raise
    except (MemoryError, RecursionError) as err:
        raise PixelDecodeError(
            f"pixel data can't be decoded safely ({type(err).__name__})", p, _HINT_DECODE
        ) from None
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:
        raise PixelDecodeError(
            f"pixel data can't be decoded: {_short(err)}", p, _HINT_DECODE
        ) from None
    return _checked_shape(arr, geometry, p)


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if len(text) > 240:
        text = text[:237] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _holds_pixel_value(ds: Dataset) -> bool:
    try:
        return any(tag in ds for tag in PIXEL_TAGS)
    except Exception:
        return False


def _options(geometry: PixelGeometry, ts: str, info: PixelDataInfo | None) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "rows": geometry.rows,
        "columns": geometry.columns,
        "samples_per_pixel": geometry.samples,
        "bits_allocated": geometry.bits_allocated,
        "bits_stored": geometry.bits_stored,
        "pixel_representation": geometry.pixel_representation,
        "photometric_interpretation": geometry.photometric,
        "number_of_frames": geometry.frames,
        "transfer_syntax_uid": UID(ts),
        "pixel_keyword": geometry.keyword,
    }
    if geometry.samples == 3:
        opts["planar_configuration"] = geometry.planar_configuration
    if info is not None and info.vr in ("OB", "OW", "OF", "OD"):
        opts["pixel_vr"] = info.vr
    return opts


def _decoder(ts: str, p: Path | None) -> Any:
    try:
        return pydicom.pixels.get_decoder(UID(ts))
    except Exception:
        raise PixelDecodeError(
            f"transfer syntax {ts or '(none)'} can't be decoded",
            p,
            "convert the file to an uncompressed, JPEG, JPEG-LS, JPEG 2000 or RLE syntax",
        ) from None


def _native_syntax(info: PixelDataInfo) -> str:
    ts = _known_syntax(info.transfer_syntax)
    if ts is not None and not ts.is_compressed:
        return str(ts)
    return str(ExplicitVRLittleEndian if info.little_endian else ExplicitVRBigEndian)


def _decode_native(p: Path, info: PixelDataInfo, geometry: PixelGeometry, index: int) -> np.ndarray:
    """Read one native frame at its offset in the file (PS3.5 8.1.1)."""
    if not _is_native(info):
        log.info("%s: compressed transfer syntax but defined-length pixel data; read as native", p)
    ts = _native_syntax(info)
    fast = _native_fast(p, info, geometry, index, ts)
    if fast is not None:
        return fast
    opts = _options(geometry, ts, info)
    with open(p, "rb") as fh:
        fh.seek(info.value_offset)
        arr, _ = _decoder(ts, p).as_array(fh, index=index, validate=True, **opts)
    return np.asarray(arr)


def _native_fast(
    p: Path, info: PixelDataInfo, geometry: PixelGeometry, index: int, ts: str
) -> np.ndarray | None:
    """Plain grey native data: one read and a view, without pydicom's decoder machinery."""
    g = geometry
    if g.samples != 1 or g.bits_allocated not in (8, 16, 32, 64):
        return None
    if g.keyword == "PixelData":
        kind = "i" if g.pixel_representation else "u"
    else:
        kind = "f"
    endian = "<" if UID(ts) != ExplicitVRBigEndian else ">"
    if endian == ">" and g.bits_allocated == 8:
        return None  # 8-bit data in big endian OW has its bytes swapped in pairs (PS3.5 7.3)
    dtype = np.dtype(f"{endian}{kind}{g.bits_allocated // 8}")
    frame_bytes = g.rows * g.columns * dtype.itemsize
    with open(p, "rb") as fh:
        fh.seek(info.value_offset + index * frame_bytes)
        data = fh.read(frame_bytes)
    if len(data) != frame_bytes:
        raise PixelDecodeError(f"frame {index} is cut off in the file", p, "the file is truncated")
    arr = np.frombuffer(data, dtype=dtype).reshape(g.rows, g.columns)
    arr = arr.astype(dtype.newbyteorder("="), copy=True)
    if kind != "f" and g.bits_stored < g.bits_allocated:
        # Bits above Bits Stored are not pixel data (PS3.5 8.1.1): clear them (unsigned) or
        # sign-extend (signed) exactly as pydicom does.
        shift = g.bits_allocated - g.bits_stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


def _decode_from_dataset(
    ds: Dataset, geometry: PixelGeometry, index: int, ts: str | None
) -> np.ndarray:
    syntax = ts or str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not syntax:
        syntax = str(ExplicitVRLittleEndian)
    opts = _options(geometry, syntax, None)
    opts.pop("pixel_keyword", None)
    arr, _ = _decoder(syntax, None).as_array(ds, index=index, validate=True, **opts)
    return np.asarray(arr)


def _frame_fragments(info: PixelDataInfo, geometry: PixelGeometry, index: int) -> list[int] | None:
    """Indices of the fragments that hold frame ``index`` (PS3.5 A.4), or None if unknown."""
    n = len(info.fragment_items)
    if geometry.frames == 1:
        return list(range(n))
    bot = info.bot_entries
    if bot and info.bot_valid and len(bot) == geometry.frames:
        start = bot[index]
        stop = bot[index + 1] if index + 1 < len(bot) else None
        chosen = [
            i
            for i, (rel, _, _) in enumerate(info.fragment_items)
            if rel >= start and (stop is None or rel < stop)
        ]
        return chosen or None
    if n == geometry.frames:
        return [index]
    return None


def _decode_encapsulated(
    p: Path, info: PixelDataInfo, geometry: PixelGeometry, index: int
) -> np.ndarray:
    """Read one frame's fragments and decode them alone (PS3.5 A.4)."""
    ts = info.transfer_syntax
    chosen = _frame_fragments(info, geometry, index)
    with open(p, "rb") as fh:
        if chosen is not None:
            parts = []
            for i in chosen:
                _, offset, length = info.fragment_items[i]
                fh.seek(offset)
                parts.append(fh.read(length))
            frame = b"".join(parts)
        else:
            # More fragments than frames and no usable offset table: let pydicom find the
            # frame boundaries (JPEG EOI markers) in a copy with an empty offset table.
            buffer = io.BytesIO()
            buffer.write(struct.pack("<HHL", 0xFFFE, 0xE000, 0))
            for _, offset, length in info.fragment_items:
                fh.seek(offset)
                buffer.write(struct.pack("<HHL", 0xFFFE, 0xE000, length))
                buffer.write(fh.read(length))
            buffer.write(struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
            frame = pydicom.encaps.get_frame(
                buffer.getvalue(), index, number_of_frames=geometry.frames
            )
    _check_codestream(frame, geometry, p)
    single = struct.pack("<HHL", 0xFFFE, 0xE000, 0)
    padded = frame + b"\x00" * (len(frame) % 2)
    single += struct.pack("<HHL", 0xFFFE, 0xE000, len(padded)) + padded
    single += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    opts = _options(geometry, ts, info)
    opts["number_of_frames"] = 1
    if UID(ts) == RLELossless:
        fast = _decode_rle_fast(single, frame, geometry, ts, p, opts)
        if fast is not None:
            return fast
    # pydicom's own RLE decoder bounds-checks in Python (the fallback for RLE); for the other
    # syntaxes, whichever plugin pydicom picks
    plugin = "pydicom" if UID(ts) == RLELossless else ""
    arr, _ = _decoder(ts, p).as_array(
        single, index=0, validate=True, decoding_plugin=plugin, **opts
    )
    return np.asarray(arr)


def rle_header_ok(frame: bytes, segments: int) -> bool:
    """Whether an RLE frame's header is sane (PS3.5 G.5): 64 bytes of 16 little-endian
    uint32, the number of segments first (``segments`` = Samples per Pixel x bytes per sample,
    G.2), then 15 offsets: the first 64, each larger than the last and inside the frame, the
    unused ones 0."""
    if len(frame) < 64 or not 1 <= segments <= 15:
        return False
    count, *offsets = struct.unpack("<16L", frame[:64])
    if count != segments or offsets[0] != 64:
        return False
    used = offsets[:count]
    if any(b <= a for a, b in itertools.pairwise(used)) or used[-1] >= len(frame):
        return False
    return not any(offsets[count:])


_NATIVE_STDERR_LOCK = threading.Lock()
_native_stderr_sink: Any = None  # one anonymous temporary file per process, reused under the lock


@contextlib.contextmanager
def _native_stderr_held() -> Iterator[list[bytes]]:
    """Send what native code writes to file descriptor 2 into a buffer for the duration (the
    caller decides whether to replay it: ``held[0]``). One holder at a time, process-wide; if
    descriptor 2 can't be redirected (no stderr), nothing is held. The sink is created once
    and emptied before each use, so a series of RLE frames creates no file per frame."""
    global _native_stderr_sink
    held: list[bytes] = []
    with _NATIVE_STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield held
            return
        try:
            if _native_stderr_sink is None:
                _native_stderr_sink = tempfile.TemporaryFile()  # noqa: SIM115 - lives with the process
            sink = _native_stderr_sink
            sink.seek(0)
            sink.truncate()
            os.dup2(sink.fileno(), 2)
            try:
                yield held
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                held.append(sink.read())
        finally:
            os.close(saved)


def _decode_rle_fast(
    single: bytes,
    frame: bytes,
    geometry: PixelGeometry,
    ts: str,
    p: Path,
    opts: dict[str, Any],
) -> np.ndarray | None:
    """RLE Lossless through pylibjpeg-rle (Rust; ~4x faster than pydicom's Python decoder),
    or None to fall back to pydicom's decoder.

    Only a frame whose header is sane (:func:`rle_header_ok`) is tried. pylibjpeg-rle raises
    ValueError on most damage but panics (a ``PanicException``, a BaseException, after its
    panic hook printed a message and maybe a backtrace on stderr) when a segment decodes to
    more bytes than the frame holds; both mean: fall back. Descriptor 2 is held while it runs,
    and what was written there is replayed unless it panicked.
    """
    samples = int(geometry.samples)
    bytes_per_sample = math.ceil(int(opts.get("bits_allocated", 8)) / 8)
    if not rle_header_ok(frame, samples * bytes_per_sample):
        return None
    try:
        import rle  # noqa: F401  # pylibjpeg-rle: pydicom's "pylibjpeg" RLE plugin
    except ImportError:
        return None
    failed: BaseException | None = None
    arr: Any = None
    with _native_stderr_held() as held:
        try:
            arr, _ = _decoder(ts, p).as_array(
                single, index=0, validate=True, decoding_plugin="pylibjpeg", **opts
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # PanicException derives from BaseException
            failed = err
    if held and held[0] and failed is None:
        os.write(2, held[0])
    if failed is not None:
        log.debug("pylibjpeg-rle failed (%s); using pydicom's RLE decoder", type(failed).__name__)
        return None
    return np.asarray(arr)


@dataclass(frozen=True)
class CodestreamHeader:
    """What a JPEG, JPEG-LS or JPEG 2000 codestream declares about its image."""

    kind: str  # "JPEG" (incl. JPEG-LS) or "JPEG 2000"
    rows: int
    columns: int
    components: int
    precision: int
    tiles: int = 1


_SOF_MARKERS = frozenset(
    (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7)
)


def codestream_header(frame: bytes) -> CodestreamHeader | None:
    """Parse the image header of a compressed frame (ISO/IEC 10918-1 B.2.2 SOFn,
    14495-1 SOF55, 15444-1 A.5.1 SIZ), or None when the frame starts with neither."""
    head = frame[:65536]
    if head[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(head):
            if head[pos] != 0xFF:
                pos += 1
                continue
            marker = head[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker in (0x01, 0xD8, *range(0xD0, 0xD8)):  # TEM, SOI, RSTn: no length
                pos += 2
                continue
            if marker in _SOF_MARKERS:
                if pos + 10 > len(head):
                    return None
                precision, rows, cols, comps = struct.unpack_from(">BHHB", head, pos + 4)
                return CodestreamHeader("JPEG", rows, cols, comps, precision)
            if marker in (0xDA, 0xD9):  # SOS or EOI before any SOF
                return None
            (seg_len,) = struct.unpack_from(">H", head, pos + 2)
            pos += 2 + max(seg_len, 2)
        return None
    siz = -1
    if head[:4] == b"\xff\x4f\xff\x51":  # J2K codestream: SOC then SIZ
        siz = 2
    elif head[4:8] == b"jP  ":  # JP2 file format: the codestream sits in a box
        found = head.find(b"\xff\x4f\xff\x51")
        siz = found + 2 if found >= 0 else -1
    if siz < 0 or siz + 42 > len(head):
        return None
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack_from(">8L", head, siz + 6)
    (comps,) = struct.unpack_from(">H", head, siz + 38)
    precision = (head[siz + 40] & 0x7F) + 1 if siz + 41 <= len(head) else 0
    width, height = max(xsiz - xo, 0), max(ysiz - yo, 0)
    tiles = 0
    if xt and yt and xsiz > xto and ysiz > yto:
        tiles = math.ceil((xsiz - xto) / xt) * math.ceil((ysiz - yto) / yt)
    return CodestreamHeader("JPEG 2000", height, width, comps, precision, tiles)


def _check_codestream(frame: bytes, geometry: PixelGeometry, p: Path) -> None:
    """Refuse a codestream whose header disagrees with the DICOM header, before decoding.

    A decoder allocates what the codestream declares (PS3.5 8.2 requires it to match Rows,
    Columns and Samples per Pixel); a mismatch is damage or an attempt to exhaust memory.
    A JPEG height of 0 (defined later by a DNL marker) is refused for the same reason, as
    are JPEG 2000 tilings with more than 65535 tiles (15444-1 A.4.2: Isot < 65535).
    """
    try:
        header = codestream_header(frame)
    except struct.error:
        return
    if header is None:
        return
    if (header.rows, header.columns) != (geometry.rows, geometry.columns):
        raise PixelDecodeError(
            f"compressed frame declares {header.rows}x{header.columns} pixels but Rows x "
            f"Columns are {geometry.rows}x{geometry.columns}",
            p,
            _HINT_DECODE,
        )
    if header.components != geometry.samples:
        raise PixelDecodeError(
            f"compressed frame has {header.components} components but Samples per Pixel is "
            f"{geometry.samples}",
            p,
            _HINT_DECODE,
        )
    if not 1 <= header.precision <= 38:
        raise PixelDecodeError(
            f"compressed frame declares a precision of {header.precision} bits", p, _HINT_DECODE
        )
    if header.kind == "JPEG 2000" and not 1 <= header.tiles <= 65535:
        raise PixelDecodeError(f"JPEG 2000 frame declares {header.tiles} tiles", p, _HINT_DECODE)


def _checked_shape(arr: np.ndarray, geometry: PixelGeometry, p: Path) -> np.ndarray:
    expected: tuple[int, ...] = (geometry.rows, geometry.columns)
    if geometry.samples == 3:
        expected = (*expected, 3)
    if arr.shape != expected:
        raise PixelDecodeError(
            f"decoded frame has shape {arr.shape}, expected {expected}", p, _HINT_DECODE
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, copy=True, order="C")
    return arr


# --------------------------------------------------------------------------- modality LUT


def _rescale(ds: Dataset, frame: int) -> tuple[float, float, str | None]:
    """Rescale Slope/Intercept for ``frame`` (PS3.3 C.11.1; C.7.6.16.2.9 for enhanced)."""
    group = dsvalues.functional_group(ds, frame, "PixelValueTransformationSequence")
    source = group if group is not None and "RescaleSlope" in group else ds
    slope = dsvalues.first_float(source, "RescaleSlope")
    intercept = dsvalues.first_float(source, "RescaleIntercept")
    note = None
    if slope is None and dsvalues.raw_value(source, "RescaleSlope") not in (None, "", b""):
        note = "Rescale Slope unreadable, ignored"
    elif slope == 0:
        note = "Rescale Slope 0 ignored"
    if slope is None or slope == 0:
        slope = 1.0
    if intercept is None:
        if dsvalues.raw_value(source, "RescaleIntercept") not in (None, "", b""):
            note = (note + "; " if note else "") + "Rescale Intercept unreadable, ignored"
        intercept = 0.0
    return slope, intercept, note


def _modality_lut_item(ds: Dataset) -> tuple[int, np.ndarray] | None:
    item = dsvalues.sequence_item(ds, "ModalityLUTSequence", 0)
    if item is None:
        return None
    descriptor = dsvalues.floats(item, "LUTDescriptor")
    if len(descriptor) != 3 or any(v is None for v in descriptor):
        return None
    n_entries = int(descriptor[0] or 0) or 65536
    first = int(descriptor[1] or 0)
    bits = int(descriptor[2] or 16)
    if dsvalues.first_int(ds, "PixelRepresentation") == 1 and first >= 32768:
        first -= 65536  # US/SS ambiguity of the descriptor (PS3.3 C.11.1.1.1)
    raw = dsvalues.raw_value(item, "LUTData")
    try:
        if isinstance(raw, (bytes, bytearray)):
            data = np.frombuffer(bytes(raw)[: len(raw) // 2 * 2], dtype="<u2")
            if bits <= 8 and data.size * 2 == n_entries:
                data = np.frombuffer(bytes(raw), dtype="u1")
        elif raw is None:
            return None
        else:
            data = np.asarray(list(raw), dtype=np.float64).ravel()
    except Exception:
        return None
    if data.size == 0:
        return None
    return first, np.asarray(data[:n_entries], dtype=np.float32)


def _modality(arr: np.ndarray, ds: Dataset, frame: int) -> tuple[np.ndarray, str | None]:
    with np.errstate(all="ignore"):
        lut = _modality_lut_item(ds)
        if lut is not None and "RescaleSlope" not in ds:
            return apply_lut(arr, lut[0], lut[1]), None
        slope, intercept, note = _rescale(ds, frame)
        out = np.asarray(arr, dtype=np.float32)
        if slope != 1.0 or intercept != 0.0:
            out = out * np.float32(slope) + np.float32(intercept)
            if not np.all(np.isfinite(out)):
                top = float(np.finfo(np.float32).max)
                out = np.nan_to_num(out, nan=0.0, posinf=top, neginf=-top)
        return out.astype(np.float32, copy=False), note


def apply_modality_lut(arr: np.ndarray, ds: Dataset, frame: int = 0) -> np.ndarray:
    """Stored values -> modality values (HU on CT) as float32 (PS3.3 C.11.1).

    Uses, in order: the frame's Pixel Value Transformation functional group of an enhanced
    multi-frame object (PS3.3 C.7.6.16.2.9), the Modality LUT Sequence (0028,3000), then
    Rescale Slope (0028,1053) / Intercept (0028,1052). A slope of 0 or an unreadable one is
    treated as 1 (and logged) rather than flattening the image.
    """
    out, note = _modality(arr, ds, frame)
    if note:
        log.info("%s", note)
    return out


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Frame:
    """One decoded frame, ready for display or preprocessing.

    ``values``: grey: float32 (rows, cols) modality values (HU on CT); colour: uint8/uint16
    (rows, cols, 3) RGB (PALETTE COLOR already mapped). ``photometric`` is the file's
    Photometric Interpretation as written.
    """

    values: np.ndarray
    photometric: str
    is_color: bool
    windows: tuple[Window, ...]
    pixel_spacing: tuple[float, float] | None
    rescale_note: str | None
    index: int = 0
    bits_stored: int = 16
    voi_luts: tuple[VoiLut, ...] = ()


def _pixel_spacing(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """(row, col) spacing in mm: Pixel Spacing (PS3.3 C.7.6.2.1.1), the frame's Pixel
    Measures functional group (C.7.6.16.2.1), else Imager Pixel Spacing (C.8.11.4)."""
    for source, key in (
        (ds, "PixelSpacing"),
        (dsvalues.functional_group(ds, frame, "PixelMeasuresSequence"), "PixelSpacing"),
        (ds, "ImagerPixelSpacing"),
    ):
        if source is None:
            continue
        values = dsvalues.floats(source, key)
        if len(values) >= 2:
            row, col = values[0], values[1]
            if row is not None and col is not None and row > 0 and col > 0:
                return (float(row), float(col))
    return None


def _palette_to_rgb(arr: np.ndarray, ds: Dataset, p: Path) -> np.ndarray:
    """PALETTE COLOR -> RGB through the Palette Color LUTs (PS3.3 C.7.6.3.1.5/6)."""
    try:
        rgb = pydicom.pixels.apply_color_lut(arr, ds)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:
        raise PixelDecodeError(
            f"palette colour lookup tables can't be applied: {_short(err)}", p, _HINT_DECODE
        ) from None
    rgb = np.asarray(rgb)
    if rgb.shape != (*arr.shape, 3):
        raise PixelDecodeError(f"palette lookup gave shape {rgb.shape}", p, _HINT_DECODE)
    if rgb.dtype not in (np.uint8, np.uint16):
        rgb = np.clip(rgb, 0, 65535).astype(np.uint16)
    return rgb


def load_frame(
    path: PathLike,
    index: int = 0,
    *,
    ds: Dataset | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Frame:
    """Decode frame ``index`` and apply the Modality LUT (grey) or the palette (colour)."""
    p = Path(path)
    if ds is None:
        ds = read_header(p, limits=limits)
    arr = decode_frame(p, index, ds=ds, limits=limits)
    return frame_from_stored(arr, ds, index, path=p)


def frame_from_stored(
    arr: np.ndarray, ds: Dataset, index: int = 0, *, path: PathLike | None = None
) -> Frame:
    """A Frame from stored values already decoded by :func:`decode_frame`.

    ``load_frame`` is ``decode_frame`` followed by this; ``volume.SeriesVolume`` calls it on
    the stored values it caches, so a cached slice becomes a Frame without a second decode.
    """
    p = Path(path) if path is not None else Path("<unknown>")
    photometric = dsvalues.text(ds, "PhotometricInterpretation", "").upper()
    if not photometric:
        photometric = "RGB" if arr.ndim == 3 else "MONOCHROME2"
    note = None
    bits_stored = dsvalues.first_int(ds, "BitsStored") or 16
    if photometric == "PALETTE COLOR":
        values = _palette_to_rgb(arr, ds, p)
        is_color = True
        bits_stored = 8 if values.dtype == np.uint8 else 16
    elif arr.ndim == 3:
        values = arr
        if values.dtype not in (np.uint8, np.uint16):
            values = _to_uint16_rgb(values)
            bits_stored = 16
        is_color = True
    else:
        values, note = _modality(arr, ds, index)
        is_color = False
    return Frame(
        values=values,
        photometric=photometric,
        is_color=is_color,
        windows=() if is_color else windows_from_dataset(ds, index),
        pixel_spacing=_pixel_spacing(ds, index),
        rescale_note=note,
        index=index,
        bits_stored=bits_stored,
        voi_luts=() if is_color else voi_luts_from_dataset(ds),
    )


def _to_uint16_rgb(values: np.ndarray) -> np.ndarray:
    """32-bit or signed colour samples scaled into uint16 (rare; e.g. 32-bit RGB RLE)."""
    arr = np.asarray(values, dtype=np.float64)
    lo = float(np.nanmin(arr)) if arr.size else 0.0
    hi = float(np.nanmax(arr)) if arr.size else 0.0
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint16)
    if lo >= 0 and hi <= 65535:
        return arr.astype(np.uint16)
    return np.rint((arr - lo) / (hi - lo) * 65535).astype(np.uint16)


def grayscale(frame: Frame) -> np.ndarray:
    """float32 (rows, cols): grey values as they are; colour -> luma Y = 0.299 R + 0.587 G +
    0.114 B (ITU-R BT.601, the same weights as PS3.3 C.7.6.3.1.2 YBR_FULL)."""
    if not frame.is_color:
        return np.asarray(frame.values, dtype=np.float32)
    rgb = np.asarray(frame.values, dtype=np.float32)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)
