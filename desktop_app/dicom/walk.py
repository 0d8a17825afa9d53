"""The full structure walk of one file (PS3.5 7.1 elements, 7.5 sequences, A.4 encapsulated
pixel data), without recursion, checking every length and limit before pydicom sees the file.

:func:`scan_file` maps the file and walks it all: every declared length against the bytes that
remain, the sequence nesting depth, the number of elements and the total header size against
:class:`ReadLimits`. The walk mirrors pydicom's tolerance (per-element switch to implicit VR,
trailing bytes shorter than an element header ignored, a top-level Item Delimitation Item ends
the dataset), so that a file pydicom reads is not refused for a difference in parsing.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import struct
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.structure import (
    HINT_CORRUPT,
    HINT_NOT_DICOM,
    ITEM,
    ITEM_DELIMITER,
    KNOWN_VRS,
    MAX_RAW_VALUE,
    PIXEL_KEYWORDS,
    SEQUENCE_DELIMITER,
    UNDEFINED,
    VR32,
    PixelDataInfo,
    RawPosition,
    RawValue,
    ScanResult,
    TopLevel,
    hint_limit,
    looks_explicit,
    native_pixel_info,
    plausible_first_element,
    sq_by_dictionary,
)
from desktop_app.infra.errors import DicomReadError, LimitExceededError, NotDicomError, PathLike


class _Level:
    """One level of the walk: a dataset (top level or item) or a sequence."""

    __slots__ = ("end", "implicit", "is_sequence", "start")

    def __init__(self, is_sequence: bool, start: int, end: int | None, implicit: bool) -> None:
        self.is_sequence = is_sequence
        self.start = start
        self.end = end  # None: undefined length
        self.implicit = implicit


@dataclass
class _Fragments:
    """The items of encapsulated pixel data as read (PS3.5 A.4): the Basic Offset Table's
    entries, then (offset from the first fragment's item, value offset, length) per fragment."""

    end: int
    count: int
    total: int
    items: list[tuple[int, int, int]]
    bot: tuple[int, ...]
    bot_valid: bool
    delimiter_found: bool


class ElementWalker:
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
        self.tag_only = struct.Struct(self.e + "HH")
        self.scan = scan
        self.header_bytes = 0
        self.depth = 0

    # -- errors and counts
    def _corrupt(self, reason: str) -> DicomReadError:
        return DicomReadError(reason, self.path, HINT_CORRUPT)

    def _count(self) -> None:
        self.scan.elements += 1
        if self.scan.elements > self.limits.max_elements:
            raise LimitExceededError(
                f"more than {self.limits.max_elements} data elements",
                self.path,
                hint_limit("max_elements"),
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
                hint_limit("max_header_bytes"),
            )

    def _enter_sequence(self) -> None:
        self.depth += 1
        self.scan.max_depth = max(self.scan.max_depth, self.depth)
        if self.depth > self.limits.max_sequence_depth:
            raise LimitExceededError(
                f"sequences nested deeper than {self.limits.max_sequence_depth} levels",
                self.path,
                hint_limit("max_sequence_depth"),
            )

    def _starts_with_item(self, pos: int) -> bool:
        g2, e2 = self.tag_only.unpack_from(self.buf, pos)
        return (g2 << 16 | e2) == ITEM

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
            if tag == SEQUENCE_DELIMITER:
                return cursor + 8
            if tag != ITEM or length == UNDEFINED or cursor + 8 + length > size:
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
        # One loop with plain values inline: a call per element would slow every header read.
        buf, size, scan = self.buf, self.size, self.scan
        if top_level_sequence is None and stop_group is None:
            implicit = self._dataset_encoding(pos, implicit)
        top_implicit = implicit
        stack = [_Level(False, pos, None, implicit)]
        self.depth = floor = 0
        if top_level_sequence is not None:
            floor = 1
            self._enter_sequence()
            stack.append(_Level(True, pos, *top_level_sequence))
        tag_len, explicit_head, u32 = self.tag_len, self.explicit_head, self.u32
        while len(stack) > floor:
            level = stack[-1]
            if level.is_sequence:
                pos = self._next_item(level, pos, stack)
                continue
            if level.end is not None and pos >= level.end:
                stack.pop()
                continue
            if pos + 8 > size:
                pos = self._end_of_data(level, pos, len(stack))
                break
            implicit = level.implicit
            element_pos = pos
            if implicit:
                group, elem, length = tag_len.unpack_from(buf, pos)
                vr = None
                pos += 8
            else:
                group, elem, vr, length = explicit_head.unpack_from(buf, pos)
                pos += 8
                if vr in VR32:
                    if pos + 4 > size:
                        raise self._corrupt(f"element header at byte {element_pos} is cut off")
                    (length,) = u32.unpack_from(buf, pos)
                    pos += 4
                elif not (b"AA" <= vr <= b"ZZ"):
                    # pydicom: not a VR, assume implicit VR for this element.
                    group, elem, length = tag_len.unpack_from(buf, element_pos)
                    vr = None
            tag = group << 16 | elem
            is_top = len(stack) == 1
            if stop_group is not None and is_top and group != stop_group:
                pos = element_pos
                break
            self._count()
            if tag == ITEM_DELIMITER:
                if is_top:  # pydicom ends the top-level dataset here.
                    scan.note(f"item delimiter at byte {element_pos} ends the data")
                    break
                stack.pop()
                continue
            top_record = record if is_top and scan.pixel is None else None
            if is_top and top_level_pixels and tag in PIXEL_KEYWORDS and scan.pixel is None:
                pos = self.pixel_data(tag, vr, length, pos, top_implicit)
                continue
            if length == UNDEFINED:
                pos = self._undefined_value(tag, vr, pos, implicit, stack, top_record)
                continue
            self._check_value(tag, pos, length)
            is_sq = vr == b"SQ"
            if not is_sq and (vr is None or vr == b"UN") and length >= 8:
                # Implicit VR (or UN): a sequence if the value starts with an item tag
                # (private sequences), or, for implicit VR, if the dictionary says so.
                is_sq = self._starts_with_item(pos) or (vr is None and sq_by_dictionary(tag))
            if top_record is not None:
                top_record[tag] = (b"SQ" if is_sq else vr, pos, length)
            if is_sq and length > 0:
                self._enter_sequence()
                stack.append(_Level(True, pos, pos + length, implicit or vr == b"UN"))
                continue
            self._add_header_bytes(length)
            pos += length
        return pos, top_implicit

    def _dataset_encoding(self, pos: int, implicit: bool) -> bool:
        """Implicit VR or not: pydicom switches the whole top-level dataset on its first
        element (two capital letters after the tag: explicit)."""
        found = looks_explicit(self.buf, pos, self.size)
        if found is not None and found == implicit:
            implicit = not found
            self.scan.note(
                f"dataset is {'implicit' if implicit else 'explicit'} VR, unlike its "
                "transfer syntax"
            )
        return implicit

    def _end_of_data(self, level: _Level, pos: int, levels: int) -> int:
        """Fewer than 8 bytes left: the end (trailing bytes noted) at the top level; inside
        an item, a corrupt file."""
        if levels > 1:
            raise self._corrupt(f"sequence item starting at byte {level.start} is never closed")
        if pos < self.size:
            self.scan.note(f"{self.size - pos} trailing bytes ignored")
        return self.size

    def _next_item(self, level: _Level, pos: int, stack: list[_Level]) -> int:
        """Inside a sequence at ``pos``: its end (popped), or its next item (pushed)."""
        if level.end is not None and pos >= level.end:
            stack.pop()
            self.depth -= 1
            return pos
        if pos + 8 > self.size:
            raise self._corrupt(f"sequence starting at byte {level.start} is never closed")
        group, elem, length = self.tag_len.unpack_from(self.buf, pos)
        tag = group << 16 | elem
        pos += 8
        self._count()
        if tag == SEQUENCE_DELIMITER:
            stack.pop()
            self.depth -= 1
            return pos
        if tag != ITEM and tag != ITEM_DELIMITER:
            # pydicom reads it as an item header anyway; so do we.
            self.scan.note(f"non-item tag inside a sequence at byte {pos - 8}")
        item_implicit = level.implicit
        if not item_implicit and looks_explicit(self.buf, pos, self.size) is False:
            item_implicit = True  # PS3.5 6.2.2: items may be implicit VR
        if length == UNDEFINED:
            stack.append(_Level(False, pos, None, item_implicit))
        else:
            self._check_value(tag, pos, length)
            stack.append(_Level(False, pos, pos + length, item_implicit))
        return pos

    def _undefined_value(
        self,
        tag: int,
        vr: bytes | None,
        pos: int,
        implicit: bool,
        stack: list[_Level],
        record: dict[int, RawPosition] | None,
    ) -> int:
        """An undefined-length value at ``pos``: a sequence (pushed), else skipped to its
        Sequence Delimitation Item. Returns where the walk goes on."""
        is_sq = vr == b"SQ" or vr == b"UN"
        if vr is None:
            is_sq = sq_by_dictionary(tag) or (pos + 4 <= self.size and self._starts_with_item(pos))
        if record is not None:
            record[tag] = (b"SQ" if is_sq else vr, pos, UNDEFINED)
        if is_sq:
            self._enter_sequence()
            # An undefined-length UN is an implicit VR SQ (PS3.5 6.2.2).
            stack.append(_Level(True, pos, None, implicit or vr == b"UN"))
            return pos
        end = self._skip_undefined_value(pos)
        self._add_header_bytes(end - pos)
        return end

    def pixel_data(self, tag: int, vr: bytes | None, length: int, pos: int, implicit: bool) -> int:
        """Record the top-level pixel data element; returns the position after it."""
        if length != UNDEFINED:
            self._check_value(tag, pos, length)
            if length > self.limits.max_object_bytes:
                raise LimitExceededError(
                    f"{PIXEL_KEYWORDS[tag]} holds {length} bytes, over the limit of "
                    f"{self.limits.max_object_bytes}",
                    self.path,
                    hint_limit("max_object_bytes"),
                )
            self.scan.pixel = native_pixel_info(
                self.scan, tag, vr, pos, length, implicit, self.little
            )
            return pos + length
        keyword = PIXEL_KEYWORDS[tag]
        found = self._fragments(keyword, pos)
        if not found.delimiter_found:
            if found.end != self.size:
                raise self._corrupt(f"encapsulated {keyword} is cut off at byte {found.end}")
            self.scan.note(f"encapsulated {keyword} has no Sequence Delimitation Item")
        bot, bot_valid = found.bot, found.bot_valid
        if bot:
            bot_valid = (
                bot[0] == 0
                and all(a < b for a, b in itertools.pairwise(bot))
                and bot[-1] < found.total + 8 * found.count
            )
        self.scan.pixel = PixelDataInfo(
            keyword=keyword,
            vr=vr.decode("ascii", "replace") if vr else None,
            value_offset=pos,
            length=None,
            transfer_syntax=self.scan.transfer_syntax,
            implicit_vr=implicit,
            little_endian=self.little,
            deflated=self.scan.deflated,
            file_size=self.scan.file_size,
            fragments=found.count,
            fragments_bytes=found.total,
            bot_entries=tuple(bot),
            bot_valid=bot_valid,
            delimiter_found=found.delimiter_found,
            fragment_items=tuple(found.items),
        )
        return found.end

    def _fragments(self, keyword: str, pos: int) -> _Fragments:
        """Walk encapsulated pixel data (PS3.5 A.4): items of defined length, the first the
        Basic Offset Table, then a Sequence Delimitation Item."""
        buf, size, tag_len, limits = self.buf, self.size, self.tag_len, self.limits
        found = _Fragments(pos, -1, 0, [], (), True, False)  # count -1: the table comes first
        first_item = -1
        while pos + 8 <= size:
            group, elem, item_length = tag_len.unpack_from(buf, pos)
            item_tag = group << 16 | elem
            if item_tag == SEQUENCE_DELIMITER:
                pos += 8
                found.delimiter_found = True
                break
            if item_tag != ITEM:
                raise self._corrupt(
                    f"encapsulated {keyword} is malformed: expected an item at byte {pos}"
                )
            if item_length == UNDEFINED:
                raise self._corrupt(
                    f"encapsulated {keyword} has an undefined-length fragment at byte {pos}"
                )
            self._count()
            self._check_value(ITEM, pos + 8, item_length)
            if found.count == -1:
                if item_length % 4 == 0 and 0 < item_length <= 4 * limits.max_frames:
                    found.bot = struct.unpack_from(f"{self.e}{item_length // 4}L", buf, pos + 8)
                elif item_length:
                    found.bot_valid = False
            else:
                if first_item < 0:
                    first_item = pos
                found.items.append((pos - first_item, pos + 8, item_length))
                found.total += item_length
                if found.total > limits.max_object_bytes:
                    raise LimitExceededError(
                        f"encapsulated {keyword} holds more than {limits.max_object_bytes} bytes",
                        self.path,
                        hint_limit("max_object_bytes"),
                    )
            found.count += 1
            pos += 8 + item_length
        if found.count < 0:
            raise self._corrupt(f"encapsulated {keyword} has no Basic Offset Table item")
        found.end = pos
        return found


def _transfer_syntax_from_meta(buf: Any, start: int, end: int) -> str:
    """The (0002,0010) value between ``start`` and ``end`` (meta is explicit VR LE)."""
    pos = start
    while pos + 8 <= end:
        group, elem, vr, length = struct.unpack_from("<HH2sH", buf, pos)
        head = 8
        if vr in VR32:
            (length,) = struct.unpack_from("<L", buf, pos + 8)
            head = 12
        elif not (b"AA" <= vr <= b"ZZ"):
            group, elem, length = struct.unpack_from("<HHL", buf, pos)
        if (group, elem) == (0x0002, 0x0010) and length != UNDEFINED:
            raw = bytes(buf[pos + head : pos + head + length])
            return raw.rstrip(b"\x00 ").decode("ascii", "replace").strip()
        if length == UNDEFINED:
            break
        pos += head + length
    return ""


class TopLevelRecord:
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
            if vr == b"SQ" or length == UNDEFINED or length > MAX_RAW_VALUE:
                return vr, None
            return vr, bytes(buf[offset : offset + length])

        body = self.body
        return TopLevel(
            {tag: value(*pos) for tag, pos in self.meta.items()},
            {tag: value(*body[tag]) for tag in wanted if tag in body},
            self.command_group,
        )


def _inflate(data: Any, path: Path, limits: ReadLimits) -> bytearray:
    """Inflate a deflated dataset (PS3.5 A.5) without letting a zip bomb through.

    A first pass streams the inflate in steps of 4 MiB and keeps nothing, only counting the
    bytes against the cap (``limits.max_inflated_bytes``, and no more than the object's
    pixel and header budgets together); a bomb is refused there with a few MiB in memory.
    Only a stream within the cap is inflated again, into one buffer of its size.
    """
    cap = min(limits.max_inflated_bytes, limits.max_object_bytes + limits.max_header_bytes)
    name = "max_inflated_bytes" if cap == limits.max_inflated_bytes else "max_object_bytes"
    try:
        total = 0
        for chunk in _inflated_steps(data):
            total += len(chunk)
            if total > cap:
                raise LimitExceededError(
                    f"deflated data ({len(data)} bytes) inflates to more than {cap} bytes, "
                    f"over the limit of {cap}",
                    path,
                    hint_limit(name),
                )
        out = bytearray(total)
        filled = 0
        with memoryview(out) as view:
            for chunk in _inflated_steps(data):
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
    except zlib.error as err:
        raise DicomReadError(
            f"deflated data can't be inflated ({err})", path, HINT_CORRUPT
        ) from None
    return out


def _inflated_steps(data: Any) -> Iterator[bytes]:
    """The inflated stream (raw deflate, RFC 1951) in pieces of at most 4 MiB."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending = bytes(data)
    while pending:
        chunk = inflater.decompress(pending, 4 << 20)
        if chunk:
            yield chunk
        pending = inflater.unconsumed_tail
    tail = inflater.flush()
    if tail:
        yield tail


def scan_file(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> ScanResult:
    """Walk the file's structure and check it against ``limits`` (nothing is decoded).

    Raises NotDicomError for non-DICOM content, DicomReadError for lengths that run past
    the end of the file or broken structure, LimitExceededError for limits.
    """
    p = Path(path)
    with mapped(p) as (mm, size):
        return scan_buffer(mm, size, p, limits)


@contextlib.contextmanager
def mapped(p: Path) -> Iterator[tuple[mmap.mmap, int]]:
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
            raise NotDicomError("is empty (0 bytes)", p, HINT_NOT_DICOM)
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as err:
            raise DicomReadError(f"can't be mapped for reading: {err}", p) from None
        with mm:
            yield mm, size


def scan_buffer(
    mm: Any, size: int, p: Path, limits: ReadLimits, top: TopLevelRecord | None = None
) -> ScanResult:
    has_preamble = size >= 132 and mm[128:132] == b"DICM"
    if not has_preamble and not plausible_first_element(bytes(mm[:144]), size):
        raise NotDicomError(
            "has no 'DICM' marker at byte 128 and does not start with a DICOM element",
            p,
            HINT_NOT_DICOM,
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
        raise DicomReadError(f"structure can't be parsed ({err})", p, HINT_CORRUPT) from None


def _scan_body(
    mm: Any,
    size: int,
    pos: int,
    p: Path,
    limits: ReadLimits,
    scan: ScanResult,
    top: TopLevelRecord | None = None,
) -> ScanResult:
    # File Meta Information (PS3.10 7.1): explicit VR little endian, group 0002.
    meta = ElementWalker(mm, size, p, limits, True, scan)
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

    implicit, little, deflated = _body_encoding(mm, size, pos, scan)
    scan.little_endian = little
    scan.deflated = deflated

    if deflated:
        data = _inflate(mm[pos:], p, limits)
        body = ElementWalker(data, len(data), p, limits, little, scan)
        _, scan.implicit_vr = body.walk(0, implicit, top_level_pixels=True)
        return scan
    body = ElementWalker(mm, size, p, limits, little, scan)
    body.header_bytes = meta.header_bytes
    _, scan.implicit_vr = body.walk(
        pos, implicit, top_level_pixels=True, record=None if top is None else top.body
    )
    return scan


def _body_encoding(mm: Any, size: int, pos: int, scan: ScanResult) -> tuple[bool, bool, bool]:
    """(implicit VR, little endian, deflated) of the dataset after the File Meta, from its
    Transfer Syntax UID (PS3.5 A), or guessed as pydicom does when there is none; the
    transfer syntax is stored in ``scan``."""
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
            if vr in KNOWN_VRS:
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
    return implicit, little, deflated
