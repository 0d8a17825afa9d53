"""Thumbnails for the study browser: one small uint8 image per series, Qt-free.

A series is represented by its middle slice (the one the viewer opens on), rendered with the
same display pipeline as the viewer (``display.render``: Modality LUT, the file's VOI window
or an automatic one, MONOCHROME1 inverted, PS3.3 C.11 and C.7.6.3.1.2) and shrunk by area
averaging so that thin structures don't alias away.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from desktop_app.dicom.display import render
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.pixels import Frame
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import instance_frame

log = logging.getLogger(__name__)

DEFAULT_SIZE = 64


def shrink(image: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Fit a uint8 (rows, cols) or (rows, cols, 3) image inside ``size`` x ``size`` pixels.

    Keeps the aspect ratio; each output pixel is the mean of the input block it covers (integer
    block averaging, then nearest sampling for the remainder). Never enlarges.
    """
    if size < 1:
        raise ValueError(f"`size` {size} should be at least 1")
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"shrink needs uint8, got {arr.dtype}")
    rows, cols = arr.shape[:2]
    if rows == 0 or cols == 0:
        raise ValueError(f"empty image of shape {arr.shape}")
    scale = min(size / rows, size / cols, 1.0)
    out_r, out_c = max(1, round(rows * scale)), max(1, round(cols * scale))
    factor = max(1, math.floor(min(rows / out_r, cols / out_c)))
    if factor > 1:
        r0, c0 = (rows // factor) * factor, (cols // factor) * factor
        block = arr[:r0, :c0].astype(np.float32)
        shape = (r0 // factor, factor, c0 // factor, factor, *arr.shape[2:])
        arr = np.rint(block.reshape(shape).mean(axis=(1, 3))).astype(np.uint8)
    ri = np.minimum((np.arange(out_r) + 0.5) * arr.shape[0] / out_r, arr.shape[0] - 1)
    ci = np.minimum((np.arange(out_c) + 0.5) * arr.shape[1] / out_c, arr.shape[1] - 1)
    return np.ascontiguousarray(arr[ri.astype(np.intp)][:, ci.astype(np.intp)])


def frame_thumbnail(frame: Frame, size: int = DEFAULT_SIZE) -> np.ndarray:
    """A displayed frame (file window or auto window) shrunk to fit ``size``."""
    return shrink(render(frame), size)


def stack_thumbnail(
    stack: SliceStack, size: int = DEFAULT_SIZE, *, limits: ReadLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """The thumbnail of a stack: its middle slice, decoded without caching.

    Raises the project's DicomReadError (or a subclass) when that slice can't be decoded.
    """
    ref = stack.slices[len(stack.slices) // 2]
    frame = instance_frame(ref.instance, ref.frame, limits=limits)
    return frame_thumbnail(frame, size)
