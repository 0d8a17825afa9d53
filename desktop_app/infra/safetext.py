"""Text from files and peers made safe to print: control characters escaped, one line kept one line.

Tag values, file names and peer messages are an attacker's text. Printed raw, an ESC or OSC
sequence drives the reader's terminal, and an embedded newline forges a second output line in a
log, TSV or CSV. Everything the app prints or shows that it did not write itself goes through
:func:`escape_control` first.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides that
# reorder or split what a terminal or a label shows (Trojan Source, CVE-2021-42574).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\e"}


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group(0)
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: object, *, limit: int | None = None) -> str:
    """``text`` as one printable line: control characters as ``\\n``, ``\\e``, ``\\x00``, ….

    Backslashes are left as they are (DICOM uses them as value separators); use
    :func:`escape_field` for TSV/CSV cells.
    ``limit`` truncates the result to that many characters, ending in ``…``.
    """
    s = text if isinstance(text, str) else str(text)
    out = _UNSAFE.sub(_escape_one, s)
    if limit is not None and len(out) > limit:
        out = out[: max(0, limit - 1)] + "…"
    return out


def escape_field(text: object, *, limit: int | None = None) -> str:
    """A TSV/CSV cell: as :func:`escape_control`, and a backslash doubled so that the escapes
    can be undone without ambiguity."""
    s = text if isinstance(text, str) else str(text)
    return escape_control(s.replace("\\", "\\\\"), limit=limit)


def is_safe(text: str) -> bool:
    """True when ``text`` has nothing :func:`escape_control` would change."""
    return _UNSAFE.search(text) is None


__all__ = ["escape_control", "escape_field", "is_safe"]
