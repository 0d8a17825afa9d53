"""Safe reading of one DICOM file's header or whole dataset (PS3.10 file format).

Before pydicom sees a file, :func:`scan_file` walks its element structure without
recursion (PS3.5 7.1 data elements, 7.5 nesting of sequences, A.4 encapsulated pixel data)
and checks every declared length against the bytes that remain, the sequence nesting depth,
the number of elements and the total header size against :class:`ReadLimits`. Only a file
that passes is handed to pydicom, and any exception pydicom still raises is turned into the
project's own one-line errors (:class:`NotDicomError`, :class:`DicomReadError`,
:class:`LimitExceededError`), each naming the path.

The walk mirrors pydicom's tolerance (per-element switch to implicit VR, trailing bytes
shorter than an element header ignored, a top-level Item Delimitation Item ends the dataset)
so that a file pydicom reads is not refused for a difference in parsing.

:func:`scan_header` is the same walk for a header read, plus the raw values of chosen
top-level elements (:class:`TopLevel`), so the index needs no pydicom parse at all. The
common file (File Meta, little endian, not deflated, tags in order) gets a quick walk over its
first KiB, read in one call: the top level is walked by ``_quick_walk`` with the same checks,
each sequence's value and encapsulated pixel data by :class:`_Walker`'s own code. Anything
else, or anything the full walk would refuse or note, is left to the full walk over the
mapped file, which decides. The tests compare both walks' results and errors file by file
(corpora, hand-made structures, seeded mutations).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import pydicom.config
import pydicom.hooks
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.infra.errors import (
    DicomReadError,
    LimitExceededError,
    NotDicomError,
    RadAssistError,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# pydicom validates values while reading and warns (with the value in the message, which may be
# a patient's name). The app never wants that: the values are used tolerantly (dsvalues).
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def _tolerant_raw_element_value(raw: Any, data: dict[str, Any], **kwargs: Any) -> None:
    """pydicom's value conversion, falling back to the raw bytes as UN (PS3.5 6.2.2).

    A corrupt VR (e.g. 'DW') or an unconvertible value otherwise raises later, whenever any
    code touches the element (iterating, printing, anonymising). Registered as pydicom's
    ``raw_element_value`` hook.
    """
    try:
        _default_raw_element_value(raw, data, **kwargs)
    except Exception:
        data["VR"] = "UN"
        data["value"] = raw.value if isinstance(raw.value, bytes) else b""


def _tolerant_raw_element_vr(raw: Any, data: dict[str, Any], **kwargs: Any) -> None:
    """pydicom's VR lookup, falling back to UN when it fails (e.g. a malformed private tag)."""
    try:
        _default_raw_element_vr(raw, data, **kwargs)
    except Exception:
        data["VR"] = "UN"


_default_raw_element_value = pydicom.hooks.raw_element_value
_default_raw_element_vr = pydicom.hooks.raw_element_vr
pydicom.hooks.hooks.register_callback("raw_element_value", _tolerant_raw_element_value)
pydicom.hooks.hooks.register_callback("raw_element_vr", _tolerant_raw_element_vr)

PIXEL_KEYWORDS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
# PS3.5 Table 7.1-1: VRs with a 2-byte reserved field and a 4-byte length.
_VR32 = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
)
_KNOWN_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
_SHORT_VRS = _KNOWN_VRS - _VR32  # 2-byte length (PS3.5 Table 7.1-2)
RawPosition = tuple[bytes | None, int, int]
"""A recorded element: (VR as read, None for implicit VR; value offset; declared length)."""
_HINT_CORRUPT = "the file is truncated or corrupt; re-export or re-transfer it"
_HINT_NOT_DICOM = "this does not look like a DICOM file"


def _hint_limit(name: str) -> str:
    return f"raise ReadLimits.{name} only if the file is trusted"


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


# --------------------------------------------------------------------------- warnings


_quiet_lock = threading.Lock()
_quiet_users = 0
_QUIET_FILTERS = (
    ("ignore", None, UserWarning, None, 0),
    ("ignore", None, RuntimeWarning, None, 0),
)


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's and the decoders' UserWarnings while reading.

    Broken-but-readable files make pydicom warn; the core reports problems through its own
    exceptions and notes instead. ``warnings.catch_warnings`` is not thread-safe, so the
    filters are added while any reader is active (a counter) and removed by the last one.
    """
    global _quiet_users
    with _quiet_lock:
        if _quiet_users == 0:
            for entry in _QUIET_FILTERS:
                warnings.filters.insert(0, entry)  # type: ignore[attr-defined]
            _filters_mutated()
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0:
                for entry in _QUIET_FILTERS:
                    # ValueError: someone reset the filters meanwhile
                    with contextlib.suppress(ValueError):
                        warnings.filters.remove(entry)  # type: ignore[attr-defined]
                _filters_mutated()


def _filters_mutated() -> None:
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()


# --------------------------------------------------------------------------- sniffing


def _plausible_first_element(head: bytes, file_size: int) -> bool:
    """Whether ``head`` starts with a plausible group 0002 or 0008 element (no preamble)."""
    if len(head) < 8:
        return False
    vr = head[4:6]
    explicit = vr in _KNOWN_VRS
    for endian in ("<", ">"):
        group, elem = struct.unpack(endian + "HH", head[:4])
        if group not in (0x0002, 0x0008):
            continue
        if endian == ">" and not explicit:
            continue  # implicit VR big endian does not exist (PS3.5 A.1)
        if group == 0x0002 and elem > 0x0102:
            continue
        if explicit:
            if vr in _VR32:
                if len(head) < 12:
                    return False
                (length,) = struct.unpack(endian + "L", head[8:12])
                return length == _UNDEFINED or length <= file_size
            (length,) = struct.unpack(endian + "H", head[6:8])
            return length <= file_size
        (length,) = struct.unpack("<L", head[4:8])
        return length <= file_size or length == _UNDEFINED
    return False


def sniff_dicom(path: PathLike) -> bool:
    """Cheap check: 'DICM' at offset 128 (PS3.10 7.1), or a plausible first element.

    Files without the preamble and meta header (pre-PS3.10 files, e.g. an ACR-NEMA style
    dump) start directly with an element of group 0002 or 0008. PNG, text and other files
    give False. Never raises.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(144)
            size = os.fstat(fh.fileno()).st_size
    except (OSError, ValueError):
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return _plausible_first_element(head, size)


