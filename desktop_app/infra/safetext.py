"""Text from files and peers made safe to print: control characters escaped, one line kept one line.

Tag values, file names and peer messages are an attacker's text. Printed raw, an ESC or OSC
sequence drives the reader's terminal, and an embedded newline forges a second output line in a
log, TSV or CSV. Everything the app prints or shows that it did not write itself goes through
:func:`escape_control` first.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from typing import TextIO

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides that
# reorder or split what a terminal or a label shows (Trojan Source, CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
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


# What a stream guard lets through: our own line ends, TSV tabs and a progress bar's \r.
_UNSAFE_IN_STREAM = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


class EscapingStream(io.TextIOBase):
    """A text stream that escapes, on the way through, every control character except
    ``\n``, ``\t`` and ``\r``: the last guard of a terminal (or of a pipe read by one).

    Each value printed from a file or peer is escaped where it is formatted (which also
    keeps an embedded newline from forging a line); this catches whatever a message quotes
    that nobody thought of, so that no ESC/OSC sequence ever reaches the reader's terminal.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(_UNSAFE_IN_STREAM.sub(_escape_one, text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(self.stream.isatty())

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.stream, "encoding", "utf-8"))

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.stream, "errors", None)


@contextlib.contextmanager
def escaping_std_streams() -> Iterator[None]:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`EscapingStream` while a command runs;
    put back whatever they were, unless the command itself replaced them meanwhile."""
    saved = sys.stdout, sys.stderr
    guards = EscapingStream(saved[0]), EscapingStream(saved[1])
    sys.stdout, sys.stderr = guards  # type: ignore[assignment]
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            guards[0].flush()
        if sys.stdout is guards[0]:
            sys.stdout = saved[0]
        if sys.stderr is guards[1]:
            sys.stderr = saved[1]


__all__ = [
    "EscapingStream",
    "escape_control",
    "escape_field",
    "escaping_std_streams",
    "is_safe",
]
