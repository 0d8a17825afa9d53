"""Stored values -> a Frame: Modality LUT (PS3.3 C.11.1), palette colour (C.7.6.3.1.5),
pixel spacing, the file's VOI windows and LUTs, and grey from colour."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom.pixels
from pydicom.dataset import Dataset

from desktop_app.dicom import dsvalues
from desktop_app.dicom.dicomfile import read_header
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.pixels.decode import decode_frame, error_summary
from desktop_app.dicom.pixels.geometry import HINT_DECODE
from desktop_app.dicom.pixels.palette import has_segmented_palette, segmented_palette_to_rgb
from desktop_app.dicom.voi import (
    VoiLut,
    Window,
    apply_lut,
    voi_luts_from_dataset,
    windows_from_dataset,
)
from desktop_app.infra.errors import FATAL, DicomReadError, PathLike, PixelDecodeError

log = logging.getLogger(__name__)


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


def _palette_to_rgb(arr: np.ndarray, ds: Dataset, p: Path, limits: ReadLimits) -> np.ndarray:
    """PALETTE COLOR -> RGB through the Palette Color LUTs (PS3.3 C.7.6.3.1.5/6); segmented
    LUTs (C.7.9.2) are expanded within ``limits`` (pydicom's expansion is unbounded)."""
    try:
        if has_segmented_palette(ds):
            rgb = segmented_palette_to_rgb(arr, ds, p, limits)
        else:
            rgb = pydicom.pixels.apply_color_lut(arr, ds)[..., :3]  # alpha (C.7.6.3.1.6) dropped
    except FATAL:
        raise
    except DicomReadError:
        raise
    except BaseException as err:
        raise PixelDecodeError(
            f"palette colour lookup tables can't be applied: {error_summary(err)}", p, HINT_DECODE
        ) from None
    rgb = np.asarray(rgb)
    if rgb.shape != (*arr.shape, 3):
        raise PixelDecodeError(f"palette lookup gave shape {rgb.shape}", p, HINT_DECODE)
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
    return frame_from_stored(arr, ds, index, path=p, limits=limits)


def frame_from_stored(
    arr: np.ndarray,
    ds: Dataset,
    index: int = 0,
    *,
    path: PathLike | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
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
        values = _palette_to_rgb(arr, ds, p, limits)
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