# --------------------------------------------------------------------------- the walk


class _Frame:
    """One level of the walk: a dataset (top level or item) or a sequence."""

    __slots__ = ("end", "implicit", "is_sequence", "start")

    def __init__(self, is_sequence: bool, start: int, end: int | None, implicit: bool) -> None:
        self.is_sequence = is_sequence
        self.start = start
        self.end = end  # None: undefined length
        self.implicit = implicit


def _looks_explicit(buf: Any, pos: int, size: int) -> bool | None:
    """pydicom's test for the first element of a dataset: two capital letters as VR."""
    if pos + 6 > size:
        return None
    a, b = buf[pos + 4], buf[pos + 5]
    return 0x40 < a < 0x5B and 0x40 < b < 0x5B


def _sq_by_dictionary(tag: int) -> bool:
    try:
        return str(dictionary_VR(tag)) == "SQ"
    except Exception:
        return False


class _Walker:
    """Iterative walk over a buffer of DICOM data elements, with limits."""

    def __init__(
        self,
        buf: Any,
        size: int,
        path: Path,
        limits: ReadLimits,
        little: bool,
        scan: ScanResult,
    ) -> None:
        self.buf = buf
        self.size = size
        self.path = path
        self.limits = limits
        self.little = little
        self.e = "<" if little else ">"
        self.tag_len = struct.Struct(self.e + "HHL")
        self.explicit_head = struct.Struct(self.e + "HH2sH")
        self.u32 = struct.Struct(self.e + "L")
        self.scan = scan
        self.header_bytes = 0

    # -- errors
    def _corrupt(self, reason: str) -> DicomReadError:
        return DicomReadError(reason, self.path, _HINT_CORRUPT)

    def _count(self) -> None:
        self.scan.elements += 1
        if self.scan.elements > self.limits.max_elements:
            raise LimitExceededError(
                f"more than {self.limits.max_elements} data elements",
                self.path,
                _hint_limit("max_elements"),
            )

    def _check_value(self, tag: int, value_pos: int, length: int) -> None:
        remain = self.size - value_pos
        if length > remain:
            raise self._corrupt(
                f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {value_pos} declares "
                f"{length} bytes but only {max(remain, 0)} remain"
            )

    def _add_header_bytes(self, length: int) -> None:
        self.header_bytes += length
        if self.header_bytes > self.limits.max_header_bytes:
            raise LimitExceededError(
                f"header values exceed {self.limits.max_header_bytes} bytes",
                self.path,
                _hint_limit("max_header_bytes"),
            )

    def _find_delimiter(self, pos: int) -> int:
        """Offset of the Sequence Delimitation Item at or after ``pos`` (pydicom's fallback)."""
        needle = struct.pack(self.e + "HHL", 0xFFFE, 0xE0DD, 0)
        found = self.buf.find(needle, pos)
        if found < 0:
            raise self._corrupt(
                f"undefined-length value at byte {pos} has no Sequence Delimitation Item"
            )
        return int(found)

    def _skip_undefined_value(self, pos: int) -> int:
        """End of an undefined-length value that is not a sequence (e.g. encapsulated icon
        pixel data): walk its items like pydicom does, else search for the delimiter."""
        buf, size, tag_len = self.buf, self.size, self.tag_len
        cursor = pos
        while cursor + 8 <= size:
            group, elem, length = tag_len.unpack_from(buf, cursor)
            tag = group << 16 | elem
            if tag == _SEQUENCE_DELIMITER:
                return cursor + 8
            if tag != _ITEM or length == _UNDEFINED or cursor + 8 + length > size:
                break
            self._count()
            cursor += 8 + length
        return self._find_delimiter(pos) + 8

    # -- the walk
    def walk(
        self,
        pos: int,
        implicit: bool,
        *,
        stop_group: int | None = None,
        top_level_pixels: bool = False,
        record: dict[int, RawPosition] | None = None,
        top_level_sequence: tuple[int | None, bool] | None = None,
    ) -> tuple[int, bool]:
        """Walk a top-level dataset from ``pos``; returns (end position, implicit VR used).

        ``stop_group``: stop before the first element not in this group (file meta).
        ``record``: filled with the top-level elements before the first pixel data element
        (what pydicom's ``stop_before_pixels`` keeps), as (VR, value offset, length); the VR
        is as read (None: implicit), ``b"SQ"`` for anything walked as a sequence.
        ``top_level_sequence``: (end or None for undefined length, implicit VR): ``pos`` is the
        value of a top-level sequence; walk just that value, exactly as the whole walk would
        when it reached it, and return the position after it.
        """
        buf, size = self.buf, self.size
        if top_level_sequence is None:
            found = _looks_explicit(buf, pos, size)
            if stop_group is None and found is not None and found == implicit:
                # pydicom switches the whole top-level dataset on its first element.
                implicit = not found
                self.scan.note(
                    f"dataset is {'implicit' if implicit else 'explicit'} VR, unlike its "
                    "transfer syntax"
                )
        top_implicit = implicit
        stack = [_Frame(False, pos, None, implicit)]
        max_depth = self.limits.max_sequence_depth
        depth = 0
        floor = 0
        if top_level_sequence is not None:
            depth = floor = 1
            self.scan.max_depth = max(self.scan.max_depth, depth)
            if depth > max_depth:  # pragma: no cover - limits are >= 1
                raise LimitExceededError(
                    f"sequences nested deeper than {max_depth} levels",
                    self.path,
                    _hint_limit("max_sequence_depth"),
                )
            stack.append(_Frame(True, pos, *top_level_sequence))
        tag_len = self.tag_len
        explicit_head = self.explicit_head
        u32 = self.u32
        while len(stack) > floor:
            frame = stack[-1]
            if frame.is_sequence:
                if frame.end is not None and pos >= frame.end:
                    stack.pop()
                    depth -= 1
                    continue
                if pos + 8 > size:
                    raise self._corrupt(f"sequence starting at byte {frame.start} is never closed")
                group, elem, length = tag_len.unpack_from(buf, pos)
                tag = group << 16 | elem
                pos += 8
                self._count()
                if tag == _SEQUENCE_DELIMITER:
                    stack.pop()
                    depth -= 1
                    continue
                if tag != _ITEM and tag != _ITEM_DELIMITER:
                    # pydicom reads it as an item header anyway; so do we.
                    self.scan.note(f"non-item tag inside a sequence at byte {pos - 8}")
                item_implicit = frame.implicit
                if not item_implicit:
                    looks = _looks_explicit(buf, pos, size)
                    if looks is False:
                        item_implicit = True  # PS3.5 6.2.2: items may be implicit VR
                if length == _UNDEFINED:
                    stack.append(_Frame(False, pos, None, item_implicit))
                else:
                    self._check_value(tag, pos, length)
                    stack.append(_Frame(False, pos, pos + length, item_implicit))
                continue

            # a dataset (top level or item)
            if frame.end is not None and pos >= frame.end:
                stack.pop()
                continue
            if pos + 8 > size:
                if len(stack) == 1:
                    if pos < size:
                        self.scan.note(f"{size - pos} trailing bytes ignored")
                    pos = size
                    break
                raise self._corrupt(f"sequence item starting at byte {frame.start} is never closed")
            implicit = frame.implicit
            element_pos = pos
            if implicit:
                group, elem, length = tag_len.unpack_from(buf, pos)
                vr = None
                pos += 8
            else:
                group, elem, vr, length = explicit_head.unpack_from(buf, pos)
                pos += 8
                if vr in _VR32:
                    if pos + 4 > size:
                        raise self._corrupt(f"element header at byte {element_pos} is cut off")
                    (length,) = u32.unpack_from(buf, pos)
                    pos += 4
                elif not (b"AA" <= vr <= b"ZZ"):
                    # pydicom: not a VR, assume implicit VR for this element.
                    group, elem, length = tag_len.unpack_from(buf, element_pos)
                    vr = None
            tag = group << 16 | elem
            if stop_group is not None and len(stack) == 1 and group != stop_group:
                pos = element_pos
                break
            if tag == _ITEM_DELIMITER:
                self._count()
                if len(stack) == 1:
                    # pydicom ends the top-level dataset here.
                    self.scan.note(f"item delimiter at byte {element_pos} ends the data")
                    break
                stack.pop()
                continue
            self._count()
            is_top = len(stack) == 1
            if is_top and top_level_pixels and tag in PIXEL_KEYWORDS and self.scan.pixel is None:
                pos = self._pixel_data(tag, vr, length, pos, top_implicit)
                continue
            if length == _UNDEFINED:
                is_sq = vr == b"SQ" or vr == b"UN"
                if vr is None:
                    is_sq = _sq_by_dictionary(tag)
                    if not is_sq and pos + 4 <= size:
                        g2, e2 = struct.unpack_from(self.e + "HH", buf, pos)
                        is_sq = (g2 << 16 | e2) == _ITEM
                if record is not None and is_top and self.scan.pixel is None:
                    record[tag] = (b"SQ" if is_sq else vr, pos, length)
                if is_sq:
                    depth += 1
                    self.scan.max_depth = max(self.scan.max_depth, depth)
                    if depth > max_depth:
                        raise LimitExceededError(
                            f"sequences nested deeper than {max_depth} levels",
                            self.path,
                            _hint_limit("max_sequence_depth"),
                        )
                    # An undefined-length UN is an implicit VR SQ (PS3.5 6.2.2).
                    stack.append(_Frame(True, pos, None, implicit or vr == b"UN"))
                    continue
                end = self._skip_undefined_value(pos)
                self._add_header_bytes(end - pos)
                pos = end
                continue
            self._check_value(tag, pos, length)
            is_sq = vr == b"SQ"
            if not is_sq and (vr is None or vr == b"UN") and length >= 8:
                # Implicit VR (or UN): a sequence if the dictionary says so, or if the value
                # starts with an item tag (private sequences).
                g2, e2 = struct.unpack_from(self.e + "HH", buf, pos)
                starts_with_item = (g2 << 16 | e2) == _ITEM
                is_sq = starts_with_item or (vr is None and _sq_by_dictionary(tag))
                if vr == b"UN" and not starts_with_item:
                    is_sq = False
            if record is not None and len(stack) == 1 and self.scan.pixel is None:
                record[tag] = (b"SQ" if is_sq else vr, pos, length)
            if is_sq and length > 0:
                depth += 1
                self.scan.max_depth = max(self.scan.max_depth, depth)
                if depth > max_depth:
                    raise LimitExceededError(
                        f"sequences nested deeper than {max_depth} levels",
                        self.path,
                        _hint_limit("max_sequence_depth"),
                    )
                stack.append(_Frame(True, pos, pos + length, implicit or vr == b"UN"))
                continue
            self._add_header_bytes(length)
            pos += length
        return pos, top_implicit

    def _pixel_data(self, tag: int, vr: bytes | None, length: int, pos: int, implicit: bool) -> int:
        """Record the top-level pixel data element; returns the position after it."""
        keyword = PIXEL_KEYWORDS[tag]
        vr_text = vr.decode("ascii", "replace") if vr else None
        scan = self.scan
        if length != _UNDEFINED:
            self._check_value(tag, pos, length)
            if length > self.limits.max_object_bytes:
                raise LimitExceededError(
                    f"{keyword} holds {length} bytes, over the limit of "
                    f"{self.limits.max_object_bytes}",
                    self.path,
                    _hint_limit("max_object_bytes"),
                )
            scan.pixel = PixelDataInfo(
                keyword=keyword,
                vr=vr_text,
                value_offset=pos,
                length=length,
                transfer_syntax=scan.transfer_syntax,
                implicit_vr=implicit,
                little_endian=self.little,
                deflated=scan.deflated,
                file_size=scan.file_size,
            )
            return pos + length
        # Encapsulated (PS3.5 A.4): items of defined length, then a Sequence Delimiter.
        buf, size, tag_len = self.buf, self.size, self.tag_len
        start = pos
        fragments = -1  # the first item is the Basic Offset Table
        total = 0
        items: list[tuple[int, int, int]] = []
        first_item = -1
        bot: tuple[int, ...] = ()
        bot_valid = True
        delimiter_found = False
        while pos + 8 <= size:
            group, elem, item_length = tag_len.unpack_from(buf, pos)
            item_tag = group << 16 | elem
            if item_tag == _SEQUENCE_DELIMITER:
                pos += 8
                delimiter_found = True
                break
            if item_tag != _ITEM:
                raise self._corrupt(
                    f"encapsulated {keyword} is malformed: expected an item at byte {pos}"
                )
            if item_length == _UNDEFINED:
                raise self._corrupt(
                    f"encapsulated {keyword} has an undefined-length fragment at byte {pos}"
                )
            self._count()
            self._check_value(_ITEM, pos + 8, item_length)
            if fragments == -1:
                if item_length % 4 == 0 and 0 < item_length <= 4 * self.limits.max_frames:
                    bot = struct.unpack_from(f"{self.e}{item_length // 4}L", buf, pos + 8)
                elif item_length:
                    bot_valid = False
            else:
                if first_item < 0:
                    first_item = pos
                items.append((pos - first_item, pos + 8, item_length))
                total += item_length
                if total > self.limits.max_object_bytes:
                    raise LimitExceededError(
                        f"encapsulated {keyword} holds more than "
                        f"{self.limits.max_object_bytes} bytes",
                        self.path,
                        _hint_limit("max_object_bytes"),
                    )
            fragments += 1
            pos += 8 + item_length
        if fragments < 0:
            raise self._corrupt(f"encapsulated {keyword} has no Basic Offset Table item")
        if not delimiter_found:
            if pos != size:
                raise self._corrupt(f"encapsulated {keyword} is cut off at byte {pos}")
            scan.note(f"encapsulated {keyword} has no Sequence Delimitation Item")
        if bot:
            bot_valid = (
                bot[0] == 0
                and all(a < b for a, b in itertools.pairwise(bot))
                and bot[-1] < total + 8 * fragments
            )
        scan.pixel = PixelDataInfo(
            keyword=keyword,
            vr=vr.decode("ascii", "replace") if vr else None,
            value_offset=start,
            length=None,
            transfer_syntax=scan.transfer_syntax,
            implicit_vr=implicit,
            little_endian=self.little,
            deflated=scan.deflated,
            file_size=scan.file_size,
            fragments=fragments,
            fragments_bytes=total,
            bot_entries=tuple(bot),
            bot_valid=bot_valid,
            delimiter_found=delimiter_found,
            fragment_items=tuple(items),
        )
        return pos


