"""Tolerant reading of numeric and text values from a pydicom Dataset.

A broken file may hold "abc" in a DS element, NaN, or bytes pydicom can't convert; reading
such a value through pydicom raises. These helpers never raise: they return ``None`` (or an
empty tuple) for anything missing or unparsable, so callers can fall back and keep a note.
Values are parsed from the raw bytes where pydicom would fail (PS3.5 6.2: DS/IS are
backslash-separated decimal strings).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag


def _tag(key: str | int) -> BaseTag | None:
    try:
        return Tag(key)
    except Exception:
        return None


def raw_value(ds: Dataset, key: str | int) -> Any:
    """The element's value, or ``None`` when absent or unconvertible."""
    tag = _tag(key)
    if tag is None:
        return None
    try:
        if tag not in ds:
            return None
    except Exception:
        return None
    with contextlib.suppress(Exception):  # unconvertible: the raw value, below
        return ds[tag].value
    try:
        raw = ds.get_item(tag)
        value = getattr(raw, "value", None)
    except Exception:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("ascii", "replace")
        except Exception:
            return None
    return value


def _to_float(item: Any) -> float | None:
    if item is None:
        return None
    if isinstance(item, bytes):
        item = item.decode("ascii", "replace")
    if isinstance(item, str):
        item = item.strip().strip("\x00").strip()
        if not item:
            return None
    try:
        number = float(item)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return number


def floats(ds: Dataset, key: str | int) -> tuple[float | None, ...]:
    """Every value of a (multi-valued) numeric element; unparsable ones become ``None``."""
    value = raw_value(ds, key)
    if value is None:
        return ()
    items: Sequence[Any]
    if isinstance(value, str):
        items = value.split("\\")
    elif isinstance(value, bytes):
        items = value.decode("ascii", "replace").split("\\")
    elif isinstance(value, (list, tuple)) or hasattr(value, "__iter__"):
        try:
            items = list(value)
        except Exception:
            return ()
    else:
        items = [value]
    return tuple(_to_float(item) for item in items)


def first_float(ds: Dataset, key: str | int) -> float | None:
    """The first value of a numeric element, or ``None``."""
    values = floats(ds, key)
    return values[0] if values else None


def first_int(ds: Dataset, key: str | int) -> int | None:
    """The first value as an integer, or ``None`` (also for non-integral or huge numbers)."""
    number = first_float(ds, key)
    if number is None or number != int(number) or abs(number) > 2**62:
        return None
    return int(number)


def text(ds: Dataset, key: str | int, default: str = "") -> str:
    """The first value as a stripped string, or ``default``."""
    value = raw_value(ds, key)
    if value is None:
        return default
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else ""
    elif not isinstance(value, str):
        value = str(value)  # PersonName, numbers: iterating a PersonName gives characters
    out = " ".join(str(value).split("\\")[0].split()) if isinstance(value, str) else str(value)
    return out.strip() or default


def texts(ds: Dataset, key: str | int) -> tuple[str, ...]:
    """Every value of a (multi-valued) text element, stripped."""
    value = raw_value(ds, key)
    if value is None:
        return ()
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split("\\"))
    if not isinstance(value, (MultiValue, list, tuple)):
        return (str(value).strip(),)
    try:
        return tuple(str(part).strip() for part in value)
    except TypeError:
        return (str(value).strip(),)


def sequence_item(ds: Dataset, key: str | int, index: int = 0) -> Dataset | None:
    """Item ``index`` of a sequence element, or ``None``."""
    value = raw_value(ds, key)
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        item = value[index]
    except Exception:
        return None
    return item if isinstance(item, Dataset) else None


def sequence_length(ds: Dataset, key: str | int) -> int:
    """How many items a sequence element holds (0 when absent or not a sequence)."""
    value = raw_value(ds, key)
    if value is None or isinstance(value, (str, bytes)):
        return 0
    try:
        return len(value)
    except Exception:
        return 0


def functional_group(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """The first item of functional group ``keyword`` that applies to ``frame``.

    Per-frame groups win over shared ones (PS3.3 C.7.6.16: Per-frame Functional Groups
    Sequence (5200,9230) and Shared Functional Groups Sequence (5200,9229)).
    """
    per_frame = sequence_item(ds, "PerFrameFunctionalGroupsSequence", frame)
    if per_frame is not None:
        item = sequence_item(per_frame, keyword, 0)
        if item is not None:
            return item
    shared = sequence_item(ds, "SharedFunctionalGroupsSequence", 0)
    if shared is not None:
        return sequence_item(shared, keyword, 0)
    return None
