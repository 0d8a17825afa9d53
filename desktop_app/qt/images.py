"""numpy → QImage. The only place in RadAssist where an array becomes a Qt image."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def array_to_qimage(arr: np.ndarray) -> QImage:
    """Wrap a uint8 array as a QImage that owns a copy of the data.

    (rows, cols) → Grayscale8; (rows, cols, 3) → RGB888; (rows, cols, 4) → RGBA8888
    (straight alpha, as the core's overlay renderer makes it).
    """
    if arr.dtype != np.uint8:
        raise TypeError(f"array_to_qimage needs uint8, got {arr.dtype}")
    if arr.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
        channels = 1
    elif arr.ndim == 3 and arr.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
        channels = 3
    elif arr.ndim == 3 and arr.shape[2] == 4:
        fmt = QImage.Format.Format_RGBA8888
        channels = 4
    else:
        raise ValueError(f"array_to_qimage: unsupported shape {arr.shape}")
    data = np.ascontiguousarray(arr)
    height, width = data.shape[:2]
    image = QImage(data.data, width, height, width * channels, fmt)
    return image.copy()  # detach from the numpy buffer, which may be freed