def _transfer_syntax_from_meta(buf: Any, start: int, end: int, little: bool = True) -> str:
    """The (0002,0010) value between ``start`` and ``end`` (meta is explicit VR LE)."""
    pos = start
    while pos + 8 <= end:
        group, elem, vr, length = struct.unpack_from("<HH2sH", buf, pos)
        head = 8
        if vr in _VR32:
            (length,) = struct.unpack_from("<L", buf, pos + 8)
            head = 12
        elif not (b"AA" <= vr <= b"ZZ"):
            group, elem, length = struct.unpack_from("<HHL", buf, pos)
        if (group, elem) == (0x0002, 0x0010) and length != _UNDEFINED:
            raw = bytes(buf[pos + head : pos + head + length])
            return raw.rstrip(b"\x00 ").decode("ascii", "replace").strip()
        if length == _UNDEFINED:
            break
        pos += head + length
    return ""


def _inflate(data: Any, path: Path, limits: ReadLimits) -> bytes:
    """Inflate a deflated dataset (PS3.5 A.5) without letting a zip bomb through."""
    cap = limits.max_object_bytes + limits.max_header_bytes
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    chunks: list[bytes] = []
    total = 0
    view = memoryview(data)
    step = 1 << 20
    try:
        for i in range(0, len(view), step):
            chunk = inflater.decompress(view[i : i + step], cap + 1 - total)
            total += len(chunk)
            chunks.append(chunk)
            if total > cap or inflater.unconsumed_tail:
                raise LimitExceededError(
                    f"deflated data inflates to more than {cap} bytes",
                    path,
                    _hint_limit("max_object_bytes"),
                )
        chunks.append(inflater.flush())
    except zlib.error as err:
        raise DicomReadError(
            f"deflated data can't be inflated ({err})", path, _HINT_CORRUPT
        ) from None
    return b"".join(chunks)


