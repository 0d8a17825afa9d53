"""The image header inside a compressed frame (JPEG, JPEG-LS, JPEG 2000), found wherever it
sits and checked against the DICOM header before a decoder allocates what it declares (PS3.5
8.2)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

from desktop_app.dicom.pixels.geometry import HINT_DECODE, PixelGeometry
from desktop_app.infra.errors import PixelDecodeError

CODESTREAM_SYNTAXES = frozenset(
    map(str, (*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes))
)
"""Transfer syntaxes whose frames carry their own image header (checked before decoding)."""


@dataclass(frozen=True)
class CodestreamHeader:
    """What a JPEG, JPEG-LS or JPEG 2000 codestream declares about its image."""

    kind: str  # "JPEG" (incl. JPEG-LS) or "JPEG 2000"
    rows: int
    columns: int
    components: int
    precision: int
    tiles: int = 1


# SOF0-3, 5-7, 9-11, 13-15 (ISO/IEC 10918-1 B.1.1.3), DHP (hierarchical, same layout: B.3.2)
# and SOF55 (JPEG-LS, 14495-1 C.2.2).
_SOF_MARKERS = frozenset(
    (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xDE, 0xF7)
)
_NO_LENGTH = frozenset((0x01, 0xD8, *range(0xD0, 0xD8)))  # TEM, SOI, RSTn (B.1.1.4)
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"


def codestream_header(frame: bytes) -> CodestreamHeader | None:
    """Parse the image header of a compressed frame (ISO/IEC 10918-1 B.2.2 SOFn, 14495-1
    SOF55, 15444-1 A.5.1 SIZ), or None when there is none before the scan data.

    The whole frame is walked, marker segment by marker segment, so a header after any
    amount of APPn or COM data is still found (each step skips one segment: the walk costs
    the number of segments, not the number of bytes).
    """
    if frame[:2] == b"\xff\xd8":
        return _jpeg_header(frame)
    if frame[:4] == _J2K_SOC_SIZ:  # J2K codestream: SOC, then SIZ (15444-1 A.4.1, A.5.1)
        return _siz_header(frame, 2)
    if frame[4:8] == b"jP  ":  # JP2 file format (15444-1 I.5): the codestream is in a box
        found = frame.find(_J2K_SOC_SIZ)
        return _siz_header(frame, found + 2) if found >= 0 else None
    return None


def _jpeg_header(frame: bytes) -> CodestreamHeader | None:
    """The first SOFn/DHP/SOF55 segment before SOS or EOI (10918-1 B.2.1, B.2.2)."""
    size = len(frame)
    pos = 2
    while pos + 4 <= size:
        if frame[pos] != 0xFF:
            # Not a marker where one should be: resynchronise on the next 0xFF.
            pos = frame.find(b"\xff", pos + 1)
            if pos < 0:
                return None
            continue
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte (B.1.1.2)
            pos += 1
            continue
        if marker in _NO_LENGTH:
            pos += 2
            continue
        if marker in _SOF_MARKERS:
            if pos + 10 > size:
                return None
            precision, rows, cols, comps = struct.unpack_from(">BHHB", frame, pos + 4)
            return CodestreamHeader("JPEG", rows, cols, comps, precision)
        if marker in (0xDA, 0xD9):  # SOS or EOI before any frame header
            return None
        (seg_len,) = struct.unpack_from(">H", frame, pos + 2)
        pos += 2 + max(seg_len, 2)
    return None


def _siz_header(frame: bytes, siz: int) -> CodestreamHeader | None:
    """The SIZ marker segment at ``siz`` (15444-1 A.5.1)."""
    if siz < 0 or siz + 42 > len(frame):
        return None
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack_from(">8L", frame, siz + 6)
    (comps,) = struct.unpack_from(">H", frame, siz + 38)
    precision = (frame[siz + 40] & 0x7F) + 1
    width, height = max(xsiz - xo, 0), max(ysiz - yo, 0)
    tiles = 0
    if xt and yt and xsiz > xto and ysiz > yto:
        tiles = math.ceil((xsiz - xto) / xt) * math.ceil((ysiz - yto) / yt)
    return CodestreamHeader("JPEG 2000", height, width, comps, precision, tiles)


def check_codestream(
    frame: bytes, geometry: PixelGeometry, p: Path | None, transfer_syntax: str = ""
) -> None:
    """Refuse a codestream whose header disagrees with the DICOM header, before decoding.

    A decoder allocates what the codestream declares (PS3.5 8.2 requires it to match Rows,
    Columns and Samples per Pixel), so the DICOM header, already checked against the decode
    budget (:class:`~desktop_app.dicom.limits.ReadLimits`), bounds the decode only when the
    two agree; a mismatch is damage or an attempt to exhaust memory. Refused: other
    dimensions or components, a precision over Bits Allocated (the decoder would return
    wider samples), a JPEG height of 0 (defined later by a DNL marker), JPEG
    2000 tilings with more than 65535 tiles (15444-1 A.4.2: Isot < 65535), and, for the
    JPEG, JPEG-LS and JPEG 2000 syntaxes, a frame without any image header.
    """
    try:
        header = codestream_header(frame)
    except struct.error:
        header = None
    if header is None:
        if transfer_syntax in CODESTREAM_SYNTAXES:
            raise PixelDecodeError(
                f"pixel data can't be decoded: the compressed frame ({len(frame)} bytes) has "
                "no JPEG/JPEG-LS frame header or JPEG 2000 image size before its image data",
                p,
                HINT_DECODE,
            )
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
    if not 1 <= header.precision <= max(geometry.bits_allocated, 8):
        raise PixelDecodeError(
            f"compressed frame declares a precision of {header.precision} bits but Bits "
            f"Allocated is {geometry.bits_allocated}",
            p,
            HINT_DECODE,
        )
    if header.kind == "JPEG 2000" and not 1 <= header.tiles <= 65535:
        raise PixelDecodeError(f"JPEG 2000 frame declares {header.tiles} tiles", p, HINT_DECODE)
