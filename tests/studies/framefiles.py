"""Small files that declare more frames than they hold, or hold no dataset at all (issue 12):
each built from a few lines of pydicom, a few hundred bytes to a few hundred KB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from tests.helpers.dicomfiles import image_dataset, meta_header, save, set_raw

NUMBER_OF_FRAMES = 0x00280008


def multiframe(
    path: Path,
    frames: int,
    *,
    rows: int = 1,
    columns: int = 1,
    pixel_bytes: int | None = None,
    modality: str = "DX",
) -> Path:
    """A native 8-bit grey object declaring ``frames`` frames of rows x columns, holding
    ``pixel_bytes`` bytes of pixel data (default: exactly what the frames need)."""
    ds = image_dataset(
        np.zeros((2, rows, columns), np.uint8), frames=2, bits_allocated=8, modality=modality
    )
    set_raw(ds, NUMBER_OF_FRAMES, "IS", str(frames).encode())  # IS past 2**31 as a file holds it
    size = frames * rows * columns if pixel_bytes is None else pixel_bytes
    data = np.random.default_rng(frames).integers(0, 256, size, dtype=np.uint8).tobytes()
    ds.PixelData = data + (b"\x00" if len(data) % 2 else b"")
    return save(ds, path)


def encapsulated(
    path: Path, frames: int, stored: int, *, fragments_per_frame: int = 1, bot: bool = False
) -> Path:
    """An RLE object declaring ``frames`` frames whose pixel data holds ``stored`` frames of
    ``fragments_per_frame`` fragments each (with a Basic Offset Table of ``stored`` entries
    when ``bot``)."""
    ds = image_dataset(
        np.zeros((2, 1, 1), np.uint8), frames=2, bits_allocated=8, transfer_syntax=RLELossless
    )
    set_raw(ds, NUMBER_OF_FRAMES, "IS", str(frames).encode())
    parts = [b"\x00" * 8 * fragments_per_frame] * stored
    ds.PixelData = encapsulate(parts, fragments_per_frame=fragments_per_frame, has_bot=bot)
    ds["PixelData"].VR = "OB"
    return save(ds, path)


def preamble_only(path: Path) -> Path:
    """The 128-byte preamble and "DICM", nothing else."""
    path.write_bytes(b"\x00" * 128 + b"DICM")
    return path


def meta_only(path: Path) -> Path:
    """Preamble, "DICM" and a File Meta group (0002,xxxx), and no dataset after it."""
    path.write_bytes(meta_header())
    return path