def scan_file(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> ScanResult:
    """Walk the file's structure and check it against ``limits`` (nothing is decoded).

    Raises NotDicomError for non-DICOM content, DicomReadError for lengths that run past
    the end of the file or broken structure, LimitExceededError for limits.
    """
    p = Path(path)
    with _mapped(p) as (mm, size):
        return _scan_buffer(mm, size, p, limits)


@contextlib.contextmanager
def _mapped(p: Path) -> Iterator[tuple[mmap.mmap, int]]:
    """The file mapped read-only, with its size; one-line errors for a folder, an unreadable
    or empty file, or one that can't be mapped."""
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed below, with the map
    except IsADirectoryError:
        raise NotDicomError("is a folder, not a file", p, "give a DICOM file") from None
    except OSError as err:
        raise DicomReadError(f"can't be opened: {err.strerror or err}", p) from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise NotDicomError("is empty (0 bytes)", p, _HINT_NOT_DICOM)
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as err:
            raise DicomReadError(f"can't be mapped for reading: {err}", p) from None
        with mm:
            yield mm, size


def _scan_buffer(
    mm: Any, size: int, p: Path, limits: ReadLimits, top: _TopLevelRecord | None = None
) -> ScanResult:
    has_preamble = size >= 132 and mm[128:132] == b"DICM"
    if not has_preamble and not _plausible_first_element(bytes(mm[:144]), size):
        raise NotDicomError(
            "has no 'DICM' marker at byte 128 and does not start with a DICOM element",
            p,
            _HINT_NOT_DICOM,
        )
    pos = 132 if has_preamble else 0
    scan = ScanResult(
        path=p,
        file_size=size,
        has_preamble=has_preamble,
        has_meta=False,
        transfer_syntax="",
        implicit_vr=True,
        little_endian=True,
        deflated=False,
    )
    try:
        return _scan_body(mm, size, pos, p, limits, scan, top)
    except (struct.error, IndexError, ValueError, OverflowError) as err:
        raise DicomReadError(f"structure can't be parsed ({err})", p, _HINT_CORRUPT) from None


def _scan_body(
    mm: Any,
    size: int,
    pos: int,
    p: Path,
    limits: ReadLimits,
    scan: ScanResult,
    top: _TopLevelRecord | None = None,
) -> ScanResult:
    # File Meta Information (PS3.10 7.1): explicit VR little endian, group 0002.
    meta = _Walker(mm, size, p, limits, True, scan)
    if pos + 4 <= size and struct.unpack_from("<H", mm, pos)[0] == 0x0002:
        meta_start = pos
        pos, _ = meta.walk(pos, False, stop_group=0x0002, record=None if top is None else top.meta)
        scan.has_meta = True
        scan.transfer_syntax = _transfer_syntax_from_meta(mm, meta_start, pos)
    elif scan.has_preamble:
        scan.note("no File Meta Information")
    # Command group 0000 (pydicom reads it as implicit VR little endian).
    if pos + 4 <= size and struct.unpack_from("<H", mm, pos)[0] == 0x0000:
        pos, _ = meta.walk(pos, True, stop_group=0x0000)
        if top is not None:
            top.command_group = True

    ts = scan.transfer_syntax
    implicit, little, deflated = True, True, False
    if pos >= size:
        pass
    elif not ts:
        # pydicom's guess (issue 258): a VR after the tag means explicit; a group number
        # read as >= 1024 means big endian.
        if pos + 6 <= size:
            group = struct.unpack_from("<H", mm, pos)[0]
            vr = bytes(mm[pos + 4 : pos + 6])
            if vr in _KNOWN_VRS:
                implicit = False
                little = group < 1024
        ts = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
        scan.note("no Transfer Syntax UID; guessed from the data")
    elif ts == ImplicitVRLittleEndian:
        pass
    elif ts == ExplicitVRBigEndian:
        implicit, little = False, False
    elif ts == DeflatedExplicitVRLittleEndian:
        implicit, deflated = False, True
    else:
        implicit = False
    scan.transfer_syntax = str(ts)
    scan.little_endian = little
    scan.deflated = deflated

    if deflated:
        data = _inflate(mm[pos:], p, limits)
        body = _Walker(data, len(data), p, limits, little, scan)
        _, scan.implicit_vr = body.walk(0, implicit, top_level_pixels=True)
        return scan
    body = _Walker(mm, size, p, limits, little, scan)
    body.header_bytes = meta.header_bytes
    _, scan.implicit_vr = body.walk(
        pos, implicit, top_level_pixels=True, record=None if top is None else top.body
    )
    return scan


# --------------------------------------------------------------------------- header scan

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


class _TopLevelRecord:
    """What the full walk records of the top level: positions of the File Meta and of the
    dataset's elements before the pixel data."""

    __slots__ = ("body", "command_group", "meta")

    def __init__(self) -> None:
        self.meta: dict[int, RawPosition] = {}
        self.body: dict[int, RawPosition] = {}
        self.command_group = False

    def top_level(self, buf: Any, wanted: Collection[int]) -> TopLevel:
        """Copy the values out of ``buf`` (a mapping about to be closed)."""

        def value(vr: bytes | None, offset: int, length: int) -> RawValue:
            if vr == b"SQ" or length == _UNDEFINED or length > MAX_RAW_VALUE:
                return vr, None
            return vr, bytes(buf[offset : offset + length])

        body = self.body
        return TopLevel(
            {tag: value(*pos) for tag, pos in self.meta.items()},
            {tag: value(*body[tag]) for tag in wanted if tag in body},
            self.command_group,
        )


class _Bail(Exception):
    """The quick walk met something it leaves to the full walk (never seen by callers)."""


class _NeedMore(Exception):
    """The quick walk needs the file's bytes up to ``end``."""

    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


_HEAD_BYTES = 8 * 1024
_QUICK_MAX_BYTES = 1024 * 1024
_ITEM_LE = b"\xfe\xff\x00\xe0"
_EXPLICIT_LE = struct.Struct("<HH2sH")
_IMPLICIT_LE = struct.Struct("<HHL")
_U32_LE = struct.Struct("<L")
_TS_IMPLICIT = str(ImplicitVRLittleEndian)
_TS_NOT_QUICK = frozenset((str(ExplicitVRBigEndian), str(DeflatedExplicitVRLittleEndian)))
_FIRST_PIXEL_TAG = min(PIXEL_KEYWORDS)
_SQ_BY_DICTIONARY: dict[int, bool] = {}
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _is_dictionary_sq(tag: int) -> bool:
    found = _SQ_BY_DICTIONARY.get(tag)
    if found is None:
        found = _sq_by_dictionary(tag)
        if len(_SQ_BY_DICTIONARY) < 4096:  # private tags vary; keep the cache bounded
            _SQ_BY_DICTIONARY[tag] = found
    return found


def _quick_walk(
    buf: Any, size: int, p: Path, limits: ReadLimits, wanted: Collection[int]
) -> tuple[ScanResult, TopLevel]:
    """The structure walk for the common file, over its first ``len(buf)`` bytes.

    Accepts: preamble, File Meta with a Transfer Syntax UID, explicit or implicit VR little
    endian (not deflated), strictly ascending top-level tags, no command group, nothing the
    full walk would note. It walks the top level itself, with the checks that
    :class:`_Walker` makes there (every declared length against the bytes that remain, the
    element count, the header bytes, the pixel data size), and hands each sequence's value
    and encapsulated pixel data to :class:`_Walker`'s own code; so it returns the same
    :class:`ScanResult` as :func:`scan_file`. For anything else, or anything the full walk
    would refuse, it raises :class:`_Bail` and the full walk decides. Raises
    :class:`_NeedMore` when ``buf`` ends before the header does.
    """
    avail = len(buf)
    full = avail == size
    if size < 140 or buf[128:132] != b"DICM" or buf[132:134] != b"\x02\x00":
        raise _Bail
    count = 0
    header_bytes = 0
    pos = 132
    last = -1
    meta: dict[int, RawValue] = {}
    unpack_explicit = _EXPLICIT_LE.unpack_from
    unpack_implicit = _IMPLICIT_LE.unpack_from
    unpack_u32 = _U32_LE.unpack_from
    vr32 = _VR32
    short_vrs = _SHORT_VRS
    undefined = _UNDEFINED
    # File Meta Information (PS3.10 7.1): explicit VR little endian, group 0002.
    while True:
        if pos + 8 > size:
            raise _Bail
        if pos + 12 > avail and not full:
            raise _NeedMore(pos + 12)
        group, elem, vr, length = unpack_explicit(buf, pos)
        if group != 2:
            break
        tag = 0x20000 | elem
        if tag <= last:
            raise _Bail
        last = tag
        if vr in short_vrs:
            value_pos = pos + 8
        elif vr in vr32 and vr != b"SQ" and vr != b"UN" and pos + 12 <= size:
            (length,) = unpack_u32(buf, pos + 8)
            value_pos = pos + 12
        else:
            raise _Bail
        count += 1
        pos = value_pos + length
        if length == undefined or pos > size or length > MAX_RAW_VALUE:
            raise _Bail
        if pos > avail:
            raise _NeedMore(pos)
        header_bytes += length
        meta[tag] = (vr, buf[value_pos:pos])
    ts_entry = meta.get(0x00020010)
    if ts_entry is None or ts_entry[1] is None or group == 0x0000:
        raise _Bail
    ts = ts_entry[1].rstrip(b"\x00 ").decode("ascii", "replace").strip()
    if not ts or ts in _TS_NOT_QUICK:
        raise _Bail
    implicit = ts == _TS_IMPLICIT
    # pydicom switches the whole dataset when its first element disagrees (see walk()).
    if (0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B) == implicit:
        raise _Bail
    scan = ScanResult(
        path=p,
        file_size=size,
        has_preamble=True,
        has_meta=True,
        transfer_syntax=ts,
        implicit_vr=implicit,
        little_endian=True,
        deflated=False,
    )
    values: dict[int, RawValue] = {}
    last = 0x0002FFFF
    recording = True
    walker: _Walker | None = None
    sq_cache = _SQ_BY_DICTIONARY
    first_pixel = _FIRST_PIXEL_TAG
    while pos < size:
        if pos + 12 > avail:
            if pos + 8 > size:
                raise _Bail  # trailing bytes: the full walk notes them
            if not full:
                raise _NeedMore(pos + 12)
        if implicit:
            group, elem, length = unpack_implicit(buf, pos)
            tag = group << 16 | elem
            vr = None
            value_pos = pos + 8
            if (
                last < tag < first_pixel
                and (length < 8 or (sq_cache.get(tag) is False and length != undefined))
                and buf[value_pos : value_pos + 4] != _ITEM_LE
            ):
                # A plain value, not a sequence: too short for the item test, or neither the
                # dictionary (cached) nor an item at its start says SQ (see below).
                last = tag
                count += 1
                header_bytes += length
                pos = value_pos + length
                if tag in wanted:
                    if pos > avail:
                        raise _NeedMore(pos)
                    values[tag] = (None, buf[value_pos:pos])
                continue
        else:
            group, elem, vr, length = unpack_explicit(buf, pos)
            tag = group << 16 | elem
            if vr in short_vrs and last < tag < first_pixel:
                # The common element: a plain value with a 2-byte length, before the pixel
                # data. A length past the end of the file ends the loop with pos > size,
                # and the walk bails below.
                last = tag
                count += 1
                header_bytes += length
                value_pos = pos + 8
                pos = value_pos + length
                if tag in wanted:
                    if pos > avail:
                        raise _NeedMore(pos)
                    values[tag] = (vr, buf[value_pos:pos])
                continue
            if vr in short_vrs:
                value_pos = pos + 8
            elif vr in vr32:
                if pos + 12 > size:
                    raise _Bail
                (length,) = unpack_u32(buf, pos + 8)
                value_pos = pos + 12
            else:
                raise _Bail
        if tag <= last or group == 0xFFFE:
            raise _Bail
        last = tag
        count += 1
        if recording and tag in PIXEL_KEYWORDS:
            recording = False
            scan.elements = count
            pos = _quick_pixel_data(buf, size, p, limits, scan, tag, vr, length, value_pos)
            count = scan.elements
            continue
        # Which values are sequences: the same decisions as _Walker.walk at the top level.
        if length == undefined:
            is_sq = vr == b"SQ" or vr == b"UN"
            if vr is None:
                is_sq = _is_dictionary_sq(tag)
                if not is_sq:
                    if value_pos + 4 > avail and not full:
                        raise _NeedMore(value_pos + 4)
                    is_sq = buf[value_pos : value_pos + 4] == _ITEM_LE
            if not is_sq:
                raise _Bail  # an undefined-length value that is not a sequence: rare
            sequence_end = None
        else:
            if length > size - value_pos:
                raise _Bail
            is_sq = vr == b"SQ"
            if length >= 8 and (vr is None or vr == b"UN"):
                if value_pos + 4 > avail:
                    raise _NeedMore(value_pos + 4)
                is_sq = buf[value_pos : value_pos + 4] == _ITEM_LE or (
                    vr is None and _is_dictionary_sq(tag)
                )
            sequence_end = value_pos + length
        if recording and tag in wanted:
            if is_sq or length > MAX_RAW_VALUE:
                values[tag] = (b"SQ" if is_sq else vr, None)
            elif value_pos + length > avail:
                raise _NeedMore(value_pos + length)
            else:
                values[tag] = (vr, buf[value_pos : value_pos + length])
        if is_sq and length:
            # The sequence's contents get the full walk's own code, from here.
            if walker is None:
                walker = _Walker(buf, size, p, limits, True, scan)
            walker.header_bytes = header_bytes
            scan.elements = count
            try:
                pos, _ = walker.walk(
                    value_pos,
                    implicit,
                    top_level_sequence=(sequence_end, implicit or vr == b"UN"),
                )
            except (RadAssistError, struct.error, IndexError, ValueError, OverflowError):
                # Cut off by the end of ``buf``, or broken: more bytes, or the full walk.
                if not full:
                    raise _NeedMore(avail + 1) from None
                raise _Bail from None
            count = scan.elements
            header_bytes = walker.header_bytes
            continue
        header_bytes += length
        pos = value_pos + length
    if pos != size or count > limits.max_elements or header_bytes > limits.max_header_bytes:
        raise _Bail
    scan.elements = count
    return scan, TopLevel(meta, values, False)


def _quick_pixel_data(
    buf: Any,
    size: int,
    p: Path,
    limits: ReadLimits,
    scan: ScanResult,
    tag: int,
    vr: bytes | None,
    length: int,
    value_pos: int,
) -> int:
    """The quick walk's top-level pixel data element: recorded in ``scan`` as _Walker does;
    returns the position after it (``scan.elements`` counts its items)."""
    if length == _UNDEFINED:
        if len(buf) != size:
            raise _NeedMore(size)  # the fragments run through the whole file
        try:
            return _Walker(buf, size, p, limits, True, scan)._pixel_data(
                tag, vr, length, value_pos, scan.implicit_vr
            )
        except RadAssistError:
            raise _Bail from None
    if length > size - value_pos or length > limits.max_object_bytes:
        raise _Bail
    scan.pixel = PixelDataInfo(
        keyword=PIXEL_KEYWORDS[tag],
        vr=None if vr is None else vr.decode("ascii", "replace"),
        value_offset=value_pos,
        length=length,
        transfer_syntax=scan.transfer_syntax,
        implicit_vr=scan.implicit_vr,
        little_endian=True,
        deflated=False,
        file_size=size,
    )
    return value_pos + length


def _read_head(p: Path, size_hint: int) -> tuple[bytes, int] | None:
    """The first ``size_hint`` bytes of a regular file and its size; None if it can't be read
    (the full walk then reports why)."""
    try:
        fd = os.open(p, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return os.read(fd, min(size_hint, st.st_size)), st.st_size
    except OSError:
        return None
    finally:
        os.close(fd)


def _scan_mapped(
    p: Path, limits: ReadLimits, wanted: Collection[int], quick: bool
) -> tuple[ScanResult, TopLevel]:
    """The walk over the whole (mapped) file: quick when it can be, else the full walk."""
    with _mapped(p) as (mm, size):
        if quick:
            try:
                return _quick_walk(mm, size, p, limits, wanted)  # slices are copies
            except (_Bail, _NeedMore, struct.error, IndexError, ValueError, OverflowError):
                pass
        record = _TopLevelRecord()
        scan = _scan_buffer(mm, size, p, limits, record)
        return scan, record.top_level(mm, wanted)


def scan_header(
    path: PathLike,
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    wanted: Collection[int] = (),
    quick: bool = True,
) -> tuple[ScanResult, TopLevel]:
    """:func:`scan_file`, plus the top-level elements (PS3.5 7.1), read without pydicom.

    The same checks, errors and :class:`ScanResult` as :func:`scan_file`, and the values of
    the ``wanted`` top-level tags. The common file (see ``_quick_walk``) is walked from its
    first KiB, read in one call and not mapped: ~0.03 ms instead of ~0.09 ms. Anything else
    gets the full walk over the mapped file, as does everything with ``quick=False`` (the
    reference that tests compare the quick walk with).
    """
    p = path if isinstance(path, Path) else Path(path)
    head = _read_head(p, _HEAD_BYTES) if quick else None
    if head is not None:
        buf, size = head
        while True:
            try:
                return _quick_walk(buf, size, p, limits, wanted)
            except _NeedMore as more:
                if more.end > _QUICK_MAX_BYTES or more.end >= size:
                    break  # a large header or encapsulated pixel data: map the file
                grown = _read_head(p, max(more.end + _HEAD_BYTES, 2 * len(buf)))
                if grown is None or grown[1] != size:
                    break
                buf = grown[0]
            except (_Bail, struct.error, IndexError, ValueError, OverflowError):
                quick = False
                break
    return _scan_mapped(p, limits, wanted, quick)


# --------------------------------------------------------------------------- reading


def _read_with_pydicom(
    p: Path, scan: ScanResult, *, stop_before_pixels: bool, defer_size: str | None
) -> Dataset:
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(
                p,
                stop_before_pixels=stop_before_pixels,
                force=True,
                defer_size=defer_size,
            )
    except (RecursionError, MemoryError) as err:
        raise DicomReadError(
            f"can't be read safely ({type(err).__name__})", p, _HINT_CORRUPT
        ) from None
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise DicomReadError(f"can't be read as DICOM: {reason}", p, _HINT_CORRUPT) from None
    if not isinstance(ds, Dataset):
        raise DicomReadError("can't be read as DICOM", p, _HINT_CORRUPT)
    object.__setattr__(ds, "_radassist_pixel_info", scan.pixel)
    object.__setattr__(ds, "_radassist_scan_notes", tuple(scan.notes))
    return ds


def read_header(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> Dataset:
    """Read everything before the pixel data, after checking the whole file's structure.

    Like pydicom's ``stop_before_pixels``, but :func:`pixel_data_info` on the result still
    tells where the pixel data is, its length and its encoding. Values over 1 MiB are left in
    the file and read when first used. Files without preamble or meta header (PS3.10 7.1) are
    read when they start with a plausible element; the transfer syntax is then guessed as
    pydicom does.
    """
    scan, _ = scan_header(path, limits=limits)
    return read_scanned_header(scan)


def read_scanned_header(scan: ScanResult) -> Dataset:
    """:func:`read_header` of the file that :func:`scan_header` (or :func:`scan_file`) has
    just walked into ``scan``: pydicom's parse without a second walk."""
    defer = None if scan.deflated else "1 MB"
    return _read_with_pydicom(scan.path, scan, stop_before_pixels=True, defer_size=defer)


def read_dataset(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> Dataset:
    """Read the whole dataset, pixel data included, with the same checks as read_header."""
    p = Path(path)
    scan = scan_file(p, limits=limits)
    return _read_with_pydicom(p, scan, stop_before_pixels=False, defer_size=None)


def pixel_data_info(ds: Dataset) -> PixelDataInfo | None:
    """Where the pixel data of a dataset from read_header/read_dataset lives, or None."""
    info = ds.__dict__.get("_radassist_pixel_info")
    return info if isinstance(info, PixelDataInfo) else None


def scan_notes(ds: Dataset) -> tuple[str, ...]:
    """Oddities the structure walk noticed (tolerated, not errors), e.g. a guessed syntax."""
    notes = ds.__dict__.get("_radassist_scan_notes")
    return notes if isinstance(notes, tuple) else ()
