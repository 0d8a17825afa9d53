"""VOI (PS3.3 C.11.2): windows, VOI LUTs, LUT lookup, the auto window and CT presets (Qt-free).

Values of interest -> [0, 1]: :func:`apply_window` and :func:`apply_voi_lut` take modality
values (``pixels.apply_modality_lut``); ``display.render`` turns the result into uint8.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from desktop_app.dicom import dsvalues

log = logging.getLogger(__name__)

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """A VOI window: Window Center (0028,1050) and Width (0028,1051), PS3.3 C.11.2.1.2."""

    center: float
    width: float
    function: str = "LINEAR"
    explanation: str = ""

    @property
    def low(self) -> float:
        """The value shown black (for LINEAR_EXACT exactly; LINEAR within half a unit)."""
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        """The value shown white."""
        return self.center + self.width / 2.0


@dataclass(frozen=True)
class VoiLut:
    """A VOI LUT (0028,3010) item, PS3.3 C.11.2.1.1: Descriptor + LUT Data."""

    first_mapped: int
    data: np.ndarray  # the LUT entries, as stored
    bits: int  # the LUT Descriptor's third value
    explanation: str = ""


def _voi_function(ds: Dataset) -> str:
    function = dsvalues.text(ds, "VOILUTFunction", "LINEAR").upper()
    return function if function in VOI_FUNCTIONS else "LINEAR"


def _windows_in(ds: Dataset) -> tuple[Window, ...]:
    centers = dsvalues.floats(ds, "WindowCenter")
    widths = dsvalues.floats(ds, "WindowWidth")
    if not centers or not widths:
        return ()
    explanations = dsvalues.texts(ds, "WindowCenterWidthExplanation")
    function = _voi_function(ds)
    count = max(len(centers), len(widths))
    out: list[Window] = []
    for i in range(count):
        # A single value on one side pairs with each value on the other.
        center = centers[i] if i < len(centers) else (centers[0] if len(centers) == 1 else None)
        width = widths[i] if i < len(widths) else (widths[0] if len(widths) == 1 else None)
        if center is None or width is None:
            continue
        if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
            continue
        if function == "LINEAR" and width < 1:
            # PS3.3 C.11.2.1.2: Window Width shall be >= 1 for LINEAR.
            continue
        explanation = explanations[i] if i < len(explanations) else ""
        out.append(Window(center, width, function, explanation))
    return (out and tuple(out)) or ()


def windows_from_dataset(ds: Dataset, frame: int = 0) -> tuple[Window, ...]:
    """The valid VOI windows that apply to ``frame``.

    Enhanced multi-frame objects keep them in the Frame VOI LUT functional group
    (PS3.3 C.7.6.16.2.10), per frame or shared; others at the top level (C.11.2). Values may
    be multi-valued (C.11.2.1.2); windows with a width of zero or less, or under 1 for
    LINEAR, and non-numeric values are dropped.
    """
    try:
        group = dsvalues.functional_group(ds, frame, "FrameVOILUTSequence")
        if group is not None:
            found = _windows_in(group)
            if found:
                return found
        return _windows_in(ds)
    except Exception:  # a broken header never stops display
        log.debug("unreadable VOI window", exc_info=True)
        return ()


def voi_luts_from_dataset(ds: Dataset) -> tuple[VoiLut, ...]:
    """The VOI LUT Sequence (0028,3010) items that parse, PS3.3 C.11.2.1.1."""
    out: list[VoiLut] = []
    for i in range(dsvalues.sequence_length(ds, "VOILUTSequence")):
        item = dsvalues.sequence_item(ds, "VOILUTSequence", i)
        if item is None:
            continue
        lut = _parse_lut(item)
        if lut is not None:
            first, data, bits = lut
            out.append(VoiLut(first, data, bits, dsvalues.text(item, "LUTExplanation")))
    return tuple(out)


def _parse_lut(item: Dataset) -> tuple[int, np.ndarray, int] | None:
    """(first mapped value, entries, bits) of a LUT item (PS3.3 C.11.1.1.1), or None."""
    descriptor = dsvalues.floats(item, "LUTDescriptor")
    if len(descriptor) != 3 or any(v is None for v in descriptor):
        return None
    n_entries, first, bits = (int(v) for v in descriptor)  # type: ignore[arg-type]
    if n_entries == 0:
        n_entries = 65536
    raw = dsvalues.raw_value(item, "LUTData")
    try:
        if isinstance(raw, (bytes, bytearray)):
            dtype = "<u1" if bits <= 8 and len(raw) == n_entries else "<u2"
            data = np.frombuffer(bytes(raw), dtype=dtype)
        elif raw is None:
            return None
        else:
            data = np.asarray(list(raw) if not isinstance(raw, np.ndarray) else raw)
            data = data.astype(np.int64).ravel()
    except Exception:
        return None
    if data.size == 0:
        return None
    if data.size > n_entries:
        data = data[:n_entries]
    bits = bits if 1 <= bits <= 16 else 16
    return first, data.astype(np.float32), bits


def apply_lut(values: np.ndarray, first_mapped: int, data: np.ndarray) -> np.ndarray:
    """Look ``values`` up in a LUT (PS3.3 C.11.1.1): below range -> first entry, above -> last."""
    idx = np.nan_to_num(np.asarray(values, dtype=np.float64) - first_mapped, nan=0.0)
    idx = np.clip(np.rint(idx), 0, data.size - 1).astype(np.intp)
    return np.asarray(data[idx], dtype=np.float32)


def apply_voi_lut(values: np.ndarray, lut: VoiLut) -> np.ndarray:
    """Map through a VOI LUT and scale to [0, 1] by the LUT's bit depth (PS3.3 C.11.2.1.1)."""
    out = apply_lut(values, lut.first_mapped, lut.data)
    top = float(2**lut.bits - 1)
    data_max = float(lut.data.max()) if lut.data.size else top
    if data_max > top:  # some writers declare fewer bits than they use
        top = data_max
    return np.clip(out / max(top, 1.0), 0.0, 1.0).astype(np.float32)


