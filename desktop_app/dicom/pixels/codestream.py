"""The image header inside a compressed frame (JPEG, JPEG-LS, JPEG 2000), checked against
the DICOM header before a decoder allocates what the codestream declares (PS3.5 8.2)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from desktop_app.dicom.pixels.geometry import HINT_DECODE, PixelGeometry
from desktop_app.infra.errors import PixelDecodeError


@dataclass(frozen=True)
class CodestreamHeader:
    """What a JPEG, JPEG-LS or JPEG 2000 codestream declares about its image."""

    kind: str  # "JPEG" (incl. JPEG-LS) or "JPEG 2000"
    rows: int
    columns: int
    components: int
    precision: int
    tiles: int = 1


_SOF_MARKERS = frozenset(
    (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7)
)


def codestream_header(frame: bytes) -> CodestreamHeader | None:
    """Parse the image header of a compressed frame (ISO/IEC 10918-1 B.2.2 SOFn,
    14495-1 SOF55, 15444-1 A.5.1 SIZ), or None when the frame starts with neither."""
    head = frame[:65536]
    if head[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(head):
            if head[pos] != 0xFF:
                pos += 1
                continue
            marker = head[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker in (0x01, 0xD8, *range(0xD0, 0xD8)):  # TEM, SOI, RSTn: no length
                pos += 2
                continue
            if marker in _SOF_MARKERS:
                if pos + 10 > len(head):
                    return None
                precision, rows, cols, comps = struct.unpack_from(">BHHB", head, pos + 4)
                return CodestreamHeader("JPEG", rows, cols, comps, precision)
            if marker in (0xDA, 0xD9):  # SOS or EOI before any SOF
                return None
            (seg_len,) = struct.unpack_from(">H", head, pos + 2)
            pos += 2 + max(seg_len, 2)
        return None
    siz = -1
    if head[:4] == b"\xff\x4f\xff\x51":  # J2K codestream: SOC then SIZ
        siz = 2
    elif head[4:8] == b"jP  ":  # JP2 file format: the codestream sits in a box
        found = head.find(b"\xff\x4f\xff\x51")
        siz = found + 2 if found >= 0 else -1
    if siz < 0 or siz + 42 > len(head):
        return None
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack_from(">8L", head, siz + 6)
    (comps,) = struct.unpack_from(">H", head, siz + 38)
    precision = (head[siz + 40] & 0x7F) + 1 if siz + 41 <= len(head) else 0
    width, height = max(xsiz - xo, 0), max(ysiz - yo, 0)
    tiles = 0
    if xt and yt and xsiz > xto and ysiz > yto:
        tiles = math.ceil((xsiz - xto) / xt) * math.ceil((ysiz - yto) / yt)
    return CodestreamHeader("JPEG 2000", height, width, comps, precision, tiles)


def check_codestream(frame: bytes, geometry: PixelGeometry, p: Path) -> None:
    """Refuse a codestream whose header disagrees with the DICOM header, before decoding.

    A decoder allocates what the codestream declares (PS3.5 8.2 requires it to match Rows,
    Columns and Samples per Pixel); a mismatch is damage or an attempt to exhaust memory.
    A JPEG height of 0 (defined later by a DNL marker) is refused for the same reason, as
    are JPEG 2000 tilings with more than 65535 tiles (15444-1 A.4.2: Isot < 65535).
    """
    try:
        header = codestream_header(frame)
    except struct.error:
        return
    if header is None:
        return
    if (header.rows, header.columns) != (geometry.rows, geometry.columns):
        raise PixelDecodeError(
            f"compressed frame declares {header.rows}x{header.columns} pixels but Rows x "
            f"Columns are {geometry.rows}x{geometry.columns}",
            p,
            HINT_DECODE,
        )
    if header.components != geometry.samples:
        raise PixelDecodeError(
            f"compressed frame has {header.components} components but Samples per Pixel is "
            f"{geometry.samples}",
            p,
            HINT_DECODE,
        )
    if not 1 <= header.precision <= 38:
        raise PixelDecodeError(
            f"compressed frame declares a precision of {header.precision} bits", p, HINT_DECODE
        )
    if header.kind == "JPEG 2000" and not 1 <= header.tiles <= 65535:
        raise PixelDecodeError(f"JPEG 2000 frame declares {header.tiles} tiles", p, HINT_DECODE)
