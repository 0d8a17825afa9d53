"""Small hostile files for the decode budget (issue 12), each built from a seed in a few lines.

Each builder writes one file and returns its path: the file is a few kilobytes to a few
megabytes, and declares (or inflates to) gigabytes. Used by ``test_budget`` and by the
before/after measurements.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit

from tests.helpers.dicomfiles import image_dataset, image_elements, raw_file, save


def small_jpeg(seed: int = 0, size: int = 16) -> bytes:
    """A real baseline JPEG of ``size`` x ``size`` grey pixels (Pillow), noise from ``seed``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, "JPEG", quality=90)
    return out.getvalue()


def with_dimensions(jpeg: bytes, rows: int, columns: int) -> bytes:
    """``jpeg`` with its SOF0 frame header declaring ``rows`` x ``columns`` instead."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", rows, columns) + jpeg[sof + 9 :]


def with_app_padding(jpeg: bytes, nbytes: int) -> bytes:
    """``jpeg`` with ``nbytes`` (about) of APP15 segments right after SOI, before SOF."""
    segment = b"\xff\xef" + struct.pack(">H", 65535) + b"\x00" * 65533
    count = nbytes // len(segment) + 1
    return jpeg[:2] + segment * count + jpeg[2:]


def jpeg_file(path: Path, frame: bytes, rows: int, columns: int) -> Path:
    """A JPEG Baseline DICOM object of one frame whose header declares ``rows`` x ``columns``."""
    ds = image_dataset(
        np.zeros((2, 2), np.uint8), bits_allocated=8, transfer_syntax=JPEGBaseline8Bit
    )
    ds.Rows, ds.Columns = rows, columns
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    return save(ds, path)


def late_sof_jpeg(path: Path, seed: int = 0) -> Path:
    """Rows x Columns 16 x 16, but the SOF after 128 KiB of APP data declares 65535 x 65535."""
    frame = with_app_padding(with_dimensions(small_jpeg(seed), 65535, 65535), 128 * 1024)
    return jpeg_file(path, frame, 16, 16)


def huge_consistent_jpeg(path: Path, seed: int = 0, side: int = 20000) -> Path:
    """A JPEG of about 1 KB whose SOF and Rows/Columns agree on ``side`` x ``side`` pixels."""
    return jpeg_file(path, with_dimensions(small_jpeg(seed), side, side), side, side)


def segmented_palette(path: Path, segments: int = 3000, seed: int = 0) -> Path:
    """PALETTE COLOR, 16-bit segmented LUTs (PS3.3 C.7.9.2) of ``segments`` linear segments
    of 65535 entries each: ~18 bytes a segment that expand to 128 KiB each."""
    rng = np.random.default_rng(seed)
    words = [0, 1, 0]  # a discrete segment of one entry: a linear one needs a start
    for _ in range(segments):
        words += [1, 65535, int(rng.integers(0, 65536))]
    data = struct.pack(f"<{len(words)}H", *words)
    ds = image_dataset(
        rng.integers(0, 256, (8, 8), dtype=np.uint8),
        bits_allocated=8,
        photometric="PALETTE COLOR",
    )
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [0, 0, 16])
        setattr(ds, f"Segmented{colour}PaletteColorLookupTableData", data)
    return save(ds, path)


def deflate_bomb(path: Path, inflated: int = 2400 << 20) -> Path:
    """Deflated Explicit VR Little Endian (PS3.5 A.5) whose dataset is one private OB element
    of ``inflated`` zero bytes: ~1/1000 of that on disk."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = struct.pack("<HH2sHL", 0x0009, 0x1010, b"OB", 0, inflated)
    parts = [packer.compress(head)]
    zeros = b"\x00" * (16 << 20)
    for start in range(0, inflated, len(zeros)):
        parts.append(packer.compress(zeros[: min(len(zeros), inflated - start)]))
    parts.append(packer.flush())
    return raw_file(path, b"".join(parts), DeflatedExplicitVRLittleEndian)


def deflated_image(path: Path, rows: int = 16000, columns: int = 16000) -> Path:
    """A deflated 8-bit image of ``rows`` x ``columns`` zeros (a few hundred KB on disk)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    count = rows * columns
    body = image_elements(rows, columns) + struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, count)
    parts = [packer.compress(body)]
    zeros = b"\x00" * (16 << 20)
    for start in range(0, count, len(zeros)):
        parts.append(packer.compress(zeros[: min(len(zeros), count - start)]))
    parts.append(packer.flush())
    return raw_file(path, b"".join(parts), DeflatedExplicitVRLittleEndian)
