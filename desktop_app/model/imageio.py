"""Read one image for the model: DICOM through desktop_app.dicom, PNG/JPEG through Pillow.

Whatever the format, the result is one grey 2-D float32 array plus what the preprocessing needs
to interpret it (photometric interpretation, the file's first VOI window). DICOM goes through
desktop_app.dicom's decoding and Modality LUT (PS3.3 C.11.1) so that training and the app see the same
values; colour becomes luma (ITU-R BT.601), as ``dicom.pixels.grayscale`` does.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_app.infra.errors import DataError, PathLike

if TYPE_CHECKING:
    from desktop_app.dicom.pixels import Frame

log = logging.getLogger(__name__)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_RASTER_PIXELS = 200_000_000  # refuse decompression bombs before decoding


@dataclass(frozen=True)
class ImageForModel:
    """One frame's grey values and how to read them.

    values: float32 (rows, cols): modality values for DICOM, raw sample values for PNG/JPEG.
    photometric: "MONOCHROME1" (minimum is white, PS3.3 C.7.6.3.1.2) or "MONOCHROME2".
    file_window: the file's first VOI window (a ``desktop_app.dicom.voi.Window``) or None.
    pixel_spacing: (row, column) spacing in mm when the file says so.
    """

    values: np.ndarray
    photometric: str = "MONOCHROME2"
    file_window: object | None = None
    pixel_spacing: tuple[float, float] | None = None


def image_kind(path: PathLike) -> str:
    """The kind of image ("png", "jpeg" or "dicom") from the first bytes, not the name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise DataError(f"can't be opened: {err.strerror or err}", Path(path)) from None
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    from desktop_app.dicom.dicomfile import sniff_dicom

    if sniff_dicom(path):
        return "dicom"
    raise DataError(
        "is not a DICOM, PNG or JPEG image", Path(path), "list only DICOM, PNG or JPEG files"
    )


def read_image(path: PathLike, frame: int = 0) -> ImageForModel:
    """Read frame ``frame`` of a DICOM, PNG or JPEG file as grey values for the model.

    Raises the DicomReadError family (desktop_app.infra.errors) for DICOM problems and DataError otherwise.
    """
    kind = image_kind(path)
    if kind == "dicom":
        return _read_dicom(Path(path), frame)
    return _read_raster(Path(path), frame)


def _read_dicom(path: Path, frame: int) -> ImageForModel:
    from desktop_app.dicom.pixels import load_frame

    return image_from_frame(load_frame(path, frame))


def image_from_frame(loaded: Frame) -> ImageForModel:
    """A decoded DICOM frame (``desktop_app.dicom.pixels.Frame``) as the model reads it.

    The one conversion that training (``read_image``) and the app's inference engine (frames
    from ``volume.SeriesVolume``) share, so both feed the preprocessing the same values.
    """
    from desktop_app.dicom.pixels import grayscale

    if loaded.is_color:
        # Colour (RGB, YBR, palette) becomes luma; its photometric no longer applies.
        return ImageForModel(grayscale(loaded), "MONOCHROME2", None, loaded.pixel_spacing)
    window = loaded.windows[0] if loaded.windows else None
    return ImageForModel(
        np.asarray(loaded.values, dtype=np.float32),
        loaded.photometric,
        window,
        loaded.pixel_spacing,
    )


@contextmanager
def open_raster(
    path: Path,
    *,
    noun: str = "image",
    unreadable: str = "can't be read as an image",
    hint: str = "check that the file is a valid PNG, JPEG or DICOM image",
    too_big_hint: str | None = None,
) -> Iterator[Any]:
    """A Pillow image of ``path`` whose declared size was checked before anything is decoded
    (over :data:`MAX_RASTER_PIXELS` is refused; Pillow's decompression-bomb warning is an
    error). A failure in Pillow or in the caller's block is one DataError: "``unreadable``:
    <error>"."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_RASTER_PIXELS:
                    raise DataError(
                        f"{noun} is {img.width}x{img.height} pixels, over the limit of "
                        f"{MAX_RASTER_PIXELS}",
                        path,
                        too_big_hint,
                    )
                yield img
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning) as err:
        reason = " ".join(str(err).split())
        raise DataError(f"{unreadable}: {type(err).__name__}: {reason}", path, hint) from None


def _read_raster(path: Path, frame: int) -> ImageForModel:
    with open_raster(path) as img:
        n_frames = getattr(img, "n_frames", 1)
        if not 0 <= frame < n_frames:
            raise DataError(f"frame {frame} asked for, the image has {n_frames}", path)
        if frame:
            img.seek(frame)
        values = _grey_values(img)
    return ImageForModel(values, "MONOCHROME2", None, None)


def _grey_values(img: object) -> np.ndarray:
    """Pillow image -> float32 grey; 8/16/32-bit grey kept as is, colour -> BT.601 luma."""
    from PIL import Image

    assert isinstance(img, Image.Image)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "L", "1"):
        return np.asarray(img).astype(np.float32)
    if mode in ("LA", "La"):
        return np.asarray(img.getchannel("L")).astype(np.float32)
    rgb = np.asarray(img.convert("RGB")).astype(np.float32)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)
