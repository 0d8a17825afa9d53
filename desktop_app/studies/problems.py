"""A refused file as a one-line problem (FileProblem)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from desktop_app.infra.errors import PathLike, RadAssistError


@dataclass(frozen=True)
class FileProblem:
    """A file that was refused, with a one-line reason (no traceback, no patient data)."""

    path: Path
    reason: str
    kind: str = "DicomReadError"

    def one_line(self) -> str:
        return f"{self.path}: {self.reason}"

    @classmethod
    def from_error(cls, path: PathLike, err: BaseException) -> FileProblem:
        if isinstance(err, RadAssistError):
            reason = err.reason if err.hint is None else f"{err.reason} ({err.hint})"
            return cls(Path(path), reason, type(err).__name__)
        text = " ".join(str(err).split())
        return cls(Path(path), f"unexpected error: {type(err).__name__}: {text}", "unexpected")