def auto_window(values: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> Window:
    """A robust window from the 0.5th..99.5th percentiles of the finite values.

    For images that carry no VOI (typical of DX/CR), so that an outlier (a marker, a burned-in
    label, padding) does not wash the image out. Returns a LINEAR_EXACT window spanning the
    percentiles exactly.
    """
    arr = np.asarray(values)
    if arr.ndim == 3:
        arr = arr.mean(axis=-1)
    flat = arr.ravel()
    step = max(1, flat.size // 1_000_000)
    sample = flat[::step].astype(np.float64, copy=False)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return Window(0.5, 1.0, "LINEAR_EXACT", "auto")
    lo, hi = np.percentile(sample, [low_pct, high_pct])
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    if not hi > lo:
        return Window(float(lo), 1.0, "LINEAR_EXACT", "auto")
    return Window(float(lo + hi) / 2.0, float(hi - lo), "LINEAR_EXACT", "auto")


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Map values to float32 in [0, 1] through ``window`` (PS3.3 C.11.2.1.2 / C.11.2.1.3).

    LINEAR (C.11.2.1.2.1) uses ``(x - (c - 0.5)) / (w - 1) + 0.5``; LINEAR_EXACT
    (C.11.2.1.3.2) ``(x - c) / w + 0.5``; SIGMOID (C.11.2.1.3.1) ``1 / (1 + exp(-4 (x - c) / w))``.
    A width at or below the function's minimum (1 for LINEAR, 0 otherwise) becomes a hard
    threshold at the centre: nothing is divided by zero. NaN inputs map to 0.
    """
    x = np.asarray(values, dtype=np.float32)
    c = float(window.center)
    w = float(window.width)
    if not math.isfinite(c):
        c = 0.0
    function = window.function.upper() if window.function else "LINEAR"
    with np.errstate(all="ignore"):
        if not math.isfinite(w):
            out = (x > c).astype(np.float32)
        elif function == "SIGMOID":
            if w <= 0:
                out = (x > c).astype(np.float32)
            else:
                z = np.clip(-4.0 * (x.astype(np.float64) - c) / w, -80.0, 80.0)
                out = (1.0 / (1.0 + np.exp(z))).astype(np.float32)
        elif function == "LINEAR_EXACT":
            out = (x > c).astype(np.float32) if w <= 0 else _linear(x, c, w, 0.5)
        else:
            out = (x > c - 0.5).astype(np.float32) if w <= 1 else _linear(x, c - 0.5, w - 1, 0.5)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def _linear(x: np.ndarray, origin: float, scale: float, offset: float) -> np.ndarray:
    """``(x - origin) / scale + offset`` as float32, computed in float64 one block of rows
    at a time so that a large frame never has a float64 copy of itself in memory."""
    out = np.empty(x.shape, dtype=np.float32)
    flat_in = x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)
    flat_out = out.reshape(flat_in.shape)
    step = max(1, (1 << 20) // max(1, flat_in.shape[1]))
    for start in range(0, flat_in.shape[0], step):
        block = flat_in[start : start + step].astype(np.float64)
        block -= origin
        block /= scale
        block += offset
        flat_out[start : start + step] = block
    return out


PRESETS: dict[str, Window] = {
    "lung": Window(-600.0, 1500.0, "LINEAR", "lung"),
    "mediastinum": Window(50.0, 350.0, "LINEAR", "mediastinum"),
    "bone": Window(400.0, 1800.0, "LINEAR", "bone"),
    "brain": Window(40.0, 80.0, "LINEAR", "brain"),
    "abdomen": Window(40.0, 400.0, "LINEAR", "abdomen"),
}
"""CT window presets in Hounsfield units (centre/width), as commonly used in radiology."""


def presets_for_modality(modality: str) -> dict[str, Window]:
    """The presets that make sense for ``modality`` (only CT's values are in HU): a copy."""
    if (modality or "").strip().upper() == "CT":
        return dict(PRESETS)
    return {}
