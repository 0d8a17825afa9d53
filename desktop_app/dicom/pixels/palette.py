"""PALETTE COLOR -> RGB (PS3.3 C.7.6.3.1.5): the Palette Color LUTs, segmented ones
(C.7.9.2) expanded within the decode budget as they are built."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian

from desktop_app.dicom import dsvalues
from desktop_app.dicom.limits import ReadLimits
from desktop_app.dicom.pixels.geometry import HINT_DECODE
from desktop_app.dicom.structure import hint_limit
from desktop_app.infra.errors import LimitExceededError, PixelDecodeError

_COLOURS = ("Red", "Green", "Blue")
_MAX_INDIRECT_DEPTH = 64


def has_segmented_palette(ds: Dataset) -> bool:
    """Whether the palette is given as Segmented Palette Color LUT Data (0028,1221-1223)."""
    return dsvalues.raw_value(ds, "SegmentedRedPaletteColorLookupTableData") is not None


def segmented_palette_to_rgb(
    arr: np.ndarray, ds: Dataset, p: Path | None, limits: ReadLimits
) -> np.ndarray:
    """Map stored values through segmented Palette Color LUTs (PS3.3 C.7.9.2) as pydicom's
    ``apply_color_lut`` does (below the first mapped value: the first entry; past the last
    entry: the last), with each LUT expanded to at most its declared number of entries and
    ``limits.max_lut_entries``. Returns uint8 or uint16 (rows, cols, 3) RGB."""
    descriptor = dsvalues.floats(ds, "RedPaletteColorLookupTableDescriptor")
    if len(descriptor) != 3 or any(v is None for v in descriptor):
        raise PixelDecodeError("palette LUT descriptor is missing or unreadable", p, HINT_DECODE)
    entries, first, depth = (int(v) for v in descriptor)  # type: ignore[arg-type]
    entries = entries or 65536  # a first value of 0 means 2^16 entries (C.7.6.3.1.5)
    if entries > limits.max_lut_entries:
        raise LimitExceededError(
            f"palette LUT declares {entries} entries, over the limit of {limits.max_lut_entries}",
            p,
            hint_limit("max_lut_entries"),
        )
    if depth not in (8, 16):
        raise PixelDecodeError(
            f"palette LUT entries of {depth} bits (only 8 or 16 are allowed)", p, HINT_DECODE
        )
    meta = getattr(ds, "file_meta", None)
    big = meta is not None and dsvalues.text(meta, "TransferSyntaxUID") == ExplicitVRBigEndian
    fmt = ">" if big else "<"
    fmt += "B" if depth == 8 else "H"
    luts = []
    for colour in _COLOURS:
        raw = dsvalues.raw_value(ds, f"Segmented{colour}PaletteColorLookupTableData")
        if not isinstance(raw, (bytes, bytearray)):
            raise PixelDecodeError(f"segmented {colour.lower()} palette LUT is missing", p)
        count = len(raw) // (depth // 8)
        words = struct.unpack(f"{fmt[0]}{count}{fmt[1]}", bytes(raw[: count * (depth // 8)]))
        expanded = expand_segmented_lut(words, entries, eight_bit=depth == 8, big=big, path=p)
        luts.append(np.asarray(expanded, dtype=np.uint8 if depth == 8 else np.uint16))
    if any(lut.size < entries for lut in luts):
        sizes = ", ".join(str(lut.size) for lut in luts)
        raise PixelDecodeError(
            f"segmented palette LUTs expand to {sizes} entries of the {entries} declared",
            p,
            HINT_DECODE,
        )
    index = np.clip(np.asarray(arr, dtype=np.int64) - first, 0, entries - 1)
    return np.stack([lut[index] for lut in luts], axis=-1)


def expand_segmented_lut(
    words: Sequence[int],
    cap: int,
    *,
    eight_bit: bool = False,
    big: bool = False,
    path: Path | None = None,
) -> list[int]:
    """Expand segmented LUT data (PS3.3 C.7.9.2: discrete, linear and indirect segments) to
    at most ``cap`` entries: expansion stops there, so a few bytes of segments can never
    become more than ``cap`` values. Matches pydicom's ``_expand_segmented_lut`` up to
    ``cap`` (an indirect segment's offset indexes ``words``, as pydicom reads it).
    Segment types other than 0-2, a linear or indirect first segment, and indirect segments
    nested deeper than 64 raise PixelDecodeError."""
    lut: list[int] = []
    budget = [cap + len(words) + 16]  # segments processed: bounds loops of indirect segments
    _expand(words, 0, None, lut, cap, eight_bit, big, budget, 0, path)
    return lut


def _expand(
    words: Sequence[int],
    offset: int,
    nr_segments: int | None,
    out: list[int],
    cap: int,
    eight_bit: bool,
    big: bool,
    budget: list[int],
    depth: int,
    path: Path | None,
) -> None:
    """Append the expansion of the segments from ``offset`` to ``out`` (shared by indirect
    segments, which copy ``nr_segments`` earlier segments; C.7.9.2.3)."""
    done = 0
    while offset + 1 < len(words) and len(out) < cap:
        budget[0] -= 1
        if budget[0] < 0:
            raise PixelDecodeError("segmented palette LUT loops (indirect segments)", path)
        opcode, length = words[offset], words[offset + 1]
        offset += 2
        remaining = cap - len(out)
        if opcode == 0:  # discrete (C.7.9.2.1)
            out.extend(words[offset : offset + min(length, remaining)])
            offset += length
        elif opcode == 1:  # linear (C.7.9.2.2)
            if not out:  # the line starts from the entry before it
                raise PixelDecodeError("segmented palette LUT starts with a linear segment", path)
            y1 = words[offset]
            offset += 1
            _linear(out, out[-1], y1, length, remaining)
        elif opcode == 2:  # indirect (C.7.9.2.3)
            if not out:
                raise PixelDecodeError(
                    "segmented palette LUT starts with an indirect segment", path
                )
            if depth >= _MAX_INDIRECT_DEPTH:
                raise PixelDecodeError(
                    f"segmented palette LUT nests indirect segments over {_MAX_INDIRECT_DEPTH} "
                    "deep",
                    path,
                )
            if eight_bit:
                b = [words[offset + i] for i in ((2, 3, 0, 1) if big else (3, 2, 1, 0))]
                target = (b[0] << 8 | b[1]) << 16 | (b[2] << 8 | b[3])
                offset += 4
            else:
                target = words[offset + 1] << 16 | words[offset]
                offset += 2
            _expand(words, target, length, out, cap, eight_bit, big, budget, depth + 1, path)
        else:
            raise PixelDecodeError(f"segmented palette LUT has segment type {opcode}", path)
        done += 1
        if nr_segments is not None and done == nr_segments:
            return


def _linear(out: list[int], y0: int, y1: int, length: int, remaining: int) -> None:
    """A linear segment's ``length`` values from after ``y0`` to ``y1`` (at most
    ``remaining``), rounded as pydicom does."""
    n = min(length, remaining)
    if n <= 0:
        return
    if y0 == y1:
        out.extend([y1] * n)
        return
    step = (y1 - y0) / length
    values = np.around(np.linspace(y0 + step, y1, length)[:n])
    out.extend(int(v) for v in values)
