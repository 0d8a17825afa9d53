"""DICOM overlay planes (groups 6000-601E): bitmaps stored beside the image, checked and unpacked.

An Overlay Plane (PS3.3 C.9.2) is a one-bit bitmap in Overlay Data (60xx,3000), packed
little-endian bit first like 1-bit Pixel Data (PS3.5 8.1.1), Overlay Rows x Overlay Columns
(60xx,0010/0011) in size, placed so that its first bit lands on the image pixel named by
Overlay Origin (60xx,0050), row\\column, 1-based (it may lie partly outside the image).
Overlay Type (60xx,0040) is G (graphics: text, lines) or R (a region of interest).

A multi-frame overlay (PS3.3 C.9.3) holds Number of Frames in Overlay (60xx,0015) bitmaps
one after another (not byte-aligned), the first belonging to image frame Image Frame Origin
(60xx,0051). A single-frame overlay without Number of Frames in Overlay applies to every frame.

Overlays stored in unused high bits of the Pixel Data (retired, Overlay Bits Allocated > 1
without Overlay Data) are not shown; :func:`overlay_planes` says so in its problems.

Bounds: at most 16 groups; a plane's size and frame count are checked against
:class:`~desktop_app.dicom.limits.ReadLimits` before anything is unpacked, Overlay Data must
hold every declared bit, and a plane is unpacked one frame at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits

log = logging.getLogger(__name__)

OVERLAY_GROUPS = tuple(range(0x6000, 0x6020, 2))  # PS3.5 7.6: even groups 6000-601E
TEXT_LIMIT = 256  # characters of a label or description kept


@dataclass(frozen=True)
class OverlayPlane:
    """One overlay plane. ``origin`` is Overlay Origin as (row, column), 1-based;
    ``image_frame_origin`` is 1-based; ``frames`` counts the bitmaps in ``data`` and
    ``all_frames`` says that the one bitmap applies to every image frame."""

    group: int
    rows: int
    columns: int
    origin: tuple[int, int]
    kind: str
    label: str = ""
    description: str = ""
    frames: int = 1
    image_frame_origin: int = 1
    all_frames: bool = True
    data: bytes = field(default=b"", repr=False)

    @property
    def top_left(self) -> tuple[int, int]:
        """Where the bitmap's first bit lands in the viewer's image coordinates, (x, y)."""
        return self.origin[1] - 1, self.origin[0] - 1

    def overlay_frame(self, image_frame: int) -> int | None:
        """Which of this plane's bitmaps belongs to image frame ``image_frame`` (0-based), or
        None when none does."""
        if self.all_frames:
            return 0
        k = image_frame + 1 - self.image_frame_origin
        return k if 0 <= k < self.frames else None

    def mask(self, overlay_frame: int = 0) -> np.ndarray:
        """Bitmap ``overlay_frame`` as a (rows, columns) bool array."""
        if not 0 <= overlay_frame < self.frames:
            raise IndexError(f"overlay frame {overlay_frame} is out of range 0..{self.frames - 1}")
        n = self.rows * self.columns
        start = overlay_frame * n
        first, last = start // 8, (start + n + 7) // 8
        chunk = np.frombuffer(self.data, dtype=np.uint8, count=last - first, offset=first)
        bits = np.unpackbits(chunk, bitorder="little")
        offset = start - first * 8
        return bits[offset : offset + n].reshape(self.rows, self.columns).astype(bool)

    def mask_for(self, image_frame: int) -> np.ndarray | None:
        """The bitmap for image frame ``image_frame`` (0-based), or None."""
        k = self.overlay_frame(image_frame)
        return None if k is None else self.mask(k)


def _int(ds: Dataset, tag: tuple[int, int], default: int | None = None) -> int | None:
    elem = ds.get(tag)
    if elem is None:
        return default
    value = elem.value
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return int(value) if value is not None and value != "" else default
    except (TypeError, ValueError, OverflowError):
        return None


def _text(ds: Dataset, tag: tuple[int, int]) -> str:
    elem = ds.get(tag)
    if elem is None or elem.value is None:
        return ""
    try:
        return str(elem.value)[:TEXT_LIMIT]
    except Exception:  # a value pydicom cannot decode is no reason to lose the bitmap
        return ""


def _origin(ds: Dataset, group: int) -> tuple[int, int] | None:
    elem = ds.get((group, 0x0050))
    if elem is None:
        return (1, 1)
    value = elem.value
    try:
        row, col = (int(v) for v in list(value)[:2])
    except (TypeError, ValueError, OverflowError):
        return None
    return row, col


def _plane(ds: Dataset, group: int, limits: ReadLimits) -> OverlayPlane:
    """The plane of ``group``; raises ValueError with the reason it can't be shown."""
    rows, cols = _int(ds, (group, 0x0010)), _int(ds, (group, 0x0011))
    if not rows or not cols or rows < 0 or cols < 0:
        raise ValueError(f"Overlay Rows/Columns {rows}x{cols} are missing or not positive")
    if rows * cols > limits.max_frame_pixels:
        raise ValueError(f"a {rows}x{cols} overlay is over the limit of one frame's pixels")
    bits = _int(ds, (group, 0x0100), 1)
    data_elem = ds.get((group, 0x3000))
    if data_elem is None:
        what = "in the pixel data's unused bits (retired)" if bits and bits > 1 else "no data"
        raise ValueError(f"the overlay is stored {what} and is not shown")
    if bits != 1:
        raise ValueError(f"Overlay Bits Allocated is {bits}; Overlay Data needs 1")
    declared = ds.get((group, 0x0015))
    frames = _int(ds, (group, 0x0015), 1)
    if frames is None or frames < 1 or frames > limits.max_frames:
        raise ValueError(
            f"Number of Frames in Overlay {frames} is not within 1..{limits.max_frames}"
        )
    frame_origin = _int(ds, (group, 0x0051), 1)
    if frame_origin is None or frame_origin < 1:
        raise ValueError(f"Image Frame Origin {frame_origin} is not a frame number")
    origin = _origin(ds, group)
    if origin is None:
        raise ValueError("Overlay Origin is not two numbers")
    data = data_elem.value
    if not isinstance(data, bytes | bytearray):
        raise ValueError("Overlay Data is not binary")
    needed = (rows * cols * frames + 7) // 8
    if len(data) < needed:
        raise ValueError(
            f"Overlay Data holds {len(data)} bytes; {rows}x{cols}x{frames} needs {needed}"
        )
    kind = _text(ds, (group, 0x0040)).strip().upper() or "G"
    return OverlayPlane(
        group=group,
        rows=rows,
        columns=cols,
        origin=origin,
        kind=kind if kind in ("G", "R") else "G",
        label=_text(ds, (group, 0x1500)),
        description=_text(ds, (group, 0x0022)),
        frames=frames,
        image_frame_origin=frame_origin,
        all_frames=declared is None and frames == 1,
        data=bytes(data[:needed]),
    )


