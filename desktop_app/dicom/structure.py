"""A DICOM file's structure as the walks see it (PS3.5 7): tags, VRs, ScanResult, PixelDataInfo.

Shared by the full walk (:mod:`desktop_app.dicom.walk`) and the quick header walk
(:mod:`desktop_app.dicom.headerscan`), so that both decide the same way.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR

PIXEL_KEYWORDS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}
ITEM = 0xFFFEE000  # (FFFE,E000) Item, PS3.5 7.5
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
# PS3.5 Table 7.1-1: VRs with a 2-byte reserved field and a 4-byte length.
VR32 = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
)
KNOWN_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
SHORT_VRS = KNOWN_VRS - VR32  # 2-byte length (PS3.5 Table 7.1-2)
RawPosition = tuple[bytes | None, int, int]
"""A recorded element: (VR as read, None for implicit VR; value offset; declared length)."""
HINT_CORRUPT = "the file is truncated or corrupt; re-export or re-transfer it"
HINT_NOT_DICOM = "this does not look like a DICOM file"


_SETTING_LIMITS = ("max_object_bytes", "max_frame_bytes")


def hint_limit(name: str) -> str:
    """What a reader can do about limit ``name``: the app's setting where one controls it,
    else say it is a safety limit (named, for developers) that the file is over."""
    if name in _SETTING_LIMITS:
        return (
            "if the file is trusted, raise Settings > Largest image to open in the app "
            f"(ReadLimits.{name})"
        )
    return f"a safety limit for untrusted files (ReadLimits.{name}); the file is not read"


@dataclass(frozen=True)
class PixelDataInfo:
    """Where a file's top-level pixel data element is and how it is encoded (PS3.5 A.4).

    ``value_offset`` is the byte offset of the value in the file (in the inflated stream when
    ``deflated``). ``length`` is None for encapsulated (undefined-length) data, whose
    ``fragments`` counts the items after the Basic Offset Table. ``bot_entries`` are the
    Basic Offset Table offsets (empty when the table is empty); ``bot_valid`` says whether
    they are usable (multiples of 4, increasing, inside the data).
    """

    keyword: str
    vr: str | None
    value_offset: int
    length: int | None
    transfer_syntax: str
    implicit_vr: bool
    little_endian: bool
    deflated: bool
    file_size: int
    fragments: int = 0
    fragments_bytes: int = 0
    bot_entries: tuple[int, ...] = ()
    bot_valid: bool = True
    delimiter_found: bool = True
    # (item offset relative to the first fragment's item, value offset in file, length)
    fragment_items: tuple[tuple[int, int, int], ...] = ()

    @property
    def encapsulated(self) -> bool:
        return self.length is None


@dataclass
class ScanResult:
    """What :func:`scan_file` learned about a file's structure."""

    path: Path
    file_size: int
    has_preamble: bool
    has_meta: bool
    transfer_syntax: str
    implicit_vr: bool
    little_endian: bool
    deflated: bool
    elements: int = 0
    max_depth: int = 0
    pixel: PixelDataInfo | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Keep an oddity (at most 20, so a hostile file can't grow the list)."""
        if len(self.notes) < 20:
            self.notes.append(text)


def looks_explicit(buf: Any, pos: int, size: int) -> bool | None:
    """pydicom's test for the first element of a dataset: two capital letters as VR."""
    if pos + 6 > size:
        return None
    a, b = buf[pos + 4], buf[pos + 5]
    return 0x40 < a < 0x5B and 0x40 < b < 0x5B


def sq_by_dictionary(tag: int) -> bool:
    """Whether the data dictionary gives ``tag`` the VR SQ (for implicit VR, PS3.5 7.1.3)."""
    try:
        return str(dictionary_VR(tag)) == "SQ"
    except Exception:  # private or unknown tags are not in the dictionary
        return False


SQ_BY_DICTIONARY_CACHE: dict[int, bool] = {}


def is_dictionary_sq(tag: int) -> bool:
    """:func:`sq_by_dictionary`, cached (the quick walk asks for the same tags file after file)."""
    found = SQ_BY_DICTIONARY_CACHE.get(tag)
    if found is None:
        found = sq_by_dictionary(tag)
        if len(SQ_BY_DICTIONARY_CACHE) < 4096:  # private tags vary; keep the cache bounded
            SQ_BY_DICTIONARY_CACHE[tag] = found
    return found


def native_pixel_info(
    scan: ScanResult,
    tag: int,
    vr: bytes | None,
    value_offset: int,
    length: int,
    implicit: bool,
    little: bool,
) -> PixelDataInfo:
    """The PixelDataInfo of defined-length (native) top-level pixel data (PS3.5 8.1.1)."""
    return PixelDataInfo(
        keyword=PIXEL_KEYWORDS[tag],
        vr=vr.decode("ascii", "replace") if vr else None,
        value_offset=value_offset,
        length=length,
        transfer_syntax=scan.transfer_syntax,
        implicit_vr=implicit,
        little_endian=little,
        deflated=scan.deflated,
        file_size=scan.file_size,
    )


def plausible_first_element(head: bytes, file_size: int) -> bool:
    """Whether ``head`` starts with a plausible group 0002 or 0008 element (no preamble)."""
    if len(head) < 8:
        return False
    vr = head[4:6]
    explicit = vr in KNOWN_VRS
    for endian in ("<", ">"):
        group, elem = struct.unpack(endian + "HH", head[:4])
        if group not in (0x0002, 0x0008):
            continue
        if endian == ">" and not explicit:
            continue  # implicit VR big endian does not exist (PS3.5 A.1)
        if group == 0x0002 and elem > 0x0102:
            continue
        if explicit:
            if vr in VR32:
                if len(head) < 12:
                    return False
                (length,) = struct.unpack(endian + "L", head[8:12])
                return length == UNDEFINED or length <= file_size
            (length,) = struct.unpack(endian + "H", head[6:8])
            return length <= file_size
        (length,) = struct.unpack("<L", head[4:8])
        return length <= file_size or length == UNDEFINED
    return False


RawValue = tuple[bytes | None, bytes | None]
"""A top-level element for :class:`TopLevel`: (VR as read, None for implicit VR and
``b"SQ"`` for anything walked as a sequence; the value bytes, None for a sequence, an
undefined length or more than :data:`MAX_RAW_VALUE` bytes)."""
MAX_RAW_VALUE = 64 * 1024
"""Values longer than this are not copied into :class:`TopLevel` (the index needs none)."""


class TopLevel:
    """Top-level elements of one file as the structure walk found them (PS3.5 7.1).

    ``meta``: every File Meta element (group 0002). ``values``: those of the wanted tags
    that are in the dataset before its pixel data, which is what pydicom's
    ``stop_before_pixels`` keeps. ``command_group``: the file has a command group 0000
    (pydicom merges it into the dataset).
    """

    __slots__ = ("command_group", "meta", "values")

    def __init__(
        self, meta: dict[int, RawValue], values: dict[int, RawValue], command_group: bool
    ) -> None:
        self.meta = meta
        self.values = values
        self.command_group = command_group
