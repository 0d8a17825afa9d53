"""Rendering a Frame to uint8 for display: VOI, then Presentation (Qt-free).

The grey pipeline is stored values -> Modality LUT (``pixels.apply_modality_lut``) ->
VOI (window or VOI LUT, PS3.3 C.11.2; :mod:`desktop_app.dicom.voi`) -> Presentation
(MONOCHROME1 inverted, PS3.3 C.7.6.3.1.2) -> uint8. Colour images are shown as they are
(optionally windowed per channel).
"""

from __future__ import annotations

import numpy as np

from desktop_app.dicom.pixels import Frame
from desktop_app.dicom.voi import Window, apply_voi_lut, apply_window, auto_window


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8. ``unit`` is a float32 array that the caller made and no longer needs
    (the window's output): it is scaled in place, so a large frame is not copied again."""
    scaled = np.asarray(unit, dtype=np.float32)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= 255.0
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def render(frame: Frame, window: Window | None = None, *, invert: bool = False) -> np.ndarray:
    """The frame as uint8 for display: (rows, cols) grey or (rows, cols, 3) RGB.

    Grey: ``window`` if given, else the file's first window, else its first VOI LUT
    (PS3.3 C.11.2.1.1), else :func:`auto_window`. MONOCHROME1 is shown inverted
    (PS3.3 C.7.6.3.1.2: minimum value is white), and ``invert`` flips it again on top.
    Colour: shown as stored, scaled to 8 bits; a given ``window`` applies to each channel.
    """
    if frame.is_color:
        return _render_color(frame, window, invert)
    values = frame.values
    if window is None and frame.windows:
        window = frame.windows[0]
    if window is None and frame.voi_luts:
        unit = apply_voi_lut(values, frame.voi_luts[0])
    else:
        unit = apply_window(values, window if window is not None else auto_window(values))
    out = _to_uint8(unit)
    if (frame.photometric == "MONOCHROME1") != invert:
        out = 255 - out
    return out


def _render_color(frame: Frame, window: Window | None, invert: bool) -> np.ndarray:
    """Colour as stored, scaled from Bits Stored to 8 bits, or windowed per channel."""
    values = np.asarray(frame.values)
    if window is not None:
        out = _to_uint8(apply_window(values, window))
    elif values.dtype == np.uint8:
        out = values
    else:
        top = float(2 ** max(1, min(frame.bits_stored, 32)) - 1)
        out = _to_uint8(np.asarray(values, dtype=np.float32) / top)
    if invert:
        out = 255 - out
    return np.ascontiguousarray(out, dtype=np.uint8)
