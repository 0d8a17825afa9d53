"""One frame's stored values, read alone from the file and decoded (PS3.5 8 and A.4).

Native data is read by offset, encapsulated data by its fragments, so a multi-frame object is
never decoded whole to show one frame. Every failure is raised as :class:`PixelDecodeError`
or :class:`LimitExceededError` naming the path. Each call opens its own file handle, so the
functions here are thread-safe.
"""

from __future__ import annotations

import bisect
import io
import logging
import struct
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pydicom.encaps
import pydicom.pixels
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, RLELossless

from desktop_app.dicom.dicomfile import (
    PixelDataInfo,
    pixel_data_info,
    quiet_pydicom,
    read_dataset,
    read_header,
)
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.pixels import rle
from desktop_app.dicom.pixels.codestream import CODESTREAM_SYNTAXES, check_codestream
from desktop_app.dicom.pixels.geometry import (
    HINT_DECODE,
    PathLike,
    PixelGeometry,
    has_pixel_data,
    is_native,
    known_syntax,
    pixel_geometry,
)
from desktop_app.infra.errors import FATAL, DicomReadError, PixelDecodeError

log = logging.getLogger(__name__)


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
    if ds is None or not has_pixel_data(ds):
        ds = read_header(p, limits=limits)
    geometry = _geometry(ds, p, limits)
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
            f"pixel data can't be decoded safely ({type(err).__name__})", p, HINT_DECODE
        ) from None
    except FATAL:
        raise
    except BaseException as err:
        raise PixelDecodeError(
            f"pixel data can't be decoded: {error_summary(err)}", p, HINT_DECODE
        ) from None
    return _checked_shape(arr, geometry, p)


_GEOMETRY_ATTR = "_radassist_geometry"


def _geometry(ds: Dataset, p: Path, limits: ReadLimits) -> PixelGeometry:
    """``pixel_geometry`` once per header object: decoding each of a multi-frame object's
    frames with the same header (as a series volume does) must not re-parse it per frame."""
    cached = ds.__dict__.get(_GEOMETRY_ATTR)
    if cached is not None and cached[0] == (p, limits):
        return cached[1]  # type: ignore[no-any-return]
    geometry = pixel_geometry(ds, p, limits)
    object.__setattr__(ds, _GEOMETRY_ATTR, ((p, limits), geometry))
    return geometry


def error_summary(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if len(text) > 240:
        text = text[:237] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


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
    ts = known_syntax(info.transfer_syntax)
    if ts is not None and not ts.is_compressed:
        return str(ts)
    return str(ExplicitVRLittleEndian if info.little_endian else ExplicitVRBigEndian)


def _decode_native(p: Path, info: PixelDataInfo, geometry: PixelGeometry, index: int) -> np.ndarray:
    """Read one native frame at its offset in the file (PS3.5 8.1.1)."""
    if not is_native(info):
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
    if syntax in CODESTREAM_SYNTAXES:
        # A dataset read elsewhere: its frame is in memory; check its header all the same.
        check_codestream(
            pydicom.encaps.get_frame(ds.PixelData, index, number_of_frames=geometry.frames),
            geometry,
            None,
            syntax,
        )
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
        # items follow each other, so their offsets increase: two binary searches, not a scan
        # of every fragment per frame (which made decoding every frame quadratic)
        items = info.fragment_items
        lo = bisect.bisect_left(items, bot[index], key=itemgetter(0))
        hi = (
            bisect.bisect_left(items, bot[index + 1], key=itemgetter(0))
            if index + 1 < len(bot)
            else n
        )
        return list(range(lo, hi)) or None
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
    check_codestream(frame, geometry, p, str(ts))
    single = struct.pack("<HHL", 0xFFFE, 0xE000, 0)
    padded = frame + b"\x00" * (len(frame) % 2)
    single += struct.pack("<HHL", 0xFFFE, 0xE000, len(padded)) + padded
    single += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    opts = _options(geometry, ts, info)
    opts["number_of_frames"] = 1
    if UID(ts) == RLELossless:
        fast = rle.decode_rle_fast(single, frame, geometry, opts)
        if fast is not None:
            return fast
    # pydicom's own RLE decoder bounds-checks in Python (the fallback for RLE); for the other
    # syntaxes, whichever plugin pydicom picks
    plugin = "pydicom" if UID(ts) == RLELossless else ""
    arr, _ = _decoder(ts, p).as_array(
        single, index=0, validate=True, decoding_plugin=plugin, **opts
    )
    return np.asarray(arr)


def _checked_shape(arr: np.ndarray, geometry: PixelGeometry, p: Path) -> np.ndarray:
    expected: tuple[int, ...] = (geometry.rows, geometry.columns)
    if geometry.samples == 3:
        expected = (*expected, 3)
    if arr.shape != expected:
        raise PixelDecodeError(
            f"decoded frame has shape {arr.shape}, expected {expected}", p, HINT_DECODE
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, copy=True, order="C")
    return arr
