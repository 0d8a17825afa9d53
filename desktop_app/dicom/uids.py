"""UIDs from files and peers checked against PS3.5 9.1, and valid stand-ins for invalid ones.

A UID (PS3.5 9.1) is at most 64 characters of digits and dots; every component is a number
without a leading zero (a lone "0" is allowed). A file or a PACS peer can send anything in a
UI element: ``../../..``, a 6 KB string, letters, control characters. Before such a value is
written into a new object (an SR, a secondary capture, the export JSON), :func:`safe_uid`
replaces it with a UID derived from it: ``2.25.<the name-based UUID (RFC 4122 version 5) of the
original>`` (PS3.5 B.2). The same original always gives the same replacement, so references
between the objects of one export stay consistent; the replacement says nothing about the
original. :class:`UidRepairs` records what was replaced (by hash: the original may be long or
hold control characters) so that the export can say so.

Note: ``pydicom.uid.generate_uid(prefix=None, entropy_srcs=...)`` ignores the entropy sources
(it returns a random UUID), so it cannot give a deterministic replacement.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import RE_VALID_UID

from desktop_app.infra.errors import DataError
from desktop_app.infra.hashedpaths import clean_uid, uid_hash

MAX_UID_LENGTH = 64
# The namespace of the name-based UUIDs behind replacements (uuid5 of the project URL).
_REPAIR_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://radassist.invalid/uid-repair")
_MAX_DEPTH = 64


def is_valid_uid(value: object) -> bool:
    """True when ``value`` (NUL/space padding removed) is a UID as PS3.5 9.1 defines it."""
    if not isinstance(value, str):
        return False
    text = clean_uid(value)
    return 0 < len(text) <= MAX_UID_LENGTH and RE_VALID_UID.match(text) is not None


def derived_uid(original: object) -> str:
    """``2.25.<uuid5 of the original>``: valid, at most 44 characters, and the same for the
    same original (padding ignored)."""
    text = clean_uid(original.decode("latin-1") if isinstance(original, bytes) else original)
    return "2.25." + str(uuid.uuid5(_REPAIR_NAMESPACE, text).int)


def safe_uid(value: object) -> str:
    """The UID without padding when it is valid, else :func:`derived_uid`; empty stays empty."""
    text = clean_uid(value.decode("latin-1") if isinstance(value, bytes) else value)
    if not text:
        return ""
    return text if is_valid_uid(text) else derived_uid(text)


@dataclass
class UidRepairs:
    """Invalid UIDs met while building one output, and what replaced them."""

    replaced: dict[str, str] = field(default_factory=dict)

    def fix(self, value: object) -> str:
        """:func:`safe_uid`, remembering the replacement when there was one."""
        text = clean_uid(value.decode("latin-1") if isinstance(value, bytes) else value)
        fixed = safe_uid(text)
        if fixed != text:
            self.replaced.setdefault(text, fixed)
        return fixed

    def __len__(self) -> int:
        return len(self.replaced)

    def records(self) -> list[dict[str, Any]]:
        """One record per replacement, naming the original only by hash and length."""
        return [
            {
                "original_sha256_16": uid_hash(original),
                "original_length": len(original),
                "replacement": new,
            }
            for original, new in self.replaced.items()
        ]

    def summary(self) -> str:
        """One line for an export's result, or "" when nothing was replaced."""
        if not self.replaced:
            return ""
        count = len(self.replaced)
        return (
            f"{count} invalid UID{'s' if count != 1 else ''} in the source (not digits and "
            "dots of at most 64 characters, PS3.5 9.1) replaced by derived UIDs: "
            + ", ".join(f"{uid_hash(o)} -> {n}" for o, n in list(self.replaced.items())[:3])
            + (", ..." if count > 3 else "")
        )

    def repair_dataset(self, ds: Dataset) -> int:
        """Replace every invalid UI value in ``ds`` and its sequence items (file meta
        included); returns how many values were replaced."""
        changed = 0
        for item in _datasets(ds):
            for elem in item:
                if elem.VR != "UI" or elem.value in (None, ""):
                    continue
                values = elem.value if isinstance(elem.value, list | MultiValue) else [elem.value]
                fixed = [self.fix(v) for v in values]
                if fixed != [clean_uid(v) for v in values]:
                    changed += sum(f != clean_uid(v) for f, v in zip(fixed, values, strict=True))
                    elem.value = fixed if len(fixed) > 1 else fixed[0]
        return changed


def _datasets(ds: Dataset) -> Iterator[Dataset]:
    """``ds``, its file meta and every sequence item, without recursion (depth-capped)."""
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    meta = getattr(ds, "file_meta", None)
    if isinstance(meta, Dataset):
        stack.append((meta, 0))
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise DataError(
                f"sequences nest deeper than {_MAX_DEPTH} levels",
                hint="the file is likely malformed",
            )
        yield item
        for elem in item:
            if elem.VR == "SQ":
                stack.extend((child, depth + 1) for child in elem.value or ())
