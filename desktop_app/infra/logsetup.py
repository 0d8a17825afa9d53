"""The one place that configures logging for the entry points: a rotating log file, a clean terminal.

Everything goes to ``<data folder>/logs/radassist.log`` at DEBUG (rotating, owner-only): the app's
own records, pydicom's and the codecs' (pylibjpeg, openjpeg, libjpeg, Pillow, …) and Python
warnings. The terminal only ever shows the app's own records (``desktop_app``, ``training``) at
WARNING (INFO with ``-v``, DEBUG with ``-vv``), one escaped line each, never a traceback: a
decoder's 12-line traceback, or a warning that repeats a file's PatientName with an ESC in it,
is the file's problem, and the command already reports that problem in one line of its own.
Every record, in the file and on the terminal, goes through :func:`escape_control`.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.safetext import escape_control
from desktop_app.infra.userdirs import subdir

LOG_FILE_NAME = "radassist.log"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3
# The loggers whose records the terminal may show; everything else (pydicom, the codecs,
# pynetdicom, highdicom, torch, py.warnings, …) goes to the file only.
APP_LOGGERS = ("desktop_app", "training")
_FILE_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
_MARK = "_radassist_handler"


def log_file_path(create: bool = True) -> Path:
    """Where the log file lives: ``logs/radassist.log`` in the user data folder."""
    return subdir("logs", create) / LOG_FILE_NAME


class EscapingFormatter(logging.Formatter):
    """A formatter whose output has no raw control characters: the message escaped into one
    line, and a traceback (file only) escaped line by line."""

    def __init__(self, fmt: str, *, tracebacks: bool) -> None:
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return escape_control(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802
        # Frames keep their line breaks; an exception's message (a file's text) is one line.
        lines = []
        for chunk in traceback.TracebackException(*ei).format():
            if chunk.startswith(("Traceback", "  File", "\nDuring", "\nThe above")):
                lines += [escape_control(line) for line in chunk.strip("\n").splitlines()]
            else:
                lines.append(escape_control(chunk.rstrip("\n")))
        return "\n".join(lines)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return "\n".join(escape_control(line) for line in stack_info.splitlines())

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if not self.tracebacks:
            return text
        # Not record.exc_text: another handler may have cached it unescaped.
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


# A quoted value in another library's record ("Invalid value for VR PN: 'DOE^JOHN'") may be a
# patient's name or ID; the app's own records never quote tag values, so only theirs are cut.
_QUOTED = re.compile(r"""(?:b?'[^'\n]{1,4096}'|b?"[^"\n]{1,4096}")""")


class _RedactOthers(logging.Filter):
    """Replaces quoted values in records of loggers other than the app's with ``<value>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in APP_LOGGERS:
            record.msg = _QUOTED.sub("<value>", record.getMessage())
            record.args = None
        return True


class _AppOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".", 1)[0] in APP_LOGGERS


class _TerminalHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests redirect it)."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file created owner-only: its lines may quote values from the files."""

    def _open(self) -> Any:
        return open(
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=lambda path, flags: os.open(path, flags, 0o600),
        )


def configure_logging(verbose: int = 0, prog: str = "radassist") -> Path | None:
    """Configure the root logger for an entry point; returns the log file (None if it can't
    be opened: then the file records are dropped, and the terminal stays as clean).

    Safe to call again (a test calling ``main()`` twice): the handlers this function added
    before are replaced, anyone else's are left alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)

    terminal = _TerminalHandler()
    terminal.setLevel(logging.WARNING - 10 * min(max(verbose, 0), 2))
    terminal.addFilter(_AppOnly())
    terminal.setFormatter(
        EscapingFormatter(f"{prog}: %(levelname)s: %(message)s", tracebacks=False)
    )
    handlers: list[logging.Handler] = [terminal]

    path: Path | None
    try:
        path = log_file_path()
        file_handler = _PrivateRotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True
        )
    except (OSError, RadAssistError) as err:  # an unusable data folder
        path = None
        print(f"{prog}: warning: no log file ({escape_control(err)})", file=sys.stderr)
    else:
        file_handler.setLevel(logging.DEBUG)
        file_handler.addFilter(_RedactOthers())
        file_handler.setFormatter(EscapingFormatter(_FILE_FORMAT, tracebacks=True))
        handlers.append(file_handler)

    for handler in handlers:
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    # Python warnings (pydicom's notes on odd files, deprecations) become records of the
    # "py.warnings" logger: into the file, never onto the terminal.
    logging.captureWarnings(True)
    # pydicom's config.debug() adds a terminal handler of its own: its records reach the
    # root's handlers and nothing else. Its DEBUG (every element read) only with -vv.
    pydicom_log = logging.getLogger("pydicom")
    for handler in [h for h in pydicom_log.handlers if type(h) is logging.StreamHandler]:
        pydicom_log.removeHandler(handler)
    pydicom_log.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    pydicom_log.propagate = True
    return path


__all__ = ["APP_LOGGERS", "EscapingFormatter", "configure_logging", "log_file_path"]