def overlay_planes(
    ds: Dataset, limits: ReadLimits = DEFAULT_LIMITS
) -> tuple[list[OverlayPlane], list[str]]:
    """The dataset's overlay planes, and one line per plane that is present but can't be
    shown (saying why). Never raises for what a file holds."""
    planes: list[OverlayPlane] = []
    problems: list[str] = []
    for group in OVERLAY_GROUPS:
        if (group, 0x0010) not in ds and (group, 0x3000) not in ds:
            continue
        try:
            planes.append(_plane(ds, group, limits))
        except ValueError as err:
            problems.append(f"overlay {group:04X}: {err}")
        except Exception as err:  # a value pydicom fails to convert
            problems.append(f"overlay {group:04X}: can't be read ({type(err).__name__})")
    if problems:
        log.info("overlay planes not shown: %s", "; ".join(problems))
    return planes, problems


def overlay_rgba(
    plane: OverlayPlane, image_frame: int, color: tuple[int, int, int]
) -> np.ndarray | None:
    """The plane's bitmap for ``image_frame`` as straight-alpha RGBA (set bits opaque in
    ``color``, the rest transparent), or None when no bitmap belongs to that frame."""
    mask = plane.mask_for(image_frame)
    if mask is None or not mask.any():
        return None
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[mask] = (*color, 255)
    return rgba


__all__ = ["OVERLAY_GROUPS", "OverlayPlane", "overlay_planes", "overlay_rgba"]
