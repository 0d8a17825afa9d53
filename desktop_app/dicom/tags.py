"""Flatten a DICOM dataset into rows for the tag viewer, and filter them by a search text.

A data set is a list of data elements, each with a tag (group, element), a VR and a value
(PS3.5 7.1); a Sequence of Items (VR SQ, PS3.5 7.5) nests whole data sets. ``flatten`` walks
that tree depth first into :class:`TagRow` s that carry their depth and their parent row, so a
tree or an indented table can be built from them without pydicom.

Values are turned into short display strings here, never logged. Binary values (OB, OW, OF,
OD, OL, OV, UN) are shown by length only, and an element whose value was left in the file
(``read_header`` defers values over 1 MiB) is described by its length without reading it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom.datadict import (
    dictionary_description,
    dictionary_has_tag,
    dictionary_VR,
    keyword_for_tag,
)
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from desktop_app.dicom.dicomfile import pixel_data_info

log = logging.getLogger(__name__)

BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"})
MAX_VALUE_CHARS = 200
MAX_CONVERTED_BYTES = 64 * 1024  # longer text values are summarised, not decoded
MAX_ROWS = 20_000
MAX_DEPTH = 16
_HEX = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class TagRow:
    """One line of the tag viewer.

    ``tag`` is ``"(GGGG,EEEE)"`` (PS3.5 7.1.1), ``parent`` the index of the enclosing row
    (a sequence or an item) in the flattened list, or -1 at the top level. Item rows have an
    empty tag and VR and a keyword like ``"Item 1"``.
    """

    tag: str
    keyword: str
    name: str
    vr: str
    value: str
    depth: int
    parent: int
    is_container: bool = False

    @property
    def tag_digits(self) -> str:
        """The tag as eight lower-case hex digits (``"00100010"``), or "" for an item row."""
        return self.tag[1:5].lower() + self.tag[6:10].lower() if self.tag else ""


def format_tag(tag: int) -> str:
    t = BaseTag(tag)
    return f"({t.group:04X},{t.element:04X})"


def _describe(tag: BaseTag) -> tuple[str, str]:
    """(keyword, name) from the data dictionary; private and unknown tags get a plain name."""
    if dictionary_has_tag(tag):
        return keyword_for_tag(tag) or "", dictionary_description(tag)
    if tag.is_private:
        return "", "Private Creator" if tag.is_private_creator else "Private tag"
    return "", "Unknown tag"


def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """One line, at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _length_text(n: int | None) -> str:
    if n is None or n < 0 or n == 0xFFFFFFFF:
        return "undefined length"
    return f"{n:,} bytes"


def format_value(elem: DataElement) -> str:
    """A display string for a (converted) element's value; binary values by length only."""
    vr = str(elem.VR or "")
    value = elem.value
    if vr in BINARY_VRS or isinstance(value, (bytes, bytearray)):
        size = len(value) if isinstance(value, (bytes, bytearray)) else None
        return f"<binary, {_length_text(size)}>"
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        parts = [str(v) for v in value]  # type: ignore[union-attr]
        return shorten("\\".join(parts))
    return shorten(str(value))


def _vr_of(data: Dataset, tag: BaseTag) -> str:
    """The element's VR without converting its value: as stored (explicit VR), else from the
    data dictionary (implicit VR, PS3.5 7.1.3), else ""."""
    raw = data.get_item(tag)
    vr = str(getattr(raw, "VR", "") or "")
    if not vr and dictionary_has_tag(tag):
        try:
            vr = str(dictionary_VR(tag))
        except KeyError:
            vr = ""
    return vr


def _raw_length(raw: RawDataElement | DataElement) -> int | None:
    length = getattr(raw, "length", None)
    return int(length) if isinstance(length, int) else None


def _element_value(ds: Dataset, tag: BaseTag) -> tuple[str, str, DataElement | None]:
    """(vr, value text, converted element or None) without reading deferred or huge values."""
    raw = ds.get_item(tag)
    vr = _vr_of(ds, tag)
    if isinstance(raw, RawDataElement):
        length = _raw_length(raw)
        deferred = raw.value is None and length not in (None, 0)
        if vr in BINARY_VRS:
            return vr, f"<binary, {_length_text(length)}>", None
        if deferred or (length is not None and length > MAX_CONVERTED_BYTES):
            return vr, f"<value not loaded, {_length_text(length)}>", None
    try:
        elem = ds[tag]
    except Exception as err:  # a value that doesn't parse is shown, not fatal
        return vr, f"<unreadable value: {type(err).__name__}>", None
    return str(elem.VR or vr), format_value(elem), elem


