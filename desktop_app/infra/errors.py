"""The project's exceptions.

Each carries the offending path (when there is one) and a one-line reason that says
what is wrong and, where it helps, what to do next. Only the GUI and the CLI turn them
into dialogs or printed lines; the core never prints.
"""

from __future__ import annotations

import os
from pathlib import Path

#: A path as the project's functions accept it.
PathLike = str | os.PathLike[str]


class RadAssistError(Exception):
    """Base of every error RadAssist raises on purpose.

    ``reason`` is one line without the path; ``hint`` says what to do next.
    ``str(err)`` gives ``"<path>: <reason> (<hint>)"`` on one line.
    """

    def __init__(
        self, reason: str, path: str | Path | None = None, hint: str | None = None
    ) -> None:
        self.reason = " ".join(str(reason).split())
        self.path = Path(path) if path is not None else None
        self.hint = " ".join(hint.split()) if hint else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.reason
        if self.hint:
            text = f"{text} ({self.hint})"
        if self.path is not None:
            text = f"{self.path}: {text}"
        return text


class DicomReadError(RadAssistError):
    """A file could not be read as DICOM, or not safely."""


class NotDicomError(DicomReadError):
    """The file is not DICOM at all (no preamble, no recognisable elements)."""


class LimitExceededError(DicomReadError):
    """A declared size, length or nesting depth is over a configured safety limit."""


class PixelDecodeError(DicomReadError):
    """The header was read but the pixel data can't be decoded."""


class UnsafePathError(DicomReadError):
    """A referenced path (e.g. in a DICOMDIR) points outside the allowed root."""


class ModelFileError(RadAssistError):
    """A model file is refused: not safetensors, tampered, truncated or mismatched."""


class InferenceError(RadAssistError):
    """Running the network failed in a way that the CPU fallback could not recover."""


class DataError(RadAssistError):
    """Training data is unusable: bad manifest row, unreadable image, empty split."""


class ConfigError(RadAssistError):
    """A configuration value is invalid."""


class ExportError(RadAssistError):
    """Writing a report, SR, secondary capture or de-identified copy failed."""


class PacsError(RadAssistError):
    """A DICOM network operation failed (refused, timed out, unknown AE)."""


class ReviewStateError(RadAssistError):
    """A saved review state can't be read back."""


class Cancelled(Exception):
    """Long core work (e.g. an inference run) noticed its stop flag and ended early.

    Not an error and not a :class:`RadAssistError`: nothing failed and there is nothing to
    fix. The GUI shows "cancelled"; a CLI exits 130. It carries no partial result on purpose,
    so that a half-finished run can never be mistaken for a finished one.
    """


def describe(err: BaseException) -> str:
    """One line for any exception: the project's own reason, else ``Type: message``."""
    if isinstance(err, RadAssistError):
        return err.one_line()
    text = " ".join(str(err).split())
    return (
        f"unexpected error: {type(err).__name__}: {text}"
        if text
        else f"unexpected error: {type(err).__name__}"
    )


FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit)
"""Exceptions that end a run; anything else one file raises is that file's problem (decoders
written in Rust raise ``PanicException``, a BaseException, on hostile data)."""