def flatten(
    ds: Dataset,
    *,
    include_meta: bool = True,
    max_rows: int = MAX_ROWS,
    max_depth: int = MAX_DEPTH,
) -> list[TagRow]:
    """The data set (and its File Meta Information, PS3.10 7.1) as rows, depth first.

    Sequences (PS3.5 7.5) give a row for the sequence, a row per item, and the item's elements
    one level deeper. Past ``max_depth`` or ``max_rows`` a single marker row says what was
    left out, so a hostile file can't make the viewer unbounded.
    """
    out = _RowWriter(max_rows, max_depth)
    meta = getattr(ds, "file_meta", None)
    if include_meta and isinstance(meta, Dataset) and len(meta):
        out.dataset(meta, 0, -1)
    out.dataset(ds, 0, -1)
    rows = out.rows
    info = pixel_data_info(ds)
    if info is not None and not any(r.tag_digits == "7fe00010" for r in rows):
        # read_header stops before the pixels; say where they are without reading them.
        what = "encapsulated" if info.encapsulated else _length_text(info.length)
        vr = "OB" if info.encapsulated else "OW"
        value = f"<pixel data, {what}; not shown>"
        out.add(TagRow(format_tag(0x7FE00010), "PixelData", "Pixel Data", vr, value, 0, -1))
    if out.truncated:
        out.add(_marker(f"more than {max_rows} elements; the rest are not shown", 0, -1))
    return rows


def _marker(text: str, depth: int, parent: int) -> TagRow:
    """A row that stands for what was left out."""
    return TagRow("", "…", "", "", text, depth, parent)


class _RowWriter:
    """Rows of :func:`flatten`, written depth first up to ``max_rows`` and ``max_depth``."""

    def __init__(self, max_rows: int, max_depth: int) -> None:
        self.rows: list[TagRow] = []
        self.max_rows = max_rows
        self.max_depth = max_depth
        self.truncated = False

    def add(self, row: TagRow) -> int:
        self.rows.append(row)
        return len(self.rows) - 1

    def _full(self) -> bool:
        if len(self.rows) >= self.max_rows:
            self.truncated = True
        return self.truncated

    def dataset(self, data: Dataset, depth: int, parent: int) -> None:
        for tag in sorted(data.keys()):
            if self._full():
                return
            btag = Tag(tag)
            keyword, name = _describe(btag)
            if _vr_of(data, btag) == "SQ":
                self._sequence(data, btag, keyword, name, depth, parent)
                continue
            vr, value, _elem = _element_value(data, btag)
            self.add(TagRow(format_tag(btag), keyword, name, vr, value, depth, parent))

    def _sequence(
        self, data: Dataset, btag: BaseTag, keyword: str, name: str, depth: int, parent: int
    ) -> None:
        """A sequence's row, then a row per item and the item's elements (PS3.5 7.5)."""
        tag = format_tag(btag)
        try:
            seq = data[btag].value
        except Exception as err:  # shown, not fatal
            value = f"<unreadable sequence: {type(err).__name__}>"
            self.add(TagRow(tag, keyword, name, "SQ", value, depth, parent))
            return
        items = list(seq) if isinstance(seq, (Sequence, list)) else []
        count = f"{len(items)} item(s)"
        here = self.add(TagRow(tag, keyword, name, "SQ", count, depth, parent, is_container=True))
        if depth + 1 >= self.max_depth:
            if items:
                self.add(_marker("nested too deep; not shown", depth + 1, here))
            return
        for i, item in enumerate(items, start=1):
            if self._full():
                return
            is_dataset = isinstance(item, Dataset)
            value = f"{len(item)} element(s)" if is_dataset else ""
            row = TagRow("", f"Item {i}", "", "", value, depth + 1, here, is_container=True)
            item_row = self.add(row)
            if is_dataset:
                self.dataset(item, depth + 2, item_row)


def _query_forms(query: str) -> tuple[str, str]:
    """The lower-cased query, and its hex digits when it looks like a tag ("0010,0010")."""
    q = query.strip().lower()
    digits = re.sub(r"[()\s,x]", "", q)
    return q, digits if _HEX.fullmatch(digits) or (digits and len(digits) in (4, 8)) else ""


def row_matches(row: TagRow, query: str) -> bool:
    """Does ``row`` match the search text (tag, keyword, name or value; case-insensitive)?"""
    q, digits = _query_forms(query)
    if not q:
        return True
    if (
        digits
        and row.tag_digits
        and (row.tag_digits == digits or (len(digits) == 4 and digits in row.tag_digits))
    ):
        return True
    haystack = (row.tag, row.keyword, row.name, row.value)
    return any(q in field.lower() for field in haystack)


def filter_rows(rows: list[TagRow], query: str) -> list[int]:
    """Indices of the rows to show for ``query``: every match, its ancestors (so a match
    inside a sequence keeps its path) and, for a matching sequence or item, its contents."""
    if not query.strip():
        return list(range(len(rows)))
    keep: set[int] = set()
    children: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        children.setdefault(row.parent, []).append(i)
    for i, row in enumerate(rows):
        if not row_matches(row, query):
            continue
        keep.add(i)
        parent = row.parent
        while parent >= 0 and parent not in keep:
            keep.add(parent)
            parent = rows[parent].parent
        if row.is_container:
            keep.update(_descendants(children, i))
    return sorted(keep)


def _descendants(children: dict[int, list[int]], start: int) -> Iterator[int]:
    stack = list(children.get(start, []))
    while stack:
        i = stack.pop()
        yield i
        stack.extend(children.get(i, []))


def as_text(rows: Iterable[TagRow]) -> str:
    """Rows as indented text (for copying to the clipboard)."""
    out = []
    for row in rows:
        indent = "  " * row.depth
        head = f"{row.tag} {row.keyword or row.name}".strip()
        vr = f" {row.vr}" if row.vr else ""
        out.append(f"{indent}{head}{vr}: {row.value}".rstrip())
    return "\n".join(out)
